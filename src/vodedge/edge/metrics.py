"""Prometheus metrics of the edge (multiprocess-safe when workers share a directory)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import Counter, Histogram

Metric = TypeVar("Metric", Counter, Histogram)
# Children by metric and label values; cleared past this many (domains come and go).
_CHILDREN: dict[tuple[int, tuple[str, ...]], object] = {}
MAX_CHILDREN = 10_000
Add = Callable[[float], None]
_REQUEST_ADDS: dict[tuple[str, str, int], tuple[Add, Add]] = {}
_LOOKUP_ADDS: dict[tuple[str, str], Add] = {}
_PLAN_OBSERVERS: dict[str, Add] = {}


def child(metric: Metric, *values: str) -> Metric:
    """`metric.labels(*values)`, remembered: prometheus_client takes a lock and checks
    every value on each call, which a request pays several times."""
    key = (id(metric), values)
    found = _CHILDREN.get(key)
    if found is None:
        if len(_CHILDREN) >= MAX_CHILDREN:
            _CHILDREN.clear()
        found = _CHILDREN[key] = metric.labels(*values)
    return found  # type: ignore[return-value]


def _adder(counter: Counter) -> Add:
    """What adds to a labelled counter's value: its value's own `inc` (the one that
    writes the multiprocess file), without Counter.inc's checks of the amount and of
    the labels, which cannot fail for a child counted by a positive amount."""
    value = getattr(counter, "_value", None)
    add = getattr(value, "inc", None)
    return add if callable(add) else counter.inc


def count_request(domain: str, function: str, status: int, sent: int) -> None:
    """One answered request and its body bytes (REQUESTS, SENT_BYTES), the children
    remembered per (domain, function, status)."""
    key = (domain, function, status)
    found = _REQUEST_ADDS.get(key)
    if found is None:
        if len(_REQUEST_ADDS) >= MAX_CHILDREN:
            _REQUEST_ADDS.clear()
        found = _REQUEST_ADDS[key] = (
            _adder(REQUESTS.labels(domain, function, str(status))),
            _adder(SENT_BYTES.labels(domain, function)),
        )
    found[0](1)
    if sent > 0:
        found[1](sent)


def count_lookup(domain: str, result: str) -> None:
    """One cache lookup of `domain` (CACHE_LOOKUPS), its child remembered."""
    key = (domain, result)
    add = _LOOKUP_ADDS.get(key)
    if add is None:
        if len(_LOOKUP_ADDS) >= MAX_CHILDREN:
            _LOOKUP_ADDS.clear()
        add = _LOOKUP_ADDS[key] = _adder(CACHE_LOOKUPS.labels(domain, result))
    add(1)


def observe_plan(kind: str, seconds: float) -> None:
    """A plan of `kind` took `seconds` (PLAN_SECONDS), its observer remembered."""
    observe = _PLAN_OBSERVERS.get(kind)
    if observe is None:
        if len(_PLAN_OBSERVERS) >= MAX_CHILDREN:
            _PLAN_OBSERVERS.clear()
        observe = _PLAN_OBSERVERS[kind] = _observer(PLAN_SECONDS.labels(kind))
    observe(seconds)


def _observer(histogram: Histogram) -> Add:
    """What observes an amount in a labelled histogram as Histogram.observe does (its
    sum, then the first bucket whose bound is at least the amount), by a bisection of
    the bounds through the values' own `inc`, without its loop and checks."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(buckets) != len(bounds):
        return histogram.observe
    bounds = list(bounds)
    adds: list[Add] = [bucket.inc for bucket in buckets]
    add_sum: Add = total.inc
    count = len(adds)

    def observe(amount: float) -> None:
        add_sum(amount)
        at = bisect_left(bounds, amount)
        if at < count and amount <= bounds[at]:  # NaN: no bucket, as Histogram's loop
            adds[at](1)

    return observe


REQUESTS = Counter("vodedge_requests", "Client requests answered", ["domain", "function", "status"])
SENT_BYTES = Counter("vodedge_sent_bytes", "Body bytes sent to clients", ["domain", "function"])
SAVED_BYTES = Counter(
    "vodedge_audio_saved_bytes",
    "Bytes not sent thanks to audio extraction (source size minus output size)",
    ["domain"],
)
# Per domain for the usage charts (hit ratio); domains are bounded by the configuration.
CACHE_LOOKUPS = Counter(
    "vodedge_cache_lookups", "Cache lookups by domain and result", ["domain", "result"]
)
ORIGIN_SECONDS = Histogram(
    "vodedge_origin_response_seconds", "Time until the origin's response headers", ["domain"]
)
FILL_SECONDS = Histogram("vodedge_cache_fill_seconds", "Time to fill a cache object")
PLAN_SECONDS = Histogram(
    "vodedge_plan_seconds",
    "Time to build a transform's plan (parsing included)",
    ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
