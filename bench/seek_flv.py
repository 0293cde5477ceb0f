"""Benchmark `seek`, FLV part (issue 15): time seeks at random starts on the 30-minute FLV.

In process: the scanning planner (every tag's header read and parsed per request,
as before the index) against plans from the tag index built once per object version;
audio-only plans as the edge makes them once the object's audio tags are stored (over
that copy, `FlvIndex.stored_plan`), beside the plan over the source (one span per run of
audio tags between video tags).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from harness import Row

DURATION = 1800.0
CLIP = 10.0
SEED = 15


def ms(seconds: float) -> str:
    """Milliseconds, three significant places."""
    return f"{seconds * 1e3:.3g} ms"


def _cpu(plan: Callable[[float], object], samples: int) -> tuple[float, float]:
    """Median CPU and wall seconds of `plan` over `samples` random starts."""
    rng = random.Random(SEED)
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(samples):
        s = rng.random() * (DURATION - CLIP)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        plan(s)
        cpu.append(time.thread_time() - cpu0)
        wall.append(time.perf_counter() - wall0)
    return statistics.median(cpu), statistics.median(wall)


def in_process(path: Path, samples: int) -> list[Row]:
    """Per random start: the scanning planner, and a plan from the warm tag index."""
    from vodedge.media.flv.index import read_flv_index
    from vodedge.media.flv.plan import flv_clip_plan
    from vodedge.media.flv.seek import parse_seek
    from vodedge.media.reading import run

    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:

        def read(offset: int, length: int) -> bytes:
            return os.pread(fd, length, offset)

        cpu0 = time.thread_time()
        index = run(read_flv_index(size), read)
        build = time.thread_time() - cpu0
        assert index is not None
        rows = [
            Row(
                "FLV: tag index build (read + scan every tag once)",
                f"{ms(build)} CPU",
                "",
                "",
                f"{len(index):,} tags, {index.nbytes / 1e6:.1f} MB; once per object version, "
                "in worker threads",
            )
        ]
        cases: list[tuple[str, float | None, bool]] = [
            ("10-s clip, full", CLIP, False),
            ("10-s clip, audio-only", CLIP, True),
            ("open-ended start, full", None, False),
            ("open-ended start, audio-only", None, True),
        ]
        for label, length, audio_only in cases:

            def scanned(s: float, length: float | None = length, a: bool = audio_only) -> object:
                end = None if length is None else s + length
                return run(flv_clip_plan(size, s, end, True, a), read)

            def indexed(s: float, length: float | None = length, a: bool = audio_only) -> object:
                end = None if length is None else s + length
                return index.clip_plan(s, end, True, a)

            def stored(s: float, length: float | None = length) -> object:
                end = None if length is None else s + length
                return index.stored_plan(parse_seek(s, end, True))

            old_cpu, _ = _cpu(scanned, max(samples // 30, 5))
            new_cpu, new_wall = _cpu(stored if audio_only else indexed, samples)
            detail = f"the scanning planner: {ms(old_cpu)} CPU per start"
            if audio_only:
                source_cpu, _ = _cpu(indexed, max(samples // 10, 5))
                detail = (
                    f"over the stored audio tags; the plan over the source (a span per run of "
                    f"audio tags): {ms(source_cpu)} CPU; " + detail
                )
            rows.append(
                Row(
                    f"FLV: random {label} by time",
                    f"{ms(new_cpu)} CPU",
                    f"{old_cpu / new_cpu:.0f}x",
                    "",
                    f"from the warm tag index (wall median {ms(new_wall)}, {samples} starts); "
                    + detail,
                )
            )
        return rows
    finally:
        os.close(fd)


CONFIG = """\
[[domain]]
name = "*"
origins = [{origin}]
[[domain.function]]
name = "video_seek"
args = {{ enable = "on", flv_seek_by_time = "on" }}
[[domain.function]]
name = "ali_video_split"
args = {{ enable = "on" }}
"""


def over_http(flv: Path, seconds: int, connections: int) -> list[Row]:
    """wrk with a new random time start per request against one vodedge worker whose
    FLV seeks are by time (nginx's flv module seeks by byte offset only: no peer)."""
    import json

    import servers
    from seek import SCRIPTS, Measured, wrk_row

    rows: list[Row] = []
    if not servers.vodedge_serve_available():
        return [Row("FLV over HTTP", "-", "", "", "skipped: no serve command")]
    with servers.docroot({"long.flv": flv}) as root:
        (root / "small.bin").write_bytes(os.urandom(1000))
        config = root.parent / f"{root.name}-flv-seek.toml"
        config.write_text(CONFIG.format(origin=json.dumps(str(root))))
        try:
            with servers.vodedge_server(root, "/small.bin", config=config) as vd:
                servers.warm(vd.base + "/long.flv", want_hit=True)
                url = vd.base + "/long.flv"
                # The first seek builds the object's tag index; wrk's warm-up run pays it.
                for name, label in (
                    ("clip", "random 10-s clips ?start=S&end=S+10"),
                    ("audio-open", "random open-ended audio-only starts"),
                ):
                    script = SCRIPTS[name]
                    servers.wrk(url, seconds=1, connections=connections, script=script, seed=24)
                    pids = vd.pids()
                    before = servers.cpu_seconds(pids)
                    result = servers.wrk(
                        url, seconds=seconds, connections=connections, script=script, seed=SEED
                    )
                    used = servers.cpu_seconds(pids) - before
                    run = Measured(result, used / max(result.requests, 1))
                    rows.append(wrk_row(f"FLV by time, vodedge: {label}", run, None))
        finally:
            config.unlink(missing_ok=True)
    return rows
