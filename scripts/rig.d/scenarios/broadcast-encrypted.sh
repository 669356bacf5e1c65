# rig: about=encrypted LE Audio broadcast (broadcast_code) from hci0: a sink on hci1 given the code (isotest, kernel ISO socket) receives BIS 1 and it decodes and correlates with the source; a sink on hci2 without the code receives nothing; the code on the HCI commands is the configured one
# rig: controllers=3
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: timeout=300
# rig: bin=required
# rig: retry=1
# rig: default=no

SECS=${RIG_BCAST_SECS:-12}
CODE="bluebridge-test"
HEX=$(bcode_hex "$CODE")
A0=$(addr 0)

step "run bluebridge: tone source, encrypted broadcast output on hci0"
bb_broadcast_start 0 preset=48_2_1 broadcast_code="$CODE"

step "sinks: hci1 with the code, hci2 without (isotest on the kernel ISO socket, BIS 1)"
iso_sink 1 "$A0" /tmp/right.bin "$HEX"; RIGHT=$ISO_SINK_PID
iso_sink 2 "$A0" /tmp/none.bin; NONE=$ISO_SINK_PID
wait_for 60 test -s /tmp/right.bin
check right-synced $? "$(grep -v '^$' "$O/isotest-hci1.log" | tail -3 | tr '\n' ';')"
bluebridge status --json --socket /tmp/bb.sock > "$O/status.json" 2>> "$O/bluebridge.log"
sleep "$SECS"
iso_sink_stop "$RIGHT"; iso_sink_stop "$NONE"
# The 5.87 emulator crashes (GPF) when the BIG ends while a receiver is still synced: take the receivers away first.
bis_sinks_away 1 2
cp /tmp/right.bin "$O/right.bin"; cp /tmp/none.bin "$O/none.bin"
bb_stop "$BB"
figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"

step "what the sink with the code received"
bis_analyse right "$O/right.bin" 1
bis_timing right 1 "$(bb_delay_ms "$O/status.json" auracast)" 300

step "what the sink without the code received"
python3 -S "$IN/lc3_decode.py" "$O/none.bin" "$O/none.wav" 100 48000 10000 > "$O/none.decode.txt" 2>&1
python3 -S "$IN/analyze_clicks.py" "$O/none.wav" > "$O/none.analysis.txt" 2>&1
n=$(stat -c%s "$O/none.bin"); c=$(sed -n 's/^clicks=//p' "$O/none.analysis.txt")
figure rx_bytes_none "$n"; figure clicks_none "${c:-0}"
within "$n" 0 0; check no-code-no-audio $? "$n bytes, ${c:-0} clicks received without the code"

step "the code on the HCI commands (btvirt checks only the Encryption flag, not the code)"
python3 -S "$IN/big_hci.py" "$BTSNOOP" > "$O/big-hci.txt" 2>&1
cat "$O/big-hci.txt"
grep -q "^create_big idx=0 enc=1 code=$HEX\$" "$O/big-hci.txt"
check code-sent $? "hci0 LE Create BIG: $(grep -m1 '^create_big idx=0' "$O/big-hci.txt") (want enc=1 code=$HEX, '$CODE' zero-padded)"
grep -q "^big_create_sync idx=1 enc=1 code=$HEX\$" "$O/big-hci.txt" && grep -q "^big_sync_established idx=1 status=0x00" "$O/big-hci.txt"
check right-code-sync $? "hci1: $(grep -m1 '^big_create_sync idx=1' "$O/big-hci.txt"); $(grep -m1 '^big_sync_established idx=1' "$O/big-hci.txt")"
! grep -q "^big_sync_established idx=2 status=0x00" "$O/big-hci.txt"
check no-code-refused $? "hci2: $(grep -m1 '^big_create_sync idx=2' "$O/big-hci.txt"); $(grep '^big_sync_established idx=2' "$O/big-hci.txt" | sort | uniq -c | tr '\n' ';')"
