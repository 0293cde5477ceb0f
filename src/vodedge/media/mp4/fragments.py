"""Movie fragments (`moof` + `mdat`): locate each track run's data and rebuild fragments."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Mapping
from itertools import accumulate
from struct import Struct
from typing import NamedTuple

from vodedge.media.errors import MalformedMedia, UnsupportedMedia
from vodedge.media.mp4.boxes import Box, children, header_bytes, header_size_for, make_box
from vodedge.media.mp4.movie import TrackDefaults

_U32 = Struct(">I")
_I32 = Struct(">i")
_U64 = Struct(">Q")

TFHD_BASE_DATA_OFFSET = 0x000001
TFHD_DEFAULT_BASE_IS_MOOF = 0x020000
TRUN_DATA_OFFSET = 0x000001
TRUN_FIRST_SAMPLE_FLAGS = 0x000004
TRUN_DURATION = 0x000100
TRUN_SIZE = 0x000200
TRUN_FLAGS = 0x000400
TRUN_CTO = 0x000800

# Optional tfhd fields in flag order, with their widths.
_TFHD_FIELDS = ((0x01, 8), (0x02, 4), (0x08, 4), (0x10, 4), (0x20, 4))


class TrackRun(NamedTuple):
    """One `trun`: its box, where its samples' data lies in the source, how long it is."""

    box: Box
    data_offset: int
    data_size: int
    sample_count: int


class TrackFragment(NamedTuple):
    """One `traf`: its track, its `tfhd` and its runs."""

    box: Box
    track_id: int
    tfhd: Box
    tfhd_flags: int
    runs: list[TrackRun]


class Fragment(NamedTuple):
    """A rebuilt fragment: the new `moof` and the source spans its `mdat` holds."""

    moof: bytes
    mdat_header: bytes
    spans: list[tuple[int, int]]
    source_offset: int = 0
    traf_numbers: dict[int, int] | None = None  # track_ID -> 1-based traf index in `moof`

    @property
    def size(self) -> int:
        """Output bytes of the new moof and mdat together."""
        return len(self.moof) + len(self.mdat_header) + sum(n for _, n in self.spans)


def _tfhd(payload: memoryview) -> tuple[int, int, int | None, int | None]:
    """(flags, track_id, base_data_offset, default_sample_size) of a `tfhd` payload."""
    if len(payload) < 8:
        raise MalformedMedia("tfhd box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    track_id = _U32.unpack_from(payload, 4)[0]
    pos = 8
    base: int | None = None
    default_size: int | None = None
    for flag, width in _TFHD_FIELDS:
        if not flags & flag:
            continue
        if len(payload) < pos + width:
            raise MalformedMedia("tfhd box is shorter than its flags say")
        if flag == 0x01:
            base = _U64.unpack_from(payload, pos)[0]
        elif flag == 0x10:
            default_size = _U32.unpack_from(payload, pos)[0]
        pos += width
    return flags, track_id, base, default_size


def _trun_layout(flags: int) -> tuple[int, int, int | None]:
    """(header bytes before the sample records, record size, size field index)."""
    header = 8 + 4 * bool(flags & TRUN_DATA_OFFSET) + 4 * bool(flags & TRUN_FIRST_SAMPLE_FLAGS)
    fields = [f for f in (TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO) if flags & f]
    size_index = fields.index(TRUN_SIZE) if TRUN_SIZE in fields else None
    return header, 4 * len(fields), size_index


def _trun_data(payload: memoryview, default_size: int) -> tuple[int | None, int, int]:
    """(data_offset or None, total sample bytes, sample count) of a `trun` payload."""
    if len(payload) < 8:
        raise MalformedMedia("trun box is too short")
    flags = int.from_bytes(payload[1:4], "big")
    count = _U32.unpack_from(payload, 4)[0]
    header, record, size_index = _trun_layout(flags)
    if len(payload) < header or (record and count > (len(payload) - header) // record):
        raise MalformedMedia(f"trun claims {count} samples, more than its box holds")
    offset = _I32.unpack_from(payload, 8)[0] if flags & TRUN_DATA_OFFSET else None
    if size_index is None:
        return offset, default_size * count, count
    words = record // 4
    values = Struct(f">{count * words}I").unpack_from(payload, header)
    return offset, sum(values[size_index::words]), count


def parse_fragment(
    data: memoryview, moof: Box, trex: Mapping[int, TrackDefaults], source_size: int
) -> list[TrackFragment]:
    """The track fragments of a `moof` held in `data` (offsets relative to the file).

    Data positions follow ISO/IEC 14496-12 8.8.7: an explicit base offset, else
    the moof's start (default-base-is-moof, or the first traf), else the end
    of the previous traf's data.
    """
    base_at = moof.offset
    fragments: list[TrackFragment] = []
    previous_end = moof.offset
    trafs = [c for c in children(data, moof, base=base_at) if c.type == b"traf"]
    for index, traf in enumerate(trafs):
        kids = children(data, traf, base=base_at)
        headers = [k for k in kids if k.type == b"tfhd"]
        if len(headers) != 1:
            raise MalformedMedia(f"traf at offset {traf.offset} has {len(headers)} tfhd boxes")
        tfhd = headers[0]
        flags, track_id, base, default_size = _tfhd(
            data[tfhd.payload_offset - base_at : tfhd.end - base_at]
        )
        if base is None:
            base = moof.offset if flags & TFHD_DEFAULT_BASE_IS_MOOF or index == 0 else previous_end
        if default_size is None:
            defaults = trex.get(track_id)
            default_size = defaults.size if defaults is not None else 0
        runs: list[TrackRun] = []
        position = base
        for trun in (k for k in kids if k.type == b"trun"):
            offset, size, count = _trun_data(
                data[trun.payload_offset - base_at : trun.end - base_at], default_size
            )
            if offset is not None:
                position = base + offset
            if position < 0 or position + size > source_size:
                raise MalformedMedia(
                    f"fragment data of track {track_id} at {position} (+{size}) "
                    f"lies outside the file"
                )
            runs.append(TrackRun(trun, position, size, count))
            position += size
        previous_end = position
        fragments.append(TrackFragment(traf, track_id, tfhd, flags, runs))
    return fragments


def _rewrite_tfhd(payload: memoryview) -> bytes:
    """A `tfhd` payload whose base is the moof: base_data_offset dropped."""
    flags = int.from_bytes(payload[1:4], "big")
    body = bytes(payload[8:])
    if flags & TFHD_BASE_DATA_OFFSET:
        body = body[8:]
    new_flags = (flags & ~TFHD_BASE_DATA_OFFSET) | TFHD_DEFAULT_BASE_IS_MOOF
    return bytes([payload[0]]) + new_flags.to_bytes(3, "big") + bytes(payload[4:8]) + body


def _rewrite_trun(payload: memoryview) -> tuple[bytes, int]:
    """A `trun` payload that carries a data_offset, and where that field sits in it."""
    flags = int.from_bytes(payload[1:4], "big")
    head = bytes([payload[0]]) + (flags | TRUN_DATA_OFFSET).to_bytes(3, "big") + bytes(payload[4:8])
    rest = bytes(payload[12:]) if flags & TRUN_DATA_OFFSET else bytes(payload[8:])
    return head + b"\0\0\0\0" + rest, 8


def rebuild_fragment(
    data: memoryview, moof: Box, fragments: list[TrackFragment], keep: Collection[int]
) -> Fragment | None:
    """The fragment holding only the track fragments of `keep`, or None if none is kept.

    Offsets in the new fragment are relative to its own moof, so its bytes do
    not depend on where it lands in the output.
    """
    kept = [frag for frag in fragments if frag.track_id in keep]
    if not kept:
        return None
    base_at = moof.offset
    parts: list[bytes] = []
    patches: list[tuple[int, TrackRun]] = []  # (position in moof payload, run)
    position = 0
    for child in children(data, moof, base=base_at):
        if child.type == b"traf":
            continue
        raw = bytes(data[child.offset - base_at : child.end - base_at])
        parts.append(raw)
        position += len(raw)
    for frag in kept:
        traf_parts: list[bytes] = []
        traf_patches: list[tuple[int, TrackRun]] = []
        inner = 0
        runs = iter(frag.runs)
        for child in children(data, frag.box, base=base_at):
            payload = data[child.payload_offset - base_at : child.end - base_at]
            if child.type == b"saio":
                raise UnsupportedMedia("encrypted fragments (saio offsets) are not supported")
            if child.type == b"tfhd":
                raw = make_box(b"tfhd", _rewrite_tfhd(payload))
            elif child.type == b"trun":
                new_payload, at = _rewrite_trun(payload)
                raw = make_box(b"trun", new_payload)
                traf_patches.append((inner + len(raw) - len(new_payload) + at, next(runs)))
            else:
                raw = bytes(data[child.offset - base_at : child.end - base_at])
            traf_parts.append(raw)
            inner += len(raw)
        traf_payload = b"".join(traf_parts)
        traf = make_box(b"traf", traf_payload)
        traf_header = len(traf) - len(traf_payload)
        patches.extend((position + traf_header + at, run) for at, run in traf_patches)
        parts.append(traf)
        position += len(traf)
    moof_payload = bytearray(b"".join(parts))
    moof_header = header_size_for(len(moof_payload))

    # Lay the kept runs out in source order, merging overlaps, so spans ascend.
    ordered = sorted({(run.data_offset, run.data_size) for _, run in patches if run.data_size})
    spans: list[list[int]] = []
    for start, size in ordered:
        if spans and start <= spans[-1][0] + spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], start + size - spans[-1][0])
        else:
            spans.append([start, size])
    total = sum(size for _, size in spans)
    mdat_header = header_bytes(b"mdat", total)
    data_start = moof_header + len(moof_payload) + len(mdat_header)
    span_starts = [start for start, _ in spans]
    out_starts = [0, *accumulate(size for _, size in spans)]
    for at, run in patches:
        relative = data_start
        if run.data_size:
            index = bisect_right(span_starts, run.data_offset) - 1
            relative += out_starts[index] + run.data_offset - span_starts[index]
        if relative > 0x7FFFFFFF:
            raise UnsupportedMedia("a fragment holds more than 2 GiB of data")
        _I32.pack_into(moof_payload, at, relative)
    numbers = {frag.track_id: index for index, frag in enumerate(kept, start=1)}
    return Fragment(
        make_box(b"moof", bytes(moof_payload)),
        mdat_header,
        [(s, n) for s, n in spans],
        moof.offset,
        numbers,
    )
