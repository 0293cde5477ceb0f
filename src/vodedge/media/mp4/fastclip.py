"""A clip's plan from tables prepared once per track (the fast path of `index`).

Each table of a cut is a slice of the track's prepared tables with its ends
patched (`cuts`), and the moov is a `Skeleton` made once per set of kept tracks
with its varying boxes filled in: a 10-second clip costs a few binary searches
and work in proportion to its few dozen chunks. The plan equals the general
path's byte for byte; any MediaError here only means "ask the general path",
which raises the right one.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import repeat
from struct import Struct, pack
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from vodedge.media.errors import MalformedMedia
from vodedge.media.mp4 import cuts as fast
from vodedge.media.mp4.boxes import Box, header_bytes
from vodedge.media.mp4.skeleton import Skeleton
from vodedge.media.mp4.timeline import BytesBefore, ChunkedBytes, Timeline, ratio
from vodedge.media.plan import Plan, Span
from vodedge.media.plan_columns import ColumnPlan

if TYPE_CHECKING:
    from vodedge.media.mp4.index import Edits, Mp4Index, TrackIndex
    from vodedge.media.mp4.movie import Movie

Ints = npt.NDArray[np.int64]
Piece = bytes | memoryview
# Compiled (mypyc), a dataclass field's type is looked up by name in this module when it
# is a builtin mypyc does not know (memoryview): the alias is that name.
Memory = memoryview

_STSZ = Struct(">I4sIII")  # size, type, version and flags, constant size, count
_ELST0 = Struct(">IiI")
_ELST1 = Struct(">QqI")
_ELST0_BOX = Struct(">I4sBxxxIIiI")  # an elst of one entry, version 0
_ELST1_BOX = Struct(">I4sBxxxIQqI")  # and version 1
_HEAD = Struct(">I4s")
# Fast plans of this many spans or more keep them as columns (see `ColumnPlan`).
MANY_SPANS = 64

# The tables an stbl recipe makes per cut (anything else in it is copied bytes).
STTS, CTTS, STSS, STSZ, STSC, STCO, SDTP = range(7)
MADE = {b"stts": STTS, b"ctts": CTTS, b"stss": STSS, b"stsz": STSZ, b"stsc": STSC}
MADE |= {b"stco": STCO, b"sdtp": SDTP}


class DurationBox:
    """A `mvhd`, `tkhd` or `mdhd` box whose duration a clip rewrites: the bytes
    before and after the field (`set_duration_field`'s, with the box header)."""

    __slots__ = ("head", "layout", "name", "size", "tail", "wide")

    def __init__(self, kind: bytes, payload: bytes, *, tkhd: bool = False) -> None:
        version = payload[0] if payload else 0
        if tkhd:
            pos, wide = (28, True) if version == 1 else (20, False)
        else:
            pos, wide = (24, True) if version == 1 else (16, False)
        width = 8 if wide else 4
        if len(payload) < pos + width:
            raise MalformedMedia(f"{kind.decode()} box is too short")
        self.name = kind.decode()
        self.head = header_bytes(kind, len(payload)) + payload[:pos]
        self.tail = payload[pos + width :]
        self.wide = wide
        self.size = len(self.head) + width + len(self.tail)
        # The whole box in one pack: head, duration, tail.
        self.layout = Struct(f">{len(self.head)}s{'Q' if wide else 'I'}{len(self.tail)}s")

    def box(self, duration: int) -> bytes:
        """The whole box with this duration."""
        if not self.wide and duration > 0xFFFFFFFF:
            raise MalformedMedia(f"{self.name} duration {duration} does not fit version 0")
        return self.layout.pack(self.head, duration, self.tail)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A track's tables as the fast path cuts them (see `cuts`): run tables with equal
    neighbours merged, the chunks that hold samples, the `stbl`'s children in order,
    and the places of the boxes a clip replaces."""

    stts: fast.Runs
    ctts: fast.Runs | None
    sync_list: list[int] | None  # the stss numbers, ascending, for bisection
    sync_entries: bytes | None  # the same as stss entries
    chunks: fast.Chunks
    # The bytes before each sample, read from Python without numpy's per-call cost.
    prefix_view: BytesBefore
    dts: Timeline  # the track's: decode times, and sample times searched
    groups: dict[int, tuple[bytes, fast.Runs]]  # by sbgp offset: its head, its runs
    recipe: list[bytes | memoryview | int | tuple[bytes, fast.Runs]]  # copied, made, sbgp
    tkhd: DurationBox
    mdhd: DurationBox
    sizes: Memory  # the stsz entries, big-endian bytes
    tkhd_at: int
    mdhd_at: int
    edts_at: int | None  # when the track has an edit list to rewrite
    stbl_at: int

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        runs = [self.stts, self.ctts, *(r for _, r in self.groups.values())]
        total = sum(r.ends.nbytes + r.entries.nbytes for r in runs if r is not None)
        total += 40 * len(self.sync_list or ())  # a list slot, an int and an entry each
        return total + self.chunks.nbytes


def edit_list(
    samples: TrackIndex, first: int, begin: float, media_duration: int, movie: Movie
) -> tuple[bytes | None, int]:
    """The new `elst` of a cut starting at sample `first` (None when the track had
    none) and the track's movie duration."""
    media_scale = samples.track.timescale
    edits: Edits | None = samples.edits
    if first == 0 and edits is not None:
        # A track that starts later than the clip keeps the rest of its delay.
        late = ratio(edits.delay, movie.timescale) - begin if movie.timescale else 0.0
        delay, media_time = max(round(late * movie.timescale), 0), edits.media_time
    else:
        delay = 0
        is_video = samples.track.handler == b"vide"
        ctts = samples.ctts
        media_time = int(ctts[first]) if is_video and ctts is not None else 0
    media_time = max(media_time, 0)
    segment = max(media_duration - media_time, 0) * movie.timescale // media_scale
    if edits is None:
        return None, media_duration * movie.timescale // media_scale
    version = edits.version if segment <= 0xFFFFFFFF and delay <= 0xFFFFFFFF else 1
    if not delay:  # one entry: the whole box in one pack
        if version == 1:
            return _ELST1_BOX.pack(36, b"elst", 1, 1, segment, media_time, 1 << 16), segment
        return _ELST0_BOX.pack(28, b"elst", version, 1, segment, media_time, 1 << 16), segment
    entry = _ELST1 if version == 1 else _ELST0
    if delay:
        entries = entry.pack(delay, -1, 1 << 16) + entry.pack(segment, media_time, 1 << 16)
    else:
        entries = entry.pack(segment, media_time, 1 << 16)
    size = 16 + len(entries)
    return pack(">I4sBxxxI", size, b"elst", version, 2 if delay else 1) + entries, delay + segment


def moov_size(bare: int, widest: list[tuple[int, int]], base: int) -> int:
    """A rebuilt moov's size with its chunk offsets at `base`: `bare` (the moov without
    them) plus each track's `stco`, or `co64` when its largest offset passes 32 bits."""
    size = bare
    for top, count in widest:
        wide = count and top + base > 0xFFFFFFFF
        size += 16 + (8 if wide else 4) * count
    return size


def settle(
    bare: int, widest: list[tuple[int, int]], before: int, guess: int, mdat_header: int
) -> int:
    """Where the new mdat's payload starts: the steps `settle_moov` takes, on sizes alone
    (those of `moov_size`)."""
    size = moov_size(bare, widest, before + guess + mdat_header)
    for _ in range(4):
        again = moov_size(bare, widest, before + size + mdat_header)
        if again == size:
            return before + size + mdat_header
        size = again
    raise MalformedMedia("chunk offsets do not settle")  # pragma: no cover


def sync_at_or_before(samples: TrackIndex, prepared: Prepared, when: float) -> int:
    """`index._sync_at_or_before` on an ascending stss held as a list."""
    index = max(prepared.dts.after(when) - 1, 0)
    sync = prepared.sync_list
    if sync is None:
        return index
    position = bisect_right(sync, index + 1) - 1
    found = sync[position] - 1 if position >= 0 else max(sync[0] - 1, 0) if sync else 0
    if not 0 <= found < samples.count:
        raise MalformedMedia("stss names a sample outside the track")  # the general path says
    return found


Cut = tuple["TrackIndex", Prepared, int, int]


def clip_cuts(
    tracks: list[TrackIndex], start: float | None, end: float | None, audio_only: bool
) -> tuple[list[Cut], float]:
    """`index._cuts` for tracks that all have prepared tables: (track, tables, first,
    stop) of each cut, and the source time that becomes the clip's zero."""
    begin = start or 0.0
    key = -1
    video: TrackIndex | None = None
    key_time = 0.0
    if not audio_only and start is not None:
        for track in tracks:
            if track.track.handler == b"vide":
                video = track
                break
        if video is not None:
            assert video.prepared is not None
            key = sync_at_or_before(video, video.prepared, begin)
            # The other tracks start where the keyframe is shown, not decoded.
            ctts = video.ctts
            shown = ratio(int(ctts[key]), video.track.timescale) if ctts is not None else 0.0
            key_time = video.prepared.dts.seconds(key)
            begin = max(key_time + shown, 0.0)
    cuts: list[Cut] = []
    for samples in tracks:
        prepared = samples.prepared
        assert prepared is not None
        timeline = prepared.dts
        if start is None:
            first = 0  # only the end is cut: every track keeps its beginning and edits
        elif samples.track.handler == b"vide" and not audio_only:
            if samples is video and key_time == begin and _last_at(timeline, key, begin):
                first = key  # the keyframe found above, found again
            else:
                first = sync_at_or_before(samples, prepared, begin)
        else:
            first = max(timeline.after(begin) - 1, 0)
        stop = samples.count if end is None else timeline.before(end)
        if stop > first:
            cuts.append((samples, prepared, first, stop))
    return cuts, begin


def _last_at(timeline: Timeline, key: int, begin: float) -> bool:
    """Whether `key`, which starts at `begin`, is the last sample at or before `begin`
    (then the sync sample at or before `begin` is `key` without a search)."""
    return key + 1 == timeline.count or timeline.seconds(key + 1) > begin


def _stbl(
    samples: TrackIndex, prepared: Prepared, first: int, stop: int, stsc: bytes
) -> tuple[list[Piece], int, int]:
    """The cut `stbl` in pieces (its header and the chunk offsets left empty), which
    piece the chunk offsets go in, and the size of the rest. Large tables are views
    (of the moov, of the prepared runs), copied once when the moov is joined."""
    parts: list[Piece] = [b""]
    stco_at = 0
    count = stop - first
    for item in prepared.recipe:
        if type(item) is int:
            if item == STTS:
                prepared.stts.table(b"stts", 0, first, stop, parts)
            elif item == STSZ:
                head = _STSZ.pack(20 + 4 * count, b"stsz", 0, 0, count)
                parts += (head, prepared.sizes[4 * first : 4 * stop])
            elif item == STSC:
                parts.append(stsc)
            elif item == STCO:
                stco_at = len(parts)
                parts.append(b"")
            elif item == STSS:
                assert prepared.sync_list is not None and prepared.sync_entries is not None
                parts.append(fast.sync_cut(prepared.sync_list, prepared.sync_entries, first, stop))
            elif item == CTTS:
                assert prepared.ctts is not None
                prepared.ctts.table(b"ctts", samples.ctts_version, first, stop, parts)
            else:  # SDTP: dropped when it does not reach the cut's end
                sdtp = samples.sdtp
                assert sdtp is not None
                if len(sdtp) >= 4 + stop:
                    parts += (header_bytes(b"sdtp", 4 + count) + sdtp[:4],)
                    parts.append(memoryview(sdtp)[4 + first : 4 + stop])
        elif type(item) is tuple:
            head, runs = item
            runs.group_box(head, first, stop, parts)
        else:
            assert not isinstance(item, (int, tuple))
            parts.append(item)
    return parts, stco_at, 8 + sum(map(len, parts))


def fast_plan(index: Mp4Index, cuts: list[Cut], begin: float) -> Plan:
    """The plan of these cuts (see the module's docstring)."""
    movie = index.movie
    key = tuple([cut[0].track.track_id for cut in cuts])
    shape = index.shapes.get(key)
    if shape is None:
        shape = index.shapes[key] = _shape(index, cuts)
    skeleton, mvhd, slots, weave, order = shape
    parts = skeleton.parts.copy()
    varying: dict[int, int] = {}
    bounds: list[tuple[fast.Chunks, int, int, int, int]] = []
    stbls: list[tuple[list[Piece], int, int, int]] = []  # (pieces, stco at, size, place)
    longest = 0
    # Cuts of few chunks, or all of finished tracks: a woven layout's stco is then a
    # few slices shifted (else lists or arrays of the chunks, sorted).
    weavable = weave is not None
    for (samples, prepared, first, stop), (tkhd_at, mdhd_at, edts_at, stbl_at) in zip(
        cuts, slots, strict=True
    ):
        chunks = prepared.chunks
        prefix = prepared.prefix_view
        if type(prefix) is ChunkedBytes and prefix.table is not None:
            prefix = prefix.table  # finished: read without a call per look-up
        lo, hi, skipped, dropped = chunks.bounds(first, stop, prefix)
        bounds.append((chunks, lo, hi, skipped, dropped))
        if hi - lo > fast.SMALL and not chunks.finished:
            weavable = False
        stsc = chunks.stsc(lo, hi, first, stop)
        dts = prepared.dts
        single = dts.single
        media_duration = (stop - first) * single if single is not None else dts[stop] - dts[first]
        elst, track_duration = edit_list(samples, first, begin, media_duration, movie)
        if track_duration > longest:
            longest = track_duration
        if elst is not None:
            assert prepared.edts_at is not None
            varying[prepared.edts_at] = 8 + len(elst)
            if edts_at >= 0:
                parts[edts_at] = _HEAD.pack(8 + len(elst), b"edts") + elst
        tkhd = prepared.tkhd.box(track_duration)
        mdhd = prepared.mdhd.box(media_duration)
        if tkhd_at >= 0:
            parts[tkhd_at] = tkhd
        if mdhd_at >= 0:
            parts[mdhd_at] = mdhd
        pieces, stco_at, size = _stbl(samples, prepared, first, stop, stsc)
        varying[prepared.stbl_at] = size
        stbls.append((pieces, stco_at, size, stbl_at))
    if mvhd is not None:
        mvhd_at, mvhd_box = mvhd
        made = mvhd_box.box(longest)
        if mvhd_at >= 0:
            parts[mvhd_at] = made

    woven = weave.layout(bounds) if weave is not None and weavable else None
    spaced = None
    if woven is None and len(bounds) == 1 and bounds[0][0].spaced:
        _, lo, hi, skipped, dropped = bounds[0]
        spaced = bounds[0][0].spaced_layout(lo, hi, skipped, dropped)
    widest: list[tuple[int, int]] = []  # per track: (largest offset, count)
    relatives: list[fast.Column] = []
    starts: fast.Column
    lengths: fast.Column
    if woven is not None:
        starts, lengths, total, tracks = woven
        widest = [(top, count) for _, _, top, count in tracks]
    elif spaced is not None:
        starts, lengths, total, top = spaced
        widest = [(top, len(starts))]
    else:
        layout = _layout(bounds)
        starts, lengths, total = layout.starts, layout.lengths, layout.total
        first_chunk = 0
        for _, lo, hi, _, _ in bounds:
            count = hi - lo
            relative = layout.positions[first_chunk : first_chunk + count]
            first_chunk += count
            relatives.append(relative)
            # int() of numpy's scalar: compiled (mypyc), `top` is an int, checked on assignment.
            top = max(relative) if isinstance(relative, list) else int(relative.max())
            widest.append((top if count else 0, count))
    mdat_header = header_bytes(b"mdat", total)

    # The size without chunk offsets, plus theirs: the base settles by arithmetic.
    bare = skeleton.size(varying)
    base = settle(bare, widest, len(index.ftyp), movie.box.size, len(mdat_header))
    for track, (pieces, stco_at, size, _) in enumerate(stbls):
        chunks, lo, hi, skipped, _ = bounds[track]
        if woven is not None:
            stco = fast.woven_offsets_box(chunks, woven[3][track], base)
        elif spaced is not None:
            stco = chunks.spaced_offsets_box(lo, hi, skipped, base)
        else:
            stco = fast.offsets_box(relatives[track], base)
        pieces[stco_at] = stco
        size += len(stco)
        pieces[0] = _HEAD.pack(size, b"stbl")
        varying[cuts[track][1].stbl_at] = size
    skeleton.fill(parts, varying)
    # The stbls' pieces go in their slots here: a large table is copied once, by the join.
    flat: list[Piece] = [index.ftyp]
    done = 0
    for track in order:
        pieces, _, _, stbl_at = stbls[track]
        flat += parts[done:stbl_at]
        flat += pieces
        done = stbl_at + 1
    flat += parts[done:]
    flat.append(mdat_header)
    head = b"".join(flat)
    if not isinstance(starts, list) and not isinstance(lengths, list):
        if len(starts) >= MANY_SPANS:  # their Span tuples are made only if asked for
            return ColumnPlan(head, starts, lengths)
        starts, lengths = starts.tolist(), lengths.tolist()
    pairs = zip(starts, lengths, strict=True)
    # tuple.__new__ straight from C: a Span per interval without NamedTuple's Python __new__.
    spans: list[Span] = list(map(tuple.__new__, repeat(Span), pairs))
    return Plan.head_and_spans(head, spans, list(lengths))


def _layout(bounds: list[tuple[fast.Chunks, int, int, int, int]]) -> fast.Layout:
    """The layout of the cuts' chunks by sorting them: lists when every cut is small."""
    if all(hi - lo <= fast.SMALL for _, lo, hi, _, _ in bounds):
        offsets: list[int] = []
        sizes: list[int] = []
        for chunks, lo, hi, skipped, dropped in bounds:
            more_offsets, more_sizes = chunks.lists(lo, hi, skipped, dropped)
            offsets += more_offsets
            sizes += more_sizes
        return fast.Layout.of_lists(offsets, sizes)
    columns: list[fast.ChunkCut] = []
    for chunks, lo, hi, skipped, dropped in bounds:
        if hi - lo > fast.SMALL:
            columns.append(fast.ChunkCut(*chunks.columns(lo, hi, skipped, dropped), b""))
        else:
            columns.append(fast.ChunkCut(*chunks.lists(lo, hi, skipped, dropped), b""))
    return fast.Layout.of_cuts(columns)


Shape = tuple[
    Skeleton,
    tuple[int, DurationBox] | None,
    list[tuple[int, int, int, int]],
    fast.Weave | None,
    list[int],
]


def _shape(index: Mp4Index, cuts: list[Cut]) -> Shape:
    """The skeleton of the moov for clips keeping these tracks, the `mvhd` (its slot and
    box), each track's slots (tkhd, mdhd, edts, stbl; -1 where a rebuild does not
    reach the box), the weave of their chunks, if they qualify, and the cuts whose stbl
    a rebuild reaches, in the skeleton's order."""
    movie = index.movie
    kept = {samples.track.track_id for samples, _, _, _ in cuts}
    known: dict[int, int] = {t.box.offset: 0 for t in movie.tracks if t.track_id not in kept}
    mvhd: tuple[int, DurationBox] | None = None
    mvhd_box: DurationBox | None = None
    if movie.mvhd is not None:
        mvhd_box = DurationBox(b"mvhd", bytes(movie.payload(movie.mvhd)))
        known[movie.mvhd.offset] = mvhd_box.size
    varying: set[int] = set()
    for _, prepared, _, _ in cuts:
        known[prepared.tkhd_at] = prepared.tkhd.size
        known[prepared.mdhd_at] = prepared.mdhd.size
        if prepared.edts_at is not None:
            varying.add(prepared.edts_at)
        varying.add(prepared.stbl_at)
    places = tuple(sorted(known.keys() | varying))
    for place in varying:
        known.pop(place, None)  # a box both kinds (malformed) varies
    skeleton = Skeleton(movie.data, movie.box, places, index.children, known)
    found = skeleton.slots.get
    if movie.mvhd is not None:
        assert mvhd_box is not None
        mvhd = (found(movie.mvhd.offset, -1), mvhd_box)
    slots = [
        (
            found(p.tkhd_at, -1),
            found(p.mdhd_at, -1),
            -1 if p.edts_at is None else found(p.edts_at, -1),
            found(p.stbl_at, -1),
        )
        for _, p, _, _ in cuts
    ]
    weave = fast.Weave.of([prepared.chunks for _, prepared, _, _ in cuts])
    order = sorted((slot[3], track) for track, slot in enumerate(slots) if slot[3] >= 0)
    return skeleton, mvhd, slots, weave, [track for _, track in order]


def places_of(samples: TrackIndex, movie: Movie) -> tuple[int, int, int | None, int]:
    """The offsets of the boxes a clip replaces in this track: tkhd, mdhd, edts, stbl."""
    edts: Box | None = samples.edts if samples.edits is not None else None
    return (
        samples.track.tkhd.offset,
        samples.mdhd.offset,
        None if edts is None else edts.offset,
        samples.stbl.offset,
    )
