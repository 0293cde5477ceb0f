"""Which video function a request asks for, and the plan that answers it."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vodedge.edge.cache import Body
from vodedge.edge.driver import run_async
from vodedge.media.errors import InvalidSeek
from vodedge.media.plan import Plan, Span
from vodedge.media.seeking import check_seek, parse_seconds

MP4_SUFFIXES = frozenset({".mp4", ".m4a", ".m4v", ".mov", ".3gp", ".3g2"})
FLV_SUFFIXES = frozenset({".flv"})
AUDIO_ONLY_ARG = "ali_audio_only"


@dataclass(frozen=True, slots=True)
class Transform:
    """A request's video functions: audio extraction and/or a clip."""

    kind: str  # "mp4" or "flv"
    audio_only: bool
    start: float | None
    end: float | None
    by_time: bool = True  # FLV only: seconds (True) or byte offsets (False)

    @property
    def function(self) -> str:
        """The label used in metrics and logs."""
        if self.audio_only:
            return "audio_only" if self.start is None and self.end is None else "audio_seek"
        return "seek"

    def tag(self) -> str:
        """A short stable name of this transform, part of derived ETags."""
        raw = f"{self.kind}|{int(self.audio_only)}|{self.start}|{self.end}|{int(self.by_time)}"
        return hashlib.blake2s(raw.encode(), digest_size=6).hexdigest()


def kind_of(path: str) -> str | None:
    """mp4 or flv by the path's suffix; None for other objects."""
    dot = path.rfind(".")
    suffix = path[dot:].lower() if dot > path.rfind("/") else ""
    if suffix in MP4_SUFFIXES:
        return "mp4"
    if suffix in FLV_SUFFIXES:
        return "flv"
    return None


def _offset(text: str, name: str) -> float:
    if not text.isdigit() or len(text) > 15:
        raise InvalidSeek(f"{name} must be a byte offset, not {text[:40]!r}")
    return float(int(text))


def transform_for(domain: Any, path: str, query: Mapping[str, str]) -> Transform | None:
    """The transform a request asks for on `domain`, None for plain delivery."""
    kind = kind_of(path)
    if kind is None:
        return None
    audio_only = bool(domain.audio_split) and query.get(AUDIO_ONLY_ARG) == "1"
    start: float | None = None
    end: float | None = None
    by_time = True
    seek = domain.seek
    if seek.enabled:
        start_arg = seek.mp4_start_arg if kind == "mp4" else seek.flv_start_arg
        end_arg = seek.mp4_end_arg if kind == "mp4" else seek.flv_end_arg
        by_time = kind == "mp4" or bool(seek.flv_by_time)
        parse = parse_seconds if by_time else _offset
        if query.get(start_arg) is not None:
            start = parse(query[start_arg], start_arg)
        if query.get(end_arg) is not None:
            end = parse(query[end_arg], end_arg)
    preview = domain.preview
    if preview is not None and query.get(preview.argument) is not None:
        if not by_time:
            raise InvalidSeek("a preview cannot be combined with a byte-offset seek")
        limit = parse_seconds(query[preview.argument], preview.argument)
        end = limit if end is None else min(end, limit)
        if start is not None and start >= end:
            raise InvalidSeek(f"start ({start}) is past the preview's end ({end})")
    if not audio_only and start is None and end is None:
        return None
    check_seek(start, end)
    return Transform(kind, audio_only, start, end, by_time)


ReadAt = Callable[[int, int], Awaitable[bytes]]


async def build_plan(transform: Transform, size: int, read_at: ReadAt, max_moov: int) -> Plan:
    """The plan of `transform` over an object of `size` bytes."""
    if transform.kind == "mp4":
        if transform.start is None and transform.end is None:
            from vodedge.media.mp4_audio import audio_plan

            return await run_async(audio_plan(size, max_moov=max_moov), read_at)
        from vodedge.media.mp4_seek import clip_plan

        parser = clip_plan(
            size,
            start=transform.start,
            end=transform.end,
            audio_only=transform.audio_only,
            max_moov=max_moov,
        )
        return await run_async(parser, read_at)
    from vodedge.media.flv_plan import flv_clip_plan

    parser = flv_clip_plan(
        size,
        _flv_bound(transform.start, transform.by_time),
        _flv_bound(transform.end, transform.by_time),
        by_time=transform.by_time,
        audio_only=transform.audio_only,
    )
    return await run_async(parser, read_at)


def _flv_bound(value: float | None, by_time: bool) -> float | int | None:
    return value if value is None or by_time else int(value)


class PlanMemo:
    """Recently built plans per object version and transform, bounded by their size."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._plans: OrderedDict[tuple[str, str, Transform], tuple[Plan, int]] = OrderedDict()
        self._bytes = 0

    @staticmethod
    def _weight(plan: Plan) -> int:
        return 64 * len(plan.pieces) + sum(
            len(piece) for piece in plan.pieces if not isinstance(piece, Span)
        )

    def get(self, key: str, version: str, transform: Transform) -> Plan | None:
        """A memoised plan, or None."""
        found = self._plans.get((key, version, transform))
        if found is None:
            return None
        self._plans.move_to_end((key, version, transform))
        return found[0]

    def put(self, key: str, version: str, transform: Transform, plan: Plan) -> None:
        """Remember a plan, forgetting the least recently used beyond the budget."""
        weight = self._weight(plan)
        if weight > self.max_bytes:
            return
        old = self._plans.pop((key, version, transform), None)
        if old is not None:
            self._bytes -= old[1]
        self._plans[(key, version, transform)] = (plan, weight)
        self._bytes += weight
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._plans.popitem(last=False)
            self._bytes -= dropped


async def plan_for(
    memo: PlanMemo, key: str, body: Body, transform: Transform, read_at: ReadAt, max_moov: int
) -> Plan:
    """The plan of `transform` over `body`, memoised once the object is complete."""
    version = body.version
    if body.complete:
        found = memo.get(key, version, transform)
        if found is not None:
            return found
    size = body.size
    if size is None:
        size = await body.wait_done()
    plan = await build_plan(transform, size, read_at, max_moov)
    if body.complete:
        memo.put(key, version, transform, plan)
    return plan
