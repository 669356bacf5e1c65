# rig: about=Broadcast Assistant (issue 14 part 2), feasibility: BlueZ 5.87 on a newer guest kernel (run with RIG_KERNEL_SUITE=sid) as the receiver's BASS scan delegator on hci1; bluebridge broadcasts on hci0 with receivers = [hci1] and, over hci1's BASS (GATT), adds its broadcast; the scenario never gives hci1 the broadcast's address: hci1's own HCI trace must show it creating the PA sync (and BIG sync) to hci0 after the Add Source
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: bluez=sid
# rig: timeout=300
# rig: bin=required
# rig: default=no

A0=$(addr 0); A1=$(addr 1)
log "broadcaster/assistant hci0=$A0; receiver (delegator) hci1=$A1; kernel $(uname -r)"
figure guest_kernel "$(uname -r)"
# bluetoothd claims the receiver's BASS for its own plugin (-E) and exports it read-only unless main.conf says
# otherwise (src/gatt-client.c); bluebridge writes the control point itself.
step "bluetoothd again, with [GATT] ExportClaimedServices = read-write"
printf '[GATT]\nExportClaimedServices = read-write\n' > /tmp/main.conf
BTD_PROG=$(tr '\0' '\n' < "/proc/$(pgrep -x bluetoothd | head -1)/cmdline" | head -1)
kill "$(pgrep -x bluetoothd)"; sleep 1
"$BTD_PROG" -n -d -E -K -f /tmp/main.conf > "$O/bluetoothd-2.log" 2>&1 &
wait_for 30 have_adapters 2 && wait_for 20 have_powered 2
check bluetoothd-again $? "$("$BTD_PROG" --version) -f /tmp/main.conf"

step "receiver hci1: LE only, advertising, bondable; hci0 pairs with it (bluebridge pair)"
# (the kernel refuses BR/EDR off while powered)
mgmt 1 power off; mgmt 1 bredr off; mgmt 1 power on; mgmt 1 advertising on
check receiver-le-only "$(t 10 btmgmt --index 1 info | grep 'current settings' | grep -qv 'br/edr' && echo PASS || echo FAIL)" \
  "$(t 10 btmgmt --index 1 info | grep 'current settings')"
bb_pair 0 1 "$A1"

step "bluebridge broadcasts on hci0 and assists hci1"
bb_broadcast_start 0 preset=48_2_1 channels=mono raw="receivers = [\"$A1\"]"
wait_for 60 grep -q "assist $A1: \(pa-synced\|bis-synced\)" "$O/bluebridge.log"
check assist-pa-synced $? "$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | grep -o "assist $A1: .*" | tr '\n' ';' | cut -c1-600)"
t 10 bluebridge status --socket /tmp/bb.sock > "$O/status.txt" 2>&1
check status-receiver "$(grep -q "receiver $A1: " "$O/status.txt" && echo PASS || echo FAIL)" "$(grep receiver "$O/status.txt")"
sleep 5
# hci1's HCI: LE Periodic Advertising Create Sync (0x2044) and LE BIG Create Sync (0x206b) after the Add Source
/usr/bin/btmon -r "$BTSNOOP" 2>/dev/null > "$O/btmon.txt"
# Order in the trace is time order: the receiver's first ATT write from the assistant, then its own PA sync.
first() { grep -n -m1 -E "$1" "$O/btmon.txt" | cut -d: -f1; }
# the first ATT Write Request whose next lines name the control point (0x2bc7): the Add Source
W=$(awk '/ATT: Write Request/{w=NR} w && NR<=w+3 && /2bc7|Scan Control Point/{print w; exit}' "$O/btmon.txt")
P=$(first '^< HCI Command: LE Periodic Advertising Create Sync .*\[hci1\]')
B=$(first '^< HCI Command: LE BIG Create Sync .*\[hci1\]')
check receiver-pa-create-sync "$([ -n "$P" ] && [ -n "$W" ] && [ "$P" -gt "$W" ] && echo PASS || echo FAIL)" \
  "first BASS write at trace line ${W:-none}, PA Create Sync at ${P:-none}: $([ -n "$P" ] && sed -n "${P},$((P + 9))p" "$O/btmon.txt" | tr '\n' ';' | tr -s ' ')"
check receiver-big-create-sync "$([ -n "$B" ] && echo PASS || echo FAIL)" \
  "$([ -n "$B" ] && sed -n "${B},$((B + 12))p" "$O/btmon.txt" | tr '\n' ';' | tr -s ' ')"
grep -i "bass\|delegator\|bcast" "$O/bluetoothd-2.log" | tail -40 > "$O/bass-log.txt"
kill -INT "$BB" 2>/dev/null; wait "$BB" 2>/dev/null
