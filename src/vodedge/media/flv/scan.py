"""One forward pass over an FLV's tag headers, read in large blocks, into a compact index."""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field
from typing import Final

from vodedge.media.errors import LimitExceeded, NoAudioTrack
from vodedge.media.flv.metadata import is_onmetadata
from vodedge.media.flv.tags import (
    AUDIO,
    FILE_HEADER_SIZE,
    FRAME,
    SCRIPT,
    TAG_HEAD,
    TAG_HEADER_SIZE,
    TAG_OVERHEAD,
    U32,
    VIDEO,
    FileHeader,
    audio_codec_name,
    parse_file_header,
    tag_role,
    video_codec_name,
)
from vodedge.media.reading import Reading, ReadRequest

BLOCK_SIZE: Final = 1 << 20
# Bytes needed at a PreviousTagSize: itself, the next tag header, and enough data
# to name an Enhanced-FLV codec (frame byte, packet-type byte, FourCC).
_LOOKAHEAD: Final = 4 + TAG_HEADER_SIZE + 6
MAX_METADATA_BYTES: Final = 64 << 20
# A PreviousTagSize and the tag header after it (`TAG_HEAD`), read at once.
_BACK_AND_HEAD: Final = struct.Struct(">IIIIB")
_NEVER: Final = float("inf")


@dataclass(slots=True)
class TagIndex:
    """Every whole tag of the scanned range, one entry per column, in source order."""

    header: FileHeader
    size: int
    offsets: array[int] = field(default_factory=lambda: array("q"))
    sizes: array[int] = field(default_factory=lambda: array("l"))
    stamps: array[int] = field(default_factory=lambda: array("q"))
    kinds: array[int] = field(default_factory=lambda: array("B"))
    first_bytes: array[int] = field(default_factory=lambda: array("H"))
    # 1 when the tag's PreviousTagSize is present and right.
    back_ok: array[int] = field(default_factory=lambda: array("B"))
    # onMetaData tags: (position in the columns, whole tag without PreviousTagSize).
    metadata: list[tuple[int, bytes]] = field(default_factory=list)
    audio_codecs: list[str] = field(default_factory=list)
    video_codecs: list[str] = field(default_factory=list)
    # Why the scan ended before the end of the source: a truncated tag, or
    # the source offset of the first tag past the requested end.
    truncated: str | None = None
    stopped_at: int | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def role(self, index: int) -> int:
        """`CONFIG`, `FRAME` or `OTHER` (see `tags.tag_role`) for tag `index`."""
        packed = self.first_bytes[index]
        return tag_role(self.kinds[index], self.sizes[index], packed >> 8, packed & 0xFF)

    def unit_size(self, index: int) -> int:
        """Bytes of tag `index` with its PreviousTagSize."""
        return self.sizes[index] + TAG_OVERHEAD


def scan_tags(
    size: int,
    *,
    require_audio: bool = False,
    stop_offset: int | None = None,
    stop_ms: float | None = None,
    stop_kinds: tuple[int, ...] = (AUDIO, VIDEO),
    block: int = BLOCK_SIZE,
) -> Reading[TagIndex]:
    """Index the tags of an FLV source of `size` bytes.

    The scan ends at the source's end, at the first tag starting at or past
    `stop_offset`, or at the first media frame of `stop_kinds` stamped at or
    after `stop_ms`. A truncated last tag is recorded in `truncated`, not raised.
    """
    head = yield ReadRequest(0, min(size, block))
    header = parse_file_header(memoryview(head)[:FILE_HEADER_SIZE])
    if require_audio and not header.has_audio:
        raise NoAudioTrack("the FLV header says the file has no audio")
    index = TagIndex(header, size)
    offsets, kinds, back_ok = index.offsets, index.kinds, index.back_ok
    # A tag costs a few hundred nanoseconds of Python here, and a whole-file extraction
    # is timed against ffmpeg: columns are appended through bound methods, the
    # back-pointer and the next header are read by one unpack, and the checks every
    # tag needs are comparisons against bounds that never trigger when unused.
    add_offset, add_kind, add_back = offsets.append, kinds.append, back_ok.append
    add_size, add_stamp = index.sizes.append, index.stamps.append
    add_first = index.first_bytes.append
    unpack_back_and_head = _BACK_AND_HEAD.unpack_from
    stop_at = size if stop_offset is None else stop_offset  # a tag always starts before size
    stop_stamp = _NEVER if stop_ms is None else stop_ms
    # The first data byte last seen per tag type: a change names a codec. Only audio and
    # video are ever updated; every other type (script tags) always differs from -1.
    last_b0 = [-1] * 32
    metadata_bytes = 0
    buf = bytes(head)
    buffered = len(buf)
    base = 0
    back = header.data_offset
    previous = -1  # data size of the previous tag, -1 before the first
    if back > size:
        index.truncated = "the FLV header runs past the end of the source"
        return index
    while True:
        left = size - back
        at = back - base
        if at + (_LOOKAHEAD if left > _LOOKAHEAD else left) > buffered:
            buf = yield ReadRequest(back, min(block, left))
            buffered = len(buf)
            base = back
            at = 0
            if buffered < min(_LOOKAHEAD, left):
                index.truncated = f"the source ends at {back + buffered}, before its size {size}"
                return index
        if left < TAG_OVERHEAD:
            if previous >= 0 and left >= 4:
                back_ok[-1] = U32.unpack_from(buf, at)[0] == previous + TAG_HEADER_SIZE
            if left > 4:
                index.truncated = f"a tag header at offset {back + 4} is cut short"
            return index
        if buffered - at >= _BACK_AND_HEAD.size:
            back_size, w0, w1, w2, b1 = unpack_back_and_head(buf, at)
        else:  # a tiny last tag: pad the missing data bytes
            back_size = U32.unpack_from(buf, at)[0]
            w0, w1, w2, b1 = TAG_HEAD.unpack_from(bytes(buf[at + 4 :]).ljust(TAG_HEAD.size, b"\0"))
        if previous >= 0:
            back_ok[-1] = back_size == previous + TAG_HEADER_SIZE
        pos = back + 4
        if pos >= stop_at:
            index.stopped_at = pos
            return index
        data_size = w0 & 0xFFFFFF
        kind = (w0 >> 24) & 0x1F
        stamp = (w1 >> 8) | ((w1 & 0xFF) << 24)  # tags.tag_timestamp
        if data_size:
            b0 = w2 & 0xFF
            if data_size < 2:
                b1 = 0
        else:
            b0 = b1 = 0
        if (
            stamp >= stop_stamp
            and kind in stop_kinds
            and tag_role(kind, data_size, b0, b1) == FRAME
        ):
            index.stopped_at = pos
            return index
        back = pos + TAG_HEADER_SIZE + data_size
        if back > size:
            index.truncated = f"the tag at offset {pos} runs past the end of the source"
            return index
        add_offset(pos)
        add_size(data_size)
        add_stamp(stamp)
        add_kind(kind)
        add_first(b0 << 8 | b1)
        add_back(0)
        previous = data_size
        if b0 == last_b0[kind]:
            continue  # the common case: a media tag of the codec seen before
        if kind in (AUDIO, VIDEO) and data_size:
            last_b0[kind] = b0
            names = index.audio_codecs if kind == AUDIO else index.video_codecs
            name = (audio_codec_name if kind == AUDIO else video_codec_name)(
                buf[at + 4 + TAG_HEADER_SIZE : at + 4 + TAG_HEADER_SIZE + min(data_size, 6)]
            )
            if name not in names:
                names.append(name)
        if kind == SCRIPT and not (w0 >> 24) & 0x20:
            tag_end = pos + TAG_HEADER_SIZE + data_size
            if tag_end - base > buffered:
                buf = yield ReadRequest(pos, min(max(block, tag_end - pos), size - pos))
                buffered = len(buf)
                base = pos
                if buffered < tag_end - pos:
                    index.truncated = f"the source ends at {pos + buffered}, before its size {size}"
                    return index
            tag = bytes(buf[pos - base : tag_end - base])
            if is_onmetadata(tag[TAG_HEADER_SIZE:]):
                metadata_bytes += len(tag)
                if metadata_bytes > MAX_METADATA_BYTES:
                    raise LimitExceeded("more onMetaData than the limit allows")
                index.metadata.append((len(offsets) - 1, tag))
