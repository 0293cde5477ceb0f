"""One reader of the fleet's change stream per node: the master keeps the node's copy
(`replica`) in step with Redis, and tells Redis what the node's workers finished.

The workers follow the copy (a SQLite file on the node), so Redis sees one blocking
XREAD per node, not a version poll per worker. A change reaches the copy as soon
as Redis has it, and each worker within its poll interval of the copy.
"""

from __future__ import annotations

import asyncio
import sys
import time

from vodedge.config import NodeConfig
from vodedge.config.keys import AccessKey

from .domains import record_of
from .redis_store import RedisStore
from .replica import Replica
from .store import StoreUnavailable

# How long one XREAD waits for a change; also how often acknowledgements go out.
BLOCK_MS = 250
HEARTBEAT_EVERY = 2.0
# How often a caught-up reader checks that Redis did not lose the stream (a client that
# reconnects by itself would hide a restart of Redis with no data).
CHECK_EVERY = 10.0
# Retry delays while Redis is out of reach: from the first to the last, doubling.
RETRY_FIRST, RETRY_LAST = 0.25, 2.0


class Follower:
    """Keeps `replica` in step with `fleet` for a node of `workers` workers."""

    def __init__(self, fleet: RedisStore, replica: Replica, workers: int) -> None:
        self.fleet = fleet
        self.replica = replica
        self.workers = workers
        self._beaten = 0.0
        self.synced_at = 0.0  # when Redis last answered (for /metrics)
        # Whether Redis answered since we started or it last failed: once it has, an
        # empty read needs no check for lost history (a restart fails a call first).
        self._connected = False
        self._checked = 0.0

    def load(self, base: NodeConfig, *, from_file: bool) -> None:
        """Before the node's configuration is (re)built from the copy: the file's domains
        (with `from_file`) and access keys go to Redis where the file changed them, and
        the copy catches up. With Redis out of reach the copy stays as it was; without
        one (never synced) that is an error."""
        try:
            if from_file:
                self.fleet.import_file_domains([record_of(d) for d in base.domains.values()])
            self.fleet.import_file_keys(base.access_keys)
            self.catch_up()
        except StoreUnavailable as exc:
            if self.replica.last_id() is None:
                raise ValueError(f"{exc}, and no local copy of the configuration") from None
            sys.stderr.write(f"vodedge: {exc}: serving the local copy of the configuration\n")

    def keys(self, base: NodeConfig) -> tuple[AccessKey, ...]:
        """The access keys of the fleet as last seen (the file's before the first sync)."""
        return self.replica.access_keys() if self.replica.last_id() else base.access_keys

    def resync(self) -> None:
        """Read everything again (first start, or behind the stream's retention)."""
        self.replica.replace_all(self.fleet.snapshot())

    def catch_up(self) -> None:
        """Apply every change the stream holds for us now (StoreUnavailable if Redis is
        out of reach): once this returns, the copy is what Redis says."""
        self._beat(force=True)
        while self.step(block_ms=0):
            pass

    def step(self, block_ms: int = BLOCK_MS) -> bool:
        """One read of the stream (waiting up to `block_ms`); whether it found changes."""
        self._beat()
        last = self.replica.last_id()
        changed = True
        if last is None:
            self.resync()
        else:
            check = not self._connected or time.monotonic() - self._checked > CHECK_EVERY
            delta = self.fleet.read_changes(last, block_ms, seen=self.replica.seen(), check=check)
            if check:
                self._checked = time.monotonic()
            if delta is None:
                sys.stderr.write("vodedge: behind the fleet's change stream: reading it all\n")
                self.resync()
            elif delta.last_id != last:
                self.replica.apply(delta)
            else:
                changed = False
        self.forward()
        self.synced_at = time.time()
        self._connected = True
        return changed

    def forward(self) -> None:
        """Tell Redis which tasks this node's workers finished."""
        ids, failed = self.replica.finished()
        if ids:
            self.fleet.ack_tasks(ids, failed)
            self.replica.forwarded(ids)

    def _beat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._beaten >= HEARTBEAT_EVERY:
            self.fleet.heartbeat(self.workers)
            self._beaten = now

    async def run(self) -> None:
        """Follow until cancelled; Redis out of reach is retried with backoff."""
        from .store_metrics import STORE_LAG, STORE_LAST_SYNC, STORE_UP, STORE_VERSION

        delay, failing = RETRY_FIRST, ""
        while True:
            try:
                await asyncio.to_thread(self.step)
                delay, failing = RETRY_FIRST, ""
                STORE_UP.set(1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down or failing: serve the copy, retry
                why = f"{type(exc).__name__}: {exc}"
                if why != failing:
                    sys.stderr.write(f"vodedge: fleet store: {why}\n")
                failing = why
                STORE_UP.set(0)
                self._connected = False
                self._beaten = 0.0  # say we are alive as soon as it is back
                await asyncio.sleep(delay)
                delay = min(RETRY_LAST, delay * 2)
            synced = self.synced_at or self.replica.synced_at()
            STORE_VERSION.set(self.replica.fleet_version())
            STORE_LAST_SYNC.set(synced)
            STORE_LAG.set(max(0.0, time.time() - synced) if synced else 0.0)
