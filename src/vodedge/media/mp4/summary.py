"""What an ISO BMFF file holds: brand, `moov` placement, tracks, and the box tree."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vodedge.media.errors import MalformedMedia, MediaError, NoMovieBox
from vodedge.media.mp4.audio import audio_plan
from vodedge.media.mp4.boxes import CONTAINERS, Box, children, parse_header, printable_type
from vodedge.media.mp4.file import (
    DEFAULT_MAX_MOOV,
    MAX_FTYP,
    TopLevel,
    read_box,
    scan_top_level,
)
from vodedge.media.mp4.fragments import parse_fragment
from vodedge.media.mp4.movie import Movie, Track, chunk_table, parse_movie
from vodedge.media.mp4.timing import fragment_ticks, presented_ticks, table_duration
from vodedge.media.reading import Reading, ReadRequest


@dataclass(slots=True)
class TrackSummary:
    """One track as `vodedge inspect` shows it (None where the file does not say)."""

    id: int
    kind: str
    codec: str
    language: str
    duration: float | None
    samples: int | None
    bytes: int | None


@dataclass(slots=True)
class Mp4Summary:
    """A whole file as `vodedge inspect` shows it."""

    format: str
    size: int
    brand: str
    compatible_brands: list[str]
    moov_offset: int
    moov_size: int
    moov_position: str
    fragments: int
    tracks: list[TrackSummary]
    audio_only_bytes: int | None
    audio_only_error: str | None
    top_level: list[str] = field(default_factory=list)
    # What is odd about the file, where the summary stops short (`code: reason`).
    notes: list[str] = field(default_factory=list)

    @property
    def saved_share(self) -> float | None:
        """The share of the file an audio-only response does not send."""
        if self.audio_only_bytes is None or not self.size:
            return None
        return 1 - self.audio_only_bytes / self.size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        out = asdict(self)
        out["saved_share"] = self.saved_share
        return out


def _problem(exc: MediaError) -> str:
    return f"{exc.code}: {exc}"


def _track_summary(movie: Movie, track: Track, notes: list[str]) -> TrackSummary:
    samples: int | None = None
    size: int | None = None
    duration: float | None = None
    try:
        table = chunk_table(movie, track)
        samples, size = (table.sample_count, sum(table.sizes)) if table is not None else (0, 0)
    except MediaError as exc:
        notes.append(f"track {track.track_id}: {_problem(exc)}")
    try:
        if track.timescale:
            duration = presented_ticks(movie, track) / track.timescale
    except MediaError as exc:
        notes.append(f"track {track.track_id}: {_problem(exc)}")
    return TrackSummary(
        track.track_id, track.kind, track.codec, track.language, duration, samples, size
    )


def _add_fragments(
    movie: Movie, tracks: list[TrackSummary], moofs: list[tuple[Box, memoryview]], size: int
) -> None:
    """Count the samples, bytes and time that movie fragments add to each track."""
    ends = {t.track_id: table_duration(movie, t)[0] for t in movie.tracks}
    seen: set[int] = set()
    by_id = {t.id: t for t in tracks}
    for moof, data in moofs:
        for traf in parse_fragment(data, moof, movie.trex, size):
            seen.add(traf.track_id)
            summary = by_id.get(traf.track_id)
            if summary is not None:
                summary.samples = (summary.samples or 0) + sum(r.sample_count for r in traf.runs)
                summary.bytes = (summary.bytes or 0) + sum(r.data_size for r in traf.runs)
        fragment_ticks(data, moof, movie.trex, ends)
    for track in movie.tracks:
        summary = by_id[track.track_id]
        if track.track_id in seen and track.timescale:
            # What the fragments reach wins over a moov that was written first.
            ticks = max(ends[track.track_id], round((summary.duration or 0) * track.timescale))
            summary.duration = ticks / track.timescale


def _boxes_until_broken(size: int) -> Reading[TopLevel]:
    """The top-level boxes up to and including the first that is cut off or unreadable."""
    boxes: list[Box] = []
    pos = 0
    while size - pos >= 8:
        head = yield ReadRequest(pos, 16)
        try:
            box = parse_header(head, 0, 1 << 64, base=pos)
        except MediaError:
            break
        boxes.append(box)
        if box.size == 0 or box.end > size:
            break
        pos = box.end
    return TopLevel(size, boxes)


def mp4_summary(size: int, *, max_moov: int = DEFAULT_MAX_MOOV) -> Reading[Mp4Summary]:
    """Summarise the ISO BMFF file of `size` bytes, as far as it can be read."""
    notes: list[str] = []
    broken: MalformedMedia | None = None
    try:
        top = yield from scan_top_level(size)
    except MalformedMedia as exc:  # not NotIsoBmff: the file opened as one
        broken = exc
        notes.append(_problem(exc))
        top = yield from _boxes_until_broken(size)
    movies = top.all(b"moov")
    if not movies:
        raise broken or NoMovieBox("the file has no moov box")
    moov_box = movies[0]
    if len(movies) > 1:
        notes.append(
            f"malformed_media: the file has {len(movies)} moov boxes; the first is summarised"
        )
    brand, compatible = "", []
    ftyp_box = top.first(b"ftyp")
    if ftyp_box is not None:
        ftyp = yield from read_box(ftyp_box, MAX_FTYP, "ftyp")
        payload = ftyp[ftyp_box.header_size :]
        brand = printable_type(payload[:4])
        compatible = [printable_type(payload[i : i + 4]) for i in range(8, len(payload) - 3, 4)]
    moofs = top.all(b"moof")
    tracks: list[TrackSummary] = []
    try:
        data = yield from read_box(moov_box, max_moov, "moov")
        movie = parse_movie(data, moov_box.offset, need_mvhd=False)
    except MediaError as exc:
        notes.append(f"moov: {_problem(exc)}")
    else:
        if movie.mvhd is None:
            notes.append("malformed_media: moov has no mvhd (no movie timescale: edits ignored)")
        tracks = [_track_summary(movie, track, notes) for track in movie.tracks]
        try:
            fragments = []
            for moof in moofs:
                data = yield from read_box(moof, max_moov, "moof")
                fragments.append((moof, memoryview(data)))
            _add_fragments(movie, tracks, fragments, size)
        except MediaError as exc:
            notes.append(f"fragments: {_problem(exc)}")
    audio_bytes: int | None = None
    audio_error: str | None = None
    try:
        audio_bytes = (yield from audio_plan(size, max_moov=max_moov)).size
    except MediaError as exc:
        audio_error = _problem(exc)
    data_before = any(box.type == b"mdat" and box.offset < moov_box.offset for box in top.boxes)
    return Mp4Summary(
        format="mp4",
        size=size,
        brand=brand,
        compatible_brands=compatible,
        moov_offset=moov_box.offset,
        moov_size=moov_box.size,
        moov_position="tail" if data_before else "head",
        fragments=len(moofs),
        tracks=tracks,
        audio_only_bytes=audio_bytes,
        audio_only_error=audio_error,
        top_level=[printable_type(box.type) for box in top.boxes],
        notes=notes,
    )


@dataclass(slots=True)
class BoxNode:
    """One box of the tree that `vodedge inspect --boxes` prints."""

    type: str
    offset: int
    size: int
    header_size: int
    children: list[BoxNode] = field(default_factory=list)


def _subtree(data: memoryview, box: Box, base: int, depth: int) -> BoxNode:
    node = BoxNode(printable_type(box.type), box.offset, box.size, box.header_size)
    if box.type in CONTAINERS and depth < 32:
        try:
            node.children = [
                _subtree(data, child, base, depth + 1) for child in children(data, box, base=base)
            ]
        except MediaError:
            node.children = []  # an opaque payload that only looks like a container
    return node


def box_tree(size: int, *, max_box: int = DEFAULT_MAX_MOOV) -> Reading[list[BoxNode]]:
    """The box tree of the file: top-level boxes, descending into moov and moof."""
    top = yield from scan_top_level(size)
    nodes: list[BoxNode] = []
    for box in top.boxes:
        if box.type in (b"moov", b"moof", b"meta", b"udta") and box.size <= max_box:
            data = memoryview((yield from read_box(box, max_box, printable_type(box.type))))
            nodes.append(_subtree(data, box, box.offset, 0))
        else:
            nodes.append(BoxNode(printable_type(box.type), box.offset, box.size, box.header_size))
    return nodes
