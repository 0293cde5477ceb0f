"""A node's view of its store on /metrics (imported by workers, once the multiprocess
directory is set: a gauge made earlier would stay in one process's memory)."""

from __future__ import annotations

from prometheus_client import Gauge

# A node's view of its store (multiprocess: the workers' values combined).
STORE_VERSION = Gauge(
    "vodedge_store_version", "Store version the workers applied", multiprocess_mode="min"
)
STORE_LAST_SYNC = Gauge(
    "vodedge_store_last_sync_timestamp_seconds",
    "When a worker last read the store",
    multiprocess_mode="min",
)
STORE_LAG = Gauge(
    "vodedge_store_lag_seconds",
    "Seconds since a worker last read the store",
    multiprocess_mode="max",
)
STORE_UP = Gauge(
    "vodedge_store_up", "1 when the store answers every worker", multiprocess_mode="min"
)
