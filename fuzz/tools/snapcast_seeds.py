#!/usr/bin/env python3
"""Regenerates the proto_decode and audio_decode seeds from a real snapserver (scripts/setup installs it): for each
codec (pcm, flac, opus, ogg) it runs snapserver with a pipe stream on loopback, feeds it a 440 Hz tone
(48000:16:2), says Hello and asks the time once, and records the server's byte stream. Writes
seeds/proto_decode/snapserver-<codec> (the first whole messages, at most LIMIT bytes) and
seeds/audio_decode/snapserver-<codec> (codec byte, u16 LE header length + header, then the first chunks as
u16 LE length + bytes: the audio_decode input format). Usage: python3 tools/snapcast_seeds.py"""
import json, math, os, socket, struct, subprocess, tempfile, threading, time

LIMIT = 12 * 1024
CODECS = {"pcm": 0, "flac": 1, "opus": 2, "ogg": 3}  # audio_decode's codec byte (index % 5)
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def capture(codec, port):
    tmp = tempfile.mkdtemp()
    fifo = os.path.join(tmp, "fifo")
    srv = subprocess.Popen(
        ["snapserver", "-c", "/dev/null", f"--server.datadir={tmp}", "--stream.bind_to_address=127.0.0.1",
         f"--stream.port={port}", "--tcp.bind_to_address=127.0.0.1", f"--tcp.port={port + 1}",
         "--http.enabled=false",
         f"--stream.source=pipe://{fifo}?name=default&sampleformat=48000:16:2&codec={codec}&chunk_ms=20",
         "--logging.sink=null"], env=dict(os.environ, HOME=tmp), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    time.sleep(1.0)

    def feed():
        try:
            with open(fifo, "wb") as f:
                for k in range(0, 48000 * 4, 960):
                    f.write(b"".join(struct.pack("<hh", v, v) for v in (
                        int(8000 * math.sin(2 * math.pi * 440 * (k + i) / 48000)) for i in range(960))))
        except BrokenPipeError:  # the server is gone: the capture is done
            pass
    threading.Thread(target=feed, daemon=True).start()
    s = socket.create_connection(("127.0.0.1", port))
    hello = json.dumps({"MAC": "00:00:00:00:00:00", "HostName": "seed", "Version": "0", "ClientName": "seed",
                        "OS": "l", "Arch": "x", "Instance": 1, "ID": "seed", "SnapStreamProtocolVersion": 2}).encode()
    payload = struct.pack("<I", len(hello)) + hello
    s.sendall(struct.pack("<HHHiiiiI", 5, 1, 0, 0, 0, 0, 0, len(payload)) + payload)
    s.sendall(struct.pack("<HHHiiiiI", 4, 2, 0, 0, 0, 0, 0, 8) + struct.pack("<ii", 0, 0))

    def read(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    stream, header, chunks = b"", None, []
    while len(chunks) < 8:
        base = read(26)
        t, size = struct.unpack_from("<H", base)[0], struct.unpack_from("<I", base, 22)[0]
        p = read(size)
        if len(stream) + 26 + size <= LIMIT:
            stream += base + p
        if t == 1:
            n = struct.unpack_from("<I", p)[0]
            hl = struct.unpack_from("<I", p, 4 + n)[0]
            header = p[8 + n:8 + n + hl]
        elif t == 2 and header is not None:
            ln = struct.unpack_from("<I", p, 8)[0]
            chunks.append(p[12:12 + ln])
    srv.terminate()
    srv.wait()
    audio = bytes([CODECS[codec]]) + struct.pack("<H", len(header)) + header
    for c in chunks:
        if len(audio) + 2 + len(c) > LIMIT:
            break
        audio += struct.pack("<H", len(c)) + c
    return stream, audio


for i, codec in enumerate(CODECS):
    stream, audio = capture(codec, 18900 + 2 * i)
    for target, data in (("proto_decode", stream), ("audio_decode", audio)):
        os.makedirs(os.path.join(here, "seeds", target), exist_ok=True)
        open(os.path.join(here, "seeds", target, f"snapserver-{codec}"), "wb").write(data)
    print(codec, len(stream), "stream bytes,", len(audio), "audio_decode bytes")
