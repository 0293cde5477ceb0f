"""The store reaching the edge: each worker's loop that applies changes, purges and
prefetches within a second.

A worker reads the store's version every POLL_SECONDS (one indexed read); when it
moved, it swaps `edge.config` for one built from the stored domains (requests in
flight keep the configuration they started with, no connection is touched), applies
the refreshes it has not applied yet, acknowledges them, and takes prefetches.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from vodedge.control.certificates import CertificateStore, stored_certificates
from vodedge.control.domains import edge_domain_name, node_with
from vodedge.control.store import TaskRecord, WorkerStore
from vodedge.control.store_config import certificates_dir
from vodedge.edge.resolve import cache_key

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from vodedge.edge.app import Edge

POLL_SECONDS = 0.25
PRELOADS_AT_ONCE = 4
PRELOAD_TIMEOUT = 600.0


def _split(path: str) -> tuple[str, str, str]:
    """(host, path, query) of a task's object, given with or without a scheme."""
    parts = urlsplit(path if "://" in path else "http://" + path)
    return (parts.hostname or "", parts.path or "/", parts.query)


def apply_refresh(edge: Edge, task: TaskRecord) -> int:
    """Apply a refresh to the cache; how many objects it touched.

    A file is dropped. A directory or a regular expression's matches are dropped with
    Force, and otherwise marked stale: the next request revalidates them with the
    origin, which refetches only what changed (the API's Force=false).
    """
    host, path, query = _split(task.path)
    domain = edge.config.lookup(host)
    if domain is None:
        return 0  # deleted since: nothing of it may be served anyway
    cache = edge.cache
    if task.kind == "directory":
        directory = cache_key(domain, host, path if path.endswith("/") else path + "/", {})
        if task.force:
            return int(cache.purge(directory, prefix=True))
        keys = [k for k in cache.index.keys_with_prefix(directory) if "\x1f" not in k]
        # The directory too: a fill of a key under it not indexed yet publishes stale.
        return int(cache.expire(keys, directory))
    if task.kind == "regex":
        owner = cache_key(domain, host, "", {})
        # The regular expression is all after the host, untouched by URL parsing.
        pattern = re.compile(re.sub(r"^https?://", "", task.path, flags=re.I).partition("/")[2])
        matched = []
        for key in cache.index.keys_with_prefix(owner + "/"):
            rest = key[len(owner) + 1 :]
            if "\x1f" in rest:
                continue  # a rendition: it goes with its object
            if pattern.fullmatch(rest) or pattern.fullmatch(rest.partition("?")[0]):
                matched.append(key)
        if not task.force:
            # Fills running now of keys not indexed yet cannot be matched: every fill of
            # the domain running now is stored stale (at worst, one extra revalidation).
            return int(cache.expire(matched, owner + "/"))
        return sum(int(cache.purge(key)) for key in matched)
    key = cache_key(domain, host, path, dict(parse_qsl(query, keep_blank_values=True)))
    if query:
        return int(cache.purge(key))
    return int(cache.purge(key) + cache.purge(key + "?", prefix=True))


class WorkerSync:
    """One worker's loop over the store."""

    def __init__(
        self,
        store: WorkerStore,
        index: int,
        listen: tuple[str, int],
        state_dir: Path,
        *,
        report: bool = True,
    ) -> None:
        self.store = store
        # A fleet node's master reports the store on /metrics (the workers follow its copy).
        self.report = report
        self.state_dir = state_dir
        self.index = index
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen[0], listen[0])
        self.client_base = (
            f"http://[{host}]:{listen[1]}" if ":" in host else f"http://{host}:{listen[1]}"
        )
        self.seen = -1
        self._preloads: set[asyncio.Task[None]] = set()
        self.version_gauge: Gauge | None = None

    async def run(self, edge: Edge) -> None:
        """Poll until cancelled."""
        if self.report:
            # Not imported otherwise: a gauge made in a process is 0 there until set,
            # and would hide the master's view of a fleet's store (multiprocess "min").
            from vodedge.control import store_metrics

            self.version_gauge = store_metrics.STORE_VERSION
        released = False
        last_ok = time.time()

        def note(up: bool) -> None:
            if self.report:
                from vodedge.control import store_metrics

                store_metrics.STORE_UP.set(int(up))
                store_metrics.STORE_LAST_SYNC.set(last_ok)
                store_metrics.STORE_LAG.set(max(0.0, time.time() - last_ok))

        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=PRELOAD_TIMEOUT), auto_decompress=False
        ) as session:
            failing = ""
            while True:
                try:
                    if not released:  # once, when the store first answers
                        await asyncio.to_thread(self.store.release_preloads, self.index)
                        if self.index == 0:  # the master could not if the store was down
                            await asyncio.to_thread(self.store.set_workers, edge.config.workers)
                        released = True
                    await self.step(edge, session)
                    failing = ""
                    last_ok = time.time()
                    note(True)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a busy or broken store: keep serving, try again
                    why = f"{type(exc).__name__}: {exc}"
                    if why != failing:  # once per cause, not four times a second
                        sys.stderr.write(f"vodedge: worker {self.index}: store sync: {why}\n")
                    failing = why
                    note(False)
                await asyncio.sleep(POLL_SECONDS)

    async def step(self, edge: Edge, session: aiohttp.ClientSession) -> None:
        """One look at the store."""
        version = self.store.version()
        if version == self.seen:
            return
        records, stored = self.store.domains(), self.store.certificates()
        directory = certificates_dir(self.state_dir)
        certificates = stored_certificates(stored, directory, edge_domain_name)
        edge.config = node_with(edge.config, records, certificates)
        CertificateStore(directory).prune(
            [path for c in certificates.values() for path in (c.cert_path, c.key_path)]
        )
        pending = self.store.pending_refreshes(self.index)
        for task in pending:
            apply_refresh(edge, task)
        if pending:
            ids = sorted({task.task_id for task in pending})
            await asyncio.to_thread(self.store.ack_refreshes, ids, self.index)
        if len(self._preloads) < PRELOADS_AT_ONCE:
            taken = await asyncio.to_thread(
                self.store.claim_preloads, self.index, PRELOADS_AT_ONCE - len(self._preloads)
            )
            for task in taken:
                job = asyncio.get_running_loop().create_task(self.preload(session, task))
                self._preloads.add(job)
                job.add_done_callback(self._preloads.discard)
            if taken:
                return  # look again next time: there may be more than we took
        self.seen = version
        if self.version_gauge is not None:
            self.version_gauge.set(version)

    async def preload(self, session: aiohttp.ClientSession, task: TaskRecord) -> None:
        """Fetch one object through the node's own client listener, so it is cached."""
        host, path, query = _split(task.path)
        url = self.client_base + path + ("?" + query if query else "")
        ok, why = False, ""
        # The request may land on a worker that has not seen the domain yet (each looks
        # every POLL_SECONDS): an unknown Host is asked again for a little while.
        deadline = asyncio.get_running_loop().time() + 8 * POLL_SECONDS
        try:
            while True:
                async with session.get(url, headers={"Host": host}) as response:
                    while await response.content.readany():
                        pass
                    ok = response.status == 200
                    why = "" if ok else f"the node answered {response.status}"
                    unknown = response.headers.get("X-Vodedge-Error") == "unknown_host"
                if not unknown or asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(POLL_SECONDS / 2)
        except (aiohttp.ClientError, TimeoutError) as exc:
            why = f"fetch failed: {type(exc).__name__}"
        await asyncio.to_thread(self.store.finish_preload, task.row, ok, why)
