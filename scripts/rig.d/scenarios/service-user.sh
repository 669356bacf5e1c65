# rig: about=The service as the unprivileged bluebridge user reaches BlueZ through the shipped D-Bus policy (and only with it)
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: timeout=240
# rig: bin=required

step "create the bluebridge system user (as systemd/bluebridge.sysusers would)"
useradd --system --no-create-home --home-dir /var/lib/bluebridge --shell /usr/sbin/nologin bluebridge 2>&1
id bluebridge; check user $? "$(id bluebridge 2>&1)"
install -d -o bluebridge -g bluebridge -m 0750 /run/bluebridge /var/lib/bluebridge

step "without our policy (what does the distribution's BlueZ policy allow an unprivileged user?)"
# trixie's own bluetooth.conf lets any local user call BlueZ; many systems restrict it to root and a group.
setpriv --reuid=bluebridge --regid=bluebridge --init-groups bluebridge adapters --json > "$O/adapters-nopolicy.json" 2>> "$O/bluebridge.log"; rc=$?
figure distro_policy_allows_unprivileged_user "$([ $rc -eq 0 ] && echo true || echo false)"
step "make the bus strict (default context may not call BlueZ), as on a locked-down system"
cat > /etc/dbus-1/system.d/zz-strict-bluez.conf <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><policy context="default"><deny send_destination="org.bluez"/></policy></busconfig>
XML
t 10 dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig > /dev/null
setpriv --reuid=bluebridge --regid=bluebridge --init-groups bluebridge adapters --json > "$O/adapters-strict.json" 2>> "$O/bluebridge.log"; rc=$?
check denied-without-policy "$([ $rc -ne 0 ] && echo PASS || echo FAIL)" "exit status $rc (want non-zero): $(tail -1 "$O/bluebridge.log" | sed 's/^.*bluebridge: //' | cut -c1-200)"

step "install the shipped policy and reload the bus"
cp "$IN/bluebridge-dbus.conf" /etc/dbus-1/system.d/bluebridge.conf
t 10 dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig > /dev/null
check policy-loaded $? "ReloadConfig"
sleep 1

step "as the bluebridge user: list adapters, and run the service with an a2dp output (endpoint registration)"
setpriv --reuid=bluebridge --regid=bluebridge --init-groups bluebridge adapters --json > "$O/adapters-user.json" 2>> "$O/bluebridge.log"; rc=$?
n=$(grep -o '"address"' "$O/adapters-user.json" | wc -l)
check adapters-as-user "$([ $rc -eq 0 ] && [ "$n" -eq 2 ] && echo PASS || echo FAIL)" "exit $rc, $n adapters: $(cut -c1-200 "$O/adapters-user.json")"
cat > /tmp/bb.toml <<TOML
[source]
kind = "tone"

[service]
control_socket = "/run/bluebridge/control.sock"
state_dir = "/var/lib/bluebridge"

[[output]]
name = "speaker"
kind = "a2dp"
address = "$(addr 1)"
adapter = "hci0"
TOML
chmod 644 /tmp/bb.toml
# The supervisor: this shell plays systemd's part (Restart= aside): start, check, stop with SIGTERM.
# setpriv execs bluebridge itself, so $! is the service's own pid.
setpriv --reuid=bluebridge --regid=bluebridge --init-groups bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 30 grep -q 'endpoint registered on hci0' "$O/bluebridge.log"
check endpoint-as-user $? "$(grep -E 'endpoint registered|A2DP not ready' "$O/bluebridge.log" | tail -1 | sed 's/^.*\(INFO\|WARN\) //' | cut -c1-200)"
setpriv --reuid=bluebridge --regid=bluebridge --init-groups bluebridge status --socket /run/bluebridge/control.sock > "$O/status.txt" 2>&1
check control-socket-as-user $? "$(head -3 "$O/status.txt" | tr '\n' ' ' | cut -c1-200)"
kill -TERM $BB; wait $BB; rc=$?
check clean-exit "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "exit status $rc"
