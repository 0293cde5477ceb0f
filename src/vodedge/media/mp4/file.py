"""The top level of an ISO BMFF file: which boxes it holds and where."""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

from vodedge.media.errors import (
    LimitExceeded,
    MalformedMedia,
    NoMovieBox,
    NotIsoBmff,
    TruncatedMedia,
)
from vodedge.media.mp4.boxes import Box, parse_header, printable_type
from vodedge.media.reading import Reading, ReadRequest

DEFAULT_MAX_MOOV = 64 << 20
# An ftyp lists brands; no real one comes near this.
MAX_FTYP = 64 << 10

# Boxes that may open an ISO BMFF / QuickTime file; anything else is not one.
FIRST_BOXES = frozenset(
    {
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid",
        b"styp", b"sidx", b"moof", b"pdin", b"meta", b"junk", b"PICT",
    }
)  # fmt: skip

_U32 = Struct(">I")


class TopLevel(NamedTuple):
    """The top-level boxes of a file of `size` bytes, in file order."""

    size: int
    boxes: list[Box]

    def first(self, kind: bytes) -> Box | None:
        """The first top-level box of this type, or None."""
        return next((box for box in self.boxes if box.type == kind), None)

    def all(self, kind: bytes) -> list[Box]:
        """Every top-level box of this type."""
        return [box for box in self.boxes if box.type == kind]

    def movie_box(self) -> Box:
        """The one `moov` box; a file with none or two is refused."""
        movies = self.all(b"moov")
        if not movies:
            raise NoMovieBox("the file has no moov box")
        if len(movies) > 1:
            raise MalformedMedia(f"the file has {len(movies)} moov boxes")
        return movies[0]


def scan_top_level(size: int) -> Reading[TopLevel]:
    """Walk the top-level box headers of a file of `size` bytes."""
    if size < 8:
        raise NotIsoBmff("the input is too short to be an ISO BMFF file")
    boxes: list[Box] = []
    pos = 0
    while size - pos >= 8:
        head = yield ReadRequest(pos, 16)
        if len(head) < 8:
            raise TruncatedMedia(f"the source ended at {pos + len(head)}, before {size}")
        if not boxes and head[4:8] not in FIRST_BOXES:
            raise NotIsoBmff("the input is not an ISO BMFF (MP4/MOV/3GP) file")
        if _U32.unpack_from(head, 0)[0] == 0:
            box = parse_header(head, 0, size - pos, base=pos)
        else:
            box = parse_header(head, 0, 1 << 64, base=pos)
        if box.end > size:
            raise TruncatedMedia(
                f"box {printable_type(box.type)!r} at {box.offset} ends at {box.end}, "
                f"past the end of the file ({size} bytes)"
            )
        boxes.append(box)
        pos = box.end
    return TopLevel(size, boxes)


def read_box(box: Box, limit: int, what: str) -> Reading[bytes]:
    """The whole of `box`, refused over `limit` bytes."""
    if box.size > limit:
        raise LimitExceeded(f"{what} is {box.size} bytes, over the limit of {limit}")
    data = yield ReadRequest(box.offset, box.size)
    if len(data) != box.size:
        raise TruncatedMedia(f"{what} at {box.offset} is cut off")
    return data
