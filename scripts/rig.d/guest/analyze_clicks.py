"""Analyses a capture of bluebridge's test signal (440 Hz tone at -20 dBFS + a Gaussian click every second).

Prints KEY=VALUE lines: clicks (count), spacing_err_us_max (|click spacing - 1 s| worst, in µs of the capture's
sample clock), correlation (normalised correlation with the reference signal, aligned on the first click, over
the clicks' span), gaps (silent stretches > 10 ms inside the span), span_s.
"""
import math, struct, sys, wave
from rigaudio import find_clicks

path = sys.argv[1]
with wave.open(path, 'rb') as f:
    rate, ch, width = f.getframerate(), f.getnchannels(), f.getsampwidth()
    raw = f.readframes(f.getnframes())
n = len(raw) // (ch * width)
left = [struct.unpack_from('<h', raw, i * ch * width)[0] / 32768.0 for i in range(n)]

clicks = find_clicks(left, rate)
# The reference at the capture's rate (an LC3 broadcast decodes at its codec rate, 8-48 kHz): the click lasts
# σ = 1.5 samples of 48 kHz and sits 0.1 s into each second, whatever the rate.
SIGMA = 1.5 * rate / 48000
OFFSET = rate / 10
print(f"rate={rate}")
print(f"clicks={len(clicks)}")
if len(clicks) >= 2:
    errs = [abs((b - a) / rate - 1.0) * 1e6 for a, b in zip(clicks, clicks[1:])]
    print(f"spacing_err_us_max={max(errs):.1f}")
    start, end = int(clicks[0]) - 100, int(clicks[-1]) + 100
    start, end = max(start, 0), min(end, n)
    # Reference: same formula as bluebridge's TestSignal, click centred on the first detected click.
    c0 = clicks[0]
    num = den_a = den_b = 0.0
    gap_run, gaps = 0, 0
    for k in range(start, end):
        t = k - c0  # frames from the first click
        tone = 0.1 * math.sin(2 * math.pi * 440.0 * ((t + OFFSET) / rate))
        dd = ((t + rate / 2) % rate) - rate / 2
        click = 0.8 * math.exp(-(dd * dd) / (2 * SIGMA * SIGMA)) if abs(dd) < 12 else 0.0
        ref = tone + click
        x = left[k]
        num += ref * x; den_a += ref * ref; den_b += x * x
        if abs(x) < 0.003:
            gap_run += 1
        else:
            if gap_run > rate // 100:
                gaps += 1
            gap_run = 0
    corr = num / math.sqrt(den_a * den_b) if den_a > 0 and den_b > 0 else 0.0
    print(f"correlation={corr:.4f}")
    # Per second: each span between two clicks against the reference aligned on its own first click, so one
    # discontinuity (a resync) spoils one segment, not the whole capture.
    good, worst = 0, 1.0
    for a, b in zip(clicks, clicks[1:]):
        num = da = db = 0.0
        for k in range(int(a) - 100, min(int(b) - 100, n)):
            t = k - a
            tone = 0.1 * math.sin(2 * math.pi * 440.0 * ((t + OFFSET) / rate))
            dd = ((t + rate / 2) % rate) - rate / 2
            ref = tone + (0.8 * math.exp(-(dd * dd) / (2 * SIGMA * SIGMA)) if abs(dd) < 12 else 0.0)
            x = left[k]
            num += ref * x; da += ref * ref; db += x * x
        c = num / math.sqrt(da * db) if da > 0 and db > 0 else 0.0
        worst = min(worst, c)
        good += c > 0.9
    print(f"segments={len(clicks) - 1}")
    print(f"segments_good={good}")
    print(f"segment_corr_min={worst:.4f}")
    print(f"gaps={gaps}")
    print(f"span_s={(end - start) / rate:.2f}")
