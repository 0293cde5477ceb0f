"""One forward pass over an FLV's tag headers, read in large blocks, into a compact index."""

from __future__ import annotations

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
    tag_timestamp,
    video_codec_name,
)
from vodedge.media.reading import Reading, ReadRequest

BLOCK_SIZE: Final = 1 << 20
# Bytes needed at a PreviousTagSize: itself, the next tag header, and enough data
# to name an Enhanced-FLV codec (frame byte, packet-type byte, FourCC).
_LOOKAHEAD: Final = 4 + TAG_HEADER_SIZE + 6
MAX_METADATA_BYTES: Final = 64 << 20


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
    offsets, sizes, stamps = index.offsets, index.sizes, index.stamps
    kinds, first_bytes, back_ok = index.kinds, index.first_bytes, index.back_ok
    last_b0 = {AUDIO: -1, VIDEO: -1}
    metadata_bytes = 0
    buf = bytes(head)
    base = 0
    back = header.data_offset
    previous = -1  # data size of the previous tag, -1 before the first
    if back > size:
        index.truncated = "the FLV header runs past the end of the source"
        return index
    while True:
        left = size - back
        if back - base + min(_LOOKAHEAD, left) > len(buf):
            buf = yield ReadRequest(back, min(block, left))
            base = back
            if len(buf) < min(_LOOKAHEAD, left):
                index.truncated = f"the source ends at {back + len(buf)}, before its size {size}"
                return index
        at = back - base
        if left < TAG_OVERHEAD:
            if previous >= 0 and left >= 4:
                back_ok[-1] = U32.unpack_from(buf, at)[0] == previous + TAG_HEADER_SIZE
            if left > 4:
                index.truncated = f"a tag header at offset {back + 4} is cut short"
            return index
        if previous >= 0:
            back_ok[-1] = U32.unpack_from(buf, at)[0] == previous + TAG_HEADER_SIZE
        pos = back + 4
        if stop_offset is not None and pos >= stop_offset:
            index.stopped_at = pos
            return index
        if len(buf) - at >= 4 + TAG_HEAD.size:
            w0, w1, w2, b1 = TAG_HEAD.unpack_from(buf, at + 4)
        else:  # a tiny last tag: pad the missing data bytes
            w0, w1, w2, b1 = TAG_HEAD.unpack_from(bytes(buf[at + 4 :]).ljust(TAG_HEAD.size, b"\0"))
        data_size = w0 & 0xFFFFFF
        kind = (w0 >> 24) & 0x1F
        stamp = tag_timestamp(w1)
        b0 = w2 & 0xFF if data_size else 0
        if data_size < 2:
            b1 = 0
        if (
            stop_ms is not None
            and stamp >= stop_ms
            and kind in stop_kinds
            and tag_role(kind, data_size, b0, b1) == FRAME
        ):
            index.stopped_at = pos
            return index
        back = pos + TAG_HEADER_SIZE + data_size
        if back > size:
            index.truncated = f"the tag at offset {pos} runs past the end of the source"
            return index
        offsets.append(pos)
        sizes.append(data_size)
        stamps.append(stamp)
        kinds.append(kind)
        first_bytes.append(b0 << 8 | b1)
        back_ok.append(0)
        previous = data_size
        if kind in last_b0 and b0 != last_b0[kind] and data_size:
            last_b0[kind] = b0
            names = index.audio_codecs if kind == AUDIO else index.video_codecs
            name = (audio_codec_name if kind == AUDIO else video_codec_name)(
                buf[at + 4 + TAG_HEADER_SIZE : at + 4 + TAG_HEADER_SIZE + min(data_size, 6)]
            )
            if name not in names:
                names.append(name)
        if kind == SCRIPT and not (w0 >> 24) & 0x20:
            tag_end = pos + TAG_HEADER_SIZE + data_size
            if tag_end - base > len(buf):
                buf = yield ReadRequest(pos, min(max(block, tag_end - pos), size - pos))
                base = pos
                if len(buf) < tag_end - pos:
                    index.truncated = f"the source ends at {pos + len(buf)}, before its size {size}"
                    return index
            tag = bytes(buf[pos - base : tag_end - base])
            if is_onmetadata(tag[TAG_HEADER_SIZE:]):
                metadata_bytes += len(tag)
                if metadata_bytes > MAX_METADATA_BYTES:
                    raise LimitExceeded("more onMetaData than the limit allows")
                index.metadata.append((len(offsets) - 1, tag))
