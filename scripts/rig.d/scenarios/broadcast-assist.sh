# rig: about=Broadcast Assistant (issue 14 part 2), BlueZ 5.87 on sid's guest kernel as the receiver's BASS scan delegator on hci1; bluebridge broadcasts on hci0 with receivers = [hci1] and, over hci1's BASS (GATT), adds its broadcast; the scenario never gives hci1 the broadcast's address: hci1's own HCI trace must show it creating the PA sync (and BIG sync) to hci0 after the Add Source
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: bluez=sid
# rig: kernel=sid
# rig: timeout=300
# rig: bin=required
# rig: default=no

A0=$(addr 0); A1=$(addr 1)
log "broadcaster/assistant hci0=$A0; receiver (delegator) hci1=$A1; kernel $(uname -r)"
figure guest_kernel "$(uname -r)"
# bluetoothd claims the receiver's BASS for its own plugin (-E) and exports it read-only unless main.conf says
# otherwise (src/gatt-client.c); bluebridge writes the control point itself.
# bluebridge doctor on a config with receivers: gatt-export-claimed MISSING under the rig's bluetoothd -E (no
# main.conf), ok once it reads a main.conf with read-write (it follows the running bluetoothd's -f)
printf '[source]\nkind = "tone"\n\n[[output]]\nname = "auracast"\nkind = "broadcast"\nadapter = "hci0"\nreceivers = ["%s"]\n' "$A1" > /tmp/doctor.toml
doctor_line() { t 30 bluebridge doctor --config /tmp/doctor.toml 2>&1 | grep -A1 'gatt-export-claimed' | tr -s ' ' | tr '\n' ';'; }
D1=$(doctor_line)
check doctor-export-missing "$(echo "$D1" | grep -q '^MISSING gatt-export-claimed.*fix: add `ExportClaimedServices = read-write`' && echo PASS || echo FAIL)" "$D1"
step "bluetoothd again, with [GATT] ExportClaimedServices = read-write"
printf '[GATT]\nExportClaimedServices = read-write\n' > /tmp/main.conf
BTD_PROG=$(tr '\0' '\n' < "/proc/$(pgrep -x bluetoothd | head -1)/cmdline" | head -1)
OLD=$(pgrep -x bluetoothd | head -1)
kill "$OLD"
# the new one fails "Name already in use" if the old one still holds org.bluez (run 3, load 10)
wait_for 30 sh -c "! kill -0 $OLD 2>/dev/null"; sleep 1
"$BTD_PROG" -n -d -E -K -f /tmp/main.conf > "$O/bluetoothd-2.log" 2>&1 &
wait_for 30 have_adapters 2 && wait_for 20 have_powered 2
check bluetoothd-again $? "$("$BTD_PROG" --version) -f /tmp/main.conf"
D2=$(doctor_line)
check doctor-export-ok "$(echo "$D2" | grep -q '^ok gatt-export-claimed: /tmp/main.conf exports' && echo PASS || echo FAIL)" "$D2"

step "receiver hci1: LE only, a connectable advertisement (bluetoothctl advertise), bondable; hci0 pairs with it"
# (the kernel refuses BR/EDR off while powered; without privacy off hci1 advertises from a resolvable private
# address and hci0 never finds 00:AA:01:01:00:01)
# mgmt's own advertising (`btmgmt advertising on`) does not work here: on 6.12 it advertised non-connectable when set
# before `connectable on` (btvirt answers new parameters while advertising with Command Disallowed, run 2), and on
# the 7.2 kernel `discov yes` alone sent hci1 no HCI command (run 4) and `advertising on` failed LE Set Extended
# Advertising Data/Parameters (0x2037 -38, 0x2036 -16, run 5). An LEAdvertisement1 (what a receiver's own software
# registers) goes through mgmt Add Extended Advertising, the path bluebridge's broadcast advertisement takes on hci0.
mgmt 1 power off; mgmt 1 bredr off; mgmt 1 privacy off; mgmt 1 power on
mgmt 1 connectable on; mgmt 1 discov yes; mgmt 1 bondable on; mgmt 1 io-cap 3
check receiver-le-only "$(t 10 btmgmt --index 1 info | grep 'current settings' | grep -qv 'br/edr' && echo PASS || echo FAIL)" \
  "$(t 10 btmgmt --index 1 info | grep 'current settings')"
agent_start
btc "select $A1"; btc "advertise.discoverable on"; btc "advertise.name on"; btc "advertise peripheral"
wait_for 10 grep -q 'Advertising object registered' "$O/bluetoothctl.log"
check receiver-advertises $? "$(btctl_clean "$O/bluetoothctl.log" | grep -i 'advertis' | tail -3 | tr '\n' ';')"
# `bluebridge pair` finds an LE-only receiver (its LE scan after the BR/EDR inquiry) and gets as far as SMP; in this
# one-bluetoothd rig the receiver's side of a just-works pairing then asks the *default* agent for authorization,
# which is bluebridge pair's own (it rejects: run 2, MGMT User Confirmation Negative Reply on hci1), where a real
# receiver answers itself. So hci0 pairs through the rig's bluetoothctl, whose agent says yes for hci1.
bb 40 pair "$A1" --adapter hci0 --seconds 20 >> "$O/bluebridge.log"
figure bluebridge_pair_le "rc=$? found=$([ -n "$(dev_prop 0 "$A1" Address)" ] && echo yes || echo no) paired=$(dev_prop 0 "$A1" Paired)"
if ! prop_is 0 "$A1" Paired true; then
  btc "default-agent"; btc "select $A0"; btc "scan le"
  wait_for 30 grep -q "Device $A1" "$O/bluetoothctl.log"
  btc "scan off"; btc "pair $A1"
  # bluetoothctl registers its KeyboardDisplay agent itself ("agent NoInputNoOutput" then fails, run 3), so this is
  # numeric comparison: one "Request confirmation" per side (hci1's, then hci0's), each answered yes.
  N=0
  for _ in 1 2; do
    wait_for 20 sh -c "[ \$(tr -d '\r' < $O/bluetoothctl.log | grep -c 'Request confirmation\|Request authorization') -gt $N ]" || break
    N=$((N + 1)); btc yes
  done
  wait_for 30 prop_is 0 "$A1" Paired true
fi
check pair-hci0 "$(prop_is 0 "$A1" Paired true && echo PASS || echo FAIL)" \
  "Paired=$(dev_prop 0 "$A1" Paired); $(btctl_clean "$O/bluetoothctl.log" | grep -i 'pair\|fail' | tail -4 | tr '\n' ';')"
set_trusted 1 "$A0"; set_trusted 0 "$A1"

step "receiver hci1: a broadcast sink endpoint (bluetoothctl, no scan: it learns of the broadcast only over BASS)"
LOG="$O/btctl-sink.log"
mkfifo /tmp/snk.in
bluetoothctl < /tmp/snk.in > "$LOG" 2>&1 &
SNK=$!
exec 6>/tmp/snk.in
K() { echo "$*" >&6; sleep 1; }
sleep 1
K "select $A1"; K "endpoint.register 00001851-0000-1000-8000-00805f9b34fb 0x06"; K y; K a; K 3; K 4
# receiver_take TAG: the next BIS transport BlueZ's delegator makes on hci1 is selected, acquired and received into
# /tmp/rx-TAG.bin (what a speaker's own audio path would do).
NTR=0
receiver_take() {
  wait_for 60 sh -c "[ \$(tr -d '\r' < $LOG | grep -c 'Transport /org/bluez/hci1/.*bis1') -gt $NTR ]"
  local tr; tr=$(btctl_clean "$LOG" | sed -n 's/.*Transport \(\/org\/bluez\/hci1\/[^ ]*bis1[^ ]*\).*/\1/p' | tail -1)
  NTR=$(tr -d '\r' < "$LOG" | grep -c 'Transport /org/bluez/hci1/.*bis1')
  check "receiver-transport-$1" "$([ -n "$tr" ] && echo PASS || echo FAIL)" "delegator's transport ${tr:-none}"
  [ -n "$tr" ] || return 1
  K "transport.select $tr"; sleep 2
  K "transport.acquire $tr"; sleep 2
  K "transport.receive $tr /tmp/rx-$1.bin"
  TR=$tr
}

step "bluebridge broadcasts on hci0 and assists hci1"
bb_broadcast_start 0 preset=48_2_1 channels=mono raw="receivers = [\"$A1\"]"
wait_for 60 grep -q "assist $A1: \(pa-synced\|bis-synced\)" "$O/bluebridge.log"
check assist-pa-synced $? "$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | grep -o "assist $A1: .*" | tr '\n' ';' | cut -c1-600)"
receiver_take one
wait_for 40 grep -q "assist $A1: bis-synced" "$O/bluebridge.log"
check assist-bis-synced $? "$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | grep -o "assist $A1: .*" | tail -3 | tr '\n' ';')"
sleep 12
t 10 bluebridge status --socket /tmp/bb.sock > "$O/status.txt" 2>&1
check status-receiver "$(grep -q "receiver $A1: " "$O/status.txt" && echo PASS || echo FAIL)" "$(grep receiver "$O/status.txt")"
sleep 5
# hci1's HCI: LE Periodic Advertising Create Sync (0x2044) and LE BIG Create Sync (0x206b) after the Add Source
/usr/bin/btmon -r "$BTSNOOP" 2>/dev/null > "$O/btmon.txt"
# Order in the trace is time order: the receiver's first ATT write from the assistant, then its own PA sync.
first() { grep -n -m1 -E "$1" "$O/btmon.txt" | cut -d: -f1; }
# the first ATT Write Request whose next lines name the control point (0x2bc7): the Add Source
W=$(awk '/ATT: Write Request/{w=NR} w && NR<=w+3 && /2bc7|Scan Control Point/{print w; exit}' "$O/btmon.txt")
# by opcode: btmon shortens the names of commands ("LE Periodic Adv.. (0x08|0x0044)", run 4)
P=$(first '^< HCI Command: .*\(0x08\|0x0044\).*\[hci1\]')
B=$(first '^< HCI Command: .*\(0x08\|0x006b\).*\[hci1\]')
check receiver-pa-create-sync "$([ -n "$P" ] && [ -n "$W" ] && [ "$P" -gt "$W" ] && echo PASS || echo FAIL)" \
  "first BASS write at trace line ${W:-none}, PA Create Sync at ${P:-none}: $([ -n "$P" ] && sed -n "${P},$((P + 9))p" "$O/btmon.txt" | tr '\n' ';' | tr -s ' ')"
check receiver-big-create-sync "$([ -n "$B" ] && echo PASS || echo FAIL)" \
  "$([ -n "$B" ] && sed -n "${B},$((B + 12))p" "$O/btmon.txt" | tr '\n' ';' | tr -s ' ')"
cp /tmp/rx-one.bin "$O/rx-one.bin" 2>/dev/null || : > "$O/rx-one.bin"
figure rx_bytes_one "$(stat -c%s "$O/rx-one.bin")"

step "receiver's controller power-cycled: bluebridge tells it again"
N0=$(grep -c "assist $A1: bis-synced" "$O/bluebridge.log")
mgmt 1 power off; sleep 3; T0=$(up); mgmt 1 power on
# run 4: no advertising command on hci1 after the power-on, so hci0's reconnect found nothing: advertise again
btc "select $A1"; btc "advertise off"; btc "advertise peripheral"
wait_for 120 sh -c "[ \$(grep -c 'assist $A1: bis-synced' $O/bluebridge.log) -gt $N0 ]"
check assist-again $? "$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | grep -o "assist $A1: .*" | tail -6 | tr '\n' ';')"
receiver_take two && wait_for 30 test -s /tmp/rx-two.bin
check audio-again $? "rx-two $(stat -c%s /tmp/rx-two.bin 2>/dev/null || echo 0) bytes"
figure time_to_audio_s "$(awk -v a="$T0" -v b="$(up)" 'BEGIN{printf "%.1f", b-a}')"
sleep 8
cp /tmp/rx-two.bin "$O/rx-two.bin" 2>/dev/null || : > "$O/rx-two.bin"
K quit; exec 6>&-
grep -i "bass\|delegator\|bcast" "$O/bluetoothd-2.log" | tail -60 > "$O/bass-log.txt"
bis_sinks_away 1
bb_stop "$BB"
step "decode what the receiver got"
bis_analyse one "$O/rx-one.bin" 1
bis_analyse two "$O/rx-two.bin" 1
