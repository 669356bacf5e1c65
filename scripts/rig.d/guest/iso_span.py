"""The time span of a broadcast sink's capture as the sink's kernel saw it, to judge how many SDUs it should hold.

Reads the btmon capture (btsnoop, monitor datalink): every ISO packet the sink controller hciIDX handed to its host,
with the kernel's receive stamp. For the lowest BIS handle (BIS 1, what iso_sink writes to its file): the number of
complete SDUs, the first and last arrival, and the SDUs that span should hold at one per SDU interval. Judging the
capture against its own span (not against the scenario's `sleep`, which overruns when the VM stalls under TCG) keeps
the check honest: SDUs missing inside the span are lost, however long the scenario slept.

The packet sequence numbers are printed too: the broadcaster's kernel numbers every SDU its host sends (tx_sn), so
seq_last - seq_first + 1 (`sent`) is how many SDUs the broadcaster sent in the span: expected - sent were never sent
(the sender stalled: bluebridge's `output starved`/`re-synchronising` lines), sent - received were lost on the way.
(seq_gaps counts gaps in btmon's own view, which drops packets when the guest is busy: not a loss at the sink.)

usage: iso_span.py CAPTURE.btsnoop IDX [SDU_INTERVAL_US]
Prints KEY=VALUE lines: sdus, span_s, expected (span / interval + 1), seq_first, seq_last, sent, seq_gaps,
arrival_gap_ms_max (the longest wait between two SDUs), stalls_over_100ms.
"""
import struct, sys
from rigaudio import btsnoop_records

cap, idx = sys.argv[1], int(sys.argv[2])
interval_us = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
ISO_RX = 19  # btmon's monitor opcode for an ISO packet from the controller

pkts = {}
for op, cidx, ts, data in btsnoop_records(cap):
    if op != ISO_RX or cidx != idx or len(data) < 4:
        continue
    hf, _dlen = struct.unpack_from('<HH', data, 0)
    handle, pb, tsf = hf & 0x0fff, (hf >> 12) & 3, (hf >> 14) & 1
    if pb not in (0, 2):  # complete SDUs or first fragments (they carry the sequence number)
        continue
    seq, = struct.unpack_from('<H', data, 4 + (4 if tsf else 0))
    pkts.setdefault(handle, []).append((ts, seq))
if not pkts:
    print('sdus=0')
    print('span_s=0')
    print('expected=0')
    sys.exit(0)
rx = pkts[min(pkts)]
span_us = rx[-1][0] - rx[0][0]
gaps = sum(((b - a - 1) & 0xffff) for (_, a), (_, b) in zip(rx, rx[1:]) if ((b - a - 1) & 0xffff) < 0x8000)
waits = [(b - a) / 1000.0 for (a, _), (b, _) in zip(rx, rx[1:])]
print('sdus=%d' % len(rx))
print('span_s=%.3f' % (span_us / 1e6))
print('expected=%d' % (round(span_us / interval_us) + 1))
print('seq_first=%d' % rx[0][1])
print('seq_last=%d' % rx[-1][1])
print('sent=%d' % (((rx[-1][1] - rx[0][1]) & 0xffff) + 1))
print('seq_gaps=%d' % gaps)
print('arrival_gap_ms_max=%.1f' % (max(waits) if waits else 0.0))
print('stalls_over_100ms=%d' % sum(w > 100 for w in waits))
