#!/usr/bin/env python3
"""Measure a captured sine: frequency (interpolated zero crossings), RMS and peak level, active duration.
Usage: analyze_tone.py FILE.wav   -> KEY=VALUE lines on stdout. Exit 2 if the file cannot be read."""
import math
import sys
import wave
from array import array


def main(path):
    try:
        with wave.open(path, 'rb') as f:
            rate, ch, width, n = f.getframerate(), f.getnchannels(), f.getsampwidth(), f.getnframes()
            raw = f.readframes(n)
    except Exception as e:  # truncated header from an interrupted arecord, missing file, ...
        print('error=%s' % str(e).replace(' ', '_'))
        return 2
    if width != 2:
        print('error=unsupported_sample_width_%d' % width)
        return 2
    s = array('h')
    s.frombytes(raw[: len(raw) - len(raw) % (2 * ch)])
    left = s[0::ch]
    total = len(left)
    print('rate=%d' % rate)
    print('total_s=%.3f' % (total / rate if rate else 0))
    thr = 32768 * 10 ** (-40 / 20)
    idx = [i for i, v in enumerate(left) if abs(v) > thr]
    if len(idx) < rate // 10:
        print('active_s=0')
        print('freq_hz=0')
        print('rms_dbfs=-120')
        print('peak_dbfs=-120')
        return 0
    a, b = idx[0], idx[-1] + 1
    seg = left[a:b]
    # skip 50 ms at each end (codec start-up and fade)
    trim = min(rate // 20, len(seg) // 4)
    core = seg[trim: len(seg) - trim] if len(seg) > 2 * trim else seg
    crossings = []
    for i in range(1, len(core)):
        p, q = core[i - 1], core[i]
        if p < 0 <= q:
            crossings.append(i - 1 + (-p) / (q - p))
    if len(crossings) >= 2:
        freq = (len(crossings) - 1) * rate / (crossings[-1] - crossings[0])
    else:
        freq = 0.0
    ms = sum(v * v for v in core) / len(core)
    rms = 20 * math.log10(math.sqrt(ms) / 32768) if ms > 0 else -120.0
    peak = max(abs(v) for v in core)
    print('active_s=%.3f' % (len(seg) / rate))
    print('freq_hz=%.2f' % freq)
    print('rms_dbfs=%.2f' % rms)
    print('peak_dbfs=%.2f' % (20 * math.log10(peak / 32768) if peak else -120))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
