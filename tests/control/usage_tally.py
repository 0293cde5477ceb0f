"""Requests made through the edge, tallied as the usage API should count them, and the
usage API's totals to compare with."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from api_node import OldClient
from edge_harness import Reply, http_request

# The sampling period the test nodes run with (VODEDGE_USAGE_SAMPLE_SECONDS).
SAMPLE_SECONDS = 0.5
USAGE_ENV = {"VODEDGE_USAGE_SAMPLE_SECONDS": str(SAMPLE_SECONDS)}
HITS = ("HIT", "STALE", "REVALIDATED")


@dataclass
class Tally:
    """What a client saw of the requests it made for one domain."""

    requests: Counter[str] = field(default_factory=Counter)  # by function
    traffic: int = 0
    traffic_by: Counter[str] = field(default_factory=Counter)  # body bytes by function
    saved: int = 0
    lookups: int = 0
    hits: int = 0

    def get(self, port: int, host: str, path: str, function: str, whole: int = 0) -> Reply:
        """GET `path` and count it; `whole`: the original's size (audio extraction saves
        the difference)."""
        reply = http_request(port, host, path)
        assert reply.complete
        if reply.header("X-Vodedge-Error") == "unknown_host":
            return reply  # not (yet) this node's domain: counted as no domain's ("-")
        if function == "audio_only" and not (reply.header("Content-Type") or "").startswith(
            "audio/"
        ):
            function = "plain"  # the function is off (or refused): a plain request
        self.requests[function] += 1
        self.traffic += len(reply.body)
        self.traffic_by[function] += len(reply.body)
        if whole and reply.status == 200:
            self.saved += whole - len(reply.body)
        cache = reply.header("X-Cache")
        if cache is not None:
            self.lookups += 1
            self.hits += cache in HITS
        return reply

    def add(self, other: Tally) -> Tally:
        """The sum of two tallies (a fleet's nodes)."""
        return Tally(
            self.requests + other.requests,
            self.traffic + other.traffic,
            self.traffic_by + other.traffic_by,
            self.saved + other.saved,
            self.lookups + other.lookups,
            self.hits + other.hits,
        )


def video_usage(client: OldClient, domain: str | None, **params: str) -> dict[str, Any]:
    """DescribeDomainVideoUsageData's answer (through the older SDK's CommonRequest)."""
    from aliyunsdkcore.request import CommonRequest

    request = CommonRequest(
        domain=None, version="2018-05-10", action_name="DescribeDomainVideoUsageData"
    )
    if domain is not None:
        request.add_query_param("DomainName", domain)
    for name, value in params.items():
        request.add_query_param(name, value)
    return client.call(request)


def totals(answer: dict[str, Any]) -> dict[str, int]:
    """The sum of every interval's numbers."""
    out: Counter[str] = Counter()
    for module in answer["VideoUsageDataPerInterval"]["DataModule"]:
        out.update({k: v for k, v in module.items() if k != "TimeStamp"})
    return dict(out)


def as_totals(tally: Tally) -> dict[str, int]:
    """What `totals` should say for `tally`."""
    names = {"plain": "Plain", "audio_only": "AudioOnly", "seek": "Seek"}
    out = {
        "Requests": sum(tally.requests.values()),
        "Traffic": tally.traffic,
        "AudioSavedTraffic": tally.saved,
        "CacheLookups": tally.lookups,
        "CacheHits": tally.hits,
    }
    for function, count in tally.requests.items():
        out[f"{names[function]}Requests"] = count
        out[f"{names[function]}Traffic"] = tally.traffic_by[function]
    return out


def last_hour() -> dict[str, str]:
    """StartTime/EndTime/Interval of the last hour by minutes."""
    now = time.time()
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "StartTime": time.strftime(stamp, time.gmtime(now - 3600)),
        "EndTime": time.strftime(stamp, time.gmtime(now + 1)),
        "Interval": "60",
    }
