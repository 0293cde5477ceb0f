"""MP4 audio extraction: the plan of a file holding only the source's audio tracks."""

from __future__ import annotations

from struct import Struct
from typing import TYPE_CHECKING

from vodedge.media.errors import (
    InvalidTrack,
    MalformedMedia,
    MediaError,
    NoAudioTrack,
    UnsupportedMedia,
)
from vodedge.media.mp4.boxes import Box, children, header_bytes, make_box
from vodedge.media.mp4.file import DEFAULT_MAX_MOOV, MAX_FTYP, read_box, scan_top_level
from vodedge.media.mp4.layout import DataLayout, settle_moov
from vodedge.media.mp4.movie import (
    ChunkTable,
    Movie,
    Track,
    check_described,
    chunk_table,
    parse_movie,
    rebuild,
    set_duration_field,
)
from vodedge.media.mp4.tables import chunk_offsets_box
from vodedge.media.plan import Piece, Plan, Span
from vodedge.media.reading import Reading

# Fragments and mfra are parsed only for fragmented files: a whole-file extraction is
# timed against ffmpeg, start-up included.
if TYPE_CHECKING:
    from vodedge.media.mp4.fragments import Fragment

_U32 = Struct(">I")
UNKNOWN_DURATIONS = frozenset({0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF})


def _tref_without(movie: Movie, tref: Box, kept: set[int]) -> bytes | None:
    """A `tref` with references to dropped tracks removed (None when none remain)."""
    parts: list[bytes] = []
    for ref in children(movie.data, tref):
        payload = movie.payload(ref)
        ids = [
            tid
            for (tid,) in Struct(">I").iter_unpack(bytes(payload[: len(payload) // 4 * 4]))
            if tid in kept
        ]
        if ids:
            parts.append(make_box(ref.type, Struct(f">{len(ids)}I").pack(*ids)))
    return make_box(b"tref", b"".join(parts)) if parts else None


def _mvhd(movie: Movie, kept: list[Track]) -> bytes:
    """`mvhd` with the duration of the longest kept track and a valid next_track_ID."""
    assert movie.mvhd is not None
    payload = bytes(movie.payload(movie.mvhd))
    # All ones means "unknown" (fragmented files write it); such a track has no say.
    known = [t.tkhd_duration for t in kept if t.tkhd_duration not in UNKNOWN_DURATIONS]
    duration = max(known, default=0)
    if duration:
        payload = set_duration_field(payload, "mvhd", duration)
    next_id_at = 108 if payload[0] == 1 else 96
    top = max(track.track_id for track in kept)
    if len(payload) >= next_id_at + 4 and _U32.unpack_from(payload, next_id_at)[0] <= top:
        # With the largest id in use, ISO/IEC 14496-12 asks for all ones here.
        next_id = _U32.pack(min(top + 1, 0xFFFFFFFF))
        payload = payload[:next_id_at] + next_id + payload[next_id_at + 4 :]
    return make_box(b"mvhd", payload)


def _cover_art(movie: Movie) -> list[Box]:
    """The `covr` items of the movie's iTunes metadata (udta/meta/ilst)."""
    found: list[Box] = []
    try:
        for udta in children(movie.data, movie.box):
            if udta.type != b"udta":
                continue
            for meta in (b for b in children(movie.data, udta) if b.type == b"meta"):
                for ilst in (b for b in children(movie.data, meta) if b.type == b"ilst"):
                    found += [b for b in children(movie.data, ilst) if b.type == b"covr"]
    except MediaError:
        return []  # metadata we cannot walk is copied as it is
    return found


def _movie_edits(movie: Movie, kept: list[Track]) -> dict[int, bytes | None]:
    """Box replacements that drop every non-kept track and its fragment defaults."""
    kept_ids = {track.track_id for track in kept}
    replace: dict[int, bytes | None] = {}
    for track in movie.tracks:
        if track.track_id not in kept_ids:
            replace[track.box.offset] = None
        elif track.tref is not None:
            replace[track.tref.offset] = _tref_without(movie, track.tref, kept_ids)
    if movie.mvex is not None:
        for child in children(movie.data, movie.mvex):
            if child.type != b"trex":
                continue
            if _U32.unpack_from(movie.payload(child), 4)[0] not in kept_ids:
                replace[child.offset] = None
    if movie.mvhd is not None:
        replace[movie.mvhd.offset] = _mvhd(movie, kept)
    # Players and ffmpeg present cover art as a video stream (an attached
    # picture); an audio-only rendition must not carry one.
    for item in _cover_art(movie):
        replace[item.offset] = None
    return replace


def _check_within(table: ChunkTable, track: Track, size: int) -> None:
    for offset, length in zip(table.offsets, table.sizes, strict=True):
        if length and offset + length > size:
            raise MalformedMedia(
                f"a chunk of track {track.track_id} at {offset} (+{length}) "
                f"lies past the end of the file ({size} bytes)"
            )


def _new_moov(
    movie: Movie,
    kept: list[Track],
    tables: dict[int, ChunkTable],
    layout: DataLayout,
    base_before_moov: int,
    mdat_header_size: int,
) -> bytes:
    """The new `moov`; chunk offsets point into an mdat right after it."""
    edits = _movie_edits(movie, kept)
    # Tables were laid out in this order, so each track's positions are a slice.
    positions: dict[int, tuple[int, list[int]]] = {}
    first = 0
    for tid, table in tables.items():
        count = len(table.offsets)
        positions[tid] = (table.offsets_box.offset, layout.chunk_positions[first : first + count])
        first += count

    def build(base: int) -> bytes:
        replace = dict(edits)
        for at, relative in positions.values():
            replace[at] = chunk_offsets_box([base + p for p in relative])
        return rebuild(movie.data, movie.box, replace)

    return settle_moov(build, base_before_moov, movie.box.size, mdat_header_size)


def _fragments(
    top_moofs: list[Box], movie: Movie, kept_ids: set[int], size: int, max_box: int
) -> Reading[list[Fragment]]:
    fragments: list[Fragment] = []
    if not top_moofs:
        return fragments
    from vodedge.media.mp4.fragments import parse_fragment, rebuild_fragment

    for moof in top_moofs:
        data = yield from read_box(moof, max_box, "moof")
        view = memoryview(data)
        trafs = parse_fragment(view, moof, movie.trex, size)
        fragment = rebuild_fragment(view, moof, trafs, kept_ids)
        if fragment is not None:
            fragments.append(fragment)
    return fragments


def _mfra(
    mfra_box: Box, fragments: list[Fragment], pieces: list[Piece], limit: int
) -> Reading[bytes]:
    """The output's `mfra`: the source's entries of kept tracks, pointing at new moofs."""
    from vodedge.media.mp4.mfra import build_mfra, parse_mfra

    try:
        tables = parse_mfra((yield from read_box(mfra_box, limit, "mfra")))
    except MediaError:
        return b""  # a broken index is dropped, not fatal: players can do without it
    position = sum(len(p) if isinstance(p, bytes) else p.length for p in pieces)
    moved: dict[int, dict[int, tuple[int, int]]] = {}
    for fragment in reversed(fragments):
        position -= fragment.size
    for fragment in fragments:
        for track_id, number in (fragment.traf_numbers or {}).items():
            moved.setdefault(track_id, {})[fragment.source_offset] = (position, number)
        position += fragment.size
    return build_mfra(tables, moved)


def audio_plan(
    size: int, *, max_moov: int = DEFAULT_MAX_MOOV, track_id: int | None = None
) -> Reading[Plan]:
    """The plan of the audio-only rendition of the ISO BMFF file of `size` bytes: every
    audio track, or only the one whose id is `track_id`."""
    top = yield from scan_top_level(size)
    moov_box = top.movie_box()
    ftyp_box = top.first(b"ftyp")
    ftyp = b"" if ftyp_box is None else (yield from read_box(ftyp_box, MAX_FTYP, "ftyp"))
    moov_data = yield from read_box(moov_box, max_moov, "moov")
    movie = parse_movie(moov_data, moov_box.offset)
    kept = [track for track in movie.tracks if track.is_audio]
    if not kept:
        raise NoAudioTrack("the file has no audio track")
    if track_id is not None:
        kept = [t for t in kept if t.track_id == track_id]
        if not kept:
            raise InvalidTrack(f"the file has no audio track with id {track_id}")
    for track in kept:
        check_described(track)
    kept_ids = {track.track_id for track in kept}

    tables: dict[int, ChunkTable] = {}
    offsets: list[int] = []
    sizes: list[int] = []
    for track in kept:
        table = chunk_table(movie, track)
        if table is None:
            continue
        _check_within(table, track, size)
        tables[track.track_id] = table
        offsets += table.offsets
        sizes += table.sizes
    layout = DataLayout.of(offsets, sizes)
    mdat_header = header_bytes(b"mdat", layout.total) if layout.total else b""
    moov = _new_moov(movie, kept, tables, layout, len(ftyp), len(mdat_header))

    fragments = yield from _fragments(top.all(b"moof"), movie, kept_ids, size, max_moov)

    spans = list(map(Span, layout.starts, layout.lengths))
    if not fragments:
        return Plan.head_and_spans(ftyp + moov + mdat_header, spans)
    pieces: list[Piece] = [ftyp, moov, mdat_header, *spans]
    for fragment in fragments:
        pieces += [fragment.moof, fragment.mdat_header]
        pieces += [Span(s, n) for s, n in fragment.spans]
    mfra_box = top.first(b"mfra")
    if mfra_box is not None and fragments:
        pieces.append((yield from _mfra(mfra_box, fragments, pieces, max_moov)))
    try:
        return Plan(pieces)
    except ValueError as exc:
        raise UnsupportedMedia(
            "the audio data is not laid out in file order across fragments"
        ) from exc
