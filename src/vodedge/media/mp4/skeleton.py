"""A `moov` to be rebuilt with boxes at fixed places replaced, walked once.

Every clip of a file keeping the same tracks replaces boxes at the same offsets
(`mvhd`, each kept track's `tkhd`, `mdhd`, `edts` and `stbl`, the dropped
tracks): what lies between them, and which containers get new headers, is the
same each time. A clip then fills the slots and sizes the containers, which is
what `movie.rebuild_pieces` would make, without walking the boxes again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping

from vodedge.media.mp4.boxes import CONTAINERS, Box, children_offset, header_bytes

Part = bytes | memoryview
Replacement = Part | list[Part] | None


class Skeleton:
    """The rebuilt moov's pieces, with a slot per replaced box that a rebuild reaches
    and a header per container it re-serialises (innermost first)."""

    __slots__ = ("containers", "parts", "sizes", "slots")

    def __init__(
        self, data: memoryview, moov: Box, places: tuple[int, ...], kids: Callable[[Box], list[Box]]
    ) -> None:
        self.parts: list[Part] = []
        self.slots: dict[int, int] = {}  # replaced box offset -> its part
        self.containers: list[tuple[int, bytes, int]] = []  # (header part, type, end part)
        self._walk(data, moov, set(places), list(places), kids)
        self.sizes = [len(part) for part in self.parts]

    def _walk(
        self,
        data: memoryview,
        box: Box,
        places: set[int],
        ordered: list[int],
        kids: Callable[[Box], list[Box]],
    ) -> None:
        """`movie._rebuild`'s walk, recording where its pieces would go."""
        parts = self.parts
        if box.offset in places:
            self.slots[box.offset] = len(parts)
            parts.append(b"")
            return
        first = bisect_right(ordered, box.offset)
        touched = first < len(ordered) and ordered[first] < box.end
        if not touched or box.type not in CONTAINERS:
            parts.append(data[box.offset : box.end])
            return
        at = len(parts)
        parts.append(b"")
        start = children_offset(data, box)
        parts.append(data[box.payload_offset : start])
        for child in kids(box):
            self._walk(data, child, places, ordered, kids)
        self.containers.append((at, box.type, len(parts)))

    def build(self, replace: Mapping[int, Replacement]) -> list[Part]:
        """The rebuilt moov's pieces with these replacements (every place given; None
        drops a box, a list is a box in pieces, which stay pieces: a large `stbl` is
        copied once, by whoever joins the moov)."""
        parts: list[Part | list[Part]] = list(self.parts)
        sizes = list(self.sizes)
        for offset, at in self.slots.items():
            new = replace[offset]
            if new is None:
                parts[at], sizes[at] = b"", 0
            elif isinstance(new, list):
                parts[at], sizes[at] = new, sum(map(len, new))
            else:
                parts[at], sizes[at] = new, len(new)
        for at, kind, end in self.containers:
            head = header_bytes(kind, sum(sizes[at + 1 : end]))
            parts[at], sizes[at] = head, len(head)
        flat: list[Part] = []
        for part in parts:
            if isinstance(part, list):
                flat += part
            else:
                flat.append(part)
        return flat
