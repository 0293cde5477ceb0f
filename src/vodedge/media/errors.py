"""The typed errors of the media layer, each with a stable code."""

from __future__ import annotations

from typing import ClassVar


class MediaError(Exception):
    """Base of every error the media layer raises on bad or unsupported input."""

    code: ClassVar[str] = "media_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MalformedMedia(MediaError):
    """The input breaks its format's rules (bad sizes, tables that disagree)."""

    code = "malformed_media"


class TruncatedMedia(MalformedMedia):
    """The input ends before a structure it announced is complete."""

    code = "truncated_media"


class NoMovieBox(MalformedMedia):
    """An ISO BMFF file without a `moov` box."""

    code = "no_moov"


class UnsupportedMedia(MediaError):
    """Well-formed input of a kind or feature this layer does not handle."""

    code = "unsupported_media"


class NotIsoBmff(UnsupportedMedia):
    """The input is not an ISO BMFF (MP4/MOV/3GP/M4A) file."""

    code = "not_iso_bmff"


class NotFlv(UnsupportedMedia):
    """The input is not an FLV file."""

    code = "not_flv"


class NoAudioTrack(MediaError):
    """The input holds no audio to extract."""

    code = "no_audio_track"


class LimitExceeded(MediaError):
    """The input claims more than the configured limits allow."""

    code = "limit_exceeded"


class InvalidSeek(MediaError):
    """A seek request (`start`/`end`) that is malformed or outside the media."""

    code = "invalid_seek"


class InvalidTrack(MediaError):
    """A track choice that is not a number, or names no audio track of the file."""

    code = "invalid_track"


class NotMpegAudio(UnsupportedMedia):
    """The input is not MPEG audio (MP3, MP2, MP1)."""

    code = "not_mpeg_audio"


class NotMpegTs(UnsupportedMedia):
    """The input is not an MPEG transport stream."""

    code = "not_mpeg_ts"
