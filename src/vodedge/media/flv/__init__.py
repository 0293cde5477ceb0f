"""FLV: audio extraction and seeking, as incremental filters and as plans."""

from __future__ import annotations

from vodedge.media.flv.filters import FlvAudioFilter, FlvClipFilter, FlvFilter
from vodedge.media.flv.plan import build_plan, flv_audio_plan, flv_clip_plan
from vodedge.media.flv.seek import FlvSeek, parse_seek
from vodedge.media.flv.summary import FlvSummary, TagTally, flv_summary
from vodedge.media.sniff import looks_like_flv

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
