"""Cuts of a track's sample tables by slicing: what a clip of samples `[first, stop)`
writes, from tables prepared once per track.

Each cut is a few binary searches, slices copied and their ends patched, then one
`tobytes`: no pass over the cut's samples in Python, and as few numpy calls as the
tables allow (at a microsecond each, their count is what a clip costs). Every
result equals what the general path in `index` computes from the per-sample view.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from struct import Struct, pack  # pack: its formats are cached, a Struct's are not

import numpy as np
import numpy.typing as npt

from vodedge.media.mp4.timeline import BytesBefore

Ints = npt.NDArray[np.int64]
U32s = npt.NDArray[np.uint32]
# Chunk lists (offsets, sizes, where they land) of a cut of at most this many chunks per
# track are Python lists: a 10-second clip's few dozen cost less in Python than in
# the numpy calls that would handle them. Larger cuts are arrays.
SMALL = 64
Column = list[int] | Ints
Piece = bytes | memoryview

_HEAD = Struct(">I4sII")  # size, type, version and flags, entry count
_ONE = Struct(">I4sIIII")  # the same with one (count, value) entry
_ONE_ENTRY = Struct(">I4sIII")  # the same with the first 32-bit entry
_RUN = Struct(">II")
_U32 = Struct(">I")
_ROW = Struct(">III")  # an stsc row: first chunk, samples per chunk, description
_ROWS2 = Struct(">6I")  # two of them


def table_box(kind: bytes, version: int, count: int, entries: bytes) -> bytes:
    """A full box of `count` entries: size, type, version (flags 0), count, entries."""
    return _HEAD.pack(16 + len(entries), kind, version << 24, count) + entries


class Fields:
    """Big-endian records of `bits` bits with a 32-bit field at bit `low` (of the
    record's last bit), to which `add` adds one value in every record at once: as one
    integer for a few records (every sum must fit its field, so nothing carries or
    borrows), with numpy for many (Python's conversions of long integers cost more)."""

    __slots__ = ("bits", "column", "low", "ones")

    def __init__(self, bits: int, low: int = 0) -> None:
        assert bits % 32 == 0 and low % 32 == 0 and low < bits
        self.bits = bits
        self.low = low
        self.column = (bits - low) // 32 - 1  # the field's place among a record's words
        self.ones: dict[int, int] = {}  # by length in bytes: a one in each field

    def add(self, entries: bytes, delta: int) -> bytes:
        """`entries` with `delta` added to the field of each record."""
        size = len(entries)
        if size > FEW_BYTES:
            table = np.frombuffer(entries, ">u4").reshape(-1, self.bits // 32).copy()
            table[:, self.column] = table[:, self.column].astype(np.int64) + delta
            return table.tobytes()
        ones = self.ones.get(size)
        if ones is None:
            record = (1 << self.low).to_bytes(self.bits // 8, "big")
            ones = int.from_bytes(record * (8 * size // self.bits), "big")
            if size <= _CACHED_BYTES:  # a 10-second clip's: a few kB of them in all
                self.ones[size] = ones
        return (int.from_bytes(entries, "big") + delta * ones).to_bytes(size, "big")


# Entries past this many bytes are added to with numpy (see `Fields`).
FEW_BYTES = 1536
# `Fields` keeps the integers it adds with for entries up to this many bytes.
_CACHED_BYTES = 512
OFFSETS = Fields(32)  # stco entries
FIRST_CHUNKS = Fields(96, 64)  # the first-chunk numbers of stsc rows


def view(values: np.ndarray) -> memoryview:
    """The bytes of a contiguous array, uncopied."""
    return values.data.cast("B")


def _column(values: Ints) -> tuple[array[int], Ints]:
    """An int64 column as an `array` and a numpy view of it (one copy of the values)."""
    held = array("q", values.astype(np.int64).tobytes())
    return held, np.frombuffer(held, np.int64)


class Runs:
    """A run-length table (`stts`, `ctts`, `sbgp`) with empty runs dropped and equal
    neighbours merged: where each run ends (in samples) and its (count, value)
    entries, big-endian, as a cut writes them."""

    __slots__ = ("ends", "entries", "single")

    def __init__(self, ends: Ints, entries: U32s) -> None:
        self.ends = ends
        self.entries = entries
        # The one value of a table of one run (constant frame rate, audio; most sbgp).
        self.single = int(entries[1]) if len(ends) == 1 else None

    @classmethod
    def of(cls, counts: Ints, values: npt.NDArray[np.integer]) -> Runs:
        """Runs of `counts` samples having `values` (32-bit patterns)."""
        used = counts > 0
        counts, wide = counts[used], values[used].astype(np.int64) & 0xFFFFFFFF
        if len(counts):
            fresh = np.concatenate(([True], wide[1:] != wide[:-1])).nonzero()[0]
            counts, wide = np.add.reduceat(counts, fresh), wide[fresh]
        entries = np.empty(2 * len(counts), ">u4")
        entries[0::2], entries[1::2] = counts, wide
        return cls(np.cumsum(counts), entries)

    @classmethod
    def per_sample(cls, values: npt.NDArray[np.integer]) -> Runs:
        """The runs of equal neighbours in a value per sample."""
        if not len(values):
            return cls.of(np.zeros(0, np.int64), values)
        ends = np.append((values[1:] != values[:-1]).nonzero()[0] + 1, len(values))
        entries = np.empty(2 * len(ends), ">u4")
        entries[0::2] = np.diff(ends, prepend=0)
        entries[1::2] = values[ends - 1].astype(np.int64) & 0xFFFFFFFF
        return cls(ends, entries)

    def cut(self, first: int, stop: int) -> tuple[int, list[Piece]]:
        """(entry count, entries) of samples `[first, stop)`; `stop > first`, and
        `stop` within the samples the runs describe. The runs between the first and
        the last are a view of the prepared entries: a long clip's table is not
        copied here (each fresh copy of a large one costs its page faults)."""
        if self.single is not None:
            return 1, [_RUN.pack(stop - first, self.single)]
        ends, entries = self.ends, self.entries
        lo = int(ends.searchsorted(first, "right"))
        hi = int(ends.searchsorted(stop - 1, "right")) + 1
        if hi - lo == 1:
            return 1, [_RUN.pack(stop - first, int(entries[2 * lo + 1]))]
        head = _RUN.pack(int(ends[lo]) - first, int(entries[2 * lo + 1]))
        tail = _RUN.pack(stop - int(ends[hi - 2]), int(entries[2 * hi - 1]))
        return hi - lo, [head, view(entries[2 * lo + 2 : 2 * hi - 2]), tail]

    def table(self, kind: bytes, version: int, first: int, stop: int, out: list[Piece]) -> int:
        """Append the full box of samples `[first, stop)` to `out` in pieces; its size."""
        if self.single is not None:
            out.append(_ONE.pack(24, kind, version << 24, 1, stop - first, self.single))
            return 24
        count, entries = self.cut(first, stop)
        size = 16 + sum(map(len, entries))
        out.append(_HEAD.pack(size, kind, version << 24, count))
        out += entries
        return size

    def group_box(self, head: bytes, first: int, stop: int, out: list[Piece]) -> int:
        """Append the `sbgp` box (`head`: its version, flags and grouping type) of
        samples `[first, stop)` to `out` in pieces; its size."""
        single = self.single
        if single is not None:  # one run: (count 1, its samples, its value)
            size = 20 + len(head)
            out.append(_U32.pack(size) + b"sbgp" + head + _ROW.pack(1, stop - first, single))
            return size
        count, entries = self.cut(first, stop)
        size = 12 + len(head) + sum(map(len, entries))
        out.append(_U32.pack(size) + b"sbgp" + head + _U32.pack(count))
        out += entries
        return size


def _search(column: array[int], value: int, guess: int, right: bool) -> int:
    """`bisect_right` (or `bisect_left`) of `value` in the ascending `column`, among the
    few entries around `guess` when the answer lies there (each probe of an `array`
    makes an int: a dozen cost more than the two that check the guess)."""
    count = len(column)
    lo = min(guess - _NEAR, count) if guess > _NEAR else 0
    hi = guess + _NEAR if guess + _NEAR < count else count
    if hi < lo:
        hi = lo
    if right:
        if (not lo or column[lo - 1] <= value) and (hi == count or column[hi] > value):
            return bisect_right(column, value, lo, hi)
        return bisect_right(column, value)
    if (not lo or column[lo - 1] < value) and (hi == count or column[hi] >= value):
        return bisect_left(column, value, lo, hi)
    return bisect_left(column, value)


# How far from its guess `_search` looks first.
_NEAR = 4


@dataclass(frozen=True, slots=True)
class ChunkCut:
    """The chunks of a cut: offsets and byte sizes in the source (lists for a small
    cut, arrays otherwise), and its `stsc`."""

    offsets: Column
    sizes: Column
    stsc: bytes


class Chunks:
    """A track's chunks that hold samples, in order: the samples each holds, its
    description, where it is and how many bytes it holds; and where a new `stsc`
    run starts (its samples or description differ from the previous chunk's).
    The columns a small cut reads are `array`s (bisected and sliced without numpy's
    per-call cost), the numpy columns views of them."""

    __slots__ = (
        "_apart",
        "_density",
        "_end",
        "_first",
        "_keys",
        "_narrow",
        "_offsets",
        "_runs",
        "_sizes",
        "description",
        "end",
        "first",
        "new_run",
        "offsets",
        "samples",
        "sizes",
    )

    def __init__(
        self,
        first: Ints,
        end: Ints,
        samples: Ints,
        description: Ints,
        offsets: Ints,
        sizes: Ints,
        new_run: npt.NDArray[np.bool_],
    ) -> None:
        self._first, self.first = _column(first)
        self._end, self.end = _column(end)
        self._offsets, self.offsets = _column(offsets)
        self._sizes, self.sizes = _column(sizes)
        self.samples = samples
        self.description = description
        self.new_run = new_run
        # What makes a chunk's stsc row, as one integer: equal keys, one run.
        keys = (samples.astype(np.uint64) << np.uint64(32)) | description.astype(np.uint64)
        self._keys = array("Q", keys.tobytes())
        self._density = len(first) / int(end[-1]) if len(end) and end[-1] else 0.0  # per sample
        # What warm cuts read, made by `finish` (see `Mp4Index.finish`).
        self._runs: tuple[array[int], bytes] | None = None  # see `finish`
        self._narrow: bytes | None = None
        self._apart: tuple[array[int], bytes | None] | None = None

    def finish(self) -> None:
        """Make the tables warm cuts read: the stsc rows of the chunks starting a run of
        equal keys, big-endian, and how many start before each chunk (a cut's rows
        between its outer two chunks are a slice of them, renumbered); the offsets as
        stco entries when they fit 32 bits; and, when each chunk holds bytes and lies
        apart from the next (so that a cut of this track alone is a span per chunk),
        the bytes before each chunk and all, also as stco entries when they fit. Each
        is whole when put in place."""
        if self._runs is not None:
            return
        keys = np.frombuffer(self._keys, np.uint64)
        offsets, sizes = self.offsets, self.sizes
        starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        if len(keys):
            starts = np.concatenate(([0], starts))
        rows = np.empty((len(starts), 3), ">u4")
        rows[:, 0] = starts + 1
        rows[:, 1], rows[:, 2] = self.samples[starts], self.description[starts]
        rank = np.zeros(len(keys) + 1, np.int64)  # the runs starting before each chunk
        rank[starts + 1] = 1
        runs = array("q", np.cumsum(rank).tobytes()), rows.tobytes()
        if not len(offsets) or int(offsets.max()) <= 0xFFFFFFFF:
            self._narrow = offsets.astype(">u4").tobytes()
        apart = bool((sizes > 0).all()) and bool((offsets[1:] > (offsets + sizes)[:-1]).all())
        if apart:
            before = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
            narrow = before.astype(">u4").tobytes() if int(before[-1]) <= 0xFFFFFFFF else None
            self._apart = array("q", before.tobytes()), narrow
        self._runs = runs  # last: a finished chunk map has all of them

    @property
    def finished(self) -> bool:
        """Whether `finish` made the tables warm cuts read."""
        return self._runs is not None

    @property
    def spaced(self) -> bool:
        """Whether the chunks are finished as lying apart (see `finish`)."""
        return self._apart is not None

    @property
    def nbytes(self) -> int:
        """Memory held by the columns."""
        columns = (self.first, self.end, self.samples, self.description, self.offsets)
        return (
            sum(c.nbytes for c in columns)
            + self.sizes.nbytes
            + self.new_run.nbytes
            + 8 * len(self._keys)
            + (8 * len(self._runs[0]) + len(self._runs[1]) if self._runs else 0)
            + len(self._narrow or b"")
            + (12 * len(self._apart[0]) if self._apart else 0)
        )

    @classmethod
    def of(
        cls, first: Ints, samples: Ints, description: Ints, offsets: Ints, sizes: Ints
    ) -> Chunks:
        """From every chunk's first sample, sample count, description, offset and size
        in bytes."""
        kept = (samples > 0).nonzero()[0]
        first, samples = first[kept], samples[kept]
        description, offsets, sizes = description[kept], offsets[kept], sizes[kept]
        end = first + samples
        new_run = np.ones(len(kept), bool)
        new_run[1:] = (samples[1:] != samples[:-1]) | (description[1:] != description[:-1])
        return cls(first, end, samples, description, offsets, sizes, new_run)

    def bounds(self, first: int, stop: int, prefix: BytesBefore) -> tuple[int, int, int, int]:
        """(lo, hi, skipped, dropped): the chunks `[lo, hi)` holding samples `[first,
        stop)`, and the bytes the first loses at its start and the last at its end."""
        # Searched first where chunks of the mean sample count would put them.
        density = self._density
        lo = _search(self._end, first, int(first * density), True)
        hi = _search(self._first, stop, int(stop * density), False)
        starts = self._first[lo]
        skipped = prefix[first] - prefix[starts] if starts < first else 0
        ends = self._end[hi - 1]
        dropped = prefix[ends] - prefix[stop] if ends > stop else 0
        return lo, hi, skipped, dropped

    def stsc(self, lo: int, hi: int, first: int, stop: int) -> bytes:
        """The `stsc` of a cut of the chunks `[lo, hi)` holding samples `[first, stop)`."""
        runs = self._runs
        if runs is None and hi - lo > SMALL:
            return self._stsc_arrays(lo, hi, first, stop)
        if runs is None or hi - lo < 3:
            return self._stsc_of_few(lo, hi, first, stop)
        keys = self._keys
        head = keys[lo]
        starts = self._first[lo]
        if starts < first:  # only the first chunk can start before the cut
            head -= (first - starts) << 32
        last = keys[hi - 1]
        ends = self._end[hi - 1]
        if ends > stop:  # and only the last one end after it
            last -= (ends - stop) << 32
        # The rows of the outer two chunks and of their neighbours are made here; those
        # of the chunks between, whose neighbours are whole, are the prepared ones.
        second = keys[lo + 1]
        if second != head:
            body = _ROWS2.pack(
                1, head >> 32, head & 0xFFFFFFFF, 2, second >> 32, second & 0xFFFFFFFF
            )
        else:
            body = _ROW.pack(1, head >> 32, head & 0xFFFFFFFF)
        rank, rows = runs
        begin, end = rank[lo + 2], rank[hi - 1]
        if end > begin:
            body += FIRST_CHUNKS.add(rows[12 * begin : 12 * end], -lo)
        if last != keys[hi - 2]:
            body += _ROW.pack(hi - lo, last >> 32, last & 0xFFFFFFFF)
        return _HEAD.pack(16 + len(body), b"stsc", 0, len(body) // 12) + body

    def _stsc_of_few(self, lo: int, hi: int, first: int, stop: int) -> bytes:
        """`stsc` of a cut of one or two chunks, row by row."""
        keys = self._keys[lo:hi].tolist()
        starts = self._first[lo]
        if starts < first:  # only the first chunk can start before the cut
            keys[0] -= (first - starts) << 32
        ends = self._end[hi - 1]
        if ends > stop:  # and only the last one end after it
            keys[-1] -= (ends - stop) << 32
        rows: list[int] = []
        last = 0
        for number, key in enumerate(keys, 1):
            if key != last:
                rows += (number, key >> 32, key & 0xFFFFFFFF)
                last = key
        count = len(rows)
        return pack(f">I4sII{count}I", 16 + 4 * count, b"stsc", 0, count // 3, *rows)

    def lists(self, lo: int, hi: int, skipped: int, dropped: int) -> tuple[list[int], list[int]]:
        """The offsets and sizes of the chunks `[lo, hi)`, the outer two trimmed."""
        offsets = self._offsets[lo:hi].tolist()
        sizes = self._sizes[lo:hi].tolist()
        offsets[0] += skipped
        sizes[0] -= skipped
        sizes[-1] -= dropped
        return offsets, sizes

    def columns(self, lo: int, hi: int, skipped: int, dropped: int) -> tuple[Ints, Ints]:
        """`lists` as arrays, for many chunks."""
        offsets = self.offsets[lo:hi].copy()
        sizes = self.sizes[lo:hi].copy()
        offsets[0] += skipped
        sizes[0] -= skipped
        sizes[-1] -= dropped
        return offsets, sizes

    def spaced_layout(
        self, lo: int, hi: int, skipped: int, dropped: int
    ) -> tuple[Column, Column, int, int] | None:
        """The spans (starts, lengths: lists for a few, arrays for many), their total
        and the place of the last chunk of a cut of a `spaced` track alone: a span per
        chunk, or None when a trimmed outer chunk holds no bytes (then `Layout` leaves
        it out)."""
        assert self._apart is not None
        starts: Column
        lengths: Column
        if hi - lo > SMALL:
            starts, lengths = self.columns(lo, hi, skipped, dropped)
        else:
            starts, lengths = self.lists(lo, hi, skipped, dropped)
        if not lengths[0] or not lengths[-1]:
            return None
        before = self._apart[0]
        total = before[hi] - before[lo] - skipped - dropped
        return starts, lengths, total, total - int(lengths[-1])

    def spaced_offsets_box(self, lo: int, hi: int, skipped: int, base: int) -> bytes:
        """The `stco` (or `co64`) of a `spaced_layout` cut at `base`: each chunk lands
        where the bytes of the cut's chunks before it end."""
        assert self._apart is not None
        before, narrow = self._apart
        shift = base - before[lo] - skipped
        count = hi - lo
        top = base if count == 1 else before[hi - 1] + shift
        if narrow is None or top > 0xFFFFFFFF:
            places = [base] + [at + shift for at in before[lo + 1 : hi]]
            return offsets_box(places, 0)
        rest = OFFSETS.add(narrow[4 * lo + 4 : 4 * hi], shift)
        return _ONE_ENTRY.pack(16 + 4 * count, b"stco", 0, count, base) + rest

    def _stsc_arrays(self, lo: int, hi: int, first: int, stop: int) -> bytes:
        """`stsc` of many chunks before `finish`, with numpy."""
        per_chunk = self.samples[lo:hi].copy()
        description = self.description[lo:hi]
        starts = self._first[lo]
        if starts < first:  # only the first chunk can start before the cut
            per_chunk[0] -= first - starts
        ends = self._end[hi - 1]
        if ends > stop:  # and only the last one end after it
            per_chunk[-1] -= ends - stop
        fresh = self.new_run[lo:hi].copy()
        fresh[0] = True
        count = hi - lo
        if count > 1:  # the runs the trimmed chunks start or end are new
            fresh[1] = per_chunk[1] != per_chunk[0] or description[1] != description[0]
            last = count - 1
            fresh[last] = (
                per_chunk[last] != per_chunk[last - 1] or description[last] != description[last - 1]
            )
        at = fresh.nonzero()[0]
        rows = np.empty((len(at), 3), ">u4")
        rows[:, 0] = at + 1
        rows[:, 1] = per_chunk[at]
        rows[:, 2] = description[at]
        return table_box(b"stsc", 0, len(at), rows.tobytes())


def offsets_box(relative: Column, base: int) -> bytes:
    """The `stco` of chunks at `relative + base`, or `co64` when one does not fit 32 bits."""
    count = len(relative)
    if isinstance(relative, list):
        kind, code = b"stco", "I"
        if count and max(relative) + base > 0xFFFFFFFF:
            kind, code = b"co64", "Q"
        entries = pack(f">{count}{code}", *[at + base for at in relative])
        return table_box(kind, 0, count, entries)
    offsets = relative + base
    if not count or int(offsets.max()) <= 0xFFFFFFFF:
        return table_box(b"stco", 0, count, offsets.astype(">u4").tobytes())
    return table_box(b"co64", 0, count, offsets.astype(">u8").tobytes())


def sync_cut(numbers: list[int], entries: bytes, first: int, stop: int) -> bytes:
    """The `stss` of samples `[first, stop)` from an ascending `stss`, as a list (to
    bisect) and as its entries (a slice of them, renumbered all at once)."""
    lo = bisect_right(numbers, first)
    hi = bisect_right(numbers, stop)
    count = hi - lo
    return _HEAD.pack(16 + 4 * count, b"stss", 0, count) + OFFSETS.add(
        entries[4 * lo : 4 * hi], -first
    )


@dataclass(frozen=True, slots=True)
class Layout:
    """Source byte intervals (merged, ascending) and where each chunk lands in the
    new `mdat`, for chunks given as offsets and sizes."""

    starts: Column
    lengths: Column
    total: int
    positions: Column

    @classmethod
    def of_cuts(cls, cuts: list[ChunkCut]) -> Layout:
        """The layout of the chunks of these cuts, in their order."""
        if all(isinstance(cut.offsets, list) for cut in cuts):
            offsets: list[int] = []
            sizes: list[int] = []
            for cut in cuts:
                offsets += cut.offsets
                sizes += cut.sizes
            return cls.of_lists(offsets, sizes)
        if len(cuts) == 1:
            return cls.of(np.asarray(cuts[0].offsets), np.asarray(cuts[0].sizes))
        return cls.of(
            np.concatenate([np.asarray(cut.offsets, np.int64) for cut in cuts]),
            np.concatenate([np.asarray(cut.sizes, np.int64) for cut in cuts]),
        )

    @classmethod
    def of_lists(cls, offsets: list[int], sizes: list[int]) -> Layout:
        """`of` for a few chunks, in Python."""
        positions = [0] * len(offsets)
        starts: list[int] = []
        lengths: list[int] = []
        begin = reach = -1
        total = 0
        for at in sorted(range(len(offsets)), key=offsets.__getitem__):
            size = sizes[at]
            if not size:
                continue
            offset = offsets[at]
            if offset > reach:
                if starts:
                    lengths.append(reach - begin)
                    total += reach - begin
                begin, reach = offset, offset + size
                starts.append(begin)
            elif offset + size > reach:
                reach = offset + size
            positions[at] = total + offset - begin
        if starts:
            lengths.append(reach - begin)
            total += reach - begin
        return cls(starts, lengths, total, positions)

    @classmethod
    def of(cls, offsets: Ints, sizes: Ints) -> Layout:
        """The layout of chunks that may overlap, in any order."""
        ends = offsets + sizes
        full = sizes != 0
        whole = bool(full.all())
        begin, finish = (offsets, ends) if whole else (offsets[full], ends[full])
        if not len(begin):
            return cls([], [], 0, np.zeros(len(offsets), np.int64))
        # Stable: timsort, which merges the tracks' ascending runs in linear time.
        order = begin.argsort(kind="stable")
        begin, finish = begin[order], finish[order]
        reach = np.maximum.accumulate(finish)
        fresh = (begin[1:] > reach[:-1]).nonzero()[0] + 1
        if not len(fresh):  # one interval: a clip of interleaved chunks
            start = int(begin[0])
            positions = offsets - start
            if not whole:
                positions[~full] = 0
            length = int(reach[-1]) - start
            return cls([start], [length], length, positions)
        starts = begin[np.concatenate(([0], fresh))]
        lengths = reach[np.append(fresh - 1, len(reach) - 1)] - starts
        out_starts = np.concatenate(([0], np.cumsum(lengths)))
        positions = np.zeros(len(offsets), np.int64)
        where = starts.searchsorted(offsets[full], "right") - 1
        positions[full] = out_starts[where] + offsets[full] - starts[where]
        return cls(starts, lengths, int(out_starts[-1]), positions)


# A woven layout gives up (for `Layout.of_lists`) past this many holes in a cut's
# byte range: another track's chunks stored apart from the cut's, not interleaved.
MAX_HOLES = 16
# One track's part of a woven layout: the relative position of its first chunk, then
# (from, to, delta): chunks `[from, to)` at their source offset plus delta; the largest
# position and the chunk count.
Woven = tuple[int, list[tuple[int, int, int]], int, int]


class Weave:
    """The chunks of a set of tracks in file order, reduced to the gaps between them:
    when every track's chunks ascend, none is empty and none overlaps another, a cut
    of each track (a range of its chunks, the outer two trimmed) lands in one byte
    range of the source less a few holes, so its layout is found from those holes
    without sorting the cut's chunks."""

    __slots__ = ("gap_ends", "gap_starts")

    def __init__(self, gap_starts: array[int], gap_ends: array[int]) -> None:
        self.gap_starts = gap_starts
        self.gap_ends = gap_ends

    @classmethod
    def of(cls, tracks: list[Chunks]) -> Weave | None:
        """The weave of these tracks' chunks, or None when they do not qualify."""
        for chunks in tracks:
            offsets = chunks.offsets
            if len(offsets) > 1 and bool((offsets[1:] <= offsets[:-1]).any()):
                return None
        offsets = np.concatenate([chunks.offsets for chunks in tracks])
        sizes = np.concatenate([chunks.sizes for chunks in tracks])
        if not len(offsets) or bool((sizes <= 0).any()):
            return None
        order = offsets.argsort(kind="stable")
        starts = offsets[order]
        ends = starts + sizes[order]
        if bool((starts[1:] < ends[:-1]).any()):
            return None
        gaps = (starts[1:] > ends[:-1]).nonzero()[0]
        if 2 * len(gaps) > len(starts):  # chunks mostly apart (one track of several):
            return None  # a cut of more than a few would be more holes than chunks
        return cls(array("q", ends[gaps].tobytes()), array("q", starts[gaps + 1].tobytes()))

    def layout(
        self, cuts: list[tuple[Chunks, int, int, int, int]]
    ) -> tuple[list[int], list[int], int, list[Woven]] | None:
        """The merged source spans, their total and each track's positions of the cuts
        `(chunks, lo, hi, skipped, dropped)` (one per track of the weave, few chunks
        each), or None when they lie too far apart."""
        begin = end = -1
        for chunks, lo, hi, skipped, dropped in cuts:
            offsets, sizes = chunks._offsets, chunks._sizes
            last = hi - 1
            kept_begin = offsets[lo] + skipped
            kept_end = offsets[last] + sizes[last] - dropped
            if kept_end <= kept_begin:
                return None
            if last > lo and (sizes[lo] == skipped or sizes[last] == dropped):
                return None  # an outer chunk trimmed to nothing
            if begin < 0 or kept_begin < begin:
                begin = kept_begin
            if kept_end > end:
                end = kept_end
        # The holes: other chunks of the tracks, the trimmed parts of the outer chunks
        # and the gaps between chunks, each wholly inside [begin, end) or outside it.
        holes: list[tuple[int, int]] = []
        for chunks, lo, hi, skipped, dropped in cuts:
            offsets, sizes = chunks._offsets, chunks._sizes
            # Searched near the cut only: a search stopped at a bound is too many holes.
            if lo and offsets[lo - 1] >= begin:
                inside = bisect_left(offsets, begin, max(lo - MAX_HOLES - 1, 0), lo)
                if lo - inside > MAX_HOLES:
                    return None
                holes += [(offsets[at], offsets[at] + sizes[at]) for at in range(inside, lo)]
            if hi < len(offsets) and offsets[hi] < end:
                beyond = bisect_left(offsets, end, hi, min(hi + MAX_HOLES + 1, len(offsets)))
                if beyond - hi > MAX_HOLES:
                    return None
                holes += [(offsets[at], offsets[at] + sizes[at]) for at in range(hi, beyond)]
            if skipped and offsets[lo] >= begin:
                holes.append((offsets[lo], offsets[lo] + skipped))
            if dropped:
                last = offsets[hi - 1] + sizes[hi - 1]
                if last <= end:
                    holes.append((last - dropped, last))
        gap_starts = self.gap_starts
        if gap_starts:
            first_gap = bisect_left(gap_starts, begin)
            past_gap = bisect_right(self.gap_ends, end)
            if past_gap - first_gap > MAX_HOLES:
                return None
            ends = self.gap_ends[first_gap:past_gap]
            holes += zip(gap_starts[first_gap:past_gap], ends, strict=True)
        holes.sort()
        starts: list[int] = []
        lengths: list[int] = []
        hole_starts: list[int] = []
        removed = [0]  # bytes of the holes before each hole, and of all
        at = begin
        gone = 0
        for hole_start, hole_end in holes:
            if hole_start > at:
                starts.append(at)
                lengths.append(hole_start - at)
            at = hole_end
            hole_starts.append(hole_start)
            gone += hole_end - hole_start
            removed.append(gone)
        if end > at:
            starts.append(at)
            lengths.append(end - at)
        holes_count = len(hole_starts)
        tracks: list[Woven] = []
        for chunks, lo, hi, skipped, _ in cuts:
            offsets = chunks._offsets
            offset = offsets[lo] + skipped
            head = offset - begin - removed[bisect_left(hole_starts, offset)]
            segments: list[tuple[int, int, int]] = []
            top = head
            at_chunk = lo + 1
            if at_chunk < hi:
                hole = bisect_left(hole_starts, offsets[at_chunk])
                while at_chunk < hi:
                    upto = hi
                    if hole < holes_count:
                        upto = bisect_right(offsets, hole_starts[hole], at_chunk, hi)
                    if upto > at_chunk:
                        delta = -begin - removed[hole]
                        segments.append((at_chunk, upto, delta))
                        top = offsets[upto - 1] + delta
                        at_chunk = upto
                    hole += 1
            tracks.append((head, segments, top, hi - lo))
        return starts, lengths, end - begin - gone, tracks


def woven_offsets_box(chunks: Chunks, woven: Woven, base: int) -> bytes:
    """The `stco` (or `co64`) of one track's chunks in a woven layout at `base`."""
    head, segments, top, count = woven
    offsets = chunks._offsets
    narrow = chunks._narrow
    wide = top + base > 0xFFFFFFFF
    # Offsets past 32 bits, in the source (no `narrow`) or the output: one by one.
    if wide or narrow is None:
        entries = [head + base]
        for start, stop, delta in segments:
            shift = delta + base
            entries += [offset + shift for offset in offsets[start:stop]]
        if wide:
            return table_box(b"co64", 0, count, pack(f">{count}Q", *entries))
        return table_box(b"stco", 0, count, pack(f">{count}I", *entries))
    # Each segment is a slice of the source's entries, shifted: no entry is negative or
    # past 32 bits, so the fields are shifted all at once.
    box = _ONE_ENTRY.pack(16 + 4 * count, b"stco", 0, count, head + base)
    for start, stop, delta in segments:
        box += OFFSETS.add(narrow[4 * start : 4 * stop], delta + base)
    return box
