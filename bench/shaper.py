"""An origin link for the cold-cache benchmark: a TCP proxy that caps the total rate from the
origin (all connections together), optionally adds a round-trip time, and counts the bytes.

`python bench/shaper.py --upstream 127.0.0.1:8081 --rate-mbit 100 [--rtt-ms 20]` prints
`PORT <proxy> <stats>` once it listens on 127.0.0.1; `GET http://127.0.0.1:<stats>/`
answers JSON: bytes `down` (origin to client, counted as they leave the proxy) and `up`,
connections accepted and open, and `idle` (seconds since the last byte went down).
nginx's `limit_rate` caps each connection, not the link: a client opening several
connections would get several times the rate, which is why this proxy exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field

CHUNK = 32 << 10
QUEUE = 64  # chunks in flight per direction when a delay is added
BURST = 0.02  # seconds of the rate the link may send at once after a pause


@dataclass
class Stats:
    """What crossed the link so far."""

    down: int = 0
    up: int = 0
    connections: int = 0
    active: int = 0
    last_down: float = field(default_factory=time.monotonic)

    def snapshot(self) -> dict[str, float]:
        """The counters, and seconds since the last byte went down."""
        out: dict[str, float] = {k: v for k, v in asdict(self).items() if k != "last_down"}
        out["idle"] = time.monotonic() - self.last_down
        return out


class Link:
    """A shared pacing clock: every byte from the origin takes 1/rate seconds of it."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.clock = time.monotonic()

    async def take(self, size: int) -> None:
        """Wait until `size` more bytes may go. The clock may lag `BURST` s behind (a
        bucket of rate x BURST bytes): a sleep that overran is made up for, so a single
        connection gets the whole rate on a busy machine, and an idle link saves no more."""
        now = time.monotonic()
        self.clock = max(now - BURST, self.clock) + size / self.rate
        if self.clock > now:
            await asyncio.sleep(self.clock - now)


async def pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    link: Link | None,
    stats: Stats,
    down: bool,
) -> None:
    """Copy one direction until EOF, paced by `link` and late by `delay`, then half-close."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE)

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send()) if delay > 0 else None
    try:
        while data := await reader.read(CHUNK):
            if link is not None:
                await link.take(len(data))
            if down:
                stats.down += len(data)
                stats.last_down = time.monotonic()
            else:
                stats.up += len(data)
            if sender is None:
                writer.write(data)
                await writer.drain()
            elif sender.done():
                sender.result()  # the other side went away: raise what it raised
                return
            else:
                await queue.put((time.monotonic() + delay, data))
        if sender is not None:
            await queue.put((0.0, b""))
            await sender
        if writer.can_write_eof():
            writer.write_eof()
    finally:
        if sender is not None and not sender.done():
            sender.cancel()


async def handle(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream: tuple[str, int],
    delay: float,
    link: Link,
    stats: Stats,
) -> None:
    """One client connection: connect upstream, pump both ways until both end."""
    stats.connections += 1
    stats.active += 1
    origin_writer: asyncio.StreamWriter | None = None
    try:
        await asyncio.sleep(delay)  # the SYN's way there and the SYN-ACK's way back
        origin_reader, origin_writer = await asyncio.open_connection(*upstream)
        await asyncio.gather(
            pump(client_reader, origin_writer, delay, None, stats, down=False),
            pump(origin_reader, client_writer, delay, link, stats, down=True),
        )
    except (ConnectionError, OSError):
        # One side reset: abort the other too, as a router would pass the RST on.
        for writer in (client_writer, origin_writer):
            if writer is not None:
                writer.transport.abort()
    finally:
        stats.active -= 1
        for writer in (client_writer, origin_writer):
            if writer is not None:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()


async def answer_stats(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: Stats
) -> None:
    """A minimal HTTP/1.0 answer with the counters as JSON."""
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        body = json.dumps(stats.snapshot()).encode()
        writer.write(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    writer.close()


async def main(upstream: tuple[str, int], rate: float, rtt: float) -> None:
    """Listen, say where, proxy until SIGTERM."""
    stats = Stats()
    link = Link(rate)
    delay = rtt / 2
    proxy = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream, delay, link, stats), "127.0.0.1", 0
    )
    control = await asyncio.start_server(lambda r, w: answer_stats(r, w, stats), "127.0.0.1", 0)
    ports = [server.sockets[0].getsockname()[1] for server in (proxy, control)]
    sys.stdout.write(f"PORT {ports[0]} {ports[1]}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    proxy.close()
    control.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the origin")
    parser.add_argument("--rate-mbit", type=float, default=100.0, help="total, origin to client")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="added round-trip time")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    asyncio.run(main((host, int(port)), args.rate_mbit * 1e6 / 8, args.rtt_ms / 1000))
