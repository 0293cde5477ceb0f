"""Prometheus metrics of the edge (multiprocess-safe when workers share a directory)."""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import Counter, Histogram

Metric = TypeVar("Metric", Counter, Histogram)
# Children by metric and label values; cleared past this many (domains come and go).
_CHILDREN: dict[tuple[int, tuple[str, ...]], object] = {}
MAX_CHILDREN = 10_000
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Counter]] = {}


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


def count_request(domain: str, function: str, status: int, sent: int) -> None:
    """One answered request and its body bytes (REQUESTS, SENT_BYTES), with the two
    children remembered per (domain, function, status)."""
    key = (domain, function, status)
    found = _REQUEST_CHILDREN.get(key)
    if found is None:
        if len(_REQUEST_CHILDREN) >= MAX_CHILDREN:
            _REQUEST_CHILDREN.clear()
        found = _REQUEST_CHILDREN[key] = (
            REQUESTS.labels(domain, function, str(status)),
            SENT_BYTES.labels(domain, function),
        )
    found[0].inc()
    if sent:
        found[1].inc(sent)


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
