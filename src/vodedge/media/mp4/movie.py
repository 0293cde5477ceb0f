"""The `moov` box: its tracks, their kinds, codecs and timing, and rebuilding it."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from struct import Struct
from typing import NamedTuple

from vodedge.media.errors import MalformedMedia
from vodedge.media.mp4.boxes import (
    CONTAINERS,
    Box,
    children,
    children_offset,
    find,
    header_bytes,
    parse_header,
)
from vodedge.media.mp4.tables import (
    SampleSizes,
    check_table_count,
    chunk_sizes,
    parse_chunk_offsets,
    parse_stsc,
    parse_stsz,
    parse_stz2,
)

_U16 = Struct(">H")
_U32 = Struct(">I")
_U64 = Struct(">Q")

HANDLER_KINDS = {
    b"soun": "audio",
    b"vide": "video",
    b"hint": "hint",
    b"text": "text",
    b"sbtl": "subtitle",
    b"subt": "subtitle",
    b"clcp": "caption",
    b"tmcd": "timecode",
    b"meta": "metadata",
}


class TrackDefaults(NamedTuple):
    """A `trex` box: the defaults of a track's fragments."""

    description_index: int
    duration: int
    size: int
    flags: int


class Track(NamedTuple):
    """One `trak` of the movie; box offsets are relative to the `moov` buffer."""

    box: Box
    track_id: int
    handler: bytes
    tkhd: Box
    tkhd_duration: int
    timescale: int
    media_duration: int
    language: str
    codec: str
    stbl: Box | None
    tref: Box | None

    @property
    def kind(self) -> str:
        """What the track carries: audio, video, text, ..."""
        return HANDLER_KINDS.get(self.handler, self.handler.decode("latin-1"))

    @property
    def is_audio(self) -> bool:
        """True for sound tracks, the ones audio extraction keeps."""
        return self.handler == b"soun"


def check_described(track: Track) -> None:
    """Refuse a sample table without a sample description: its samples are undecodable."""
    if track.stbl is not None and not track.codec:
        raise MalformedMedia(
            f"{track.kind} track {track.track_id} has no sample description (stsd): "
            f"no player could decode it"
        )


class Movie(NamedTuple):
    """A parsed `moov` box held in memory; `offset` is where it sits in the file."""

    data: memoryview
    offset: int
    box: Box
    mvhd: Box | None
    timescale: int
    duration: int
    tracks: list[Track]
    trex: dict[int, TrackDefaults]
    mvex: Box | None

    def track(self, track_id: int) -> Track | None:
        """The track with this id, or None."""
        for track in self.tracks:
            if track.track_id == track_id:
                return track
        return None

    def payload(self, box: Box) -> memoryview:
        """The bytes of `box` after its header."""
        return self.data[box.payload_offset : box.end]

    def raw(self, box: Box) -> memoryview:
        """The bytes of the whole `box`."""
        return self.data[box.offset : box.end]


def _full_box_version(payload: memoryview, name: str, minimum: int) -> int:
    if len(payload) < minimum:
        raise MalformedMedia(f"{name} box is too short")
    return payload[0]


def _read_time_fields(payload: memoryview, name: str) -> tuple[int, int]:
    """The (timescale, duration) of an `mvhd` or `mdhd` payload."""
    version = _full_box_version(payload, name, 24)
    if version == 1:
        if len(payload) < 36:
            raise MalformedMedia(f"{name} box is too short")
        return _U32.unpack_from(payload, 20)[0], _U64.unpack_from(payload, 24)[0]
    return _U32.unpack_from(payload, 12)[0], _U32.unpack_from(payload, 16)[0]


def _language(payload: memoryview) -> str:
    """The ISO-639-2 code packed in an `mdhd` payload, or 'und'."""
    version = payload[0]
    pos = 32 if version == 1 else 20
    if len(payload) < pos + 2:
        return "und"
    packed = _U16.unpack_from(payload, pos)[0]
    if packed < 0x400:  # QuickTime's Macintosh language codes, not ISO-639
        return "und"
    letters = [((packed >> shift) & 0x1F) + 0x60 for shift in (10, 5, 0)]
    if not all(0x61 <= c <= 0x7A for c in letters):
        return "und"
    return bytes(letters).decode("ascii")


def _single(data: memoryview, parent: Box, kind: bytes, track_id: int) -> Box | None:
    """The one child of this type; two would leave a second, stale sample table in outputs."""
    found = [child for child in children(data, parent) if child.type == kind]
    if len(found) > 1:
        raise MalformedMedia(f"track {track_id} has {len(found)} {kind.decode('latin-1')} boxes")
    return found[0] if found else None


def _parse_track(data: memoryview, trak: Box) -> Track:
    kids = {child.type: child for child in reversed(children(data, trak))}
    tkhd = kids.get(b"tkhd")
    mdia = kids.get(b"mdia")
    if tkhd is None or mdia is None:
        raise MalformedMedia(f"trak at offset {trak.offset} lacks tkhd or mdia")
    payload = data[tkhd.payload_offset : tkhd.end]
    version = _full_box_version(payload, "tkhd", 24)
    if version == 1:
        if len(payload) < 36:
            raise MalformedMedia("tkhd box is too short")
        track_id = _U32.unpack_from(payload, 20)[0]
        tkhd_duration = _U64.unpack_from(payload, 28)[0]
    else:
        track_id = _U32.unpack_from(payload, 12)[0]
        tkhd_duration = _U32.unpack_from(payload, 20)[0]
    media = {child.type: child for child in reversed(children(data, mdia))}
    hdlr = media.get(b"hdlr")
    mdhd = media.get(b"mdhd")
    if hdlr is None or mdhd is None:
        raise MalformedMedia(f"track {track_id} lacks hdlr or mdhd")
    hdlr_payload = data[hdlr.payload_offset : hdlr.end]
    if len(hdlr_payload) < 12:
        raise MalformedMedia(f"hdlr of track {track_id} is too short")
    handler = bytes(hdlr_payload[8:12])
    mdhd_payload = data[mdhd.payload_offset : mdhd.end]
    timescale, media_duration = _read_time_fields(mdhd_payload, "mdhd")
    minf = _single(data, mdia, b"minf", track_id)
    stbl = _single(data, minf, b"stbl", track_id) if minf is not None else None
    codec = ""
    if stbl is not None:
        stsd = find(data, stbl, b"stsd")
        # An stsd counting no entries describes nothing, whatever bytes follow.
        if (
            stsd is not None
            and stsd.size >= 24
            and any(data[stsd.payload_offset + 4 : stsd.payload_offset + 8])
        ):
            codec = bytes(data[stsd.payload_offset + 12 : stsd.payload_offset + 16]).decode(
                "latin-1"
            )
    return Track(
        box=trak,
        track_id=track_id,
        handler=handler,
        tkhd=tkhd,
        tkhd_duration=tkhd_duration,
        timescale=timescale,
        media_duration=media_duration,
        language=_language(mdhd_payload),
        codec=codec,
        stbl=stbl,
        tref=kids.get(b"tref"),
    )


def parse_movie(data: bytes | memoryview, offset: int, *, need_mvhd: bool = True) -> Movie:
    """Parse a whole `moov` box (header included) that sits at `offset` in the file.

    `need_mvhd=False` (for `inspect`) reads a movie without one: timescale 0.
    """
    view = memoryview(data)
    box = parse_header(view, 0, len(view))
    mvhd: Box | None = None
    mvex: Box | None = None
    tracks: list[Track] = []
    for child in children(view, box):
        if child.type == b"mvhd" and mvhd is None:
            mvhd = child
        elif child.type == b"trak":
            tracks.append(_parse_track(view, child))
        elif child.type == b"mvex" and mvex is None:
            mvex = child
    if mvhd is None:
        if need_mvhd:
            raise MalformedMedia("moov has no mvhd")
        timescale, duration = 0, 0
    else:
        timescale, duration = _read_time_fields(view[mvhd.payload_offset : mvhd.end], "mvhd")
    ids = [track.track_id for track in tracks]
    if len(set(ids)) != len(ids):
        raise MalformedMedia("two tracks share one track_ID")
    trex: dict[int, TrackDefaults] = {}
    if mvex is not None:
        for child in children(view, mvex):
            if child.type != b"trex":
                continue
            payload = view[child.payload_offset : child.end]
            if len(payload) < 24:
                raise MalformedMedia("trex box is too short")
            tid, sdi, dur, size, flags = Struct(">5I").unpack_from(payload, 4)
            trex[tid] = TrackDefaults(sdi, dur, size, flags)
    return Movie(view, offset, box, mvhd, timescale, duration, tracks, trex, mvex)


class ChunkTable(NamedTuple):
    """Where a track's chunks lie in the source and how many bytes each holds."""

    offsets_box: Box
    offsets: list[int]
    sizes: list[int]
    sample_count: int


def chunk_table(movie: Movie, track: Track) -> ChunkTable | None:
    """The chunk offsets and sizes of `track`, None when it has no sample table."""
    if track.stbl is None:
        return None
    kids = {child.type: child for child in reversed(children(movie.data, track.stbl))}
    for kind in (b"stts", b"ctts", b"stss", b"stps"):
        if kind in kids:
            check_table_count(kind, movie.payload(kids[kind]))
    edts = next((b for b in children(movie.data, track.box) if b.type == b"edts"), None)
    if edts is not None:
        for elst in (b for b in children(movie.data, edts) if b.type == b"elst"):
            check_table_count(b"elst", movie.payload(elst))
    offsets_box = kids.get(b"stco") or kids.get(b"co64")
    if offsets_box is None:
        raise MalformedMedia(f"track {track.track_id} has no stco or co64")
    offsets = parse_chunk_offsets(offsets_box.type, movie.payload(offsets_box))
    if b"stsz" in kids:
        sizes: SampleSizes = parse_stsz(movie.payload(kids[b"stsz"]))
    elif b"stz2" in kids:
        sizes = parse_stz2(movie.payload(kids[b"stz2"]))
    else:
        raise MalformedMedia(f"track {track.track_id} has no stsz or stz2")
    stsc_box = kids.get(b"stsc")
    stsc = parse_stsc(movie.payload(stsc_box)) if stsc_box is not None else []
    return ChunkTable(
        offsets_box, offsets.tolist(), chunk_sizes(sizes, stsc, len(offsets)), sizes.count
    )


Replacement = bytes | list[bytes | memoryview] | None


def rebuild(data: memoryview, box: Box, replace: Mapping[int, Replacement]) -> bytes:
    """`box` re-serialised with the boxes at the given offsets replaced (None drops;
    a list is a box given in pieces).

    Containers on the path to a replaced box get new headers; every other box
    is copied byte for byte.
    """
    return b"".join(rebuild_pieces(data, box, replace)[0])


def rebuild_pieces(
    data: memoryview,
    box: Box,
    replace: Mapping[int, Replacement],
    kids: Callable[[Box], list[Box]] | None = None,
) -> tuple[list[bytes | memoryview], int]:
    """What `rebuild` joins, and its length: views of the source and new bytes.
    `kids(box)` gives a container's children (a caller rebuilding one moov often
    keeps them)."""
    parts: list[bytes | memoryview] = []
    walk = kids or (lambda parent: children(data, parent))
    size = _rebuild(data, box, replace, sorted(replace), parts, walk)
    return parts, size


def _rebuild(
    data: memoryview,
    box: Box,
    replace: Mapping[int, Replacement],
    offsets: list[int],
    out: list[bytes | memoryview],
    kids: Callable[[Box], list[Box]],
) -> int:
    """Append the pieces of `box` rebuilt to `out` (joined once, so a large table is
    copied once, not once per level of nesting); return their length."""
    if box.offset in replace:
        new = replace[box.offset] or b""
        if isinstance(new, list):
            out.extend(new)
            return sum(map(len, new))
        out.append(new)
        return len(new)
    # Only containers holding a replaced box are re-serialised; a bisection over
    # the sorted offsets keeps that linear in the number of boxes.
    first = bisect_right(offsets, box.offset)
    touched = first < len(offsets) and offsets[first] < box.end
    if not touched or box.type not in CONTAINERS:
        out.append(data[box.offset : box.end])
        return box.size
    at = len(out)
    out.append(b"")  # the header, once the payload's size is known
    start = children_offset(data, box)
    out.append(data[box.payload_offset : start])
    size = start - box.payload_offset
    for child in kids(box):
        size += _rebuild(data, child, replace, offsets, out, kids)
    out[at] = header_bytes(box.type, size)
    return len(out[at]) + size


def set_duration_field(payload: bytes, name: str, duration: int, *, tkhd: bool = False) -> bytes:
    """An `mvhd`/`tkhd`/`mdhd` payload with its duration replaced."""
    version = payload[0]
    if tkhd:
        pos, wide = (28, True) if version == 1 else (20, False)
    else:
        pos, wide = (24, True) if version == 1 else (16, False)
    if len(payload) < pos + (8 if wide else 4):
        raise MalformedMedia(f"{name} box is too short")
    if not wide and duration > 0xFFFFFFFF:
        raise MalformedMedia(f"{name} duration {duration} does not fit version 0")
    field_bytes = _U64.pack(duration) if wide else _U32.pack(duration)
    return payload[:pos] + field_bytes + payload[pos + len(field_bytes) :]
