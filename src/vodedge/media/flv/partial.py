"""FLV seeks planned from part of the file: its head and the tags from the seek's keyframe on.

A cold object fetched as ranges (README "The cache") has no tag index: building one
reads every tag header, i.e. the whole file. A seek needs less when the file's first
onMetaData carries a `keyframes` index (`filepositions`, `times`): the head (the tags
before the first keyframe it names: metadata and sequence headers) and the tags from
the seek's keyframe on. `read_partial_index` reads those two stretches as one virtual
file (the head, then the tail), scans it, and gives the `FlvIndex` of their tags at
their real offsets, so `FlvIndex.plan` makes the plan the whole file's index makes.

What it takes on trust, where a walk of every tag would know: that the tags between the
head and the keyframe hold no sequence header or onMetaData (writers put them at the
start) and no timestamp later than the keyframe's. What it checks: the head's tags end
exactly at the first indexed keyframe; a byte seek names an indexed position; a tag
starts there (the PreviousTagSize before it names a tag that ends there), and it is a
video keyframe. Anything else gets None: the caller then reads the whole file.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from vodedge.media.errors import MediaError
from vodedge.media.flv.index import FlvIndex, index_tags
from vodedge.media.flv.metadata import decode_metadata, is_onmetadata, source_keyframes
from vodedge.media.flv.scan import BLOCK_SIZE, TagIndex, scan_tags
from vodedge.media.flv.seek import FlvSeek
from vodedge.media.flv.tags import (
    AUDIO,
    SCRIPT,
    TAG_HEAD,
    TAG_HEADER_SIZE,
    TAG_OVERHEAD,
    U32,
    VIDEO,
    is_video_keyframe,
    parse_file_header,
    tag_timestamp,
)
from vodedge.media.plan import Plan, Span
from vodedge.media.reading import Reading, ReadRequest

# The first read: the file header and (usually) the whole onMetaData.
HEAD_READ: Final = 64 << 10
# A keyframes index names its first keyframe after the head's tags: past this, the
# head is not a head (the whole file is read instead).
MAX_HEAD: Final = 8 << 20
MAX_METADATA: Final = 16 << 20
# A clip's scan reads its tags in blocks this big: the last one runs past the clip's end
# (a cold object's reads are what is fetched), the others are no more requests than
# the clip's own bytes need.
CLIP_BLOCK: Final = 128 << 10


@dataclass(frozen=True, slots=True)
class FlvHead:
    """The tags before the first keyframe the onMetaData's `keyframes` index names."""

    tags: TagIndex
    end: int  # where they end: the first indexed keyframe
    # The index: (time, position) in time order, and its positions.
    pairs: list[tuple[float, float]]
    positions: frozenset[float]


def wants_partial(seek: FlvSeek, audio_only: bool) -> bool:
    """Whether a partial read can answer `seek`: a start, by byte offset, or by time on
    the video's keyframes (an audio-only time seek starts at an audio frame, which the
    keyframes index does not locate)."""
    return seek.start is not None and not (seek.by_time and audio_only)


def read_head(size: int) -> Reading[FlvHead | None]:
    """The head of an FLV of `size` bytes, or None when its first tag is not an
    onMetaData with a usable `keyframes` index."""
    data = yield ReadRequest(0, min(size, HEAD_READ))
    header = parse_file_header(memoryview(data)[:9])
    at = header.data_offset + 4
    if at + TAG_HEADER_SIZE > len(data):
        return None
    word = U32.unpack_from(data, at)[0]
    kind, length = (word >> 24) & 0x1F, word & 0xFFFFFF
    if kind != SCRIPT or word >> 24 & 0x20 or length > MAX_METADATA:
        return None
    end = at + TAG_HEADER_SIZE + length
    if end > len(data):
        if end > size:
            return None
        data = yield ReadRequest(0, end)
        if len(data) < end:
            return None
    body = bytes(data[at + TAG_HEADER_SIZE : end])
    if not is_onmetadata(body):
        return None
    try:
        meta = decode_metadata(body)
    except MediaError:
        return None
    table = source_keyframes(meta.value) if meta is not None else None
    if not table or not table[1]:
        return None
    first = min(table[1])
    if not first.is_integer() or not end < first <= min(size, MAX_HEAD):
        return None
    # The tags up to the first keyframe: a scan of a file that ends there.
    tags = yield from scan_tags(int(first))
    if tags.truncated is not None or not tags.metadata or tags.metadata[0][0] != 0:
        return None
    if tags.offsets[-1] + tags.sizes[-1] + TAG_OVERHEAD != first:
        return None  # the last tag ends short of the keyframe: not where the index says
    return FlvHead(tags, int(first), sorted(zip(*table, strict=True)), frozenset(table[1]))


def keyframe_of(head: FlvHead, seek: FlvSeek) -> int | None:
    """Where the seek's first tag is, by the index: a byte start it names, or the last
    keyframe at or before a time start (None: only a walk of the tags can tell)."""
    if seek.start is None:
        return None
    if not seek.by_time:
        return int(seek.start) if float(seek.start) in head.positions else None
    found = [position for time, position in head.pairs if time <= seek.start]
    if not found or not found[-1].is_integer() or found[-1] < head.end:
        return None
    return int(found[-1])


def verify_start(size: int, head: FlvHead, start: int) -> Reading[bool]:
    """Whether a video keyframe tag starts at `start` (at or past the head's end): the
    PreviousTagSize before it names a tag that ends there."""
    if not head.end <= start < size:
        return False
    if start > head.end:
        # The tag before `start` must end there: its PreviousTagSize, then its header.
        back = yield ReadRequest(start - 4, 4)
        if len(back) < 4:
            return False
        previous = U32.unpack_from(back)[0]
        before = start - 4 - previous
        if previous < TAG_HEADER_SIZE or before < head.end:
            return False
        prior = yield ReadRequest(before, TAG_HEADER_SIZE)
        if len(prior) < TAG_HEADER_SIZE:
            return False
        word = U32.unpack_from(prior)[0]
        if (word >> 24) & 0x1F not in (AUDIO, VIDEO, SCRIPT):
            return False
        if (word & 0xFFFFFF) != previous - TAG_HEADER_SIZE:
            return False
    tag = yield ReadRequest(start, TAG_HEADER_SIZE + 2)
    if len(tag) < TAG_HEADER_SIZE + 1:
        return False
    word = U32.unpack_from(tag)[0]
    length = word & 0xFFFFFF
    b1 = tag[TAG_HEADER_SIZE + 1] if len(tag) > TAG_HEADER_SIZE + 1 else 0
    return (word >> 24) & 0x1F == VIDEO and is_video_keyframe(length, tag[TAG_HEADER_SIZE], b1)


def read_partial_index(
    size: int, head: FlvHead, start: int, seek: FlvSeek, audio_only: bool
) -> Reading[FlvIndex | None]:
    """The index of the head's tags and the tags from `start` (a keyframe) on, up to
    where `seek` ends, at their real offsets; None when `start` is not a keyframe tag."""
    if not (yield from verify_start(size, head, start)):
        return None
    shift = start - head.end
    stop_offset = seek.end_offset
    if stop_offset is not None:
        stop_offset = max(stop_offset - shift, head.end)
    scan = scan_tags(
        size - shift,
        stop_offset=stop_offset,
        stop_ms=seek.end_ms,
        stop_kinds=(AUDIO,) if audio_only else (AUDIO, VIDEO),
        block=CLIP_BLOCK if seek.end is not None else BLOCK_SIZE,
    )
    tags = yield from _shifted(scan, head.end, shift)
    if len(tags) <= len(head.tags) or tags.offsets[len(head.tags)] != head.end:
        return None  # the head read differently this time, or no tag at the keyframe
    if tags.truncated is not None:
        return None  # what a truncated file holds only a whole scan can tell
    if tags.stopped_at is not None:
        # The index plans a clip of the tags before its first tag past the end; a scan
        # stops short of that tag: it is added, as the whole file's index has it.
        at = tags.stopped_at + shift
        data = yield ReadRequest(at, TAG_HEADER_SIZE + 2)
        if len(data) < TAG_HEADER_SIZE:
            return None
        w0, w1, w2, b1 = TAG_HEAD.unpack_from(bytes(data).ljust(TAG_HEAD.size, b"\0"))
        length = w0 & 0xFFFFFF
        tags.offsets.append(tags.stopped_at)
        tags.sizes.append(length)
        tags.stamps.append(tag_timestamp(w1))
        tags.kinds.append((w0 >> 24) & 0x1F)
        tags.first_bytes.append((w2 & 0xFF if length else 0) << 8 | (b1 if length >= 2 else 0))
        tags.back_ok.append(0)
    real = np.asarray(tags.offsets, dtype=np.int64)
    real[len(head.tags) :] += shift
    return index_tags(replace(tags, offsets=array("q", real.tolist()), size=size, stopped_at=None))


def _shifted(scan: Reading[TagIndex], seam: int, shift: int) -> Reading[TagIndex]:
    """`scan` over the file without bytes `[seam, seam + shift)`: its reads past `seam`
    are answered from `shift` bytes further on."""
    try:
        request = next(scan)
        while True:
            offset, length = request.offset, request.length
            if offset + length <= seam:
                data = yield ReadRequest(offset, length)
            elif offset >= seam:
                data = yield ReadRequest(offset + shift, length)
            else:
                low = yield ReadRequest(offset, seam - offset)
                if len(low) < seam - offset:
                    data = low
                else:
                    high = yield ReadRequest(seam + shift, offset + length - seam)
                    data = bytes(low) + bytes(high)
            request = scan.send(data)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def partial_plan(
    size: int, seek: FlvSeek, audio_only: bool
) -> Reading[tuple[Plan, list[tuple[int, int]]] | None]:
    """The plan of `seek` read from the head and the tags from its keyframe on, and the
    source ranges it read; None when only the whole file can tell (see the module)."""
    if not wants_partial(seek, audio_only):
        return None
    head = yield from read_head(size)
    if head is None:
        return None
    start = keyframe_of(head, seek)
    if start is None:
        return None
    index = yield from read_partial_index(size, head, start, seek, audio_only)
    if index is None:
        return None
    plan = index.plan(audio_only, seek)
    if plan is None:
        return None
    if not all(partial_covers(span, head.end, start) for span in plan.spans()):
        return None  # it would need tags between the head and the keyframe
    return plan, [(0, size)] if start == head.end else [(0, head.end), (start, size)]


def partial_covers(span: Span, head_end: int, start: int) -> bool:
    """Whether `span` lies within the stretches read: the head (`[0, head_end)`) and the
    tags from `start` on (one stretch when `start` is the head's end)."""
    return span.end <= head_end or span.offset >= start or start == head_end
