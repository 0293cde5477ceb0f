"""The shared store of a fleet: the ControlStore in Redis, so any node's API changes
what every node serves.

Writes are optimistic transactions (WATCH, then MULTI/EXEC, retried when a watched
key moved): two nodes writing at once never lose an update. Ids (domains, ConfigIds,
tasks) come from HINCRBY: unique across the fleet, gaps allowed.

A refresh is Complete when every worker of every live node has applied it. A node
is live while its heartbeat key (set by its workers as they poll, with a TTL) exists.
A node that was down applies, when it returns, every refresh made since it first
joined that it has not acknowledged, even those the others completed meanwhile.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ParamSpec, TypeVar, cast

import redis
from redis.client import Pipeline

from vodedge.config import Function

from .sqlite_store import (
    _FIRST_CONFIG_ID,
    _FIRST_TASK_ID,
    TASK_MEMORY,
    _functions,
    _functions_json,
    _sources,
    _sources_json,
    record_digest,
)
from .store import (
    Certificate,
    DomainExists,
    DomainRecord,
    StaleRecord,
    StoreUnavailable,
    TaskKind,
    TaskQuery,
    TaskRecord,
    TaskStatus,
)

# A node that has not polled for this long is no longer waited for.
HEARTBEAT_SECONDS = 10
T = TypeVar("T")
P = ParamSpec("P")


def _unavailable(method: Callable[P, T]) -> Callable[P, T]:
    """`method`, with Redis out of reach reported as StoreUnavailable."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}: {exc}") from None

    return call


def _domain_json(record: DomainRecord) -> str:
    return json.dumps(
        {
            "name": record.name,
            "domain_id": record.domain_id,
            "cdn_type": record.cdn_type,
            "scope": record.scope,
            "resource_group_id": record.resource_group_id,
            "description": record.description,
            "fallback": record.fallback,
            "status": record.status,
            "sources": _sources_json(record.sources),
            "functions": _functions_json(record.functions),
            "created": record.created,
            "modified": record.modified,
            "revision": record.revision,
        }
    )


def _domain(text: str | bytes) -> DomainRecord:
    item = json.loads(text)
    return DomainRecord(
        name=item["name"],
        domain_id=item["domain_id"],
        cdn_type=item["cdn_type"],
        scope=item["scope"],
        resource_group_id=item["resource_group_id"],
        description=item["description"],
        fallback=item["fallback"],
        status="offline" if item["status"] == "offline" else "online",
        sources=_sources(item["sources"]),
        functions=_functions(item["functions"]),
        created=item["created"],
        modified=item["modified"],
        revision=item["revision"],
    )


class RedisStore:
    """The ControlStore in Redis, as seen by one node (`node` names it in acks)."""

    def __init__(self, url: str, node: str, prefix: str = "vodedge:") -> None:
        self.url = url
        self.node = node
        self.p = prefix
        self.redis: redis.Redis = self._connect(url)

    @staticmethod
    def _connect(url: str) -> redis.Redis:
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": 2.0,
            "socket_connect_timeout": 2.0,
        }
        if url.startswith("redis+sentinel://"):
            from redis.sentinel import Sentinel

            # redis+sentinel://host:port[,host:port]/service[/db]
            rest = url.removeprefix("redis+sentinel://")
            hosts, _, path = rest.partition("/")
            service, _, db = path.partition("/")
            sentinels = [
                (h.rpartition(":")[0] or h, int(h.rpartition(":")[2] or 26379))
                for h in hosts.split(",")
            ]
            sentinel = Sentinel(sentinels, **options)  # type: ignore[no-untyped-call]
            master = sentinel.master_for(  # type: ignore[no-untyped-call]
                service or "mymaster", db=int(db or 0), **options
            )
            return cast(redis.Redis, master)
        return redis.Redis.from_url(url, **options)

    def close(self) -> None:
        """Close the connections."""
        self.redis.close()

    # --- helpers ------------------------------------------------------------------------

    def _k(self, *parts: object) -> str:
        return self.p + ":".join(str(p) for p in parts)

    def _transaction(self, body: Callable[[Pipeline], T], *watch: str) -> T:
        """Run `body` under WATCH of `watch`; redone if one of them moved before EXEC."""
        result: list[T] = []

        def run(pipe: Pipeline) -> None:
            result[:] = [body(pipe)]

        self.redis.transaction(run, *watch)
        return result[0]

    def _next_id(self, name: str, first: int) -> int:
        self.redis.hsetnx(self._k("meta"), name, first - 1)
        return int(self.redis.hincrby(self._k("meta"), name, 1))

    def _with_config_ids(self, functions: Sequence[Function]) -> tuple[Function, ...]:
        return tuple(
            f
            if f.config_id is not None
            else replace(f, config_id=self._next_id("config_id", _FIRST_CONFIG_ID))
            for f in functions
        )

    # --- domains ------------------------------------------------------------------------

    @_unavailable
    def version(self) -> int:
        """A number that grows with every change of domains, certificates or tasks."""
        return int(self.redis.hget(self._k("meta"), "version") or 0)

    @_unavailable
    def domain(self, name: str) -> DomainRecord | None:
        """The domain stored under `name`."""
        text = self.redis.hget(self._k("domains"), name)
        return None if text is None else _domain(text)

    @_unavailable
    def domains(self) -> list[DomainRecord]:
        """Every domain, by name."""
        items = cast(dict[str, str], self.redis.hgetall(self._k("domains")))
        return [_domain(items[name]) for name in sorted(items)]

    def _fresh(self, record: DomainRecord, created: float | None = None) -> DomainRecord:
        now = time.time()
        return replace(
            record,
            domain_id=self._next_id("domain_id", 1),
            functions=self._with_config_ids(record.functions),
            created=created or record.created or now,
            modified=now,
            revision=1,
        )

    @_unavailable
    def add_domain(self, record: DomainRecord) -> DomainRecord:
        """Store a new domain (DomainExists if the name is taken); functions get ConfigIds."""
        stored = self._fresh(record)
        if not self.redis.hsetnx(self._k("domains"), record.name, _domain_json(stored)):
            raise DomainExists(record.name)
        self.redis.hincrby(self._k("meta"), "version", 1)
        return stored

    @_unavailable
    def update_domains(self, records: Sequence[DomainRecord]) -> list[DomainRecord]:
        """Write all of `records` or none: StaleRecord if one changed since it was read."""
        now = time.time()
        new = [
            replace(
                r,
                functions=self._with_config_ids(r.functions),
                modified=now,
                revision=r.revision + 1,
            )
            for r in records
        ]

        def body(pipe: Pipeline) -> list[DomainRecord]:
            for record in records:
                text = pipe.hget(self._k("domains"), record.name)
                if text is None or _domain(text).revision != record.revision:
                    raise StaleRecord(record.name)
            pipe.multi()
            for record in new:
                pipe.hset(self._k("domains"), record.name, _domain_json(record))
            pipe.hincrby(self._k("meta"), "version", 1)
            return new

        return self._transaction(body, self._k("domains"))

    @_unavailable
    def delete_domain(self, name: str) -> bool:
        """Forget a domain and its certificate; whether it existed."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self._k("domains"), name)
        pipe.hdel(self._k("certificates"), name)
        gone = bool(pipe.execute()[0])
        if gone:
            self.redis.hincrby(self._k("meta"), "version", 1)
        return gone

    @_unavailable
    def import_file_domains(self, records: Sequence[DomainRecord]) -> list[str]:
        """Make the store agree with a config file's domains where the file changed
        (see SqliteStore.import_file_domains); the names written or deleted."""

        def body(pipe: Pipeline) -> list[str]:
            known = cast(dict[str, str], pipe.hgetall(self._k("file_domains")))
            writes: list[tuple[str, str, str]] = []
            for record in records:
                digest = record_digest(record)
                if known.pop(record.name, None) == digest:
                    continue
                old = pipe.hget(self._k("domains"), record.name)
                created = None if old is None else _domain(old).created
                writes.append((record.name, _domain_json(self._fresh(record, created)), digest))
            pipe.multi()
            for name, text, digest in writes:
                pipe.hset(self._k("domains"), name, text)
                pipe.hset(self._k("file_domains"), name, digest)
            for name in known:
                pipe.hdel(self._k("domains"), name)
                pipe.hdel(self._k("certificates"), name)
                pipe.hdel(self._k("file_domains"), name)
            changed = [name for name, _, _ in writes] + list(known)
            if changed:
                pipe.hincrby(self._k("meta"), "version", 1)
            return changed

        return self._transaction(body, self._k("domains"), self._k("file_domains"))

    # --- tasks --------------------------------------------------------------------------

    def _forget_old_tasks(self, now: float) -> None:
        old = cast(
            list[str], self.redis.zrangebyscore(self._k("task_rows"), "-inf", now - TASK_MEMORY)
        )
        if not old:
            return
        finished = [
            row
            for row, status in zip(old, self.redis.hmget(self._k("task_status"), old), strict=True)
            if status != "Refreshing"
        ]
        if finished:
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(self._k("task_rows"), *finished)
            for name in ("tasks", "task_status", "task_desc", "task_claim"):
                pipe.hdel(self._k(name), *finished)
            pipe.execute()

    @_unavailable
    def add_task(self, kind: TaskKind, objects: Sequence[tuple[str, str]], force: bool) -> int:
        """A task over (domain, path) objects; its TaskId."""
        now = time.time()
        self._forget_old_tasks(now)
        task_id = self._next_id("task_id", _FIRST_TASK_ID)
        last = int(self.redis.hincrby(self._k("meta"), "row", len(objects)))
        pipe = self.redis.pipeline(transaction=True)
        for row, (domain, path) in enumerate(objects, start=last - len(objects) + 1):
            item = [row, task_id, kind, path, domain, force, now]
            pipe.hset(self._k("tasks"), str(row), json.dumps(item))
            pipe.hset(self._k("task_status"), str(row), "Refreshing")
            pipe.zadd(self._k("task_rows"), {str(row): now})
        pipe.hincrby(self._k("meta"), "version", 1)
        pipe.execute()
        return task_id

    def _task_rows(self, rows: Sequence[str]) -> list[TaskRecord]:
        if not rows:
            return []
        pipe = self.redis.pipeline(transaction=True)
        pipe.hmget(self._k("tasks"), list(rows))
        pipe.hmget(self._k("task_status"), list(rows))
        pipe.hmget(self._k("task_desc"), list(rows))
        items, statuses, descriptions = pipe.execute()
        tasks = []
        for item, status, description in zip(items, statuses, descriptions, strict=True):
            if item is None:
                continue
            row, task_id, kind, path, domain, force, created = json.loads(item)
            tasks.append(
                TaskRecord(
                    row=row,
                    task_id=task_id,
                    kind=kind,
                    path=path,
                    domain=domain,
                    force=bool(force),
                    status=cast(TaskStatus, status or "Refreshing"),
                    created=created,
                    process="100%" if status != "Refreshing" else "0%",
                    description=description or "",
                )
            )
        return tasks

    def _all_tasks(self) -> list[TaskRecord]:
        return self._task_rows(cast(list[str], self.redis.zrange(self._k("task_rows"), 0, -1)))

    @_unavailable
    def tasks(self, query: TaskQuery) -> tuple[int, list[TaskRecord]]:
        """The total matching `query`, and the page it asks for (newest first)."""
        matching = [
            t
            for t in reversed(self._all_tasks())
            if (query.task_id is None or t.task_id == query.task_id)
            and (query.path is None or t.path == query.path)
            and (query.kind is None or t.kind == query.kind)
            and (query.domain is None or t.domain == query.domain)
            and (query.status is None or t.status == query.status)
            and (query.start is None or t.created >= query.start)
            and (query.end is None or t.created < query.end)
        ]
        start = (query.page - 1) * query.size
        return len(matching), self._with_progress(matching[start : start + query.size])

    def _needed(self) -> set[str]:
        return {f"{node}/{w}" for node, count in self.live_nodes().items() for w in range(count)}

    def _with_progress(self, tasks: list[TaskRecord]) -> list[TaskRecord]:
        """Refreshing refreshes' `process`: the share of live workers that applied them."""
        ids = sorted({t.task_id for t in tasks if t.status == "Refreshing" and t.kind != "preload"})
        needed = self._needed() if ids else set()
        if not needed:
            return tasks
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.smembers(self._k("acks", task_id))
        share = {
            task_id: min(99, len(needed & set(members)) * 100 // len(needed))
            for task_id, members in zip(ids, pipe.execute(), strict=True)
        }
        return [
            replace(t, process=f"{share[t.task_id]}%") if t.task_id in share else t for t in tasks
        ]

    @_unavailable
    def task_counts_since(self, since: float) -> Mapping[TaskKind, int]:
        """How many objects of each kind were submitted since `since` (for quotas)."""
        rows = cast(list[str], self.redis.zrangebyscore(self._k("task_rows"), since, "+inf"))
        counts: dict[TaskKind, int] = {}
        for task in self._task_rows(rows):
            counts[task.kind] = counts.get(task.kind, 0) + 1
        return counts

    def _beat(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._k("alive", self.node), "1", ex=HEARTBEAT_SECONDS)
        pipe.hsetnx(self._k("node_since"), self.node, str(time.time()))
        pipe.execute()

    @_unavailable
    def live_nodes(self) -> dict[str, int]:
        """Nodes whose heartbeat is current, and how many workers each runs."""
        counts = cast(dict[str, str], self.redis.hgetall(self._k("node_workers")))
        names = sorted(counts)
        if not names:
            return {}
        alive = self.redis.mget([self._k("alive", n) for n in names])
        return {n: int(counts[n]) for n, a in zip(names, alive, strict=True) if a is not None}

    @_unavailable
    def set_workers(self, count: int) -> None:
        """How many of this node's workers must apply a refresh before it is Complete."""
        self.redis.hset(self._k("node_workers"), self.node, count)
        self._beat()
        self._complete()

    def _member(self, worker: int) -> str:
        return f"{self.node}/{worker}"

    @_unavailable
    def pending_refreshes(self, worker: int) -> list[TaskRecord]:
        """Refresh objects made since this node joined that `worker` has not applied."""
        self._beat()
        since = float(self.redis.hget(self._k("node_since"), self.node) or 0)
        rows = cast(list[str], self.redis.zrangebyscore(self._k("task_rows"), since, "+inf"))
        tasks = [t for t in self._task_rows(rows) if t.kind != "preload"]
        ids = sorted({t.task_id for t in tasks})
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.sismember(self._k("acks", task_id), self._member(worker))
        acked = {task_id for task_id, done in zip(ids, pipe.execute(), strict=True) if done}
        return [t for t in tasks if t.task_id not in acked]

    @_unavailable
    def ack_refreshes(self, task_ids: Sequence[int], worker: int) -> None:
        """`worker` applied these tasks; those every live worker applied become Complete."""
        if not task_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        for task_id in task_ids:
            pipe.sadd(self._k("acks", task_id), self._member(worker))
            pipe.expire(self._k("acks", task_id), int(TASK_MEMORY) + 3600)
        pipe.execute()
        self._complete()

    def _complete(self) -> None:
        needed = self._needed()
        if not needed:
            return
        pending = [t for t in self._all_tasks() if t.status == "Refreshing" and t.kind != "preload"]
        ids = sorted({t.task_id for t in pending})
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.smembers(self._k("acks", task_id))
        done = {
            task_id
            for task_id, members in zip(ids, pipe.execute(), strict=True)
            if needed <= set(members)
        }
        rows = [str(t.row) for t in pending if t.task_id in done]
        if rows:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self._k("task_status"), mapping=dict.fromkeys(rows, "Complete"))
            pipe.hincrby(self._k("meta"), "version", 1)
            pipe.execute()

    @_unavailable
    def claim_preloads(self, worker: int, limit: int) -> list[TaskRecord]:
        """Preload objects no worker has taken yet, now taken by `worker` (HSETNX: once)."""
        taken: list[TaskRecord] = []
        for task in self._all_tasks():
            if len(taken) >= limit:
                break
            if task.kind != "preload" or task.status != "Refreshing":
                continue
            if self.redis.hsetnx(self._k("task_claim"), str(task.row), self._member(worker)):
                taken.append(task)
        return taken

    @_unavailable
    def finish_preload(self, row: int, ok: bool, description: str) -> None:
        """A taken preload object is Complete (ok) or Failed (with why)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._k("task_status"), str(row), "Complete" if ok else "Failed")
        pipe.hset(self._k("task_desc"), str(row), description)
        pipe.hincrby(self._k("meta"), "version", 1)
        pipe.execute()

    @_unavailable
    def release_preloads(self, worker: int) -> None:
        """Hand back what `worker` took and did not finish (it is starting afresh)."""
        claims = cast(dict[str, str], self.redis.hgetall(self._k("task_claim")))
        mine = [row for row, who in claims.items() if who == self._member(worker)]
        if not mine:
            return
        statuses = self.redis.hmget(self._k("task_status"), mine)
        unfinished = [r for r, s in zip(mine, statuses, strict=True) if s == "Refreshing"]
        if unfinished:
            self.redis.hdel(self._k("task_claim"), *unfinished)

    # --- certificates -------------------------------------------------------------------

    @_unavailable
    def put_certificate(self, certificate: Certificate) -> None:
        """Set a domain's certificate (the domain must exist)."""
        text = json.dumps(
            {
                "domain": certificate.domain,
                "name": certificate.name,
                "cert_pem": certificate.cert_pem,
                "key_pem": certificate.key_pem,
                "ssl_protocol": certificate.ssl_protocol,
                "modified": certificate.modified or time.time(),
            }
        )

        def body(pipe: Pipeline) -> None:
            if not pipe.hexists(self._k("domains"), certificate.domain):
                raise KeyError(certificate.domain)
            pipe.multi()
            pipe.hset(self._k("certificates"), certificate.domain, text)
            pipe.hincrby(self._k("meta"), "version", 1)

        self._transaction(body, self._k("domains"))

    @staticmethod
    def _certificate(text: str) -> Certificate:
        item = json.loads(text)
        return Certificate(
            domain=item["domain"],
            name=item["name"],
            cert_pem=item["cert_pem"],
            key_pem=item["key_pem"],
            ssl_protocol="off" if item["ssl_protocol"] == "off" else "on",
            modified=item["modified"],
        )

    @_unavailable
    def certificate(self, domain: str) -> Certificate | None:
        """A domain's certificate."""
        text = self.redis.hget(self._k("certificates"), domain)
        return None if text is None else self._certificate(str(text))

    @_unavailable
    def certificates(self) -> list[Certificate]:
        """Every stored certificate."""
        items = cast(dict[str, str], self.redis.hgetall(self._k("certificates")))
        return [self._certificate(items[d]) for d in sorted(items)]

    @_unavailable
    def delete_certificate(self, domain: str) -> bool:
        """Forget a domain's certificate; whether there was one."""
        gone = bool(self.redis.hdel(self._k("certificates"), domain))
        if gone:
            self.redis.hincrby(self._k("meta"), "version", 1)
        return gone
