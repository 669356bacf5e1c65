# rig: about=Known-good A2DP path without bluebridge: BlueALSA source (hci0) -> BlueALSA sink (hci1), tone checked at the sink
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: timeout=240
# rig: bin=none
# rig: retry=1
# Deliberate failure for testing the rig: RIG_BREAK=sink-address plays to a wrong sink address.

FREQ=1000; SECS=5
A0=$(addr 0); A1=$(addr 1)
log "source hci0=$A0 sink hci1=$A1"

step "BlueALSA: sink on hci1, source on hci0 (before pairing, so their SDP records exist)"
bluealsa -B snk -i hci1 -p a2dp-sink > "$O/bluealsa-snk.log" 2>&1 &
bluealsa -B src -i hci0 -p a2dp-source > "$O/bluealsa-src.log" 2>&1 &
wait_for 20 sh -c 'bluealsa-cli list-services | grep -q org.bluealsa.snk && bluealsa-cli list-services | grep -q org.bluealsa.src'
check bluealsa-up $? "$(t 10 bluealsa-cli list-services | tr '\n' ' ')"

step "LE off on the sink controller (emulator fault: BR/EDR security on an LE handle)"
mgmt 1 le off

step "pair hci0 -> hci1 (BR/EDR)"
pair_bredr 0 1; rc=$?
p=$(dev_prop 0 "$A1" Paired)
check pair "$([ "$p" = true ] && echo PASS || echo FAIL)" "btmgmt pair rc=$rc; Paired=$p"

step "connect A2DP"
connect_profile 0 "$A1" "$A2DP_SINK_UUID"; rc=$?
# Both sides' PCMs, bounded: the sink's appears after the source's, seconds later on a loaded host (4 Dec, load 18:
# the source's PCM was there, the sink's not yet, and the check failed on it).
wait_for 40 sh -c "bluealsa-cli -B src list-pcms | grep -q a2dpsrc/sink && bluealsa-cli -B snk list-pcms | grep -q a2dpsnk/source"
pcm_src=$(t 10 bluealsa-cli -B src list-pcms | tr '\n' ' '); pcm_snk=$(t 10 bluealsa-cli -B snk list-pcms | tr '\n' ' ')
check a2dp-connect "$([ -n "$pcm_src" ] && [ -n "$pcm_snk" ] && echo PASS || echo FAIL)" \
  "ConnectProfile rc=$rc; source PCMs: ${pcm_src:-none}; sink PCMs: ${pcm_snk:-none}"
for p in $pcm_src; do t 10 bluealsa-cli -B src info "$p"; done > "$O/bluealsa-pcm-info.txt" 2>&1
CODEC=$(sed -n 's/^Selected codec: *//p' "$O/bluealsa-pcm-info.txt" | head -1)
# Play and record at the rate the transport was configured with: asking for another one makes BlueALSA
# reconfigure the stream, which fails now and then under TCG ("Couldn't change BlueALSA PCM configuration").
RATE=$(sed -n 's/^Sampling: *\([0-9]*\) Hz.*/\1/p' "$O/bluealsa-pcm-info.txt" | head -1); RATE=${RATE:-48000}
figure codec "${CODEC:-unknown}"; figure sample_rate "$RATE"

SINK=$A1
[ "${RIG_BREAK:-}" = sink-address ] && SINK=00:AA:01:99:99:99 && log "RIG_BREAK: playing to wrong sink $SINK"

step "play ${FREQ} Hz for ${SECS} s on the source, capture on the sink"
make_tone /tmp/tone.wav $FREQ $SECS "$RATE" 0.5
timeout -s INT -k 5 $((SECS + 25)) arecord -D "bluealsa:DEV=$A0,PROFILE=a2dp,SRV=org.bluealsa.snk" -f S16_LE -c 2 -r "$RATE" \
  "$O/sink-capture.wav" > "$O/arecord.log" 2>&1 &
AR=$!
sleep 1
t $((SECS + 20)) aplay -D "bluealsa:DEV=$SINK,PROFILE=a2dp,SRV=org.bluealsa.src" /tmp/tone.wav > "$O/aplay.log" 2>&1; rc=$?
check play "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "aplay rc=$rc $(tail -1 "$O/aplay.log")"
sleep 1.5   # what is still in flight
kill -INT $AR 2>/dev/null; wait $AR

step "analyse the capture"
analyze_tone "$O/sink-capture.wav" | tee "$O/analysis.txt"
val() { sed -n "s/^$1=//p" "$O/analysis.txt"; }
f=$(val freq_hz); rms=$(val rms_dbfs); act=$(val active_s); tot=$(val total_s)
figure freq_hz "${f:-0}"; figure rms_dbfs "${rms:-0}"; figure captured_s "${act:-0}"; figure capture_file_s "${tot:-0}"
within "$act" $((SECS - 1)) $((SECS + 2)); check captured $? "tone present for ${act:-0} s of ${tot:-0} s captured (want $((SECS - 1))..$((SECS + 2)) s)"
within "$f" "$(awk "BEGIN{print $FREQ*0.99}")" "$(awk "BEGIN{print $FREQ*1.01}")"; check frequency $? "measured ${f:-none} Hz, want $FREQ Hz ±1%"
within "$rms" -16 -3; check level $? "RMS ${rms:-none} dBFS, want -16..-3 (sent -9 dBFS)"
