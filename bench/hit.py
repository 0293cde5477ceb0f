"""Benchmark `edge-hit` (issue 15): a plain 1 kB HIT against the floors under it.

vodedge's HIT (asyncio and uvloop) side by side with nginx, a bare aiohttp handler
on the same loop, aiohttp's low-level server with one handler (what vodedge runs), a
lean asyncio Protocol with httptools, and granian: one worker
each, `wrk -t1 -c8`, interleaved rounds, medians; the server's CPU per response.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import servers
from harness import REPO, VENV_BIN, Row, Section, bench_env
from servers import Server

FLOOR = Path(__file__).with_name("floor.py")


@contextlib.contextmanager
def floor_server(kind: str, loop: str) -> Iterator[Server]:
    """One of bench/floor.py's servers (or granian's) on a free loopback port."""
    port = servers.free_port()
    if kind == "granian":
        argv = [
            str(VENV_BIN / "granian"), "--interface", "rsgi", "--workers", "1",
            "--host", "127.0.0.1", "--port", str(port), "--loop", loop,
            "--no-ws", "--log-level", "error", "floor:rsgi_app",
        ]  # fmt: skip
    else:
        argv = [str(VENV_BIN / "python"), str(FLOOR), kind, "--port", str(port), "--loop", loop]
    proc = subprocess.Popen(
        argv,
        cwd=FLOOR.parent,
        env=bench_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        servers._wait_http(base + "/small.bin", proc)
        yield Server(base, proc.pid)
    finally:
        servers.stop(proc)


@dataclass
class Runs:
    """A contender's wrk runs: requests/s and server CPU per response."""

    label: str
    server: Server
    rps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    last: servers.WrkResult | None = None

    def run(self, seconds: int, connections: int) -> None:
        """One wrk run of GET /small.bin."""
        pids = self.server.pids()
        before = servers.cpu_seconds(pids)
        result = servers.wrk(
            self.server.base + "/small.bin", seconds=seconds, connections=connections
        )
        used = servers.cpu_seconds(pids) - before
        self.rps.append(result.requests_per_s)
        self.cpu.append(used / max(result.requests, 1))
        self.last = result


def _floor(
    stack: contextlib.ExitStack,
    contenders: list[Runs],
    missing: list[Row],
    kind: str,
    loop: str,
    label: str,
) -> None:
    """Add a floor server to the contenders, or a row saying why it could not run."""
    label = f"{label} ({loop})"
    if kind == "granian" and not (VENV_BIN / "granian").exists():
        why = "granian is not installed (the `bench` extra: make bench)"
    else:
        try:
            server = stack.enter_context(floor_server(kind, loop))
        except RuntimeError as exc:
            why = f"did not start ({exc}); httptools comes with the `bench` extra (make bench)"
        else:
            contenders.append(Runs(label, server))
            return
    print(f"  {label}: not measured: {why}", flush=True)
    missing.append(Row(label, "not measured", "", "", why))


def bench_hit(seconds: int, connections: int, rounds: int) -> Section:
    """The 1 kB HIT against nginx and the floors, interleaved rounds."""
    print(f"\nbenchmark edge-hit: 1 kB, wrk {seconds} s x {rounds} rounds each", flush=True)
    contenders: list[Runs] = []
    missing: list[Row] = []
    with servers.docroot({}) as root, contextlib.ExitStack() as stack:
        (root / "small.bin").write_bytes(bytes(1000))
        if shutil.which("nginx"):
            nginx = stack.enter_context(servers.nginx_server(root, "/small.bin"))
            contenders.append(Runs("nginx", nginx))
        for loop in ("asyncio", "uvloop"):
            vd = stack.enter_context(servers.vodedge_server(root, "/small.bin", loop=loop))
            servers.warm(vd.base + "/small.bin", want_hit=True)
            contenders.append(Runs(f"vodedge HIT ({loop})", vd))
            floor = stack.enter_context(floor_server("aiohttp", loop))
            contenders.append(Runs(f"bare aiohttp handler ({loop})", floor))
            _floor(stack, contenders, missing, "lowlevel", loop, "aiohttp web.Server, one handler")
            _floor(stack, contenders, missing, "lean", loop, "asyncio Protocol + httptools")
        _floor(stack, contenders, missing, "granian", "uvloop", "granian RSGI")
        for contender in contenders:  # warm-up
            servers.wrk(contender.server.base + "/small.bin", seconds=1, connections=connections)
        for index in range(rounds):
            order = contenders if index % 2 == 0 else contenders[::-1]
            for contender in order:
                contender.run(seconds, connections)
    floors = {c.label.rpartition("(")[2]: c for c in contenders if c.label.startswith("bare")}
    rows = []
    for contender in contenders:
        rps = statistics.median(contender.rps)
        cpu = statistics.median(contender.cpu)
        loop = contender.label.rpartition("(")[2]
        floor = floors.get(loop)
        ratio = ""
        if floor is not None and contender is not floor:
            ratio = f"{rps / statistics.median(floor.rps):.2f}"
        last = contender.last
        assert last is not None
        rows.append(
            Row(
                contender.label,
                f"{rps:,.0f} req/s",
                ratio,
                last.command.replace(f"{REPO}/", "").rsplit(" ", 1)[0] + " URL/small.bin",
                f"server CPU {cpu * 1e6:.0f} µs per response; p50 {last.p50}, p99 {last.p99} "
                f"(last run){', ' + last.errors if last.errors else ''}",
            )
        )
    rows += missing
    return Section(
        "edge-hit",
        "A plain 1 kB HIT against the floors under it (issue 15)",
        ["GET /small.bin, 1,000 bytes, warm cache"],
        rows,
        [
            f"wrk -t1 -c{connections}, {seconds} s per run, {rounds} interleaved rounds, "
            "medians; one server worker each, loopback",
            "ratio: requests/s against the bare aiohttp handler on the same loop "
            "(issue 15's target for vodedge: >= 0.6)",
        ],
    )
