#!/usr/bin/env python3
"""Regenerates ogg_header.bin / ogg_chunks.bin: runs snapserver 0.26 with a pipe stream on loopback, feeds it a
440 Hz tone (48000:16:2) and records the CodecHeader's header bytes and the first WireChunks' payloads (each chunk
as u32 LE length + bytes). Usage: python3 capture.py [OUT_DIR [CODEC]]   (CODEC: ogg (default), flac, opus, pcm;
needs snapserver, see scripts/setup). Files are named <codec>_header.bin and <codec>_chunks.bin."""
import math, os, socket, struct, subprocess, sys, tempfile, threading, time, json

out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
codec = sys.argv[2] if len(sys.argv) > 2 else "ogg"
tmp = tempfile.mkdtemp()
fifo = os.path.join(tmp, "fifo")
port = 18804
srv = subprocess.Popen(
    ["snapserver", "-c", "/dev/null", f"--server.datadir={tmp}", "--stream.bind_to_address=127.0.0.1",
     f"--stream.port={port}", "--tcp.bind_to_address=127.0.0.1", f"--tcp.port={port + 1}", "--http.enabled=false",
     f"--stream.source=pipe://{fifo}?name=default&sampleformat=48000:16:2&codec={codec}&chunk_ms=20",
     "--logging.sink=null"], env=dict(os.environ, HOME=tmp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.0)

def feed():
    with open(fifo, "wb") as f:
        for k in range(0, 48000 * 4, 960):
            f.write(b"".join(struct.pack("<hh", v, v) for v in
                             (int(8000 * math.sin(2 * math.pi * 440 * (k + i) / 48000)) for i in range(960))))
threading.Thread(target=feed, daemon=True).start()

s = socket.create_connection(("127.0.0.1", port))
hello = json.dumps({"MAC": "00:00:00:00:00:00", "HostName": "cap", "Version": "0", "ClientName": "cap", "OS": "l",
                    "Arch": "x", "Instance": 1, "ID": "capture", "SnapStreamProtocolVersion": 2}).encode()
payload = struct.pack("<I", len(hello)) + hello
s.sendall(struct.pack("<HHHiiiiI", 5, 1, 0, 0, 0, 0, 0, len(payload)) + payload)

def read(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

header, chunks = None, []
while len(chunks) < 75:
    t, _, _, _, _, _, _, size = struct.unpack("<HHHiiiiI", read(26))
    p = read(size)
    if t == 1:
        n = struct.unpack_from("<I", p)[0]
        hl = struct.unpack_from("<I", p, 4 + n)[0]
        header = p[8 + n:8 + n + hl]
    elif t == 2 and header is not None:
        ln = struct.unpack_from("<I", p, 8)[0]
        chunks.append(p[12:12 + ln])
srv.terminate()
open(os.path.join(out_dir, f"{codec}_header.bin"), "wb").write(header)
open(os.path.join(out_dir, f"{codec}_chunks.bin"), "wb").write(b"".join(struct.pack("<I", len(c)) + c for c in chunks))
print(len(header), "header bytes,", len(chunks), "chunks,", sum(map(len, chunks)), "chunk bytes")
