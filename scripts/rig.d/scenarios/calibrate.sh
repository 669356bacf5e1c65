# rig: about=`bluebridge calibrate --all` with a real microphone (cpal on snd-aloop's capture side): two A2DP sinks sound into the loopback at arrival schedule + a hidden latency; each hidden error recovered within 1 ms, clicks of both within 2 ms after; a 44.1 kHz recording of --play-sequence checked with --from-recording
# rig: controllers=4
# rig: bluetoothd=-E -K
# rig: timeout=480
# rig: bin=required
# rig: retry=1

# The room: snd-aloop. One `bluebridge-sink-recorder --mixer` owns the loopback's playback side (device 0); the
# two A2DP sinks (recorders on hci2 and hci3, `--sound-to`) send it every decoded packet due at the speaker's
# schedule (lower envelope of packet arrivals, see src/bin/bluebridge-sink-recorder/sound/schedule.rs) + a latency drawn
# here at random and told to nobody but the sink. Each sink reports a Delay that is something else, so it is heard
# HIDDEN = latency - Delay late. bluebridge's microphone is the loopback's capture side (device 1) through cpal
# (`calibrate --mic`). Without a microphone latency the calibration is relative (errors against the mean), so
# each sink's measured error must equal HIDDEN - mean(HIDDEN) within CAL_TOL_MS; the clicks of both sinks (their
# sound times, from the recorders) must then sound within SKEW_TOL_MS of each other.
# Gating: `recovered-*` and `from-recording-*` (the measurement is right) and `skew-after` (the point of it: the
# issue's 2 ms; the room's sound times are the speaker model's, which no longer wobble, and a click whose packet
# came over the speaker's buffer late has no sound time, so the bound is on bluebridge, not on the link). In the
# default set since three passes in a row (runs 11-13); `retry=1` because the mixer's underrun recovery can move
# the room by a few ms between two sinks' measurements under a host stall (FINDINGS.md, 7 Dec evening).
CAL_TOL_MS=${RIG_CAL_TOL_MS:-1}
SKEW_TOL_MS=${RIG_CAL_SKEW_MS:-2}
BUFFER_MS=500
MIC="hw:CARD=Loopback,DEV=1"
# Reported Delays, and hidden latencies (>= 250 ms: the mixer writes 120 ms ahead and packets wait in the
# emulated link for up to ~100 ms; a sample due before it arrives is lost).
DELAY_a=100; DELAY_b=60
LAT_a=${RIG_CAL_LAT_A:-$((250 + RANDOM % 120))}; LAT_b=${RIG_CAL_LAT_B:-$((250 + RANDOM % 120))}
# The two hidden errors at least 20 ms apart (a draw 4 ms apart proved little: run 11, FINDINGS.md).
while [ -z "${RIG_CAL_LAT_B:-}" ] && [ $(( (LAT_a - DELAY_a) - (LAT_b - DELAY_b) )) -gt -20 ] \
  && [ $(( (LAT_a - DELAY_a) - (LAT_b - DELAY_b) )) -lt 20 ]; do LAT_b=$((250 + RANDOM % 120)); done
SRC_a=0; SNK_a=2; SRC_b=1; SNK_b=3
A0=$(addr 0); A1=$(addr 1); A2=$(addr 2); A3=$(addr 3)
log "hidden: sink a latency $LAT_a ms, Delay $DELAY_a ms; sink b latency $LAT_b ms, Delay $DELAY_b ms"
figure hidden_latency_ms_a "$LAT_a"; figure hidden_latency_ms_b "$LAT_b"
figure hidden_error_ms_a $((LAT_a - DELAY_a)); figure hidden_error_ms_b $((LAT_b - DELAY_b))
mono() { python3 -S -c 'import time; print(time.monotonic_ns())'; }

step "the room: snd-aloop, the mixer on its playback side"
t 20 modprobe snd-aloop pcm_substreams=1 index=5 id=Loopback
check aloop $? "$(grep -i loopback /proc/asound/cards | tr -s ' ' | tr '\n' ';')"
if ! command -v bluebridge-sink-recorder > /dev/null; then
  check recorder-binary FAIL "no bluebridge-sink-recorder beside the bluebridge binary (cargo build --release builds it)"
  exit 0
fi
BLUEBRIDGE_LOG=info bluebridge-sink-recorder --mixer hw:CARD=Loopback,DEV=0 --listen /run/mix.sock \
  --mixer-period-frames 960 2> "$O/mixer.log" &
MIX=$!
wait_for 10 grep -q "mixer: t0" "$O/mixer.log"
check mixer-up $? "$(grep -E 'mixer:|rror' "$O/mixer.log" | sed 's/^.*\(INFO\|ERROR\) //' | head -3 | tr '\n' ';' | cut -c1-300)"

step "sinks on hci2 and hci3, sounding into the mixer"
mgmt 2 le off; mgmt 3 le off   # emulator fault: keep LE off on A2DP sink controllers
id=0
for x in a b; do
  eval "snk=\$SNK_$x; d=\$DELAY_$x; l=\$LAT_$x"
  BLUEBRIDGE_LOG=info bluebridge-sink-recorder --adapter "hci$snk" --seconds 400 --json "/run/recorder-$x.jsonl" \
    --delay-ms "$d" --sound-to /run/mix.sock --latency-ms "$l" --sink-id $id --packet-lines 2> "$O/recorder-$x.log" &
  eval "REC_$x=\$!"; id=$((id + 1))
  wait_for 20 grep -q "sink endpoint registered on hci$snk" "$O/recorder-$x.log"
  check "recorder-up-$x" $? "$(grep -E 'registered|rror' "$O/recorder-$x.log" | sed 's/^.*\(INFO\|ERROR\) //' | tr '\n' ';' | cut -c1-300)"
done
for x in a b; do
  eval "src=\$SRC_$x snk=\$SNK_$x"; eval "addr=\$A$snk"
  bb_pair "$src" "$snk" "$addr"
done

step "bluebridge: tone source (buffer $BUFFER_MS ms), an a2dp output per sink"
printf '[source]\nkind = "tone"\nbuffer_ms = %s\n\n[service]\ncontrol_socket = "/tmp/bb.sock"\nstate_dir = "/tmp/bb-state"\n' \
  "$BUFFER_MS" > /tmp/bb.toml
for x in a b; do
  eval "src=\$SRC_$x snk=\$SNK_$x"; eval "addr=\$A$snk"
  printf '\n[[output]]\nname = "sink-%s"\nkind = "a2dp"\naddress = "%s"\nadapter = "hci%s"\n' "$x" "$addr" "$src" >> /tmp/bb.toml
done
cp /tmp/bb.toml "$O/bb.toml"
BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 90 sh -c "[ \$(grep -c 'acquired /org/bluez' $O/bluebridge.log) -ge 2 ]"
check streaming $? "$(grep -E 'acquired|streaming:' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-400)"
sleep 10   # clicks before the calibration (the skew it must take away)

step "a phone's recording: --play-sequence recorded at 44.1 kHz (plughw resamples), --from-recording --dry-run"
# The loopback has one capture substream: the recording is made before the microphone run, not during it.
t 40 arecord -q -D plughw:CARD=Loopback,DEV=1 -f S16_LE -r 44100 -c 1 -d 19 /run/phone.wav 2> "$O/arecord.log" &
REC_PHONE=$!
sleep 1
T_SEQ0=$(mono)
bb 60 calibrate --all --play-sequence --json --socket /tmp/bb.sock > "$O/play-sequence.json"
check play-sequence $? "$(tr -d '\n ' < "$O/play-sequence.json" | cut -c1-300)"
wait "$REC_PHONE"
cp /run/phone.wav "$O/phone-44k1.wav"   # analysed at the end, when the sinks no longer load the guest

step "calibrate --all with the loopback as the microphone"
T_CAL0=$(mono)
bb 180 calibrate --all --repeat 2 --mic "$MIC" --json --socket /tmp/bb.sock > "$O/calibrate.json"
check calibrate-ran $? "$(tr -d '\n ' < "$O/calibrate.json" | cut -c1-400)"
T_CAL1=$(mono)
figure calibrate_s "$(( (T_CAL1 - T_CAL0) / 1000000000 ))"
sleep 12   # clicks after it
T_CHK0=$(mono)
bb 180 calibrate --all --check --repeat 1 --mic "$MIC" --json --socket /tmp/bb.sock > "$O/check.json"
check check-ran $? "$(tr -d '\n ' < "$O/check.json" | cut -c1-300)"
bluebridge status --json --socket /tmp/bb.sock > "$O/status.json" 2>> "$O/bluebridge.log"

step "stop"
for x in a b; do
  eval "p=\$REC_$x"
  kill -INT "$p" 2>/dev/null; wait "$p"; rc=$?
  check "recorder-$x" "$rc" "exit status $rc: $(tail -1 "$O/recorder-$x.log" | cut -c1-300)"
  cp "/run/recorder-$x.jsonl" "$O/"
done
kill -INT "$MIX" 2>/dev/null; wait "$MIX"; rc=$?
check mixer "$rc" "exit status $rc: $(tail -1 "$O/mixer.log" | cut -c1-300)"
T_FR0=$(mono)
bb 200 calibrate --all --from-recording /run/phone.wav --dry-run --json --socket /tmp/bb.sock > "$O/from-recording.json"
check from-recording-ran $? "$(tr -d '\n ' < "$O/from-recording.json" | cut -c1-300)"
figure from_recording_s "$(( ($(mono) - T_FR0) / 1000000000 ))"
bb_stop "$BB"

step "analyse: hidden vs measured, skew before and after"
python3 -S "$IN/analyze_calibrate.py" --hidden "sink-a=$((LAT_a - DELAY_a))" --hidden "sink-b=$((LAT_b - DELAY_b))" \
  --calibrate "$O/calibrate.json" --check "$O/check.json" --from-recording "$O/from-recording.json" \
  --clicks "sink-a=$O/recorder-a.jsonl" --clicks "sink-b=$O/recorder-b.jsonl" \
  --before-ns "$T_SEQ0" --after-ns "$T_CAL1" --until-ns "$T_CHK0" > "$O/calibration.txt" 2>&1
cat "$O/calibration.txt"
v() { sed -n "s/^$1=//p" "$O/calibration.txt"; }
for k in $(sed -n 's/^\([a-z_0-9-]*\)=.*/\1/p' "$O/calibration.txt"); do figure "$k" "$(v "$k")"; done
for x in a b; do
  within "$(v "recovered_err_ms_sink-$x")" "-$CAL_TOL_MS" "$CAL_TOL_MS"
  check "recovered-$x" $? "sink-$x: hidden $(v "hidden_rel_ms_sink-$x") ms (relative to the mean), measured $(v "measured_ms_sink-$x") ms, spread $(v "spread_ms_sink-$x") ms; want within +-$CAL_TOL_MS ms"
done
within "$(v skew_ms_after_max)" 0 "$SKEW_TOL_MS"
check skew-after $? "clicks of both sinks: skew before p50 $(v skew_ms_before_p50) ms, after p50 $(v skew_ms_after_p50) ms, |max| $(v skew_ms_after_max) ms over $(v skew_after_n) clicks; want <= $SKEW_TOL_MS ms"
for x in a b; do
  within "$(v "from_recording_err_ms_sink-$x")" "-$CAL_TOL_MS" "$CAL_TOL_MS"
  check "from-recording-$x" $? "sink-$x from the 44.1 kHz recording: $(v "from_recording_ms_sink-$x") ms vs hidden $(v "hidden_rel_ms_sink-$x") ms"
done
figure mixer_late "$(sed -n 's/^.* \([0-9]*\) samples late.*$/\1/p' "$O/mixer.log")"
figure mixer_underruns "$(sed -n 's/^.* \([0-9]*\) underruns.*$/\1/p' "$O/mixer.log")"
figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"
figure starved "$(grep -c 'starved for' "$O/bluebridge.log")"
for x in a b; do figure "speaker_resumes_$x" "$(grep -c 'speaker: the stream moved' "$O/recorder-$x.log")"; figure "speaker_restores_$x" "$(grep -c 'speaker: back on the schedule' "$O/recorder-$x.log")"; done
