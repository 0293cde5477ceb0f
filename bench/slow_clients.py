"""Keep-alive clients reading one response slowly, every byte checked (edge-slow-clients).

Each client reads at `--rate` from its response headers on, until the end of the
ramp plus `--slow-seconds`; then as fast as it can until `--finish-seconds` later.
Prints JSON lines on stdout: `{"event": "ready", ...}` once every connection has
its response headers (or the slow phase is over), `{"event": "finishing"}` when
the slow phase ends, and `{"event": "done", ...}` with the tally last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import resource
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Tally:
    """What the clients saw, summed."""

    connected: int = 0
    headers: int = 0  # got a 200 with the expected Content-Length
    bad_status: int = 0
    finished: int = 0  # read the whole body, every byte as expected
    unfinished: int = 0  # still reading when time ran out
    closed_early: int = 0  # the server closed (or reset) before the end of the body
    wrong_bytes: int = 0  # a byte differed from the expected body
    errors: dict[str, int] = field(default_factory=dict)  # before headers, by exception
    read_at_slow_end: list[int] = field(default_factory=list)  # bytes each had read by then
    closed_at: list[float] = field(default_factory=list)  # seconds into the run, per early close


class Clients:
    """N connections to one URL, paced reads, the body compared with `expected`."""

    def __init__(self, args: argparse.Namespace, expected: memoryview) -> None:
        url = urlsplit(args.url)
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        target = url.path + ("?" + url.query if url.query else "")
        self.request = (
            f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\nUser-Agent: vodedge-bench-slow\r\n"
            "Accept: */*\r\n\r\n"
        ).encode()
        self.args = args
        self.expected = expected
        self.tally = Tally()
        self.started = time.monotonic()
        # Every client reads slowly from its headers on, until the same moment: the
        # end of the ramp plus the slow phase; then freely until the deadline.
        self.slow_until = self.started + args.ramp_seconds + args.slow_seconds
        self.deadline = self.slow_until + args.finish_seconds
        self.ready = asyncio.Event()  # every client has its headers (or gave up)
        self.pending = args.connections

    def _answered(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.ready.set()

    async def one(self, number: int) -> None:
        """One client: connect, request, read at the paced rate, then freely until the end."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A fixed small receive buffer (it also turns autotuning off): the server,
        # not the kernel, must hold the rest of the body, as with a slow link.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.args.rcvbuf)
        sock.setblocking(False)
        answered = False
        try:
            # A server out of descriptors may leave connections in its backlog.
            async with asyncio.timeout_at(loop.time() + self.deadline - time.monotonic()):
                await loop.sock_connect(sock, self.address)
                self.tally.connected += 1
                reader, writer = await asyncio.open_connection(sock=sock, limit=self.args.read_size)
                writer.write(self.request)
                length = await self._headers(reader)
            answered = True
            self._answered()
            if length is not None:
                await self._read_body(number, reader, length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            name = type(exc).__name__
            self.tally.errors[name] = self.tally.errors.get(name, 0) + 1
        finally:
            if not answered:
                self._answered()
            sock.close()

    async def _headers(self, reader: asyncio.StreamReader) -> int | None:
        """The Content-Length of a good response's headers, None (counted) otherwise."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = -1
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if not lines[0].startswith("HTTP/1.1 200") or length != len(self.expected):
            self.tally.bad_status += 1
            return None
        self.tally.headers += 1
        return length

    async def _read_body(self, number: int, reader: asyncio.StreamReader, length: int) -> None:
        rate = self.args.rate
        chunk = max(rate // 4, 1)
        offset = 0
        # Clients start their clocks a little apart, so reads are spread over time.
        paced_from = time.monotonic() + (number % 97) / 97 / 4
        reported = False
        while offset < length:
            now = time.monotonic()
            if now >= self.deadline:
                self.tally.unfinished += 1
                break
            slow = now < self.slow_until
            if not slow and not reported:
                self.tally.read_at_slow_end.append(offset)
                reported = True
            if slow:
                allowed = int((now - paced_from) * rate)
                if offset >= allowed:
                    wake = paced_from + (offset + chunk) / rate
                    await asyncio.sleep(min(wake, self.slow_until) - now)
                    continue
                want = min(chunk, length - offset)
            else:
                want = min(1 << 20, length - offset)
            try:
                data = await asyncio.wait_for(reader.read(want), self.deadline - now)
            except TimeoutError:
                self.tally.unfinished += 1
                break
            except OSError:
                data = b""
            if not data:
                self.tally.closed_early += 1
                self.tally.closed_at.append(round(time.monotonic() - self.started, 1))
                break
            if data != self.expected[offset : offset + len(data)]:
                self.tally.wrong_bytes += 1
                break
            offset += len(data)
        else:
            self.tally.finished += 1
        if not reported:
            self.tally.read_at_slow_end.append(offset)

    async def run(self) -> Tally:
        """Open the connections over the ramp, read slowly, then let them finish."""
        args = self.args
        tasks = []
        gap = args.ramp_seconds / max(args.connections, 1)
        for number in range(args.connections):
            tasks.append(asyncio.create_task(self.one(number)))
            await asyncio.sleep(gap)
        try:
            await asyncio.wait_for(self.ready.wait(), max(self.slow_until - time.monotonic(), 0))
        except TimeoutError:
            self.ready.set()  # some never got headers: the parent probes anyway
        emit(
            "ready",
            connected=self.tally.connected,
            headers=self.tally.headers,
            seconds=round(time.monotonic() - self.started, 1),
        )
        await asyncio.sleep(max(self.slow_until - time.monotonic(), 0))
        emit("finishing")
        # Every task ends by the deadline; the margin only covers scheduling.
        await asyncio.wait(tasks, timeout=args.finish_seconds + 10)
        return self.tally


def emit(event: str, **fields: object) -> None:
    """One JSON line on stdout for the parent."""
    print(json.dumps({"event": event, **fields}), flush=True)


def raise_fd_limit(wanted: int) -> str:
    """Raise RLIMIT_NOFILE towards `wanted` (up to the hard limit); the resulting soft/hard."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return f"{soft}/{hard}"


def main(argv: list[str] | None = None) -> int:
    """Run the clients and print the tally."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--expect", type=Path, required=True, help="the body every client wants")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=4096, help="bytes/s per client, slow phase")
    parser.add_argument("--ramp-seconds", type=float, default=5.0)
    parser.add_argument("--slow-seconds", type=float, default=40.0)
    parser.add_argument("--finish-seconds", type=float, default=20.0)
    parser.add_argument("--rcvbuf", type=int, default=64 << 10)
    parser.add_argument("--read-size", type=int, default=16 << 10)
    args = parser.parse_args(argv)
    # Each connection is one descriptor, plus the interpreter's own few.
    limit = raise_fd_limit(args.connections + 64)
    with args.expect.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mm:
        emit("start", fd_limit=limit, connections=args.connections)
        with memoryview(mm) as expected:
            result = asdict(asyncio.run(Clients(args, expected).run()))
    reads = sorted(result.pop("read_at_slow_end"))
    result["read_at_slow_end_median"] = reads[len(reads) // 2] if reads else 0
    result["read_at_slow_end_min"] = reads[0] if reads else 0
    closed = sorted(result.pop("closed_at"))
    result["first_closed_at"] = closed[0] if closed else None
    result["fd_limit"] = limit
    emit("done", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
