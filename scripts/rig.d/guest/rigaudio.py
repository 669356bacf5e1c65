"""Shared by the rig's analysis scripts (python3 -S, stdlib only): the click detector for bluebridge's test signal
the system liblc3 decoder through ctypes, and the btmon capture (btsnoop) reader."""
import ctypes, ctypes.util, math, sys


def find_clicks(x, rate):
    """Sub-sample positions of the test signal's clicks in `x` (floats in [-1, 1)): first sample above a threshold,
    the maximum within 12 samples, refined by a parabola on the log; the next search starts half a second later.
    The threshold is 0.5 (the click peaks at 0.8, the tone at 0.1) at 32 kHz and above; below, 0.2: a click
    through LC3 at 8/16/24 kHz is band-limited to 4/8/12 kHz and peaks at only 0.27-0.30/0.40-0.45/0.49-0.63."""
    n, clicks, i = len(x), [], 0
    threshold = 0.5 if rate >= 32000 else 0.2
    while i < n:
        if x[i] > threshold:
            m = max(range(i, min(n, i + 12)), key=lambda k: x[k])
            a, b, c = x[m - 1], x[m], x[m + 1] if m + 1 < n else x[m]
            d = 0.0
            if a > 0 and b > 0 and c > 0:
                la, lb, lc = math.log(a), math.log(b), math.log(c)
                den = la - 2 * lb + lc
                d = 0.5 * (la - lc) / den if den else 0.0
            clicks.append(m + d)
            i = m + rate // 2
        else:
            i += 1
    return clicks


class Lc3Decoder:
    """One liblc3 decoder (S16 out). decode(None) conceals a lost frame."""

    def __init__(self, frame_us, rate):
        lib = ctypes.CDLL(ctypes.util.find_library('lc3') or 'liblc3.so.1')
        lib.lc3_decoder_size.restype = ctypes.c_uint
        lib.lc3_decoder_size.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.lc3_setup_decoder.restype = ctypes.c_void_p
        lib.lc3_setup_decoder.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        lib.lc3_decode.restype = ctypes.c_int
        lib.lc3_decode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                                   ctypes.c_int]
        lib.lc3_frame_samples.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.lc3_delay_samples.argtypes = [ctypes.c_int, ctypes.c_int]
        self._lib = lib
        self._mem = (ctypes.c_uint64 * ((lib.lc3_decoder_size(frame_us, rate) + 7) // 8))()
        self._dec = lib.lc3_setup_decoder(frame_us, rate, 0, ctypes.addressof(self._mem))
        if not self._dec:
            raise SystemExit('lc3_setup_decoder failed for %d us, %d Hz' % (frame_us, rate))
        self.frame_samples = lib.lc3_frame_samples(frame_us, rate)
        self.delay_samples = lib.lc3_delay_samples(frame_us, rate)
        self._pcm = (ctypes.c_int16 * self.frame_samples)()

    def decode(self, frame):
        """(liblc3's return code: 0 ok, 1 concealed, <0 error; the samples as ints)."""
        if frame is None:
            rc = self._lib.lc3_decode(self._dec, None, 0, 0, self._pcm, 1)
        else:
            buf = ctypes.create_string_buffer(bytes(frame), len(frame))
            rc = self._lib.lc3_decode(self._dec, buf, len(frame), 0, self._pcm, 1)  # 0 = S16
        return rc, list(self._pcm)


def btsnoop_records(path):
    """Yields (opcode, controller index, timestamp µs since year 0, data) for every record of a btmon capture
    (btsnoop, monitor datalink); exits naming the file when it is not one."""
    import struct
    with open(path, 'rb') as f:
        if f.read(16)[:8] != b'btsnoop\0':
            sys.exit('%s: not a btsnoop file' % path)
        while True:
            rec = f.read(24)
            if len(rec) < 24:
                return
            _orig, incl, flags, _drops, ts = struct.unpack('>IIIIq', rec)
            yield flags & 0xffff, flags >> 16, ts, f.read(incl)
