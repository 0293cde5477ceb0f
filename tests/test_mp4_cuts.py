"""The fast path's table cuts (`media.mp4.cuts`) against plain per-sample numpy."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.media.mp4.cuts import (
    Chunks,
    Fields,
    Layout,
    Runs,
    Weave,
    _search,
    offsets_box,
    woven_offsets_box,
)
from vodedge.media.mp4.index import rle


@st.composite
def cut_of_runs(draw: st.DrawFn) -> tuple[list[int], list[int], int, int]:
    """Runs (some empty, some equal to their neighbour) and a cut inside them."""
    counts = draw(st.lists(st.integers(0, 5), min_size=1, max_size=30))
    values = draw(st.lists(st.sampled_from([0, 1, 2, 0xFFFFFFFF]), min_size=len(counts),
                           max_size=len(counts)))  # fmt: skip
    total = sum(counts)
    if total == 0:
        counts[0], total = 1, 1
    first = draw(st.integers(0, total - 1))
    stop = draw(st.integers(first + 1, total))
    return counts, values, first, stop


def expected_entries(values: np.ndarray, first: int, stop: int) -> tuple[int, bytes]:
    """What the general path writes for samples `[first, stop)`: `rle` of their values."""
    counts, runs = rle(values[first:stop])
    flat = np.empty(2 * len(counts), ">u4")
    flat[0::2], flat[1::2] = counts, runs.astype(np.int64) & 0xFFFFFFFF
    return len(counts), flat.tobytes()


@settings(max_examples=300, deadline=None)
@given(cut_of_runs())
def test_runs_cut_is_rle_of_the_slice(case: tuple[list[int], list[int], int, int]) -> None:
    """A cut of merged runs is the run-length coding of the cut's per-sample values."""
    counts, values, first, stop = case
    per_sample = np.repeat(np.array(values, np.uint32), counts)
    runs = Runs.of(np.array(counts, np.int64), np.array(values, np.uint32))
    assert joined(runs.cut(first, stop)) == expected_entries(per_sample, first, stop)
    signed = per_sample.view(np.int32)  # ctts: signed, written as 32-bit patterns
    cut = Runs.per_sample(signed).cut(first, stop)
    assert joined(cut) == expected_entries(signed, first, stop)


def joined(cut: tuple[int, list[bytes | memoryview]]) -> tuple[int, bytes]:
    """A cut's entry count and its entries as one string of bytes."""
    return cut[0], b"".join(cut[1])


def merged_by_hand(offsets: list[int], sizes: list[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Union of the non-empty intervals, and each chunk's place in their concatenation."""
    spans = sorted((o, o + s) for o, s in zip(offsets, sizes, strict=True) if s)
    merged: list[list[int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    positions = []
    for offset, size in zip(offsets, sizes, strict=True):
        at = 0
        if size:
            before = 0
            for begin, end in merged:
                if begin <= offset < end:
                    at = before + offset - begin
                    break
                before += end - begin
        positions.append(at)
    return [(b, e - b) for b, e in merged], positions


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=40))
def test_layout_merges_intervals(chunks: list[tuple[int, int]]) -> None:
    """Overlapping, touching, empty and unordered chunks: the merged intervals and
    where each chunk lands, as done by hand, with numpy and with Python lists."""
    offsets = [o for o, _ in chunks]
    sizes = [s for _, s in chunks]
    intervals, positions = merged_by_hand(offsets, sizes)
    arrays = Layout.of(np.array(offsets, np.int64), np.array(sizes, np.int64))
    lists = Layout.of_lists(offsets, sizes)  # a small cut's, in Python
    for layout in (arrays, lists):
        assert list(zip(layout.starts, layout.lengths, strict=True)) == intervals
        assert layout.total == sum(length for _, length in intervals)
        assert list(layout.positions) == positions


@st.composite
def woven_cuts(draw: st.DrawFn) -> tuple[list[Chunks], list[tuple[Chunks, int, int, int, int]]]:
    """Chunks of 1-3 tracks stored in file order (touching or apart, interleaved or in
    long runs) and a cut of each: a range of its chunks, the outer two trimmed."""
    tracks = draw(st.integers(1, 3))
    order = draw(st.lists(st.integers(0, tracks - 1), min_size=tracks, max_size=60))
    order += list(range(tracks))  # every track holds a chunk
    columns: list[tuple[list[int], list[int]]] = [([], []) for _ in range(tracks)]
    at = 0
    for track in order:
        at += draw(st.sampled_from([0, 0, 0, 1, 7]))
        size = draw(st.integers(1, 9))
        columns[track][0].append(at)
        columns[track][1].append(size)
        at += size
    chunks = []
    for offsets, sizes in columns:
        ones = np.ones(len(offsets), np.int64)
        first = np.arange(len(offsets), dtype=np.int64)
        as_array = np.array(offsets, np.int64), np.array(sizes, np.int64)
        chunks.append(Chunks(first, first + 1, ones, ones, *as_array, ones.astype(bool)))
    cuts = []
    for held, (offsets, sizes) in zip(chunks, columns, strict=True):
        lo = draw(st.integers(0, len(offsets) - 1))
        hi = draw(st.integers(lo + 1, len(offsets)))
        skipped = draw(st.integers(0, sizes[lo] - 1))
        room = sizes[hi - 1] - (skipped if hi - lo == 1 else 0)
        dropped = draw(st.integers(0, room - 1))
        cuts.append((held, lo, hi, skipped, dropped))
    return chunks, cuts


@settings(max_examples=400, deadline=None)
@given(woven_cuts(), st.sampled_from([0, 1000, 0xFFFFFFF0]))
def test_woven_layout_is_the_sorted_one(
    case: tuple[list[Chunks], list[tuple[Chunks, int, int, int, int]]], base: int
) -> None:
    """A layout found from the holes in the cuts' byte range (other chunks, trimmed
    parts, gaps) is the one sorting the cut chunks gives: spans, total, each chunk's
    place and its stco/co64; or it declines (too many holes, or chunks mostly apart)."""
    chunks, cuts = case
    weave = Weave.of(chunks)
    if weave is None:  # chunks mostly apart: no weave is made
        return
    woven = weave.layout(cuts)
    offsets: list[int] = []
    sizes: list[int] = []
    for held, lo, hi, skipped, dropped in cuts:
        more_offsets, more_sizes = held.lists(lo, hi, skipped, dropped)
        offsets += more_offsets
        sizes += more_sizes
    sorted_layout = Layout.of_lists(offsets, sizes)
    if woven is None:
        return
    starts, lengths, total, tracks = woven
    assert (starts, lengths, total) == (
        sorted_layout.starts,
        sorted_layout.lengths,
        sorted_layout.total,
    )
    first = 0
    for (held, lo, hi, _, _), track in zip(cuts, tracks, strict=True):
        relative = sorted_layout.positions[first : first + hi - lo]
        first += hi - lo
        assert woven_offsets_box(held, track, base) == offsets_box(relative, base)


@st.composite
def fields_and_delta(draw: st.DrawFn) -> tuple[list[int], int]:
    """Field values (few, or past `FEW_BYTES` of records) and a delta every sum fits."""
    value = st.integers(0, 0xFFFFFFFF)
    count = draw(st.sampled_from([(1, 20), (150, 200)]))
    values = draw(st.lists(value, min_size=count[0], max_size=count[1]))
    return values, draw(st.integers(-min(values), 0xFFFFFFFF - max(values)))


@settings(max_examples=300, deadline=None)
@given(fields_and_delta(), st.sampled_from([(32, 0), (96, 64), (64, 32), (64, 0)]))
def test_fields_shift_all_at_once(case: tuple[list[int], int], shape: tuple[int, int]) -> None:
    """`Fields.add` adds to one field of every big-endian record at once (as one
    integer sum, or with numpy for many): each sum is what adding one by one gives."""
    values, delta = case
    bits, low = shape
    other = (1 << low) - 1 if low else 0  # the bits below the field hold something
    records = b"".join(((v << low) | other).to_bytes(bits // 8, "big") for v in values)
    expected = b"".join(((v + delta << low) | other).to_bytes(bits // 8, "big") for v in values)
    assert Fields(bits, low).add(records, delta) == expected


@st.composite
def chunked_track(draw: st.DrawFn) -> tuple[Chunks, int, int]:
    """A track's chunks (samples per chunk and descriptions in runs, alternating or
    not; chunks apart or touching) and a cut of its samples `[first, stop)`."""
    count = draw(st.integers(1, 40))
    per_chunk = draw(st.lists(st.integers(1, 4), min_size=count, max_size=count))
    description = draw(st.lists(st.integers(1, 2), min_size=count, max_size=count))
    sizes = [draw(st.integers(1, 30)) for _ in range(count)]
    apart = draw(st.booleans())  # every chunk apart from the next, or some touching
    gap = st.sampled_from([1, 5] if apart else [0, 1, 5])
    gaps = draw(st.lists(gap, min_size=count, max_size=count))
    offsets, at = [], draw(st.sampled_from([0, 100, 0xFFFFFF00]))
    for gap, size in zip(gaps, sizes, strict=True):
        at += gap
        offsets.append(at)
        at += size
    samples = np.array(per_chunk, np.int64)
    end = np.cumsum(samples)
    chunks = Chunks.of(
        end - samples,
        samples,
        np.array(description, np.int64),
        np.array(offsets, np.int64),
        np.array(sizes, np.int64),
    )
    chunks.finish()
    total = int(end[-1])
    first = draw(st.integers(0, total - 1))
    stop = draw(st.integers(first + 1, total))
    return chunks, first, stop


def sample_bytes(chunks: Chunks) -> list[int]:
    """Bytes before each sample when a chunk's bytes are spread over its samples (the
    last takes the rest), and the total."""
    before = [0]
    for samples, size in zip(chunks.samples.tolist(), chunks.sizes.tolist(), strict=True):
        each = size // samples
        for k in range(samples):
            before.append(before[-1] + (size - each * (samples - 1) if k == samples - 1 else each))
    return before


@settings(max_examples=400, deadline=None)
@given(chunked_track())
def test_stsc_from_prepared_rows_is_the_row_by_row_one(case: tuple[Chunks, int, int]) -> None:
    """A cut's stsc made from the track's prepared rows (renumbered at once, the outer
    chunks and their neighbours made apart) is the one made chunk by chunk."""
    chunks, first, stop = case
    lo, hi, _, _ = chunks.bounds(first, stop, sample_bytes(chunks))
    assert chunks.stsc(lo, hi, first, stop) == chunks._stsc_of_few(lo, hi, first, stop)


@settings(max_examples=400, deadline=None)
@given(chunked_track(), st.sampled_from([0, 1000, 0xFFFFFF00]))
def test_spaced_layout_is_the_sorted_one(case: tuple[Chunks, int, int], base: int) -> None:
    """A cut of one track whose chunks lie apart, laid out a span per chunk, is what
    sorting and merging its chunks gives: spans, total, stco/co64."""
    chunks, first, stop = case
    lo, hi, skipped, dropped = chunks.bounds(first, stop, sample_bytes(chunks))
    offsets, sizes = chunks.lists(lo, hi, skipped, dropped)
    layout = Layout.of_lists(offsets, sizes)
    spaced = chunks.spaced_layout(lo, hi, skipped, dropped) if chunks.spaced else None
    if spaced is None:
        assert not chunks.spaced or not all(sizes)
        return
    starts, lengths, total, top = spaced
    assert (starts, lengths, total) == (layout.starts, layout.lengths, layout.total)
    assert top == max(layout.positions)
    expected = offsets_box(layout.positions, base)
    assert chunks.spaced_offsets_box(lo, hi, skipped, base) == expected


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=60).map(sorted),
    st.integers(-5, 60),
    st.integers(-10, 80),
    st.booleans(),
)
def test_search_near_a_guess_is_bisection(
    values: list[int], value: int, guess: int, right: bool
) -> None:
    """Chunks are searched first around a guess (their mean sample count), with any
    guess, near or far: the answer is the bisection's."""
    column = array("q", values)
    expected = bisect_right(values, value) if right else bisect_left(values, value)
    assert _search(column, value, guess, right) == expected
