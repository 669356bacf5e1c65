"""What the controllers saw of a broadcast going away and coming back, from the btmon capture (btsnoop, monitor
datalink), for `broadcast-reload`.

Reads the capture once and prints, with Unix times (btmon's kernel stamps), the events after FROM (Unix s):
  cmd idx=I t=T name=NAME [enable=E]   HCI commands a host sent: create_big (0x2068), terminate_big (0x206A),
                                       remove_adv_set (0x203C), clear_adv_sets (0x203D), ext_adv_enable (0x2039;
                                       enable=0 disables), pa_enable (0x2040), big_create_sync (0x206B)
  evt idx=I t=T name=NAME status=S     LE events: create_big_complete (0x1B), terminate_big_complete (0x1C),
                                       big_sync_established (0x1D), big_sync_lost (0x1E, status = its reason)
and, for the sink controller RX_IDX: iso_rx_first / iso_rx_last (Unix s) and iso_rx count of its ISO packets in each
window of the comma-separated WINDOWS (START:END Unix s).
usage: big_events.py CAPTURE.btsnoop FROM RX_IDX [WINDOWS]
"""
import struct, sys
from rigaudio import btsnoop_records

EPOCH_DELTA_US = 0x00DCDDB30F2F8000  # btsnoop time (µs since year 0) - Unix time
COMMAND, EVENT, ISO_RX = 2, 3, 19  # btmon monitor opcodes
CMDS = {0x2068: 'create_big', 0x206A: 'terminate_big', 0x203C: 'remove_adv_set', 0x203D: 'clear_adv_sets',
        0x2039: 'ext_adv_enable', 0x2040: 'pa_enable', 0x206B: 'big_create_sync'}
EVTS = {0x1B: 'create_big_complete', 0x1C: 'terminate_big_complete', 0x1D: 'big_sync_established',
        0x1E: 'big_sync_lost'}

cap, t_from, rx_idx = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
wins = []
if len(sys.argv) > 4 and sys.argv[4]:
    for w in sys.argv[4].split(','):
        a, b = w.split(':')
        wins.append([float(a), float(b), 0])
first = last = None
for op, idx, ts, data in btsnoop_records(cap):
    t = (ts - EPOCH_DELTA_US) / 1e6
    if op == ISO_RX and idx == rx_idx:
        for w in wins:
            if w[0] <= t <= w[1]:
                w[2] += 1
        if t >= t_from:
            first = t if first is None else first
            last = t
        continue
    if t < t_from:
        continue
    if op == COMMAND and len(data) >= 3:
        opcode, plen = struct.unpack_from('<HB', data, 0)
        name = CMDS.get(opcode)
        if name:
            extra = ' enable=%d' % data[3] if opcode in (0x2039, 0x2040) and plen >= 1 else ''
            print('cmd idx=%d t=%.3f name=%s%s' % (idx, t, name, extra))
    elif op == EVENT and len(data) >= 4 and data[0] == 0x3E:
        name = EVTS.get(data[2])
        if name:
            st = data[4] if data[2] == 0x1E and len(data) >= 5 else data[3]  # BIG Sync Lost: handle, reason
            print('evt idx=%d t=%.3f name=%s status=0x%02x' % (idx, t, name, st))
print('iso_rx_first=%s' % ('%.3f' % first if first is not None else 'none'))
print('iso_rx_last=%s' % ('%.3f' % last if last is not None else 'none'))
for i, (a, b, n) in enumerate(wins):
    print('iso_rx_w%d=%d' % (i, n))
