"""FLV file header and tag headers: parsing, and what a tag's first bytes say about it."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from vodedge.media.errors import MalformedMedia, NotFlv, TruncatedMedia

AUDIO: Final = 8
VIDEO: Final = 9
SCRIPT: Final = 18

FLAG_AUDIO: Final = 0x04
FLAG_VIDEO: Final = 0x01

FILE_HEADER_SIZE: Final = 9
TAG_HEADER_SIZE: Final = 11
PREVIOUS_TAG_SIZE: Final = 4
# A tag and its trailing PreviousTagSize: header, data, back-pointer.
TAG_OVERHEAD: Final = TAG_HEADER_SIZE + PREVIOUS_TAG_SIZE

# type|size24, ts24|ts_ext, stream_id24|first data byte, second data byte.
TAG_HEAD = struct.Struct(">IIIB")
U32 = struct.Struct(">I")

_SOUND_FORMATS: Final = {
    0: "pcm",
    1: "adpcm",
    2: "mp3",
    3: "pcm_le",
    4: "nellymoser_16k",
    5: "nellymoser_8k",
    6: "nellymoser",
    7: "g711_alaw",
    8: "g711_mulaw",
    10: "aac",
    11: "speex",
    14: "mp3_8k",
    15: "device_specific",
}
_VIDEO_CODECS: Final = {
    1: "jpeg",
    2: "sorenson_h263",
    3: "screen_video",
    4: "vp6",
    5: "vp6_alpha",
    6: "screen_video_v2",
    7: "avc",
    12: "hevc",
    13: "av1",
}
# Enhanced FLV: the audio SoundFormat and video bit 7 that announce a FourCC.
SOUND_FORMAT_EX: Final = 9
AUDIO_PACKET_MULTITRACK: Final = 5
VIDEO_PACKET_MULTITRACK: Final = 6


@dataclass(frozen=True, slots=True)
class FileHeader:
    """The FLV file header: version, flags and where the first tag's back-pointer is."""

    version: int
    flags: int
    data_offset: int

    @property
    def has_audio(self) -> bool:
        """The header's audio flag."""
        return bool(self.flags & FLAG_AUDIO)

    @property
    def has_video(self) -> bool:
        """The header's video flag."""
        return bool(self.flags & FLAG_VIDEO)

    def encode(self, flags: int | None = None) -> bytes:
        """The header with data offset 9, plus the zero PreviousTagSize that follows it."""
        chosen = self.flags if flags is None else flags
        return b"FLV" + bytes((self.version, chosen)) + b"\x00\x00\x00\x09\x00\x00\x00\x00"


def check_signature(prefix: bytes | bytearray | memoryview) -> None:
    """Raise `NotFlv` as soon as the first bytes cannot start an FLV file."""
    if bytes(prefix[:3]) != b"FLV"[: len(prefix[:3])]:
        raise NotFlv("not an FLV file (no 'FLV' signature)")


def parse_file_header(data: bytes | bytearray | memoryview) -> FileHeader:
    """Parse the 9-byte file header."""
    check_signature(data)
    if len(data) < FILE_HEADER_SIZE:
        raise TruncatedMedia("FLV file header is truncated")
    data_offset = U32.unpack_from(data, 5)[0]
    if data_offset < FILE_HEADER_SIZE:
        raise MalformedMedia(f"FLV header size {data_offset} is smaller than 9")
    return FileHeader(data[3], data[4], data_offset)


def tag_timestamp(ts_word: int) -> int:
    """Milliseconds from the tag's `timestamp24|extended8` word."""
    return (ts_word >> 8) | ((ts_word & 0xFF) << 24)


CONFIG: Final = 0
FRAME: Final = 1
OTHER: Final = 2


def tag_role(kind: int, size: int, b0: int, b1: int) -> int:
    """`CONFIG` (sequence header), `FRAME` (coded media) or `OTHER`, from the first data bytes."""
    if size < 1:
        return OTHER
    if kind == AUDIO:
        fmt = b0 >> 4
        if fmt == 10:
            return (CONFIG, FRAME)[b1] if size >= 2 and b1 < 2 else OTHER
        if fmt == SOUND_FORMAT_EX:
            packet = b0 & 0x0F
            if packet == AUDIO_PACKET_MULTITRACK:
                packet = b1 & 0x0F if size >= 2 else -1
            if packet in (0, 4):  # SequenceStart, MultichannelConfig
                return CONFIG
            return FRAME if packet == 1 else OTHER
        return FRAME
    if kind != VIDEO or (b0 >> 4) & 0x07 == 5:  # 5: info/command frame
        return OTHER
    if b0 & 0x80:
        packet = b0 & 0x0F
        if packet == VIDEO_PACKET_MULTITRACK:
            packet = b1 & 0x0F if size >= 2 else -1
        if packet in (0, 5):  # SequenceStart, MPEG2TSSequenceStart
            return CONFIG
        return FRAME if packet in (1, 3) else OTHER  # CodedFrames, CodedFramesX
    if b0 & 0x0F in (7, 12, 13):  # AVC and its packet-typed kin
        return (CONFIG, FRAME)[b1] if size >= 2 and b1 < 2 else OTHER
    return FRAME


def is_video_keyframe(size: int, b0: int, b1: int) -> bool:
    """A video tag holding a picture that decodes on its own."""
    return (b0 >> 4) & 0x07 == 1 and tag_role(VIDEO, size, b0, b1) == FRAME


def audio_codec_name(data: bytes | memoryview) -> str:
    """A name for the codec of an audio tag, from its first data bytes."""
    if not data:
        return "unknown"
    fmt = data[0] >> 4
    if fmt == SOUND_FORMAT_EX:
        start = 2 if data[0] & 0x0F == AUDIO_PACKET_MULTITRACK else 1
        return _fourcc(data[start : start + 4])
    return _SOUND_FORMATS.get(fmt, f"sound_format_{fmt}")


def video_codec_name(data: bytes | memoryview) -> str:
    """A name for the codec of a video tag, from its first data bytes."""
    if not data:
        return "unknown"
    if data[0] & 0x80:
        start = 2 if data[0] & 0x0F == VIDEO_PACKET_MULTITRACK else 1
        return _fourcc(data[start : start + 4])
    codec = data[0] & 0x0F
    return _VIDEO_CODECS.get(codec, f"codec_id_{codec}")


def _fourcc(raw: bytes | memoryview) -> str:
    text = bytes(raw).decode("latin-1")
    return text if len(text) == 4 and text.isprintable() else "unknown"
