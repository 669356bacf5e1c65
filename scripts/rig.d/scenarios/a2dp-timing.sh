# rig: about=A2DP timing at the sink: two recording sinks (hci2 150 ms then 250/100 ms, hci3 80 ms) timestamp each click; arrival = play time - reported Delay; Delay changes followed without restart
# rig: controllers=4
# rig: bluetoothd=-E -K
# rig: timeout=420
# rig: bin=required
# rig: figures=timing-*,arrival-*,delay-followed
# rig: retry=1

# bluebridge (hci0, hci1) plays the test signal to two bluebridge-sink-recorder sinks (hci2, hci3): A2DP SBC sink
# endpoints registered through this same bluetoothd, which report a Delay (MediaTransport1.Delay -> AVDTP
# DelayReport) and stamp each packet with the kernel's receive time. For every click, analyze_timing.py compares
# its time at the sink with play time - Delay (SBC's codec delay cancels: bluebridge sends it ahead, the decoder
# adds it back). Two times per click: its packet's arrival, and its stream time (the lower envelope of arrivals
# within 1 s around it: the schedule bluebridge sent on, which a speaker playing from its buffer follows, without
# the waits of single packets in queues on the way).
#
# Tolerance, from measured runs (scripts/rig.d/README.md): on a quiet host the stream time is within 2 ms of play
# time - Delay (|p95| 1.9-2.1 ms, mean -0.9..-1.8 ms: bluebridge sends within half a 5 ms tick of due), and half the
# packets arrive within 2-5 ms (the rest wait in the emulated link: btvirt is a user-space process under TCG;
# p95 7-37 ms, single waits up to 180 ms, up to 650 ms when the host is loaded). TOL_MS = 15 ms bounds |p95| of
# the stream error and |p50| of the packet arrival: several times what was measured (the 5 ms engine tick, a
# few ms of transit, TCG), yet a bluebridge that ignores the Delay (80-150 ms off here) or runs 50 ms off fails
# every click. MEAN_MS bounds a systematic offset of the stream time. A Delay change must be followed within
# SETTLE_S (measured 0.4-1.2 s: 0.5 s poll, one resync, clicks once per second).
TOL_MS=${RIG_TIMING_TOL_MS:-15}
MEAN_MS=${RIG_TIMING_MEAN_MS:-5}
SETTLE_S=${RIG_TIMING_SETTLE_S:-3}
SECS=32                                 # recorded per sink, from its first packet
BUFFER_MS=500                           # > largest Delay (250 ms) + codec + bluebridge's 40 ms queue
SINKS=${RIG_TIMING_SINKS:-a b}          # "a" alone halves the guest's load (one stream) when the host is busy
# sink NAME: bluebridge's adapter, the sink's adapter, the recorder's Delay schedule
# a: 150 ms, 250 ms from 10 s on (bluebridge must skip ahead), 100 ms from 20 s on (it must wait).
# b also writes what it decodes as a WAV for analyze_clicks.py (content, continuity); a decodes only the frames
# around clicks, which costs the emulated CPU a fiftieth (its audio has a resync at each Delay change anyway).
SRC_a=0; SNK_a=2; DELAYS_a="--delay-ms 150 --delay-change 10:250 --delay-change 20:100"
SRC_b=1; SNK_b=3; DELAYS_b="--delay-ms 80 --wav /run/recorder-b.wav"
A0=$(addr 0); A1=$(addr 1); A2=$(addr 2); A3=$(addr 3)
log "bluebridge adapters hci0=$A0 hci1=$A1; recording sinks hci2=$A2 hci3=$A3; sinks: $SINKS"

step "recording sinks on hci2 and hci3 (bluebridge-sink-recorder)"
if ! command -v bluebridge-sink-recorder > /dev/null; then
  check recorder-binary FAIL "no bluebridge-sink-recorder beside the bluebridge binary (cargo build --release builds it)"
  exit 0
fi
mgmt 2 le off; mgmt 3 le off   # emulator fault: keep LE off on A2DP sink controllers
for x in $SINKS; do
  eval "snk=\$SNK_$x; delays=\$DELAYS_$x"
  # shellcheck disable=SC2086
  # Journal and WAV go to tmpfs while recording (writes over 9p are slow under TCG) and are copied to $O after.
  BLUEBRIDGE_LOG=info bluebridge-sink-recorder --adapter "hci$snk" --seconds $SECS --json "/run/recorder-$x.jsonl" \
    --packet-lines $delays 2> "$O/recorder-$x.log" &
  eval "REC_$x=\$!"
  wait_for 20 grep -q "sink endpoint registered on hci$snk" "$O/recorder-$x.log"
  check "recorder-up-$x" $? "$(grep -E 'registered|rror' "$O/recorder-$x.log" | sed 's/^.*\(INFO\|ERROR\) //' | tr '\n' ';' | cut -c1-300)"
done

step "pair: bluebridge pair (headless agent) towards each recording sink"
for x in $SINKS; do
  eval "src=\$SRC_$x snk=\$SNK_$x"; eval "addr=\$A$snk"
  bb_pair "$src" "$snk" "$addr"
done

step "run bluebridge: tone source (buffer ${BUFFER_MS} ms), one a2dp output per sink, each on its own adapter"
printf '[source]\nkind = "tone"\nbuffer_ms = %s\n' "$BUFFER_MS" > /tmp/bb.toml
n_sinks=0
for x in $SINKS; do
  eval "src=\$SRC_$x snk=\$SNK_$x"; eval "addr=\$A$snk"
  printf '\n[[output]]\nname = "sink-%s"\nkind = "a2dp"\naddress = "%s"\nadapter = "hci%s"\n' "$x" "$addr" "$src" >> /tmp/bb.toml
  n_sinks=$((n_sinks + 1))
done
# Guest stall monitor (wakeup.py): tells the host's stalls of the whole VM from bluebridge's own.
python3 -S "$IN/wakeup.py" "$O/wakeup.txt" 20 & WAKE=$!
BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
acquired() { grep -c 'acquired /org/bluez' "$O/bluebridge.log"; }
wait_for 90 sh -c "[ \$(grep -c 'acquired /org/bluez' $O/bluebridge.log) -ge $n_sinks ]"
check streaming $? "$(grep -E 'acquired|streaming:' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-400)"
n_acq=$(acquired)

step "record ${SECS} s on each sink (sink a changes its Delay at 10 s and 20 s)"
(sleep 12; top -H -b -n 2 -d 4 -w 200 > "$O/top.txt" 2>&1) &   # where the guest's CPU goes, for a failed run
recorders_done() { local x p; for x in $SINKS; do eval "p=\$REC_$x"; kill -0 "$p" 2>/dev/null && return 1; done; return 0; }
wait_for $((SECS + 60)) recorders_done
for n in $SINKS; do
  eval "p=\$REC_$n"
  kill -INT "$p" 2>/dev/null; wait "$p"; rc=$?
  check "recorder-$n" "$rc" "exit status $rc: $(tail -1 "$O/recorder-$n.log" | cut -c1-300)"
  cp /run/recorder-"$n".* "$O/"
done
kill -0 $BB 2>/dev/null
check bluebridge-alive $? "bluebridge still running (one process throughout)"
# Following a Delay change needs no new stream: no acquisition after the first two, and the log says why it moved.
within "$(acquired)" "$(( n_acq < n_sinks ? n_sinks : n_acq ))" "$n_acq"
check delay-no-restart $? "$(acquired) transport acquisitions ($n_acq before the changes); $(grep -c 're-synchronising' "$O/bluebridge.log") resyncs"
followed=$(grep '"sink-a"' "$O/bluebridge.log" | grep -c 'speaker reports delay Some(\(2500\|1000\))')
within "$followed" 2 99
check delay-logged $? "$(grep 'speaker reports delay' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-400)"

# bluebridge's CPU over its life, % of one vCPU (100: one vCPU busy all along: it needs more than the guest has)
figure bluebridge_cpu_pct "$(awk -v up="$(cut -d' ' -f1 /proc/uptime)" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) / (up - $20 / 100) }' /proc/$BB/stat 2>/dev/null)"
step "stop bluebridge (SIGTERM)"
bb_stop "$BB"
figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"

kill -TERM $WAKE 2>/dev/null; wait $WAKE
for k in late_ms_p99 late_ms_max over_50ms over_200ms stalled_ms_total work_ms_p50 work_ms_p90; do figure "guest_wakeup_$k" "$(sed -n "s/^$k=//p" "$O/wakeup.txt")"; done
figure starved "$(grep -c 'starved for' "$O/bluebridge.log")"
figure link_dropped "$(grep -c 'link congested:' "$O/bluebridge.log")"
step "analyse: time at the sink vs play time - Delay (tolerance ${TOL_MS} ms)"
# shellcheck disable=SC2046
python3 -S "$IN/analyze_timing.py" --log "$O/bluebridge.log" --buffer-ms $BUFFER_MS --tolerance-ms "$TOL_MS" \
  $(for x in $SINKS; do echo "$x=$O/recorder-$x.jsonl"; done) > "$O/timing.txt" 2>&1
cat "$O/timing.txt"
v() { sed -n "s/^$1=//p" "$O/timing.txt"; }
for x in $SINKS; do
  for k in clicks steady transition stream_err_ms_p50 stream_err_ms_p95 stream_err_ms_max stream_err_ms_mean \
           err_ms_p50 err_ms_p95 err_ms_max err_ms_mean queue_ms_p50 queue_ms_p95 queue_ms_max within_tol settle_s_max; do
    figure "${k}_$x" "$(v "${k}_$x")"
  done
  # clicks-NAME gates on what the sink received: a click every second of the recording, and at least half of them
  # at the Delay in force (a bluebridge that ignores the Delay has none there on sink b and none after the changes
  # on sink a). How many clicks it took to follow each change is timing under TCG: on a loaded host the first
  # attempt of 4 Dec had all 32 clicks at sink a but 6 in transition (24 steady), hence `timing-steady-NAME` (a
  # figure check, `timing-*`) for the former bound of at most 6 clicks off the Delay in force.
  within "$(v "clicks_$x")" $((SECS - 2)) $((SECS + 1)) && within "$(v "steady_$x")" $((SECS / 2)) $((SECS + 1))
  check "clicks-$x" $? "$(v "clicks_$x") clicks received in $SECS s (want $((SECS - 2))-$((SECS + 1))), $(v "steady_$x") of them at the Delay in force (want >= $((SECS / 2))), $(v "transition_$x") in transition"
  within "$(v "steady_$x")" $((SECS - 6)) $((SECS + 1))
  check "timing-steady-$x" $? "$(v "steady_$x") clicks at the Delay in force of $(v "clicks_$x") ($(v "transition_$x") in transition), want >= $((SECS - 6))"
  within "$(v "stream_err_ms_p95_$x")" 0 "$TOL_MS"
  check "timing-$x" $? "stream time - (play time - Delay): |p50| $(v "stream_err_ms_p50_$x") ms, |p95| $(v "stream_err_ms_p95_$x") ms (max $(v "stream_err_ms_max_$x")), want p95 <= $TOL_MS ms; $(grep -c 'starved for' "$O/bluebridge.log") stalls in bluebridge.log"
  within "$(v "stream_err_ms_mean_$x")" "-$MEAN_MS" "$MEAN_MS"
  check "timing-mean-$x" $? "mean stream error $(v "stream_err_ms_mean_$x") ms, want within +-$MEAN_MS ms"
  within "$(v "err_ms_p50_$x")" 0 "$TOL_MS"
  check "arrival-$x" $? "packet arrival - (play time - Delay): |p50| $(v "err_ms_p50_$x") ms, want <= $TOL_MS ms (p95 $(v "err_ms_p95_$x"), max $(v "err_ms_max_$x"): waits in queues, $(v "queue_ms_p95_$x") ms p95)"
  m=$(sed -n 's/.*"seq_gaps":\([0-9]*\).*/\1/p' "$O/recorder-$x.jsonl" | tail -1)
  figure "seq_gaps_$x" "${m:-none}"
done
for s in 1 2 3; do figure "seg${s}_settle_s_a" "$(v "seg${s}_settle_s_a")"; figure "seg${s}_stream_err_ms_p95_a" "$(v "seg${s}_stream_err_ms_p95_a")"; done
within "$(v settle_s_max_a)" 0 "$SETTLE_S"
check delay-followed $? "sink a: arrivals follow 150 -> 250 ms after $(v seg2_settle_s_a) s and 250 -> 100 ms after $(v seg3_settle_s_a) s (want <= $SETTLE_S s); stream error p95 after settling $(v seg2_stream_err_ms_p95_a) / $(v seg3_stream_err_ms_p95_a) ms"
[ -n "$(v skew_ms_p50)" ] && { figure skew_ms_p50 "$(v skew_ms_p50)"; figure skew_ms_p95 "$(v skew_ms_p95)"; figure skew_ms_max "$(v skew_ms_max)"; }

step "audio at the sinks (decoded by the recorders that wrote a WAV)"
for x in $SINKS; do
  [ -f "$O/recorder-$x.wav" ] || continue
  python3 -S "$IN/analyze_clicks.py" "$O/recorder-$x.wav" > "$O/analysis-$x.txt" 2>&1
  c() { sed -n "s/^$1=//p" "$O/analysis-$x.txt"; }
  figure "correlation_$x" "$(c correlation)"; figure "segments_good_$x" "$(c segments_good)/$(c segments)"
  figure "gaps_$x" "$(c gaps)"
  # One spoiled second is tolerated for a TCG stall of the whole VM.
  within "$(c segments_good)" "$(( $(c segments) - 1 ))" 99
  check "audio-$x" $? "$(c segments_good) of $(c segments) one-second segments correlate > 0.9 with the source (whole $(c correlation)), $(c gaps) silent gaps"
done
