"""Decodes a file of concatenated LC3 frames (what a broadcast sink's `transport.receive` wrote: one SDU = one
frame of one channel) to a mono S16 WAV, through the system liblc3 (ctypes; no Python binding needed).

usage: lc3_decode.py IN.bin OUT.wav OCTETS [RATE_HZ] [FRAME_US]
Prints KEY=VALUE lines: frames, concealed (frames liblc3 reported as PLC), bad (decode errors).
"""
import struct, sys, wave
from rigaudio import Lc3Decoder

src, dst, octets = sys.argv[1], sys.argv[2], int(sys.argv[3])
rate = int(sys.argv[4]) if len(sys.argv) > 4 else 48000
dt = int(sys.argv[5]) if len(sys.argv) > 5 else 10000
dec = Lc3Decoder(dt, rate)
ns = dec.frame_samples
data = open(src, 'rb').read()
out = bytearray()
frames = concealed = bad = 0
for off in range(0, len(data) - octets + 1, octets):
    rc, pcm = dec.decode(data[off:off + octets])
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
