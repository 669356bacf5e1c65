"""Ends a broadcast sink controller's periodic-advertising sync before the broadcaster goes away.

Why: sid's btvirt (5.87) crashes (general protection fault) when the broadcaster's controller removes its
advertising set while another emulated controller is still synced to its periodic advertising. The kernel (6.12)
terminates a sink's BIG sync when the ISO socket closes, but not its PA sync (no LE Periodic Advertising Terminate
Sync in the trace, even after the controller is powered off), so the emulator kept a synced receiver and crashed
when bluebridge stopped (seen 3 Dec in `broadcast`, right after the LE Remove Advertising Set).

For each IDX: the sync handle of the last successful LE Periodic Advertising Sync Established event on hciIDX
(btmon's capture), then LE Periodic Advertising Terminate Sync (0x2046) on a raw HCI socket, and its status.
usage: pa_terminate.py CAPTURE.btsnoop IDX...
Prints `pa_terminate idx=I handle=H status=0xSS` (or `handle=none`) per IDX.
"""
import ctypes, select, socket, struct, sys
from rigaudio import btsnoop_records

EVENT = 3  # btmon monitor opcode: HCI event
LE_META, SUB_PA_SYNC_ESTABLISHED = 0x3E, 0x0E
OP = 0x2046  # LE Periodic Advertising Terminate Sync

cap, idxs = sys.argv[1], [int(a) for a in sys.argv[2:]]
handles = {}
for op, idx, _ts, data in btsnoop_records(cap):
    if op == EVENT and idx in idxs and len(data) >= 6 and data[0] == LE_META and data[2] == SUB_PA_SYNC_ESTABLISHED \
            and data[3] == 0:
        handles[idx] = struct.unpack_from('<H', data, 4)[0]
for idx in idxs:
    h = handles.get(idx)
    if h is None:
        print('pa_terminate idx=%d handle=none' % idx)
        continue
    s = socket.socket(31, socket.SOCK_RAW, 1)  # AF_BLUETOOTH, BTPROTO_HCI (numbers: Python may lack the names)
    # bind through libc: struct sockaddr_hci { family, dev, channel 0 = raw }
    addr = struct.pack('<HHH', 31, idx, 0)
    if ctypes.CDLL(None, use_errno=True).bind(s.fileno(), addr, len(addr)) != 0:
        print('pa_terminate idx=%d handle=%d status=bind-failed-errno-%d' % (idx, h, ctypes.get_errno()))
        continue
    # HCI filter: events only, every event (struct hci_ufilter: u32 type_mask, u32 event_mask[2], u16 opcode,
    # padded to 16 bytes; a shorter option is EINVAL)
    s.setsockopt(0, 2, struct.pack('<IIIHxx', 1 << 4, 0xffffffff, 0xffffffff, 0))
    s.send(struct.pack('<BHBH', 1, OP, 2, h))
    status = 'none'
    end = 20
    while end > 0:
        r, _, _ = select.select([s], [], [], 0.25)
        end -= 1
        if not r:
            continue
        p = s.recv(260)
        # Command Complete (0x0e): ncmd, opcode, status; Command Status (0x0f): status, ncmd, opcode
        if len(p) >= 7 and p[1] == 0x0E and struct.unpack_from('<H', p, 4)[0] == OP:
            status = '0x%02x' % p[6]
            break
        if len(p) >= 7 and p[1] == 0x0F and struct.unpack_from('<H', p, 5)[0] == OP:
            status = '0x%02x' % p[3]
            break
    s.close()
    print('pa_terminate idx=%d handle=%d status=%s' % (idx, h, status))
