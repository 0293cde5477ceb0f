"""The shared store of a fleet: the ControlStore in Redis, so any node's API changes
what every node serves.

Writes are optimistic transactions (WATCH, then MULTI/EXEC, retried when a watched
key moved): two nodes writing at once never lose an update. Ids (domains, ConfigIds,
tasks) come from HINCRBY: unique across the fleet, gaps allowed.

Every write also adds an entry to one Redis Stream (`vodedge:changes`) in the same
transaction: which domain or certificate changed, the objects of a new task, or that
the access keys changed. Each node reads the stream from the last id it applied
(`read_changes`), so a node that was away replays what it missed; one that fell
behind the stream's retention (CHANGE_RETENTION) reads a `snapshot` instead.

A task is Complete when every live node has acknowledged it. A node is live while
its heartbeat (a score in `vodedge:nodes`) is recent. A node that was down applies,
when it returns, every refresh made since it first joined that it has not
acknowledged, even those the others completed meanwhile.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from vodedge.config import Function
from vodedge.config.keys import AccessKey

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

# A node that has not said it is alive for this long is no longer waited for.
HEARTBEAT_SECONDS = 10
# A node not seen for this long is forgotten (it would start afresh).
NODE_MEMORY = 30 * 86400.0
CHANGES = "changes"
# How long a change stays in the stream (trimmed by XADD ... MINID ~). A node away
# for longer reads everything again (one snapshot) instead of replaying.
CHANGE_RETENTION = 86400.0
T = TypeVar("T")
P = ParamSpec("P")


def _unavailable(method: Callable[P, T]) -> Callable[P, T]:
    """`method`, with Redis out of reach reported as StoreUnavailable."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, redis.InvalidResponse) as exc:
            # InvalidResponse: something that is not Redis answers at that address.
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


def _key_json(key: AccessKey) -> str:
    return json.dumps(
        {"id": key.id, "secret": key.secret, "read_only": key.read_only, "rate": key.rate}
    )


def _keys(items: Mapping[str, str]) -> list[AccessKey]:
    keys = []
    for key_id in sorted(items):
        item = json.loads(items[key_id])
        keys.append(AccessKey(item["id"], item["secret"], item["read_only"], item["rate"]))
    return keys


def _task_of(item: Sequence[Any], status: str | None, description: str | None) -> TaskRecord:
    row, task_id, kind, path, domain, force, created = item
    return TaskRecord(
        row=row,
        task_id=task_id,
        kind=kind,
        path=path,
        domain=domain,
        force=bool(force),
        status=cast(TaskStatus, status or "Refreshing"),
        created=created,
        process="100%" if status not in (None, "Refreshing") else "0%",
        description=description or "",
    )


def _id(stream_id: str) -> tuple[int, int]:
    """A stream id ("1700000000000-3") in the order Redis gives them."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Snapshot:
    """All a node needs to start following the stream at `last_id`."""

    last_id: str
    seen: int  # entries the stream had had by then (see RedisStore._missed)
    version: int
    domains: list[DomainRecord]
    certificates: list[Certificate]
    keys: list[AccessKey]
    tasks: list[TaskRecord]  # this node's refreshes to apply and preloads to fetch


@dataclass(frozen=True)
class Delta:
    """What changed up to `last_id`: the records now (None: deleted), new tasks."""

    last_id: str
    seen: int | None  # entries the stream had had, when this read caught up with it
    version: int | None  # None: nothing new
    domains: dict[str, DomainRecord | None]
    certificates: dict[str, Certificate | None]
    keys: list[AccessKey] | None  # None: unchanged
    tasks: list[TaskRecord]


def connect(url: str) -> redis.Redis:
    """A client for a `redis://`, `rediss://` or `redis+sentinel://` URL, with short
    timeouts and one new connection for a call whose connection broke."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        # A pooled connection that Redis (restarted) or a middlebox dropped fails only when
        # used; from a URL, redis-py would not try again, and the API would answer 503
        # though Redis is back. Once, on a connection error only: a timeout may hide a
        # command that ran (and a hung Redis would cost two). A write whose reply was lost
        # may be sent again: ours are WATCHed transactions that check what they change,
        # or write the same values and ids again (a usage sample would count twice, as
        # the sampler's next look would after a failure).
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
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


class RedisStore:
    """The ControlStore in Redis, as seen by one node (`node` names it in acks)."""

    def __init__(self, url: str, node: str, prefix: str = "vodedge:") -> None:
        self.url = url
        self.node = node
        self.p = prefix
        self.redis: redis.Redis = connect(url)

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

        def body(pipe: Pipeline) -> DomainRecord:
            if pipe.hexists(self._k("domains"), record.name):
                raise DomainExists(record.name)
            pipe.multi()
            pipe.hset(self._k("domains"), record.name, _domain_json(stored))
            pipe.hincrby(self._k("meta"), "version", 1)
            self._announce(pipe, "domain", record.name)
            return stored

        return self._transaction(body, self._k("domains"))

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
                self._announce(pipe, "domain", record.name)
            pipe.hincrby(self._k("meta"), "version", 1)
            return new

        return self._transaction(body, self._k("domains"))

    @_unavailable
    def delete_domain(self, name: str) -> bool:
        """Forget a domain and its certificate; whether it existed."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self._k("domains"), name)
        pipe.hdel(self._k("certificates"), name)
        pipe.hincrby(self._k("meta"), "version", 1)
        self._announce(pipe, "domain", name)
        return bool(pipe.execute()[0])

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
            for name in changed:
                self._announce(pipe, "domain", name)
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
            ids = {str(t.task_id) for t in self._task_rows(finished)}
            pipe = self.redis.pipeline(transaction=True)
            pipe.zrem(self._k("task_rows"), *finished)
            for name in ("tasks", "task_status", "task_desc"):
                pipe.hdel(self._k(name), *finished)
            if ids:
                pipe.hdel(self._k("task_ids"), *ids)
            pipe.execute()

    @_unavailable
    def add_task(self, kind: TaskKind, objects: Sequence[tuple[str, str]], force: bool) -> int:
        """A task over (domain, path) objects; its TaskId."""
        now = time.time()
        self._forget_old_tasks(now)
        task_id = self._next_id("task_id", _FIRST_TASK_ID)
        last = int(self.redis.hincrby(self._k("meta"), "row", len(objects)))
        pipe = self.redis.pipeline(transaction=True)
        items = []
        for row, (domain, path) in enumerate(objects, start=last - len(objects) + 1):
            item = [row, task_id, kind, path, domain, force, now]
            items.append(item)
            pipe.hset(self._k("tasks"), str(row), json.dumps(item))
            pipe.hset(self._k("task_status"), str(row), "Refreshing")
            pipe.zadd(self._k("task_rows"), {str(row): now})
        pipe.hset(self._k("task_ids"), str(task_id), json.dumps([i[0] for i in items]))
        pipe.hincrby(self._k("meta"), "version", 1)
        self._announce(pipe, "task", tasks=json.dumps(items))
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
        return [
            _task_of(json.loads(item), status, description)
            for item, status, description in zip(items, statuses, descriptions, strict=True)
            if item is not None
        ]

    def _all_tasks(self) -> list[TaskRecord]:
        return self._task_rows(cast(list[str], self.redis.zrange(self._k("task_rows"), 0, -1)))

    @_unavailable
    def tasks(self, query: TaskQuery) -> tuple[int, list[TaskRecord]]:
        """The total matching `query`, and the page it asks for (newest first)."""
        # Tasks waiting only for nodes that are gone since are Complete now.
        self._complete(sorted({t.task_id for t in self._all_tasks() if t.status == "Refreshing"}))
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

    @_unavailable
    def task_counts_since(self, since: float) -> Mapping[TaskKind, int]:
        """How many objects of each kind were submitted since `since` (for quotas)."""
        rows = cast(list[str], self.redis.zrangebyscore(self._k("task_rows"), since, "+inf"))
        counts: dict[TaskKind, int] = {}
        for task in self._task_rows(rows):
            counts[task.kind] = counts.get(task.kind, 0) + 1
        return counts

    # --- nodes: heartbeats, acknowledgements ----------------------------------------------

    def _since_heartbeat(self) -> float:
        return time.time() - HEARTBEAT_SECONDS

    @_unavailable
    def heartbeat(self, workers: int) -> None:
        """This node is alive (for HEARTBEAT_SECONDS), runs `workers` workers, and, the
        first time, joins: refreshes made from now on are its to apply."""
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self._k("nodes"), {self.node: now})
        pipe.hsetnx(self._k("node_since"), self.node, str(now))
        pipe.hset(self._k("node_workers"), self.node, workers)
        pipe.zremrangebyscore(self._k("nodes"), "-inf", now - NODE_MEMORY)
        pipe.execute()

    @_unavailable
    def live_nodes(self) -> list[str]:
        """Nodes whose heartbeat is current, by name."""
        names = self.redis.zrangebyscore(self._k("nodes"), self._since_heartbeat(), "+inf")
        return sorted(cast(list[str], names))

    def _with_progress(self, tasks: list[TaskRecord]) -> list[TaskRecord]:
        """Refreshing tasks' `process`: the share of live nodes that applied them."""
        ids = sorted({t.task_id for t in tasks if t.status == "Refreshing"})
        needed = set(self.live_nodes()) if ids else set()
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
    def ack_tasks(self, task_ids: Sequence[int], failed: Mapping[int, str] | None = None) -> None:
        """This node applied these tasks (refreshes applied, preloads fetched); `failed`:
        preload rows it could not fetch, and why. A task every live node acknowledged
        is Complete (its failed rows stay Failed)."""
        if not task_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        for row, why in (failed or {}).items():
            pipe.hset(self._k("task_status"), str(row), "Failed")
            pipe.hset(self._k("task_desc"), str(row), why)
        for task_id in task_ids:
            pipe.sadd(self._k("acks", task_id), self.node)
            pipe.expire(self._k("acks", task_id), int(TASK_MEMORY) + 3600)
        pipe.execute()
        self._complete(task_ids)

    def _complete(self, task_ids: Sequence[int]) -> None:
        """Mark Complete the tasks among `task_ids` every live node acknowledged."""
        if not task_ids:
            return
        # Counting first: only the last nodes to acknowledge read who the others are.
        live = int(self.redis.zcount(self._k("nodes"), self._since_heartbeat(), "+inf"))
        if live == 0:
            return
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.scard(self._k("acks", task_id))
        counts = pipe.execute()
        candidates = [t for t, n in zip(task_ids, counts, strict=True) if int(n) >= live]
        if not candidates:
            return
        needed = set(self.live_nodes())
        pipe = self.redis.pipeline(transaction=False)
        for task_id in candidates:
            pipe.smembers(self._k("acks", task_id))
        pipe.hmget(self._k("task_ids"), [str(t) for t in candidates])
        *members, rows_of = pipe.execute()
        rows = [
            str(row)
            for acked, rows_json in zip(members, rows_of, strict=True)
            if rows_json is not None and needed <= set(acked)
            for row in json.loads(rows_json)
        ]
        if not rows:
            return
        statuses = self.redis.hmget(self._k("task_status"), rows)
        finished = [r for r, s in zip(rows, statuses, strict=True) if s == "Refreshing"]
        if finished:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self._k("task_status"), mapping=dict.fromkeys(finished, "Complete"))
            pipe.hincrby(self._k("meta"), "version", 1)
            pipe.execute()

    def _node_tasks(self) -> list[TaskRecord]:
        """Tasks made since this node joined that it has not acknowledged: every such
        refresh (also one the others completed meanwhile), and preloads still running."""
        since = float(self.redis.hget(self._k("node_since"), self.node) or time.time())
        rows = cast(list[str], self.redis.zrangebyscore(self._k("task_rows"), since, "+inf"))
        tasks = [
            t for t in self._task_rows(rows) if t.kind != "preload" or t.status == "Refreshing"
        ]
        ids = sorted({t.task_id for t in tasks})
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.sismember(self._k("acks", task_id), self.node)
        acked = {task_id for task_id, done in zip(ids, pipe.execute(), strict=True) if done}
        return [t for t in tasks if t.task_id not in acked]

    # --- the change stream --------------------------------------------------------------

    def _announce(self, pipe: Pipeline, kind: str, name: str = "", tasks: str = "") -> None:
        """Add a change to the stream in `pipe`, trimming what is older than the retention."""
        oldest = int((time.time() - CHANGE_RETENTION) * 1000)
        fields = {"kind": kind, "name": name, "tasks": tasks}
        pipe.xadd(self._k(CHANGES), fields, minid=str(oldest), approximate=True)  # type: ignore[arg-type]

    def _stream_info(self) -> dict[str, Any]:
        try:
            info: dict[str, Any] = self.redis.xinfo_stream(self._k(CHANGES))
        except redis.ResponseError:  # no stream yet: nothing was ever announced
            return {}
        return info

    @staticmethod
    def _missed(info: dict[str, Any], after: str, seen: int | None) -> bool:
        """Whether the stream lost entries a reader at `after` has not read.

        Entries are only ever trimmed oldest first, so with `seen` (how many entries the
        stream had had when the reader was last caught up) it missed some exactly when
        more than `seen` were removed. Without it (the reader stopped while behind):
        when entries were removed and the oldest left is past `after`, which may be a
        trim of `after` alone (the reader then reads a snapshot it did not need). Redis
        having lost its data (its stream ends before `after`, or has fewer entries than
        the reader saw) is a miss too.
        """
        if not info:
            return _id(after) > (0, 0) or bool(seen)
        added = int(info.get("entries-added", info["length"]))
        removed = added - int(info["length"])
        if _id(str(info["last-generated-id"])) < _id(after):
            return True
        if _id(str(info.get("max-deleted-entry-id", "0-0"))) > _id(after):
            return True  # XDEL (vodedge never deletes: an operator did)
        if seen is not None:
            return removed > seen or added < seen
        first = info.get("first-entry")
        first_id = _id(str(first[0])) if first else _id(str(info["last-generated-id"]))
        return removed > 0 and first_id > _id(after)

    @_unavailable
    def snapshot(self) -> Snapshot:
        """Everything a node needs, and the stream id to follow changes from."""
        # First: what changes meanwhile is read again.
        info = self._stream_info()
        last = str(info.get("last-generated-id", "0-0"))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self._k("domains"))
        pipe.hgetall(self._k("certificates"))
        pipe.hgetall(self._k("access_keys"))
        pipe.hget(self._k("meta"), "version")
        domains, certificates, keys, version = pipe.execute()
        return Snapshot(
            last_id=last,
            seen=int(info.get("entries-added", 0)),
            version=int(version or 0),
            domains=[_domain(domains[n]) for n in sorted(domains)],
            certificates=[self._certificate(certificates[d]) for d in sorted(certificates)],
            keys=_keys(keys),
            tasks=self._node_tasks(),
        )

    @_unavailable
    def read_changes(
        self,
        after: str,
        block_ms: int = 0,
        count: int = 1000,
        *,
        seen: int | None = None,
        check: bool = True,
    ) -> Delta | None:
        """What changed after stream id `after` (waiting up to `block_ms` for a change);
        None when the stream no longer holds all of it (trimmed past `after`, or Redis
        lost its data): the node must read a snapshot instead. `seen`: the Delta.seen
        the reader last got (see `_missed`). Without `check`, an empty read is not
        checked (a reader that is caught up and stayed connected)."""
        reply: Any = self.redis.xread(
            {self._k(CHANGES): after}, count=count, block=block_ms if block_ms > 0 else None
        )
        entries: list[tuple[str, dict[str, str]]] = reply[0][1] if reply else []
        info: dict[str, Any] = {}
        if entries or check:
            info = self._stream_info()
            if self._missed(info, after, seen):
                return None
        if not entries:
            return Delta(after, seen, None, {}, {}, None, [])
        # Caught up (this read ends where the stream does): how many entries it has had.
        caught_up = info and str(info["last-generated-id"]) == entries[-1][0]
        now_seen = int(info.get("entries-added", 0)) if caught_up else None
        names = sorted({e["name"] for _, e in entries if e["kind"] == "domain"})
        owners = sorted({e["name"] for _, e in entries if e["kind"] == "certificate"})
        keyed = any(e["kind"] == "keys" for _, e in entries)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(self._k("meta"), "version")
        if names:
            pipe.hmget(self._k("domains"), names)
        if owners:
            pipe.hmget(self._k("certificates"), owners)
        if keyed:
            pipe.hgetall(self._k("access_keys"))
        replies = iter(pipe.execute())
        version = next(replies)
        domains = next(replies) if names else []
        certificates = next(replies) if owners else []
        keys = next(replies) if keyed else {}
        tasks = [
            _task_of(item, "Refreshing", "")
            for _, e in entries
            if e["kind"] == "task"
            for item in json.loads(e["tasks"])
        ]
        return Delta(
            last_id=entries[-1][0],
            seen=now_seen,
            version=int(version or 0),
            domains={
                n: None if t is None else _domain(t) for n, t in zip(names, domains, strict=True)
            },
            certificates={
                d: None if t is None else self._certificate(t)
                for d, t in zip(owners, certificates, strict=True)
            },
            keys=_keys(keys) if keyed else None,
            tasks=tasks,
        )

    # --- access keys --------------------------------------------------------------------

    @_unavailable
    def access_keys(self) -> list[AccessKey]:
        """The fleet's access keys, by id."""
        return _keys(cast(dict[str, str], self.redis.hgetall(self._k("access_keys"))))

    @_unavailable
    def put_access_key(self, key: AccessKey) -> None:
        """Add a key pair, or replace the one with its id (a new secret: rotation)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._k("access_keys"), key.id, _key_json(key))
        self._announce(pipe, "keys")
        pipe.execute()

    @_unavailable
    def delete_access_key(self, key_id: str) -> bool:
        """Remove a key pair; whether there was one."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self._k("access_keys"), key_id)
        self._announce(pipe, "keys")
        return bool(pipe.execute()[0])

    @_unavailable
    def import_file_keys(self, keys: Sequence[AccessKey]) -> list[str]:
        """A config file's `[[access_keys]]` where the file changed them (as with domains:
        a pair removed or rotated in Redis is not brought back by an unchanged file);
        the ids written."""

        def body(pipe: Pipeline) -> list[str]:
            known = cast(dict[str, str], pipe.hgetall(self._k("file_keys")))
            writes = [
                (key.id, _key_json(key))
                for key in keys
                if known.get(key.id) != hashlib.sha256(_key_json(key).encode()).hexdigest()
            ]
            pipe.multi()
            for key_id, text in writes:
                pipe.hset(self._k("access_keys"), key_id, text)
                pipe.hset(self._k("file_keys"), key_id, hashlib.sha256(text.encode()).hexdigest())
            if writes:
                self._announce(pipe, "keys")
            return [key_id for key_id, _ in writes]

        return self._transaction(body, self._k("file_keys"))

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
            self._announce(pipe, "certificate", certificate.domain)

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
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(self._k("certificates"), domain)
        pipe.hincrby(self._k("meta"), "version", 1)
        self._announce(pipe, "certificate", domain)
        return bool(pipe.execute()[0])
