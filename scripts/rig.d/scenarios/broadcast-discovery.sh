# rig: about=BlueZ 5.87 (sid): bluebridge's broadcast carries its identity on the BIG's own advertising set — a receiver-side controller (hci1) scans and its HCI trace shows the Broadcast Name, the PBP announcement with the preset's flags (high quality / standard quality + encrypted), our Broadcast_ID and the manufacturer data on the set that has the periodic advertising; the broadcast still plays (isotest sink, as broadcast)
# rig: controllers=2
# rig: bluetoothd=-E -K
# rig: btvirt=sid
# rig: bluez=sid
# rig: timeout=260
# rig: bin=required
# rig: figures=received,no-gaps
# rig: retry=1

# Two phases, one bluebridge each: (hq) 48_2_1 mono, no code, manufacturer data, program info and language;
# (sq) 16_2_1 mono, encrypted, no manufacturer data. In each the receiver's controller scans (mgmt LE discovery
# on hci1, `btmgmt find -l`: the kernel's LE extended scan) and adv_reports.py decodes its LE Extended Advertising
# Reports from btmon's trace; btmon's own decode of the same trace (sid's 5.87) must show the Broadcast Name.
SCAN_SECS=${RIG_DISCOVERY_SCAN_SECS:-12}
A0=$(addr 0); A1=$(addr 1)
log "broadcaster hci0=$A0; receiver hci1=$A1"
BTD_PROG=$(tr '\0' '\n' < "/proc/$(pgrep -x bluetoothd | head -1)/cmdline" | head -1)
BLUEZ_V=$("$BTD_PROG" --version 2>/dev/null)
figure bluetoothd_version "$BLUEZ_V"
check bluez-587 "$(case $BLUEZ_V in 5.8[7-9]*|5.9*) echo PASS;; *) echo FAIL;; esac)" "bluetoothd $BLUEZ_V (LEAdvertisement1.Instance is 5.87's)"

# scan TAG: LE discovery on hci1 for SCAN_SECS, then the reports hci1's controller delivered, decoded.
scan() {
  t $((SCAN_SECS + 5)) btmgmt --index 1 find -l > "$O/scan-$1.txt" 2>&1
  python3 -S "$IN/adv_reports.py" "$BTSNOOP" 1 > "$O/adv-$1.txt" 2>&1
  cat "$O/adv-$1.txt"
}
# judge TAG NAME FEATURES META MFR: the checks of one phase. The receiver's report carrying our Broadcast_ID, from
# the broadcaster's address, must hold the name, PBA and manufacturer data; and on the broadcaster's own HCI (hci0)
# the advertising set that carries them must be the one with the BASE in its periodic advertising and the BIG
# (btvirt leaves the reports' periodic advertising interval at 0, so the receiver's side cannot show that).
judge() {
  local tag=$1 name=$2 feat=$3 meta=$4 mfr=$5 id line h
  id=$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | sed -n 's/.*Broadcast_ID \(0x[0-9a-f]*\).*/\1/p' | tail -1)
  figure "broadcast_id_$tag" "${id:-none}"
  line=$(grep " addr=$A0 .* broadcast_id=$id " "$O/adv-$tag.txt" | tail -1)
  check "heard-$tag" "$([ -n "$id" ] && [ -n "$line" ] && echo PASS || echo FAIL)" \
    "hci1 heard $A0 with Broadcast_ID ${id:-?}: ${line:-none} ($(grep -c '^adv' "$O/adv-$tag.txt") distinct reports)"
  python3 -S "$IN/adv_reports.py" "$BTSNOOP" sets 0 > "$O/sets-$tag.txt" 2>&1
  h=$(grep "^ext_adv_data .* broadcast_id=$id " "$O/sets-$tag.txt" | grep " name=${name// /_}\( \|$\)" | tail -1 | sed -n 's/.* handle=\([0-9]*\).*/\1/p')
  check "on-big-set-$tag" "$([ -n "$h" ] && grep -q "^per_adv_data idx=0 handle=$h base=1" "$O/sets-$tag.txt" && grep -q "^create_big idx=0 big=[0-9]* adv_handle=$h\$" "$O/sets-$tag.txt" && echo PASS || echo FAIL)" \
    "hci0: identity on advertising set ${h:-none}; $(grep -v '^ext_adv' "$O/sets-$tag.txt" | tail -2 | tr '\n' ';')"
  check "name-$tag" "$(grep -q " name=${name// /_} " <<< "$line " && echo PASS || echo FAIL)" "want Broadcast Name '$name'"
  check "pba-$tag" "$(grep -q " pba_features=$feat pba_meta=$meta " <<< "$line " && echo PASS || echo FAIL)" \
    "want PBA features $feat, metadata $meta"
  if [ -n "$mfr" ]; then
    check "mfr-$tag" "$(grep -q " mfr=$mfr " <<< "$line " && echo PASS || echo FAIL)" "want manufacturer data $mfr"
  else
    check "no-mfr-$tag" "$(grep -q " mfr=" <<< "$line " && echo FAIL || echo PASS)" "none configured"
  fi
  check "instance-$tag" "$(grep -q 'advertisement on instance 1, the set the BIG will use' "$O/bluebridge.log" && echo PASS || echo FAIL)" \
    "$(sed 's/\x1b\[[0-9;]*m//g' "$O/bluebridge.log" | grep -o 'broadcast advertisement registered.*\|broadcast: advertisement.*\|broadcast: BlueZ gave.*' | tail -2 | tr '\n' ';')"
}

step "phase hq: 48_2_1 mono, manufacturer data 87, program info, language; no code"
bb_broadcast_start 0 preset=48_2_1 channels=mono broadcast_name="Kitchen Radio" program_info="Jazz" language=eng \
  raw='manufacturer_data = { company = 87, data = "01 02 ab" }'
step "receiver hci1 scans (hq)"
scan hq
# PBA metadata: Program_Info "Jazz" (05 03 4a617a7a) then Language "eng" (04 04 656e67); features 0x04 = HQ.
judge hq "Kitchen Radio" 0x04 05034a617a7a0404656e67 0057:0102ab
step "btmon's own decode of hci1's reports (trixie's 5.82: sid's needs glibc 2.42)"
t 60 /usr/bin/btmon -r "$BTSNOOP" -i 1 > "$O/btmon-hci1-hq.txt" 2>&1
# 5.82 prints AD type 0x30 as "Unknown EIR field 0x30: <hex>" and 0x1856's bytes as data; 5.87 decodes the name
# but its PBA decoder hides the bytes (monitor/packet.c:3766).
NAME_HEX=$(printf '%s' "Kitchen Radio" | od -An -tx1 | tr -d ' \n')
check btmon-name "$(grep -qi "Broadcast Name: Kitchen Radio\|Unknown EIR field 0x30\(\[[0-9]*\]\)\?: $NAME_HEX" "$O/btmon-hci1-hq.txt" && echo PASS || echo FAIL)" \
  "$(grep -m1 -io "Broadcast Name: .*\|Unknown EIR field 0x30.*" "$O/btmon-hci1-hq.txt"); $(grep -m1 -A1 'Public Broadcast Announcement' "$O/btmon-hci1-hq.txt" | tr -s ' \n' ' ')"
step "the broadcast plays: isotest on hci1 syncs to the BIG and receives BIS 1 for 10 s"
iso_sink_join 1 "$A0" /tmp/bis-rx.bin
check sink-synced $? "try $ISO_SINK_TRIES: $(grep -v '^$' "$O/isotest-hci1.log" | tail -2 | tr '\n' ';')"
sleep "${RIG_DISCOVERY_PLAY_SECS:-10}"
iso_sink_stop "$ISO_SINK_PID"
bis_sinks_away 1
cp /tmp/bis-rx.bin "$O/bis-rx.bin" 2>/dev/null || : > "$O/bis-rx.bin"
kill -0 $BB 2>/dev/null; check bluebridge-alive $? "bluebridge still running after broadcasting"
bb_stop "$BB"
cp "$O/bluebridge.log" "$O/bluebridge-hq.log"
bis_analyse "" "$O/bis-rx.bin" 1

step "phase sq: 16_2_1 mono, encrypted, no manufacturer data"
mgmt 1 power on > /dev/null
: > "$O/bluebridge.log"
bb_broadcast_start 0 preset=16_2_1 channels=mono broadcast_name="Hall" broadcast_code="bluebridge-test"
step "receiver hci1 scans (sq)"
scan sq
# Features 0x03 = encrypted + SQ; no metadata.
judge sq "Hall" 0x03 - ""
kill -0 $BB 2>/dev/null; check bluebridge-alive-sq $? "bluebridge still running"
bb_stop "$BB"
cp "$O/bluebridge.log" "$O/bluebridge-sq.log"
