"""A loopback aiosendspin server for bluebridge's integration tests.

Runs the reference `SendspinServer` in-process, mounts its WebSocket handler on its own aiohttp route (no mDNS:
`start_server()` always starts it), uses CLOCK_MONOTONIC as the server clock (so its timestamps are the test
machine's monotonic clock in microseconds), waits for `--players` players, groups them and streams a click track
(PCM, s16 stereo: a Gaussian click every --click-interval-ms; `--signal tone`: bluebridge's own test signal, a
440 Hz tone with the click at 0.1 s of every second, for the rig). Everything it sees is printed as one JSON object per line on stdout:
  {"event": "listening", "port": P}
  {"event": "connection"}                  a WebSocket connection arrived (before any handshake)
  {"event": "client", "id": ..., "name": ...}
  {"event": "trusted", "id": ...}          the client id was trusted for unpaired playback (--trust-after-ms)
  {"event": "player", "id": ..., "name": ..., "output_delay_ms": ..., "volume": ..., "muted": ..., "codec": ...}
  {"event": "click", "play_us": T}       scheduled play time (server clock = CLOCK_MONOTONIC, µs) of a click onset
  {"event": "rebase", "at_us": T, "shift_us": S}   a chunk was not stamped right after the previous one: the server
                                          fell behind its send-ahead floor and moved the timeline S µs on (a gap)
  {"event": "command", "name": N, "command": C, "value": V, "at_us": T}   a --command was sent (server clock, µs)
  {"event": "ref_click", "play_us": T}   --ref-client: the reference player's compute_play_time() of a click (µs)
  {"event": "done"}
`--mdns-host IP` runs the server as Music Assistant does instead (`start_server` on IP:--port with its zeroconf on
that interface: it advertises `_sendspin-server._tcp` and dials the `_sendspin._tcp` players it finds).
Transition mode (`allow_unencrypted`) admits players that send a plain `client/hello`; `--encrypted-only` turns it
off (the library's default). An encrypted player plays only once the server trusts its client id for unpaired
playback, which Music Assistant does when the user accepts the player: `--trust-after-ms N` does it N ms after the
client first appears (`SendspinServer.trust_unpaired`, which re-activates a connected client); -1 (the default)
never trusts anyone.
`--codec flac|pcm|opus` makes the server stream that codec to every player, as an operator's choice does
(`PlayerV1Role.set_preferred_format(None, codec=…)`: the first format of that codec in the player's list); without
it the server picks the first format of the player's list it can encode.
`--command AT_S:NAME:volume:V` / `--command AT_S:NAME:mute:true|false` (repeatable) sends that player command
through the server's own player role (`set_volume`, `set_mute`) AT_S seconds after the stream started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import time

# aiosendspin imports PyAV lazily at the stream's first commit; imported here, before the server listens, its cost
# (seconds under the rig's emulator) is paid during set-up instead of next to the first chunks.
import av  # noqa: F401
from aiohttp import web

from aiosendspin.audio.format import AudioFormat
from aiosendspin.models.types import AudioCodec
from aiosendspin.noise.keys import Identity
from aiosendspin.noise.trust_store import InMemoryServerPairingStore
from aiosendspin.server.server import ClientAddedEvent, SendspinServer


class MonotonicClock:
    """CLOCK_MONOTONIC in µs: the clock bluebridge's timeline and the test's onset times use."""

    def now_us(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1_000


def emit(**obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--players", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--click-interval-ms", type=int, default=500)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--chunk-ms", type=int, default=20)
    ap.add_argument("--max-ahead-ms", type=int, default=1500,
                    help="how far ahead of its clock the server may fill the players' buffers (sleep_to_limit_buffer)")
    ap.add_argument("--encrypted-only", action="store_true")
    ap.add_argument("--trust-after-ms", type=int, default=-1)
    ap.add_argument("--codec", choices=["flac", "pcm", "opus"])
    ap.add_argument("--signal", choices=["clicks", "tone"], default="clicks")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--command", action="append", default=[], metavar="AT_S:NAME:volume|mute:VALUE")
    ap.add_argument("--mdns-host", default=None, metavar="IP",
                    help="run the server as Music Assistant does (start_server: its own listener on IP:--port, "
                         "mDNS on that interface, advertising _sendspin-server._tcp and dialling _sendspin._tcp players)")
    ap.add_argument("--ref-client", default=None, metavar="NAME",
                    help="also run aiosendspin's own reference client (SendspinClient) as player NAME on the same "
                         "server; it prints {\"event\": \"ref_click\", \"play_us\": T} with the play time its "
                         "compute_play_time() gives each click it receives")
    args = ap.parse_args()
    if os.environ.get("SENDSPIN_DEBUG_LOG"):
        # Diagnosis: the library's debug log to a file (stderr is a pipe the test reads only at the end).
        logging.basicConfig(filename=os.environ["SENDSPIN_DEBUG_LOG"], level=logging.DEBUG,
                            format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    loop = asyncio.get_running_loop()
    server = SendspinServer(
        loop,
        Identity.generate(),
        "bluebridge-test",
        pairing_store=InMemoryServerPairingStore(),
        allow_unencrypted=not args.encrypted_only,
        clock=MonotonicClock(),
    )
    added: list[str] = []
    tasks: set[asyncio.Task[None]] = set()

    async def trust(client_id: str) -> None:
        await asyncio.sleep(args.trust_after_ms / 1000)
        await server.trust_unpaired(client_id)
        emit(event="trusted", id=client_id)
        added.append(client_id)

    def on_event(_srv: SendspinServer, ev: object) -> None:
        if isinstance(ev, ClientAddedEvent):
            c = server.get_client(ev.client_id)
            emit(event="client", id=ev.client_id, name=c.name if c else None)
            if args.trust_after_ms >= 0 and c is not None and c.connection.is_encrypted:
                t = loop.create_task(trust(ev.client_id))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            else:
                added.append(ev.client_id)

    server.add_event_listener(on_event)
    runner = None
    if args.mdns_host is not None:
        await server.start_server(port=args.port, host=args.mdns_host, advertise_addresses=[args.mdns_host])
        emit(event="listening", port=args.port, path=SendspinServer.API_PATH)
    else:
        runner = await serve_loopback(server, args.host, args.port)
    if args.ref_client is not None:
        ref = loop.create_task(run_ref_client(f"ws://127.0.0.1:{LISTENING['port']}{SendspinServer.API_PATH}",
                                              args.ref_client, args.rate))
        tasks.add(ref)

    await stream_clicks(server, args, added)
    if runner is not None:
        await runner.cleanup()
    else:
        await server.close()


async def serve_loopback(server: SendspinServer, host: str, port: int) -> web.AppRunner:
    """The server's WebSocket handler on its own loopback route (no mDNS)."""

    async def on_connect(request: web.Request) -> web.StreamResponse:
        emit(event="connection")
        return await server.on_client_connect(request)

    app = web.Application()
    app.router.add_get(SendspinServer.API_PATH, on_connect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
    emit(event="listening", port=port, path=SendspinServer.API_PATH)
    LISTENING["port"] = port
    return runner


LISTENING: dict[str, int] = {}
# The click's centre sample (see stream_clicks): only it has this value.
PEAK = round(0.8 * 32767)


async def run_ref_client(url: str, name: str, rate: int) -> None:
    """aiosendspin's reference player: the library decides when each chunk plays with compute_play_time() (its
    time filter, on the same CLOCK_MONOTONIC as the server); each click's play time is printed."""
    from aiosendspin.client import SendspinClient
    from aiosendspin.models.player import ClientHelloPlayerSupport, SupportedAudioFormat
    from aiosendspin.models.types import AudioCodec, Roles
    from aiosendspin.noise.trust_store import InMemoryClientPairingStore

    client = SendspinClient(
        Identity.generate(),
        name,
        [Roles.PLAYER],
        pairing_store=InMemoryClientPairingStore(),
        player_support=ClientHelloPlayerSupport(
            supported_formats=[SupportedAudioFormat(codec=AudioCodec.PCM, channels=2, sample_rate=rate, bit_depth=16)],
            buffer_capacity=576_000,
        ),
        clock=MonotonicClock(),
    )
    await client.set_unpaired_access(enabled=True)

    def on_chunk(ts: int, data: bytes, _fmt: object, _send_ahead: int) -> None:
        left = memoryview(data).cast("h")[::2]
        for i, v in enumerate(left):
            if v == PEAK:
                emit(event="ref_click", play_us=client.compute_play_time(ts) + i * 1_000_000 / rate)

    client.add_audio_chunk_listener(on_chunk)
    await client.connect(url)
    await asyncio.Event().wait()


async def stream_clicks(server: SendspinServer, args: argparse.Namespace, added: list[str]) -> None:
    """Waits for the players, groups them, streams the click track."""

    while len(added) < args.players:
        await asyncio.sleep(0.05)
    clients = [server.get_client(cid) for cid in added[: args.players]]
    group = clients[0].group
    for c in clients[1:]:
        await group.add_client(c)

    if args.codec is not None:
        for c in clients:
            # The role appears once the server activated it (right after trusting an encrypted player).
            for _ in range(100):
                if c.role("player@v1") is not None:
                    break
                await asyncio.sleep(0.05)
            role = c.role("player@v1")
            if role is None or not role.set_preferred_format(None, codec=AudioCodec(args.codec)):
                emit(event="codec_error", name=c.name, codec=args.codec)

    def report_players() -> None:
        for c in clients:
            role = c.role("player@v1")
            if role is None:
                continue
            emit(event="player", id=c.client_id, name=c.name, output_delay_ms=role.output_delay_ms,
                 volume=role.volume, muted=role.muted,
                 codec=role.preferred_codec.value if role.preferred_codec else None)

    fmt = AudioFormat(sample_rate=args.rate, bit_depth=16, channels=2)
    chunk = args.rate * args.chunk_ms // 1000
    if args.signal == "tone":
        # bluebridge's own test signal (`source/tone.rs` TestSignal): a 440 Hz tone at 0.1 and a Gaussian click
        # (sigma 1.5 frames, peak 0.8) centred on frame 4800 of every second, so the rig's analyses judge it as
        # they judge the tone source.
        interval, centre = args.rate, args.rate // 10

        def value(n: int) -> float:
            d = n % interval - centre
            click = 0.8 * math.exp(-0.5 * (d / 1.5) ** 2) if abs(d) < 12 else 0.0
            return 0.1 * math.sin(2 * math.pi * 440 * n / args.rate) + click
    else:
        # The click: a Gaussian pulse (sigma 1.5 frames, peak 0.8) centred exactly on frame CENTRE of each interval,
        # as bluebridge's own test signal, so its time is known to a fraction of a frame.
        interval, centre = args.rate * args.click_interval_ms // 1000, 64

        def value(n: int) -> float:
            d = n % interval - centre
            return 0.8 * math.exp(-0.5 * (d / 1.5) ** 2) if abs(d) <= 8 else 0.0
    # One interval of the signal, computed once (it repeats exactly): s16 stereo.
    period = bytearray()
    for n in range(interval):
        period += max(-32768, min(32767, round(32767 * value(n)))).to_bytes(2, "little", signed=True) * 2
    commands = []
    for spec in args.command:
        at_s, name, what, value = spec.split(":")
        if what not in ("volume", "mute"):
            sys.exit(f"--command {spec}: volume or mute")
        commands.append((float(at_s), name, what, value))

    async def run_commands() -> None:
        t0 = time.monotonic()
        for at_s, name, what, value in sorted(commands):
            await asyncio.sleep(max(0.0, t0 + at_s - time.monotonic()))
            targets = [c for c in clients if c.name == name]
            if not targets:
                emit(event="command_error", name=name, reason="no such player")
                continue
            role = targets[0].role("player@v1")
            if what == "volume":
                role.set_volume(int(value))
            else:
                role.set_mute(value == "true")
            emit(event="command", name=name, command=what, value=value, at_us=server.clock.now_us())

    command_task = asyncio.create_task(run_commands())
    stream = group.start_stream()
    frame = 0
    expected_us: float | None = None
    total = int(args.seconds * args.rate)
    last_report = 0.0
    while frame < total:
        pos = frame % interval
        pcm = bytearray(period[pos * 4 : (pos + chunk) * 4])
        while len(pcm) < chunk * 4:
            pcm += period[: chunk * 4 - len(pcm)]
        # The click in this chunk, if any (arithmetic: a Python loop over the chunk's frames costs a vCPU share
        # under the rig's emulator).
        first_click = (centre - pos) % interval
        stream.prepare_audio(bytes(pcm), fmt)
        start_us = await stream.commit_audio()
        if expected_us is not None and abs(start_us - expected_us) > 1:
            # The server fell behind its send-ahead floor and moved the timeline on (push_stream.py's rebase in
            # _resolve_channel_play_start): a gap in what players hear, and later clicks no longer a whole number
            # of intervals after the first.
            emit(event="rebase", at_us=server.clock.now_us(), shift_us=start_us - expected_us)
        expected_us = start_us + chunk * 1_000_000 / args.rate
        for i in range(first_click, chunk, interval):
            emit(event="click", play_us=start_us + i * 1_000_000 / args.rate)
        frame += chunk
        await stream.sleep_to_limit_buffer(args.max_ahead_ms * 1000)
        if time.monotonic() - last_report > 1.0:
            last_report = time.monotonic()
            report_players()
    # Let the buffered audio play out before leaving.
    await asyncio.sleep(2.0)
    command_task.cancel()
    report_players()
    emit(event="done")


if __name__ == "__main__":
    asyncio.run(main())
