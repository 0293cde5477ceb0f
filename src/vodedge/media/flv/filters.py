"""Incremental FLV filters: source bytes in, in any chunking, output tags out.

A tag is emitted once it is whole, so memory is bounded by the tag being read
(plus, in a clip, the last sequence header of each track, held for its start).
The output equals the plan of the same request byte for byte, except the
`onMetaData` tag, whose layout keys a stream cannot know (see `flv.metadata`).
"""

from __future__ import annotations

from typing import Final

from vodedge.media.errors import InvalidSeek, NoAudioTrack, TruncatedMedia
from vodedge.media.flv.metadata import (
    MetadataRewrite,
    decode_metadata,
    encode_script_tag,
    rewrite_metadata,
)
from vodedge.media.flv.seek import SeekValue, parse_seek
from vodedge.media.flv.tags import (
    AUDIO,
    CONFIG,
    FILE_HEADER_SIZE,
    FLAG_AUDIO,
    SCRIPT,
    TAG_HEADER_SIZE,
    TAG_OVERHEAD,
    U32,
    VIDEO,
    check_signature,
    parse_file_header,
    tag_role,
)

# What happens to the tag being read.
_KEEP: Final = 0  # copied out whole
_DROP: Final = 1  # skipped
_SCRIPT_KEEP: Final = 2  # buffered: onMetaData rewritten, other script tags copied
_SCRIPT_DROP: Final = 3  # buffered: onMetaData rewritten, other script tags dropped
_HOLD: Final = 4  # buffered: a sequence header to re-emit at the clip's start

# Where the reader is.
_FILE_HEADER: Final = 0
_PREAMBLE: Final = 1  # extra header bytes and the first PreviousTagSize
_TAG_HEAD: Final = 2  # between tags, or inside a tag header
_TAG_DATA: Final = 3
_BACK_POINTER: Final = 4  # the PreviousTagSize after the tag's data
_DONE: Final = 5


class FlvFilter:
    """An FLV, fed front to back, out as an audio-only FLV and/or a byte-offset clip.

    `start`/`end` are byte offsets of the source (see `flv.seek` for how an
    offset inside a tag resynchronises). Before `start` only `onMetaData` and
    the last sequence header of each kept track are kept; they are emitted
    ahead of the clip's first tag so that it decodes.
    """

    __slots__ = (
        "_audio_only",
        "_back_left",
        "_buffer",
        "_carry",
        "_configs",
        "_data_left",
        "_end",
        "_held",
        "_in_range",
        "_mode",
        "_offset",
        "_preamble_left",
        "_rewrite",
        "_start",
        "_state",
        "_tag_offset",
        "_tag_size",
    )

    def __init__(
        self, *, audio_only: bool = True, start: SeekValue = None, end: SeekValue = None
    ) -> None:
        seek = parse_seek(start, end)
        self._audio_only = audio_only
        self._start: int | None = None if seek.start is None else int(seek.start)
        self._end: int | None = seek.end_offset
        self._rewrite = MetadataRewrite(audio_only=audio_only, clipped=seek.clipped)
        self._in_range = self._start is None
        self._state = _FILE_HEADER
        self._carry = bytearray()
        self._offset = 0  # source offset of the next byte fed
        self._preamble_left = 0
        self._tag_offset = 0
        self._tag_size = 0
        self._data_left = 0
        self._back_left = 0
        self._mode = _DROP
        self._held: list[bytes] = []
        self._buffer = bytearray()
        self._configs: dict[int, tuple[int, bytes]] = {}

    @property
    def finished(self) -> bool:
        """True once `end` is reached: no further input matters."""
        return self._state == _DONE

    @property
    def position(self) -> int:
        """The source offset of the next byte `feed` expects."""
        return self._offset

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume the next source bytes; return the output they complete."""
        out: list[bytes] = []
        view = memoryview(data)
        total = len(view)
        at = 0
        while at < total:
            state = self._state
            if state == _TAG_HEAD and not self._carry:
                at = self._fast(view, at, out)
                if at >= total:
                    break
                state = self._state
            if state == _TAG_HEAD:
                at = self._tag_head(view, at, out)
            elif state == _TAG_DATA:
                at = self._tag_data(view, at)
            elif state == _BACK_POINTER:
                take = min(self._back_left, total - at)
                self._back_left -= take
                at += take
                if not self._back_left:
                    self._finish_tag(out)
            elif state == _FILE_HEADER:
                at = self._file_header(view, at, out)
            elif state == _PREAMBLE:
                take = min(self._preamble_left, total - at)
                self._preamble_left -= take
                at += take
                if not self._preamble_left:
                    self._state = _TAG_HEAD
            else:  # _DONE
                at = total
        self._offset += total
        return out

    def close(self) -> list[bytes]:
        """Signal the end of the source; raise `TruncatedMedia` if it ended inside a tag."""
        out: list[bytes] = []
        state = self._state
        if state == _DONE:
            return out
        if state == _FILE_HEADER or (state == _PREAMBLE and self._preamble_left > 4):
            raise TruncatedMedia("the FLV ends inside its file header")
        if (state == _TAG_HEAD and self._carry) or state == _TAG_DATA:
            raise TruncatedMedia(f"the FLV ends inside the tag at offset {self._tag_offset}")
        if state == _BACK_POINTER:  # the tag is whole; its back-pointer is redundant
            self._finish_tag(out)
        if not self._in_range:
            raise InvalidSeek(f"no tag starts at or after byte {self._start}")
        self._state = _DONE
        return out

    # -- the file header -----------------------------------------------------------

    def _file_header(self, view: memoryview, at: int, out: list[bytes]) -> int:
        carry = self._carry
        take = min(FILE_HEADER_SIZE - len(carry), len(view) - at)
        carry += view[at : at + take]
        check_signature(carry)
        if len(carry) < FILE_HEADER_SIZE:
            return at + take
        header = parse_file_header(carry)
        if self._audio_only and not header.has_audio:
            raise NoAudioTrack("the FLV header says the file has no audio")
        carry.clear()
        out.append(header.encode(FLAG_AUDIO if self._audio_only else None))
        self._preamble_left = header.data_offset - FILE_HEADER_SIZE + 4
        self._state = _PREAMBLE
        return at + take

    # -- tags, whole inside one chunk ------------------------------------------------

    def _fast(self, view: memoryview, at: int, out: list[bytes]) -> int:
        """Copy and skip the tags that lie whole inside `view`, in runs of kept bytes."""
        if not self._in_range:
            return at
        total = len(view)
        # Tags starting at or past `end` are the slow path's to stop at.
        limit = total if self._end is None else min(total, self._end - self._offset)
        keep_video = not self._audio_only
        run = -1
        unpack = U32.unpack_from
        while at < limit and at + 4 <= total:
            word = unpack(view, at)[0]
            size = word & 0xFFFFFF
            stop = at + size + TAG_OVERHEAD
            if stop > total:
                break
            kind = (word >> 24) & 0x1F
            if kind == AUDIO or (keep_video and kind != SCRIPT):
                if run < 0:
                    run = at
                back = stop - 4
                if unpack(view, back)[0] != size + TAG_HEADER_SIZE:
                    out.append(bytes(view[run:back]))
                    out.append(U32.pack(size + TAG_HEADER_SIZE))
                    run = -1
            elif kind == SCRIPT:
                break
            elif run >= 0:
                out.append(bytes(view[run:at]))
                run = -1
            at = stop
        if run >= 0:
            out.append(bytes(view[run:at]))
        return at

    # -- tags, across chunks -----------------------------------------------------------

    def _tag_head(self, view: memoryview, at: int, out: list[bytes]) -> int:
        carry = self._carry
        if not carry:
            self._tag_offset = offset = self._offset + at
            if not self._in_range and self._start is not None and offset >= self._start:
                self._enter_range(out)
            if self._end is not None and offset >= self._end:
                self._state = _DONE
                return len(view)
        need = TAG_HEADER_SIZE
        if len(carry) >= TAG_HEADER_SIZE:
            need += min(int.from_bytes(carry[1:4], "big"), 2)
        take = min(need - len(carry), len(view) - at)
        carry += view[at : at + take]
        at += take
        if len(carry) == TAG_HEADER_SIZE:
            # Now the size is known: the decision needs up to two data bytes.
            need += min(int.from_bytes(carry[1:4], "big"), 2)
            take = min(need - len(carry), len(view) - at)
            carry += view[at : at + take]
            at += take
        if len(carry) < need:
            return at
        self._start_tag(bytes(carry))
        carry.clear()
        return at

    def _enter_range(self, out: list[bytes]) -> None:
        """The clip starts: re-emit the held sequence headers, in source order."""
        self._in_range = True
        out.extend(tag for _, tag in sorted(self._configs.values()))
        self._configs.clear()

    def _start_tag(self, head: bytes) -> None:
        """Decide what to do with the tag whose header (and first data bytes) is `head`."""
        type_byte = head[0]
        kind = type_byte & 0x1F
        size = int.from_bytes(head[1:4], "big")
        b0 = head[11] if size > 0 else 0
        b1 = head[12] if size > 1 else 0
        plain_script = kind == SCRIPT and not type_byte & 0x20
        if self._in_range:
            if plain_script:
                mode = _SCRIPT_KEEP
            elif kind in (AUDIO, SCRIPT) or not self._audio_only:
                mode = _KEEP
            else:
                mode = _DROP
        elif plain_script:
            mode = _SCRIPT_DROP
        elif (kind == AUDIO or (kind == VIDEO and not self._audio_only)) and tag_role(
            kind, size, b0, b1
        ) == CONFIG:
            mode = _HOLD
        else:
            mode = _DROP
        self._mode = mode
        self._tag_size = size
        self._data_left = size - (len(head) - TAG_HEADER_SIZE)
        self._back_left = 4
        self._held = []
        self._buffer = bytearray()
        if mode == _KEEP:
            self._held.append(head)
        elif mode != _DROP:
            self._buffer += head
        self._state = _TAG_DATA if self._data_left else _BACK_POINTER

    def _tag_data(self, view: memoryview, at: int) -> int:
        take = min(self._data_left, len(view) - at)
        if take:
            mode = self._mode
            if mode == _KEEP:
                self._held.append(bytes(view[at : at + take]))
            elif mode != _DROP:
                self._buffer += view[at : at + take]
            self._data_left -= take
        if not self._data_left:
            self._state = _BACK_POINTER
        return at + take

    def _finish_tag(self, out: list[bytes]) -> None:
        """The tag (and its back-pointer) is read: emit, hold or forget it."""
        mode = self._mode
        back = U32.pack(self._tag_size + TAG_HEADER_SIZE)
        self._state = _TAG_HEAD
        if mode == _KEEP:
            out.extend(self._held)
            out.append(back)
            self._held = []
            return
        if mode == _DROP:
            return
        tag = bytes(self._buffer)
        self._buffer = bytearray()
        if mode == _HOLD:
            self._configs[tag[0] & 0x1F] = (self._tag_offset, tag + back)
            return
        meta = decode_metadata(memoryview(tag)[TAG_HEADER_SIZE:])
        if meta is not None:
            out.append(encode_script_tag(tag, meta, rewrite_metadata(meta.value, self._rewrite)))
        elif mode == _SCRIPT_KEEP:
            out.append(tag)
            out.append(back)


class FlvAudioFilter(FlvFilter):
    """An FLV in, an audio-only FLV out; `start`/`end` clip it at byte offsets."""

    __slots__ = ()

    def __init__(self, *, start: SeekValue = None, end: SeekValue = None) -> None:
        super().__init__(audio_only=True, start=start, end=end)


class FlvClipFilter(FlvFilter):
    """An FLV in, the tags between byte offsets `start` and `end` out, video kept."""

    __slots__ = ()

    def __init__(self, *, start: SeekValue = None, end: SeekValue = None) -> None:
        super().__init__(audio_only=False, start=start, end=end)
