"""The rig's `calibrate` scenario, judged (stdlib only, runs in the guest with python3 -S).

Inputs: each sink's hidden error (its hidden latency - the Delay it reports, ms: how late it is heard), the JSON of
`bluebridge calibrate --all` (its per-output `error_ms`, relative to the mean of the measured outputs), of the
`--check` after it and of `--from-recording --dry-run`, and each recorder's journal (`click` lines with
`sound_ns`: when the click sounds in the loopback room). Prints key=value lines:

- hidden_rel_ms_NAME: the hidden error relative to the mean of the hidden errors (what a relative calibration can
  know); measured_ms_NAME, spread_ms_NAME, repeats_ms_NAME: what bluebridge measured; recovered_err_ms_NAME:
  measured - hidden_rel (the check is on this).
- check_ms_NAME: bluebridge's own re-measurement after the calibration (relative).
- from_recording_ms_NAME, from_recording_err_ms_NAME: the same from the 44.1 kHz recording.
- skew_ms_before_p50, skew_ms_after_p50, skew_ms_after_max (|max|), skew_after_n: click sound time of the first
  sink minus the second's, per pair of clicks of the same source second, before the first burst (--before-ns)
  and from 3 s after the calibration (--after-ns) to the re-check (--until-ns).
"""
import argparse
import json


def outputs_of(path):
    """{name: outcome} from a calibrate --json reply; {} if it is missing or broken."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return {o.get("name"): o for o in d.get("outputs", []) if isinstance(o, dict)}


def clicks_of(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") == "click" and e.get("sound_ns") is not None:
                    out.append(e["sound_ns"])
    except OSError:
        pass
    return sorted(out)


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def fmt(x):
    return "nan" if x is None else "%.3f" % x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", action="append", default=[], help="NAME=MS")
    ap.add_argument("--clicks", action="append", default=[], help="NAME=JOURNAL")
    ap.add_argument("--calibrate", required=True)
    ap.add_argument("--check")
    ap.add_argument("--from-recording")
    ap.add_argument("--before-ns", type=int, required=True)
    ap.add_argument("--after-ns", type=int, required=True)
    ap.add_argument("--until-ns", type=int, required=True)
    a = ap.parse_args()
    hidden = {k: float(v) for k, v in (h.split("=", 1) for h in a.hidden)}
    mean = sum(hidden.values()) / len(hidden)
    rel = {k: v - mean for k, v in hidden.items()}
    cal = outputs_of(a.calibrate)
    chk = outputs_of(a.check) if a.check else {}
    rec = outputs_of(a.from_recording) if a.from_recording else {}
    for name in sorted(hidden):
        o = cal.get(name, {})
        m = o.get("error_ms")
        print("hidden_ms_%s=%s" % (name, fmt(hidden[name])))
        print("hidden_rel_ms_%s=%s" % (name, fmt(rel[name])))
        print("measured_ms_%s=%s" % (name, fmt(m)))
        print("spread_ms_%s=%s" % (name, fmt(o.get("spread_ms"))))
        print("repeats_ms_%s=%s" % (name, "/".join("%.2f" % r for r in o.get("repeats_ms", []))))
        print("new_calibration_ms_%s=%s" % (name, fmt(o.get("new_calibration_ms"))))
        if o.get("refused"):
            print("refused_%s=%s" % (name, o["refused"].replace("\n", " ")))
        print("recovered_err_ms_%s=%s" % (name, fmt(None if m is None else m - rel[name])))
        print("check_ms_%s=%s" % (name, fmt(chk.get(name, {}).get("error_ms"))))
        r = rec.get(name, {}).get("error_ms")
        print("from_recording_ms_%s=%s" % (name, fmt(r)))
        print("from_recording_err_ms_%s=%s" % (name, fmt(None if r is None else r - rel[name])))
    names = [c.split("=", 1)[0] for c in a.clicks]
    cl = {k: clicks_of(p) for k, p in (c.split("=", 1) for c in a.clicks)}
    if len(names) == 2:
        x, y = cl[names[0]], cl[names[1]]
        pairs = []
        j = 0
        for t in x:
            # The other sink's click of the same source second: the nearest within half a second.
            while j + 1 < len(y) and abs(y[j + 1] - t) <= abs(y[j] - t):
                j += 1
            if y and abs(y[j] - t) < 500_000_000:
                pairs.append((t, (t - y[j]) / 1e6))
        before = [s for t, s in pairs if t < a.before_ns]
        after = [s for t, s in pairs if a.after_ns + 3_000_000_000 < t < a.until_ns]
        print("skew_before_n=%d" % len(before))
        print("skew_ms_before_p50=%s" % fmt(pct(before, 0.5)))
        print("skew_after_n=%d" % len(after))
        print("skew_ms_after_p50=%s" % fmt(pct(after, 0.5)))
        print("skew_ms_after_max=%s" % fmt(max((abs(s) for s in after), default=None)))
        print("skew_expected_before_ms=%s" % fmt(hidden[names[0]] - hidden[names[1]]))


main()
