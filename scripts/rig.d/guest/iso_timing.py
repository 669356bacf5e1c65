"""When each click of bluebridge's test signal reached a broadcast sink, against the click's play time.

Reads the btmon capture (btsnoop, monitor datalink): every ISO packet the sink controller hciIDX handed to its host,
timestamped by the kernel as it arrived. Takes the lowest BIS handle (BIS 1, the left channel), decodes each SDU
with the system liblc3 (ctypes), finds the clicks (sub-sample), and gives each click its arrival time: the arrival
of the SDU that carries the click's first input sample, plus the click's offset inside that SDU (the decoder's
algorithmic delay removed). The click k of the test signal is captured at ORIGIN + k s + 0.1 s (CLOCK_MONOTONIC)
and plays BUFFER_MS later; bluebridge hands an SDU to the controller at its play time minus the output's delay
(presentation delay + transport latency + LC3 delay, DELAY_MS, read from `bluebridge status`), so a click is
expected to arrive at play - DELAY_MS (+ the emulator's transit).

usage: iso_timing.py CAPTURE.btsnoop IDX ORIGIN_MONO_NS REALTIME_MINUS_MONO_NS BUFFER_MS DELAY_MS [OCTETS [RATE_HZ
FRAME_US]]   (the preset's stream: 48000 Hz, 10000 µs by default; decoded at its own rate)
Prints KEY=VALUE lines: sdus, clicks, matched, error_ms_p50/p95/max (arrival - expected), arrival_minus_play_ms_p50,
lost_sdus, and one `click=` line per click.
"""
import os, struct, sys
from rigaudio import Lc3Decoder, btsnoop_records, find_clicks

cap, idx = sys.argv[1], int(sys.argv[2])
origin_mono_ns, rt_minus_mono_ns = int(sys.argv[3]), int(sys.argv[4])
buffer_ms, delay_ms = float(sys.argv[5]), float(sys.argv[6])
octets = int(sys.argv[7]) if len(sys.argv) > 7 else 100
RATE = int(sys.argv[8]) if len(sys.argv) > 8 else 48000
DT_US = int(sys.argv[9]) if len(sys.argv) > 9 else 10000
ISO_RX = 19  # btmon's monitor opcode for an ISO packet from the controller
EPOCH_DELTA_US = 0x00DCDDB30F2F8000  # btsnoop time (µs since year 0) - Unix time

# ---- the capture: (arrival µs Unix time, handle, packet sequence number, SDU) for ISO RX on hciIDX ----
sdus = {}
for op, cidx, ts, data in btsnoop_records(cap):
    if op != ISO_RX or cidx != idx or len(data) < 4:
        continue
    hf, dlen = struct.unpack_from('<HH', data, 0)
    handle, pb, tsf = hf & 0x0fff, (hf >> 12) & 3, (hf >> 14) & 1
    if pb not in (0, 2):  # only complete SDUs (or first fragments, which carry the header)
        continue
    off = 4 + (4 if tsf else 0)
    seq, slen = struct.unpack_from('<HH', data, off)
    sdu = data[off + 4: off + 4 + (slen & 0x0fff)]
    sdus.setdefault(handle, []).append((ts - EPOCH_DELTA_US, seq, sdu))
if not sdus:
    print('sdus=0')
    sys.exit(0)
handle = min(sdus)
pkts = sdus[handle]

# ---- decode in sequence order; a lost SDU leaves a concealed frame so positions stay right ----
dec = Lc3Decoder(DT_US, RATE)
ns, delay = dec.frame_samples, dec.delay_samples
left, arrival_us, lost = [], [], 0
prev = None
for ts, seq, sdu in pkts:
    if prev is not None:
        gap = (seq - prev - 1) & 0xffff
        if gap < 100:
            for _ in range(gap):  # lost SDUs: concealment keeps the sample count
                left.extend(v / 32768.0 for v in dec.decode(None)[1])
                arrival_us.append(None)
            lost += gap
    prev = seq
    left.extend(v / 32768.0 for v in dec.decode(sdu)[1])
    arrival_us.append(ts)
print('sdus=%d' % len(pkts))
print('lost_sdus=%d' % lost)
print('lc3_delay_samples=%d' % delay)

# ---- clicks ----
clicks = find_clicks(left, RATE)
print('clicks=%d' % len(clicks))

# ---- arrival of each click against its play time ----
# Clicks arriving within ISO_TIMING_SETTLE_S of the first SDU are printed but left out of the statistics: when the
# BIG comes up bluebridge probes for the controller's ISO clock (up to 8 SDUs sent ahead, about a second); a real
# controller holds them in its buffer and sends each at its interval, btvirt puts them on the air at once, so a
# click in that second arrives early here only.
SETTLE_NS = float(os.environ.get('ISO_TIMING_SETTLE_S', '0')) * 1e9
first_ns = next((a * 1000 - rt_minus_mono_ns for a in arrival_us if a is not None), 0)
settling = []
errors, vs_play = [], []
for pos in clicks:
    src = pos - delay  # position in the encoder's input, counted from the first SDU received
    if src < 0:
        continue
    j = int(src // ns)
    if j >= len(arrival_us) or arrival_us[j] is None:
        continue
    arr_mono_ns = arrival_us[j] * 1000 - rt_minus_mono_ns + (src - j * ns) * 1e9 / RATE
    # The click k nearest: captured at origin + k s + 0.1 s, played buffer_ms later.
    k = round((arr_mono_ns + delay_ms * 1e6 - buffer_ms * 1e6 - origin_mono_ns - 0.1e9) / 1e9)
    play_ns = origin_mono_ns + (k + 0.1) * 1e9 + buffer_ms * 1e6
    err_ms = (arr_mono_ns - (play_ns - delay_ms * 1e6)) / 1e6
    print('click=k %d arrival_minus_play_ms %.3f error_ms %.3f%s' % (
        k, (arr_mono_ns - play_ns) / 1e6, err_ms, ' (settling, not counted)' if arr_mono_ns - first_ns < SETTLE_NS else ''))
    if arr_mono_ns - first_ns < SETTLE_NS:
        settling.append(err_ms)
        continue
    errors.append(err_ms)
    vs_play.append((arr_mono_ns - play_ns) / 1e6)


def q(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


print('settling_clicks=%d' % len(settling))
print('settling_error_ms_max=%.3f' % max((abs(e) for e in settling), default=0))
print('matched=%d' % len(errors))
if errors:
    print('error_ms_p50=%.3f' % q(errors, 0.5))
    print('error_ms_p95=%.3f' % q([abs(e) for e in errors], 0.95))
    print('error_ms_max=%.3f' % max(abs(e) for e in errors))
    print('arrival_minus_play_ms_p50=%.3f' % q(vs_play, 0.5))
