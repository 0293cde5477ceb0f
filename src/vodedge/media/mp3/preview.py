"""MP3 trial playback: the plan of a file's first N seconds, cut on frame boundaries."""

from __future__ import annotations

import math
import re
from array import array
from struct import Struct

from vodedge.media.errors import MalformedMedia, NotMpegAudio, TruncatedMedia
from vodedge.media.mp3.header import FrameHeader, parse_header
from vodedge.media.mp3.info import InfoFrame, parse_info, rewrite_info
from vodedge.media.mp3.tags import APE_FOOTER, ID3V1_SIZE, ID3V2_HEADER, id3v2_size, tail_tags_start
from vodedge.media.plan import Plan, Span
from vodedge.media.preview import check_preview
from vodedge.media.reading import Reading, ReadRequest

BLOCK = 64 << 10
# How far past the tags the first frame may lie, and how much junk between two frames
# is skipped before the audio is taken to have ended.
MAX_LEADING_JUNK = 128 << 10
MAX_GAP = 64 << 10
# A free-format frame (layer III MPEG-1 at 32 kHz and 640 kbit/s) is under 3 kB.
MAX_FREE_FRAME = 4 << 10
MAX_ID3V2_TAGS = 8
# Each free-format candidate costs a search of a few kB for its successor; junk full of
# them gets this many before free format is no longer considered.
MAX_FREE_PROBES = 16

StreamKey = tuple[int, int, int, bool]
_WORD = Struct(">I")
# The header bits a frame's size and validity depend on: not private, mode extension,
# copyright or original.
_SIZE_BITS = 0xFFFFFEC3


def _key(header: FrameHeader) -> StreamKey:
    return (header.version, header.layer, header.sample_rate, header.free_format)


class _Source:
    """Sequential block reads over `[0, end)`, keeping the last block."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.start = 0
        self.data = b""

    def has(self, offset: int, length: int) -> bool:
        return self.start <= offset and offset + length <= self.start + len(self.data)

    def load(self, offset: int, length: int = BLOCK) -> Reading[None]:
        length = max(0, min(max(length, BLOCK), self.end - offset))
        data = yield ReadRequest(offset, length)
        if len(data) < length:
            raise TruncatedMedia(f"the source ended at {offset + len(data)}, before {self.end}")
        self.start, self.data = offset, bytes(data)

    def header(self, offset: int) -> Reading[FrameHeader | None]:
        if offset + 4 > self.end:
            return None
        if not self.has(offset, 4):
            yield from self.load(offset)
        return parse_header(self.data, offset - self.start)


class _Stream:
    """The frame layout the first frame fixes: shared fields and free-format size."""

    def __init__(self, first: FrameHeader, free_size: int) -> None:
        self.key = _key(first)
        self.free_size = free_size  # without padding; 0 unless free format
        self._sizes: dict[int, int] = {}

    def size(self, header: FrameHeader) -> int:
        """The size of a frame of this stream with `header`."""
        if header.free_format:
            return self.free_size + header.padding * header.slot
        return header.size()

    def size_of(self, data: bytes, at: int) -> int:
        """The size of the frame whose header is `data[at:at+4]`, 0 if it is not one of ours.

        Sizes are remembered per header word, less the bits sizes do not depend on,
        so a long walk parses each distinct header once.
        """
        word = _WORD.unpack_from(data, at)[0] & _SIZE_BITS
        size = self._sizes.get(word)
        if size is None:
            header = parse_header(data, at)
            size = self.size(header) if header is not None and _key(header) == self.key else 0
            if len(self._sizes) < 4096:
                self._sizes[word] = size
        return size


def _frame_at(source: _Source, stream: _Stream, offset: int) -> Reading[int]:
    """The size of the stream's frame at `offset`, 0 if there is none."""
    header = yield from source.header(offset)
    if header is None or _key(header) != stream.key:
        return 0
    size = stream.size(header)
    return size if offset + size <= source.end else 0


def _free_size(source: _Source, first: FrameHeader, offset: int) -> Reading[int]:
    """A free-format stream's frame size (no padding), from where its second frame starts."""
    window = min(MAX_FREE_FRAME * 2, source.end - offset)
    if not source.has(offset, window):
        yield from source.load(offset, window)
    data, base = source.data, source.start
    found = _CANDIDATE.search(data, offset + 4 - base, offset + MAX_FREE_FRAME - base)
    while found is not None:
        candidate = found.start()
        header = parse_header(data, candidate)
        if header is not None and _key(header) == _key(first):
            size = candidate + base - offset - first.padding * first.slot
            stream = _Stream(first, size)
            follow = candidate + base + stream.size(header)
            if follow == source.end or (yield from _frame_at(source, stream, follow)):
                return size
            if not source.has(offset, window):  # the check moved the window
                yield from source.load(offset, window)
                data, base = source.data, source.start
        found = _CANDIDATE.search(data, candidate + 1, offset + MAX_FREE_FRAME - base)
    return 0


def _byte_class(allowed: list[int]) -> bytes:
    return b"[" + b"".join(re.escape(bytes([value])) for value in allowed) + b"]"


# What can start a frame header: the sync, a version and layer that are not reserved,
# a bitrate index that is not 15 and a sample rate index that is not 3. Searching for it
# with `re` keeps junk (a megabyte of 0xFF) from costing a Python step per byte.
_CANDIDATE = re.compile(
    b"\xff"
    + _byte_class([b for b in range(0xE0, 0x100) if (b >> 3) & 3 != 1 and (b >> 1) & 3 != 0])
    + _byte_class([b for b in range(0x100) if b >> 4 != 15 and (b >> 2) & 3 != 3])
)


def _candidate(source: _Source, position: int, stop: int) -> Reading[int | None]:
    """The next offset in `[position, stop)` that may start a frame header."""
    while position < stop:
        if not source.has(position, 3):
            yield from source.load(position)
            if not source.has(position, 3):
                return None
        found = _CANDIDATE.search(source.data, position - source.start, stop - source.start)
        if found is not None:
            return source.start + found.start()
        # A header may straddle the block's end: the next block starts 2 bytes back.
        position = max(position + 1, source.start + len(source.data) - 2)
    return None


def _sync(source: _Source, offset: int, limit: int) -> Reading[tuple[int, _Stream] | None]:
    """The first frame at or after `offset` (within `limit` bytes) that a second confirms."""
    stop = min(source.end, offset + limit)
    position: int | None = offset
    free_probes = MAX_FREE_PROBES
    while position is not None:
        position = yield from _candidate(source, position, stop)
        if position is None:
            return None
        header = yield from source.header(position)
        if header is not None and (free_probes or not header.free_format):
            free = 0
            if header.free_format:
                free_probes -= 1
                free = yield from _free_size(source, header, position)
            if not header.free_format or free:
                stream = _Stream(header, free)
                size = stream.size(header)
                follow = position + size
                if size >= 4 and (
                    follow == source.end or (yield from _frame_at(source, stream, follow))
                ):
                    return position, stream
        position += 1
    return None


def _resync(source: _Source, stream: _Stream, offset: int, limit: int) -> Reading[int | None]:
    """The next frame of `stream` after junk at `offset`, None past `limit` bytes."""
    stop = min(source.end, offset + limit)
    position: int | None = offset + 1
    while position is not None:
        position = yield from _candidate(source, position, stop)
        if position is None:
            return None
        size = yield from _frame_at(source, stream, position)
        if size and (
            position + size == source.end or (yield from _frame_at(source, stream, position + size))
        ):
            return position
        position += 1
    return None


def mp3_preview_plan(size: int, seconds: float) -> Reading[Plan]:
    """The plan of the first `seconds` of an MPEG audio file of `size` bytes.

    ID3v2 tags are kept, the info frame (Xing/Info/LAME, VBRI) is rewritten
    for the frames kept, and tail tags (ID3v1, APEv2) are dropped.
    """
    check_preview(seconds)
    audio_start = 0
    for _ in range(MAX_ID3V2_TAGS):
        head = yield ReadRequest(audio_start, ID3V2_HEADER)
        tag = id3v2_size(head)
        if tag is None:
            break
        if audio_start + tag > size:
            raise TruncatedMedia(f"an ID3v2 tag at {audio_start} ends past the end of the file")
        audio_start += tag
    tail_length = min(size - audio_start, ID3V1_SIZE + APE_FOOTER)
    tail = yield ReadRequest(size - tail_length, tail_length)
    if len(tail) < tail_length:
        raise TruncatedMedia(f"the source is shorter than {size} bytes")
    source = _Source(max(audio_start, tail_tags_start(tail, size)))
    found = yield from _sync(source, audio_start, MAX_LEADING_JUNK)
    if found is None:
        raise NotMpegAudio("no MPEG audio frames found")
    first, stream = found
    header = yield from source.header(first)
    assert header is not None
    first_size = stream.size(header)
    if not source.has(first, first_size):
        yield from source.load(first, first_size)
    first_bytes = source.data[first - source.start : first - source.start + first_size]
    info = parse_info(first_bytes, header)
    # Whole frames from the stream's start up to `seconds`: the timeline players show
    # (the decoder's start delay is theirs to hide, as for the whole file).
    wanted = math.ceil(seconds * header.sample_rate / header.samples)
    frames = array("q")
    position = first + first_size if info is not None else first
    end = source.end
    while len(frames) < wanted and position < end:
        at = position - source.start
        if at < 0 or at + 4 > len(source.data):
            if position + 4 > end:
                break
            yield from source.load(position)
            at = 0
        frame_size = stream.size_of(source.data, at)
        if position + frame_size > end:
            frame_size = 0
        if not frame_size:
            found_at = yield from _resync(source, stream, position, MAX_GAP)
            if found_at is None:
                break
            position = found_at
            continue
        frames.append(position)
        position += frame_size
    if not frames:
        raise MalformedMedia("the file holds no MPEG audio frame")
    cut = position
    dropped = position < end and (
        bool((yield from _frame_at(source, stream, position)))
        or (yield from _resync(source, stream, position, MAX_GAP)) is not None
    )
    if info is None or not dropped:
        # Every frame kept: the source's own info frame still describes them.
        return Plan([Span(0, cut)])
    rewritten = rewrite_info(first_bytes, info, [offset - first for offset in frames], cut - first)
    return Plan([Span(0, first), rewritten, Span(first + first_size, cut - first - first_size)])


__all__ = ["InfoFrame", "mp3_preview_plan"]
