# rig: about=bluebridge streams the test signal over two adapters of its own (hci0, hci1) to two BlueALSA A2DP sinks (hci2, hci3)
# rig: controllers=4
# rig: bluetoothd=-E -K
# rig: timeout=420
# rig: bin=required
# rig: retry=1
# rig: default=no

SECS=8
A0=$(addr 0); A1=$(addr 1); A2=$(addr 2); A3=$(addr 3)
log "bluebridge adapters hci0=$A0 hci1=$A1; sinks hci2=$A2 hci3=$A3"

step "BlueALSA A2DP sinks on hci2 and hci3 (third-party receivers)"
bluealsa -B snk -i hci2 -i hci3 -p a2dp-sink > "$O/bluealsa-snk.log" 2>&1 &
wait_for 20 sh -c 'bluealsa-cli list-services | grep -q org.bluealsa.snk'
check bluealsa-up $? "$(t 10 bluealsa-cli list-services | tr '\n' ' ')"
mgmt 2 le off; mgmt 3 le off   # emulator fault: keep LE off on A2DP sink controllers

step "pair: bluebridge pair (headless agent) hci0 -> hci2, hci1 -> hci3"
bb_pair 0 2 "$A2"; bb_pair 1 3 "$A3"

step "run bluebridge: tone source, two a2dp outputs pinned to hci0 and hci1"
cat > /tmp/bb.toml <<TOML
[source]
kind = "tone"
buffer_ms = 300

[[output]]
name = "speaker-a"
kind = "a2dp"
address = "$A2"
adapter = "hci0"

[[output]]
name = "speaker-b"
kind = "a2dp"
address = "$A3"
adapter = "hci1"
TOML
# Guest stall monitor (wakeup.py): tells the host's stalls of the whole VM from bluebridge's own.
python3 -S "$IN/wakeup.py" "$O/wakeup.txt" 20 & WAKE=$!
BLUEBRIDGE_LOG=info,bluebridge=debug bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 90 sh -c "[ \$(grep -c 'acquired /org/bluez' $O/bluebridge.log) -ge 2 ]"
check both-streaming $? "$(grep -E 'acquired|streaming:|SelectConfiguration' "$O/bluebridge.log" | sed 's/^.*INFO //' | tr '\n' ';' | cut -c1-500)"

step "capture ${SECS} s on each sink"
for s in "0 a" "1 b"; do
  set -- $s
  timeout -s INT -k 5 $((SECS + 20)) arecord -D "bluealsa:DEV=$(addr "$1"),PROFILE=a2dp,SRV=org.bluealsa.snk" \
    -f S16_LE -c 2 -r 48000 -d $SECS "$O/sink-$2.wav" > "$O/arecord-$2.log" 2>&1 &
  eval "AR_$2=\$!"
done
wait "$AR_a"; wait "$AR_b"
kill -0 $BB 2>/dev/null
check bluebridge-alive $? "bluebridge still running after streaming"

# bluebridge's CPU over its life, % of one vCPU (100: one vCPU busy all along: it needs more than the guest has)
figure bluebridge_cpu_pct "$(awk -v up="$(cut -d' ' -f1 /proc/uptime)" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) / (up - $20 / 100) }' /proc/$BB/stat 2>/dev/null)"
step "stop bluebridge (SIGTERM)"
kill -TERM $BB; t 10 sh -c "while kill -0 $BB 2>/dev/null; do sleep 0.2; done"; wait $BB; rc=$?
check clean-exit "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "exit status $rc"

kill -TERM $WAKE 2>/dev/null; wait $WAKE
for k in late_ms_p99 late_ms_max over_50ms over_200ms stalled_ms_total work_ms_p50 work_ms_p90; do figure "guest_wakeup_$k" "$(sed -n "s/^$k=//p" "$O/wakeup.txt")"; done
figure starved "$(grep -c 'starved for' "$O/bluebridge.log")"
figure link_dropped "$(grep -c 'link congested:' "$O/bluebridge.log")"
figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"
step "analyse the captures"
for x in a b; do
  python3 -S "$IN/analyze_clicks.py" "$O/sink-$x.wav" > "$O/analysis-$x.txt" 2>&1
  cat "$O/analysis-$x.txt"
  v() { sed -n "s/^$1=//p" "$O/analysis-$x.txt"; }
  figure "clicks_$x" "$(v clicks)"; figure "correlation_$x" "$(v correlation)"; figure "gaps_$x" "$(v gaps)"
  figure "spacing_err_us_max_$x" "$(v spacing_err_us_max)"
  within "$(v clicks)" $((SECS - 2)) $((SECS + 1)); check "clicks-$x" $? "$(v clicks) clicks in ${SECS} s"
  figure "segments_good_$x" "$(v segments_good)/$(v segments)"; figure "segment_corr_min_$x" "$(v segment_corr_min)"
  # Every second of audio (click to click) must match the source; one spoiled second is tolerated because the
  # emulator under TCG can stall the whole VM for a few hundred ms (see resyncs in bluebridge.log).
  within "$(v segments_good)" "$(( $(v segments) - 1 ))" 99; check "correlation-$x" $? \
    "$(v segments_good) of $(v segments) one-second segments correlate > 0.9 with the source (whole capture $(v correlation))"
  within "$(v gaps)" 0 0; check "no-gaps-$x" $? "$(v gaps) silent gaps > 10 ms"
done
