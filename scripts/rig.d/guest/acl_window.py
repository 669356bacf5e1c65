"""Which side lost an A2DP capture: the ACL traffic btmon saw in each recording window.

Reads the btmon capture (btsnoop, monitor datalink) once and, for each window of WINDOWS (lines "NAME K START END
SENT_PACKETS WAV_BYTES": Unix times in seconds, bluebridge's own count of packets it wrote in the window from its
`status` counters, the size of the sink's WAV), counts the ACL data packets of at least MIN_BYTES (media, not
signalling; default 150: btvirt cuts A2DP media packets into ACL fragments of 192 bytes) that the source controller
hciTX was handed by its host (ACL TX: what bluebridge's kernel sent) and that the sink controller hciRX handed to its
host (ACL RX: what reached the sink's kernel, i.e. BlueALSA's socket).
With bluebridge's counter and the WAV's size this tells where the audio stopped:
  sent 0                       bluebridge sent nothing
  sent > 0, tx 0               bluebridge wrote, its kernel/controller sent nothing
  tx > 0, rx 0                 lost in the emulated link
  rx > 0, WAV a bare header    the sink received the audio, its capture (BlueALSA's PCM / arecord) lost it
usage: acl_window.py CAPTURE.btsnoop TX_IDX RX_IDX WINDOWS [MIN_BYTES]
Prints one line per window: NAME K sent=N acl_tx=N acl_rx=N wav_bytes=N lost_at=WHERE.
"""
import struct, sys
from rigaudio import btsnoop_records

EPOCH_DELTA_US = 0x00DCDDB30F2F8000  # btsnoop time (µs since year 0) - Unix time
ACL_TX, ACL_RX = 4, 5  # btmon's monitor opcodes: ACL data to the controller / from the controller

cap, tx_idx, rx_idx, windows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
min_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 150  # btvirt fragments ACL at 192 bytes
wins = []
for line in open(windows):
    p = line.split()
    if len(p) >= 6:
        wins.append([p[0], p[1], float(p[2]) * 1e6, float(p[3]) * 1e6, p[4], p[5], 0, 0])
for op, idx, ts, data in btsnoop_records(cap):
    if op not in (ACL_TX, ACL_RX) or len(data) < min_bytes:
        continue
    t = ts - EPOCH_DELTA_US
    for w in wins:
        if w[2] <= t <= w[3]:
            if op == ACL_TX and idx == tx_idx:
                w[6] += 1
            elif op == ACL_RX and idx == rx_idx:
                w[7] += 1
for name, k, _, _, sent, wav, tx, rx in wins:
    try:
        s = int(sent)
    except ValueError:
        s = -1
    if s == 0:
        where = 'bluebridge'
    elif tx == 0:
        where = 'source-kernel'
    elif rx == 0:
        where = 'link'
    elif int(wav) <= 44:
        where = 'sink-capture'
    else:
        where = 'none'
    print('%s %s sent=%s acl_tx=%d acl_rx=%d wav_bytes=%s lost_at=%s' % (name, k, sent, tx, rx, wav, where))
