# rig: about=`capture` source: the test signal played into an snd-aloop loopback (a second bluebridge, `local` output) is captured by bluebridge and sent over A2DP to a recording sink: clicks arrive and correlate; capture -> sink latency = buffer_ms + Delay within 5 ms
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: timeout=300
# rig: bin=required
# rig: retry=1
# rig: figures=timing-*,audio-all

# The feeder (bluebridge "feed": tone source, buffer FEED_MS, a `local` output into loopback playback device 0)
# plays the test signal with its clicks at known times: `local-audio` shows that output within 2 ms of play time.
# bluebridge "bridge" runs `[source] kind = "capture"` on loopback capture device 1 with buffer CAPTURE_MS and
# one a2dp output (hci0) to bluebridge-sink-recorder (hci1, Delay 150 ms). A click the feeder plays at P is
# captured at P, so it must reach the sink at P + CAPTURE_MS - Delay: analyze_timing.py with the feeder's tone
# origin and buffer FEED_MS + CAPTURE_MS. Gated: the capture device opened, clicks arrive (every second), the audio
# is the test signal (analyze_clicks.py on the decoded WAV: at least a third of the one-second segments correlate > 0.9;
# a broken capture path gives 0 of 25, as the first least-squares clock fit did), both exit cleanly. Figures: the
# timing, and `audio-all` (all but 3 segments good): in the CI run of 6 Dec it failed twice (25 and 24 of 29)
# because about 20 s in, the feeder's own output resyncs by ~50 ms and the bridge follows; under investigation. Figures (TCG timing):
# |p95| and mean of the stream time's error within TOL_MS (the issue's 5 ms; a2dp-timing measured its stream time
# within 2 ms of play time - Delay on a quiet host).
TOL_MS=${RIG_CAPTURE_TOL_MS:-5}
SECS=30
FEED_MS=300
# The feeder is the instrument, not what is tested: a deep device buffer (6 periods of 20 ms) so that a guest stall
# does not make it xrun (with 40 ms it xran 9 times in 30 s and resynced by up to 73 ms, 6 Dec).
FEED_DEV_MS=120
CAPTURE_MS=400
DELAY_MS=150
# Both devices run 20 ms periods: 10 ms ones underrun under TCG (see local-audio).
A0=$(addr 0); A1=$(addr 1)

step "snd-aloop and the recording sink on hci1"
t 20 modprobe snd-aloop pcm_substreams=1 index=5 id=Loopback
check aloop $? "$(grep -i loopback /proc/asound/cards | tr -s ' ' | tr '\n' ';')"
if ! command -v bluebridge-sink-recorder > /dev/null; then
  check recorder-binary FAIL "no bluebridge-sink-recorder beside the bluebridge binary (cargo build --release builds it)"
  exit 0
fi
mgmt 1 le off   # emulator fault: keep LE off on A2DP sink controllers
BLUEBRIDGE_LOG=info bluebridge-sink-recorder --adapter hci1 --seconds $SECS --json /run/recorder.jsonl \
  --delay-ms $DELAY_MS --wav /run/recorder.wav 2> "$O/recorder.log" &
REC=$!
wait_for 20 grep -q "sink endpoint registered on hci1" "$O/recorder.log"
check recorder-up $? "$(grep -E 'registered|rror' "$O/recorder.log" | sed 's/^.*\(INFO\|ERROR\) //' | tr '\n' ';' | cut -c1-300)"
bb_pair 0 1 "$A1"

step "feeder: tone (buffer $FEED_MS ms) into the loopback"
printf '[source]\nkind = "tone"\nbuffer_ms = %s\n\n[service]\ncontrol_socket = "/tmp/feed.sock"\nstate_dir = "/tmp/feed-state"\n\n[[output]]\nname = "loop"\nkind = "local"\ndevice = "hw:CARD=Loopback,DEV=0"\nperiod_ms = 20\nbuffer_ms = %s\n' \
  "$FEED_MS" "$FEED_DEV_MS" > /tmp/feed.toml
BLUEBRIDGE_LOG=info bluebridge run --config /tmp/feed.toml 2> "$O/feeder.log" &
FEED=$!
wait_for 30 grep -q "sound device .* open" "$O/feeder.log"
check feeder-open $? "$(grep -E 'sound device|rror' "$O/feeder.log" | sed 's/^.*INFO //' | head -3 | tr '\n' ';' | cut -c1-300)"

step "bridge: capture source (buffer $CAPTURE_MS ms) -> a2dp to hci1"
printf '[source]\nkind = "capture"\ndevice = "hw:CARD=Loopback,DEV=1"\nperiod_ms = 20\nbuffer_ms = %s\n\n[service]\ncontrol_socket = "/tmp/bb.sock"\nstate_dir = "/tmp/bb-state"\n\n[[output]]\nname = "speaker"\nkind = "a2dp"\naddress = "%s"\nadapter = "hci0"\n' \
  "$CAPTURE_MS" "$A1" > /tmp/bb.toml
cp /tmp/bb.toml "$O/bb.toml"
BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 20 grep -q "capture source: .* open" "$O/bluebridge.log"
check capture-open $? "$(grep -E 'capture source|rror' "$O/bluebridge.log" | sed 's/^.*INFO //' | head -3 | tr '\n' ';' | cut -c1-300)"
wait_for 90 grep -q 'acquired /org/bluez' "$O/bluebridge.log"
check streaming $? "$(grep -E 'acquired|streaming:' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-300)"

step "record $SECS s at the sink"
wait_for $((SECS + 60)) sh -c "! kill -0 $REC 2>/dev/null"
kill -INT "$REC" 2>/dev/null; wait "$REC"; rc=$?
check recorder "$rc" "exit status $rc: $(tail -1 "$O/recorder.log" | cut -c1-300)"
cp /run/recorder.* "$O/"
bluebridge status --json --socket /tmp/bb.sock > "$O/status.json" 2>> "$O/bluebridge.log"
bluebridge status --json --socket /tmp/feed.sock > "$O/feeder-status.json" 2>> "$O/feeder.log"
for p in "$BB" "$FEED"; do
  kill -TERM "$p"; t 10 sh -c "while kill -0 $p 2>/dev/null; do sleep 0.2; done"; wait "$p"; rc=$?
  check "clean-exit-$([ "$p" = "$BB" ] && echo bridge || echo feeder)" "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "exit status $rc"
done

step "analyse: click at the sink vs the feeder's play time + capture buffer - Delay"
python3 -S "$IN/analyze_timing.py" --log "$O/feeder.log" --buffer-ms $((FEED_MS + CAPTURE_MS)) --tolerance-ms "$TOL_MS" \
  "sink=$O/recorder.jsonl" > "$O/timing.txt" 2>&1
cat "$O/timing.txt"
v() { sed -n "s/^$1=//p" "$O/timing.txt"; }
for k in clicks steady stream_err_ms_p50 stream_err_ms_p95 stream_err_ms_max stream_err_ms_mean err_ms_p50 err_ms_p95; do
  figure "${k}" "$(v "${k}_sink")"
done
within "$(v clicks_sink)" $((SECS - 2)) $((SECS + 1))
check clicks "$?" "$(v clicks_sink) clicks at the sink in $SECS s (want $((SECS - 2))-$((SECS + 1)))"
within "$(v stream_err_ms_p95_sink)" 0 "$TOL_MS"
check timing-latency $? "stream time - (feeder's play time + $CAPTURE_MS ms - Delay $DELAY_MS ms): |p50| $(v stream_err_ms_p50_sink) ms, |p95| $(v stream_err_ms_p95_sink) ms, want <= $TOL_MS ms"
within "$(v stream_err_ms_mean_sink)" "-$TOL_MS" "$TOL_MS"
check timing-mean $? "mean stream error $(v stream_err_ms_mean_sink) ms, want within +-$TOL_MS ms"
python3 -S "$IN/analyze_clicks.py" "$O/recorder.wav" > "$O/analysis.txt" 2>&1
c() { sed -n "s/^$1=//p" "$O/analysis.txt"; }
figure correlation "$(c correlation)"; figure segments_good "$(c segments_good)/$(c segments)"; figure gaps "$(c gaps)"
# Gated: the content is the test signal. The figure `audio-all`: every second but 3 is clean (a feeder resync and
# the bridge's after it spoil 4-6; see the header).
within "$(c segments_good)" "$(( ($(c segments) + 2) / 3 ))" 99
check audio "$?" "$(c segments_good) of $(c segments) one-second segments correlate > 0.9 with the test signal (want at least a third; whole $(c correlation)), $(c gaps) silent gaps"
within "$(c segments_good)" "$(( $(c segments) - 3 ))" 99
check audio-all "$?" "$(c segments_good) of $(c segments) one-second segments correlate > 0.9 (want all but 3)"
figure capture_ppm "$(python3 -S -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["outputs"][0]["drift_estimate_ppm"])' "$O/status.json" 2>/dev/null || echo nan)"
# The bridge's capture counters (status source.counters): overruns, dropped callbacks, gaps and clock restarts in
# the run. Figures, not gated: they say whether an A2DP resync in the run followed a capture-clock restart.
for k in xruns dropped_callbacks gaps clock_restarts reopens; do
  figure "capture_$k" "$(python3 -S -c 'import json,sys; print(json.load(open(sys.argv[1]))["source"]["counters"].get(sys.argv[2], "nan"))' "$O/status.json" "$k" 2>/dev/null || echo nan)"
done
figure bridge_resyncs "$(python3 -S -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"][0]["resyncs"])' "$O/status.json" 2>/dev/null || echo nan)"
