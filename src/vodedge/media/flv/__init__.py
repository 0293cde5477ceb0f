"""FLV: audio extraction and seeking, as incremental filters and as plans."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vodedge.media.flv.filters import FlvAudioFilter, FlvClipFilter, FlvFilter
    from vodedge.media.flv.plan import build_plan, flv_audio_plan, flv_clip_plan
    from vodedge.media.flv.seek import FlvSeek, parse_seek
    from vodedge.media.flv.summary import FlvSummary, TagTally, flv_summary
    from vodedge.media.sniff import looks_like_flv

# Each name's module, loaded on first use: `vodedge extract` on an FLV needs the plan,
# not the filters or the summary (it is timed against ffmpeg as a whole process).
_WHERE = {
    "FlvAudioFilter": "vodedge.media.flv.filters",
    "FlvClipFilter": "vodedge.media.flv.filters",
    "FlvFilter": "vodedge.media.flv.filters",
    "FlvSeek": "vodedge.media.flv.seek",
    "FlvSummary": "vodedge.media.flv.summary",
    "TagTally": "vodedge.media.flv.summary",
    "build_plan": "vodedge.media.flv.plan",
    "flv_audio_plan": "vodedge.media.flv.plan",
    "flv_clip_plan": "vodedge.media.flv.plan",
    "flv_summary": "vodedge.media.flv.summary",
    "looks_like_flv": "vodedge.media.sniff",
    "parse_seek": "vodedge.media.flv.seek",
}

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


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
