"""Guest stall monitor: how late a periodic timer wakes up, while a scenario runs.

Runs beside bluebridge (python3 -S wakeup.py OUT [PERIOD_MS]) until SIGTERM/SIGINT, then writes key=value lines
to OUT. A late wake-up that bluebridge did not cause (this process does almost nothing) means the guest as a whole
did not run: under TCG that is the host giving the VM no CPU. So stalls in bluebridge.log that coincide with
late wake-ups here are the host's; stalls with prompt wake-ups here are bluebridge's own. Each stall over 50 ms is
also listed with its CLOCK_MONOTONIC time, to line up with logs.

A guest that runs, but slowly (TCG gets less host CPU), wakes up on time yet gets less done: once a second this
also times a fixed piece of work (`work_ms`; compare with a quiet host's figure in scripts/rig.d/README.md). A
bluebridge that falls behind while wake-ups are prompt and `work_ms` is at its quiet-host value is slow by itself.
"""
import signal
import sys
import time

out = sys.argv[1]
period = float(sys.argv[2]) / 1e3 if len(sys.argv) > 2 else 0.02
stop = False


def _stop(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, _stop)
signal.signal(signal.SIGINT, _stop)

late = []
stalls = []
work = []


def timed_work():
    t0 = time.monotonic()
    x = 0
    for i in range(2000):
        x += i * i
    return (time.monotonic() - t0) * 1e3

nxt = time.monotonic() + period
start = nxt
while not stop:
    now = time.monotonic()
    if nxt > now:
        try:
            time.sleep(nxt - now)
        except InterruptedError:
            pass
        now = time.monotonic()
    lateness = now - nxt
    late.append(lateness)
    if lateness > 0.05:
        stalls.append((nxt, lateness))
    nxt += period
    if len(late) % max(1, round(1 / period)) == 0:
        work.append(timed_work())
    if now > nxt:  # fell behind by more than a period: restart the grid from now
        nxt = now + period

late.sort()
work.sort()


def q(p):
    return late[min(len(late) - 1, int(p * len(late)))] * 1e3 if late else float("nan")


with open(out, "w") as f:
    f.write(f"period_ms={period * 1e3:g}\n")
    f.write(f"seconds={time.monotonic() - start:.1f}\n")
    f.write(f"ticks={len(late)}\n")
    f.write(f"late_ms_p50={q(0.5):.2f}\n")
    f.write(f"late_ms_p99={q(0.99):.2f}\n")
    f.write(f"late_ms_max={(late[-1] * 1e3 if late else float('nan')):.1f}\n")
    f.write(f"over_50ms={len(stalls)}\n")
    f.write(f"over_200ms={sum(1 for _, x in stalls if x > 0.2)}\n")
    f.write(f"stalled_ms_total={sum(x for _, x in stalls) * 1e3:.0f}\n")
    if work:
        f.write(f"work_ms_p50={work[len(work) // 2]:.2f}\n")
        f.write(f"work_ms_p90={work[min(len(work) - 1, int(0.9 * len(work)))]:.2f}\n")
    for t, x in stalls:
        f.write(f"stall at_s={t:.3f} ms={x * 1e3:.1f}\n")
