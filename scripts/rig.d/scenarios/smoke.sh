# rig: about=Controllers up with LE Audio settings, BR/EDR discovery + pairing, `bluebridge adapters --json`
# rig: controllers=3
# rig: bluetoothd=-E -K
# rig: timeout=180
# rig: bin=required

step "controller settings"
info=$(mgmt_info); echo "$info" > "$O/btmgmt-info.txt"
n=$(grep -c '^hci[0-9]*:' <<<"$info")
check controller-count "$([ "$n" -eq 3 ] && echo PASS || echo FAIL)" "btmgmt info lists $n controllers, want 3"
# Supported settings must include the classic + LE basics; the LE Audio roles show in the current settings.
for i in 0 1 2; do
  sup=$(info_field $i supported "$info"); cur=$(info_field $i current "$info")
  log "hci$i supported: $sup"; log "hci$i current: $cur"
  miss=""
  for w in br/edr le secure-conn ssp; do
    case " $sup " in *" $w "*) ;; *) miss="$miss $w(supported)";; esac
  done
  for w in powered br/edr le cis-central cis-peripheral iso-broadcaster sync-receiver; do
    case " $cur " in *" $w "*) ;; *) miss="$miss $w(current)";; esac
  done
  if [ -z "$miss" ]; then check "hci$i-settings" PASS "current: $cur"
  else check "hci$i-settings" FAIL "missing:$miss; current: $cur; supported: $sup"; fi
done
grep -q 'ISO Socket successfully set' "$O/bluetoothd.log"
check iso-socket $? "bluetoothd -K: $(grep -o 'ISO Socket.*' "$O/bluetoothd.log" | head -1)"
v=$(t 10 "$SID/btvirt" --version 2>&1); rc=$?
check sid-emulator $rc "/opt/bluez-sid/bin/btvirt --version: $v (rc=$rc)"
figure bluez_version "$($BTD --version 2>&1)"
figure sid_btvirt_version "$v"

A0=$(info_field 0 addr "$info"); A1=$(info_field 1 addr "$info"); A2=$(info_field 2 addr "$info")
log "hci0=$A0 hci1=$A1 hci2=$A2"

step "BR/EDR discovery hci0 -> hci1"
mgmt 1 connectable on; mgmt 1 discov yes
found=$(t 30 btmgmt --index 0 find -b 2>&1 | tee "$O/find.log" | grep -c "dev_found: $A1 type BR/EDR")
check discover "$([ "$found" -gt 0 ] && echo PASS || echo FAIL)" "hci0 inquiry found hci1 ($A1) $found time(s)"

step "BR/EDR pairing hci0 -> hci1 (NoInputNoOutput)"
pair_bredr 0 1; rc=$?
p01=$(dev_prop 0 "$A1" Paired); p10=$(dev_prop 1 "$A0" Paired)
check pair "$([ "$p01" = true ] && [ "$p10" = true ] && echo PASS || echo FAIL)" \
  "btmgmt pair rc=$rc; hci0 sees $A1 Paired=$p01; hci1 sees $A0 Paired=$p10"

step "bluebridge adapters --json"
bb 60 adapters --json > "$O/adapters.json"; rc=$?
check adapters-exit "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "bluebridge adapters --json exited $rc"
res=$(python3 - "$O/adapters.json" "$A0" "$A1" "$A2" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    got = {a["name"]: a["address"].upper() for a in d["adapters"]}
except Exception as e:
    print("FAIL unparsable output: %s" % e); sys.exit()
want = {"hci%d" % i: a for i, a in enumerate(sys.argv[2:])}
bad = ["%s=%s (want %s)" % (k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
print(("FAIL " + "; ".join(bad)) if bad else "PASS %d adapters: %s" % (len(got), ", ".join("%s=%s" % kv for kv in sorted(got.items()))))
PY
)
check adapters-list "${res%% *}" "${res#* }"
figure adapters "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["adapters"]))' "$O/adapters.json" 2>/dev/null || echo 0)"
