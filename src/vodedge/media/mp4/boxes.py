"""ISO BMFF box headers: parse (32-bit, 64-bit `largesize`, size 0) and write."""

from __future__ import annotations

from collections.abc import Iterator
from struct import Struct
from typing import NamedTuple

from vodedge.media.errors import MalformedMedia, TruncatedMedia

_U32 = Struct(">I")
_U64 = Struct(">Q")
_HEAD = Struct(">I4s")

# Boxes whose payload is nothing but child boxes; the walkers descend into these.
CONTAINERS = frozenset(
    {
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex",
        b"moof", b"traf", b"mfra", b"udta", b"tref", b"sinf", b"schi", b"gmhd",
        b"meta", b"ilst",
    }
)  # fmt: skip


class Box(NamedTuple):
    """A box located in some buffer or file: where it starts and how big it is."""

    type: bytes
    offset: int
    header_size: int
    size: int

    @property
    def end(self) -> int:
        """The offset just past this box."""
        return self.offset + self.size

    @property
    def payload_offset(self) -> int:
        """The offset of the first byte after the header."""
        return self.offset + self.header_size

    @property
    def name(self) -> str:
        """The box type as printable text."""
        return self.type.decode("latin-1")


def parse_header(data: bytes | memoryview, pos: int, limit: int, *, base: int = 0) -> Box:
    """Parse the box header at `data[pos:]`, the box ending no later than `limit`.

    `base` is added to offsets so that boxes read from a window of a file carry
    their file offsets. Size 0 means "to the end of the container" (`limit`).
    """
    if limit - pos < 8 or len(data) - pos < 8:
        raise TruncatedMedia(f"box header at offset {base + pos} is cut off")
    size, kind = _HEAD.unpack_from(data, pos)
    header = 8
    if size == 1:
        if limit - pos < 16 or len(data) - pos < 16:
            raise TruncatedMedia(f"64-bit box header at offset {base + pos} is cut off")
        size = _U64.unpack_from(data, pos + 8)[0]
        header = 16
    elif size == 0:
        size = limit - pos
    if kind == b"uuid":
        header += 16
    if size < header:
        raise MalformedMedia(
            f"box {_printable(kind)!r} at offset {base + pos} has size {size}, "
            f"smaller than its header"
        )
    if pos + size > limit:
        raise MalformedMedia(
            f"box {_printable(kind)!r} at offset {base + pos} (size {size}) "
            f"overruns its container, which ends at {base + limit}"
        )
    return Box(kind, base + pos, header, size)


def iter_boxes(data: bytes | memoryview, start: int, end: int, *, base: int = 0) -> Iterator[Box]:
    """Yield the boxes tiling `data[start:end]` (the payload of a container)."""
    pos = start
    while pos < end:
        # Some writers pad containers with 1-7 zero bytes; a zero 32-bit word is
        # a QuickTime terminator, not a box.
        if end - pos < 8 and not any(data[pos:end]):
            return
        box = parse_header(data, pos, end, base=base)
        yield box
        pos = box.end - base


def children_offset(data: bytes | memoryview, box: Box, *, base: int = 0) -> int:
    """Where the children of container `box` start: `meta` is a full box in ISO
    files but a plain container in QuickTime ones."""
    start = box.payload_offset - base
    if box.type == b"meta" and box.end - base - start >= 12 and not any(data[start : start + 4]):
        return start + 4
    return start


def children(data: bytes | memoryview, box: Box, *, base: int = 0) -> list[Box]:
    """The child boxes of container `box`, whose bytes are in `data` at `box.offset - base`."""
    return list(iter_boxes(data, children_offset(data, box, base=base), box.end - base, base=base))


def find(data: bytes | memoryview, box: Box, kind: bytes, *, base: int = 0) -> Box | None:
    """The first child of `box` with type `kind`, or None."""
    return next((child for child in children(data, box, base=base) if child.type == kind), None)


def header_bytes(kind: bytes, payload_size: int) -> bytes:
    """A box header for a payload of `payload_size` bytes; 64-bit only when needed."""
    total = payload_size + 8
    if total <= 0xFFFFFFFF:
        return _HEAD.pack(total, kind)
    return _HEAD.pack(1, kind) + _U64.pack(payload_size + 16)


def make_box(kind: bytes, payload: bytes) -> bytes:
    """A whole box: header plus payload."""
    return header_bytes(kind, len(payload)) + payload


def header_size_for(payload_size: int) -> int:
    """The header size `header_bytes` uses for a payload of this size."""
    return 8 if payload_size + 8 <= 0xFFFFFFFF else 16


def _printable(kind: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in kind)


def printable_type(kind: bytes) -> str:
    """The box type as the file spells it: Mac Roman above 0x7f (`©too`), control bytes escaped."""
    return "".join(
        chr(b) if 32 <= b < 127 else bytes([b]).decode("mac_roman") if b > 127 else f"\\x{b:02x}"
        for b in kind
    )
