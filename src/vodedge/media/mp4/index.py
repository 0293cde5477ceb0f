"""A `moov` parsed once into numpy sample tables, from which any clip is planned.

Building the index reads every sample table once; a clip then costs a few
binary searches plus work in proportion to its own tables (the output's tables
are slices of the source's with offsets shifted), never a pass over the file's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from itertools import repeat
from struct import Struct
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vodedge.media.errors import (
    InvalidSeek,
    InvalidTrack,
    LimitExceeded,
    MalformedMedia,
    MediaError,
    NoAudioTrack,
    UnsupportedMedia,
)
from vodedge.media.mp4 import cuts as fast
from vodedge.media.mp4 import fastclip, packing, timeline
from vodedge.media.mp4.boxes import CONTAINERS, Box, children, header_bytes, make_box
from vodedge.media.mp4.file import DEFAULT_MAX_MOOV, MAX_FTYP, read_box, scan_top_level
from vodedge.media.mp4.movie import (
    Movie,
    Replacement,
    Track,
    check_described,
    parse_movie,
    rebuild_pieces,
    set_duration_field,
)
from vodedge.media.mp4.tables import checked_entries
from vodedge.media.mp4.timeline import BytesBefore, ChunkedBytes, RunValues, Timeline
from vodedge.media.plan import Plan, Span
from vodedge.media.plan_map import OutputMap
from vodedge.media.reading import Reading
from vodedge.media.seeking import check_seek

if TYPE_CHECKING:
    from vodedge.media.mp4 import clipper

Ints = npt.NDArray[np.int64]
Piece = bytes | memoryview

_U32 = Struct(">I")
_STSZ = Struct(">III")
_VF_COUNT = Struct(">II")
_ELST0 = Struct(">IiI")
_ELST1 = Struct(">QqI")

# Tracks a clip keeps; timecode, hint and metadata tracks describe the whole file.
CLIP_HANDLERS = frozenset({b"vide", b"soun", b"sbtl", b"subt", b"text", b"clcp"})
# Per-sample boxes of stbl that a cut would have to rewrite and that players
# do without; they are dropped from clips rather than left inconsistent.
DROPPED_IN_CLIPS = frozenset(
    {b"subs", b"stps", b"padb", b"cslg", b"saiz", b"saio", b"stdp", b"stsh"}
)
# Per-sample tables are held in memory (about 30 bytes a sample); a constant-size
# table can claim any count in 20 bytes, so counts past this are refused unless
# the track is uniform (one duration, one size: PCM), which needs no tables.
MAX_SAMPLES = 1 << 25
# Above this, offsets are kept as Python integers so that sums cannot wrap.
_WIDE = 1 << 62


@dataclass(frozen=True, slots=True)
class Edits:
    """The parts of an edit list a cut needs: leading delay and media start."""

    delay: int  # movie timescale
    media_time: int  # media timescale
    version: int


def _edits(movie: Movie, edts: Box | None) -> Edits | None:
    if edts is None:
        return None
    elst = next((b for b in children(movie.data, edts) if b.type == b"elst"), None)
    if elst is None:
        return None
    payload = movie.payload(elst)
    if len(payload) < 8:
        raise MalformedMedia("elst box is too short")
    version = payload[0]
    entry = _ELST1 if version == 1 else _ELST0
    count = _U32.unpack_from(payload, 4)[0]
    if count > (len(payload) - 8) // entry.size:
        raise MalformedMedia(f"elst claims {count} entries, more than its box holds")
    delay = 0
    for index in range(count):
        duration, media_time, _rate = entry.unpack_from(payload, 8 + index * entry.size)
        if media_time == -1:
            delay += duration
            continue
        return Edits(delay, media_time, version)
    return Edits(delay, 0, version)


def _u32s(raw: memoryview) -> npt.NDArray[np.uint32]:
    return np.frombuffer(raw, ">u4").astype(np.uint32)


def _runs(payload: memoryview, name: str) -> tuple[Ints, npt.NDArray[np.uint32]]:
    """(counts, values) of a run-length table: `stts`, `ctts`."""
    if len(payload) < 8:
        raise MalformedMedia(f"{name} box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    flat = _u32s(checked_entries(payload, name, 8, 8, count))
    return flat[0::2].astype(np.int64), flat[1::2]


def _expand_check(counts: Ints, total: int, name: str) -> None:
    """Refuse runs of more than `total` samples, or `total` past the limit."""
    if int(counts.sum()) > total:
        raise MalformedMedia(f"{name} describes more samples than the {total} there are")
    if total > MAX_SAMPLES:
        raise LimitExceeded(f"{name} expands to more than {MAX_SAMPLES} samples")


def rle(values: np.ndarray) -> tuple[Ints, np.ndarray]:
    """(counts, values) runs of equal neighbours, as `compress_runs` makes them."""
    if not len(values):
        return np.zeros(0, np.int64), values
    starts = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate((np.zeros(1, np.int64), starts))
    counts = np.diff(np.append(starts, len(values)))
    return counts, values[starts]


def _runs_box(kind: bytes, version: int, counts: Ints, values: np.ndarray) -> bytes:
    flat = np.empty(2 * len(counts), ">u4")
    flat[0::2] = counts
    flat[1::2] = values.astype(np.int64) & 0xFFFFFFFF
    payload = bytes([version, 0, 0, 0]) + _U32.pack(len(counts)) + flat.tobytes()
    return _U32.pack(8 + len(payload)) + kind + payload


def offsets_box(offsets: Ints) -> bytes:
    """A `stco` box when every offset fits 32 bits, else a `co64` box."""
    count = len(offsets)
    if not count or int(offsets.max()) <= 0xFFFFFFFF:
        payload = _VF_COUNT.pack(0, count) + offsets.astype(">u4").tobytes()
        return _U32.pack(8 + len(payload)) + b"stco" + payload
    payload = _VF_COUNT.pack(0, count) + offsets.astype(">u8").tobytes()
    return _U32.pack(8 + len(payload)) + b"co64" + payload


@dataclass(frozen=True, slots=True)
class Chunks:
    """Per chunk: its first sample, how many samples it holds, its description."""

    first: Ints
    samples: Ints
    end: Ints
    description: Ints

    @classmethod
    def of(cls, stsc: Ints, chunk_count: int, sample_count: int) -> Chunks:
        """Expand the `stsc` runs (rows of first chunk, samples per chunk, description)
        over `chunk_count` chunks, checked against the sample count; the checks, their
        order and their messages are those of `tables.chunk_map`."""
        if chunk_count == 0:
            if sample_count:
                raise MalformedMedia(f"{sample_count} samples but no chunk holds them")
            empty = np.zeros(0, np.int64)
            return cls(empty, empty, empty, empty)
        if not len(stsc):
            raise MalformedMedia(f"{chunk_count} chunks but stsc is empty")
        firsts, per_chunk = stsc[:, 0], stsc[:, 1]
        if firsts[0] != 1:
            raise MalformedMedia(f"stsc starts at chunk {firsts[0]}, not 1")
        # A run never reaches past the last chunk; a later entry that starts past it is
        # refused on its own turn. Equal first_chunk values are empty runs.
        last = np.append(np.minimum(firsts[1:] - 1, chunk_count), chunk_count)
        runs = last - firsts + 1
        # Products capped past the sample count keep the sums exact up to the first
        # entry that overflows it (every earlier one fit), without wrapping.
        cap = sample_count + 1
        taken = np.minimum(
            np.maximum(runs, 0).astype(np.uint64) * per_chunk.astype(np.uint64), cap
        ).astype(np.int64)
        before = np.cumsum(taken) - taken
        past_chunks = firsts > chunk_count
        descending = last < firsts - 1
        too_many = before + taken > sample_count
        bad = np.flatnonzero(past_chunks | descending | too_many)
        if len(bad):
            i = int(bad[0])
            if past_chunks[i]:
                raise MalformedMedia(f"stsc refers to chunk {firsts[i]}; stco has {chunk_count}")
            if descending[i]:
                raise MalformedMedia("stsc chunk numbers do not ascend")
            raise MalformedMedia(
                f"stsc describes more samples than the {sample_count} of the size table"
            )
        described = int(before[-1] + taken[-1])
        if described != sample_count:
            raise MalformedMedia(
                f"stsc describes {described} samples, the size table {sample_count}"
            )
        samples = np.repeat(per_chunk, runs)
        end = np.cumsum(samples)
        return cls(end - samples, samples, end, np.repeat(stsc[:, 2], runs))


def _stsc(payload: memoryview) -> Ints:
    """`stsc` rows: first chunk, samples per chunk, sample description index."""
    if len(payload) < 8:
        raise MalformedMedia("stsc box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    return _u32s(checked_entries(payload, "stsc", 8, 12, count)).astype(np.int64).reshape(-1, 3)


@dataclass(frozen=True, slots=True)
class SampleGroups:
    """An `sbgp` box: its header and its runs, cut where a zero-count run ends them."""

    head: bytes
    ends: Ints  # cumulative run ends
    values: Ints

    @classmethod
    def parse(cls, payload: memoryview) -> SampleGroups:
        """Parse an `sbgp` payload."""
        if not payload:  # an empty box (its version is read first)
            raise MalformedMedia("sbgp box is too short")
        version = payload[0]
        head = 12 if version == 1 else 8
        if len(payload) < head + 4:
            raise MalformedMedia("sbgp box is too short")
        count = _U32.unpack_from(payload, head)[0]
        if count > (len(payload) - head - 4) // 8:
            raise MalformedMedia(f"sbgp claims {count} entries, more than its box holds")
        flat = _u32s(payload[head + 4 : head + 4 + 8 * count]).astype(np.int64)
        counts, values = flat[0::2], flat[1::2]
        zero = np.flatnonzero(counts == 0)
        if len(zero):  # expansion stops at an empty run
            counts, values = counts[: zero[0]], values[: zero[0]]
        return cls(bytes(payload[:head]), np.cumsum(counts), values)

    def cut(self, first: int, stop: int) -> bytes:
        """The `sbgp` payload for samples `[first, stop)` (samples past the runs are group 0)."""
        described = int(self.ends[-1]) if len(self.ends) else 0
        inside = min(stop, described)
        counts = np.zeros(0, np.int64)
        values = np.zeros(0, np.int64)
        if first < inside:
            lo = int(np.searchsorted(self.ends, first, "right"))
            hi = int(np.searchsorted(self.ends, inside, "left")) + 1
            ends = np.minimum(self.ends[lo:hi], inside)
            begins = np.maximum(np.concatenate(([first], self.ends[lo : hi - 1])), first)
            counts, values = ends - begins, self.values[lo:hi]
        if stop > max(described, first):
            counts = np.append(counts, stop - max(described, first))
            values = np.append(values, 0)
        if len(values):
            keep = np.concatenate(([True], values[1:] != values[:-1]))
            counts = np.add.reduceat(counts, np.flatnonzero(keep))
            values = values[keep]
        flat = np.empty(2 * len(counts), ">u4")
        flat[0::2], flat[1::2] = counts, values
        return self.head + _U32.pack(len(counts)) + flat.tobytes()


class _Times:
    """Presentation-aligned sample start times in seconds, computed as the per-sample
    list used to be (`(dts - shift) / scale + delay`), for bisection."""

    __slots__ = ("_index",)

    def __init__(self, index: TrackIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return self._index.count

    def __getitem__(self, i: int) -> float:
        return self._index.time(i)


@dataclass(slots=True)
class TrackIndex:
    """One track's sample tables as arrays, and what a cut of it needs besides."""

    track: Track
    stbl_children: list[Box]
    stbl: Box
    count: int
    constant_size: int
    sizes: npt.NDArray[np.uint32] | None  # big-endian, as stsz writes them
    # Bytes before sample i (uint32, int64, or objects when wide): made off a cold
    # clip's path (see `bytes_table`); None until then, or with constant sizes.
    prefix: np.ndarray | None
    dts: Timeline | None  # decode time of sample i, count + 1 of them (from the runs)
    stsc: memoryview | None  # the stsc payload (a view of the moov): the chunk map's source
    uniform_duration: int  # the one duration when dts is None
    shift: int
    delay: float
    ctts_version: int
    ctts: RunValues | None  # composition offset of sample i (from the runs)
    sync: Ints | None  # 1-based sync sample numbers, in stss order
    offsets: np.ndarray  # chunk offsets (int64, or objects when wide)
    edits: Edits | None
    edts: Box | None
    mdhd: Box
    # The chunk map; None once the fast path's tables are prepared from it (it is made
    # again if the general path asks, see `chunk_map`).
    chunks: Chunks | MediaError | None
    groups: dict[int, SampleGroups | MediaError]  # by sbgp box offset
    sdtp: bytes | None
    # The stts runs with equal neighbours merged (first sample, end, duration), so a
    # cut's stts is a slice of them rather than a pass over its samples' durations.
    stts_runs: tuple[Ints, Ints, Ints] | None = None
    # The tables prepared for the fast path (None: the track takes the general one).
    prepared: fastclip.Prepared | None = None
    # Those tables packed for the compiled planner by `Mp4Index.finish` (see `packing`).
    native: clipper.Track | None = None

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        arrays = (self.prefix, self.sync, self.offsets)
        total = sum(a.nbytes for a in arrays if a is not None)
        if self.prefix is None and self.sizes is not None:
            total += 4 * (self.count + 1)  # the table `finish` makes (at least)
        if self.sizes is not None and self.sizes.flags.owndata:  # else a view of the moov
            total += self.sizes.nbytes
        if self.dts is not None:
            total += self.dts.nbytes
        if self.stts_runs is not None:
            total += sum(a.nbytes for a in self.stts_runs)
        if isinstance(self.chunks, Chunks):
            total += 4 * self.chunks.first.nbytes
        if self.prepared is not None:
            total += self.prepared.nbytes  # its ctts runs are this one's
            if isinstance(self.prepared.prefix_view, ChunkedBytes):
                total += self.prepared.prefix_view.nbytes
        elif self.ctts is not None:
            total += self.ctts.ends.nbytes + self.ctts.entries.nbytes
        return total + len(self.sdtp or b"")

    def chunk_map(self) -> Chunks | MediaError:
        """The chunk map (or why the stsc cannot make one), made again if dropped."""
        if self.chunks is None:
            self.chunks = _chunk_map(self.stsc, len(self.offsets), self.count)
        return self.chunks

    def dts_at(self, i: int) -> int:
        """The decode time of sample `i` (of the end for `i == count`)."""
        return i * self.uniform_duration if self.dts is None else self.dts[i]

    def time(self, i: int) -> float:
        """The start of sample `i` in seconds on the movie's timeline."""
        return (self.dts_at(i) - self.shift) / self.track.timescale + self.delay

    def after(self, when: float) -> int:
        """How many samples start at or before `when` (`bisect_right` of the times)."""
        if self.dts is not None:
            return self.dts.after(when)
        return bisect_right(_Times(self), when)

    def before(self, when: float) -> int:
        """How many samples start before `when` (`bisect_left` of the times)."""
        if self.dts is not None:
            return self.dts.before(when)
        return bisect_left(_Times(self), when)

    def stts_cut(self, first: int, stop: int) -> tuple[Ints, Ints]:
        """(counts, durations) of the samples `[first, stop)`, as `rle` of `durations`
        gives them (`stop > first`)."""
        assert self.stts_runs is not None
        starts, ends, values = self.stts_runs
        lo = int(np.searchsorted(ends, first, "right"))
        hi = int(np.searchsorted(ends, stop - 1, "right")) + 1
        counts = np.minimum(ends[lo:hi], stop) - np.maximum(starts[lo:hi], first)
        return counts, values[lo:hi]

    def durations(self, first: int, stop: int) -> np.ndarray:
        """The durations of samples `[first, stop)`."""
        if self.dts is None:
            return np.full(stop - first, self.uniform_duration, np.int64)
        return self.dts.durations_of(first, stop)

    def bytes_before(self, at: np.ndarray) -> np.ndarray:
        """Bytes of the samples before each sample number in `at`."""
        if self.sizes is None:
            if self.offsets.dtype == object:
                return at.astype(object) * self.constant_size
            return at * self.constant_size
        found: np.ndarray = self.bytes_table()[at]
        return found

    def bytes_table(self) -> np.ndarray:
        """The bytes before each sample and the total (count + 1 entries; per-sample
        sizes only), made once."""
        prefix = self.prefix
        if prefix is None:
            assert self.sizes is not None
            prefix = self.prefix = _bytes_table(self.sizes, self.offsets.dtype == object)
        return prefix


def _sizes(
    kids: dict[bytes, Box], movie: Movie, track_id: int
) -> tuple[int, int, npt.NDArray[np.uint32] | None]:
    """(count, constant size, per-sample sizes) of `stsz` or `stz2`."""
    if b"stsz" in kids:
        payload = movie.payload(kids[b"stsz"])
        if len(payload) < 12:
            raise MalformedMedia("stsz box is too short")
        _vf, constant, count = _STSZ.unpack_from(payload, 0)
        if constant:
            return count, constant, None
        # A view of the moov (kept by the index anyway): no copy of a table per build.
        return count, 0, np.frombuffer(checked_entries(payload, "stsz", 12, 4, count), ">u4")
    if b"stz2" not in kids:
        raise MalformedMedia(f"track {track_id} has no stsz or stz2")
    payload = movie.payload(kids[b"stz2"])
    if len(payload) < 12:
        raise MalformedMedia("stz2 box is too short")
    field_size = payload[7]
    count = _U32.unpack_from(payload, 8)[0]
    if field_size == 16:
        sizes = np.frombuffer(checked_entries(payload, "stz2", 12, 2, count), ">u2").astype(
            np.uint32
        )
    elif field_size == 8:
        sizes = np.frombuffer(checked_entries(payload, "stz2", 12, 1, count), np.uint8).astype(
            np.uint32
        )
    elif field_size == 4:
        raw = np.frombuffer(checked_entries(payload, "stz2", 12, 1, (count + 1) // 2), np.uint8)
        sizes = np.stack((raw >> 4, raw & 0x0F), axis=1).reshape(-1)[:count].astype(np.uint32)
    else:
        raise MalformedMedia(f"stz2 field size {field_size} is not 4, 8 or 16")
    return count, 0, sizes


def _chunk_offsets(box: Box, movie: Movie) -> np.ndarray:
    payload = movie.payload(box)
    if len(payload) < 8:
        raise MalformedMedia(f"{box.type.decode('latin-1')} box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    if box.type == b"stco":
        return _u32s(checked_entries(payload, "stco", 8, 4, count)).astype(np.int64)
    wide = np.frombuffer(checked_entries(payload, "co64", 8, 8, count), ">u8").astype(np.uint64)
    if len(wide) and int(wide.max()) >= _WIDE:
        return np.array(wide.tolist(), dtype=object)
    return wide.astype(np.int64)


def _load(movie: Movie, track: Track) -> TrackIndex | None:
    """A track's index, or None when it has no samples; the checks and their order are
    those a clip has always made, so that errors read the same."""
    if track.stbl is None:
        return None
    stbl_children = children(movie.data, track.stbl)
    kids = {child.type: child for child in reversed(stbl_children)}
    count, constant, sizes = _sizes(kids, movie, track.track_id)
    if count == 0:
        return None
    if b"stts" not in kids:
        raise MalformedMedia(f"track {track.track_id} has no stts")
    stts_counts, stts_values = _runs(movie.payload(kids[b"stts"]), "stts")
    described = int(stts_counts.sum())
    if described > count:
        raise MalformedMedia(f"stts describes more samples than the {count} there are")
    if described != count:
        raise MalformedMedia(
            f"stts of track {track.track_id} describes {described} samples, not {count}"
        )
    stts_runs: tuple[Ints, Ints, Ints] | None = None
    uniform = 0
    used = stts_counts > 0
    if sizes is None and len(np.unique(stts_values[used])) == 1:
        uniform = int(stts_values[used][0])
    else:
        # Decode times are looked up in the runs (see `Timeline`), never a value per
        # sample: every fresh array of a large table costs its page faults.
        _expand_check(stts_counts, count, "stts")
        stts_runs = _merged_runs(stts_counts, stts_values)
    ctts: RunValues | None = None
    ctts_version = 0
    if b"ctts" in kids:
        payload = movie.payload(kids[b"ctts"])
        ctts_version = payload[0] if payload else 0
        ctts_counts, ctts_values = _runs(payload, "ctts")
        _expand_check(ctts_counts, count, "ctts")
        # Samples the table does not reach have an offset of 0: one more run of them.
        reached = int(ctts_counts.sum())
        runs = fast.Runs.of(
            np.append(ctts_counts, count - reached), np.append(ctts_values, np.uint32(0))
        )
        ctts = RunValues(runs.ends, runs.entries, count)
    sync: Ints | None = None
    if b"stss" in kids:
        payload = movie.payload(kids[b"stss"])
        if len(payload) < 8:
            raise MalformedMedia("stss box is too short")
        number = _VF_COUNT.unpack_from(payload, 0)[1]
        sync = _u32s(checked_entries(payload, "stss", 8, 4, number)).astype(np.int64)
    offsets_box = kids.get(b"stco") or kids.get(b"co64")
    if offsets_box is None:
        raise MalformedMedia(f"track {track.track_id} has no stco or co64")
    offsets = _chunk_offsets(offsets_box, movie)
    edts = next((b for b in children(movie.data, track.box) if b.type == b"edts"), None)
    edits = _edits(movie, edts)
    if not track.timescale:
        raise MalformedMedia(f"track {track.track_id} has a timescale of 0")

    total = int(sizes.sum(dtype=np.uint64)) if sizes is not None else count * constant
    top = int(offsets.max()) if len(offsets) else 0
    if offsets.dtype != object and top + total >= _WIDE:
        offsets = offsets.astype(object)
    stsc_box = kids.get(b"stsc")
    stsc = None if stsc_box is None else movie.payload(stsc_box)
    chunks = _chunk_map(stsc, len(offsets), count)
    groups: dict[int, SampleGroups | MediaError] = {}
    for child in stbl_children:
        if child.type == b"sbgp":
            try:
                groups[child.offset] = SampleGroups.parse(movie.payload(child))
            except MediaError as exc:
                groups[child.offset] = exc
    sdtp = bytes(movie.payload(kids[b"sdtp"])) if b"sdtp" in kids else None
    mdia = next(b for b in children(movie.data, track.box) if b.type == b"mdia")
    mdhd = next(b for b in children(movie.data, mdia) if b.type == b"mdhd")
    shift = edits.media_time if edits else 0
    delay = edits.delay / movie.timescale if edits and movie.timescale else 0.0
    dts = None
    if stts_runs is not None:
        dts = Timeline(*stts_runs, shift, track.timescale, delay)
    return TrackIndex(
        track=track,
        stbl_children=stbl_children,
        stbl=track.stbl,
        count=count,
        constant_size=constant,
        sizes=None if sizes is None else sizes.astype(">u4", copy=False),
        prefix=None,
        dts=dts,
        stsc=stsc,
        uniform_duration=uniform,
        shift=shift,
        delay=delay,
        ctts_version=ctts_version,
        ctts=ctts,
        sync=sync,
        offsets=offsets,
        edits=edits,
        edts=edts,
        mdhd=mdhd,
        chunks=chunks,
        groups=groups,
        sdtp=sdtp,
        stts_runs=stts_runs,
    )


def _chunk_map(stsc: memoryview | None, chunk_count: int, count: int) -> Chunks | MediaError:
    """The chunk map of an stsc payload, or the error that refuses it."""
    try:
        rows = np.zeros((0, 3), np.int64) if stsc is None else _stsc(stsc)
        return Chunks.of(rows, chunk_count, count)
    except MediaError as exc:
        return exc


def _bytes_table(sizes: npt.NDArray[np.uint32], wide: bool) -> np.ndarray:
    """The bytes before each sample and the total: in 32 bits when the track's samples
    fit 4 GiB (nearly always; the table is large), Python integers when offsets are."""
    narrow = int(sizes.sum(dtype=np.uint64)) <= 0xFFFFFFFF
    prefix = np.empty(len(sizes) + 1, np.uint32 if narrow else np.int64)
    prefix[0] = 0
    prefix[1:] = sizes  # summed in place: no temporary table of native sizes
    np.cumsum(prefix[1:], out=prefix[1:])
    return prefix.astype(object) if wide else prefix


def _merged_runs(counts: Ints, values: npt.NDArray[np.uint32]) -> tuple[Ints, Ints, Ints]:
    """(first sample, end, value) of runs, empty ones dropped and equal neighbours merged."""
    used = counts > 0
    counts, wide = counts[used], values[used].astype(np.int64)
    fresh = np.flatnonzero(np.concatenate(([True], wide[1:] != wide[:-1])))
    merged = np.add.reduceat(counts, fresh) if len(counts) else counts
    ends = np.cumsum(merged)
    return ends - merged, ends, wide[fresh]


def _prepare(samples: TrackIndex, movie: Movie, size: int) -> fastclip.Prepared | None:
    """The fast path's tables of a track, or None where it leaves the track to the
    general path: offsets kept as Python integers, constant sample sizes (no per-sample
    prefix), unordered stss, a broken stsc or sbgp, a chunk past the end of the file."""
    sizes, chunks, dts = samples.sizes, samples.chunks, samples.dts
    if sizes is None or samples.offsets.dtype == object:
        return None
    if dts is None or samples.stts_runs is None or not isinstance(chunks, Chunks):
        return None
    sync = samples.sync
    if sync is not None and len(sync) > 1 and bool((sync[1:] < sync[:-1]).any()):
        return None
    if any(isinstance(g, MediaError) for g in samples.groups.values()):
        return None
    used = chunks.samples > 0
    chunk_bytes = np.zeros(len(used), np.int64)
    if len(sizes):  # the chunks that hold samples hold all of them, in order
        chunk_bytes[used] = np.add.reduceat(sizes, chunks.first[used], dtype=np.int64)
    prepared = fast.Chunks.of(
        chunks.first, chunks.samples, chunks.description, samples.offsets, chunk_bytes
    )
    if len(prepared.offsets) and int((prepared.offsets + prepared.sizes).max()) > size:
        return None
    starts, ends, values = samples.stts_runs
    groups: dict[int, tuple[bytes, fast.Runs]] = {}
    for offset, found in samples.groups.items():
        assert isinstance(found, SampleGroups)
        described = int(found.ends[-1]) if len(found.ends) else 0
        # Samples past the runs are group 0: one more run, to the end of the track.
        counts = np.diff(found.ends, prepend=0)
        counts = np.append(counts, max(samples.count - described, 0))
        groups[offset] = (found.head, fast.Runs.of(counts, np.append(found.values, 0)))
    made = {b"stts", b"stsz", b"stsc", b"stco"}
    if samples.ctts is not None:
        made.add(b"ctts")
    if sync is not None:
        made.add(b"stss")
    if samples.sdtp is not None:
        made.add(b"sdtp")
    recipe: list[bytes | memoryview | int | tuple[bytes, fast.Runs]] = []
    # `_stbl`'s choices, which depend on the kinds present, not on the cut.
    for child in samples.stbl_children:
        kind = {b"co64": b"stco", b"stz2": b"stsz"}.get(child.type, child.type)
        if kind in DROPPED_IN_CLIPS:
            continue
        if kind == b"sbgp":
            recipe.append(groups[child.offset])
        elif kind in made:
            made.discard(kind)
            recipe.append(fastclip.MADE[kind])
        elif kind not in (b"ctts", b"stss", b"sdtp"):
            recipe.append(movie.raw(child))
    try:
        tkhd = fastclip.DurationBox(b"tkhd", bytes(movie.payload(samples.track.tkhd)), tkhd=True)
        mdhd = fastclip.DurationBox(b"mdhd", bytes(movie.payload(samples.mdhd)))
    except MediaError:
        return None  # every clip of it is refused, by the general path
    assert samples.sizes is not None
    tkhd_at, mdhd_at, edts_at, stbl_at = fastclip.places_of(samples, movie)
    return fastclip.Prepared(
        stts=fast.Runs.of(ends - starts, values),
        ctts=None if samples.ctts is None else fast.Runs(samples.ctts.ends, samples.ctts.entries),
        sync_list=None if sync is None else sync.tolist(),
        sync_entries=None if sync is None else sync.astype(">u4").tobytes(),
        chunks=prepared,
        prefix_view=_bytes_before(samples, prepared),
        dts=dts,
        groups=groups,
        recipe=recipe,
        tkhd=tkhd,
        mdhd=mdhd,
        sizes=fast.view(samples.sizes),
        tkhd_at=tkhd_at,
        mdhd_at=mdhd_at,
        edts_at=edts_at,
        stbl_at=stbl_at,
    )


def _bytes_before(samples: TrackIndex, chunks: fast.Chunks) -> BytesBefore:
    """What a fast cut reads of the bytes before a sample: sums of a few samples' sizes
    within a chunk until `Mp4Index.finish` makes the table, or the table now when
    chunks hold many samples."""
    assert samples.sizes is not None
    if len(chunks.samples) and int(chunks.samples.max()) <= timeline.FEW:
        before = np.cumsum(chunks.sizes) - chunks.sizes
        return ChunkedBytes(chunks.first, before, fast.view(samples.sizes))
    return samples.bytes_table().data


def _again(error: MediaError) -> MediaError:
    """A fresh copy of a remembered error (raising one instance twice chains tracebacks)."""
    return type(error)(error.message)


@dataclass(slots=True)
class _Cut:
    """The samples `[first, stop)` of a track that a clip keeps; `begin` (source
    seconds) becomes the clip's time zero."""

    samples: TrackIndex
    first: int
    stop: int
    begin: float


def _sync_at_or_before(samples: TrackIndex, when: float) -> int:
    """The sync sample at or before `when` (every sample is one without stss)."""
    index = max(samples.after(when) - 1, 0)
    sync = samples.sync
    if sync is None:
        return index
    if samples.prepared is not None:  # ascending: the same as bisecting, in C
        position = int(sync.searchsorted(index + 1, "right")) - 1
    else:
        position = bisect_right(sync, index + 1) - 1
    if position < 0:
        found = max(int(sync[0]) - 1, 0) if len(sync) else 0
    else:
        found = int(sync[position]) - 1
    if not 0 <= found < samples.count:
        raise MalformedMedia(
            f"stss of track {samples.track.track_id} names sample {found + 1}, "
            f"outside 1..{samples.count}"
        )
    return found


@dataclass(slots=True)
class _CutTables:
    """The rewritten tables of one cut, all but the chunk offsets."""

    boxes: dict[bytes, bytes]
    chunk_offsets: np.ndarray
    chunk_sizes: np.ndarray
    media_duration: int


def _cut_tables(cut: _Cut) -> _CutTables:
    samples, first, stop = cut.samples, cut.first, cut.stop
    boxes: dict[bytes, bytes] = {}
    if samples.dts is None:
        counts = np.array([stop - first], np.int64)
        values: np.ndarray = np.array([samples.uniform_duration], np.int64)
    else:
        counts, values = samples.stts_cut(first, stop)
    boxes[b"stts"] = _runs_box(b"stts", 0, counts, values)
    if samples.ctts is not None:
        counts, values = rle(samples.ctts[first:stop])
        boxes[b"ctts"] = _runs_box(b"ctts", samples.ctts_version, counts, values)
    if samples.sync is not None:
        sync = samples.sync
        kept = sync[(sync > first) & (sync <= stop)] - first
        payload = _VF_COUNT.pack(0, len(kept)) + kept.astype(">u4").tobytes()
        boxes[b"stss"] = _U32.pack(8 + len(payload)) + b"stss" + payload
    if samples.sizes is None:
        payload = _STSZ.pack(0, samples.constant_size, stop - first)
    else:
        payload = _STSZ.pack(0, 0, stop - first) + samples.sizes[first:stop].tobytes()
    boxes[b"stsz"] = _U32.pack(8 + len(payload)) + b"stsz" + payload
    sdtp = samples.sdtp
    if sdtp is not None and len(sdtp) >= 4 + stop:
        boxes[b"sdtp"] = make_box(b"sdtp", sdtp[:4] + sdtp[4 + first : 4 + stop])

    chunks = samples.chunk_map()
    if isinstance(chunks, MediaError):
        raise _again(chunks)
    c_lo = int(np.searchsorted(chunks.end, first, "right"))
    c_hi = int(np.searchsorted(chunks.first, stop, "left"))
    picked = np.arange(c_lo, max(c_hi, c_lo), dtype=np.int64)
    picked = picked[chunks.samples[picked] > 0]
    chunk_first = chunks.first[picked]
    lo = np.maximum(chunk_first, first)
    hi = np.minimum(chunks.end[picked], stop)
    before_lo = samples.bytes_before(lo)
    offsets = samples.offsets[picked] + (before_lo - samples.bytes_before(chunk_first))
    sizes = samples.bytes_before(hi) - before_lo
    per_chunk = hi - lo
    description = chunks.description[picked]
    new_run = np.ones(len(picked), bool)
    new_run[1:] = (per_chunk[1:] != per_chunk[:-1]) | (description[1:] != description[:-1])
    at = np.flatnonzero(new_run)
    stsc = np.empty((len(at), 3), ">u4")
    stsc[:, 0] = at + 1
    stsc[:, 1] = per_chunk[at]
    stsc[:, 2] = description[at]
    payload = _VF_COUNT.pack(0, len(at)) + stsc.tobytes()
    boxes[b"stsc"] = _U32.pack(8 + len(payload)) + b"stsc" + payload
    duration = samples.dts_at(stop) - samples.dts_at(first)
    return _CutTables(boxes, offsets, sizes, duration)


def _elst(cut: _Cut, media_duration: int, movie: Movie) -> tuple[bytes | None, int]:
    """The new `elst` (None when the track had none) and the track's movie duration."""
    return fastclip.edit_list(cut.samples, cut.first, cut.begin, media_duration, movie)


class _Layout:
    """Source byte intervals (merged, ascending) and where each chunk lands in the new mdat."""

    __slots__ = ("lengths", "positions", "starts", "total")

    def __init__(self, offsets: np.ndarray, sizes: np.ndarray) -> None:
        ends = offsets + sizes
        full = sizes != 0
        order = np.lexsort((ends[full], offsets[full]))
        begin, finish = offsets[full][order], ends[full][order]
        reach = np.maximum.accumulate(finish) if len(finish) else finish
        fresh = np.flatnonzero(begin[1:] > reach[:-1]) + 1
        first = np.concatenate((np.zeros(1, np.int64), fresh)) if len(begin) else fresh
        starts = begin[first]
        stops = reach[np.append(fresh - 1, len(reach) - 1)] if len(begin) else reach
        lengths = stops - starts
        out_starts = np.concatenate((np.zeros(1, np.int64), np.cumsum(lengths)))
        positions = np.zeros(len(offsets), np.int64)
        if len(starts):
            where = np.searchsorted(starts, offsets[full], "right") - 1
            positions[full] = out_starts[where] + offsets[full] - starts[where]
        self.starts: list[int] = starts.tolist()
        self.lengths: list[int] = lengths.tolist()
        self.total = int(out_starts[-1])
        self.positions = positions


@dataclass(slots=True)
class Mp4Index:
    """An MP4 file's `ftyp` and `moov`, with the sample tables of its clip-able tracks."""

    size: int
    ftyp: bytes
    movie: Movie
    tracks: dict[int, TrackIndex | MediaError | None]
    kids: dict[int, list[Box]] = field(default_factory=dict)  # containers' children
    audio: OutputMap | None = None  # see audio_map
    # _rebuilt_size's walks of the moov, by the places replaced.
    walks: dict[tuple[int, ...], tuple[int, list[tuple[int, int]]]] = field(default_factory=dict)
    mvhd: bytes | None = None  # see mvhd_payload
    # The fast path's moov skeletons, by the ids of the tracks kept.
    shapes: dict[tuple[int, ...], fastclip.Shape] = field(default_factory=dict)
    # The tracks a clip keeps and their duration, by (audio only, track id).
    # The tracks a clip keeps, their duration and whether all have prepared tables (the
    # fast path), by (audio only, track id).
    selections: dict[tuple[bool, int | None], tuple[list[TrackIndex], float, bool]] = field(
        default_factory=dict
    )
    finishing: bool = False  # `finish` was asked for (the edge's flag)
    finished: bool = False  # `finish` is done: warm clips may take the compiled planner
    # The compiled planner of each selection (None: it declines them all), made on the
    # selection's first clip once finished.
    planners: dict[tuple[bool, int | None], clipper.Planner | None] = field(default_factory=dict)

    def audio_map(self) -> OutputMap:
        """The plan copying every audio sample's bytes in source order (what audio-only
        clips read a subset of) and where they land in its output; built once."""
        if self.audio is None:
            whole = self.clip(None, None, audio_only=True)
            spans = [piece for piece in whole.pieces if isinstance(piece, Span)]
            self.audio = OutputMap(Plan.head_and_spans(b"", spans))
        return self.audio

    def children(self, box: Box) -> list[Box]:
        """The children of a container of the moov, parsed once."""
        found = self.kids.get(box.offset)
        if found is None:
            found = self.kids[box.offset] = children(self.movie.data, box)
        return found

    @property
    def nbytes(self) -> int:
        """Memory this index holds (the moov bytes and the arrays)."""
        arrays = sum(t.nbytes for t in self.tracks.values() if isinstance(t, TrackIndex))
        arrays += sum(p.nbytes for p in list(self.planners.values()) if p is not None)
        return len(self.ftyp) + len(self.movie.data) + arrays

    @classmethod
    def of(cls, size: int, ftyp: bytes, movie: Movie) -> Mp4Index:
        """Index every track a clip may keep (errors are kept for the clips that need them)."""
        tracks: dict[int, TrackIndex | MediaError | None] = {}
        for track in movie.tracks:
            if track.handler not in CLIP_HANDLERS:
                continue
            try:
                loaded = tracks[track.track_id] = _load(movie, track)
            except MediaError as exc:
                tracks[track.track_id] = exc
                continue
            if loaded is not None:
                loaded.prepared = _prepare(loaded, movie, size)
                if loaded.prepared is not None:
                    loaded.chunks = None  # the fast path's tables hold what clips need
        return cls(size, ftyp, movie, tracks)

    def finish(self) -> None:
        """Make what warm clips read fastest and the first ones do without (the bytes
        before each sample, the chunk tables of `cuts.Chunks.finish`): a cold build
        leaves them out, so that its first clip does not wait for them (their pages are
        a third of what a build costs). Safe beside clips in another thread: each table
        is whole before it is put in use."""
        for track in self.tracks.values():
            if isinstance(track, TrackIndex) and track.prepared is not None:
                track.prepared.chunks.finish()
                view = track.prepared.prefix_view
                if isinstance(view, ChunkedBytes) and view.table is None:
                    view.table = track.bytes_table().data
                track.native = packing.track(track)
        self.finished = True

    def clip(
        self,
        start: float | None,
        end: float | None,
        *,
        audio_only: bool = False,
        track_id: int | None = None,
        general: bool = False,
        native: bool = True,
    ) -> Plan:
        """The plan of the file cut to `[start, end)` seconds (see `clip_plan`), keeping
        every audio track, or only the one whose id is `track_id`. `general` leaves out
        the fast path, `native` False its compiled planner (the same plan; tests compare
        them)."""
        selection = (audio_only, track_id)
        if native and not general:
            # The compiled planner, once made (below): it declines the bounds refused
            # next, and the shapes it does not handle.
            planner = self.planners.get(selection)
            if planner is not None:
                plan = planner.plan(start, end)
                if plan is not None:
                    return plan
        check_seek(start, end)
        selected = self.selections.get(selection)
        if selected is None:
            selected = self.selections[selection] = self._select(audio_only, track_id)
        loaded, duration, prepared = selected
        if start is not None and start >= duration:
            raise InvalidSeek(f"start ({start}) is past the end of the media ({duration:.3f} s)")
        if prepared and not general:
            if self.finished and native and selection not in self.planners:
                planner = packing.planner(self, loaded, audio_only, duration)
                self.planners[selection] = planner
                if planner is not None:
                    plan = planner.plan(start, end)
                    if plan is not None:
                        return plan
            try:
                fast_cuts, begin = fastclip.clip_cuts(loaded, start, end, audio_only)
                if fast_cuts:
                    return fastclip.fast_plan(self, fast_cuts, begin)
            except MediaError:
                pass  # the general path raises it, or one it checks first
        cuts = _cuts(loaded, start, end, audio_only)
        if not cuts:
            raise InvalidSeek(f"no media between start ({start}) and end ({end})")
        return self._plan(cuts)

    def _select(
        self, audio_only: bool, track_id: int | None
    ) -> tuple[list[TrackIndex], float, bool]:
        """The indexed tracks a clip keeps, the media's duration and whether every one
        has prepared tables, or the error that refuses such clips."""
        movie = self.movie
        wanted = [
            t for t in movie.tracks if (t.is_audio if audio_only else t.handler in CLIP_HANDLERS)
        ]
        if audio_only and not wanted:
            raise NoAudioTrack("the file has no audio track")
        if track_id is not None:
            if not any(t.is_audio and t.track_id == track_id for t in wanted):
                raise InvalidTrack(f"the file has no audio track with id {track_id}")
            wanted = [t for t in wanted if not t.is_audio or t.track_id == track_id]
        for track in wanted:
            if track.is_audio:
                check_described(track)
        loaded: list[TrackIndex] = []
        for track in wanted:
            found = self.tracks[track.track_id]
            if isinstance(found, MediaError):
                raise _again(found)
            if found is not None:
                loaded.append(found)
        if not loaded:
            raise UnsupportedMedia("the file has no samples to clip")
        duration = max(
            s.time(s.count - 1) + (s.dts_at(s.count) - s.dts_at(s.count - 1)) / s.track.timescale
            for s in loaded
        )
        return loaded, duration, all(s.prepared is not None for s in loaded)

    def _plan(self, cuts: list[_Cut]) -> Plan:
        movie, size = self.movie, self.size
        replace: dict[int, bytes | None] = {}
        kept_ids = {cut.samples.track.track_id for cut in cuts}
        for track in movie.tracks:
            if track.track_id not in kept_ids:
                replace[track.box.offset] = None
        tables: list[_CutTables] = []
        track_durations: list[int] = []
        for cut in cuts:
            track = cut.samples.track
            cut_tables = _cut_tables(cut)
            ends = cut_tables.chunk_offsets + cut_tables.chunk_sizes
            past = np.flatnonzero(ends > size)
            if len(past):
                offset = int(cut_tables.chunk_offsets[past[0]])
                length = int(cut_tables.chunk_sizes[past[0]])
                raise MalformedMedia(
                    f"a chunk of track {track.track_id} at {offset} (+{length}) "
                    f"lies past the end of the file ({size} bytes)"
                )
            tables.append(cut_tables)
            elst, track_duration = _elst(cut, cut_tables.media_duration, movie)
            track_durations.append(track_duration)
            if elst is not None:
                assert cut.samples.edts is not None
                replace[cut.samples.edts.offset] = make_box(b"edts", elst)
            replace[track.tkhd.offset] = make_box(
                b"tkhd",
                set_duration_field(
                    bytes(movie.payload(track.tkhd)), "tkhd", track_duration, tkhd=True
                ),
            )
            mdhd = cut.samples.mdhd
            replace[mdhd.offset] = make_box(
                b"mdhd",
                set_duration_field(bytes(movie.payload(mdhd)), "mdhd", cut_tables.media_duration),
            )
        if movie.mvhd is not None:
            replace[movie.mvhd.offset] = make_box(
                b"mvhd",
                set_duration_field(bytes(movie.payload(movie.mvhd)), "mvhd", max(track_durations)),
            )

        all_offsets = np.concatenate([t.chunk_offsets for t in tables])
        all_sizes = np.concatenate([t.chunk_sizes for t in tables])
        if all_offsets.dtype == object:
            all_offsets = all_offsets.astype(np.int64)  # every chunk lies within the file
            all_sizes = all_sizes.astype(np.int64)
        layout = _Layout(all_offsets, all_sizes)
        mdat_header = header_bytes(b"mdat", layout.total)

        pieces: list[tuple[int, list[Piece | None], int, Ints]] = []
        widest: list[tuple[int, int]] = []  # per track: (largest offset, count)
        first = 0
        for cut, cut_tables in zip(cuts, tables, strict=True):
            count = len(cut_tables.chunk_offsets)
            relative = layout.positions[first : first + count]
            first += count
            parts = self._stbl(cut, cut_tables.boxes)
            fixed = sum(len(p) for p in parts if p is not None)
            pieces.append((cut.samples.stbl.offset, parts, fixed, relative))
            widest.append((int(relative.max()) if count else 0, count))

        def with_offsets(base: int | None) -> dict[int, Replacement]:
            """The replacements, the chunk offsets for `base` (left out for None)."""
            edits: dict[int, Replacement] = dict(replace)
            for at, parts, fixed, relative in pieces:
                stco = b"" if base is None else offsets_box(relative + base)
                head = header_bytes(b"stbl", fixed + len(stco))
                edits[at] = [head, *(stco if p is None else p for p in parts)]
            return edits

        # The moov's size depends on stco vs co64, which depends on the offsets, which
        # depend on the moov's size. Its size is that of the moov without chunk offsets
        # plus theirs, so the base settles by arithmetic, and the moov is built once.
        bare = self._rebuilt_size(with_offsets(None))
        base = fastclip.settle(bare, widest, len(self.ftyp), movie.box.size, len(mdat_header))
        moov, _ = rebuild_pieces(movie.data, movie.box, with_offsets(base), self.children)
        head = b"".join([self.ftyp, *moov, mdat_header])
        # tuple.__new__ straight from C: a Span per interval without NamedTuple's Python __new__.
        pairs = zip(layout.starts, layout.lengths, strict=True)
        spans: list[Span] = list(map(tuple.__new__, repeat(Span), pairs))
        return Plan.head_and_spans(head, spans, layout.lengths)

    def mvhd_payload(self) -> bytes:
        """The `mvhd`'s payload, copied once."""
        if self.mvhd is None:
            assert self.movie.mvhd is not None
            self.mvhd = bytes(self.movie.payload(self.movie.mvhd))
        return self.mvhd

    def _rebuilt_size(self, replace: dict[int, Replacement]) -> int:
        """The size of the moov `rebuild_pieces` would make with these replacements,
        without making it: the moov's size, plus each reached replacement's change,
        plus the change of header of each container re-serialised on the way (8 bytes
        below 4 GiB). Only the containers a rebuild re-serialises are parsed, in the
        same order, so a malformed box elsewhere is left alone as a rebuild leaves it."""
        moov = self.movie.box
        if moov.offset in replace:
            new = replace[moov.offset]
            return sum(map(len, new)) if isinstance(new, list) else len(new or b"")
        # Which boxes a rebuild reaches depends on where the replacements are, not on
        # what they hold: the walk is made once per set of places (every clip of a
        # file keeping the same tracks has the same).
        places = tuple(sorted(replace))
        walked = self.walks.get(places)
        if walked is None:
            walked = self.walks[places] = self._walk(places)
        fixed, reached = walked
        for at, size in reached:
            new = replace[at]
            fixed += (sum(map(len, new)) if isinstance(new, list) else len(new or b"")) - size
        return fixed

    def _walk(self, places: tuple[int, ...]) -> tuple[int, list[tuple[int, int]]]:
        """For replacements at `places` (ascending): the rebuilt moov's size before their
        own changes, and the (offset, size) of each replaced box a rebuild reaches."""
        moov = self.movie.box
        replace = set(places)
        reached: list[tuple[int, int]] = []
        touched: dict[int, Box] = {}
        for at in places:
            if not moov.offset < at < moov.end:
                continue
            # Every container holding `at` on the way is re-serialised, even where the
            # descent ends without reaching a box there.
            node, chain = moov, []
            while node.offset != at and node.offset not in replace:
                if node.type not in CONTAINERS:
                    break  # copied whole, whatever lies inside
                chain.append(node)
                node = next((c for c in self.children(node) if c.offset <= at < c.end), node)
                if node is chain[-1]:
                    break
            for container in chain:
                touched[container.offset] = container
            if node.offset == at and node is not moov:
                reached.append((at, node.size))
        return moov.size + sum(8 - c.header_size for c in touched.values()), reached

    def _stbl(self, cut: _Cut, new: dict[bytes, bytes]) -> list[Piece | None]:
        """The `stbl`'s children in the original order; None where the chunk offsets go."""
        samples, movie = cut.samples, self.movie
        new = dict(new)
        new[b"stco"] = b""
        parts: list[Piece | None] = []
        for child in samples.stbl_children:
            kind = {b"co64": b"stco", b"stz2": b"stsz"}.get(child.type, child.type)
            if kind in DROPPED_IN_CLIPS:
                continue
            if kind == b"sbgp":
                groups = samples.groups[child.offset]
                if isinstance(groups, MediaError):
                    raise _again(groups)
                parts.append(make_box(b"sbgp", groups.cut(cut.first, cut.stop)))
            elif kind in new:
                box = new.pop(kind)
                parts.append(None if kind == b"stco" else box)
            elif kind not in (b"ctts", b"stss", b"sdtp"):
                parts.append(movie.raw(child))
        return parts


def _cuts(
    tracks: list[TrackIndex], start: float | None, end: float | None, audio_only: bool
) -> list[_Cut]:
    begin = start or 0.0
    if not audio_only and start is not None:
        video = next((t for t in tracks if t.track.handler == b"vide"), None)
        if video is not None:
            key = _sync_at_or_before(video, begin)
            # The other tracks start where the keyframe is shown, not decoded.
            ctts = video.ctts
            shown = int(ctts[key]) / video.track.timescale if ctts is not None else 0.0
            begin = max(video.time(key) + shown, 0.0)
    cuts: list[_Cut] = []
    for samples in tracks:
        if start is None:
            first = 0  # only the end is cut: every track keeps its beginning and edits
        elif samples.track.handler == b"vide" and not audio_only:
            first = _sync_at_or_before(samples, begin)
        else:
            first = max(samples.after(begin) - 1, 0)
        stop = samples.count if end is None else samples.before(end)
        if stop > first:
            cuts.append(_Cut(samples, first, stop, begin))
    return cuts


def read_index(size: int, *, max_moov: int = DEFAULT_MAX_MOOV) -> Reading[Mp4Index]:
    """Read and index the `ftyp` and `moov` of the ISO BMFF file of `size` bytes."""
    top = yield from scan_top_level(size)
    if top.first(b"moof") is not None:
        raise UnsupportedMedia("seeking in fragmented MP4 is not supported")
    moov_box = top.movie_box()
    ftyp_box = top.first(b"ftyp")
    ftyp = b"" if ftyp_box is None else (yield from read_box(ftyp_box, MAX_FTYP, "ftyp"))
    movie = parse_movie((yield from read_box(moov_box, max_moov, "moov")), moov_box.offset)
    return Mp4Index.of(size, ftyp, movie)
