"""Tags around MPEG audio: ID3v2 at the head, ID3v1 and APEv2 at the tail."""

from __future__ import annotations

from struct import Struct

from vodedge.media.errors import MalformedMedia

ID3V2_HEADER = 10
ID3V1_SIZE = 128
APE_FOOTER = 32
_APE = Struct("<8sIIII8x")  # preamble, version, size (items + footer), items, flags
_APE_HAS_HEADER = 1 << 31


def id3v2_size(head: bytes | memoryview) -> int | None:
    """The whole size of the ID3v2 tag opening `head` (10 bytes), None if there is none."""
    if len(head) < ID3V2_HEADER or bytes(head[:3]) != b"ID3":
        return None
    major, flags = head[3], head[5]
    size_bytes = head[6:10]
    if major == 0xFF or head[4] == 0xFF or any(b & 0x80 for b in size_bytes):
        raise MalformedMedia("an ID3v2 tag has a malformed header")
    size = 0
    for byte in size_bytes:
        size = (size << 7) | byte
    footer = ID3V2_HEADER if major >= 4 and flags & 0x10 else 0
    return ID3V2_HEADER + size + footer


def tail_tags_start(tail: bytes | memoryview, end: int) -> int:
    """Where the tail tags (ID3v1, APEv2 before it) begin, given the source's last bytes.

    `tail` holds the last bytes of a source that ends at `end`; the result is
    `end` when there are no tail tags.
    """
    stop = end
    if len(tail) >= ID3V1_SIZE and bytes(tail[-ID3V1_SIZE : -ID3V1_SIZE + 3]) == b"TAG":
        stop -= ID3V1_SIZE
    ape_at = len(tail) - (end - stop) - APE_FOOTER
    if ape_at >= 0 and bytes(tail[ape_at : ape_at + 8]) == b"APETAGEX":
        _, _, size, _, flags = _APE.unpack_from(tail, ape_at)
        whole = size + (APE_FOOTER if flags & _APE_HAS_HEADER else 0)
        if size >= APE_FOOTER and whole <= stop:
            stop -= whole
    return stop
