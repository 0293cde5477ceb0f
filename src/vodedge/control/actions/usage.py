"""Usage actions: DescribeDomainTrafficData, DescribeDomainQpsData,
DescribeDomainReqHitRateData, their RealTime variants (by the minute over an hour),
and vodedge's DescribeDomainVideoUsageData.

The first three follow the CDN API reference (2018-05-10) and the SDK's models
(alibabacloud-cdn20180510): `DomainName` (a comma list, absent for every domain),
`StartTime`/`EndTime` (absent: the last 24 hours), `Interval`. The fourth answers what the
CDN has no action for (requests by video function, bytes saved by audio extraction), in
the same shape. The numbers come from the node's counters, sampled into the usage store
(every node of a fleet adds to the same buckets).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..calls import Call, JsonObject
from ..domains import api_domain_name, edge_domain_name
from ..errors import ApiError, missing
from ..usage import ALL, DAY, FUNCTIONS, HITS, HOUR, MINUTE, Counts, UsageStore, series
from .domains import not_found
from .params import choice, iso, optional, utc_time
from .registry import Context, action

MAX_DOMAINS = 500
# Buckets (a domain's minute or hour) one call may read: a fleet's Redis answers this
# many in about a second.
MAX_READS = 100_000
# Interval (seconds) -> the longest span one call may ask for. One minute is vodedge's
# own (its minutes are kept a day); the others are the CDN's.
INTERVALS = {"60": DAY, "300": 3 * DAY, "3600": 31 * DAY, "86400": 366 * DAY}
HISTORY = 366 * DAY


def _interval_for(span: float) -> int:
    """The CDN's default interval for a span: 5 minutes up to 3 days, then hours, then days."""
    for interval in ("300", "3600", "86400"):
        if span <= INTERVALS[interval]:
            return int(interval)
    return DAY


# The real-time actions' granularity, by span (they take no Interval): minutes up to an
# hour, 5 minutes up to 3 days, hours up to 31 days.
REAL_TIME = ((HOUR, 60), (3 * DAY, 300), (31 * DAY, 3600))


def time_window(call: Call, now: float, real_time: bool = False) -> tuple[int, int, int]:
    """(start, end, interval) of a call, checked against each other; absent, the last day
    (the last hour for the real-time actions) up to `now`, the current minute included."""
    start, end = utc_time(call, "StartTime"), utc_time(call, "EndTime")
    if (start is None) != (end is None):
        raise missing("EndTime" if end is None else "StartTime")
    if start is None or end is None:
        # The end is exclusive and whole seconds: `now` itself (a minute's first second
        # included) must fall before it, else that minute's counts are left out.
        end = math.floor(now) + 1
        start = end - (HOUR if real_time else DAY)
    if end <= start:
        raise ApiError(400, "InvalidEndTime.Mismatch", "Specified EndTime is not after StartTime.")
    if start < now - HISTORY:
        raise ApiError(
            400, "InvalidStartTime.ValueNotSupported", "Specified StartTime is over a year ago."
        )
    if real_time:
        for longest, interval in REAL_TIME:
            if end - start <= longest:
                return int(start), int(end), interval
        raise ApiError(
            400, "InvalidTime.Malformed", "From StartTime to EndTime is longer than 31 days."
        )
    given = choice(call, "Interval", tuple(INTERVALS))
    interval = int(given) if given is not None else _interval_for(end - start)
    if end - start > INTERVALS[str(interval)]:
        raise ApiError(
            400,
            "InvalidTime.Malformed",
            f"From StartTime to EndTime is longer than Interval {interval} allows"
            f" ({INTERVALS[str(interval)] // DAY} days).",
        )
    return int(start), int(end), interval


async def _domains(context: Context, call: Call, needed: bool) -> tuple[str, list[str]]:
    """The DomainName parameter as answered, and the usage store's names for it."""
    text = optional(call, "DomainName")
    if text is None and needed:
        raise missing("DomainName")
    if text is None:
        return "", [ALL]
    names = [api_domain_name(n.strip()) for n in text.split(",") if n.strip()]
    if not names:
        raise missing("DomainName")
    if len(names) > MAX_DOMAINS:
        raise ApiError(
            400, "DomainNameOverLimit", f"Specify at most {MAX_DOMAINS} domain names in a call."
        )
    known = {record.name for record in await context.run(context.store.domains)}
    for name in names:
        if name not in known:
            raise not_found(name)
    # The counters name a domain as the edge does (`*.example.com` for `.example.com`).
    return ",".join(names), sorted({edge_domain_name(n) for n in names})


def _usage(context: Context) -> UsageStore:
    if context.usage is None:
        raise ApiError(
            503, "ServiceUnavailable", "This node keeps no usage data (it has no state directory)."
        )
    return context.usage


async def _modules(
    context: Context, call: Call, point: Callable[[Counts, int], JsonObject], real_time: bool
) -> tuple[JsonObject, list[JsonObject], int]:
    """The window's fields (DomainName, StartTime, EndTime, DataInterval), one data
    module per interval, and the window's start."""
    usage = _usage(context)
    start, end, interval = time_window(call, time.time(), real_time)
    answered, domains = await _domains(context, call, needed=real_time)
    span = MINUTE if interval < HOUR else HOUR
    reads = len(domains) * -(-(end - start // interval * interval) // span)
    if reads > MAX_READS:
        raise ApiError(
            400,
            "DomainNameOverLimit",
            f"{len(domains)} domain names over this time span are more than one call reads"
            f" ({MAX_READS} {'minutes' if span == MINUTE else 'hours'} of a domain):"
            " ask for fewer domain names, a shorter span or a coarser Interval.",
        )
    slots = await context.run(series, usage, domains, start, end, interval)
    window: JsonObject = {
        "DomainName": answered,
        "StartTime": iso(start),
        "EndTime": iso(end),
        "DataInterval": str(interval),
    }
    modules = [{"TimeStamp": iso(at), **point(counts, interval)} for at, counts in slots]
    return window, modules, start


async def _points(
    context: Context,
    call: Call,
    list_name: str,
    point: Callable[[Counts, int], JsonObject],
    real_time: bool = False,
) -> JsonObject:
    """The answer of the actions listing `DataModule`s under `list_name`."""
    window, modules, _start = await _modules(context, call, point, real_time)
    return {**window, list_name: {"DataModule": modules}}


def _sum(counts: Counts, prefix: str) -> int:
    return sum(n for metric, n in counts.items() if metric.startswith(prefix))


def _hits(counts: Counts) -> tuple[int, int]:
    """(answered from the cache, cache lookups)."""
    return sum(counts.get(f"cache:{r}", 0) for r in HITS), _sum(counts, "cache:")


@action("DescribeDomainTrafficData", writes=False)
async def describe_domain_traffic_data(context: Context, call: Call) -> JsonObject:
    """Body bytes sent to clients per interval (`Value`)."""
    return await _points(
        context,
        call,
        "TrafficDataPerInterval",
        lambda counts, interval: {"Value": str(_sum(counts, "traffic:"))},
    )


@action("DescribeDomainQpsData", writes=False)
async def describe_domain_qps_data(context: Context, call: Call) -> JsonObject:
    """Requests per second (`Value`) and requests (`AccValue`) per interval."""

    def point(counts: Counts, interval: int) -> JsonObject:
        requests = _sum(counts, "requests:")
        return {"Value": f"{requests / interval:.3f}", "AccValue": str(requests)}

    return await _points(context, call, "QpsDataInterval", point)


@action("DescribeDomainReqHitRateData", writes=False)
async def describe_domain_req_hit_rate_data(context: Context, call: Call) -> JsonObject:
    """The share of cache lookups answered from the cache, in percent, per interval."""

    def point(counts: Counts, interval: int) -> JsonObject:
        hits, lookups = _hits(counts)
        return {"Value": f"{100 * hits / lookups:.2f}" if lookups else "0"}

    return await _points(context, call, "ReqHitRateInterval", point)


async def _real_time(
    context: Context, call: Call, name: str, point: Callable[[Counts, int], JsonObject]
) -> JsonObject:
    """The answer of the real-time actions that list `Data.<name>[]` (their models' shape)."""
    _window, modules, _start = await _modules(context, call, point, real_time=True)
    return {"Data": {name: modules}}


@action("DescribeDomainRealTimeTrafficData", writes=False)
async def describe_domain_real_time_traffic_data(context: Context, call: Call) -> JsonObject:
    """Body bytes sent per minute (per 5 minutes, per hour over longer spans)."""
    return await _points(
        context,
        call,
        "RealTimeTrafficDataPerInterval",
        lambda counts, interval: {"Value": str(_sum(counts, "traffic:"))},
        real_time=True,
    )


@action("DescribeDomainRealTimeQpsData", writes=False)
async def describe_domain_real_time_qps_data(context: Context, call: Call) -> JsonObject:
    """Requests per second, per minute (or coarser over longer spans)."""
    return await _real_time(
        context,
        call,
        "QpsModel",
        lambda counts, interval: {"Qps": _sum(counts, "requests:") / interval},
    )


@action("DescribeDomainRealTimeReqHitRateData", writes=False)
async def describe_domain_real_time_req_hit_rate_data(context: Context, call: Call) -> JsonObject:
    """The share (0 to 1) of cache lookups answered from the cache, per minute."""

    def point(counts: Counts, interval: int) -> JsonObject:
        hits, lookups = _hits(counts)
        return {"ReqHitRate": hits / lookups if lookups else 0.0}

    return await _real_time(context, call, "ReqHitRateDataModel", point)


def _video_point(counts: Counts, interval: int) -> JsonObject:
    hits, lookups = _hits(counts)
    out: JsonObject = {
        "Traffic": _sum(counts, "traffic:"),
        "AudioSavedTraffic": counts.get("saved", 0),
        "Requests": _sum(counts, "requests:"),
        "CacheLookups": lookups,
        "CacheHits": hits,
    }
    for function in FUNCTIONS:
        name = "".join(part.title() for part in function.split("_"))
        out[f"{name}Requests"] = counts.get(f"requests:{function}", 0)
        out[f"{name}Traffic"] = counts.get(f"traffic:{function}", 0)
    return out


@action("DescribeDomainVideoUsageData", writes=False)
async def describe_domain_video_usage_data(context: Context, call: Call) -> JsonObject:
    """vodedge's own: traffic, requests and cache lookups by video function per interval,
    and the nodes whose samples they hold."""
    window, modules, start = await _modules(context, call, _video_point, real_time=False)
    seen = await context.run(_usage(context).nodes, start)
    return {
        **window,
        "VideoUsageDataPerInterval": {"DataModule": modules},
        "Nodes": {
            "Node": [{"NodeName": n, "LastSampleTime": iso(at)} for n, at in sorted(seen.items())]
        },
    }
