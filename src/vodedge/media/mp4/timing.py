"""How long a track plays: edit lists applied, movie fragments counted (as ffprobe does)."""

from __future__ import annotations

from struct import Struct

from vodedge.media.errors import MalformedMedia
from vodedge.media.mp4.boxes import Box, children
from vodedge.media.mp4.movie import Movie, Track, TrackDefaults
from vodedge.media.mp4.tables import parse_runs

_U32 = Struct(">I")
_U64 = Struct(">Q")
_ELST0 = Struct(">IiI")
_ELST1 = Struct(">QqI")
# A duration of all ones means "unknown" (Smooth Streaming and live writers).
_UNKNOWN = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)

_TFHD_DEFAULT_DURATION = 0x08
_TRUN_DURATION = 0x100


def edit_list(movie: Movie, track: Track) -> list[tuple[int, int]]:
    """The track's `elst` entries as (segment duration in movie ticks, media time)."""
    edts = next((b for b in children(movie.data, track.box) if b.type == b"edts"), None)
    if edts is None:
        return []
    elst = next((b for b in children(movie.data, edts) if b.type == b"elst"), None)
    if elst is None:
        return []
    payload = movie.payload(elst)
    if len(payload) < 8:
        raise MalformedMedia("elst box is too short")
    entry = _ELST1 if payload[0] == 1 else _ELST0
    count = _U32.unpack_from(payload, 4)[0]
    if count > (len(payload) - 8) // entry.size:
        raise MalformedMedia(f"elst claims {count} entries, more than its box holds")
    edits: list[tuple[int, int]] = []
    for i in range(count):
        duration, media_time, _rate = entry.unpack_from(payload, 8 + i * entry.size)
        edits.append((duration, media_time))
    return edits


def table_duration(movie: Movie, track: Track) -> tuple[int, int]:
    """(ticks, samples) that the track's `stts` in the `moov` holds."""
    if track.stbl is None:
        return 0, 0
    stts = next((b for b in children(movie.data, track.stbl) if b.type == b"stts"), None)
    if stts is None:
        return 0, 0
    runs = parse_runs(movie.payload(stts), "stts")
    return sum(count * delta for count, delta in runs), sum(count for count, _ in runs)


def _rescale(value: int, to_scale: int, from_scale: int) -> int:
    """`value * to_scale / from_scale` rounded half up, like FFmpeg's `av_rescale`."""
    return (value * to_scale + from_scale // 2) // from_scale


def presented_ticks(movie: Movie, track: Track) -> int:
    """The track's duration in media ticks from its `moov` alone.

    The media duration (`mdhd`, else the `stts` total), cut to what the edit
    list presents: an AAC track's priming, skipped by its edit, is not heard.
    """
    total, samples = table_duration(movie, track)
    media = track.media_duration if track.media_duration not in _UNKNOWN else 0
    ticks = media or total
    edits = edit_list(movie, track)
    if samples and edits and movie.timescale:
        shown = sum(_rescale(duration, track.timescale, movie.timescale) for duration, _ in edits)
        ticks = min(ticks, shown)
    return ticks


def fragment_ticks(
    data: memoryview, moof: Box, trex: dict[int, TrackDefaults], ends: dict[int, int]
) -> None:
    """Advance `ends` (track_ID -> media ticks reached) by the runs of one `moof`.

    A `tfdt` says where a fragment starts; without one it follows the last.
    """
    base = moof.offset
    for traf in (c for c in children(data, moof, base=base) if c.type == b"traf"):
        kids = children(data, traf, base=base)
        tfhd = next((k for k in kids if k.type == b"tfhd"), None)
        if tfhd is None:
            raise MalformedMedia(f"traf at offset {traf.offset} has no tfhd")
        payload = data[tfhd.payload_offset - base : tfhd.end - base]
        if len(payload) < 8:
            raise MalformedMedia("tfhd box is too short")
        flags = int.from_bytes(payload[1:4], "big")
        track_id = _U32.unpack_from(payload, 4)[0]
        defaults = trex.get(track_id)
        default = defaults.duration if defaults is not None else 0
        if flags & _TFHD_DEFAULT_DURATION:
            pos = 8 + 8 * bool(flags & 0x01) + 4 * bool(flags & 0x02)
            if len(payload) < pos + 4:
                raise MalformedMedia("tfhd box is shorter than its flags say")
            default = _U32.unpack_from(payload, pos)[0]
        at = ends.get(track_id, 0)
        for kid in kids:
            body = data[kid.payload_offset - base : kid.end - base]
            if kid.type == b"tfdt":
                if len(body) < 8 or (body[0] == 1 and len(body) < 12):
                    raise MalformedMedia("tfdt box is too short")
                at = _U64.unpack_from(body, 4)[0] if body[0] == 1 else _U32.unpack_from(body, 4)[0]
            elif kid.type == b"trun":
                at += _trun_ticks(body, default)
        ends[track_id] = at


def _trun_ticks(payload: memoryview, default: int) -> int:
    """The summed sample durations of a `trun` payload."""
    if len(payload) < 8:
        raise MalformedMedia("trun box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    count: int = _U32.unpack_from(payload, 4)[0]
    if not flags & _TRUN_DURATION:
        return count * default
    header = 8 + 4 * bool(flags & 0x01) + 4 * bool(flags & 0x04)
    words = sum(bool(flags & f) for f in (0x100, 0x200, 0x400, 0x800))
    if count > (len(payload) - header) // (4 * words):
        raise MalformedMedia(f"trun claims {count} samples, more than its box holds")
    values = Struct(f">{count * words}I").unpack_from(payload, header)
    return sum(int(v) for v in values[0::words])
