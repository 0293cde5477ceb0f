"""MPEG transport streams (TS, M2TS): trial playback on packet boundaries."""

from __future__ import annotations

from vodedge.media.ts.packets import Layout, detect_layout
from vodedge.media.ts.preview import ts_preview_plan

__all__ = ["Layout", "detect_layout", "ts_preview_plan"]
