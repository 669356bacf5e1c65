"""Judges A2DP timing at the sink: did every click arrive at its play time minus the Delay the sink reported?

Usage: python3 -S analyze_timing.py --log bluebridge.log --buffer-ms MS [--offset-ms MS] [--tolerance-ms MS]
                                    [--assume-delay-ms MS] NAME=recorder.jsonl [NAME=recorder.jsonl ...]

Inputs: bluebridge's log (its line "tone source: frame 0 captured at CLOCK_MONOTONIC N ns" gives the test
signal's origin) and the JSON lines of each bluebridge-sink-recorder (events "delay" and "click"; both programs
run in one VM, so their CLOCK_MONOTONIC is the same clock).

For click k of the test signal (its centre is frame 4800 of second k):
    play time        = origin + (k + 0.1) s + buffer + offset
    expected arrival = play time - Delay in force at the sink
The recorder times a click from the arrival of the packet that carried it plus its position in the decoded
packet. bluebridge sends SBC's codec delay (73 frames, 1.52 ms) ahead and the decoder adds it back, so it is not
subtracted here. Two errors per click (positive: late):
    error         = arrival - expected arrival            (the packet as it came, queue waits included)
    stream error  = stream time - expected arrival        (the same without waits in queues on the way: the
                                                           schedule a speaker playing from its buffer follows)
    queue         = arrival - stream time

The run is cut into segments at each Delay the recorder reported. In each, the first click whose stream error is
within the tolerance is where arrivals *follow* that Delay: settle_s = that click's arrival - the time the Delay
was reported (resolution: one click per second); clicks before it are transition clicks, clicks from it on are
steady and make the error figures. --assume-delay-ms replaces the Delay in force (to show a wrong model).

Prints KEY=VALUE lines, per recorder NAME: clicks_NAME, steady_NAME, transition_NAME, unmatched_NAME,
stream_err_ms_{p50,p95,max}_NAME and err_ms_{p50,p95,max}_NAME (of |error|, steady clicks), stream_err_ms_mean_NAME
and err_ms_mean_NAME (signed), queue_ms_{p50,p95,max}_NAME, within_tol_NAME (share of steady clicks whose error
is within the tolerance), segments_NAME, seg<i>_delay_ms_NAME, seg<i>_settle_s_NAME (or "never"),
seg<i>_stream_err_ms_p95_NAME, settle_s_max_NAME (over the Delay changes, i.e. segments after the first; "none"
if there were none, "never" if one did not settle), all_err_ms_{p50,p95}_NAME (every matched click, transitions
included); with two recorders or more also skew_ms_{p50,p95,max} (spread of stream errors of the same click
across recorders) and clicks_common.
"""
import json, math, re, sys

ORIGIN_RE = re.compile(r'tone source: frame 0 captured at CLOCK_MONOTONIC (-?\d+) ns')


def pct(values, p):
    v = sorted(abs(x) for x in values)
    if not v:
        return float('nan')
    return v[min(len(v), max(1, math.ceil(p * len(v)))) - 1]


def fmt(x):
    if isinstance(x, str):
        return x
    return 'nan' if x != x else '%.2f' % x


def mean(values):
    return sum(values) / len(values) if values else float('nan')


def main(argv):
    opts = {'--log': None, '--buffer-ms': None, '--offset-ms': '0', '--tolerance-ms': '20', '--assume-delay-ms': None}
    files, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in opts and i + 1 < len(argv):
            opts[a] = argv[i + 1]
            i += 2
        elif '=' in a and not a.startswith('-'):
            files.append(tuple(a.split('=', 1)))
            i += 1
        else:
            sys.exit('analyze_timing: unknown argument %r (see the docstring)' % a)
    if not opts['--log'] or opts['--buffer-ms'] is None or not files:
        sys.exit('usage: analyze_timing.py --log bluebridge.log --buffer-ms MS [--offset-ms MS] '
                 '[--tolerance-ms MS] [--assume-delay-ms MS] NAME=recorder.jsonl ...')
    origins = [int(m.group(1)) for m in ORIGIN_RE.finditer(open(opts['--log'], errors='replace').read())]
    if not origins:
        sys.exit('analyze_timing: no "tone source: frame 0 captured at CLOCK_MONOTONIC" line in ' + opts['--log'])
    buffer_ns = float(opts['--buffer-ms']) * 1e6
    offset_ns = float(opts['--offset-ms']) * 1e6
    tol = float(opts['--tolerance-ms'])
    assume = None if opts['--assume-delay-ms'] is None else float(opts['--assume-delay-ms'])
    print('origin_ns=%d' % origins[-1])
    print('tolerance_ms=%s' % fmt(tol))
    played = {}  # name -> {k: stream error ms} (steady clicks)
    for name, path in files:
        delays, clicks = [], []
        for line in open(path, errors='replace'):
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get('event') == 'delay' and ev.get('delay_ms') is not None:
                delays.append((ev['t_ns'], ev['delay_ms']))
            elif ev.get('event') == 'click':
                clicks.append(ev)
        delays.sort()
        unmatched, rows = 0, []  # rows: (arrival_ns, k, error_ms, stream_error_ms, segment)
        for c in clicks:
            a = c['arrival_ns']
            st = c.get('stream_ns', a)
            d = c.get('delay_ms') if assume is None else assume
            origin = max([o for o in origins if o <= a] or [origins[0]])
            if d is None:
                unmatched += 1
                continue
            k = round((st + d * 1e6 - origin - buffer_ns - offset_ns) / 1e9 - 0.1)
            expected = origin + (k + 0.1) * 1e9 + buffer_ns + offset_ns - d * 1e6
            seg = max([i for i, (t, _) in enumerate(delays) if t <= a] or [0])
            rows.append((a, k, (a - expected) / 1e6, (st - expected) / 1e6, seg))
        steady, transition, settles = [], 0, []
        print('clicks_%s=%d' % (name, len(clicks)))
        print('segments_%s=%d' % (name, len(delays)))
        for s, (t, d) in enumerate(delays):
            seg = [r for r in rows if r[4] == s]
            first = next((j for j, r in enumerate(seg) if abs(r[3]) <= tol), None)
            settle = 'never' if first is None else (seg[first][0] - t) / 1e9
            kept = [] if first is None else seg[first:]
            transition += len(seg) - len(kept)
            steady += kept
            if s > 0:
                settles.append(settle)
            print('seg%d_delay_ms_%s=%s' % (s + 1, name, fmt(d if assume is None else assume)))
            print('seg%d_clicks_%s=%d' % (s + 1, name, len(seg)))
            print('seg%d_settle_s_%s=%s' % (s + 1, name, fmt(settle)))
            print('seg%d_stream_err_ms_p95_%s=%s' % (s + 1, name, fmt(pct([r[3] for r in kept], 0.95))))
        print('all_err_ms_p50_%s=%s' % (name, fmt(pct([r[2] for r in rows], 0.50))))
        print('all_err_ms_p95_%s=%s' % (name, fmt(pct([r[2] for r in rows], 0.95))))
        errs, serrs = [r[2] for r in steady], [r[3] for r in steady]
        queue = [r[2] - r[3] for r in steady]
        played[name] = {r[1]: r[3] for r in steady}
        print('steady_%s=%d' % (name, len(steady)))
        print('transition_%s=%d' % (name, transition))
        print('unmatched_%s=%d' % (name, unmatched))
        for key, vals in (('stream_err_ms', serrs), ('err_ms', errs), ('queue_ms', queue)):
            for p, label in ((0.50, 'p50'), (0.95, 'p95'), (1.0, 'max')):
                print('%s_%s_%s=%s' % (key, label, name, fmt(pct(vals, p))))
        print('stream_err_ms_mean_%s=%s' % (name, fmt(mean(serrs))))
        print('err_ms_mean_%s=%s' % (name, fmt(mean(errs))))
        print('within_tol_%s=%s' % (name, fmt(sum(abs(e) <= tol for e in errs) / len(errs) if errs else 0.0)))
        if not settles:
            print('settle_s_max_%s=none' % name)
        elif 'never' in settles:
            print('settle_s_max_%s=never' % name)
        else:
            print('settle_s_max_%s=%s' % (name, fmt(max(settles))))
        # The worst few, to read next to bluebridge.log when a run fails.
        for a, k, err, serr, s in sorted(steady, key=lambda r: -abs(r[3]))[:3]:
            print('# worst %s: click %d (segment %d): stream %+.2f ms, arrival %+.2f ms from play time - Delay'
                  % (name, k, s + 1, serr, err))
    if len(played) >= 2:
        common = set.intersection(*(set(v) for v in played.values()))
        spread = [max(v[k] for v in played.values()) - min(v[k] for v in played.values()) for k in common]
        print('clicks_common=%d' % len(common))
        print('skew_ms_p50=%s' % fmt(pct(spread, 0.50)))
        print('skew_ms_p95=%s' % fmt(pct(spread, 0.95)))
        print('skew_ms_max=%s' % fmt(pct(spread, 1.0)))


if __name__ == '__main__':
    main(sys.argv[1:])
