"""The info frame: Xing/Info (with the LAME tag) or VBRI, read and rewritten.

An info frame is a silent first frame whose payload says how many frames
and bytes follow, so players show a duration and can seek without scanning.
A preview keeps it, rewritten to describe the preview instead of the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from struct import Struct

from vodedge.media.mp3.header import FrameHeader

XING_FRAMES, XING_BYTES, XING_TOC, XING_QUALITY = 1, 2, 4, 8
TOC_SIZE = 100
VBRI_OFFSET = 36  # the header and 32 bytes, whatever the channel mode
LAME_TAG_SIZE = 36
_U16 = Struct(">H")
_U32 = Struct(">I")
# tag, version, delay, quality, bytes, frames, TOC entries, scale, entry size, frames per entry
_VBRI = Struct(">4sHHHIIHHHH")


@dataclass(frozen=True, slots=True)
class InfoFrame:
    """What an info frame says, and where in it each rewritable field sits."""

    kind: str  # "xing", "info" or "vbri"
    frames: int | None
    bytes: int | None
    fields: dict[str, int]  # field name -> offset in the frame
    toc_entries: int = 0  # VBRI
    toc_scale: int = 0
    toc_entry_size: int = 0
    toc_frames_per_entry: int = 0


def parse_info(frame: bytes, header: FrameHeader) -> InfoFrame | None:
    """The info frame `frame` is, or None if it is an ordinary audio frame."""
    if header.layer != 3:
        return None
    at = 4 + (2 if header.protected else 0) + header.side_info()
    tag = frame[at : at + 4]
    if tag in (b"Xing", b"Info"):
        return _parse_xing(frame, at, "xing" if tag == b"Xing" else "info")
    if frame[VBRI_OFFSET : VBRI_OFFSET + 4] == b"VBRI":
        return _parse_vbri(frame)
    return None


def _parse_xing(frame: bytes, at: int, kind: str) -> InfoFrame | None:
    if len(frame) < at + 8:
        return None
    flags = _U32.unpack_from(frame, at + 4)[0]
    pos = at + 8
    fields: dict[str, int] = {}
    values: dict[str, int] = {}
    for flag, name, width in (
        (XING_FRAMES, "frames", 4),
        (XING_BYTES, "bytes", 4),
        (XING_TOC, "toc", TOC_SIZE),
        (XING_QUALITY, "quality", 4),
    ):
        if not flags & flag:
            continue
        if len(frame) < pos + width:
            return None
        fields[name] = pos
        if width == 4:
            values[name] = _U32.unpack_from(frame, pos)[0]
        pos += width
    # The LAME tag follows the fields present; encoders name themselves in its first bytes.
    if len(frame) >= pos + LAME_TAG_SIZE and _is_name(frame[pos : pos + 4]):
        fields["lame"] = pos
    return InfoFrame(kind, values.get("frames"), values.get("bytes"), fields)


def _parse_vbri(frame: bytes) -> InfoFrame | None:
    if len(frame) < VBRI_OFFSET + _VBRI.size:
        return None
    _, _, _, _, size, frames, entries, scale, entry_size, per_entry = _VBRI.unpack_from(
        frame, VBRI_OFFSET
    )
    fields = {"bytes": VBRI_OFFSET + 10, "frames": VBRI_OFFSET + 14, "entries": VBRI_OFFSET + 18}
    table = VBRI_OFFSET + _VBRI.size
    if 1 <= entry_size <= 4 and scale and per_entry and table + entries * entry_size <= len(frame):
        fields["toc"] = table
    else:
        entries = 0
    return InfoFrame("vbri", frames, size, fields, entries, scale, entry_size, per_entry)


def _is_name(data: bytes) -> bool:
    return data[:1].isalpha() and all(32 <= byte < 127 for byte in data)


def crc16(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16/ARC (polynomial 0x8005, reflected), the LAME tag's checksum."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rewrite_info(frame: bytes, info: InfoFrame, offsets: Sequence[int], total_bytes: int) -> bytes:
    """`frame` describing a stream of the audio frames at `offsets` and `total_bytes` bytes.

    `offsets` are the kept audio frames' positions relative to the info
    frame's start, and `total_bytes` runs from that start to the cut.
    """
    out = bytearray(frame)
    count = len(offsets)
    fields = info.fields
    if "frames" in fields:
        _U32.pack_into(out, fields["frames"], count)
    if "bytes" in fields:
        _U32.pack_into(out, fields["bytes"], total_bytes)
    if info.kind == "vbri":
        _rewrite_vbri_toc(out, info, offsets, total_bytes)
        return bytes(out)
    if "toc" in fields and total_bytes:
        at = fields["toc"]
        for i in range(TOC_SIZE):
            position = offsets[i * count // TOC_SIZE] if count else 0
            out[at + i] = min(255, 256 * position // total_bytes) if i else 0
    if "lame" in fields:
        lame = fields["lame"]
        # The source's end padding belongs to its last frame, not to the preview's.
        out[lame + 22] &= 0xF0
        out[lame + 23] = 0
        _U32.pack_into(out, lame + 28, total_bytes)
        _U16.pack_into(out, lame + 34, crc16(out[: lame + 34]))
    return bytes(out)


def _rewrite_vbri_toc(
    out: bytearray, info: InfoFrame, offsets: Sequence[int], total_bytes: int
) -> None:
    if "toc" not in info.fields:
        return
    per_entry = info.toc_frames_per_entry
    needed = -(-len(offsets) // per_entry)
    entries = min(info.toc_entries, needed)
    limit = (1 << (8 * info.toc_entry_size)) - 1
    table = info.fields["toc"]
    for index in range(info.toc_entries):
        value = 0
        if index < entries:
            first = offsets[index * per_entry]
            stop_index = (index + 1) * per_entry
            stop = offsets[stop_index] if stop_index < len(offsets) else total_bytes
            value = min(limit, (stop - first) // info.toc_scale)
        at = table + index * info.toc_entry_size
        out[at : at + info.toc_entry_size] = value.to_bytes(info.toc_entry_size, "big")
    _U16.pack_into(out, info.fields["entries"], entries)
