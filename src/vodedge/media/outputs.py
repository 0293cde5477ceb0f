"""The one entry point from a wanted output (container, functions) to its plan's parser."""

from __future__ import annotations

from typing import NamedTuple

from vodedge.media.errors import InvalidSeek
from vodedge.media.mp4.file import DEFAULT_MAX_MOOV
from vodedge.media.plan import Plan
from vodedge.media.reading import Reading


class Wanted(NamedTuple):
    """What a caller asks of a source: audio extraction and/or a clip, or a preview."""

    # A NamedTuple, not a dataclass: `vodedge extract` would import dataclasses (and
    # inspect, ~7 ms) for this class alone.

    container: str  # "mp4", "flv", or "mp3" / "ts" (previews of the first `end` seconds)
    audio_only: bool = False
    start: float | None = None
    end: float | None = None
    by_time: bool = True  # FLV only: seconds (True) or byte offsets (False)
    track: int | None = None  # MP4 audio only: the one audio track kept


def plan_reading(wanted: Wanted, size: int, *, max_moov: int = DEFAULT_MAX_MOOV) -> Reading[Plan]:
    """The parser of the plan of `wanted` over a source of `size` bytes."""
    # Each container's parser is imported on use: a worker planning MP4 never loads FLV's.
    if wanted.container in ("mp3", "ts"):
        if wanted.end is None:
            raise InvalidSeek("a preview needs an end")
        if wanted.container == "mp3":
            from vodedge.media.mp3 import mp3_preview_plan

            return mp3_preview_plan(size, wanted.end)
        from vodedge.media.ts import ts_preview_plan

        return ts_preview_plan(size, wanted.end)
    if wanted.container == "flv":
        from vodedge.media.flv.plan import flv_clip_plan

        return flv_clip_plan(
            size,
            flv_bound(wanted.start, wanted.by_time),
            flv_bound(wanted.end, wanted.by_time),
            by_time=wanted.by_time,
            audio_only=wanted.audio_only,
        )
    if wanted.start is None and wanted.end is None:
        from vodedge.media.mp4.audio import audio_plan

        return audio_plan(size, max_moov=max_moov, track_id=wanted.track)
    from vodedge.media.mp4.seek import clip_plan

    return clip_plan(
        size,
        start=wanted.start,
        end=wanted.end,
        audio_only=wanted.audio_only,
        max_moov=max_moov,
    )


def flv_bound(value: float | None, by_time: bool) -> float | int | None:
    """Byte offsets are whole numbers; seconds stay as given."""
    return value if value is None or by_time else int(value)
