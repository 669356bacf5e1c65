# rig: about=A2DP volume and silence: the speaker's AVRCP absolute volume follows `bluebridge set-volume` (or, when the sink offers none, the samples are scaled), and after idle_release_s of silence the stream is released and taken back when sound returns
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: timeout=420
# rig: bin=required
# rig: retry=1

# One bluebridge (hci0) to one BlueALSA A2DP sink (hci1). Both sides run the guest's bluetoothd, whose AVRCP
# plugin connects AVRCP alongside A2DP: if the sink side reports an absolute volume, BlueZ shows
# MediaTransport1.Volume on bluebridge's (source) transport, bluebridge sets it, and BlueZ's SetAbsoluteVolume
# arrives at the sink's transport. Checks:
#   volume-control     status names where the volume is applied (`speaker` with a level, or `software`)
#   volume-applied     after `set-volume speaker 50`: speaker → status and the sink's transport Volume say 64/127;
#                      software → the captured level falls by the curve's 12.4 dB (±1.5 dB)
#   volume-restored    `set-volume speaker 100`: the captured level is back within ±1.5 dB, clicks heard
#   idle-release       `disable` (digital silence) → after idle_release_s (3 s) bluebridge releases the stream:
#                      its transport goes `idle` (status keeps saying `disabled`, the user's doing)
#   idle-quiet         while idle bluebridge does not reconnect or re-acquire
#   idle-return        `enable` → re-acquired by itself, and the captured audio is the source again (clicks)
#   keep-alive         bluebridge restarted with keep_alive = true, disabled: the sink hears a 15 Hz tone at about
#                      -60 dBFS and the stream is never released
A0=$(addr 0); A1=$(addr 1)
log "bluebridge hci0=$A0; sink hci1=$A1"

step "BlueALSA A2DP sink on hci1; pair with bluebridge pair"
bluealsa -B snk -i hci1 -p a2dp-sink > "$O/bluealsa-snk.log" 2>&1 &
wait_for 20 sh -c 'bluealsa-cli list-services | grep -q org.bluealsa.snk'
check bluealsa-up $? "$(t 10 bluealsa-cli list-services | tr '\n' ' ')"
mgmt 1 le off
bb_pair 0 1 "$A1"

cat > /tmp/bb.toml <<TOML
[source]
kind = "tone"
buffer_ms = 300

[service]
control_socket = "/tmp/bb.sock"
state_dir = "/tmp/bb-state"

[[output]]
name = "speaker"
kind = "a2dp"
address = "$A1"
idle_release_s = 3
TOML
BLUEBRIDGE_LOG=info bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
acquired() { grep -c 'acquired /org/bluez' "$O/bluebridge.log"; }
plain() { sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log"; }   # the log without colours, for check details
wait_for 90 sh -c "[ \$(grep -c 'acquired /org/bluez' $O/bluebridge.log) -ge 1 ]"
check streaming $? "$(acquired) transport(s) acquired"
st() { bluebridge status --json --socket /tmp/bb.sock 2> /dev/null; }
out_field() { st | python3 -S -c 'import json,sys
o = json.load(sys.stdin)["outputs"][0]; v = o.get(sys.argv[1]); print("" if v is None else v)' "$1"; }
# The transports: bluebridge's (source) under hci0, the sink's under hci1.
transport() { busctl --system tree org.bluez 2>/dev/null | grep -o "/org/bluez/hci$1/dev_[0-9A-F_]*/[a-z0-9/]*fd[0-9]*" | head -1; }
tprop() { local p; p=$(transport "$1"); [ -n "$p" ] && t 5 busctl --system get-property org.bluez "$p" org.bluez.MediaTransport1 "$2" 2>/dev/null | awk '{ print $2 }' | tr -d '"'; }

capture() { # capture NAME SECS
  a2dp_record "$2" snk "$A0" "$1"
  python3 -S "$IN/analyze_clicks.py" "$O/sink-$1.wav" > "$O/analysis-$1.txt" 2>&1
  python3 -S "$IN/analyze_tone.py" "$O/sink-$1.wav" > "$O/tone-$1.txt" 2>&1
  figure "clicks_$1" "$(sed -n 's/^clicks=//p' "$O/analysis-$1.txt")"
  figure "rms_dbfs_$1" "$(sed -n 's/^rms_dbfs=//p' "$O/tone-$1.txt")"
}

step "volume: where it is applied, then set-volume 50"
# AVRCP connects a moment after A2DP; bluebridge looks for the property every 0.5 s.
wait_for 15 sh -c "grep -q 'offers AVRCP absolute volume' $O/bluebridge.log"
sleep 1
VC=$(out_field volume_control); DV=$(out_field device_volume)
figure volume_control "$VC"; figure device_volume_before "$DV"
figure source_transport_volume_before "$(tprop 0 Volume)"; figure sink_transport_volume_before "$(tprop 1 Volume)"
case "$VC" in speaker) [ -n "$DV" ]; r=$?;; software) [ -z "$DV" ]; r=$?;; *) r=1;; esac
check volume-control $r "status: volume_control=$VC device_volume=${DV:-none}; log: $(plain | grep -E 'absolute volume|software volume' | sed 's/^.*INFO //;s/^.*WARN //' | head -2 | tr '\n' ';')"
capture full 4
bb 10 set-volume speaker 50 --socket /tmp/bb.sock > /dev/null
sleep 2
DV2=$(out_field device_volume); SV=$(tprop 1 Volume)
figure device_volume_after "$DV2"; figure sink_transport_volume_after "$SV"
capture half 4
drop=$(awk -v a="$(sed -n 's/^rms_dbfs=//p' "$O/tone-full.txt")" -v b="$(sed -n 's/^rms_dbfs=//p' "$O/tone-half.txt")" 'BEGIN { printf "%.2f", a - b }')
figure level_drop_db "$drop"
if [ "$VC" = speaker ]; then
  # (The captured level is a figure only: whether BlueALSA's sink scales its capture by the AVRCP volume is its
  # own business; bluebridge's part is to send full-scale samples and set the level.)
  [ "$DV2" = 64 ] && [ "$SV" = 64 ]; r=$?
  check volume-applied $r "speaker: status level ${DV2:-none}/127, sink transport Volume ${SV:-none} (want 64); captured level change $drop dB"
else
  within "$drop" 10.9 13.9; r=$?
  check volume-applied $r "software: captured level fell $drop dB (want 12.4: Snapcast's curve at 50 %)"
fi

bb 10 set-volume speaker 100 --socket /tmp/bb.sock > /dev/null
sleep 2
capture restored 4
back=$(awk -v a="$(sed -n 's/^rms_dbfs=//p' "$O/tone-full.txt")" -v b="$(sed -n 's/^rms_dbfs=//p' "$O/tone-restored.txt")" 'BEGIN { printf "%.2f", a - b }')
figure level_restored_db "$back"
c=$(sed -n 's/^clicks=//p' "$O/analysis-restored.txt")
within "$back" -1.5 1.5 && within "${c:-0}" 3 5
check volume-restored $? "set-volume 100: level within $back dB of the first capture (want ±1.5), ${c:-0} clicks in 4 s; device volume $(out_field device_volume)"

step "silence: disable, idle_release_s = 3"
n=$(acquired)
bb 10 disable speaker --socket /tmp/bb.sock > /dev/null
wait_for 20 sh -c "grep -q 'releasing the speaker until sound returns' $O/bluebridge.log"
r=$?; sleep 2
S0=$(tprop 0 State); W=$(out_field state)
figure idle_transport_state "$S0"; figure idle_status "$W"
# A disabled output says `disabled` (what the user did) rather than `idle`; the release shows on BlueZ's side.
[ $r = 0 ] && [ "$S0" = idle ] && [ "$W" = disabled ]
check idle-release $? "log: $(plain | grep -E 'silence|released' | sed 's/^.*INFO //' | tail -2 | tr '\n' ';'); source transport State=$S0; status $W"
sleep 8
[ "$(acquired)" = "$n" ] && ! grep -q 'connecting to' <(sed -n '/releasing the speaker/,$p' "$O/bluebridge.log")
check idle-quiet $? "$(( $(acquired) - n )) acquisitions while idle (want 0)"

step "sound returns: enable"
bb 10 enable speaker --socket /tmp/bb.sock > /dev/null
wait_for 30 sh -c "[ \$(grep -c 'acquired /org/bluez' $O/bluebridge.log) -gt $n ]"
r=$?; sleep 2
capture back 4
c=$(sed -n 's/^clicks=//p' "$O/analysis-back.txt")
[ $r = 0 ] && within "${c:-0}" 3 5
check idle-return $? "re-acquired ($(acquired) acquisitions), ${c:-0} clicks in 4 s after, status $(out_field state)"

kill -0 $BB 2>/dev/null; check bluebridge-alive $? "no restart needed"
bb_stop "$BB"

step "keep_alive: bluebridge again with keep_alive = true; disable"
sed -i 's/^idle_release_s = 3$/keep_alive = true/' /tmp/bb.toml
rm -rf /tmp/bb-state
n=$(acquired); L=$(wc -l < "$O/bluebridge.log")
BLUEBRIDGE_LOG=info bluebridge run --config /tmp/bb.toml 2>> "$O/bluebridge.log" &
BB=$!
wait_for 90 sh -c "[ \$(grep -c 'acquired /org/bluez' $O/bluebridge.log) -gt $n ]"
check keep-alive-streaming $? "$(( $(acquired) - n )) transport(s) acquired"
bb 10 disable speaker --socket /tmp/bb.sock > /dev/null
sleep 6   # twice the idle_release_s of the first run
a2dp_record 4 snk "$A0" keepalive
# The tone is far below analyze_tone's -40 dBFS activity threshold: RMS and rising crossings (with hysteresis) of
# the left channel of the whole capture.
python3 -S - "$O/sink-keepalive.wav" > "$O/keepalive.txt" 2>&1 <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1]); rate = w.getframerate(); raw = w.readframes(w.getnframes())
left = [v for i, v in enumerate(struct.unpack('<%dh' % (len(raw) // 2), raw)) if i % 2 == 0][rate // 4:]
rms = math.sqrt(sum(v * v for v in left) / max(len(left), 1))
print('rms_dbfs=%.1f' % (20 * math.log10(rms / 32768) if rms else -120))
armed, ups = False, []
for i, v in enumerate(left):
    if v < -8: armed = True
    elif v > 8 and armed: armed = False; ups.append(i)
print('freq_hz=%.1f' % ((len(ups) - 1) * rate / (ups[-1] - ups[0]) if len(ups) > 2 else 0))
print('peak=%d' % max((abs(v) for v in left), default=0))
PY
cat "$O/keepalive.txt"
kr=$(sed -n 's/^rms_dbfs=//p' "$O/keepalive.txt"); kf=$(sed -n 's/^freq_hz=//p' "$O/keepalive.txt")
figure keepalive_rms_dbfs "$kr"; figure keepalive_freq_hz "$kf"
S0=$(tprop 0 State); figure keepalive_transport_state "$S0"
within "$kr" -66 -54 && within "$kf" 13 17 && [ "$S0" = active ] && ! tail -n +"$L" "$O/bluebridge.log" | grep -q 'releasing the speaker'
check keep-alive $? "disabled for 10 s with keep_alive: the sink hears ${kr:-?} dBFS at ${kf:-?} Hz (want -60 dBFS, 15 Hz), transport $S0 (want active, never released)"
bb_stop "$BB"
grep -E 'volume|silence|released|sound again|acquired' "$O/bluebridge.log" | sed 's/^.*\(WARN\|INFO\) //' | head -30 > "$O/volume-idle-log.txt"
