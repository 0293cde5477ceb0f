"""MPEG audio (MP3, MP2, MP1): trial playback on frame boundaries."""

from __future__ import annotations

from vodedge.media.mp3.header import FrameHeader, parse_header
from vodedge.media.mp3.preview import mp3_preview_plan

__all__ = ["FrameHeader", "mp3_preview_plan", "parse_header"]
