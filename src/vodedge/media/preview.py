"""Trial playback (`ali_video_preview`) bounds shared by every container."""

from __future__ import annotations

import math

from vodedge.media.errors import InvalidSeek


def check_preview(seconds: float) -> None:
    """Refuse a preview length that is not a finite number of seconds above 0."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidSeek(f"a preview must last a finite number of seconds > 0, not {seconds}")
