"""Per-sample values of a track (decode times, composition offsets) answered from their
run-length tables, never expanded to a value per sample.

A 30-minute track has some 100,000 samples and its `stts` a run or two: arrays of a
value per sample would cost megabytes of fresh memory (page faults) per index built,
for the few samples any clip looks up.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from operator import truediv
from struct import Struct
from typing import Protocol, overload

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
# Runs up to this many are searched as Python lists (cheaper than a numpy call each).
SMALL = 64
# Chunks of at most this many samples are summed per look-up (see `ChunkedBytes`).
FEW = 64
# float64 holds every integer below this exactly.
_EXACT = 1 << 53


def ratio(ticks: int, scale: int) -> float:
    """`ticks / scale` as Python rounds it (once, exactly). Compiled (mypyc), `/` of two
    ints converts each to a float first, which rounds the ticks of a large shift."""
    if -_EXACT < ticks < _EXACT and -_EXACT < scale < _EXACT:
        return ticks / scale  # both exact as floats: one rounding, either way
    quotient: float = truediv(ticks, scale)
    return quotient


def _searchable(array: Ints) -> Sequence[int] | Ints:
    return array.tolist() if len(array) <= SMALL else array


def _right(keys: Sequence[int] | Sequence[float] | np.ndarray, value: float) -> int:
    if isinstance(keys, np.ndarray):
        return int(keys.searchsorted(value, "right"))
    return bisect_right(keys, value)


def _left(keys: Sequence[int] | Sequence[float] | np.ndarray, value: float) -> int:
    if isinstance(keys, np.ndarray):
        return int(keys.searchsorted(value, "left"))
    return bisect_left(keys, value)


class Timeline:
    """Decode times of a track's samples from its `stts` runs (empty runs dropped, equal
    neighbours merged), and bisections of their presentation-aligned start times in
    seconds, `(dts - shift) / timescale + delay` as Python computes it per sample."""

    __slots__ = (
        "bases",
        "count",
        "delay",
        "durations",
        "ends",
        "exact",
        "firsts",
        "shift",
        "single",
        "starts",
        "timescale",
        "total",
    )

    def __init__(
        self, firsts: Ints, ends: Ints, durations: Ints, shift: int, timescale: int, delay: float
    ) -> None:
        spans = (ends - firsts) * durations
        bases = np.cumsum(spans) - spans  # the decode time of each run's first sample
        self.count = int(ends[-1])
        self.total = int(bases[-1] + spans[-1])
        self.shift, self.timescale, self.delay = shift, timescale, delay
        # The one duration of a track of one run (constant frame rate, audio): the
        # common case, looked up without searching.
        self.single = int(durations[0]) if len(durations) == 1 else None
        self.firsts = _searchable(firsts)
        self.ends = _searchable(ends)
        self.durations = _searchable(durations)
        self.bases = _searchable(bases)
        # The time of each run's first sample, for finding the run of a time: in one
        # numpy pass when float64 is exact on every value (so equal to Python's).
        # Whether every tick count a time divides is exact as a float, so that `/` of
        # two ints rounds once however it is computed (compiled or not; see `ratio`).
        self.exact = max(abs(shift), abs(self.total - shift), timescale) < _EXACT
        self.starts: Sequence[float] | np.ndarray
        if self.exact:
            starts = np.subtract(bases, shift, dtype=np.float64)
            np.divide(starts, timescale, out=starts)
            starts += delay
            self.starts = starts.tolist() if len(starts) <= SMALL else starts
        else:
            self.starts = _RunStarts(self)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (lists of a few runs are not counted)."""
        found = (self.firsts, self.ends, self.durations, self.bases, self.starts)
        return sum(a.nbytes for a in found if isinstance(a, np.ndarray))

    def __len__(self) -> int:
        return self.count + 1

    def _run(self, i: int) -> int:
        """The run holding sample `i` (the last one for `i == count`)."""
        return min(_right(self.ends, i), len(self.ends) - 1)

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Ints: ...
    def __getitem__(self, i: int | slice) -> int | Ints:
        """The decode time of sample `i` (of the end for `i == count`); of each of a
        slice's samples as an array."""
        single = self.single
        if single is not None and type(i) is int:
            return i * single
        if isinstance(i, slice):
            return np.array([self[k] for k in range(*i.indices(self.count + 1))], np.int64)
        r = self._run(i)
        return int(self.bases[r]) + (i - int(self.firsts[r])) * int(self.durations[r])

    def seconds(self, i: int) -> float:
        """The start of sample `i` in seconds on the movie's timeline."""
        single = self.single
        dts = i * single if single is not None else self[i]
        if self.exact:
            return (dts - self.shift) / self.timescale + self.delay
        return ratio(dts - self.shift, self.timescale) + self.delay

    def after(self, when: float) -> int:
        """How many samples start at or before `when`."""
        if self.single and self.exact:
            found = self._guessed(when, True)
            if found >= 0:
                return found
        starts = self.starts
        run = (bisect_right(starts, when) if type(starts) is list else _right(starts, when)) - 1
        return 0 if run < 0 else self._within(run, when, True)

    def before(self, when: float) -> int:
        """How many samples start before `when`."""
        if self.single and self.exact:
            found = self._guessed(when, False)
            if found >= 0:
                return found
        starts = self.starts
        run = (bisect_left(starts, when) if type(starts) is list else _left(starts, when)) - 1
        return 0 if run < 0 else self._within(run, when, False)

    def _guessed(self, when: float, at_or_before: bool) -> int:
        """`after` (or `before`) of a one-run timeline whose times are exact: the sample
        where arithmetic puts `when`, taken when the times of it and the next agree;
        -1 when they do not (rounding misled the guess)."""
        single = self.single
        assert single
        shift, scale, delay = self.shift, self.timescale, self.delay
        guess = ((when - delay) * scale + shift) / single
        if not 0.0 <= guess < self.count:
            return -1
        j = int(guess)
        at = (j * single - shift) / scale + delay
        if at <= when if at_or_before else at < when:
            j += 1
            if j == self.count:
                return j
            at = (j * single - shift) / scale + delay
            if at > when if at_or_before else at >= when:
                return j
        return -1

    def _within(self, run: int, when: float, at_or_before: bool) -> int:
        """`after`/`before` of `when` where `run` is the last run whose first sample
        passes: its first sample plus how many of its samples pass (at least one).
        The arithmetic guess is checked on the exact times and, if off, bisected."""
        if self.single is not None:
            first, n, duration, base = 0, self.count, self.single, 0
        else:
            first = int(self.firsts[run])
            n = int(self.ends[run]) - first
            duration, base = int(self.durations[run]), int(self.bases[run])
        if not duration:
            return first + n
        shift, scale, delay = self.shift, self.timescale, self.delay
        guess = ((when - delay) * scale + shift - base) / duration
        j = int(min(max(guess, 0.0), n - 1.0)) if guess == guess else 0  # NaN: no guess
        # Sample lo passes (the run's first does); hi fails or is the end. The guess
        # and its neighbour are tried first, which settles it unless rounding misled.
        lo, hi = 0, n
        if j:
            at = ratio(base + j * duration - shift, scale) + delay
            if at <= when if at_or_before else at < when:
                lo = j
            else:
                hi = j
        if lo + 1 < hi:
            at = ratio(base + (lo + 1) * duration - shift, scale) + delay
            if at <= when if at_or_before else at < when:
                lo += 1
            else:
                hi = lo + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            at = ratio(base + mid * duration - shift, scale) + delay
            if at <= when if at_or_before else at < when:
                lo = mid
            else:
                hi = mid
        return first + lo + 1

    def durations_of(self, first: int, stop: int) -> Ints:
        """The durations of samples `[first, stop)`."""
        lo, hi = self._run(first), self._run(max(stop - 1, first)) + 1
        ends = np.minimum(np.asarray(self.ends[lo:hi], np.int64), stop)
        begins = np.maximum(np.asarray(self.firsts[lo:hi], np.int64), first)
        values = np.asarray(self.durations[lo:hi], np.int64)
        return np.repeat(values, np.maximum(ends - begins, 0))


class _RunStarts(Sequence[float]):
    """The start of each run in seconds computed per look-up, for values float64 cannot
    hold exactly (bisected in Python, as the per-sample times were)."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline

    def __len__(self) -> int:
        return len(self._timeline.ends)

    @overload
    def __getitem__(self, r: int) -> float: ...
    @overload
    def __getitem__(self, r: slice) -> Sequence[float]: ...
    def __getitem__(self, r: int | slice) -> float | Sequence[float]:
        if isinstance(r, slice):
            return [self[k] for k in range(*r.indices(len(self)))]
        return self._timeline.seconds(int(self._timeline.firsts[r]))


class RunValues:
    """A signed 32-bit value per sample (`ctts` offsets) held as runs: where each run
    ends and its (count, value) entries, big-endian (those of `cuts.Runs`, shared)."""

    __slots__ = ("count", "ends", "entries")

    def __init__(self, ends: Ints, entries: npt.NDArray[np.uint32], count: int) -> None:
        self.ends = ends
        self.entries = entries
        self.count = count

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> npt.NDArray[np.int32]: ...
    def __getitem__(self, i: int | slice) -> int | npt.NDArray[np.int32]:
        """Sample `i`'s value; a slice's values as an array."""
        ends = self.ends
        if isinstance(i, slice):
            first, stop, step = i.indices(self.count)
            if stop <= first:
                return np.zeros(0, np.int32)
            if step != 1:
                return self[first:stop][::step]
            lo = int(ends.searchsorted(first, "right"))
            hi = int(ends.searchsorted(stop - 1, "right")) + 1
            starts = ends[lo - 1 : hi - 1] if lo else np.concatenate(([0], ends[: hi - 1]))
            counts = np.minimum(ends[lo:hi], stop) - np.maximum(starts, first)
            values = self.entries[2 * lo + 1 : 2 * hi : 2].astype(np.uint32).view(np.int32)
            return np.repeat(values, counts)
        if not 0 <= i < self.count:
            raise IndexError(f"sample {i} of {self.count}")
        value = int(self.entries[2 * int(ends.searchsorted(i, "right")) + 1])
        return value - (1 << 32) if value >> 31 else value


# The readers of a few big-endian sizes, by count (no format made and looked up per call).
_UNPACK = [Struct(f">{count}I").unpack_from for count in range(FEW + 1)]


class BytesBefore(Protocol):
    """The bytes of a track's samples before sample `i` (`i` up to the sample count)."""

    def __getitem__(self, i: int, /) -> int: ...


class ChunkedBytes:
    """`BytesBefore` from the bytes before each chunk and the `stsz` entries: a look-up
    sums the sizes of a few samples of one chunk, so that a cold index's first clips
    need no table of a value per sample (its fresh pages are what a build costs).
    The table, once made off the request's path (`table`), answers instead."""

    __slots__ = ("before", "sizes", "starts", "table")

    def __init__(self, starts: Ints, sizes_before: Ints, sizes: memoryview) -> None:
        self.starts = array("q", starts.tobytes())  # the first sample of each chunk
        self.before = array("q", sizes_before.tobytes())  # the bytes before it
        self.sizes = sizes  # the stsz entries, big-endian (a view of the moov)
        self.table: memoryview | None = None

    @property
    def nbytes(self) -> int:
        """Memory held (the stsz entries are the moov's, the table its track's)."""
        return 8 * (len(self.starts) + len(self.before))

    def __getitem__(self, i: int, /) -> int:
        table = self.table
        if table is not None:
            found: int = table[i]
            return found
        chunk = bisect_right(self.starts, i) - 1
        begin = self.starts[chunk]
        if i == begin:
            return self.before[chunk]
        within: int = sum(_UNPACK[i - begin](self.sizes, 4 * begin))
        return self.before[chunk] + within
