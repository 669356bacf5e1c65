"""What a receiver-side controller heard of a broadcast's extended advertising, from the btmon capture (btsnoop,
monitor datalink): every LE Extended Advertising Report event (LE Meta subevent 0x0D) on controller IDX, its AD
structures decoded from the raw bytes (btmon 5.87's own Public Broadcast Announcement decoder prints "invalid
features" for every announcement: monitor/packet.c:3766, the success of util_iov_pull_u8 taken for failure).

usage: adv_reports.py CAPTURE.btsnoop IDX          (what receiver IDX heard)
       adv_reports.py CAPTURE.btsnoop sets IDX     (what broadcaster IDX's host told its controller)
The second prints `ext_adv_data idx=I handle=H <AD fields>` for each LE Set Extended Advertising Data,
`per_adv_data idx=I handle=H base=0|1` for each LE Set Periodic Advertising Data (base=1: it holds 0x1851), and
`create_big idx=I big=B adv_handle=H` for each LE Create BIG: the BIG's set is the one whose handle matches. (btvirt
leaves the Periodic_Advertising_Interval of its reports at 0, emulator/btdev.c:5486-5522 in 5.87, so a receiver's
report cannot say which set has the periodic advertising.)
Prints one line per distinct advertisement (consecutive repeats counted): `adv idx=I addr=AA:.. type=T sid=S
pa_interval=N broadcast_id=0xHHHHHH name=NAME pba_features=0xFF pba_meta=HEX mfr=CCCC:HEX count=K` (fields absent
when the report lacks them), then `summary reports=N with_name=N`.
"""
import struct, sys
from rigaudio import btsnoop_records

COMMAND, EVENT = 2, 3
LE_SET_EXT_ADV_DATA, LE_SET_PER_ADV_DATA, LE_CREATE_BIG = 0x2037, 0x203F, 0x2068
LE_META, SUB_EXT_ADV_REPORT = 0x3E, 0x0D


def ad_structures(data):
    i = 0
    while i < len(data):
        n = data[i]
        if n == 0 or i + 1 + n > len(data):
            break
        yield data[i + 1], data[i + 2:i + 1 + n]
        i += 1 + n


def describe(addr, addr_type, sid, pa_interval, data):
    f = ['addr=%s' % ':'.join('%02X' % b for b in reversed(addr)), 'type=%d' % addr_type, 'sid=%d' % sid,
         'pa_interval=%d' % pa_interval]
    for t, v in ad_structures(data):
        if t == 0x16 and len(v) >= 2:
            uuid = v[0] | v[1] << 8
            if uuid == 0x1852 and len(v) >= 5:
                f.append('broadcast_id=0x%06x' % (v[2] | v[3] << 8 | v[4] << 16))
            elif uuid == 0x1856 and len(v) >= 4:
                f.append('pba_features=0x%02x' % v[2])
                f.append('pba_meta=%s' % (v[4:4 + v[3]].hex() or '-'))
        elif t == 0x30:
            f.append('name=%s' % v.decode('utf-8', 'replace').replace(' ', '_'))
        elif t == 0xFF and len(v) >= 2:
            f.append('mfr=%04x:%s' % (v[0] | v[1] << 8, v[2:].hex() or '-'))
    return ' '.join(f)


def sets(path, want):
    for op, idx, _ts, d in btsnoop_records(path):
        if op != COMMAND or idx != want or len(d) < 3:
            continue
        opcode, plen = struct.unpack_from('<HB', d, 0)
        p = bytes(d[3:3 + plen])
        if opcode == LE_SET_EXT_ADV_DATA and len(p) >= 4:
            f = describe(b'\0' * 6, 0, 0, 0, p[4:4 + p[3]]).split(' ')[4:]
            print('ext_adv_data idx=%d handle=%d %s' % (idx, p[0], ' '.join(f) or '-'))
        elif opcode == LE_SET_PER_ADV_DATA and len(p) >= 3:
            base = any(t == 0x16 and v[:2] == b'\x51\x18' for t, v in ad_structures(p[3:3 + p[2]]))
            print('per_adv_data idx=%d handle=%d base=%d' % (idx, p[0], base))
        elif opcode == LE_CREATE_BIG and len(p) >= 2:
            print('create_big idx=%d big=%d adv_handle=%d' % (idx, p[0], p[1]))


def main():
    if sys.argv[2] == 'sets':
        return sets(sys.argv[1], int(sys.argv[3]))
    path, want = sys.argv[1], int(sys.argv[2])
    last, count, reports, named = None, 0, 0, 0
    for op, idx, _ts, ev in btsnoop_records(path):
        if op != EVENT or idx != want or len(ev) < 4 or ev[0] != LE_META or ev[2] != SUB_EXT_ADV_REPORT:
            continue
        p, n = 4, ev[3]
        for _ in range(n):
            if p + 24 > len(ev):
                break
            addr_type = ev[p + 2]
            addr = ev[p + 3:p + 9]
            sid = ev[p + 11]
            pa_interval = struct.unpack_from('<H', ev, p + 14)[0]
            dlen = ev[p + 23]
            data = bytes(ev[p + 24:p + 24 + dlen])
            p += 24 + dlen
            reports += 1
            line = describe(addr, addr_type, sid, pa_interval, data)
            if 'name=' in line:
                named += 1
            if line == last:
                count += 1
                continue
            if last is not None:
                print('adv idx=%d %s count=%d' % (want, last, count))
            last, count = line, 1
    if last is not None:
        print('adv idx=%d %s count=%d' % (want, last, count))
    print('summary reports=%d with_name=%d' % (reports, named))


main()
