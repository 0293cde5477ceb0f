"""Benchmark `seek`, FLV part (issue 15): time seeks at random starts on the 30-minute FLV.

In process: the scanning planner (every tag's header read and parsed per request,
as before the index) against plans from the tag index built once per object version.
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
    from vodedge.media.flv_index import read_flv_index
    from vodedge.media.flv_plan import flv_clip_plan
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

            old_cpu, _ = _cpu(scanned, max(samples // 30, 5))
            new_cpu, new_wall = _cpu(indexed, samples)
            rows.append(
                Row(
                    f"FLV: random {label} by time",
                    f"{ms(new_cpu)} CPU",
                    f"{old_cpu / new_cpu:.0f}x",
                    "",
                    f"from the warm tag index (wall median {ms(new_wall)}, {samples} starts); "
                    f"the scanning planner: {ms(old_cpu)} CPU per start",
                )
            )
        return rows
    finally:
        os.close(fd)
