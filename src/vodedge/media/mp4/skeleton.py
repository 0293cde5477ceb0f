"""A `moov` to be rebuilt with boxes at fixed places replaced, walked once.

Every clip of a file keeping the same tracks replaces boxes at the same offsets
(`mvhd`, each kept track's `tkhd`, `mdhd`, `edts` and `stbl`, the dropped
tracks): what lies between them, and which containers get new headers, is the
same each time, and so is the size of every replacement but the `edts` and
`stbl`. A clip then fills the slots and sizes each container by one sum, which
is what `movie.rebuild_pieces` would make, without walking the boxes again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from struct import Struct

from vodedge.media.errors import LimitExceeded
from vodedge.media.mp4.boxes import CONTAINERS, Box, children_offset

Part = bytes | memoryview

_HEAD = Struct(">I4s")


class Skeleton:
    """The rebuilt moov as a list of pieces: a fixed piece, a replaced box that a
    rebuild reaches (empty until filled), or the header of a container it
    re-serialises; and each such container's size as a constant plus the sizes of
    the replacements that vary."""

    __slots__ = ("containers", "parts", "slots")

    def __init__(
        self,
        data: memoryview,
        moov: Box,
        places: tuple[int, ...],
        kids: Callable[[Box], list[Box]],
        known: Mapping[int, int],
    ) -> None:
        """`places` ascending; `known` gives the size of the box each place of a
        constant size becomes (0 where a box is dropped); the others vary per clip."""
        flat: list[Part] = []
        self.slots: dict[int, int] = {}  # replaced box offset -> its slot
        walked: list[tuple[int, bytes, int]] = []  # (header slot, type, end slot)
        self._walk(data, moov, set(places), list(places), kids, flat, walked)
        by_slot = {at: place for place, at in self.slots.items()}
        heads = {at for at, _, _ in walked}
        self.parts: list[Part] = [
            b"" if at in by_slot or at in heads else p for at, p in enumerate(flat)
        ]
        # Innermost first; every container is below 4 GiB (`fill` checks), so a
        # nested one re-serialised has an 8-byte header.
        self.containers: list[tuple[int, bytes, int, tuple[int, ...]]] = []
        for at, kind, end in walked:
            fixed, varying = 0, []
            for inner in range(at + 1, end):
                place = by_slot.get(inner)
                if place is None:
                    fixed += 8 if inner in heads else len(flat[inner])
                elif place in known:
                    fixed += known[place]
                else:
                    varying.append(place)
            self.containers.append((at, kind, fixed, tuple(varying)))

    def _walk(
        self,
        data: memoryview,
        box: Box,
        places: set[int],
        ordered: list[int],
        kids: Callable[[Box], list[Box]],
        flat: list[Part],
        walked: list[tuple[int, bytes, int]],
    ) -> None:
        """`movie._rebuild`'s walk, recording where its pieces would go."""
        if box.offset in places:
            self.slots[box.offset] = len(flat)
            flat.append(b"")
            return
        first = bisect_right(ordered, box.offset)
        touched = first < len(ordered) and ordered[first] < box.end
        if not touched or box.type not in CONTAINERS:
            flat.append(data[box.offset : box.end])
            return
        at = len(flat)
        flat.append(b"")
        start = children_offset(data, box)
        flat.append(data[box.payload_offset : start])
        for child in kids(box):
            self._walk(data, child, places, ordered, kids, flat, walked)
        walked.append((at, box.type, len(flat)))

    def size(self, varying: Mapping[int, int]) -> int:
        """The rebuilt moov's size, given the size of each varying replacement reached."""
        if not self.containers or self.containers[-1][0] != 0:
            raise LimitExceeded("no replaced box lies inside the moov")  # the general path's
        _, _, fixed, refs = self.containers[-1]  # the moov, walked last
        return 8 + fixed + sum(map(varying.__getitem__, refs))

    def fill(self, parts: list[Part], varying: Mapping[int, int]) -> None:
        """Write every re-serialised container's header into `parts` (a copy of
        `self.parts` with the replacements in their slots), given their sizes."""
        size = 0
        sized = varying.__getitem__
        for at, kind, fixed, refs in self.containers:
            size = 8 + fixed + sum(map(sized, refs))
            parts[at] = _HEAD.pack(size, kind) if size <= 0xFFFFFFFF else b""
        # The moov, last, holds the others: none passes 4 GiB if it does not.
        if size > 0xFFFFFFFF:  # never in a moov read whole; the general path handles it
            raise LimitExceeded("a rebuilt 'moov' box would pass 4 GiB")
