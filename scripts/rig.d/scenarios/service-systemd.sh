# rig: about=The shipped unit under real systemd (PID 1) as user bluebridge: READY (Type=notify), BlueZ through the D-Bus policy, reload, watchdog restart, stop
# rig: init=systemd
# rig: controllers=1
# rig: bluetoothd=-E -K
# rig: timeout=200
# rig: bin=required
# rig: default=yes
#
# Installs what the .deb installs, where it installs it, and runs the postinst's steps by hand (reload the bus,
# systemd-sysusers, daemon-reload, enable); then `systemctl start bluebridge` and checks what systemd and BlueZ
# say. RIG_BREAK (comma-separated) makes checks fail on purpose, to see that they can:
#   no-policy      the D-Bus policy is not installed (the bus keeps others off BlueZ): endpoint (not together
#                  with root: the rig's bus lets root call anything)
#   root           a drop-in runs the service as root: user, dbus-user (and control-socket-group: the socket is
#                  then born with group root, and control-socket-no-warning: changing it is refused, as chown(2) is
#                  in the unit's filtered @privileged set)
#   no-rt          a drop-in sets RestrictRealtime=yes (as the unit once did): engine-realtime
#   no-watchdog    a drop-in sets WatchdogSec=0: watchdog-set, watchdog-restart
#   reload-source  the reload also changes the source (every output is rebuilt): reload-kept
# Timing bounds (seconds): RIG_SYSTEMD_STOP_MAX (2, the unit's stop as systemd timed it),
# RIG_SYSTEMD_RESTART_MARGIN (15, on top of WatchdogSec + RestartSec), RIG_SYSTEMD_MAX_EXPOSURE (2.0, as
# scripts/check-systemd).

U=bluebridge
CONF=/etc/bluebridge/bluebridge.toml
WAV=/var/lib/bluebridge/capture.wav
broken() { [[ ",${RIG_BREAK:-}," == *",$1,"* ]]; }
declare -A P
# props: P[...] from one `systemctl show` of the unit
props() {
  local k v
  P=()
  while IFS='=' read -r k v; do P[$k]=$v; done < <(t 15 systemctl show "$U" -p MainPID -p ActiveState -p SubState \
    -p NRestarts -p Result -p StatusText -p WatchdogUSec -p Type -p User -p ActiveEnterTimestampMonotonic)
}
# the unit's journal (its stderr and systemd's), colour codes removed
jr() { t 20 journalctl -u "$U" -o cat --no-pager 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
pf() { if [ $? -eq 0 ]; then echo PASS; else echo FAIL; fi; }   # "$(COND; pf)": PASS if COND held
# status_as USER ARGS...: `bluebridge status` as USER (its groups as in /etc/group)
status_as() { local u=$1; shift; t 15 setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups bluebridge status "$@"; }
wav_size() { stat -c %s "$WAV" 2>/dev/null || echo 0; }

step "install as the .deb does, on a bus whose default policy keeps others off BlueZ"
# The runner put the binary in /usr/local/bin; the unit runs /usr/bin/bluebridge, as packaged.
install -m755 /usr/local/bin/bluebridge /usr/bin/bluebridge && rm -f /usr/local/bin/bluebridge
install -D -m644 "$IN/bluebridge.service" /usr/lib/systemd/system/bluebridge.service
install -D -m644 "$IN/bluebridge.sysusers" /usr/lib/sysusers.d/bluebridge.conf
broken no-policy || install -D -m644 "$IN/bluebridge-dbus.conf" /usr/share/dbus-1/system.d/bluebridge.conf
# trixie's own bluetooth.conf lets anyone call BlueZ; locked-down systems do not: so neither does this bus, and
# only the shipped policy can let the service in (service-user shows the refusal without it). Written aside and
# moved in: dbus-daemon reloads on its own when a file appears in system.d (it read an empty one once).
cat > /etc/dbus-1/zz-strict-bluez.conf <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><deny send_destination="org.bluez"/></policy></busconfig>
XML
mv /etc/dbus-1/zz-strict-bluez.conf /etc/dbus-1/system.d/
# The speaker does not exist: the service must start, register its endpoint and keep paging it.
mkdir -p /etc/bluebridge
cat > "$CONF" <<TOML
[source]
kind = "tone"

[[output]]
name = "speaker"
kind = "a2dp"
address = "00:AA:01:99:00:09"

[[output]]
name = "capture"
kind = "file"
path = "$WAV"
TOML
if broken root; then
  mkdir -p /etc/systemd/system/bluebridge.service.d
  printf '[Service]\nUser=root\nGroup=root\n' > /etc/systemd/system/bluebridge.service.d/rig-break.conf
fi
if broken no-rt; then
  mkdir -p /etc/systemd/system/bluebridge.service.d
  printf '[Service]\nRestrictRealtime=yes\n' > /etc/systemd/system/bluebridge.service.d/rig-break-rt.conf
fi
if broken no-watchdog; then
  mkdir -p /etc/systemd/system/bluebridge.service.d
  printf '[Service]\nWatchdogSec=0\n' > /etc/systemd/system/bluebridge.service.d/rig-break-wd.conf
fi
# The package's own postinst (dist/debian/postinst), with what cargo-deb puts at its #DEBHELPER# marker reduced
# to what matters here (systemd-sysusers, daemon-reload, enable; the start is the next step, timed). With the
# postinst that reloaded the bus before creating the user, `endpoint` failed: dbus-daemon had dropped the
# policy's rules ("Unknown username"), BlueZ answered AccessDenied.
sed 's/^#DEBHELPER#$/systemd-sysusers bluebridge.conf \&\& systemctl daemon-reload \&\& systemctl enable bluebridge.service/' \
  "$IN/deb-postinst" > /tmp/postinst
t 60 sh -e /tmp/postinst configure 2>&1; rc_pi=$?
t 15 journalctl -b --no-pager -o cat -u dbus.service | grep -E 'Unknown (username|group)' | tail -2
pw=$(getent passwd bluebridge)
IFS=: read -r _ _ uid _ _ home shell <<<"$pw"
check installed "$([ $rc_pi -eq 0 ] && [ -n "$uid" ] && [ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] &&
  [ "$home" = /var/lib/bluebridge ] && [ "$shell" = /usr/sbin/nologin ] && [ "$(systemctl is-enabled "$U")" = enabled ]; pf)" \
  "postinst configure rc=$rc_pi; $(systemctl is-enabled "$U"); passwd: $pw"

step "systemctl start bluebridge (Type=notify: returns once READY=1 came)"
t0=$(up)
t 120 systemctl start "$U"; rc=$?
t1=$(up)
props
PID=${P[MainPID]}
figure start_s "$(secs "$t0" "$t1")"
# Fails if the service never sends READY=1 (start times out after TimeoutStartSec) or exits (a sandbox error
# shows up here as 226/NAMESPACE and the like).
check started "$([ $rc -eq 0 ] && [ "${P[ActiveState]}/${P[SubState]}" = active/running ] && [ "${P[Type]}" = notify ]; pf)" \
  "systemctl start rc=$rc after $(secs "$t0" "$t1") s; ${P[ActiveState]} (${P[SubState]}), Type=${P[Type]}, MainPID $PID"
t 15 systemctl status "$U" --no-pager -l > "$O/systemctl-status.txt" 2>&1
ready=$(jr | grep -m1 '^.*ready: ')
check ready "$([ -n "$ready" ]; pf)" "${ready##*INFO }"
check status-text "$([ -n "${P[StatusText]}" ]; pf)" "StatusText=${P[StatusText]}"
check watchdog-set "$([ "${P[WatchdogUSec]}" = 10s ]; pf)" "WatchdogUSec=${P[WatchdogUSec]} (want the unit's 10s)"

step "who the main process is, to the kernel and to the bus"
muid=$(awk '/^Uid:/ { print $2 "," $3 "," $4 "," $5 }' "/proc/$PID/status" 2>/dev/null)
want=$(id -u bluebridge)
figure main_uid "${muid%%,*}"
check user "$([ "$muid" = "$want,$want,$want,$want" ] && [ "$want" != 0 ]; pf)" \
  "MainPID $PID ($(cat "/proc/$PID/comm" 2>/dev/null)) uid real,effective,saved,fs = $muid; bluebridge is $want; unit User=${P[User]}"
# The bus's own idea of the peer (SO_PEERCRED): the unique name whose PID is the main process.
busline=$(t 15 busctl --system list --no-pager --no-legend 2>/dev/null | awk -v p="$PID" '$1 ~ /^:/ && $2 == p { print $1, $4; exit }')
BUSNAME=${busline%% *}
check dbus-user "$([ "${busline#* }" = bluebridge ]; pf)" "bus connection of MainPID $PID: ${busline:-none}"

step "the A2DP endpoint is registered on BlueZ (journal; the object on bluebridge's bus connection)"
has_endpoint() { jr | grep -q 'endpoint registered on hci0'; }
wait_for 30 has_endpoint
line=$(jr | grep -m1 'endpoint registered on hci0')
path=${line##* at }
tree=""
[ -n "$line" ] && [ -n "$BUSNAME" ] && tree=$(t 15 busctl --system tree --list "$BUSNAME" 2>&1)
# Fails when BlueZ refused RegisterEndpoint (no policy: AccessDenied in the journal) or the log line is missing.
check endpoint "$([ -n "$line" ] && grep -qx "$path" <<<"$tree"; pf)" \
  "${line##*INFO }; busctl tree $BUSNAME: $(echo "$tree" | tr '\n' ' ' | cut -c1-200)"
[ -n "$line" ] || jr | grep -iE 'denied|error|warn' | tail -3

step "the engine thread runs with a real-time policy under the shipped unit"
# The engine loop runs on the main thread (service.rs calls Engine::run_controlled there), so it is the task
# whose TID is MainPID and whose comm is "bluebridge" (tokio's workers are bluebridge-ctl, signal threads
# "signal N"). Field 41 of /proc/PID/task/TID/stat is the policy: 0 OTHER, 1 FIFO, 2 RR; 40 is rt_priority.
has_rt_line() { jr | grep -qE 'engine thread (runs SCHED_FIFO|stays at normal priority)'; }
wait_for 30 has_rt_line
rtline=$(jr | grep -m1 -E 'engine thread (runs SCHED_FIFO|stays at normal priority)')
pol="" prio="" rt_other=0
for task in /proc/"$PID"/task/*; do
  tid=${task##*/}
  f=$(sed 's/^.*) //' "$task/stat" 2>/dev/null) || continue
  p=$(awk '{print $39}' <<<"$f"); r=$(awk '{print $38}' <<<"$f")
  if [ "$tid" = "$PID" ] && [ "$(cat "$task/comm" 2>/dev/null)" = bluebridge ]; then pol=$p; prio=$r
  elif [ "$p" = 1 ] || [ "$p" = 2 ]; then rt_other=$((rt_other + 1)); fi
done
figure engine_policy "${pol:-none}"; figure engine_rt_priority "${prio:-none}"; figure rt_threads_other "$rt_other"
check engine-realtime "$( { [ "$pol" = 1 ] || [ "$pol" = 2 ]; }; pf)" \
  "engine thread (TID $PID, comm bluebridge): policy ${pol:-none} (1 FIFO, 2 RR), rt_priority ${prio:-none}; $rt_other other thread(s) real-time; journal: $(cut -c1-220 <<<"${rtline:-nothing about it}")"

step "bluebridge status over the control socket (root, a member of group bluebridge, someone else)"
t 15 bluebridge status > "$O/status.txt" 2>&1; rc=$?
check control-socket "$([ $rc -eq 0 ] && grep -q speaker "$O/status.txt" && grep -q capture "$O/status.txt"; pf)" \
  "rc=$rc: $(head -4 "$O/status.txt" | tr '\n' ' ' | cut -c1-200)"
useradd --no-create-home --shell /usr/sbin/nologin rigop && usermod -aG bluebridge rigop
status_as rigop > "$O/status-group.txt" 2>&1; rc=$?
check control-socket-group "$([ $rc -eq 0 ] && grep -q capture "$O/status-group.txt"; pf)" "as rigop (group bluebridge): rc=$rc"
status_as nobody > "$O/status-other.txt" 2>&1; rc=$?
check control-socket-others-refused "$([ $rc -ne 0 ]; pf)" "as nobody: rc=$rc: $(tail -1 "$O/status-other.txt" | cut -c1-150)"
# The socket is born with the service's group (Group=bluebridge), so bluebridge must not try to change it: chown(2)
# is in the unit's refused @privileged set, and trying logged a WARN at every start ("cannot give it group").
sockwarn=$(jr | grep -i 'control socket' | grep -iE 'warn|cannot' | head -2)
check control-socket-no-warning "$([ -z "$sockwarn" ]; pf)" \
  "socket $(stat -c '%U:%G %a' /run/bluebridge/control.sock 2>&1); journal: ${sockwarn:-no control-socket warning}"

step "the watchdog is fed: still the same process after more than WatchdogSec"
while [ "$(secs "$t1" "$(up)" | cut -d. -f1)" -lt 13 ]; do sleep 0.5; done
props
check watchdog-fed "$([ "${P[MainPID]}" = "$PID" ] && [ "${P[NRestarts]}" = 0 ] && [ "${P[ActiveState]}" = active ]; pf)" \
  "$(secs "$t1" "$(up)") s after READY: MainPID ${P[MainPID]} (was $PID), NRestarts ${P[NRestarts]}, ${P[ActiveState]}; StatusText=${P[StatusText]}"

step "systemctl reload: one output added, the others keep playing in the same process"
size0=$(wav_size)
cat >> "$CONF" <<TOML

[[output]]
name = "extra"
kind = "sim"
TOML
broken reload-source && sed -i 's/^kind = "tone"$/kind = "tone"\nbuffer_ms = 700/' "$CONF"
t 30 systemctl reload "$U"; rc=$?
sleep 1.5
size1=$(wav_size)
props
msg=$(jr | grep 'reloaded /etc/bluebridge/bluebridge.toml' | tail -1)
msg=${msg##*: }
t 15 bluebridge status > "$O/status-reloaded.txt" 2>&1
figure capture_bytes_before_reload "$size0"
figure capture_bytes_after_reload "$size1"
check reload "$([ $rc -eq 0 ] && [ "${P[MainPID]}" = "$PID" ] && [ "${P[ActiveState]}" = active ] && grep -q extra "$O/status-reloaded.txt"; pf)" \
  "systemctl reload rc=$rc; MainPID ${P[MainPID]} (was $PID), ${P[ActiveState]}; status lists extra: $(grep -c extra "$O/status-reloaded.txt")"
# Kept, not re-opened: the log says so and the capture file kept growing (re-opening it starts a new file).
check reload-kept "$([[ "$msg" == *"added extra"* && "$msg" == *unchanged*speaker* && "$msg" == *unchanged*capture* ]] && [ "$size1" -gt "$size0" ]; pf)" \
  "'$msg'; capture.wav $size0 -> $size1 bytes"

step "kill -STOP the main process: the watchdog fires and systemd restarts the service"
wd_s=${P[WatchdogUSec]%s}; [[ "$wd_s" =~ ^[0-9]+$ ]] || wd_s=0
limit=$(( ${wd_s:-0} + 2 + ${RIG_SYSTEMD_RESTART_MARGIN:-15} ))   # WatchdogSec + RestartSec (2 s) + margin
kill -STOP "$PID"; ts=$(up)
restarted() { props; [ "${P[MainPID]}" != "$PID" ] && [ "${P[MainPID]}" != 0 ] && [ "${P[ActiveState]}/${P[SubState]}" = active/running ]; }
wait_for $((limit + 10)) restarted
props
# systemd's own time of the new READY (CLOCK_MONOTONIC, as /proc/uptime here): the poll's own delay left out
tr=$(awk -v u="${P[ActiveEnterTimestampMonotonic]:-0}" 'BEGIN { printf "%.2f", u / 1e6 }')
figure watchdog_restart_s "$(secs "$ts" "$tr")"
wdlog=$(jr | grep -m1 -i 'watchdog timeout')
check watchdog-restart "$([ "${P[MainPID]}" != "$PID" ] && [ "${P[ActiveState]}/${P[SubState]}" = active/running ] &&
  [ "${P[NRestarts]:-0}" -ge 1 ] && [ ! -e "/proc/$PID" ] && [ -n "$wdlog" ] && within "$(secs "$ts" "$tr")" 0 "$limit"; pf)" \
  "after $(secs "$ts" "$tr") s (limit $limit): MainPID $PID -> ${P[MainPID]}, NRestarts ${P[NRestarts]}, ${P[ActiveState]} (${P[SubState]}); old process gone: $([ -e "/proc/$PID" ] && echo no || echo yes); journal: ${wdlog:-no watchdog timeout}"
[ -e "/proc/$PID" ] && kill -CONT "$PID"

step "systemctl stop: quick and clean"
t0=$(up)
t 30 systemctl stop "$U"; rc=$?
t1=$(up)
props
# The unit's stop as systemd timed it: its "Stopping" to its "Stopped" journal line (SIGTERM, bluebridge's
# shutdown, cleanup); the command's wall time adds starting systemctl under the emulator (~1 s on a busy host) and
# is only bounded loosely. (systemctl show gave ActiveExit/InactiveEnterTimestampMonotonic as 0 here: not used.)
stop_s=$(t 20 journalctl -u "$U" -o short-monotonic --no-pager | awk '
  { ts = $0; sub(/^\[ */, "", ts); sub(/\].*/, "", ts) }
  /systemd\[1\]: Stopping bluebridge.service/ { a = ts }
  /systemd\[1\]: Stopped bluebridge.service/ { b = ts }
  END { if (a != "" && b != "") printf "%.2f", b - a }')
figure stop_s "$stop_s"
figure stop_cmd_s "$(secs "$t0" "$t1")"
left=$(pgrep -u bluebridge -x bluebridge | tr '\n' ' ')
# Clean: it stopped itself on SIGTERM (its own "stopped" line), was not killed after TimeoutStopSec, Result=success.
tail_j=$(jr | sed -n '/Stopping bluebridge.service/,$p')
clean=$(grep -c 'bluebridge::service: stopped' <<<"$tail_j")
killed=$(grep -c -E 'SIGKILL|Killing process|timed out' <<<"$tail_j")
check stop "$([ $rc -eq 0 ] && within "$stop_s" 0 "${RIG_SYSTEMD_STOP_MAX:-2}" && within "$(secs "$t0" "$t1")" 0 10 && [ "${P[ActiveState]}" = inactive ] &&
  [ "${P[Result]}" = success ] && [ "$clean" -ge 1 ] && [ "$killed" = 0 ] && [ -z "$left" ]; pf)" \
  "rc=$rc; the unit stopped in $stop_s s (max ${RIG_SYSTEMD_STOP_MAX:-2}), systemctl stop took $(secs "$t0" "$t1") s (max 10); ${P[ActiveState]}, Result=${P[Result]}; its own 'stopped' line: $clean, kill lines: $killed; left running: ${left:-none}"

step "systemd-analyze security bluebridge (the sandbox as this systemd sees it)"
t 90 systemd-analyze security "$U" --no-pager > "$O/security.txt" 2>&1
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$O/security.txt" | tail -1)
figure exposure "${exposure:-none}"
check security "$(within "$exposure" 0 "${RIG_SYSTEMD_MAX_EXPOSURE:-2.0}"; pf)" \
  "exposure ${exposure:-none} (max ${RIG_SYSTEMD_MAX_EXPOSURE:-2.0}); $(tail -1 "$O/security.txt" | cut -c1-120)"

jr > "$O/bluebridge.log"
