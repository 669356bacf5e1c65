#!/usr/bin/env python3
"""Measure a captured sine: frequency (interpolated zero crossings), RMS and peak level, active duration.
Usage: analyze_tone.py FILE.wav   -> KEY=VALUE lines on stdout. Exit 2 if the file cannot be read."""
import math
import operator
import re
import sys
from array import array


def read_wav(path):
    """(rate, channels, sample width, PCM bytes) of a PCM WAV. Sizes in the header are not trusted: arecord
    stopped by a signal leaves placeholder sizes, so the data chunk is whatever follows its header."""
    with open(path, 'rb') as f:
        d = f.read()
    if d[:4] != b'RIFF' or d[8:12] != b'WAVE':
        raise ValueError('not a RIFF/WAVE file')
    pos, fmt = 12, None
    while pos + 8 <= len(d):
        cid, size = d[pos:pos + 4], int.from_bytes(d[pos + 4:pos + 8], 'little')
        body = pos + 8
        if cid == b'fmt ':
            fmt = d[body:body + 16]
        elif cid == b'data':
            if fmt is None:
                raise ValueError('data before fmt chunk')
            ch = int.from_bytes(fmt[2:4], 'little')
            rate = int.from_bytes(fmt[4:8], 'little')
            width = int.from_bytes(fmt[14:16], 'little') // 8
            return rate, ch, width, d[body:body + min(size, len(d) - body)]
        pos = body + size + (size & 1)
    raise ValueError('no data chunk')


def main(path):
    try:
        rate, ch, width, raw = read_wav(path)
    except Exception as e:  # missing file, no fmt/data chunk, ...
        print('error=%s' % (repr(e).replace(' ', '_') or 'unreadable'))
        return 2
    s = array('h')
    s.frombytes(raw[: len(raw) - len(raw) % (2 * ch)])
    if sys.byteorder != 'little':
        s.byteswap()
    left = s[0::ch]
    total = len(left)
    print('rate=%d' % rate)
    print('total_s=%.3f' % (total / rate if rate else 0))
    # Work on bytes with C-level operations (translate/find/regex): pure-Python loops are slow under TCG.
    hi = left.tobytes()[1::2] if sys.byteorder == 'little' else left.tobytes()[0::2]
    # "loud" = |sample| >= 512 (about -36 dBFS): high byte not in 0x00, 0x01, 0xfe, 0xff
    loud = hi.translate(bytes(ord('.') if v in (0, 1, 0xfe, 0xff) else ord('L') for v in range(256)))
    a, b = loud.find(b'L'), loud.rfind(b'L') + 1
    if a < 0 or b - a < rate // 10:
        print('active_s=0')
        print('freq_hz=0')
        print('rms_dbfs=-120')
        print('peak_dbfs=-120')
        return 0
    # skip 50 ms at each end of the active part (codec start-up and fade)
    trim = min(rate // 20, (b - a) // 4)
    lo, hi_end = a + trim, b - trim
    core = left[lo:hi_end]
    sign = hi[lo:hi_end].translate(bytes(ord('+') if v < 0x80 else ord('-') for v in range(256)))
    crossings = []
    for m in re.finditer(rb'-\+', sign):  # rising zero crossings, interpolated between the two samples
        i = m.start()
        p, q = core[i], core[i + 1]
        crossings.append(i + (-p) / (q - p))
    freq = (len(crossings) - 1) * rate / (crossings[-1] - crossings[0]) if len(crossings) >= 2 else 0.0
    ms = sum(map(operator.mul, core, core)) / len(core)
    rms = 20 * math.log10(math.sqrt(ms) / 32768) if ms > 0 else -120.0
    peak = max(max(core), -min(core))
    print('active_s=%.3f' % ((b - a) / rate))
    print('freq_hz=%.2f' % freq)
    print('rms_dbfs=%.2f' % rms)
    print('peak_dbfs=%.2f' % (20 * math.log10(peak / 32768) if peak else -120))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
