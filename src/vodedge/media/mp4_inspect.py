"""What an ISO BMFF file holds: brand, `moov` placement, tracks, and the box tree."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vodedge.media.boxes import CONTAINERS, Box, children, printable_type
from vodedge.media.errors import MediaError
from vodedge.media.mp4_audio import audio_plan
from vodedge.media.mp4_file import DEFAULT_MAX_MOOV, MAX_FTYP, read_box, scan_top_level
from vodedge.media.mp4_fragments import parse_fragment
from vodedge.media.mp4_movie import chunk_table, parse_movie
from vodedge.media.reading import Reading


@dataclass(slots=True)
class TrackSummary:
    """One track as `vodedge inspect` shows it."""

    id: int
    kind: str
    codec: str
    language: str
    duration: float | None
    samples: int
    bytes: int


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


def mp4_summary(size: int, *, max_moov: int = DEFAULT_MAX_MOOV) -> Reading[Mp4Summary]:
    """Summarise the ISO BMFF file of `size` bytes."""
    top = yield from scan_top_level(size)
    moov_box = top.movie_box()
    brand, compatible = "", []
    ftyp_box = top.first(b"ftyp")
    if ftyp_box is not None:
        ftyp = yield from read_box(ftyp_box, MAX_FTYP, "ftyp")
        payload = ftyp[ftyp_box.header_size :]
        brand = printable_type(payload[:4])
        compatible = [printable_type(payload[i : i + 4]) for i in range(8, len(payload) - 3, 4)]
    movie = parse_movie((yield from read_box(moov_box, max_moov, "moov")), moov_box.offset)
    counts: dict[int, list[int]] = {track.track_id: [0, 0] for track in movie.tracks}
    for track in movie.tracks:
        table = chunk_table(movie, track)
        if table is not None:
            counts[track.track_id] = [table.sample_count, sum(table.sizes)]
    moofs = top.all(b"moof")
    for moof in moofs:
        data = memoryview((yield from read_box(moof, max_moov, "moof")))
        for traf in parse_fragment(data, moof, movie.trex, size):
            tally = counts.setdefault(traf.track_id, [0, 0])
            tally[0] += sum(run.sample_count for run in traf.runs)
            tally[1] += sum(run.data_size for run in traf.runs)
    tracks = [
        TrackSummary(
            id=track.track_id,
            kind=track.kind,
            codec=track.codec,
            language=track.language,
            duration=track.media_duration / track.timescale if track.timescale else None,
            samples=counts[track.track_id][0],
            bytes=counts[track.track_id][1],
        )
        for track in movie.tracks
    ]
    audio_bytes: int | None = None
    audio_error: str | None = None
    try:
        audio_bytes = (yield from audio_plan(size, max_moov=max_moov)).size
    except MediaError as exc:
        audio_error = f"{exc.code}: {exc}"
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
