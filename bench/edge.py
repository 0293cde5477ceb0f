"""The edge benchmarks of issue 4: warm audio-only throughput, time to first byte, slow clients.

Each runs vodedge (`vodedge serve --workers 1 --access-log off`) and nginx (one
worker) side by side on loopback, on the same files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import media
import servers
from harness import MAX_OTHER_LOAD, REPO, VENV_BIN, LoadMeter, Row, Section, fmt_seconds, progress
from servers import Server, WrkResult

AUDIO_5MIN = "/5min.mp4?ali_audio_only=1"
TARGET_THROUGHPUT = 0.8  # vodedge / nginx requests/s, at least
TARGET_TTFB = 2.0  # vodedge / nginx first-byte time, at most
TARGET_RSS_MB = 300.0
# What the curl cross-check of edge-ttfb prints.
CURL_TIMES = "%{time_connect} %{time_starttransfer}"
# The pause between two TTFB samples.
TTFB_PAUSE = 0.005
# Slow clients' receive buffer: small and fixed, as behind a slow link.
SLOW_RCVBUF = 64 << 10
# A run during which other processes kept more cores busy is repeated (this often).
MAX_REPEATS = 2


@dataclass
class EdgeOptions:
    """Knobs of the edge benchmarks (run.py's flags)."""

    seconds: int = 5  # per wrk run
    rounds: int = 3  # interleaved wrk runs per server and concurrency
    connections: tuple[int, ...] = (1, 8, 64)
    ttfb_samples: int = 200  # per contender
    ttfb_max_seconds: float = 120.0
    slow_clients: int = 1000
    slow_rate: int = 4096  # bytes/s per slow client
    slow_seconds: float = 40.0
    finish_seconds: float = 20.0
    vodedge_src: Path | None = None  # another source tree to run (see servers.vodedge_server)
    server_nofile: int | None = None  # a lower soft RLIMIT_NOFILE for vodedge
    slow_loop: str = "asyncio"  # vodedge's event loop in edge-slow-clients
    label: str = ""  # appended to section keys and titles (e.g. "before renditions")
    commit: str | None = None  # what ran, when not the working tree


def section_key(base: str, options: EdgeOptions) -> str:
    """The section's file name, distinct per label so labelled runs keep their own."""
    if not options.label:
        return base
    return base + "-" + re.sub(r"[^a-z0-9]+", "-", options.label.lower()).strip("-")


def titled(title: str, options: EdgeOptions) -> str:
    """A section title with its label."""
    return f"{title} ({options.label})" if options.label else title


# -- helpers ---------------------------------------------------------------------------------


class RunMeter:
    """Cores used by processes other than this one, its children and the servers measured."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.meter = LoadMeter()
        self.started = time.monotonic()
        self.cpu = servers.cpu_seconds(pids)

    def server_cpu(self) -> float:
        """CPU seconds the servers used since the start."""
        return servers.cpu_seconds(self.pids) - self.cpu

    def other_cores(self) -> float:
        """Average cores used by everything else since the start."""
        wall = time.monotonic() - self.started
        return max(0.0, self.meter.other_cores() - self.server_cpu() / wall) if wall > 0 else 0.0


def latency_seconds(text: str) -> float:
    """wrk's latency text (`812.00us`, `1.76ms`, `2.01s`, `1.00m`) in seconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(2)]
    return float(match.group(1)) * scale


def download(url: str, target: Path, timeout: float = 30.0) -> servers.Fetched:
    """GET `url` into `target` with curl."""
    argv = [
        "curl", "-s", "-o", str(target), "-D", "-", "--max-time", str(timeout),
        "-w", "\n%{http_code} %{size_download} %{exitcode}", url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    head, _, tail = out.rpartition("\n")
    code, size, exit_code = [*tail.split(), "0", "0", "1"][:3]
    headers = {}
    for line in head.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return servers.Fetched(int(code), int(size), exit_code == "0", headers)


def warm_vodedge(server: Server, path: str, notes: list[str]) -> None:
    """Bring `path` to a warm state (source cached, plan memoised, rendition built);
    problems go to `notes`."""
    url = server.base + path
    problems = servers.warm(url, want_hit=True, timeout=10)
    if problems and "complete=False" in problems[-1]:
        notes.append(f"vodedge warm-up of {path}: {len(problems)} bad responses ({problems[-1]})")
        return
    # The first warm request builds the plan and starts writing the rendition in
    # the background; later ones are what a warm client gets.
    time.sleep(0.5)
    for _ in range(3):
        got = servers.fetch(url, timeout=10)
        if not (got.complete and got.status == 200 and got.headers.get("x-cache") == "HIT"):
            problems.append(f"status {got.status}, {got.size} bytes, complete={got.complete}")
    if problems:
        notes.append(f"vodedge warm-up of {path}: {len(problems)} bad responses ({problems[-1]})")


def server_errors(server: Server, label: str) -> list[str]:
    """Notes quoting the last lines a server wrote to stderr (bugs, EMFILE)."""
    lines = [line for line in server.errors().splitlines() if "serving http" not in line]
    if not lines:
        return []
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    shown = "; ".join(f"{n} x `{line[:160]}`" for line, n in list(counts.items())[:3])
    return [f"{label} stderr: {shown}"]


def sha256_of(path: Path) -> str:
    """The digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


# -- benchmark: warm audio-only throughput -------------------------------------------------


@dataclass
class Contender:
    """One server answering one URL in a side-by-side benchmark."""

    label: str
    server: Server
    path: str
    runs: list[tuple[WrkResult, float, float]] = field(default_factory=list)
    # (wrk result, server CPU seconds per request, other processes' cores)
    broken: str = ""

    @property
    def url(self) -> str:
        """The full URL."""
        return self.server.base + self.path


def throughput_runs(
    contenders: list[Contender], connections: int, options: EdgeOptions
) -> tuple[list[WrkResult], int]:
    """Interleaved wrk runs of every working contender at one concurrency; repeats."""
    working = [c for c in contenders if not c.broken]
    every = [pid for c in working for pid in c.server.pids()]
    repeated = 0
    for contender in working:
        # Untimed: connections, page cache and the server's first-request paths.
        servers.wrk(contender.url, seconds=1, connections=connections, timeout=30)
    for round_number in range(options.rounds):
        order = working if round_number % 2 == 0 else list(reversed(working))
        for contender in order:
            for attempt in range(MAX_REPEATS + 1):
                progress(
                    f"  c={connections} round {round_number + 1}/{options.rounds}: "
                    f"{contender.label}"
                )
                own = contender.server.pids()
                cpu = servers.cpu_seconds(own)
                meter = RunMeter(every)
                result = servers.wrk(
                    contender.url, seconds=options.seconds, connections=connections, timeout=30
                )
                spent = servers.cpu_seconds(own) - cpu
                other = meter.other_cores()
                if other > MAX_OTHER_LOAD and attempt < MAX_REPEATS:
                    repeated += 1
                    continue
                per_request = spent / result.requests if result.requests else float("nan")
                contender.runs.append((result, per_request, other))
                break
    progress("")
    return [run[0] for c in working for run in c.runs], repeated


def median_run(contender: Contender, connections: int) -> tuple[WrkResult, float, float] | None:
    """The run with the median requests/s among those at this concurrency."""
    runs = [r for r in contender.runs if f"-c{connections} " in r[0].command]
    if not runs:
        return None
    runs.sort(key=lambda r: r[0].requests_per_s)
    return runs[len(runs) // 2]


def bench_throughput(options: EdgeOptions) -> Section:
    """Warm `?ali_audio_only=1` of the 5-minute MP4 against nginx serving the same bytes."""
    source = media.ensure(media.MP4_720P)
    notes: list[str] = []
    rows: list[Row] = []
    with servers.docroot({"5min.mp4": source}) as root, contextlib.ExitStack() as stack:
        if not servers.vodedge_serve_available():
            raise SystemExit("vodedge serve is not available")
        vd = stack.enter_context(servers.vodedge_server(root, "/5min.mp4", src=options.vodedge_src))
        warm_vodedge(vd, AUDIO_5MIN, notes)
        # The static file nginx serves is exactly what vodedge answers.
        audio = root / "audio.m4a"
        got = download(vd.base + AUDIO_5MIN, audio)
        if not got.complete or got.status != 200:
            raise SystemExit(f"vodedge did not answer {AUDIO_5MIN}: {got}")
        size = audio.stat().st_size
        verdict = media.audio_digest(audio) == media.audio_digest(source)
        notes.append(
            f"vodedge's audio-only output: {size / 1e6:.2f} MB (sha256 {sha256_of(audio)}), "
            + ("identical audio packets to the source" if verdict else "AUDIO DIFFERS")
        )
        nginx = stack.enter_context(servers.nginx_server(root, "/audio.m4a"))
        uv = stack.enter_context(
            servers.vodedge_server(root, "/5min.mp4", loop="uvloop", src=options.vodedge_src)
        )
        warm_vodedge(uv, AUDIO_5MIN, notes)
        contenders = [
            Contender("nginx static audio.m4a", nginx, "/audio.m4a"),
            Contender("vodedge ?ali_audio_only=1", vd, AUDIO_5MIN),
            Contender("vodedge --loop uvloop", uv, AUDIO_5MIN),
        ]
        for contender in contenders:
            # Every contender must answer completely before it is timed.
            target = root.parent / f"{root.name}.check"
            got = download(contender.url, target, timeout=10)
            same = (
                target.exists()
                and target.stat().st_size == size
                and (sha256_of(target) == sha256_of(audio))
            )
            target.unlink(missing_ok=True)
            if not (got.complete and got.status == 200 and same):
                contender.broken = (
                    f"broken: status {got.status}, {got.size} of {size} bytes "
                    f"in 10 s{'' if got.complete else ', incomplete'}"
                )
        print(
            f"\nbenchmark edge-throughput: {options.rounds} x {options.seconds} s wrk runs per "
            f"server and concurrency ({', '.join(map(str, options.connections))})",
            flush=True,
        )
        repeated = 0
        for connections in options.connections:
            _, again = throughput_runs(contenders, connections, options)
            repeated += again
        for connections in options.connections:
            base = median_run(contenders[0], connections)
            for contender in contenders:
                rows.append(throughput_row(contender, connections, size, base))
        for contender in contenders[1:]:
            notes += server_errors(contender.server, contender.label)
        worst = max((r[2] for c in contenders for r in c.runs), default=0.0)
        notes.append(
            f"{options.rounds} interleaved wrk runs of {options.seconds} s per server and "
            f"concurrency, the median one shown; wrk -t1 and --timeout 30s; ratio is "
            f"vodedge / nginx requests/s at the same concurrency (target >= {TARGET_THROUGHPUT})"
        )
        notes.append(
            "server CPU/request is the server's user+system time (master and worker) per "
            "response: steadier than req/s when wrk and the server share 2 cores"
        )
        notes.append(
            f"other processes kept at most {worst:.2f} cores busy during a kept run"
            + (f"; {repeated} runs repeated because the machine was busy" if repeated else "")
        )
    return Section(
        section_key("edge-throughput", options),
        titled("Warm audio-only MP4 throughput, 5-minute 720p MP4 (issue 4)", options),
        [media.describe(source), f"GET {AUDIO_5MIN} against nginx serving its bytes as a file"],
        rows,
        notes,
        **({"commit": options.commit} if options.commit else {}),
    )


def throughput_row(
    contender: Contender,
    connections: int,
    size: int,
    base: tuple[WrkResult, float, float] | None,
) -> Row:
    """A table row: requests/s and MB/s of one server at one concurrency."""
    label = f"{contender.label}, {connections} conn"
    if contender.broken:
        return Row(label, "-", "", contender.url, contender.broken)
    found = median_run(contender, connections)
    if found is None:
        return Row(label, "-", "", contender.url, "no run")
    result, per_request, other = found
    rps = result.requests_per_s
    if not result.requests:
        return Row(
            label, "0 req/s", "0.00", result.command, f"no response completed, {result.errors}"
        )
    ratio = f"{rps / base[0].requests_per_s:.2f}" if base and base[0].requests_per_s else ""
    spread = sorted(
        r[0].requests_per_s for r in contender.runs if f"-c{connections} " in r[0].command
    )
    detail = (
        f"{rps * size / 1e6:,.0f} MB/s, p50 {result.p50}, p99 {result.p99}, "
        f"server CPU {per_request * 1e3:.2f} ms/request, runs {spread[0]:,.0f}-{spread[-1]:,.0f} "
        f"req/s, others {other:.2f} cores"
    )
    if result.errors:
        detail += f", {result.errors}"
    return Row(label, f"{rps:,.1f} req/s", ratio, result.command, detail)


# -- benchmark: warm time to first byte ---------------------------------------------------


class KeepAlive:
    """One HTTP/1.1 connection kept open; times a request's headers and first body byte."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.host = url.netloc
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        self.sock = socket.create_connection(self.address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(1 << 20)

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()

    def sample(self, path: str) -> tuple[float, float, int]:
        """Seconds to the end of the headers and to the first body byte, and the body size.

        The whole body is read (untimed) so the next request reuses the connection.
        """
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: vodedge-bench-ttfb\r\n"
            "Accept: */*\r\n\r\n"
        ).encode()
        sock = self.sock
        started = time.perf_counter()
        sock.sendall(request)
        head = b""
        while (end := head.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            head += chunk
        headers_at = time.perf_counter()
        rest = len(head) - end - 4
        if rest == 0:
            first = sock.recv(65536)
            if not first:
                raise ConnectionError("the server closed the connection")
            rest = len(first)
        first_at = time.perf_counter()
        lines = head[:end].decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise ConnectionError(f"{path}: {lines[0]}")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines[1:]
            if line.lower().startswith("content-length:")
        )
        left = length - rest
        view = memoryview(self.buffer)
        while left > 0:
            got = sock.recv_into(view, min(left, len(view)))
            if not got:
                raise ConnectionError("the body ended early")
            left -= got
        return headers_at - started, first_at - started, length


@dataclass
class TtfbSeries:
    """Samples of one contender."""

    label: str
    server: Server
    path: str
    headers: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    size: int = 0
    curl: list[float] = field(default_factory=list)
    error: str = ""


def p90(values: list[float]) -> float:
    """The 90th percentile."""
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else values[0]


def curl_starttransfer(url: str, count: int) -> list[float]:
    """curl's `time_starttransfer` less `time_connect` (request to first response byte),
    one new curl and connection per request."""
    argv = ["curl", "-s", "-o", os.devnull, "--max-time", "60", "-w", CURL_TIMES, url]
    times = []
    for _ in range(count):
        out = subprocess.run(argv, capture_output=True, text=True).stdout.split()
        if len(out) == 2:
            times.append(float(out[1]) - float(out[0]))
    return times


def bench_ttfb(options: EdgeOptions) -> Section:
    """Time to first byte: vodedge audio-only (30-minute MP4) against nginx `?start=600`."""
    head = media.ensure(media.MP4_LONG)
    notes: list[str] = []
    rows: list[Row] = []
    small = os.urandom(1000)
    with servers.docroot({"long.mp4": head}) as root, contextlib.ExitStack() as stack:
        (root / "small.bin").write_bytes(small)
        # Both servers on one core and this client on another: otherwise which cores
        # the scheduler happens to pick moves the medians between runs.
        cpus = sorted(os.sched_getaffinity(0))
        server_cpus = {cpus[-1]} if len(cpus) > 1 else None
        nginx = stack.enter_context(servers.nginx_server(root, "/small.bin", cpus=server_cpus))
        vd = stack.enter_context(
            servers.vodedge_server(root, "/small.bin", src=options.vodedge_src, cpus=server_cpus)
        )
        if server_cpus is not None:
            stack.callback(os.sched_setaffinity, 0, set(cpus))
            os.sched_setaffinity(0, set(cpus[:-1]))
            notes.append(f"servers pinned to CPU {cpus[-1]}, the client to CPU(s) {cpus[:-1]}")
        series = [
            TtfbSeries("nginx mp4 module ?start=600", nginx, "/long.mp4?start=600"),
            TtfbSeries("vodedge ?ali_audio_only=1", vd, "/long.mp4?ali_audio_only=1"),
            TtfbSeries(
                "vodedge ?ali_audio_only=1&start=600", vd, "/long.mp4?ali_audio_only=1&start=600"
            ),
            TtfbSeries("(floor) nginx static 1 kB file", nginx, "/small.bin"),
            TtfbSeries("(floor) vodedge plain 1 kB object", vd, "/small.bin"),
        ]
        servers.warm(vd.base + "/long.mp4", want_hit=True)
        for item in series:
            if item.server is vd:
                warm_vodedge(vd, item.path, notes)
        links = {item.label: KeepAlive(item.server.base) for item in series}
        print(
            f"\nbenchmark edge-ttfb: {options.ttfb_samples} interleaved samples per contender",
            flush=True,
        )
        try:
            for item in series:  # untimed: connection and server paths warm
                for _ in range(3):
                    item.size = links[item.label].sample(item.path)[2]
            meter = RunMeter([pid for s in (nginx, vd) for pid in s.pids()])
            random.seed(4)  # the same orders every run
            deadline = time.monotonic() + options.ttfb_max_seconds
            for number in range(options.ttfb_samples):
                if time.monotonic() > deadline:
                    notes.append(f"stopped after {number} samples ({options.ttfb_max_seconds} s)")
                    break
                # A new order each round: a sample right after another server's long
                # response finds its server idle longer (deeper CPU idle states), so
                # no contender may always come after the same one.
                order = random.sample(series, len(series))
                for item in order:
                    if item.error:
                        continue
                    try:
                        headers, first, _ = links[item.label].sample(item.path)
                    except (OSError, StopIteration) as exc:
                        item.error = f"{type(exc).__name__}: {exc}"
                        continue
                    item.headers.append(headers)
                    item.first.append(first)
                    # Let the server finish with the last response before the next one.
                    time.sleep(TTFB_PAUSE)
                if number % 20 == 0:
                    progress(f"  sample {number + 1}/{options.ttfb_samples}")
            other = meter.other_cores()
            progress("")
        finally:
            for link in links.values():
                link.close()
        for item in series:
            item.curl = curl_starttransfer(item.server.base + item.path, 21)
        nginx_first = statistics.median(series[0].first) if series[0].first else None
        for item in series:
            rows.append(ttfb_row(item, nginx_first))
        notes += server_errors(vd, "vodedge")
        notes.append(
            "a Python client on one open keep-alive connection per contender sends the request "
            "and times the end of the headers and the first body byte; each response is then "
            f"read to its end untimed, {TTFB_PAUSE * 1e3:.0f} ms pause; contenders interleave "
            "sample by sample in a new random order each round"
        )
        notes.append(
            f"ratio is the median time to the first body byte over nginx's (target <= "
            f"{TARGET_TTFB}); curl: median of `curl -w '%{{time_starttransfer}}'` less "
            "`%{time_connect}` over 21 runs, a new connection each (to the first response byte, "
            "i.e. the headers)"
        )
        notes.append(f"other processes kept {other:.2f} cores busy while sampling")
    return Section(
        section_key("edge-ttfb", options),
        titled("Warm time to first byte, 30-minute MP4 with a 650 kB moov (issue 4)", options),
        [media.describe(head)],
        rows,
        notes,
        **({"commit": options.commit} if options.commit else {}),
    )


def ttfb_row(item: TtfbSeries, nginx_first: float | None) -> Row:
    """A table row: median and p90 times to the headers and to the first body byte."""
    if not item.first:
        return Row(item.label, "-", "", item.server.base + item.path, item.error or "no samples")
    first = statistics.median(item.first)
    ratio = f"{first / nginx_first:.2f}" if nginx_first else ""
    detail = (
        f"first byte p90 {fmt_seconds(p90(item.first))}, headers median "
        f"{fmt_seconds(statistics.median(item.headers))} (p90 {fmt_seconds(p90(item.headers))}), "
        f"{len(item.first)} samples, body {item.size / 1e6:.2f} MB"
    )
    if item.curl:
        detail += f", curl {fmt_seconds(statistics.median(item.curl))}"
    if item.error:
        detail += f", stopped: {item.error}"
    # The cross-check, copy-pasteable (the Python client is bench/edge.py's KeepAlive).
    command = f"curl -s -o /dev/null -w '{CURL_TIMES}' '{item.server.base}{item.path}'"
    return Row(item.label, fmt_seconds(first), ratio, command, detail)


# -- benchmark: 1,000 slow clients -------------------------------------------------------------


@dataclass
class Sample:
    """One look at the server's processes."""

    at: float
    rss_kb: dict[int, int]
    pss_kb: int
    fds: int
    connections: int
    send_queue: int


def established(port: int) -> tuple[int, int]:
    """Established connections from the server's port and the bytes in their send queues."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
    ).stdout
    lines = out.splitlines()
    # Without a state column, the fields are Recv-Q, Send-Q, local, peer.
    return len(lines), sum(int(line.split()[1]) for line in lines if line.split())


def look(server: Server, started: float) -> Sample:
    """RSS of the master and each worker, their PSS, the workers' fds, connections."""
    pids = server.pids()
    port = int(server.base.rsplit(":", 1)[1])
    count, queued = established(port)
    return Sample(
        at=time.monotonic() - started,
        rss_kb={pid: servers.status_kb(pid, "VmRSS") for pid in pids},
        pss_kb=sum(servers.pss_kb(pid) for pid in pids),
        fds=sum(servers.open_fds(pid) for pid in pids if pid != server.pid),
        connections=count,
        send_queue=queued,
    )


def probe(url: str) -> tuple[float, float, bool]:
    """A fresh client's full GET: seconds to the first byte, to the end, and completeness."""
    argv = [
        "curl", "-s", "-o", os.devnull, "--max-time", "30",
        "-w", "%{time_starttransfer} %{time_total} %{http_code} %{exitcode}", url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True).stdout.split()
    start, total, code, exit_code = [*out, "0", "0", "0", "1"][:4]
    return float(start), float(total), code == "200" and exit_code == "0"


def probe_while_held(
    url: str, events: Events, slow_seconds: float, out: list[tuple[float, float, bool]]
) -> None:
    """Five fresh GETs spread over the slow phase (after every client has its headers)."""
    if not events.ready.wait(timeout=120):
        return
    for _ in range(5):
        if events.last("finishing") or events.last("done"):
            return
        out.append(probe(url))
        time.sleep(slow_seconds / 6)


class Events:
    """The slow-client process's JSON lines, read in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[dict[str, object]] = []
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.lines.append(event)
            if event.get("event") == "ready":
                self.ready.set()

    def last(self, name: str) -> dict[str, object]:
        """The latest event of that name ({} if none)."""
        return next((e for e in reversed(self.lines) if e.get("event") == name), {})


def bench_slow_clients(options: EdgeOptions) -> Section:
    """1,000 keep-alive clients reading the audio-only output slowly; the server's RSS."""
    source = media.ensure(media.MP4_720P)
    notes: list[str] = []
    rows: list[Row] = []
    with servers.docroot({"5min.mp4": source}) as root, contextlib.ExitStack() as stack:
        vd = stack.enter_context(
            servers.vodedge_server(
                root,
                "/5min.mp4",
                loop=options.slow_loop,
                src=options.vodedge_src,
                nofile=options.server_nofile,
            )
        )
        warm_vodedge(vd, AUDIO_5MIN, notes)
        expected = root / "audio.m4a"
        got = download(vd.base + AUDIO_5MIN, expected)
        if not got.complete:
            raise SystemExit(f"vodedge did not answer {AUDIO_5MIN}: {got}")
        url = vd.base + AUDIO_5MIN
        idle = [probe(url) for _ in range(5)]
        started = time.monotonic()
        baseline = look(vd, started)
        argv = [
            str(VENV_BIN / "python"), str(Path(__file__).with_name("slow_clients.py")), url,
            "--expect", str(expected), "--connections", str(options.slow_clients),
            "--rate", str(options.slow_rate), "--slow-seconds", str(options.slow_seconds),
            "--finish-seconds", str(options.finish_seconds), "--rcvbuf", str(SLOW_RCVBUF),
        ]  # fmt: skip
        print(
            f"\nbenchmark edge-slow-clients: {options.slow_clients} clients at "
            f"{options.slow_rate / 1e3:.0f} kB/s for {options.slow_seconds:.0f} s, then reading "
            f"freely for up to {options.finish_seconds:.0f} s",
            flush=True,
        )
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        events = Events(proc)
        samples: list[Sample] = []
        busy: list[tuple[float, float, bool]] = []
        meter = RunMeter([*vd.pids(), proc.pid])
        limit = time.monotonic() + options.slow_seconds + options.finish_seconds + 120
        # Probes run in a thread: one may take long, and sampling must go on meanwhile.
        prober = threading.Thread(
            target=probe_while_held, args=(url, events, options.slow_seconds, busy), daemon=True
        )
        prober.start()
        try:
            while proc.poll() is None and time.monotonic() < limit:
                samples.append(look(vd, started))
                progress(
                    f"  {samples[-1].at:5.1f} s: {samples[-1].connections} connections, "
                    f"RSS {sum(samples[-1].rss_kb.values()) / 1e3:.0f} MB"
                )
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            events.thread.join(timeout=5)
            prober.join(timeout=35)
            progress("")
        other = meter.other_cores()
        after = look(vd, started)
        done = events.last("done")
        ready = events.last("ready")
        rows += slow_rows(vd, baseline, samples, after, done, ready, idle, busy, options)
        notes += server_errors(vd, "vodedge")
        notes.append(
            f"clients: {Path(argv[1]).name} in its own process (fd limit {done.get('fd_limit')}), "
            f"one asyncio connection each with SO_RCVBUF {SLOW_RCVBUF >> 10} KiB (so the server, "
            "not the client's kernel, holds the rest of the body), requests spread over 5 s; each "
            "client compares every byte it reads with the body saved before the run"
        )
        notes.append(
            "RSS is VmRSS of the master and the worker summed (pages they share counted twice); "
            "PSS counts shared pages once; sampled every 0.5 s"
        )
        notes.append(
            "send queue: bytes the kernel holds for the clients (ss), i.e. taken from the "
            "server already"
        )
        notes.append("RSS timeline: " + "; ".join(timeline(samples)))
        notes.append(f"other processes kept {other:.2f} cores busy during the run")
        shown = " ".join(argv[1:]).replace(str(root), "<docroot>")
        notes.append(f"command: {shown.replace(str(REPO) + os.sep, '')}")
    return Section(
        section_key("edge-slow-clients", options),
        titled(f"{options.slow_clients:,} slow audio-only clients, one worker (issue 4)", options),
        [
            media.describe(source),
            f"GET {AUDIO_5MIN}, warm; vodedge --loop {options.slow_loop}"
            + (f", soft descriptor limit {options.server_nofile}" if options.server_nofile else ""),
        ],
        rows,
        notes,
        **({"commit": options.commit} if options.commit else {}),
    )


def slow_rows(
    server: Server,
    baseline: Sample,
    samples: list[Sample],
    after: Sample,
    done: dict[str, object],
    ready: dict[str, object],
    idle: list[tuple[float, float, bool]],
    busy: list[tuple[float, float, bool]],
    options: EdgeOptions,
) -> list[Row]:
    """Rows: peak RSS against the target, descriptors, what the clients got, probes."""

    def total(sample: Sample) -> float:
        return sum(sample.rss_kb.values()) / 1e3

    peak = max(samples, key=total, default=baseline)
    worker_peak = max(
        (kb for s in samples for pid, kb in s.rss_kb.items() if pid != server.pid), default=0
    )
    most = max(samples, key=lambda s: s.connections, default=baseline)
    verdict = "met" if total(peak) < TARGET_RSS_MB else "MISSED"
    rows = [
        Row(
            "vodedge RSS, master + worker, peak",
            f"{total(peak):.0f} MB",
            f"{total(peak) / TARGET_RSS_MB:.2f}",
            "",
            f"target < {TARGET_RSS_MB:.0f} MB ({verdict}); worker peak "
            f"{worker_peak / 1e3:.0f} MB; PSS {peak.pss_kb / 1e3:.0f} MB; "
            f"at {peak.at:.0f} s with {peak.connections} connections; idle before "
            f"{total(baseline):.0f} MB, after {total(after):.0f} MB",
        ),
        Row(
            "vodedge worker descriptors, peak",
            f"{max((s.fds for s in samples), default=0)}",
            "",
            "",
            f"limit {servers.fd_limit(min(p for p in server.pids() if p != server.pid))}, "
            f"{most.connections} connections established at most, send queues "
            f"{most.send_queue / 1e6:.0f} MB then",
        ),
        Row(
            "slow clients",
            f"{done.get('finished', 0)}/{options.slow_clients} complete",
            "",
            "",
            f"{ready.get('headers', 0)} had 200 headers after {ready.get('seconds', '?')} s; "
            f"bytes read each in the slow phase: median {done.get('read_at_slow_end_median', 0)}"
            f", min {done.get('read_at_slow_end_min', 0)}, all checked; wrong bytes "
            f"{done.get('wrong_bytes', 0)}; closed by the server {done.get('closed_early', 0)}"
            f" (first at {done.get('first_closed_at')} s); unfinished at the deadline "
            f"{done.get('unfinished', 0)}; bad status {done.get('bad_status', 0)}; errors "
            f"{done.get('errors', {})}",
        ),
    ]
    for label, probes in (("idle", idle), ("while the slow clients hold on", busy)):
        if not probes:
            rows.append(Row(f"fresh full GET, {label}", "-", "", "", "no probe"))
            continue
        firsts = [p[0] for p in probes]
        totals = [p[1] for p in probes]
        rows.append(
            Row(
                f"fresh full GET, {label}",
                fmt_seconds(statistics.median(totals)),
                "",
                "",
                f"first byte {fmt_seconds(statistics.median(firsts))}, {len(probes)} probes with "
                f"curl, {sum(p[2] for p in probes)} complete, worst {fmt_seconds(max(totals))}",
            )
        )
    return rows


def timeline(samples: list[Sample]) -> Iterator[str]:
    """A few samples as text, for the notes."""
    step = max(len(samples) // 8, 1)
    for sample in samples[::step]:
        yield (
            f"{sample.at:.0f} s: {sum(sample.rss_kb.values()) / 1e3:.0f} MB, "
            f"{sample.connections} conn"
        )
