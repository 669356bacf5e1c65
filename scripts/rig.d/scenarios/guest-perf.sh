# rig: about=What the TCG guest costs: bluebridge's CPU benchmarks (A2DP and broadcast pipelines vs bare codec) run inside the guest, and the guest's wake-up latency for a 5 ms tick
# rig: controllers=1
# rig: bluetoothd=-E -K
# rig: timeout=240
# rig: bin=required
# rig: default=no

# Not a pass/fail test of bluebridge: it measures the emulator, so the timing-sensitive scenarios' figures can be
# read against it (how much of a vCPU each pipeline needs under TCG; how late a 5 ms timer fires).
SECS=${RIG_PERF_SECS:-5}
for p in a2dp broadcast; do
  step "bluebridge bench $p --seconds $SECS (in the guest)"
  out=$(bb 200 bench "$p" --seconds "$SECS"); rc=$?
  echo "$out" | tee "$O/bench-$p.json"
  check "bench-$p" $rc "$out"
  for k in ratio pipeline_core_pct bare_codec_cpu_s pipeline_cpu_s; do
    figure "${p}_$k" "$(python3 -S -c "import json,sys; print(round(json.loads(sys.argv[1])['$k'], 3))" "$out" 2>/dev/null)"
  done
  step "bluebridge bench $p --part pipeline-local (a source on the local clock: copied, not resampled)"
  out=$(bb 200 bench "$p" --seconds "$SECS" --part pipeline-local); rc=$?
  echo "$out" | tee "$O/bench-$p-local.json"
  check "bench-$p-local" $rc "$out"
  figure "${p}_local_pipeline_core_pct" \
    "$(python3 -S -c "import json,sys; print(round(json.loads(sys.argv[1])['pipeline_core_pct'], 3))" "$out" 2>/dev/null)"
done

step "wake-up latency of a 5 ms periodic timer for 10 s"
python3 -S - > "$O/wakeup.txt" <<'PY'
import time
period = 0.005
t = time.monotonic(); nxt = t + period; late = []
end = t + 10
while True:
    now = time.monotonic()
    if nxt > now:
        time.sleep(nxt - now)
    now = time.monotonic()
    if now > end:
        break
    late.append(now - nxt)
    nxt += period
    if now - nxt > 0.1:  # fell far behind: restart the grid
        nxt = now + period
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))] * 1e3
print(f"ticks={len(late)}")
print(f"late_ms_p50={q(0.5):.2f}")
print(f"late_ms_p99={q(0.99):.2f}")
print(f"late_ms_max={late[-1]*1e3:.2f}")
print(f"over_50ms={sum(1 for x in late if x > 0.05)}")
PY
cat "$O/wakeup.txt"
for k in ticks late_ms_p50 late_ms_p99 late_ms_max over_50ms; do figure "wakeup_$k" "$(sed -n "s/^$k=//p" "$O/wakeup.txt")"; done
check wakeup-measured "$([ -n "$(sed -n 's/^ticks=//p' "$O/wakeup.txt")" ] && echo PASS || echo FAIL)" "$(tr '\n' ' ' < "$O/wakeup.txt")"
