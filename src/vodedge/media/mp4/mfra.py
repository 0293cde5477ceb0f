"""The movie fragment random access box (`mfra`): read the source's, write the output's."""

from __future__ import annotations

from collections.abc import Mapping
from struct import Struct
from typing import NamedTuple

from vodedge.media.errors import MalformedMedia
from vodedge.media.mp4.boxes import children, make_box, parse_header

_U32 = Struct(">I")
_U64 = Struct(">Q")


class RandomAccess(NamedTuple):
    """One `tfra` entry: a sync sample's time and where its fragment is."""

    time: int
    moof_offset: int
    traf_number: int
    trun_number: int
    sample_number: int


class TrackRandomAccess(NamedTuple):
    """A `tfra` box: a track's entries and the field widths it used."""

    track_id: int
    sizes: tuple[int, int, int]  # bytes of traf, trun and sample numbers
    entries: list[RandomAccess]


def _uint(payload: memoryview, pos: int, width: int) -> int:
    return int.from_bytes(payload[pos : pos + width], "big")


def parse_mfra(data: bytes | memoryview) -> list[TrackRandomAccess]:
    """The `tfra` tables of a whole `mfra` box."""
    view = memoryview(data)
    mfra = parse_header(view, 0, len(view))
    out: list[TrackRandomAccess] = []
    for tfra in (b for b in children(view, mfra) if b.type == b"tfra"):
        payload = view[tfra.payload_offset : tfra.end]
        if len(payload) < 16:
            raise MalformedMedia("tfra box is too short")
        version = payload[0]
        track_id = _U32.unpack_from(payload, 4)[0]
        packed = _U32.unpack_from(payload, 8)[0]
        sizes = ((packed >> 4 & 3) + 1, (packed >> 2 & 3) + 1, (packed & 3) + 1)
        count = _U32.unpack_from(payload, 12)[0]
        head = 16 if version == 1 else 8
        width = head + sum(sizes)
        if count > (len(payload) - 16) // width:
            raise MalformedMedia(f"tfra claims {count} entries, more than its box holds")
        entries: list[RandomAccess] = []
        pos = 16
        for _ in range(count):
            if version == 1:
                time, moof = (
                    _U64.unpack_from(payload, pos)[0],
                    _U64.unpack_from(payload, pos + 8)[0],
                )
            else:
                time, moof = (
                    _U32.unpack_from(payload, pos)[0],
                    _U32.unpack_from(payload, pos + 4)[0],
                )
            pos += head
            numbers = []
            for size in sizes:
                numbers.append(_uint(payload, pos, size))
                pos += size
            entries.append(RandomAccess(time, moof, *numbers))
        out.append(TrackRandomAccess(track_id, sizes, entries))
    return out


def build_mfra(
    tables: list[TrackRandomAccess],
    kept: Mapping[int, Mapping[int, tuple[int, int]]],
) -> bytes:
    """An `mfra` for the output, or b"" when nothing is left to index.

    `kept` maps a track_ID to {source moof offset: (output moof offset, traf number)}.
    """
    boxes: list[bytes] = []
    for table in tables:
        moved = kept.get(table.track_id)
        if not moved:
            continue
        entries = [(e, moved[e.moof_offset]) for e in table.entries if e.moof_offset in moved]
        if not entries:
            continue
        version = 1 if any(e.time > 0xFFFFFFFF or at > 0xFFFFFFFF for e, (at, _) in entries) else 0
        sizes = (max(table.sizes[0], 1), table.sizes[1], table.sizes[2])
        if any(number >= 1 << (8 * sizes[0]) for _, (_, number) in entries):
            sizes = (4, sizes[1], sizes[2])
        packed = (sizes[0] - 1) << 4 | (sizes[1] - 1) << 2 | (sizes[2] - 1)
        parts = [bytes([version, 0, 0, 0]), _U32.pack(table.track_id), _U32.pack(packed)]
        parts.append(_U32.pack(len(entries)))
        for entry, (at, number) in entries:
            field = _U64 if version == 1 else _U32
            parts += [field.pack(entry.time), field.pack(at)]
            parts.append(number.to_bytes(sizes[0], "big"))
            parts.append(entry.trun_number.to_bytes(sizes[1], "big"))
            parts.append(entry.sample_number.to_bytes(sizes[2], "big"))
        boxes.append(make_box(b"tfra", b"".join(parts)))
    if not boxes:
        return b""
    body = b"".join(boxes)
    size = len(body) + 8 + 16  # the mfra header and the mfro box that closes it
    return make_box(b"mfra", body + make_box(b"mfro", bytes(4) + _U32.pack(size)))
