"""Plans for FLV outputs (audio only, clips, both) from a whole readable source."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Final, TypeAlias, cast

from vodedge.media.errors import NoAudioTrack, TruncatedMedia
from vodedge.media.flv.metadata import (
    Metadata,
    MetadataRewrite,
    decode_metadata,
    encode_script_tag,
    rewrite_metadata,
    source_keyframes,
)
from vodedge.media.flv.scan import TagIndex, scan_tags
from vodedge.media.flv.seek import NO_SEEK, FlvSeek, SeekValue, parse_seek, resolve_start
from vodedge.media.flv.tags import (
    AUDIO,
    CONFIG,
    FLAG_AUDIO,
    FRAME,
    SCRIPT,
    TAG_HEADER_SIZE,
    TAG_OVERHEAD,
    U32,
    VIDEO,
)
from vodedge.media.plan import Piece, Plan, Span
from vodedge.media.reading import Reading

_FILE_PREAMBLE = 13  # the rewritten file header and the zero PreviousTagSize


def flv_audio_plan(
    size: int, start: SeekValue = None, end: SeekValue = None, by_time: bool = False
) -> Reading[Plan]:
    """The plan of an audio-only FLV (optionally clipped) of a source of `size` bytes."""
    return _plan(size, True, parse_seek(start, end, by_time))


def flv_clip_plan(
    size: int,
    start: SeekValue = None,
    end: SeekValue = None,
    by_time: bool = False,
    audio_only: bool = False,
) -> Reading[Plan]:
    """The plan of an FLV clip; with `by_time`, it starts at a keyframe at or before `start`."""
    return _plan(size, audio_only, parse_seek(start, end, by_time))


def scan_for(size: int, audio_only: bool, seek: FlvSeek = NO_SEEK) -> Reading[TagIndex]:
    """Index the tags a plan for `seek` needs (up to `end`)."""
    return scan_tags(
        size,
        require_audio=audio_only,
        stop_offset=seek.end_offset,
        stop_ms=seek.end_ms,
        stop_kinds=(AUDIO,) if audio_only else (AUDIO, VIDEO),
    )


def _plan(size: int, audio_only: bool, seek: FlvSeek) -> Reading[Plan]:
    index = yield from scan_for(size, audio_only, seek)
    return build_plan(index, audio_only, seek)


@dataclass(slots=True)
class _Item:
    """A rewritten onMetaData tag of the output (its source tag is `tag`)."""

    tag: int
    meta: Metadata
    source: bytes = b""
    literal: bytes = b""


# One output tag: a source tag copied as it is (its position in the index), or an _Item.
# Plain ints, since an audio-only output has one per audio tag (84,000 in 30 minutes).
_Out: TypeAlias = "int | _Item"


def build_plan(index: TagIndex, audio_only: bool, seek: FlvSeek = NO_SEEK) -> Plan:
    """The plan for an already scanned source; raises what the source makes impossible."""
    if index.truncated is not None:
        raise TruncatedMedia(f"truncated FLV: {index.truncated}")
    # A scan stopped at `end` has not seen the whole file: its clip may just be silent.
    if audio_only and index.stopped_at is None and AUDIO not in index.kinds:
        raise NoAudioTrack("the FLV holds no audio tags")
    first = resolve_start(index, seek, audio_only)
    items = _select(index, audio_only, first)
    rewrite = MetadataRewrite(audio_only=audio_only, clipped=seek.clipped)
    metas = [item for item in items if isinstance(item, _Item)]
    for meta in metas:
        meta.literal = _encode(meta, rewrite)
    if metas and seek.by_time and seek.clipped:
        # Only a time-based clip, which needs the whole file anyway, gets exact layout
        # metadata. Any other transform can also be streamed (FlvFilter) before its
        # layout is known, and must be the same bytes however it is made: its
        # metadata is what the stream writes.
        _settle_first_metadata(index, items, metas[0], audio_only, seek, first)
    return _pieces(index, items, audio_only)


def _pieces(index: TagIndex, items: list[_Out], audio_only: bool) -> Plan:
    """The plan of the output's tags: runs of tags that lie back to back are one span."""
    offsets, sizes, back_ok = index.offsets, index.sizes, index.back_ok
    head: list[bytes] = [index.header.encode(FLAG_AUDIO if audio_only else None)]
    pieces: list[Piece] = []
    start = end = -1  # the span being extended
    for item in items:
        if isinstance(item, _Item):
            if end >= 0:
                pieces.append(Span(start, end - start))
                start = end = -1
            (pieces if pieces else head).append(item.literal)
            continue
        offset = offsets[item]
        if back_ok[item]:
            if offset != end:
                if end >= 0:
                    pieces.append(Span(start, end - start))
                start = offset
            end = offset + sizes[item] + TAG_OVERHEAD
            continue
        # A wrong PreviousTagSize: the tag is copied without it, and a right one written.
        if offset != end:
            if end >= 0:
                pieces.append(Span(start, end - start))
            start = offset
        pieces.append(Span(start, offset + TAG_HEADER_SIZE + sizes[item] - start))
        pieces.append(U32.pack(TAG_HEADER_SIZE + sizes[item]))
        start = end = -1
    if end >= 0:
        pieces.append(Span(start, end - start))
    if all(type(piece) is Span for piece in pieces):
        # Literals only ahead of spans that neither touch nor are empty: nothing to merge.
        return Plan.head_and_spans(b"".join(head), cast("list[Span]", pieces))
    return Plan([*head, *pieces])


def _select(index: TagIndex, audio_only: bool, first: int) -> list[_Out]:
    """The output's tags: metadata and the last sequence headers before `first`, then the
    kept tags from `first` on."""
    metadata = dict(index.metadata)
    kinds = index.kinds
    items: list[_Out] = []
    configs: dict[int, int] = {}
    for i in range(first):
        kind = kinds[i]
        if i in metadata:
            meta = _decoded(metadata[i])
            if meta is not None:
                items.append(_Item(i, meta, metadata[i]))
        elif (kind == AUDIO or (kind == VIDEO and not audio_only)) and index.role(i) == CONFIG:
            configs[kind] = i
    items.extend(sorted(configs.values()))
    kept: Sequence[int] = range(first, len(index))
    if audio_only:
        kept = list(compress(kept, map(_AUDIO_ONLY_KINDS.__contains__, kinds[first:])))
    head = len(items)
    items.extend(kept)
    # onMetaData tags are script tags, kept either way: each is where bisect finds it.
    for i, tag in index.metadata:
        if i >= first:
            meta = _decoded(tag)
            if meta is not None:
                items[head + bisect_left(kept, i)] = _Item(i, meta, tag)
    return items


_AUDIO_ONLY_KINDS: Final = frozenset((AUDIO, SCRIPT))


def _decoded(tag: bytes) -> Metadata | None:
    return decode_metadata(tag[TAG_HEADER_SIZE:])


def _encode(item: _Item, rewrite: MetadataRewrite) -> bytes:
    return encode_script_tag(item.source, item.meta, rewrite_metadata(item.meta.value, rewrite))


def _layout(index: TagIndex, items: list[_Out]) -> tuple[list[int], int]:
    """Each item's output offset, and the output size."""
    offsets: list[int] = []
    position = _FILE_PREAMBLE
    for item in items:
        offsets.append(position)
        position += len(item.literal) if isinstance(item, _Item) else index.unit_size(item)
    return offsets, position


def _settle_first_metadata(
    index: TagIndex,
    items: list[_Out],
    meta_item: _Item,
    audio_only: bool,
    seek: FlvSeek,
    first: int,
) -> None:
    """Give the first metadata the output's exact `filesize`, `keyframes` and clip duration.

    AMF0 numbers are fixed-size doubles, so encoding with placeholder values
    fixes the layout, and the real values then fit in the same bytes.
    """
    table = source_keyframes(meta_item.meta.value)
    entries = _keyframe_entries(index, items, table, audio_only, seek.clipped) if table else []
    rewrite = MetadataRewrite(
        audio_only=audio_only,
        clipped=seek.clipped,
        filesize=0,
        keyframes=([t for t, _ in entries], [0.0] * len(entries)) if entries else None,
        duration=_duration(index, items, audio_only, first) if seek.clipped else None,
    )
    meta_item.literal = _encode(meta_item, rewrite)
    offsets, total = _layout(index, items)
    rewrite.filesize = total
    if entries:
        rewrite.keyframes = ([t for t, _ in entries], [float(offsets[k]) for _, k in entries])
    settled = _encode(meta_item, rewrite)
    assert len(settled) == len(meta_item.literal), "metadata size moved with its values"
    meta_item.literal = settled


def _keyframe_entries(
    index: TagIndex,
    items: list[_Out],
    table: tuple[list[float], list[float]],
    audio_only: bool,
    clipped: bool,
) -> list[tuple[float, int]]:
    """(time, output item) pairs of the rebuilt keyframes index.

    Audio only: each time points at the audio frame that holds it. With video:
    each entry whose keyframe tag is in the output points at that tag.
    """
    times, positions = table
    out: list[tuple[float, int]] = []
    if audio_only:
        frames = [
            (index.stamps[item], k)
            for k, item in enumerate(items)
            if type(item) is int and index.kinds[item] == AUDIO and index.role(item) == FRAME
        ]
        if not frames:
            return []
        stamps = [stamp for stamp, _ in frames]
        for time in times:
            at = bisect_right(stamps, time * 1000.0 + 0.5) - 1
            if clipped and (at < 0 or time * 1000.0 > stamps[-1] + 0.5):
                continue
            out.append((time, frames[max(at, 0)][1]))
        return out
    by_tag = {item: k for k, item in enumerate(items) if type(item) is int}
    for time, position in zip(times, positions, strict=True):
        found = bisect_left(index.offsets, position)
        if found < len(index) and index.offsets[found] == position and found in by_tag:
            out.append((time, by_tag[found]))
    return out


def _duration(index: TagIndex, items: list[_Out], audio_only: bool, first: int) -> float | None:
    """Seconds from the clip's first media frame to the end of its last one."""
    kinds = (AUDIO,) if audio_only else (AUDIO, VIDEO)
    last: dict[int, list[int]] = {}
    low: int | None = None
    for i in items:
        if type(i) is not int or i < first or index.kinds[i] not in kinds:
            continue
        if index.role(i) != FRAME:
            continue
        stamp = index.stamps[i]
        low = stamp if low is None else min(low, stamp)
        recent = last.setdefault(index.kinds[i], [])
        recent.append(stamp)
        del recent[:-2]
    if low is None:
        return None
    high, gap = max((pair[-1], pair[-1] - pair[0]) for pair in last.values())
    return (high - low + gap) / 1000.0
