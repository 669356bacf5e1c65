# rig: about=bluebridge streams the test signal over two adapters of its own (hci0, hci1) to two BlueALSA A2DP sinks (hci2, hci3)
# rig: controllers=4
# rig: bluetoothd=-E -K
# rig: timeout=420
# rig: bin=required
# rig: figures=no-gaps-*
# rig: retry=1

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
a2dp_capture "$SECS" "$BB" snk:0:a snk:1:b

# bluebridge's CPU over its life, % of one vCPU (100: one vCPU busy all along: it needs more than the guest has)
figure bluebridge_cpu_pct "$(awk -v up="$(cut -d' ' -f1 /proc/uptime)" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) / (up - $20 / 100) }' /proc/$BB/stat 2>/dev/null)"
step "stop bluebridge (SIGTERM)"
bb_stop "$BB"

kill -TERM $WAKE 2>/dev/null; wait $WAKE
for k in late_ms_p99 late_ms_max over_50ms over_200ms stalled_ms_total work_ms_p50 work_ms_p90; do figure "guest_wakeup_$k" "$(sed -n "s/^$k=//p" "$O/wakeup.txt")"; done
figure starved "$(grep -c 'starved for' "$O/bluebridge.log")"
figure link_dropped "$(grep -c 'link congested:' "$O/bluebridge.log")"
figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"
step "analyse the captures"
a2dp_judge "$SECS" a b
