"""Decode times and composition offsets looked up in their runs (`timeline`) against the
same values expanded to one per sample, as the index kept them before."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.media.mp4.cuts import Runs
from vodedge.media.mp4.timeline import FEW, SMALL, ChunkedBytes, RunValues, Timeline

runs_strategy = st.lists(
    st.tuples(st.integers(1, 40), st.sampled_from([0, 1, 512, 1001, 1024, 3003, 0xFFFFFFFF])),
    min_size=1,
    max_size=SMALL + 20,  # both the list and the array form of the runs
)


def _merged(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first sample, end, duration) of runs with equal neighbours merged."""
    merged: list[list[int]] = []
    for count, value in pairs:
        if merged and merged[-1][1] == value:
            merged[-1][0] += count
        else:
            merged.append([count, value])
    counts = np.array([c for c, _ in merged], np.int64)
    ends = np.cumsum(counts)
    return ends - counts, ends, np.array([v for _, v in merged], np.int64)


@settings(max_examples=300, deadline=None, database=None)
@given(
    pairs=runs_strategy,
    shift=st.one_of(st.integers(-3000, 3000), st.just(1 << 60)),
    timescale=st.sampled_from([1, 1000, 44100, 90000, 1 << 40]),
    delay=st.sampled_from([0.0, 0.5, 1 / 3]),
    probes=st.lists(st.floats(-10.0, 1e7, allow_nan=False), max_size=20),
    extra_when=st.sampled_from([float("inf"), 0.0, 1e308]),
)
def test_times_and_searches_equal_the_per_sample_values(
    pairs: list[tuple[int, int]],
    shift: int,
    timescale: int,
    delay: float,
    probes: list[float],
    extra_when: float,
) -> None:
    """dts of every sample and of the end, and `after`/`before` of sample times (and of
    times a hair off them, and anywhere) as bisections of the per-sample times."""
    firsts, ends, durations = _merged(pairs)
    timeline = Timeline(firsts, ends, durations, shift, timescale, delay)
    expanded = np.repeat(durations, ends - firsts).tolist()
    dts = [0]
    for duration in expanded:
        dts.append(dts[-1] + duration)
    count = len(expanded)
    assert len(timeline) == count + 1
    assert [timeline[i] for i in range(count + 1)] == dts
    assert timeline[2:7].tolist() == dts[2:7]
    times = [(d - shift) / timescale + delay for d in dts[:-1]]
    assert [timeline.seconds(i) for i in range(count)] == times
    wanted = [*probes, extra_when, *times[:: max(count // 30, 1)], times[-1]]
    wanted += [t + 1e-9 for t in wanted[-5:]] + [t - 1e-9 for t in wanted[-5:]]
    for when in wanted:
        assert timeline.after(when) == bisect_right(times, when), when
        assert timeline.before(when) == bisect_left(times, when), when
    for first in range(0, count, max(count // 7, 1)):
        stop = min(first + 13, count)
        assert timeline.durations_of(first, stop).tolist() == expanded[first:stop]


@settings(max_examples=300, deadline=None, database=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(0, 9), st.sampled_from([0, 1, 2, 1024, 0x7FFFFFFF, 0xFFFFFFFE])),
        min_size=1,
        max_size=100,
    ),
    tail=st.integers(0, 20),
)
def test_run_values_equal_the_expanded_offsets(pairs: list[tuple[int, int]], tail: int) -> None:
    """Each sample's signed offset, and any slice of them, as the expanded table gives."""
    counts = np.array([c for c, _ in pairs] + [tail], np.int64)
    values = np.array([v for _, v in pairs] + [0], np.uint32)
    count = int(counts.sum())
    if not count:
        return
    runs = Runs.of(counts, values)
    offsets = RunValues(runs.ends, runs.entries, count)
    expanded = np.repeat(values, counts).view(np.int32)
    assert [offsets[i] for i in range(count)] == expanded.tolist()
    for first in range(count):
        for stop in (first, first + 1, first + 5, count):
            assert offsets[first:stop].tolist() == expanded[first:stop].tolist()
    assert offsets[::3].tolist() == expanded[::3].tolist()


@settings(max_examples=200, deadline=None, database=None)
@given(
    per_chunk=st.lists(st.integers(1, FEW), min_size=1, max_size=50),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunked_bytes_equal_the_running_sums(per_chunk: list[int], seed: int) -> None:
    """The bytes before every sample (and the end), from the chunks' totals and sums of
    a few sizes, and then from the table once it is put in, equal the running sum of
    the stsz entries."""
    count = sum(per_chunk)
    sizes = np.random.default_rng(seed).integers(0, 1 << 20, count).astype(">u4")
    starts = np.cumsum([0, *per_chunk[:-1]]).astype(np.int64)
    totals = np.add.reduceat(sizes, starts, dtype=np.int64)
    before = ChunkedBytes(starts, np.cumsum(totals) - totals, sizes.data.cast("B"))
    running = [0, *np.cumsum(sizes, dtype=np.int64).tolist()]
    assert [before[i] for i in range(count + 1)] == running
    before.table = np.array(running, np.uint32).data
    assert [before[i] for i in range(count + 1)] == running
