# rig: about=bluebridge broadcasts the test signal (LE Audio, LC3 48_2_1, stereo = 2 BIS by default) from hci0; BlueZ's own broadcast sink on hci1 (bluetoothctl) receives BIS 1, liblc3 decodes it, it must correlate with the source
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: timeout=300
# rig: bin=required
# rig: retry=1
# rig: default=no

SECS=${RIG_BCAST_SECS:-15}
CODE=${RIG_BCAST_CODE:-}
# Stereo (two BIS, two LC3 encoders) keeps real time in the TCG guest since the player copies a local-clock source
# instead of resampling it and outputs no longer run the click detector (guest-perf: ~35 % of a vCPU).
# RIG_BCAST_CHANNELS=mono for one BIS (seen failing here: BlueZ 5.82's sink never completed the PA sync).
CHANNELS=${RIG_BCAST_CHANNELS:-stereo}
A0=$(addr 0); A1=$(addr 1)
log "broadcast source hci0=$A0; sink hci1=$A1; code=${CODE:+set}"

step "run bluebridge: tone source, one broadcast output on hci0"
cat > /tmp/bb.toml <<TOML
[source]
kind = "tone"
buffer_ms = 300

[service]
control_socket = "/tmp/bb.sock"
state_dir = "/tmp/bb-state"

[[output]]
name = "auracast"
kind = "broadcast"
adapter = "hci0"
preset = "48_2_1"
channels = "$CHANNELS"
TOML
[ -n "$CODE" ] && echo "broadcast_code = \"$CODE\"" >> /tmp/bb.toml
BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 60 grep -q 'BIG up on hci0' "$O/bluebridge.log"
check big-up $? "$(grep -E 'broadcast|BIG' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-500)"

step "BlueZ broadcast sink on hci1 (bluetoothctl): register 0x1851, scan le, select + acquire + receive BIS 1"
# BlueZ 5.82's sink fails its own BIG sync in about half the runs (Acquire -> "pa_and_big_sync" -> EIO after its
# short-lived PA sync ended; the HCI trace shows the PA sync re-established and no BIG Create Sync): a receiver
# fault, so the scenario has retry=1 (a fresh VM). Starting the receiver over in the same VM did not help (after
# `remove` it found no transport again, and btvirt once crashed).
LOG="$O/btctl-sink.log"
mkfifo /tmp/snk.in
bluetoothctl < /tmp/snk.in > "$LOG" 2>&1 &
SNK=$!
exec 6>/tmp/snk.in
K() { echo "$*" >&6; sleep 1; }
sleep 1
K "select $A1"; K "endpoint.register 00001851-0000-1000-8000-00805f9b34fb 0x06"; K y; K a; K 3; K 4
K "scan le"
wait_for 40 sh -c "tr -d '\r' < $LOG | grep -q 'Transport /org/bluez/hci1/.*bis1'"
TR=$(btctl_clean "$LOG" | sed -n 's/.*Transport \(\/org\/bluez\/hci1\/[^ ]*bis1[^ ]*\).*/\1/p' | head -1)
check sink-found-bis "$([ -n "$TR" ] && echo PASS || echo FAIL)" "sink transport ${TR:-none}"
# Discovery stays on until the BIS is acquired (with it off, BlueZ's re-created PA sync never completed).
K "transport.select $TR"
[ -n "$SINK_CODE" ] && K "$SINK_CODE"
sleep 2
# With Auto Accept the select already acquires; an explicit acquire covers the other case.
wait_for 20 sh -c "tr -d '\r' < $LOG | grep -q 'Acquire successful'" || { K "transport.acquire $TR"; sleep 3; }
wait_for 20 sh -c "tr -d '\r' < $LOG | grep -q 'Acquire successful'"
check sink-acquired $? "$(btctl_clean "$LOG" | grep -o 'Acquire successful.*\|not acquired' | head -1)"
K "transport.receive $TR /tmp/bis-rx.bin"
# The output's delay as bluebridge accounts it (presentation delay + transport latency + LC3): an SDU is handed to
# the controller at its play time minus this.
bluebridge status --json --socket /tmp/bb.sock > "$O/status.json" 2>> "$O/bluebridge.log"
sleep "$SECS"
K "transport.release $TR"; sleep 1
K "scan off"
K quit; exec 6>&-; t 5 sh -c "wait $SNK" 2>/dev/null; kill $SNK 2>/dev/null
# The 5.87 emulator crashes (GPF) when the BIG ends while a receiver is still synced: take the receiver away first.
mgmt 1 power off > /dev/null; sleep 1
cp /tmp/bis-rx.bin "$O/bis-rx.bin" 2>/dev/null
RX=$(stat -c%s "$O/bis-rx.bin" 2>/dev/null || echo 0)
figure rx_bytes "$RX"

kill -0 $BB 2>/dev/null
check bluebridge-alive $? "bluebridge still running after broadcasting"
step "stop bluebridge (SIGTERM)"
kill -TERM $BB; t 10 sh -c "while kill -0 $BB 2>/dev/null; do sleep 0.2; done"; wait $BB; rc=$?
check clean-exit "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "exit status $rc"
grep -o '"sdus[^,]*' "$O/bluebridge.log" | tail -1

step "decode the received LC3 frames (liblc3) and analyse"
python3 -S "$IN/lc3_decode.py" "$O/bis-rx.bin" "$O/decoded.wav" 100 48000 10000 > "$O/decode.txt" 2>&1
python3 -S "$IN/analyze_clicks.py" "$O/decoded.wav" > "$O/analysis.txt" 2>&1
cat "$O/decode.txt" "$O/analysis.txt"
v() { sed -n "s/^$1=//p" "$O/decode.txt" "$O/analysis.txt" | head -1; }
figure frames "$(v frames)"; figure concealed "$(v concealed)"
figure clicks "$(v clicks)"; figure correlation "$(v correlation)"; figure gaps "$(v gaps)"
figure spacing_err_us_max "$(v spacing_err_us_max)"
if [ "${EXPECT_NO_AUDIO:-0}" = 1 ]; then
  within "$(v clicks)" 0 0; check no-audio-without-code $? "$RX bytes, $(v clicks) clicks decodable without the code"
else
  # Every 10 ms SDU for the SECS the sink listened (it starts receiving a little before and stops a little after).
  within "$(v frames)" $((SECS * 100 * 9 / 10)) $((SECS * 100 * 13 / 10)); check received $? "$RX bytes = $(v frames) LC3 frames in ${SECS} s"
  within "$(v bad)" 0 0; check decodes $? "$(v bad) frames liblc3 refused, $(v concealed) concealed"
  python3 -S "$IN/analyze_tone.py" "$O/decoded.wav" > "$O/tone.txt" 2>&1
  f=$(sed -n 's/^freq_hz=//p' "$O/tone.txt"); figure freq_hz "$f"
  within "$f" 431 449; check frequency $? "decoded tone $f Hz, want 440 Hz ±2 %"
  # One click a second of what was received (the capture runs a little longer than SECS).
  secs_rx=$(( ${RX:-0} / 100 / 100 ))  # 100-byte frames, 100 a second
  within "$(v clicks)" $((secs_rx - 1)) $((secs_rx + 1)); check clicks $? "$(v clicks) clicks in ${secs_rx} s received"
  figure segments_good "$(v segments_good)/$(v segments)"; figure segment_corr_min "$(v segment_corr_min)"
  # Every second of audio (click to click) must match the source; one spoiled second is tolerated because the
  # emulator under TCG can stall the whole VM for 100 ms or more when the host is busy (see resyncs).
  within "$(v segments_good)" "$(( $(v segments) - 1 ))" 99; check correlation $? \
    "$(v segments_good)/$(v segments) one-second segments correlate >= 0.99 with the source (whole capture $(v correlation))"
  within "$(v gaps)" 0 0; check no-gaps $? "$(v gaps) gaps in the received audio"

  step "timing: when each click reached the sink (btmon's kernel timestamps) against its play time"
  origin=$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | sed -n 's/.*frame 0 captured at CLOCK_MONOTONIC \([0-9]*\) ns.*/\1/p' | head -1)
  rt_mono=$(python3 -S -c 'import time; print(time.time_ns() - time.monotonic_ns())')
  delay_ms=$(python3 -S -c 'import json,sys; o=json.load(open(sys.argv[1]))["outputs"][0]; print(o["delay"]["sink_reported_ms"])' "$O/status.json" 2>/dev/null)
  log "origin=$origin realtime-monotonic=$rt_mono delay_ms=$delay_ms"
  python3 -S "$IN/iso_timing.py" "$BTSNOOP" 1 "${origin:-0}" "$rt_mono" 300 "${delay_ms:-0}" > "$O/timing.txt" 2>&1
  grep -v '^click=' "$O/timing.txt"
  tv() { sed -n "s/^$1=//p" "$O/timing.txt" | head -1; }
  figure delay_ms "$delay_ms"; figure timing_matched "$(tv matched)"; figure arrival_minus_play_ms_p50 "$(tv arrival_minus_play_ms_p50)"
  figure timing_error_ms_p50 "$(tv error_ms_p50)"; figure timing_error_ms_p95 "$(tv error_ms_p95)"; figure timing_error_ms_max "$(tv error_ms_max)"
  # Tolerance 10 ms (p95 of |error|): SDUs are handed over when due on the 5 ms engine tick and the emulator adds
  # its transit (measured here: median +2.4 ms, p95 5.6 ms); a sender that ignored the presentation delay would be
  # 40 ms off, one that ignored the transport latency 20 ms. The capture spans more than the sink's receive window.
  within "$(tv matched)" $((secs_rx - 2)) 999; check timing-clicks $? "$(tv matched) clicks timed"
  within "$(tv error_ms_p95)" 0 10; check timing $? "arrival - (play - ${delay_ms} ms): p50 $(tv error_ms_p50) ms, p95 |$(tv error_ms_p95)| ms, max |$(tv error_ms_max)| ms"
  figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"
fi
