"""Benchmark `seek` (issues 3 and 15): clips at random starts on the 30-minute MP4.

Over HTTP, one worker each, side by side with nginx's mp4 module: `wrk` with a
Lua script that draws a new start for every request (a listener dragging the
progress bar), a cold-index case (the first seek of an object), and the
latency of a small HIT while 8 clients seek at random. In process: the
planner's cost from a warm index, building the index, and the old planner.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import media
import seek_flv
import servers
from edge import KeepAlive
from harness import REPO, Row, Section, time_in_process
from servers import Server, WrkResult

DURATION = 1800.0
CLIP = 10.0
SEED = 15
# wrk scripts beside this file: a new random start for every request.
SCRIPTS = {
    "clip": Path(__file__).with_name("seek-clip.lua"),
    "audio-open": Path(__file__).with_name("seek-audio-open.lua"),
}
WORKLOADS = {
    "clip": "/long.mp4?start=%.3f&end=%.3f",
    "audio-open": "/long.mp4?ali_audio_only=1&start=%.3f",
}


def random_path(workload: str, rng: random.Random) -> str:
    """One request of `workload`, as the Lua script would draw it."""
    fmt = WORKLOADS[workload]
    s = rng.random() * (DURATION - CLIP)
    return fmt % ((s, s + CLIP) if workload == "clip" else (s,))


def measured(server: Server, script: Path, seconds: int, connections: int) -> Measured:
    """One wrk run of `script` against `server` (after a 1-s warm-up run), with the
    server's CPU time per response: on a shared machine the steadier figure."""
    url = server.base + "/long.mp4"
    # Another seed for the warm-up: repeating its starts would make them warm clips.
    servers.wrk(url, seconds=1, connections=connections, script=script, timeout=30, seed=SEED + 9)
    pids = server.pids()
    before = servers.cpu_seconds(pids)
    result = servers.wrk(
        url, seconds=seconds, connections=connections, script=script, timeout=30, seed=SEED
    )
    used = servers.cpu_seconds(pids) - before
    return Measured(result, used / max(result.requests, 1))


@dataclass
class Measured:
    """A wrk run and the server's CPU seconds per response during it."""

    result: WrkResult
    cpu: float


def wrk_row(label: str, run: Measured | WrkResult, base: Measured | None) -> Row:
    """A table row of one wrk run; the ratio is requests/s against `base`'s, and the
    detail also gives the ratio of CPU per response (base / this: above 1 is cheaper)."""
    result = run.result if isinstance(run, Measured) else run
    ratio = f"{result.requests_per_s / base.result.requests_per_s:.3f}" if base else ""
    detail = f"p50 {result.p50}, p99 {result.p99}, {result.requests} requests"
    if isinstance(run, Measured):
        detail += f", server CPU {ms(run.cpu)} per response"
        if base is not None:
            detail += f" (CPU ratio {base.cpu / run.cpu:.3f})"
    if result.errors:
        detail += f", {result.errors}"
    command = result.command.replace(f"{REPO}/", "")
    return Row(label, f"{result.requests_per_s:,.1f} req/s", ratio, command, detail)


def clip_rounds(
    contenders: list[tuple[str, Server]], seconds: int, connections: int
) -> dict[str, list[Measured]]:
    """CLIP_ROUNDS runs of the random clips against each contender, interleaved (the
    order reversed every round): a shared machine's drift falls on all of them."""
    runs: dict[str, list[Measured]] = {label: [] for label, _ in contenders}
    for round_ in range(CLIP_ROUNDS):
        ordered = contenders if round_ % 2 == 0 else contenders[::-1]
        for label, server in ordered:
            runs[label].append(measured(server, SCRIPTS["clip"], seconds, connections))
    return runs


def median_run(runs: list[Measured]) -> Measured:
    """The run of median requests/s."""
    return sorted(runs, key=lambda run: run.result.requests_per_s)[len(runs) // 2]


def rounds_row(label: str, runs: list[Measured], base: Measured | None) -> Row:
    """`wrk_row` of the median run, with every round's requests/s and CPU per response."""
    row = wrk_row(label, median_run(runs), base)
    each = ", ".join(f"{run.result.requests_per_s:,.0f} req/s {ms(run.cpu)}" for run in runs)
    row.detail += f"; rounds (interleaved): {each}"
    return row


def ms(seconds: float) -> str:
    """Milliseconds, three significant places."""
    return f"{seconds * 1e3:.3g} ms"


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


# -- in process ---------------------------------------------------------------------------


def _oracle() -> Callable[..., object] | None:
    """The planner as it was before the index (kept in tests/ as the oracle), if present."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from mp4_seek_oracle import clip_plan
    except ImportError:
        return None
    finally:
        sys.path.pop(0)
    return clip_plan  # type: ignore[no-any-return]


def in_process(path: Path, samples: int) -> list[Row]:
    """The planner alone: old planner, index build, and clips from a warm index."""
    from vodedge.media.mp4.index import read_index
    from vodedge.media.reading import run

    size = path.stat().st_size
    rows: list[Row] = []
    with path.open("rb") as file:
        fd = file.fileno()

        def read(offset: int, length: int) -> bytes:
            return os.pread(fd, length, offset)

        old = _oracle()
        build = time_in_process(lambda: run(read_index(size), read), 15, 2)
        if old is not None:
            rng = random.Random(SEED)

            def old_clip() -> object:
                s = rng.random() * (DURATION - CLIP)
                return run(old(size, start=s, end=s + CLIP), read)

            before = time_in_process(old_clip, 15, 2)
            rows.append(
                Row(
                    "old planner (whole moov per request), random 10-s clip",
                    ms(before.median),
                    "",
                    "",
                    f"CPU median {ms(before.cpu_median or 0)}; what every seek cost before",
                )
            )
        rows.append(
            Row(
                "index build (cold: read + parse the moov once)",
                ms(build.median),
                f"{(build.cpu_median or 0) / (before.cpu_median or 1):.2f}" if old else "",
                "",
                f"CPU median {ms(build.cpu_median or 0)}; ratio: CPU of the index build / "
                "CPU of the old planner per request (target <= 1)",
            )
        )
        index = run(read_index(size), read)
        index.finish()  # as the edge does from its second clip on (see `IndexMemo.get`)
        rows.append(Row("index memory", f"{index.nbytes / 1e6:.1f} MB", "", "", "moov + arrays"))
        cases: list[tuple[str, Callable[[float], object], float]] = [
            ("warm: random 10-s clip, full", lambda s: index.clip(s, s + CLIP), 0.5e-3),
            (
                "warm: random 10-s clip, full, general path (per-sample tables; before the "
                "fast path)",
                lambda s: index.clip(s, s + CLIP, general=True),
                0.5e-3,
            ),
            (
                "warm: random 10-s clip, audio-only",
                lambda s: index.clip(s, s + CLIP, audio_only=True),
                0.5e-3,
            ),
            (
                "warm: random open-ended start, audio-only",
                lambda s: index.clip(s, None, audio_only=True),
                3e-3,
            ),
            ("warm: random open-ended start, full", lambda s: index.clip(s, None), 3e-3),
            (
                "warm: open-ended from 0 s, audio-only (largest)",
                lambda s: index.clip(0.0, None, audio_only=True),
                3e-3,
            ),
        ]
        for label, plan, target in cases:
            rng = random.Random(SEED)
            times: list[float] = []
            cpu: list[float] = []
            for _ in range(10):
                plan(rng.random() * (DURATION - CLIP))
            for _ in range(samples):
                s = rng.random() * (DURATION - CLIP)
                cpu0 = time.thread_time()
                started = time.perf_counter()
                plan(s)
                times.append(time.perf_counter() - started)
                cpu.append(time.thread_time() - cpu0)
            p50 = statistics.median(cpu)  # wall time is as much the machine's load as ours
            rows.append(
                Row(
                    label,
                    f"{ms(p50)} CPU",
                    "",
                    "",
                    f"wall median {ms(statistics.median(times))}, wall p99 "
                    f"{ms(quantile(times, 0.99))}, {samples} starts; target <= {ms(target)} "
                    f"({'met' if p50 <= target else 'missed'})",
                )
            )
    return rows


# -- over HTTP ----------------------------------------------------------------------------


def ttfb(server: Server, paths: list[str]) -> list[float]:
    """Seconds to the first body byte of each path, one keep-alive connection."""
    client = KeepAlive(server.base)
    try:
        out = []
        for path in paths:
            out.append(client.sample(path)[1])
            time.sleep(0.002)
        return out
    finally:
        client.close()


@contextlib.contextmanager
def both_servers(files: dict[str, Path]) -> Iterator[tuple[Server | None, Server | None, Path]]:
    """nginx (mp4 module) and vodedge serving `files` (plus small.bin, 1 kB)."""
    with servers.docroot(files) as root, contextlib.ExitStack() as stack:
        (root / "small.bin").write_bytes(os.urandom(1000))
        nginx = None
        if servers.nginx_has_mp4():
            nginx = stack.enter_context(servers.nginx_server(root, "/small.bin"))
        vd = None
        if servers.vodedge_serve_available():
            vd = stack.enter_context(servers.vodedge_server(root, "/small.bin"))
            warm_server(vd, files)
        yield nginx, vd, root


def warm_server(server: Server, files: dict[str, Path]) -> None:
    """Each of `files` and small.bin cached (`X-Cache: HIT` seen) by `server`."""
    for name in files:
        servers.warm(server.base + f"/{name}", want_hit=True)
    servers.warm(server.base + "/small.bin", want_hit=True)


# Rounds of the random clips, each contender once per round (the order reversed every
# round): the median run of each is reported, the others in its detail.
CLIP_ROUNDS = 3


def over_http(seconds: int, connections: int, notes: list[str]) -> list[Row]:
    """wrk with random starts, nginx and vodedge; TTFB of open-ended audio-only starts."""
    head = media.ensure(media.MP4_LONG)
    rows: list[Row] = []
    scripts = SCRIPTS
    with both_servers({"long.mp4": head}) as (nginx, vd, _root), contextlib.ExitStack() as st:
        if nginx is None:
            rows.append(Row("nginx mp4 module", "-", "", "", "skipped: no mp4 module"))
        if vd is None:
            rows.append(Row("vodedge serve", "-", "", "", "skipped: no serve command"))
            return rows
        uv = st.enter_context(servers.vodedge_server(_root, "/small.bin", loop="uvloop"))
        warm_server(uv, {"long.mp4": head})
        contenders = [
            ("nginx mp4 module, random 10-s clips", nginx),
            ("vodedge, random 10-s clips", vd),
            ("vodedge --loop uvloop, random 10-s clips", uv),
        ]
        runs = clip_rounds(
            [(label, s) for label, s in contenders if s is not None], seconds, connections
        )
        base = median_run(runs[contenders[0][0]]) if nginx is not None else None
        for label, server in contenders:
            if server is not None:
                rows.append(rounds_row(label, runs[label], None if server is nginx else base))
        run = measured(vd, scripts["audio-open"], seconds, connections)
        rows.append(wrk_row("vodedge, random open-ended audio-only starts", run, None))
        rng = random.Random(SEED + 1)
        paths = [random_path("audio-open", rng) for _ in range(60)]
        first = ttfb(vd, paths)
        rows.append(
            Row(
                "vodedge, random open-ended audio-only starts: time to first byte",
                ms(statistics.median(first)),
                "",
                "",
                f"p90 {ms(quantile(first, 0.9))}, {len(first)} requests one at a time on one "
                "keep-alive connection (body read untimed); target p50 < 5 ms",
            )
        )
        notes.append(
            "wrk scripts: a new random start (three decimals) for every request, seeded; "
            f"random clips: {CLIP_ROUNDS} interleaved rounds, each contender's median run "
            "reported; ratio is vodedge / nginx requests/s"
        )
    return rows


def cold_index(copies: int) -> list[Row]:
    """The first seek of an object (its index not built yet) against later ones; nginx
    parses the moov on every request, so its first and later ones cost the same. Each
    object is a cache key of its own (its own index); one more is asked first and not
    counted, so that the process's first clip (its first worker thread) is not."""
    head = media.ensure(media.MP4_LONG)
    files = {f"c{i}.mp4": head for i in range(copies + 1)}
    rows: list[Row] = []
    rng = random.Random(SEED + 2)
    with both_servers(files) as (nginx, vd, _root):
        for label, server in (("nginx mp4 module", nginx), ("vodedge", vd)):
            if server is None:
                continue
            cold: list[float] = []
            warm: list[float] = []
            cpu: list[float] = []
            for name in files:
                paths = [random_path("clip", rng).replace("long", name[:-4]) for _ in range(4)]
                before = _cpu_ns(server.pids())
                times = ttfb(server, paths[:1])
                used = _cpu_ns(server.pids()) - before
                times += ttfb(server, paths[1:])
                if name == "c0.mp4":
                    continue
                cold.append(times[0])
                warm += times[1:]
                cpu.append(used / 1e9)
            rows.append(
                Row(
                    f"{label}: first 10-s clip of an object (cold index)",
                    ms(statistics.median(cold)),
                    "",
                    "",
                    f"max {ms(max(cold))}; server CPU {ms(statistics.median(cpu))} (median); "
                    f"later clips of the same object: median {ms(statistics.median(warm))}; "
                    f"{copies} objects, time to first byte",
                )
            )
    return rows


def _cpu_ns(pids: list[int]) -> int:
    """Nanoseconds on CPU of every thread of these processes (schedstat: the clock
    ticks of /proc/PID/stat are too coarse for one request)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError, ValueError):
                    stat = Path(f"/proc/{pid}/task/{task}/schedstat").read_text()
                    total += int(stat.split()[0])
    return total


def hit_while_seeking(seconds: int, connections: int) -> list[Row]:
    """A 1 kB HIT's latency, alone and while `connections` clients seek at random."""
    head = media.ensure(media.MP4_LONG)
    rows: list[Row] = []
    with both_servers({"long.mp4": head}) as (_nginx, vd, _root):
        if vd is None:
            return rows
        script = SCRIPTS["clip"]
        quiet = probe_hits(vd, seconds=3.0)
        probes: list[float] = []
        load: list[WrkResult] = []

        def seekers() -> None:
            load.append(
                servers.wrk(
                    vd.base + "/long.mp4",
                    seconds=seconds,
                    connections=connections,
                    script=script,
                )
            )

        thread = threading.Thread(target=seekers)
        thread.start()
        time.sleep(0.5)
        probes = probe_hits(vd, seconds=seconds - 1.0)
        thread.join()
        for label, values in (("alone", quiet), (f"while {connections} clients seek", probes)):
            rows.append(
                Row(
                    f"vodedge 1 kB HIT, {label}",
                    f"p99 {ms(quantile(values, 0.99))}",
                    "",
                    "",
                    f"p50 {ms(statistics.median(values))}, max {ms(max(values))}, "
                    f"{len(values)} requests every 10 ms; target p99 < 10 ms",
                )
            )
        if load:
            rows.append(wrk_row("(the seekers meanwhile: random 10-s clips)", load[0], None))
    return rows


def probe_hits(server: Server, seconds: float) -> list[float]:
    """Latencies of GET /small.bin (a HIT), one every 10 ms for `seconds`."""
    client = KeepAlive(server.base)
    out = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out.append(client.sample("/small.bin")[1])
            time.sleep(0.01)
    finally:
        client.close()
    return out


def bench_seek(seconds: int, connections: int, samples: int = 300) -> Section:
    """Random-start seeks on the 30-minute MP4: over HTTP against nginx, and in process."""
    head = media.ensure(media.MP4_LONG)
    notes: list[str] = [
        f"wrk -t1 -c{connections}, {seconds} s per run, loopback, one server worker each",
        "in process: CPU time of one plan (no I/O once the index is built), one core",
    ]
    print(f"\nbenchmark seek: random starts, wrk {seconds} s per run", flush=True)
    rows = in_process(head, samples)
    flv = media.ensure(media.FLV_LONG)
    rows += seek_flv.in_process(flv, samples)
    rows += seek_flv.over_http(flv, seconds, connections)
    rows += over_http(seconds, connections, notes)
    rows += cold_index(8)
    rows += hit_while_seeking(seconds, connections)
    return Section(
        "seek",
        "Seeking at random starts, 30-minute MP4 (issues 3 and 15)",
        [
            media.describe(head),
            media.describe(flv),
            "clips: ?start=S&end=S+10 and ?ali_audio_only=1&start=S, S random",
        ],
        rows,
        notes,
    )
