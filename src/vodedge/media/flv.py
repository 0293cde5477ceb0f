"""FLV: audio extraction and seeking, as incremental filters and as plans."""

from __future__ import annotations

from vodedge.media.flv_filter import FlvAudioFilter, FlvClipFilter, FlvFilter
from vodedge.media.flv_plan import build_plan, flv_audio_plan, flv_clip_plan
from vodedge.media.flv_seek import FlvSeek, parse_seek
from vodedge.media.flv_summary import FlvSummary, TagTally, flv_summary

__all__ = [
    "FlvAudioFilter",
    "FlvClipFilter",
    "FlvFilter",
    "FlvSeek",
    "FlvSummary",
    "TagTally",
    "build_plan",
    "flv_audio_plan",
    "flv_clip_plan",
    "flv_summary",
    "looks_like_flv",
    "parse_seek",
]


def looks_like_flv(prefix: bytes | memoryview) -> bool:
    """Whether a source's first bytes are an FLV signature (for dispatching by content)."""
    return bytes(prefix[:3]) == b"FLV"
