"""Benchmark `seek-floor` (issue 15): the ceiling of a lean Python hot path for clips.

A best case, not a server: one file, its MP4 index built once at start-up by
vodedge's real media layer (`read_index`, `Mp4Index.clip`, the fast clip plan),
served over HTTP/1.1 keep-alive by a connection object on httptools' parser that
reads and writes its socket itself through the event loop (`add_reader`, and
`add_writer` on EAGAIN): status line + headers + the plan's head in one `send`,
then the plan's spans with `os.sendfile`. No cache layer, no metrics, no
resolve, no access log: the floor. The `real` variant adds what a real edge
cannot skip: a resolve-like query parse (names and values checked), a
per-request open/fstat/close of the file with a version check, and counters.

    python bench/lean_clip.py serve --file F --port N [--loop uvloop] [--variant real]
    python bench/lean_clip.py compare [--seconds 10] [--connections 8] [--rounds 2]
    python bench/lean_clip.py inproc [--samples 2000]

`compare` runs nginx's mp4 module, vodedge and the lean servers side by side on
the same file, wrk script and seed (`bench/run.py seek-floor` does the same);
`inproc` splits the lean floor's own CPU per clip into plan, protocol and the
send/sendfile system calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl

import media
import seek
import servers
from harness import REPO, Row, Section, bench_env
from vodedge.media.errors import MediaError
from vodedge.media.mp4.index import Mp4Index, read_index
from vodedge.media.plan import Plan, Span
from vodedge.media.plan_columns import ColumnPlan
from vodedge.media.reading import run

# A piece of output: literal bytes, a file span (fd, offset, length), or an fd to
# close once everything before it is sent.
T = TypeVar("T")
Out = bytes | tuple[int, int, int] | int
NAME = "/long.mp4"
DURATION = 1800.0
CLIP = 10.0
READ_SIZE = 65536


def build_index(path: Path) -> Mp4Index:
    """The file's warm MP4 index, as vodedge's IndexMemo builds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        index = run(read_index(os.fstat(fd).st_size), lambda o, n: os.pread(fd, n, o))
    finally:
        os.close(fd)
    index.finish()  # as the edge has a worker thread do from its second clip on
    return index


def plan_parts(plan: Plan) -> tuple[bytes, list[tuple[int, int]]]:
    """The plan's leading literal and then its spans (a clip plan's shape)."""
    if isinstance(plan, ColumnPlan):
        return plan.head, list(zip(plan.offsets.tolist(), plan.lengths.tolist(), strict=True))
    pieces = list(plan.pieces)
    first = pieces[0] if pieces else b""
    head = first if isinstance(first, bytes) else b""
    spans = [(p.offset, p.length) for p in pieces if isinstance(p, Span)]
    if len(spans) + bool(head) != len(pieces):
        raise ValueError("a plan with literals after its head")  # not a clip plan's shape
    return head, spans


class Headers:
    """The response's fixed headers, the Date line remade once a second."""

    def __init__(self, path: Path) -> None:
        st = path.stat()
        self.fixed = (
            "\r\nContent-Type: video/mp4\r\nLast-Modified: "
            f"{formatdate(st.st_mtime, usegmt=True)}\r\nETag: "
            f'"{int(st.st_mtime):x}-{st.st_size:x}"\r\nAccept-Ranges: bytes\r\n'
        )
        self.second = -1
        self.date = ""

    def head(self, length: int) -> bytes:
        """Status line and headers of a 200 of `length` bytes."""
        now = int(time.time())
        if now != self.second:
            self.second, self.date = now, formatdate(now, usegmt=True)
        return (
            f"HTTP/1.1 200 OK\r\nServer: lean\r\nDate: {self.date}{self.fixed}"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()


def error(status: str, reason: str) -> bytes:
    """A small error response (the connection stays open)."""
    body = reason.encode() + b"\n"
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Floor:
    """The floor: the file open once, the query split by hand, the plan, the head."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index = build_index(path)
        self.clip: Callable[[float, float], Plan] = self.index.clip
        self.fd = os.open(path, os.O_RDONLY)
        self.headers = Headers(path)

    def respond(self, url: bytes) -> list[Out]:
        """The output pieces of one request."""
        target, _, query = url.partition(b"?")
        if target != b"/long.mp4":
            return [error("404 Not Found", "no such object")]
        try:
            args = dict(p.split(b"=", 1) for p in query.split(b"&"))
            plan = self.clip(float(args[b"start"]), float(args[b"end"]))
        except (ValueError, KeyError, MediaError) as exc:
            return [error("400 Bad Request", str(exc))]
        head, spans = plan_parts(plan)
        fd = self.fd
        return [self.headers.head(plan.size) + head, *[(fd, o, n) for o, n in spans]]


class Planless(Floor):
    """The floor with the plan's cost taken out: each request gets the next of 64 plans
    of random 10-s clips made at start-up (a wrong clip for its URL, the same bytes per
    response on average): what the protocol and the kernel cost alone."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        rng = random.Random(7)
        starts = [rng.random() * (DURATION - CLIP) for _ in range(64)]
        self.plans = [self.index.clip(s, s + CLIP) for s in starts]
        self.turn = 0
        self.clip = self.next_plan

    def next_plan(self, start: float, end: float) -> Plan:
        """The next plan made beforehand, whatever was asked."""
        self.turn = (self.turn + 1) % len(self.plans)
        return self.plans[self.turn]


class Real(Floor):
    """The floor plus what a real edge cannot skip: a checked query, the file opened per
    request (and its version checked against the index's), counters."""

    PARAMS = frozenset({"start", "end"})

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        st = os.fstat(self.fd)
        self.version = (st.st_size, st.st_mtime_ns, st.st_ino)
        self.counters = {"requests": 0, "bytes": 0, "errors": 0}
        self.objects = {"/long.mp4": str(path)}

    def respond(self, url: bytes) -> list[Out]:
        """The output pieces of one request."""
        counters = self.counters
        counters["requests"] += 1
        target, _, raw = url.decode("latin-1").partition("?")
        name = self.objects.get(target)
        if name is None:
            counters["errors"] += 1
            return [error("404 Not Found", "no such object")]
        try:
            query = dict(parse_qsl(raw, keep_blank_values=True, strict_parsing=True))
            if not query.keys() <= self.PARAMS:
                raise ValueError(f"unknown parameters {sorted(query.keys() - self.PARAMS)}")
            start, end = float(query["start"]), float(query["end"])
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError("start and end must be finite")
            plan = self.clip(start, end)
        except (ValueError, KeyError, MediaError) as exc:
            counters["errors"] += 1
            return [error("400 Bad Request", str(exc))]
        fd = os.open(name, os.O_RDONLY)
        st = os.fstat(fd)
        if (st.st_size, st.st_mtime_ns, st.st_ino) != self.version:
            os.close(fd)  # a real edge rebuilds the index here
            counters["errors"] += 1
            return [error("503 Service Unavailable", "object changed")]
        head, spans = plan_parts(plan)
        counters["bytes"] += plan.size
        return [self.headers.head(plan.size) + head, *[(fd, o, n) for o, n in spans], fd]


class Conn:
    """One keep-alive connection: httptools parses, `flush` sends, EAGAIN waits for the
    loop's writer callback. Requests are answered in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, app: Floor) -> None:
        import httptools

        self.loop, self.sock, self.app = loop, sock, app
        self.fd = sock.fileno()
        self.parser = httptools.HttpRequestParser(self)
        self.errors = (httptools.HttpParserError, httptools.HttpParserUpgrade)
        self.url = b""
        self.out: list[Out] = []
        self.waiting = False
        self.closing = False
        loop.add_reader(self.fd, self.readable)

    def readable(self) -> None:
        """Feed what arrived to the parser."""
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except self.errors:
            self.out.append(error("400 Bad Request", "malformed request"))
            self.closing = True
            self.flush()

    def on_url(self, url: bytes) -> None:
        """httptools: (part of) the request target."""
        self.url += url

    def on_message_complete(self) -> None:
        """httptools: a whole request; queue its answer and send what can be sent."""
        url, self.url = self.url, b""
        self.out += self.app.respond(url)
        if not self.parser.should_keep_alive():
            self.closing = True
        if not self.waiting:
            self.flush()

    def flush(self) -> None:
        """Send queued pieces until done or the socket is full (then wait for writable)."""
        out, fd = self.out, self.fd
        try:
            while out:
                piece = out[0]
                if isinstance(piece, bytes):
                    sent = self.sock.send(piece)
                    if sent < len(piece):
                        out[0] = piece[sent:]
                        continue
                elif isinstance(piece, tuple):
                    src, offset, length = piece
                    sent = os.sendfile(fd, src, offset, length)
                    if sent == 0:
                        raise OSError("file shorter than its plan")
                    if sent < length:
                        out[0] = (src, offset + sent, length - sent)
                        continue
                else:
                    os.close(piece)
                del out[0]
        except BlockingIOError:
            if not self.waiting:
                self.waiting = True
                self.loop.add_writer(fd, self.flush)
            return
        except OSError:
            self.close()
            return
        if self.waiting:
            self.waiting = False
            self.loop.remove_writer(fd)
        if self.closing:
            self.close()

    def close(self) -> None:
        """Forget the connection (and close files still queued)."""
        if self.fd < 0:
            return
        self.loop.remove_reader(self.fd)
        if self.waiting:
            self.loop.remove_writer(self.fd)
        for piece in self.out:
            if isinstance(piece, int):
                os.close(piece)
        self.out.clear()
        self.sock.close()
        self.fd = -1


def serve(path: Path, port: int, loop_kind: str, variant: str) -> None:
    """Serve `path` as /long.mp4 on 127.0.0.1:`port` until SIGTERM."""
    import httptools  # noqa: F401  (missing, every connection would fail: fail first)

    if loop_kind == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    app = {"real": Real, "planless": Planless}.get(variant, Floor)(path)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    conns: set[Conn] = set()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns.add(Conn(loop, sock, app))
            # Closed connections leave the set here: bounded by what is open.
            conns.difference_update([c for c in conns if c.fd < 0])

    loop.add_reader(listener.fileno(), accept)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    try:
        loop.run_forever()
    finally:
        for conn in list(conns):
            conn.close()
        listener.close()
        loop.close()


# -- in process ---------------------------------------------------------------------------


def cpu_per_call(func: Callable[[T], object], args: list[T]) -> float:
    """Median thread CPU seconds of `func(arg)` over `args` (after 20 untimed calls)."""
    for arg in args[:20]:
        func(arg)
    times = []
    for arg in args:
        started = time.thread_time()
        func(arg)
        times.append(time.thread_time() - started)
    return statistics.median(times)


def drained_socket() -> tuple[socket.socket, Callable[[], None]]:
    """A loopback TCP connection whose far end a thread reads and discards; its stop."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    far, _ = listener.accept()
    listener.close()
    buffer = bytearray(1 << 20)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while far.recv_into(buffer):
                pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()

    def stop() -> None:
        client.close()
        thread.join(5)
        far.close()

    return client, stop


def in_process(path: Path, samples: int, seed: int = 15) -> dict[str, float]:
    """The lean floor's CPU per clip, split: the plan, the protocol (parse, headers,
    pieces) and the system calls that send a response (to a drained loopback peer)."""
    import httptools

    floor = Floor(path)
    real = Real(path)
    rng = random.Random(seed)
    # The query's values as the server parses them (wrk's script sends three decimals).
    clips = [
        (float(f"{s:.3f}"), float(f"{s + CLIP:.3f}"))
        for s in (rng.random() * (DURATION - CLIP) for _ in range(samples))
    ]
    out: dict[str, float] = {
        "plan": cpu_per_call(lambda c: plan_parts(floor.index.clip(*c)), clips)
    }
    # The protocol alone: the same requests with their plans made beforehand.
    plans = {c: floor.index.clip(*c) for c in clips}

    class Sink:
        def __init__(self, app: Floor) -> None:
            self.app, self.url = app, b""
            self.parser = httptools.HttpRequestParser(self)
            app.clip = lambda start, end: plans[start, end]

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_message_complete(self) -> None:
            for piece in self.app.respond(self.url):
                if isinstance(piece, int):
                    os.close(piece)  # the real variant's per-request file
            self.url = b""

    requests = [
        b"GET /long.mp4?start=%.3f&end=%.3f HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"User-Agent: wrk\r\n\r\n" % c
        for c in clips
    ]
    for kind, app in (("floor", floor), ("real", real)):
        sink = Sink(app)
        out[f"{kind} protocol"] = cpu_per_call(sink.parser.feed_data, requests)
    client, stop = drained_socket()
    fd = client.fileno()
    try:
        responses = [floor.respond(b"/long.mp4?start=%.3f&end=%.3f" % c) for c in clips]
        times = []
        for pieces in responses:
            started = time.thread_time()
            for piece in pieces:
                if isinstance(piece, bytes):
                    client.sendall(piece)
                elif isinstance(piece, tuple):
                    src, offset, length = piece
                    while length:
                        sent = os.sendfile(fd, src, offset, length)
                        offset, length = offset + sent, length - sent
            times.append(time.thread_time() - started)
        out["syscalls"] = statistics.median(times)
        sizes = [sum(len(p) if isinstance(p, bytes) else p[2] for p in r if not isinstance(p, int))
                 for r in responses]  # fmt: skip
        out["bytes"] = statistics.median(sizes)
        out["spans"] = statistics.median(len(r) - 1 for r in responses)
    finally:
        stop()
    return out


# -- over HTTP, side by side --------------------------------------------------------------


@contextlib.contextmanager
def lean_server(path: Path, loop_kind: str, variant: str) -> Iterator[servers.Server]:
    """Run `serve` in its own process on a free port."""
    port = servers.free_port()
    with tempfile.TemporaryDirectory(prefix="vodedge-bench-lean-") as tmp:
        log = Path(tmp) / "stderr.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, __file__, "serve", "--file", str(path), "--port", str(port),
                 "--loop", loop_kind, "--variant", variant],
                stdout=subprocess.DEVNULL, stderr=stderr, env=bench_env(),
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"lean server exited: {log.read_text()[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield servers.Server(base, proc.pid, log)
        finally:
            servers.stop(proc)


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of these processes."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


@dataclass
class Run:
    """wrk runs of one server: requests/s and CPU per response (user, system)."""

    rps: list[float]
    user: list[float]
    system: list[float]
    errors: str = ""
    command: str = ""

    def cpu(self) -> float:
        """Median CPU seconds per response."""
        return statistics.median(u + s for u, s in zip(self.user, self.system, strict=True))


def measure(server: servers.Server, seconds: int, connections: int, into: Run) -> None:
    """One wrk run of the random-clip script (after a 1-s warm-up with another seed)."""
    url = server.base + NAME
    script = seek.SCRIPTS["clip"]
    servers.wrk(url, seconds=1, connections=connections, script=script, timeout=30,
                seed=seek.SEED + 9)  # fmt: skip
    pids = server.pids()
    user0, sys0 = cpu_split(pids)
    result = servers.wrk(
        url, seconds=seconds, connections=connections, script=script, timeout=30, seed=seek.SEED
    )
    user1, sys1 = cpu_split(pids)
    done = max(result.requests, 1)
    into.rps.append(result.requests_per_s)
    into.user.append((user1 - user0) / done)
    into.system.append((sys1 - sys0) / done)
    into.errors = into.errors or result.errors
    into.command = result.command.replace(f"{REPO}/", "")


def get(base: str, target: str) -> bytes:
    """The body of GET `target`, checked to be a 200."""
    host, port = base.split("/")[2].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{base}{target}: {response.status} {body[:200]!r}")
        return body
    finally:
        conn.close()


def check_bytes(reference: servers.Server, lean: list[servers.Server], count: int) -> str:
    """Compare `count` random clips byte for byte with vodedge's; ffprobe a few (reading
    every packet). Returns a one-line verdict; raises on a difference."""
    rng = random.Random(seek.SEED + 5)
    targets = [seek.random_path("clip", rng) for _ in range(count)]
    for target in targets:
        want = hashlib.sha256(get(reference.base, target)).hexdigest()
        for server in lean:
            got = hashlib.sha256(get(server.base, target)).hexdigest()
            if got != want:
                raise RuntimeError(f"{server.base}{target}: bytes differ from vodedge's")
    probed = 0
    with tempfile.TemporaryDirectory(prefix="vodedge-bench-lean-") as tmp:
        for target in targets[:3]:
            out = Path(tmp) / "clip.mp4"
            out.write_bytes(get(lean[0].base, target))
            done = subprocess.run(
                ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                 "stream=codec_type,nb_read_packets", "-of", "csv=p=0", str(out)],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0 or done.stderr.strip() or not done.stdout.strip():
                raise RuntimeError(f"ffprobe rejects {target}: {done.stderr.strip()[:300]}")
            probed += 1
    return (
        f"{count} random clips byte-identical to vodedge's from every lean server; "
        f"{probed} read whole by ffprobe without an error"
    )


CONTENDERS = (
    ("nginx mp4 module", "nginx", ""),
    ("vodedge serve (lane, asyncio)", "vodedge", "asyncio"),
    ("vodedge serve (lane, uvloop)", "vodedge", "uvloop"),
    ("vodedge serve (lane off: aiohttp's request loop, asyncio)", "vodedge", "asyncio"),
    ("lean floor, asyncio loop", "floor", "asyncio"),
    ("lean floor, uvloop", "floor", "uvloop"),
    ("lean realistic, asyncio loop", "real", "asyncio"),
    ("lean realistic, uvloop", "real", "uvloop"),
    ("lean floor with plans made beforehand, asyncio", "planless", "asyncio"),
    ("lean floor with plans made beforehand, uvloop", "planless", "uvloop"),
)


def compare(seconds: int, connections: int, rounds: int = 2, samples: int = 2000) -> Section:
    """nginx, vodedge and the lean servers on random 10-s clips, side by side, `rounds`
    interleaved wrk runs each; then the in-process split of the lean floor."""
    head = media.ensure(media.MP4_LONG)
    runs: dict[str, Run] = {label: Run([], [], []) for label, _, _ in CONTENDERS}
    notes: list[str] = []
    with seek.both_servers({"long.mp4": head}) as (nginx, vd, root), contextlib.ExitStack() as st:
        live: dict[str, servers.Server] = {}
        if nginx is not None:
            live["nginx mp4 module"] = nginx
        if vd is not None:
            live["vodedge serve (lane, asyncio)"] = vd
            vd_uv = st.enter_context(servers.vodedge_server(root, "/small.bin", loop="uvloop"))
            servers.warm(vd_uv.base + NAME, want_hit=True)
            live["vodedge serve (lane, uvloop)"] = vd_uv
            vd_off = st.enter_context(servers.vodedge_server(root, "/small.bin", lane=False))
            servers.warm(vd_off.base + NAME, want_hit=True)
            live["vodedge serve (lane off: aiohttp's request loop, asyncio)"] = vd_off
        for label, kind, loop in CONTENDERS:
            if kind in ("floor", "real", "planless"):
                live[label] = st.enter_context(lean_server(root / "long.mp4", loop, kind))
        lean = [s for label, s in live.items() if label.startswith("lean") and "made" not in label]
        if vd is not None:
            notes.append(check_bytes(vd, lean, 20))
        for _ in range(rounds):
            for label, server in live.items():
                measure(server, seconds, connections, runs[label])
    split = in_process(head, samples)
    return section(runs, split, seconds, connections, rounds, notes, head)


def section(
    runs: dict[str, Run],
    split: dict[str, float],
    seconds: int,
    connections: int,
    rounds: int,
    notes: list[str],
    head: Path,
) -> Section:
    """The table: req/s and CPU per response against nginx's, then the floor's split."""
    base = runs["nginx mp4 module"]
    rows: list[Row] = []
    for label, got in runs.items():
        if not got.rps:
            rows.append(Row(label, "-", "", "", "skipped"))
            continue
        rps = statistics.median(got.rps)
        cpu = got.cpu()
        ratio = f"{base.cpu() / cpu:.3f}" if base.rps else ""
        detail = (
            f"CPU {us(cpu)} per response (user {us(statistics.median(got.user))}, system "
            f"{us(statistics.median(got.system))}); {rps:,.0f} req/s"
        )
        if base.rps:
            detail += f" (req/s ratio {rps / statistics.median(base.rps):.3f})"
        if got.errors:
            detail += f"; {got.errors}"
        rows.append(Row(label, us(cpu) + " CPU", ratio, got.command, detail))
    plan, floor_py, real_py, calls = (
        split["plan"], split["floor protocol"], split["real protocol"], split["syscalls"]
    )  # fmt: skip
    rows += [
        Row("in process: plan (index.clip + head/spans)", us(plan), "", "",
            "median thread CPU of a random 10-s clip from the warm index"),
        Row("in process: lean floor's protocol", us(floor_py), "", "",
            "httptools parse + query split + headers + pieces, plan made beforehand"),
        Row("in process: lean realistic's protocol", us(real_py), "", "",
            "+ checked query parse, open/fstat/close, counters, plan made beforehand"),
        Row("in process: send + sendfile of one response", us(calls), "", "",
            f"blocking, to a drained loopback peer, median {split['bytes']:,.0f} bytes, "
            f"{split['spans']:.0f} span(s)"),
    ]  # fmt: skip
    for loop in ("asyncio", "uvloop"):
        got = runs[f"lean floor, {'uvloop' if loop == 'uvloop' else 'asyncio loop'}"]
        bare = runs[f"lean floor with plans made beforehand, {loop}"]
        if not (got.rps and bare.rps and base.rps):
            continue
        user, system = statistics.median(got.user), statistics.median(got.system)
        loop_user = statistics.median(bare.user)
        rows.append(Row(
            f"lean floor ({loop}) under wrk, split", us(user + system), "", "",
            f"kernel (system) {us(system)} + the plan in the server {us(user - loop_user)} "
            f"(floor's user - user with plans made beforehand; {us(plan)} in a loop) + "
            f"event loop, recv, parse, headers {us(loop_user)} ({us(floor_py)} of it "
            f"httptools, query, headers in a loop); nginx: {us(base.cpu())} in all, "
            f"system {us(statistics.median(base.system))}",
        ))  # fmt: skip
    notes += [
        f"wrk -t1 -c{connections}, {seconds} s per run, {rounds} interleaved rounds, medians; "
        "one worker each; the same file, Lua script (seek-clip.lua) and seed",
        "ratio: nginx's CPU per response / this one's (1.0 = as cheap as nginx); on a "
        "shared machine CPU per response is the steadier figure, req/s the load's",
        "lean floor = best case: no cache layer, no metrics, no resolve, no access log, "
        "one file opened once; lean realistic adds a checked query parse, a per-request "
        "open/fstat/close with a version check, and counters; 'plans made beforehand': the "
        "floor answering each request with the next of 64 random clips' plans (not the "
        "clip asked for): the protocol and the kernel alone",
    ]
    return Section(
        "seek-floor",
        "A lean Python hot path for random clips against nginx and vodedge (issue 15)",
        [media.describe(head), "clips: ?start=S&end=S+10, S random"],
        rows,
        notes,
    )


def us(seconds: float) -> str:
    """Microseconds, three significant places."""
    return f"{seconds * 1e6:.3g} µs"


def main() -> int:
    """serve, compare or inproc (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("serve")
    one.add_argument("--file", type=Path, required=True)
    one.add_argument("--port", type=int, required=True)
    one.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    one.add_argument("--variant", choices=("floor", "real", "planless"), default="floor")
    many = sub.add_parser("compare")
    many.add_argument("--seconds", type=int, default=10)
    many.add_argument("--connections", type=int, default=8)
    many.add_argument("--rounds", type=int, default=2)
    many.add_argument("--samples", type=int, default=2000)
    alone = sub.add_parser("inproc")
    alone.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.file, args.port, args.loop, args.variant)
    elif args.command == "compare":
        compare(args.seconds, args.connections, args.rounds, args.samples).print()
    else:
        for key, value in in_process(media.ensure(media.MP4_LONG), args.samples).items():
            print(f"{key:>14}: {us(value) if key not in ('bytes', 'spans') else value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
