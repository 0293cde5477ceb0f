"""MPEG-TS trial playback: the plan of a stream's first N seconds, cut on packet boundaries.

The cut falls before the first PES packet whose PTS is N seconds or more past
the stream's first PTS; everything before it is kept as it is (PAT, PMT, PCR,
every stream's packets). Muxers send some streams ahead of others (audio is
often grouped into PES packets sent after the video they accompany), so past
the cut each timed stream goes on with its own packets until its first PES
packet past N. What each PID keeps is a prefix of its packets, so continuity
counters run on untouched and every kept PES packet is whole.
"""

from __future__ import annotations

import re

from vodedge.media.errors import NotMpegTs, TruncatedMedia
from vodedge.media.plan import Plan, Span
from vodedge.media.preview import check_preview
from vodedge.media.reading import Reading, ReadRequest
from vodedge.media.ts.packets import (
    CONFIRM,
    M2TS_PACKET,
    PTS_HZ,
    SYNC,
    Layout,
    detect_layout,
    pes_pts,
    pid_of,
    pts_delta,
)

BLOCK_PACKETS = 348  # 64 kB of 188-byte packets per read
# How far past the cut lagging streams are followed, in bytes and in stream time.
MAX_TAIL = 8 << 20
LAG = 3 * PTS_HZ
# How much junk between packets is skipped before the stream is taken to have ended.
MAX_JUNK = 64 << 10
# The second header byte of a packet that starts a unit (PUSI set, no transport error).
_UNIT_START = re.compile(b"[\x40-\x7f]")
_NOT_SYNC = re.compile(b"[^\x47]")


def _resync(layout: Layout, window: bytes) -> int | None:
    """Where in `window` packets start again (CONFIRM syncs in a row), None if not in it."""
    size, sync_at = layout.size, layout.sync_at
    start = window.find(SYNC, sync_at)
    while start != -1:
        first = start - sync_at
        if first + (CONFIRM - 1) * size + sync_at >= len(window):
            return None
        if all(window[start + i * size] == SYNC for i in range(1, CONFIRM)):
            return first
        start = window.find(SYNC, start + 1)
    return None


class _Cut:
    """The decisions of one preview: where the prefix ends, which streams go on."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.origin: int | None = None
        self.prefix_end: int | None = None  # where the first stream reached N
        self.timed: set[int] = set()  # PIDs whose PES packets carry a PTS
        self.done: set[int] = set()  # PIDs that reached N
        self.beyond = False  # a PES LAG past N was seen: lagging streams had their chance

    def unit(self, block: bytes, at: int, position: int) -> None:
        """Note the PES packet (if it is one) that the TS packet at `at` starts."""
        pts = pes_pts(block, at)
        if pts is None:
            return
        pid = pid_of(block, at)
        self.timed.add(pid)
        if self.origin is None:
            self.origin = pts
            return
        delta = pts_delta(pts, self.origin)
        if delta < 0 and self.prefix_end is None:
            self.origin, delta = pts, 0  # a stream that starts earlier, sent later
        if delta >= self.limit:
            self.done.add(pid)
            if self.prefix_end is None:
                self.prefix_end = position
        if delta >= self.limit + LAG:
            self.beyond = True

    def finished(self, position: int) -> bool:
        """Whether nothing at or after `position` can belong to the preview any more."""
        if self.prefix_end is None:
            return False
        if position - self.prefix_end >= MAX_TAIL:
            return True
        return self.beyond and self.timed <= self.done


def ts_preview_plan(size: int, seconds: float) -> Reading[Plan]:
    """The plan of the first `seconds` of an MPEG-TS (or 192-byte M2TS) stream of `size` bytes."""
    check_preview(seconds)
    head = yield ReadRequest(0, min(size, (CONFIRM + 1) * M2TS_PACKET))
    layout = detect_layout(head, size)
    if layout is None:
        raise NotMpegTs("the input is not an MPEG transport stream (no 0x47 sync bytes)")
    packet, sync_at = layout.size, layout.sync_at
    cut = _Cut(round(seconds * PTS_HZ))
    spans: list[Span] = []
    position = layout.start
    while not cut.finished(position):
        count = min(BLOCK_PACKETS, (size - position) // packet)
        if count <= 0:
            break
        block = yield ReadRequest(position, count * packet)
        if len(block) < count * packet:
            raise TruncatedMedia(f"the source ended at {position + len(block)}, before {size}")
        bad = _NOT_SYNC.search(block[sync_at::packet])
        valid = count if bad is None else bad.start()
        if cut.prefix_end is None:
            # Before the cut only packets that start a unit matter: found without a
            # Python step per packet.
            for match in _UNIT_START.finditer(block[sync_at + 1 :: packet], 0, valid):
                at = match.start() * packet + sync_at
                cut.unit(block, at, position + at - sync_at)
                if cut.prefix_end is not None:
                    spans.append(Span(0, cut.prefix_end))
                    _follow(cut, block, layout, position, match.start(), valid, spans)
                    break
        else:
            _follow(cut, block, layout, position, 0, valid, spans)
        if bad is None:
            position += count * packet
            continue
        # Junk where a packet should be: carry on where the packets start again.
        junk_at = position + valid * packet
        window = yield ReadRequest(junk_at, min(MAX_JUNK, size - junk_at))
        again = _resync(layout, window)
        if again is None:
            position = junk_at
            break
        position = junk_at + again
    if cut.prefix_end is None:
        spans.append(Span(0, position))
    return Plan(spans)


def _follow(
    cut: _Cut,
    block: bytes,
    layout: Layout,
    position: int,
    first: int,
    stop: int,
    spans: list[Span],
) -> None:
    """Past the cut: keep the packets of timed streams that have not reached N yet."""
    packet, sync_at = layout.size, layout.sync_at
    for index in range(first, stop):
        at = index * packet + sync_at
        offset = position + index * packet
        if block[at + 1] & 0x40:
            cut.unit(block, at, offset)
        pid = pid_of(block, at)
        if pid in cut.timed and pid not in cut.done:
            spans.append(Span(offset, packet))
        if cut.finished(offset + packet):
            return


__all__ = ["ts_preview_plan"]
