# Guest runner (bash), started by /init (or, for `# rig: init=systemd`, by systemd's rig-runner.service) from the
# share: sets up what the scenario header asks for, runs the scenario under its timeout, records the setup
# checks, collects logs into /share/out.
. /share/in/lib.sh
[ -f "$IN/env" ] && . "$IN/env"
S=$IN/scenario.sh
hdr() { local v; v=$(sed -n "s/^# rig: $1=//p" "$S" | head -1); echo "${v:-$2}"; }
CONTROLLERS=$(hdr controllers 2)
BTD_FLAGS=$(hdr bluetoothd "-E -K")
BTVIRT_FROM=$(hdr btvirt trixie)
# bluez=sid: sid's bluetoothd, bluetoothctl, btmgmt, btmon (RIG_BLUEZ from the host overrides the header)
RIG_BLUEZ=${RIG_BLUEZ:-$(hdr bluez trixie)}
export RIG_BLUEZ
if [ "$RIG_BLUEZ" = sid ]; then
  export PATH=$SID:$PATH
  BTD=/opt/bluez-sid/libexec/bluetoothd
fi
TMO=${RIG_TIMEOUT:-$(hdr timeout 300)}
# systemd as PID 1 (`# rig: init=systemd`): the system bus is its dbus.service, the journal is saved at the end
INIT=rig; [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && INIT=systemd
exec > "$O/runner.log" 2>&1
log "runner: init=$INIT scenario=$RIG_SCENARIO controllers=$CONTROLLERS bluetoothd='$BTD_FLAGS' bluez=$RIG_BLUEZ ($BTD) btvirt=$BTVIRT_FROM timeout=$TMO"
console "setup (t=$(up)s)"

ok=1
for m in hci_vhci algif_hash algif_skcipher cmac; do modprobe "$m" || { log "modprobe $m failed"; ok=0; }; done
if [ "$INIT" = systemd ]; then
  # stdin as under /init (the console; a service's is /dev/null): btmgmt, asked for one command, quits at EOF on
  # stdin before the kernel answered
  exec < /dev/console
  t 30 systemctl start dbus.service || ok=0
  # systemd's start (userspace) to the runner's start: what booting systemd costs before a scenario can run
  us=$(systemctl show -p UserspaceTimestampMonotonic --value)
  rs=$(systemctl show -p ExecMainStartTimestampMonotonic --value rig-runner.service)
  figure systemd_boot_s "$(awk -v a="$us" -v b="$rs" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
  t 20 systemd-analyze blame > "$O/systemd-blame.txt" 2>&1
else
  mkdir -p /run/dbus
  t 20 dbus-daemon --system --fork || ok=0
fi
# Always trixie's btmon: sid's (bluez=sid puts it first on PATH) needs glibc 2.42, which trixie lacks, and then no
# trace is written at all (seen 7 Dec, broadcast-discovery).
/usr/bin/btmon -w "$BTSNOOP" > /dev/null 2>&1 &
BTMON=$!
sleep 0.3
if [ "$CONTROLLERS" -gt 0 ]; then
  BTVIRT=btvirt; [ "$BTVIRT_FROM" = sid ] && BTVIRT=$SID/btvirt
  "$BTVIRT" -l"$CONTROLLERS" > "$O/btvirt.log" 2>&1 &
  if [ "$BTD_FLAGS" != none ]; then
    # shellcheck disable=SC2086
    $BTD -n -d $BTD_FLAGS > "$O/bluetoothd.log" 2>&1 &
  fi
  if ! wait_for 30 have_controllers "$CONTROLLERS"; then
    check setup FAIL "btvirt: wanted $CONTROLLERS controllers, btmgmt sees $(controller_count) (see btvirt.log, dmesg.log)"
  elif [ "$BTD_FLAGS" != none ] && ! wait_for 30 have_adapters "$CONTROLLERS"; then
    check setup FAIL "bluetoothd exports $(adapter_count) of $CONTROLLERS adapters on D-Bus (see bluetoothd.log)"
  elif [ "$BTD_FLAGS" != none ] && ! wait_for 20 have_powered "$CONTROLLERS"; then
    check setup FAIL "bluetoothd did not power all $CONTROLLERS controllers (see bluetoothd.log)"
  elif [ "$ok" != 1 ]; then
    check setup FAIL "module or dbus-daemon start failed (see runner.log)"
  else
    check setup PASS "$CONTROLLERS controllers via $BTVIRT, $BTD $BTD_FLAGS ($($BTD --version 2>/dev/null)) (t=$(up)s)"
  fi
fi
if [ -f "$IN/bluebridge" ]; then
  install -m755 "$IN/bluebridge" /usr/local/bin/bluebridge
  [ -f "$IN/bluebridge-sink-recorder" ] && install -m755 "$IN/bluebridge-sink-recorder" /usr/local/bin/
  if [ -d "$IN/lib" ] && [ -n "$(ls -A "$IN/lib")" ]; then cp "$IN"/lib/* /usr/local/lib/ && ldconfig; fi
  missing=$(ldd /usr/local/bin/bluebridge 2>&1 | grep 'not found')
  [ -n "$missing" ] && check bluebridge-libs FAIL "missing shared libraries in the image: $missing"
fi
export RUST_LOG=${RUST_LOG:-info,bluebridge=debug} RUST_BACKTRACE=1

log "scenario start"
console "scenario $RIG_SCENARIO start (t=$(up)s, timeout ${TMO}s)"
SC_START=$(date +%s.%N)
timeout -k 5 "$TMO" bash -c '. /share/in/lib.sh; [ -f /share/in/env ] && . /share/in/env; rig_break_env; . /share/in/scenario.sh' \
  > "$O/scenario.log" 2>&1
rc=$?
SC_END=$(date +%s.%N)
log "scenario rc=$rc"
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
  check scenario-finished FAIL "scenario timed out after ${TMO}s (last step: $(grep '^### ' "$O/scenario.log" | tail -1))"
fi
figure scenario_s "$(awk -v a="$SC_START" -v b="$SC_END" 'BEGIN { printf "%.1f", b - a }')"
console "scenario end rc=$rc (t=$(up)s)"

# The emulator itself must have survived: a crashed btvirt is an emulator fault, not a bluebridge bug (the host
# runs such a scenario once more).
if [ "$CONTROLLERS" -gt 0 ] && ! pgrep -x btvirt > /dev/null; then
  check emulator FAIL "btvirt exited or crashed during the scenario; dmesg: $(dmesg | grep -m1 -E 'btvirt\[[0-9]+\]' || echo nothing); btvirt.log: $(tail -2 "$O/btvirt.log")"
fi
# teardown: stop clients first, then daemons, so their logs end cleanly
log "teardown"
pkill -INT -x 'arecord|aplay|bluetoothctl|bluebridge|bluealsa|isotest' 2>/dev/null
sleep 0.5
pkill -INT -x 'bluetoothd|btvirt' 2>/dev/null
kill -INT "$BTMON" 2>/dev/null
sleep 0.5
cp "$BTSNOOP" "$O/hci.btsnoop" 2>/dev/null
dmesg > "$O/dmesg.log" 2>&1
[ "$INIT" = systemd ] && t 60 journalctl -b --no-pager -o short-monotonic > "$O/journal.log" 2>&1
# Decoding the trace is slow under TCG: only when a check failed (or RIG_DECODE=always). Else: btmon -r hci.btsnoop
if [ -s "$O/hci.btsnoop" ] && { [ "${RIG_DECODE:-}" = always ] || grep -q "$(printf '\tFAIL\t')" "$O/checks.tsv" 2>/dev/null; }; then
  t 90 /usr/bin/btmon -T -r "$O/hci.btsnoop" > "$O/hci.txt" 2>&1
fi
log "teardown done"
echo "done" > "$O/guest-done"
sync
