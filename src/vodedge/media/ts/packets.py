"""MPEG-TS packets: the layout of a stream (188 or 192 bytes) and what a packet starts."""

from __future__ import annotations

from typing import NamedTuple

SYNC = 0x47
TS_PACKET = 188
M2TS_PACKET = 192  # a 4-byte arrival timestamp, then a TS packet (Blu-ray, AVCHD)
PTS_WRAP = 1 << 33
PTS_HZ = 90_000
# Stream ids whose PES packets have no optional header (and so no PTS).
_NO_PES_HEADER = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
# How many packets in a row must carry the sync byte for a layout to be believed.
CONFIRM = 4


class Layout(NamedTuple):
    """Where packets start: the first one's offset, the packet size, the sync's place in it."""

    start: int
    size: int
    sync_at: int  # 0 for TS, 4 for M2TS


def detect_layout(head: bytes, total: int) -> Layout | None:
    """The packet layout of a stream whose first bytes are `head` (of `total` bytes)."""
    for size, sync_at in ((TS_PACKET, 0), (M2TS_PACKET, 4)):
        for start in range(size):
            confirm = min(CONFIRM, (total - start) // size)
            if confirm == 0:
                break
            if start + (confirm - 1) * size + sync_at >= len(head):
                break
            if all(head[start + sync_at + i * size] == SYNC for i in range(confirm)):
                return Layout(start, size, sync_at)
    return None


def pid_of(packet: bytes | memoryview, at: int) -> int:
    """The PID of the TS packet whose sync byte is at `at`."""
    return ((packet[at + 1] & 0x1F) << 8) | packet[at + 2]


def payload_start(packet: bytes | memoryview, at: int) -> int | None:
    """Where the payload of the TS packet at `at` begins, None if it has none."""
    control = (packet[at + 3] >> 4) & 3
    if not control & 1:
        return None
    if control == 3:
        offset = at + 5 + packet[at + 4]
        return offset if offset < at + TS_PACKET else None
    return at + 4


def pes_pts(packet: bytes | memoryview, at: int) -> int | None:
    """The PTS of the PES packet that the TS packet at `at` starts, if it starts one with a PTS."""
    if packet[at + 1] & 0x80 or not packet[at + 1] & 0x40:  # transport error, or no unit start
        return None
    o = payload_start(packet, at)
    if o is None or at + TS_PACKET - o < 14:
        return None
    if packet[o] or packet[o + 1] or packet[o + 2] != 1:
        return None
    stream_id = packet[o + 3]
    if stream_id < 0xBC or stream_id in _NO_PES_HEADER:
        return None
    if (packet[o + 6] & 0xC0) != 0x80 or not packet[o + 7] & 0x80:
        return None
    return (
        ((packet[o + 9] >> 1) & 7) << 30
        | packet[o + 10] << 22
        | (packet[o + 11] >> 1) << 15
        | packet[o + 12] << 7
        | packet[o + 13] >> 1
    )


def starts_pes(packet: bytes | memoryview, at: int) -> bool:
    """Whether the TS packet at `at` starts a PES packet (with or without a PTS)."""
    if packet[at + 1] & 0x80 or not packet[at + 1] & 0x40:
        return False
    offset = payload_start(packet, at)
    if offset is None or at + TS_PACKET - offset < 4:
        return False
    return (
        packet[offset] == 0
        and packet[offset + 1] == 0
        and packet[offset + 2] == 1
        and packet[offset + 3] >= 0xBC
    )


def pts_delta(pts: int, origin: int) -> int:
    """`pts - origin` in 90 kHz ticks across the 33-bit wrap, in [-2**32, 2**32)."""
    return (pts - origin + (1 << 32)) % PTS_WRAP - (1 << 32)
