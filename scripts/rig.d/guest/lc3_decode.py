"""Decodes a file of concatenated LC3 frames (what a broadcast sink's `transport.receive` wrote: one SDU = one
frame of one channel) to a mono S16 WAV, through the system liblc3 (ctypes; no Python binding needed).

usage: lc3_decode.py IN.bin OUT.wav OCTETS [RATE_HZ] [FRAME_US]
Prints KEY=VALUE lines: frames, concealed (frames liblc3 reported as PLC), bad (decode errors).
"""
import ctypes, ctypes.util, struct, sys, wave

src, dst, octets = sys.argv[1], sys.argv[2], int(sys.argv[3])
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 48000
dt = int(sys.argv[5]) if len(sys.argv) > 5 else 10000
lib = ctypes.CDLL(ctypes.util.find_library('lc3') or 'liblc3.so.1')
lib.lc3_decoder_size.restype = ctypes.c_uint
lib.lc3_decoder_size.argtypes = [ctypes.c_int, ctypes.c_int]
lib.lc3_setup_decoder.restype = ctypes.c_void_p
lib.lc3_setup_decoder.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
lib.lc3_decode.restype = ctypes.c_int
lib.lc3_decode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
lib.lc3_frame_samples.restype = ctypes.c_int
lib.lc3_frame_samples.argtypes = [ctypes.c_int, ctypes.c_int]
size = lib.lc3_decoder_size(dt, rate)
mem = (ctypes.c_uint64 * ((size + 7) // 8))()
dec = lib.lc3_setup_decoder(dt, rate, 0, ctypes.addressof(mem))
if not dec:
    sys.exit('lc3_setup_decoder failed for %d us, %d Hz' % (dt, rate))
ns = lib.lc3_frame_samples(dt, rate)
pcm = (ctypes.c_int16 * ns)()
data = open(src, 'rb').read()
out = bytearray()
frames = concealed = bad = 0
for off in range(0, len(data) - octets + 1, octets):
    buf = ctypes.create_string_buffer(data[off:off + octets], octets)
    rc = lib.lc3_decode(dec, buf, octets, 0, pcm, 1)  # 0 = LC3_PCM_FORMAT_S16
    frames += 1
    concealed += rc == 1
    bad += rc < 0
    out += struct.pack('<%dh' % ns, *pcm)
with wave.open(dst, 'wb') as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate); w.writeframes(bytes(out))
print('frames=%d' % frames)
print('concealed=%d' % concealed)
print('bad=%d' % bad)
print('trailing_bytes=%d' % (len(data) % octets))
