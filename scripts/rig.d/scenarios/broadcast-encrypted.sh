# rig: about=encrypted LE Audio broadcast (broadcast_code) from hci0: a BlueZ sink on hci1 given the right code receives BIS 1 and liblc3 decodes the clicks; a sink on hci2 without the code receives nothing decodable
# rig: controllers=3
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: timeout=300
# rig: bin=required
# rig: default=no

SECS=${RIG_BCAST_SECS:-12}
CODE="bluebridge-test"
A0=$(addr 0); A1=$(addr 1); A2=$(addr 2)

step "run bluebridge: tone source, encrypted broadcast output on hci0"
cat > /tmp/bb.toml <<TOML
[source]
kind = "tone"
buffer_ms = 300

[[output]]
name = "auracast"
kind = "broadcast"
adapter = "hci0"
preset = "48_2_1"
broadcast_code = "$CODE"
TOML
BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 60 grep -q 'BIG up on hci0' "$O/bluebridge.log"
check big-up $? "$(grep -c 'BIG up' "$O/bluebridge.log") BIG set-ups"

# sink IDX NAME ANSWER FD: a bluetoothctl broadcast sink on hciIDX, fed through FD, answering the Broadcast Code
# prompt with ANSWER; it keeps receiving BIS 1 into /tmp/NAME.bin until told to quit.
sink() {
  local idx=$1 name=$2 answer=$3 fd=$4 a log="$O/btctl-$2.log" tr
  a=$(addr "$idx")
  mkfifo "/tmp/$name.in"
  bluetoothctl < "/tmp/$name.in" > "$log" 2>&1 &
  eval "exec $fd>/tmp/$name.in"
  K() { echo "$*" >&"$fd"; sleep 1; }
  sleep 1
  K "select $a"; K "endpoint.register 00001851-0000-1000-8000-00805f9b34fb 0x06"; K y; K a; K 3; K 4
  K "scan le"
  wait_for 40 sh -c "tr -d '\r' < $log | grep -q 'Transport /org/bluez/hci$idx/.*bis1'"
  tr=$(btctl_clean "$log" | sed -n "s/.*Transport \(\/org\/bluez\/hci$idx\/[^ ]*bis1[^ ]*\).*/\1/p" | head -1)
  check "$name-found-bis" "$([ -n "$tr" ] && echo PASS || echo FAIL)" "sink transport ${tr:-none}"
  K "scan off"
  K "transport.select $tr"; K "$answer"
  wait_for 20 sh -c "tr -d '\r' < $log | grep -q 'Acquire successful'" || { K "transport.acquire $tr"; sleep 3; }
  K "transport.receive $tr /tmp/$name.bin"
}

step "sink with the right code on hci1"
sink 1 right "$CODE" 8
step "sink without the code on hci2"
sink 2 none no 9
sleep "$SECS"
echo quit >&8; echo quit >&9; exec 8>&- 9>&-
sleep 2
mgmt 1 power off > /dev/null; mgmt 2 power off > /dev/null; sleep 1
kill -TERM $BB; t 10 sh -c "while kill -0 $BB 2>/dev/null; do sleep 0.2; done"; wait $BB; rc=$?
check clean-exit "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "exit status $rc"

step "decode what each sink received"
for s in right none; do
  cp "/tmp/$s.bin" "$O/$s.bin" 2>/dev/null || : > "$O/$s.bin"
  python3 -S "$IN/lc3_decode.py" "$O/$s.bin" "$O/$s.wav" 100 48000 10000 > "$O/decode-$s.txt" 2>&1
  python3 -S "$IN/analyze_clicks.py" "$O/$s.wav" > "$O/analysis-$s.txt" 2>&1
  cat "$O/decode-$s.txt" "$O/analysis-$s.txt"
  figure "frames_$s" "$(sed -n 's/^frames=//p' "$O/decode-$s.txt")"
  figure "clicks_$s" "$(sed -n 's/^clicks=//p' "$O/analysis-$s.txt")"
done
c=$(sed -n 's/^clicks=//p' "$O/analysis-right.txt"); within "$c" 2 $((SECS + 1)); check right-code-decodes $? "$c clicks with the right code"
c=$(sed -n 's/^clicks=//p' "$O/analysis-none.txt"); within "${c:-0}" 0 0; check no-code-no-audio $? "${c:-0} clicks without the code ($(stat -c%s "$O/none.bin") bytes)"
