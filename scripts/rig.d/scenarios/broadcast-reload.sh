# rig: about=a config reload removes the broadcast (the sink on hci1 loses the BIG: its ISO data stops; hci0 terminates the BIG and removes its advertising set) and a second reload adds it back (a sink on hci2 syncs again, decodes, correlates with the source); one bluebridge process throughout
# rig: controllers=3
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: timeout=360
# rig: bin=required
# rig: figures=received-before,received-again,no-gaps-before,no-gaps-again
# rig: retry=1

# The rig's proof that a broadcast output's control task ends with its output (issue 17): before the fix a reload
# that removed a broadcast left its BIG (and its D-Bus connection) running. What is judged is what the sink side
# sees, with bounded waits whose times are figures:
#   reload-removed     `bluebridge reload` (the same path as SIGHUP) says the output was removed; status lists it no more
#   sink-lost-big      the sink's capture (isotest on hci1) stops growing within LOST_S of the reload (figure
#                      sink_lost_s, an upper bound; iso_last_s: btmon's last ISO packet on hci1 after the reload)
#   big-terminated     btmon: hci0's host sent LE Terminate BIG after the reload, waited for up to LOST_S (figure
#                      big_terminated_s): what a leaked control task never let BlueZ do (its BIG stayed up, silent)
#   adv-set-removed    btmon: hci0's host removed the broadcast's advertising set (figure adv_set_removed_s)
#   reload-added, big-up-again, sink-synced-again: the second reload brings the BIG back and a new sink syncs
#                      (figure sink_synced_again_s: reload -> first SDU)
#   *-again            the audio the new sink received decodes, is the 440 Hz tone with a click a second, and every
#                      one-second segment but one correlates with the source (as in `broadcast`)
# Emulator limits worked around (scripts/rig.d/README.md): sid's btvirt crashes when the broadcaster removes its
# advertising set while a sink is still synced to its periodic advertising, and BlueZ removes the set before it
# terminates the BIG; so the sink ends its PA sync first (pa_terminate.py, raw HCI: after BIG sync a receiver no
# longer needs it; check pa-sync-ended, and big-kept-without-pa that the BIS keeps coming), and once its data has
# stopped it is stopped and powered off at once, before BlueZ removes the set. btvirt delivers a BIS to one synced
# sink only: the second phase listens on hci2.
SECS=${RIG_BCAST_SECS:-10}
LOST_S=${RIG_RELOAD_LOST_S:-15}
bis_preset 48_2_1
A0=$(addr 0)
log "broadcast source hci0=$A0; sinks hci1, hci2"
uptime_s() { cut -d' ' -f1 /proc/uptime; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
size() { stat -c%s "$1" 2> /dev/null || echo 0; }
st() { bluebridge status --json --socket /tmp/bb.sock 2>> "$O/bluebridge.log"; }

# The output that stays is a `file` output on tmpfs (a `sim` speaker re-synchronises every few tens of ms under TCG:
# log and CPU the broadcast needs).
step "run bluebridge: tone source, a file output that stays, one broadcast output on hci0"
bb_broadcast_start 0 channels=stereo extra='[[output]]
name = "stays"
kind = "file"
path = "/run/stays.raw"'
cp /tmp/bb.toml "$O/bb-with.toml"
# The same config without the broadcast output (everything up to its [[output]]).
awk '/^name = "auracast"/ { exit } { print }' "$O/bb-with.toml" | sed '$d' > "$O/bb-without.toml"
grep -q auracast "$O/bb-without.toml"; [ $? -ne 0 ] && grep -q '"stays"' "$O/bb-without.toml"
check config-without $? "$(grep -c '^\[\[output\]\]' "$O/bb-without.toml") output(s) left: $(grep '^name' "$O/bb-without.toml" | tr '\n' ' ')"

step "sink on hci1 (isotest) syncs to the BIG and receives BIS 1"
iso_sink_join 1 "$A0" /tmp/bis-rx-before.bin; rc=$?
SINK1=$ISO_SINK_PID
check sink-synced $rc "try $ISO_SINK_TRIES: $(grep -v '^$' "$O/isotest-hci1.log" | tail -3 | tr '\n' ';')"
figure sink_tries "$ISO_SINK_TRIES"
st > "$O/status-before.json"
sleep 5

step "the sink ends its periodic-advertising sync (emulator limit), the BIS keeps coming"
python3 -S "$IN/pa_terminate.py" "$BTSNOOP" 1 > "$O/pa-terminate-hci1.txt" 2>&1
cat "$O/pa-terminate-hci1.txt"
grep -q 'status=0x00' "$O/pa-terminate-hci1.txt"
check pa-sync-ended $? "$(tr '\n' ' ' < "$O/pa-terminate-hci1.txt")"
s0=$(size /tmp/bis-rx-before.bin); sleep 2; s1=$(size /tmp/bis-rx-before.bin)
[ "$s1" -gt "$s0" ]
check big-kept-without-pa $? "the sink's capture grew from $s0 to $s1 bytes in 2 s after the PA sync ended"

step "reload without the broadcast output: the sink must lose the BIG"
cp "$O/bb-without.toml" /tmp/bb.toml
last=$(size /tmp/bis-rx-before.bin)
T_REMOVE=$(date +%s.%N); U_REMOVE=$(uptime_s)
t 30 bluebridge reload --socket /tmp/bb.sock > "$O/reload-remove.txt" 2>&1; rc=$?
U_POLL=$(uptime_s)
# Bounded wait: the capture has stopped when it has not grown for 1 s; LOST_S after the reload at most. Polled from
# the reload's return on, so sink_lost_s (the reload -> the last poll that saw it grow) is an upper bound; btmon's last ISO
# packet on hci1 (iso_last_s, below) is the exact time. Then the sink goes away at once: sid's btvirt crashes when
# the broadcaster removes its advertising set while a sink is still synced (seen 4 Dec in this scenario with the BIG
# sync up and the PA sync ended: hci0 vanished right after LE Remove Advertising Set), and BlueZ removes the set ~4 s
# after the ISO data stopped (when bluebridge's control task has ended and dropped the endpoint).
# One lean process polls the file every 0.1 s (a shell loop costs ~0.5 s a round under TCG): prints the seconds
# from its start to the last growth it saw, exits 0 once the file has not grown for 1 s, 1 after LOST_S.
LOST=$(python3 -S -c 'import os, sys, time
f, size, deadline = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = last_t = time.monotonic()
while time.monotonic() - t0 < deadline:
    n = os.stat(f).st_size
    if n != size:
        size, last_t = n, time.monotonic()
    elif time.monotonic() - last_t >= 1.0:
        print("%.2f" % (last_t - t0)); sys.exit(0)
    time.sleep(0.1)
print("%.2f" % (last_t - t0)); sys.exit(1)' /tmp/bis-rx-before.bin "$last" "$LOST_S"); lost=$?
iso_sink_stop "$SINK1"
mgmt 1 power off > /dev/null
LOST=$(awk -v a="$U_REMOVE" -v b="$U_POLL" -v l="${LOST:-0}" 'BEGIN { printf "%.2f", b - a + l }'); figure sink_lost_s "$LOST"
[ $lost -eq 0 ]
check sink-lost-big $? "the sink's capture last grew at most $LOST s after the reload (want <= $LOST_S s; $(size /tmp/bis-rx-before.bin) bytes in all)"
cat "$O/reload-remove.txt"
[ $rc -eq 0 ] && grep -q 'removed auracast' "$O/reload-remove.txt" && ! st | grep -q '"name": "auracast"'
check reload-removed $? "exit $rc: $(tr '\n' ' ' < "$O/reload-remove.txt" | cut -c1-300); status lists: $(st | sed -n 's/^      "name": "\(.*\)",/\1/p' | tr '\n' ' ')"
cp /tmp/bis-rx-before.bin "$O/bis-rx-before.bin"
# The broadcaster's side, from its controller's HCI trace: bounded wait for hci0's host to terminate the BIG and
# remove its advertising set (what a leaked control task never let BlueZ do: its BIG stayed up with no audio).
hci0_gone() { python3 -S "$IN/big_events.py" "$BTSNOOP" "$T_REMOVE" 1 > /tmp/big-events.txt 2>&1 &&
              grep -q '^cmd idx=0 .*name=terminate_big' /tmp/big-events.txt; }
wait_for "$LOST_S" hci0_gone
cp /tmp/big-events.txt "$O/big-events-remove.txt"
ev() { awk -v a="$T_REMOVE" -v want="$1" -v i="idx=$2" '$2 == i { split($3, t, "="); split($4, n, "=");
  if (n[2] == want && t[2] >= a) { printf "%.2f\n", t[2] - a; exit } }' "$O/big-events-remove.txt"; }
tb=$(ev terminate_big 0); figure big_terminated_s "${tb:-none}"
[ -n "$tb" ]; check big-terminated $? "hci0's host sent LE Terminate BIG ${tb:-never (within $LOST_S s)} s after the reload"
ra=$(ev remove_adv_set 0); figure adv_set_removed_s "${ra:-none}"
[ -n "$ra" ]; check adv-set-removed $? "hci0's host sent LE Remove Advertising Set ${ra:-never} s after the reload"
last_rx=$(sed -n 's/^iso_rx_last=//p' "$O/big-events-remove.txt")
figure iso_last_s "$(awk -v a="$T_REMOVE" -v b="${last_rx:-0}" 'BEGIN { printf "%.2f", b - a }')"

step "reload with the broadcast output again: a sink on hci2 must hear it"
cp "$O/bb-with.toml" /tmp/bb.toml
U_ADD=$(uptime_s)
t 30 bluebridge reload --socket /tmp/bb.sock > "$O/reload-add.txt" 2>&1; rc=$?
cat "$O/reload-add.txt"
[ $rc -eq 0 ] && grep -q 'added auracast' "$O/reload-add.txt"
check reload-added $? "exit $rc: $(tr '\n' ' ' < "$O/reload-add.txt" | cut -c1-300)"
wait_for 60 sh -c "[ \$(grep -c 'BIG up on hci0' $O/bluebridge.log) -ge 2 ]"
check big-up-again $? "$(grep -c 'BIG up on hci0' "$O/bluebridge.log") times 'BIG up on hci0' in the log"
figure big_up_again_s "$(el "$U_ADD" "$(uptime_s)")"
iso_sink_join 2 "$A0" /tmp/bis-rx-again.bin; rc=$?
SINK2=$ISO_SINK_PID
check sink-synced-again $rc "try $ISO_SINK_TRIES: $(grep -v '^$' "$O/isotest-hci2.log" | tail -3 | tr '\n' ';')"
figure sink_tries_again "$ISO_SINK_TRIES"
figure sink_synced_again_s "$(el "$U_ADD" "$(uptime_s)")"
st > "$O/status.json"
sleep "$SECS"
iso_sink_stop "$SINK2"
bis_sinks_away 2
cp /tmp/bis-rx-again.bin "$O/bis-rx-again.bin"
kill -0 $BB 2>/dev/null
check bluebridge-alive $? "one bluebridge process throughout ($(grep -c 'ready:' "$O/bluebridge.log") ready lines)"
step "stop bluebridge (SIGTERM)"
bb_stop "$BB"
figure resyncs "$(grep -c 're-synchronising' "$O/bluebridge.log")"

step "decode what each sink received"
bis_analyse before "$O/bis-rx-before.bin" 1
bis_analyse again "$O/bis-rx-again.bin" 2
