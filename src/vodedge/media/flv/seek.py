"""FLV seek requests: validating `start`/`end`, and resolving them to tags.

`start`/`end` are byte offsets by default, seconds with `by_time`. A byte
offset that does not point at a tag resynchronises on the next tag: the first
tag that starts at or after the offset, found by following the tag chain
from the file's start (never by guessing at byte patterns, which payloads
can imitate). A clip holds the tags from the start tag up to, not including,
the first tag at or past `end`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from vodedge.media.errors import InvalidSeek, NoAudioTrack
from vodedge.media.flv.metadata import decode_metadata, source_keyframes
from vodedge.media.flv.scan import TagIndex
from vodedge.media.flv.tags import AUDIO, FRAME, TAG_HEADER_SIZE, VIDEO, is_video_keyframe

SeekValue = str | int | float | None


@dataclass(frozen=True, slots=True)
class FlvSeek:
    """A validated seek: byte offsets (ints) or, with `by_time`, seconds."""

    start: int | float | None = None
    end: int | float | None = None
    by_time: bool = False

    @property
    def clipped(self) -> bool:
        """Whether the output is cut at either end."""
        return self.start is not None or self.end is not None

    @property
    def end_offset(self) -> int | None:
        """The byte `end`, when the seek is by bytes."""
        return None if self.by_time or self.end is None else int(self.end)

    @property
    def end_ms(self) -> float | None:
        """The `end` in milliseconds, when the seek is by time."""
        return None if not self.by_time or self.end is None else self.end * 1000.0


NO_SEEK = FlvSeek()


def parse_seek(start: SeekValue = None, end: SeekValue = None, by_time: bool = False) -> FlvSeek:
    """Validate `start`/`end` (numbers or their text); raise `InvalidSeek` when bad."""
    first = _number(start, "start", by_time)
    last = _number(end, "end", by_time)
    if first == 0:
        first = None
    if last is not None and last <= (first or 0):
        raise InvalidSeek(f"end ({end}) must be after start ({start or 0})")
    return FlvSeek(first, last, by_time)


def _number(value: SeekValue, name: str, by_time: bool) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidSeek(f"{name} is not a number: {value!r}")
    if isinstance(value, str):
        if by_time:
            from vodedge.media.seeking import parse_seconds  # its regex: only for text

            return parse_seconds(value, name)
        text = value.strip()
        if not (text.isascii() and text.isdigit()):
            raise InvalidSeek(f"{name} must be a byte offset, not {value[:40]!r}")
        number: float = int(text)
    else:
        number = value
    if not math.isfinite(number):
        raise InvalidSeek(f"{name} is not a finite number: {value!r}")
    if number < 0:
        raise InvalidSeek(f"{name} must not be negative: {value!r}")
    if by_time:
        return float(number)
    if number != int(number):
        raise InvalidSeek(f"{name} must be a whole byte offset: {value!r}")
    return int(number)


def resolve_start(index: TagIndex, seek: FlvSeek, audio_only: bool) -> int:
    """The position in `index` of the clip's first tag (past the end: `len(index)`)."""
    if seek.start is None:
        return 0
    if not seek.by_time:
        if seek.start >= index.size:
            raise InvalidSeek(f"start {seek.start} is past the end ({index.size} bytes)")
        found = bisect_left(index.offsets, seek.start)
        if found == len(index) and index.stopped_at is None:
            raise InvalidSeek(f"no tag starts at or after byte {seek.start}")
        return found
    start_ms = seek.start * 1000.0
    kinds = (AUDIO,) if audio_only or not _has_video_frames(index) else (AUDIO, VIDEO)
    frames = [i for i in range(len(index)) if index.kinds[i] in kinds and index.role(i) == FRAME]
    if not frames:
        raise (
            NoAudioTrack("the FLV holds no audio to seek in")
            if audio_only
            else InvalidSeek("the FLV holds no media to seek in")
        )
    if index.stopped_at is None and start_ms > max(index.stamps[i] for i in frames):
        raise InvalidSeek(f"start {seek.start} s is past the end of the media")
    if kinds == (AUDIO,):
        before = [i for i in frames if index.stamps[i] <= start_ms]
        return before[-1] if before else frames[0]
    by_index = _keyframe_from_index(index, seek.start)
    if by_index is not None:
        return by_index
    keyframes = [i for i in frames if _is_keyframe(index, i) and index.stamps[i] <= start_ms]
    return keyframes[-1] if keyframes else 0


def _has_video_frames(index: TagIndex) -> bool:
    return any(index.kinds[i] == VIDEO and index.role(i) == FRAME for i in range(len(index)))


def _is_keyframe(index: TagIndex, i: int) -> bool:
    if index.kinds[i] != VIDEO:
        return False
    packed = index.first_bytes[i]
    return is_video_keyframe(index.sizes[i], packed >> 8, packed & 0xFF)


def _keyframe_from_index(index: TagIndex, start: float) -> int | None:
    """The tag of the last `keyframes` entry at or before `start`, if it is a keyframe."""
    if not index.metadata:
        return None
    meta = decode_metadata(index.metadata[0][1][TAG_HEADER_SIZE:])
    table = source_keyframes(meta.value) if meta else None
    if not table:
        return None
    times, positions = table
    # Writers emit the table in time order; take the last entry at or before start.
    pairs = sorted(zip(times, positions, strict=True))
    at = bisect_right(pairs, (start, math.inf)) - 1
    if at < 0:
        return None
    position = pairs[at][1]
    found = bisect_left(index.offsets, position)
    if found < len(index) and index.offsets[found] == position and _is_keyframe(index, found):
        return found
    return None
