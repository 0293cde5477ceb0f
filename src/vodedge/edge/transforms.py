"""Which video function a request asks for (part of resolve)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from vodedge.config import Domain
from vodedge.config.policy import SeekConfig
from vodedge.config.query import AUDIO_TRACK_ARG
from vodedge.media.errors import InvalidSeek, InvalidTrack
from vodedge.media.preview import check_preview
from vodedge.media.seeking import check_seek, parse_seconds

MP4_SUFFIXES = frozenset({".mp4", ".m4a", ".m4v", ".mov", ".3gp", ".3g2"})
FLV_SUFFIXES = frozenset({".flv"})
# Containers whose only video function is trial playback (ali_video_preview).
PREVIEW_ONLY = {".mp3": "mp3", ".mp2": "mp3", ".ts": "ts", ".m2ts": "ts", ".mts": "ts"}
AUDIO_ONLY_ARG = "ali_audio_only"
# A transform's fields as they enter its derived ETags: kind, flags, start, end, track.
_ETAG_FIELDS = struct.Struct("<BBddq")
_KINDS = {"mp4": 1, "flv": 2, "mp3": 3, "ts": 4}
_ETAG_HASH = hashlib.blake2s(digest_size=10)


@dataclass(frozen=True, slots=True)
class Transform:
    """A request's video functions: audio extraction and/or a clip."""

    kind: str  # "mp4", "flv", or "mp3" / "ts" (previews only)
    audio_only: bool
    start: float | None
    end: float | None
    by_time: bool = True  # FLV only: seconds (True) or byte offsets (False)
    track: int | None = None  # MP4 audio only: the one audio track kept (vodedge_audio_track)

    @property
    def function(self) -> str:
        """The label used in metrics and logs."""
        if self.kind in ("mp3", "ts"):
            return "preview"
        if self.audio_only:
            return "audio_only" if self.start is None and self.end is None else "audio_seek"
        return "track" if self.start is None and self.end is None else "seek"

    @property
    def is_clip(self) -> bool:
        """An MP4 cut by start or end, or its video with one audio track (planned from the
        object's index)."""
        return self.kind == "mp4" and (
            self.start is not None
            or self.end is not None
            or (self.track is not None and not self.audio_only)
        )

    def tag(self) -> str:
        """A short stable name of this transform, part of derived ETags."""
        raw = f"{self.kind}|{int(self.audio_only)}|{self.start}|{self.end}|{int(self.by_time)}"
        if self.track is not None:
            raw += f"|track={self.track}"
        return hashlib.blake2s(raw.encode(), digest_size=6).hexdigest()

    def etag(self, base: str) -> str:
        """The ETag of this transform's output of the object version `base` names (its
        ETag, or its version): the same in every worker and after restarts, another for
        another version or transform. One hash of the fields packed (no float
        formatting): a random seek makes a new one per request."""
        start, end, track = self.start, self.end, self.track
        flags = (
            self.audio_only
            | self.by_time << 1
            | (start is not None) << 2
            | (end is not None) << 3
            | (track is not None) << 4
        )
        digest = _ETAG_HASH.copy()
        # The fields have a fixed size: what follows them cannot be mistaken for them.
        digest.update(
            _ETAG_FIELDS.pack(_KINDS[self.kind], flags, start or 0.0, end or 0.0, track or 0)
        )
        digest.update(base.encode("utf-8", "surrogatepass"))
        return f'"{digest.hexdigest()}"'


def kind_of(path: str) -> str | None:
    """mp4, flv, mp3 or ts by the path's suffix; None for other objects."""
    dot = path.rfind(".")
    suffix = path[dot:].lower() if dot > path.rfind("/") else ""
    if suffix in MP4_SUFFIXES:
        return "mp4"
    if suffix in FLV_SUFFIXES:
        return "flv"
    return PREVIEW_ONLY.get(suffix)


def _offset(text: str, name: str) -> float:
    if not (text.isascii() and text.isdigit()) or len(text) > 15:
        raise InvalidSeek(f"{name} must be a byte offset, not {text[:40]!r}")
    return float(int(text))


def _bounds(
    seek: SeekConfig, kind: str, by_time: bool, query: Mapping[str, str]
) -> tuple[float | None, float | None]:
    """The start and end the domain's seek arguments for `kind` give in `query` (seconds
    when `by_time`, else byte offsets); None where one is not given."""
    if kind == "mp4":
        start_arg, end_arg = seek.mp4_start_arg, seek.mp4_end_arg
    else:
        start_arg, end_arg = seek.flv_start_arg, seek.flv_end_arg
    parse = parse_seconds if by_time else _offset
    text = query.get(start_arg)
    start = None if text is None else parse(text, start_arg)
    text = query.get(end_arg)
    end = None if text is None else parse(text, end_arg)
    return start, end


def transform_for(domain: Domain, path: str, query: Mapping[str, str]) -> Transform | None:
    """The transform a request asks for on `domain`, None for plain delivery."""
    kind = kind_of(path)
    if kind is None:
        return None
    preview = domain.preview
    if kind in ("mp3", "ts"):
        if preview is None or query.get(preview.argument) is None:
            return None
        seconds = parse_seconds(query[preview.argument], preview.argument)
        check_preview(seconds)
        return Transform(kind, False, None, preview.length(seconds))
    audio_only = bool(domain.audio_split) and query.get(AUDIO_ONLY_ARG) == "1"
    start: float | None = None
    end: float | None = None
    by_time = True
    seek = domain.seek
    if seek.enabled:
        by_time = kind == "mp4" or bool(seek.flv_by_time)
        start, end = _bounds(seek, kind, by_time, query)
    if preview is not None and query.get(preview.argument) is not None:
        if not by_time:
            if start is not None or end is not None:
                raise InvalidSeek("a preview cannot be combined with a byte-offset seek")
            by_time = True  # a preview alone is a cut in seconds, whatever seeks take
        limit = parse_seconds(query[preview.argument], preview.argument)
        limit = preview.length(limit)
        end = limit if end is None else min(end, limit)
        if start is not None and start >= end:
            raise InvalidSeek(f"start ({start}) is past the preview's end ({end})")
    # vodedge's own track choice goes with audio extraction (on or off together).
    track = _track(query.get(AUDIO_TRACK_ARG)) if domain.audio_split and kind == "mp4" else None
    if not audio_only and start is None and end is None and track is None:
        return None
    check_seek(start, end)
    return Transform(kind, audio_only, start, end, by_time, track)


def reseeks(domain: Domain, base: Transform | None, names: Collection[str]) -> bool:
    """Whether `reseek` makes what `transform_for` makes of `base`'s query with other
    values of its seek arguments `names`: an MP4 or FLV transform on a domain that seeks
    and has no preview (its argument may cut the end), none of the names read otherwise."""
    return (
        base is not None
        and base.kind in ("mp4", "flv")
        and domain.preview is None
        and domain.seek.enabled
        and AUDIO_ONLY_ARG not in names
        and AUDIO_TRACK_ARG not in names
    )


def reseek(base: Transform, seek: SeekConfig, values: Mapping[str, str]) -> Transform | None:
    """`transform_for` of a query that differs from `base`'s only in the `values` of its
    seek arguments (see `reseeks`): the bounds parsed, the rest as `base` has it."""
    start, end = _bounds(seek, base.kind, base.by_time, values)
    if not base.audio_only and start is None and end is None and base.track is None:
        return None
    check_seek(start, end)
    return Transform(base.kind, base.audio_only, start, end, base.by_time, base.track)


def _track(text: str | None) -> int | None:
    """vodedge_audio_track's track id (None: every audio track)."""
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 0 < int(text) < 1 << 32:
        raise InvalidTrack(f"{AUDIO_TRACK_ARG} must be a track id, not {text[:40]!r}")
    return int(text)
