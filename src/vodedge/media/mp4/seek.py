"""MP4 clipping (the `video_seek` function): the plan of a file cut to `[start, end)`."""

from __future__ import annotations

from vodedge.media.mp4.file import DEFAULT_MAX_MOOV
from vodedge.media.mp4.index import read_index
from vodedge.media.plan import Plan
from vodedge.media.reading import Reading
from vodedge.media.seeking import check_seek


def clip_plan(
    size: int,
    *,
    start: float | None,
    end: float | None,
    audio_only: bool = False,
    max_moov: int = DEFAULT_MAX_MOOV,
) -> Reading[Plan]:
    """The plan of the ISO BMFF file of `size` bytes cut to `[start, end)` seconds.

    The full clip starts at the video sync sample at or before `start`, every
    other track at its sample holding that instant; an audio-only clip starts
    at the audio sample holding `start`. Timestamps of the clip start at zero.
    With many clips of one file, keep its `Mp4Index` (`read_index`) and call
    `clip` on it instead: this reads and indexes the `moov` every time.
    """
    check_seek(start, end)
    index = yield from read_index(size, max_moov=max_moov)
    return index.clip(start, end, audio_only=audio_only)
