"""Who had the guest's CPU between two snapshots (a scenario's diagnosis, e.g. mixed-sendspin's server).

Usage: cpu_share.py BEFORE AFTER
Each snapshot is the first line of /proc/stat followed by every /proc/PID/stat (one per line), as mixed.sh's
cpu_snap writes them. Prints, over the window between them:
  window_s=W             wall time (from the /proc/stat totals and the number of CPUs)
  busy_pct=P             the guest's CPUs busy (100 = every vCPU busy the whole window)
  cpu_pct_NAME=P         each program's user + system time, in % of one vCPU, largest first (comm names,
                         processes of one name summed; those under 1 % left out)
The kernel counts in USER_HZ (100) ticks; a process that ended inside the window is missing from AFTER and left out.
"""

import os
import sys

TICK_HZ = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def read(path):
    total = None
    procs = {}
    for line in open(path, errors='replace'):
        line = line.strip()
        if line.startswith('cpu '):
            total = [int(x) for x in line.split()[1:]]
            continue
        if ')' not in line or '(' not in line:
            continue
        pid = line.split(' ', 1)[0]
        comm = line[line.index('(') + 1:line.rindex(')')]
        rest = line[line.rindex(')') + 2:].split()
        # Fields after the comm: state(3) ... utime(14) stime(15), i.e. rest[11], rest[12].
        procs[pid] = (comm, int(rest[11]) + int(rest[12]))
    return total, procs


def main():
    (t0, p0), (t1, p1) = read(sys.argv[1]), read(sys.argv[2])
    ncpu = sum(1 for line in open('/proc/stat') if line.startswith('cpu') and line[3:4].isdigit()) or 1
    d = [b - a for a, b in zip(t0, t1)]
    all_ticks = sum(d[:8])
    idle = d[3] + d[4]
    window_s = all_ticks / ncpu / TICK_HZ
    print('window_s=%.1f' % window_s)
    print('busy_pct=%.0f' % (100.0 * (all_ticks - idle) / all_ticks if all_ticks else 0))
    by = {}
    for pid, (comm, ticks) in p1.items():
        before = p0.get(pid, (comm, 0))[1] if pid in p0 else 0
        by[comm] = by.get(comm, 0) + ticks - before
    for comm, ticks in sorted(by.items(), key=lambda kv: -kv[1]):
        pct = 100.0 * ticks / TICK_HZ / window_s if window_s else 0
        if pct >= 1:
            print('cpu_pct_%s=%.0f' % (comm.replace(' ', '_').replace('/', '_'), pct))


main()
