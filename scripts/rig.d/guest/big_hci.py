"""What the controllers were told about BIG encryption, from the btmon capture (btsnoop, monitor datalink).

For every controller index: each HCI LE Create BIG command (Encryption flag and Broadcast_Code as sent to the
controller), each LE BIG Create Sync command (the same from a sink's host) and the status of each Create BIG
Complete / BIG Sync Established event. The emulator (btvirt) does not encrypt BIS payloads; it only refuses a BIG
sync whose Encryption flag differs from the BIG's. The code bytes are therefore checked here, on the HCI commands.

usage: big_hci.py CAPTURE.btsnoop
Prints lines: `create_big idx=I enc=E code=HEX`, `big_create_sync idx=I enc=E code=HEX`,
`big_complete idx=I status=0xSS`, `big_sync_established idx=I status=0xSS`, `biginfo idx=I enc=E` (each BIGInfo
Advertising Report a sink controller received: what the broadcast announces; consecutive repeats printed once).
"""
import struct, sys
from rigaudio import btsnoop_records

COMMAND, EVENT = 2, 3  # btmon monitor opcodes
LE_CREATE_BIG, LE_BIG_CREATE_SYNC = 0x2068, 0x206B
LE_META, SUB_CREATE_BIG_COMPLETE, SUB_BIG_SYNC_ESTABLISHED, SUB_BIGINFO = 0x3E, 0x1B, 0x1D, 0x22

last_biginfo = {}

for op, idx, _ts, data in btsnoop_records(sys.argv[1]):
    if op == COMMAND and len(data) >= 3:
        opcode, plen = struct.unpack_from('<HB', data, 0)
        p = data[3:3 + plen]
        if opcode == LE_CREATE_BIG and len(p) >= 31:
            # handle, adv handle, num_bis, sdu_interval(3), max_sdu(2), latency(2), rtn, phy, packing, framing,
            # encryption, code(16)
            print('create_big idx=%d enc=%d code=%s' % (idx, p[14], p[15:31].hex()))
        elif opcode == LE_BIG_CREATE_SYNC and len(p) >= 20:
            # handle, sync handle(2), encryption, code(16), mse, timeout(2), num_bis, bis...
            print('big_create_sync idx=%d enc=%d code=%s' % (idx, p[3], p[4:20].hex()))
    elif op == EVENT and len(data) >= 4 and data[0] == LE_META:
        sub, status = data[2], data[3]
        if sub == SUB_CREATE_BIG_COMPLETE:
            print('big_complete idx=%d status=0x%02x' % (idx, status))
        elif sub == SUB_BIG_SYNC_ESTABLISHED:
            print('big_sync_established idx=%d status=0x%02x' % (idx, status))
        elif sub == SUB_BIGINFO and len(data) >= 22:
            # sync handle(2), num_bis, nse, iso_interval(2), bn, pto, irc, max_pdu(2), sdu_interval(3), max_sdu(2),
            # phy, framing, encryption
            line = 'biginfo idx=%d enc=%d' % (idx, data[21])
            if last_biginfo.get(idx) != line:
                print(line)
                last_biginfo[idx] = line
