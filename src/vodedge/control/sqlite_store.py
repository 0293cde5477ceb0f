"""The embedded store: one SQLite file (WAL, synchronous=FULL) next to the cache.

Every write is one `BEGIN IMMEDIATE` transaction (writers queue on SQLite's lock,
across processes) and is on disk before it returns: an acknowledged change
survives `kill -9` of the whole node, and a power cut. Each thread gets its own
connection, so actions may run in a thread pool.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import cast

from vodedge.config import Function, FunctionArg

from .store import (
    Certificate,
    DomainExists,
    DomainRecord,
    Source,
    StaleRecord,
    TaskKind,
    TaskQuery,
    TaskRecord,
    TaskStatus,
)

STORE_FILE = "control.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY,
    domain_id INTEGER NOT NULL,
    cdn_type TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource_group_id TEXT NOT NULL,
    description TEXT NOT NULL,
    fallback TEXT NOT NULL,
    status TEXT NOT NULL,
    sources TEXT NOT NULL,
    functions TEXT NOT NULL,
    created REAL NOT NULL,
    modified REAL NOT NULL,
    revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    domain TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    key_pem TEXT NOT NULL,
    ssl_protocol TEXT NOT NULL,
    modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    domain TEXT NOT NULL,
    force INTEGER NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    claimed_by INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_id ON tasks (task_id);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, kind);
CREATE TABLE IF NOT EXISTS file_domains (name TEXT PRIMARY KEY, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_acks (
    task_id INTEGER NOT NULL,
    worker INTEGER NOT NULL,
    PRIMARY KEY (task_id, worker)
);
"""
_DOMAIN_COLUMNS = (
    "name, domain_id, cdn_type, scope, resource_group_id, description, fallback, status, sources,"
    " functions, created, modified, revision"
)
_TASK_COLUMNS = "row, task_id, kind, path, domain, force, status, created, description"


def _domain_row(record: DomainRecord) -> tuple[object, ...]:
    """The values of `_DOMAIN_COLUMNS` for `record`, in order."""
    return (
        record.name,
        record.domain_id,
        record.cdn_type,
        record.scope,
        record.resource_group_id,
        record.description,
        record.fallback,
        record.status,
        _sources_json(record.sources),
        _functions_json(record.functions),
        record.created,
        record.modified,
        record.revision,
    )


# Task ids look like the CDN's (large numbers), and grow from here.
_FIRST_TASK_ID = 10_000_000_000
_FIRST_CONFIG_ID = 100_000_000_000
# DescribeRefreshTasks answers for the last three days, as the CDN's does.
TASK_MEMORY = 3 * 86400.0


def _sources_json(sources: Sequence[Source]) -> str:
    return json.dumps(
        [
            {
                "type": s.type,
                "content": s.content,
                "port": s.port,
                "priority": s.priority,
                "weight": s.weight,
                "base_path": s.base_path,
                "host_header": s.host_header,
            }
            for s in sources
        ]
    )


def _sources(text: str) -> tuple[Source, ...]:
    return tuple(
        Source(
            type=item["type"],
            content=item["content"],
            port=item["port"],
            priority=item["priority"],
            weight=item["weight"],
            base_path=item.get("base_path", ""),
            host_header=item.get("host_header"),
        )
        for item in json.loads(text)
    )


def _functions_json(functions: Sequence[Function]) -> str:
    return json.dumps([f.to_api() for f in functions])


def _functions(text: str) -> tuple[Function, ...]:
    return tuple(
        Function(
            item["functionName"],
            tuple(FunctionArg(a["argName"], a["argValue"]) for a in item["functionArgs"]),
            item.get("configId"),
        )
        for item in json.loads(text)
    )


def record_digest(record: DomainRecord) -> str:
    """What a config file said of a domain, as a short fingerprint."""
    text = json.dumps(
        [
            record.name,
            record.cdn_type,
            record.status,
            record.fallback,
            _sources_json(record.sources),
            _functions_json(record.functions),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _domain(row: sqlite3.Row) -> DomainRecord:
    return DomainRecord(
        name=row["name"],
        domain_id=row["domain_id"],
        cdn_type=row["cdn_type"],
        scope=row["scope"],
        resource_group_id=row["resource_group_id"],
        description=row["description"],
        fallback=row["fallback"],
        status="offline" if row["status"] == "offline" else "online",
        sources=_sources(row["sources"]),
        functions=_functions(row["functions"]),
        created=row["created"],
        modified=row["modified"],
        revision=row["revision"],
    )


def _task(row: sqlite3.Row, workers: int, acks: int) -> TaskRecord:
    status = cast(TaskStatus, row["status"])
    if status != "Refreshing":
        process = "100%"
    elif row["kind"] == "preload" or workers <= 0:
        process = "0%"
    else:
        process = f"{min(99, acks * 100 // workers)}%"
    return TaskRecord(
        row=row["row"],
        task_id=row["task_id"],
        kind=cast(TaskKind, row["kind"]),
        path=row["path"],
        domain=row["domain"],
        force=bool(row["force"]),
        status=status,
        created=row["created"],
        process=process,
        description=row["description"],
    )


class SqliteStore:
    """The ControlStore in one SQLite file under `state_dir` (created 0700, file 0600)."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = state_dir / STORE_FILE
        # Private keys live here: the file is the owner's only (SQLite gives its WAL
        # and shared-memory files the same mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._lock = threading.Lock()
        self._db().executescript(_SCHEMA)

    # --- connections and transactions ------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = cast(sqlite3.Connection | None, getattr(self._local, "db", None))
        if db is None or self._local.pid != os.getpid():
            # A forked child never uses its parent's connection (SQLite forbids it).
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA journal_mode = WAL")
            # FULL: the WAL is fsynced at every commit, so a commit that returned is
            # durable (NORMAL could lose the last commits on a power cut).
            db.execute("PRAGMA synchronous = FULL")
            self._local.db = db
            self._local.pid = os.getpid()
            with self._lock:
                self._connections.append((os.getpid(), db))
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for pid, db in self._connections:
                if pid == os.getpid():
                    db.close()
            self._connections.clear()
        self._local = threading.local()

    @staticmethod
    def _bump(db: sqlite3.Connection, key: str, first: int = 1) -> int:
        db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = value + 1",
            (key, first),
        )
        return int(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str, default: int = 0) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else int(row[0])

    # --- domains ------------------------------------------------------------------------

    def version(self) -> int:
        """A number that grows with every change of domains, certificates or tasks."""
        return self._meta(self._db(), "version")

    def domain(self, name: str) -> DomainRecord | None:
        """The domain stored under `name`."""
        row = (
            self._db()
            .execute(f"SELECT {_DOMAIN_COLUMNS} FROM domains WHERE name = ?", (name,))
            .fetchone()
        )
        return None if row is None else _domain(row)

    def domains(self) -> list[DomainRecord]:
        """Every domain, by name."""
        rows = self._db().execute(f"SELECT {_DOMAIN_COLUMNS} FROM domains ORDER BY name")
        return [_domain(row) for row in rows]

    def _with_config_ids(
        self, db: sqlite3.Connection, functions: Sequence[Function]
    ) -> tuple[Function, ...]:
        return tuple(
            f
            if f.config_id is not None
            else replace(f, config_id=self._bump(db, "config_id", _FIRST_CONFIG_ID))
            for f in functions
        )

    def _insert(self, db: sqlite3.Connection, record: DomainRecord) -> DomainRecord:
        now = time.time()
        record = replace(
            record,
            domain_id=self._bump(db, "domain_id", 1),
            functions=self._with_config_ids(db, record.functions),
            created=record.created or now,
            modified=now,
            revision=1,
        )
        try:
            db.execute(
                f"INSERT INTO domains ({_DOMAIN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                _domain_row(record),
            )
        except sqlite3.IntegrityError:
            raise DomainExists(record.name) from None
        return record

    def add_domain(self, record: DomainRecord) -> DomainRecord:
        """Store a new domain (DomainExists if the name is taken); functions get ConfigIds."""
        with self._write() as db:
            stored = self._insert(db, record)
            self._bump(db, "version")
        return stored

    def update_domains(self, records: Sequence[DomainRecord]) -> list[DomainRecord]:
        """Write all of `records` or none: StaleRecord if one changed since it was read."""
        now = time.time()
        stored = []
        with self._write() as db:
            for record in records:
                new = replace(
                    record,
                    functions=self._with_config_ids(db, record.functions),
                    modified=now,
                    revision=record.revision + 1,
                )
                changed = db.execute(
                    "UPDATE domains SET cdn_type = ?, scope = ?, resource_group_id = ?,"
                    " description = ?, fallback = ?, status = ?, sources = ?, functions = ?,"
                    " modified = ?, revision = ? WHERE name = ? AND revision = ?",
                    (
                        new.cdn_type,
                        new.scope,
                        new.resource_group_id,
                        new.description,
                        new.fallback,
                        new.status,
                        _sources_json(new.sources),
                        _functions_json(new.functions),
                        new.modified,
                        new.revision,
                        record.name,
                        record.revision,
                    ),
                ).rowcount
                if changed != 1:
                    raise StaleRecord(record.name)
                stored.append(new)
            self._bump(db, "version")
        return stored

    def delete_domain(self, name: str) -> bool:
        """Forget a domain and its certificate; whether it existed."""
        with self._write() as db:
            gone = db.execute("DELETE FROM domains WHERE name = ?", (name,)).rowcount
            db.execute("DELETE FROM certificates WHERE domain = ?", (name,))
            if gone:
                self._bump(db, "version")
        return bool(gone)

    def import_file_domains(self, records: Sequence[DomainRecord]) -> list[str]:
        """Make the store agree with a config file's domains where the file changed.

        A domain whose file form differs from the one imported last time (or new to
        the file) replaces the stored one; a domain the file no longer lists, and
        that an earlier import brought, is deleted. Domains the file did not change
        are left as the API made them. Returns the names written or deleted.
        """
        changed = []
        with self._write() as db:
            known = dict(db.execute("SELECT name, digest FROM file_domains").fetchall())
            for record in records:
                digest = record_digest(record)
                if known.pop(record.name, None) == digest:
                    continue
                old = db.execute(
                    "SELECT domain_id, created FROM domains WHERE name = ?", (record.name,)
                ).fetchone()
                db.execute("DELETE FROM domains WHERE name = ?", (record.name,))
                self._insert(db, record if old is None else replace(record, created=old[1]))
                db.execute(
                    "INSERT OR REPLACE INTO file_domains VALUES (?, ?)", (record.name, digest)
                )
                changed.append(record.name)
            for name in known:
                db.execute("DELETE FROM domains WHERE name = ?", (name,))
                db.execute("DELETE FROM certificates WHERE domain = ?", (name,))
                db.execute("DELETE FROM file_domains WHERE name = ?", (name,))
                changed.append(name)
            if changed:
                self._bump(db, "version")
        return changed

    # --- tasks --------------------------------------------------------------------------

    def add_task(self, kind: TaskKind, objects: Sequence[tuple[str, str]], force: bool) -> int:
        """A task over (domain, path) objects; its TaskId."""
        now = time.time()
        with self._write() as db:
            # Tasks are kept as long as the API describes them; older ones go.
            old = now - TASK_MEMORY
            db.execute(
                "DELETE FROM task_acks WHERE task_id IN"
                " (SELECT task_id FROM tasks WHERE created < ? AND status != 'Refreshing')",
                (old,),
            )
            db.execute("DELETE FROM tasks WHERE created < ? AND status != 'Refreshing'", (old,))
            task_id = self._bump(db, "task_id", _FIRST_TASK_ID)
            db.executemany(
                "INSERT INTO tasks (task_id, kind, path, domain, force, status, created)"
                " VALUES (?, ?, ?, ?, ?, 'Refreshing', ?)",
                [(task_id, kind, path, domain, int(force), now) for domain, path in objects],
            )
            self._bump(db, "version")
        return task_id

    def tasks(self, query: TaskQuery) -> tuple[int, list[TaskRecord]]:
        """The total matching `query`, and the page it asks for (newest first)."""
        where, args = ["1 = 1"], list[object]()
        for column, value in (
            ("task_id", query.task_id),
            ("path", query.path),
            ("kind", query.kind),
            ("domain", query.domain),
            ("status", query.status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.start is not None:
            where.append("created >= ?")
            args.append(query.start)
        if query.end is not None:
            where.append("created < ?")
            args.append(query.end)
        condition = " AND ".join(where)
        db = self._db()
        db.execute("BEGIN")  # one snapshot for the count, the page and the acks
        try:
            total = int(
                db.execute(f"SELECT count(*) FROM tasks WHERE {condition}", args).fetchone()[0]
            )
            rows = db.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE {condition}"
                " ORDER BY row DESC LIMIT ? OFFSET ?",
                [*args, query.size, (query.page - 1) * query.size],
            ).fetchall()
            workers = self._meta(db, "workers")
            acks = self._acks(db, {row["task_id"] for row in rows}, workers)
        finally:
            db.execute("COMMIT")
        return total, [_task(row, workers, acks.get(row["task_id"], 0)) for row in rows]

    @staticmethod
    def _acks(db: sqlite3.Connection, task_ids: set[int], workers: int) -> dict[int, int]:
        if not task_ids:
            return {}
        marks = ",".join("?" * len(task_ids))
        rows = db.execute(
            f"SELECT task_id, count(*) FROM task_acks WHERE worker < ? AND task_id IN ({marks})"
            " GROUP BY task_id",
            [workers, *task_ids],
        )
        return {int(task_id): int(count) for task_id, count in rows}

    def task_counts_since(self, since: float) -> Mapping[TaskKind, int]:
        """How many objects of each kind were submitted since `since` (for quotas)."""
        rows = self._db().execute(
            "SELECT kind, count(*) FROM tasks WHERE created >= ? GROUP BY kind", (since,)
        )
        return {cast(TaskKind, kind): int(count) for kind, count in rows}

    def set_workers(self, count: int) -> None:
        """How many workers must apply a refresh before it is Complete."""
        with self._write() as db:
            db.execute(
                "INSERT INTO meta VALUES ('workers', ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                (count, count),
            )
            self._complete(db, count)

    def pending_refreshes(self, worker: int) -> list[TaskRecord]:
        """Refresh objects still Refreshing that `worker` has not applied."""
        rows = self._db().execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status = 'Refreshing' AND kind != 'preload'"
            " AND task_id NOT IN (SELECT task_id FROM task_acks WHERE worker = ?) ORDER BY row",
            (worker,),
        )
        return [_task(row, 0, 0) for row in rows]

    def ack_refreshes(self, task_ids: Sequence[int], worker: int) -> None:
        """`worker` applied these tasks; those every worker applied become Complete."""
        if not task_ids:
            return
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO task_acks VALUES (?, ?)", [(t, worker) for t in task_ids]
            )
            if self._complete(db, self._meta(db, "workers")):
                self._bump(db, "version")

    @staticmethod
    def _complete(db: sqlite3.Connection, workers: int) -> int:
        if workers <= 0:
            return 0
        return db.execute(
            "UPDATE tasks SET status = 'Complete' WHERE status = 'Refreshing' AND kind != 'preload'"
            " AND (SELECT count(*) FROM task_acks a WHERE a.task_id = tasks.task_id"
            " AND a.worker < ?) >= ?",
            (workers, workers),
        ).rowcount

    def claim_preloads(self, worker: int, limit: int) -> list[TaskRecord]:
        """Preload objects no worker has taken yet, now taken by `worker`."""
        with self._write() as db:
            rows = db.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE kind = 'preload'"
                " AND status = 'Refreshing' AND claimed_by IS NULL ORDER BY row LIMIT ?",
                (limit,),
            ).fetchall()
            db.executemany(
                "UPDATE tasks SET claimed_by = ? WHERE row = ?", [(worker, r["row"]) for r in rows]
            )
        return [_task(row, 0, 0) for row in rows]

    def finish_preload(self, row: int, ok: bool, description: str) -> None:
        """A taken preload object is Complete (ok) or Failed (with why)."""
        with self._write() as db:
            db.execute(
                "UPDATE tasks SET status = ?, description = ? WHERE row = ?",
                ("Complete" if ok else "Failed", description, row),
            )
            self._bump(db, "version")

    def release_preloads(self, worker: int) -> None:
        """Hand back what `worker` took and did not finish (it is starting afresh)."""
        with self._write() as db:
            db.execute(
                "UPDATE tasks SET claimed_by = NULL WHERE claimed_by = ? AND status = 'Refreshing'",
                (worker,),
            )

    # --- certificates -------------------------------------------------------------------

    def put_certificate(self, certificate: Certificate) -> None:
        """Set a domain's certificate (the domain must exist)."""
        with self._write() as db:
            if (
                db.execute("SELECT 1 FROM domains WHERE name = ?", (certificate.domain,)).fetchone()
                is None
            ):
                raise KeyError(certificate.domain)
            db.execute(
                "INSERT OR REPLACE INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
                (
                    certificate.domain,
                    certificate.name,
                    certificate.cert_pem,
                    certificate.key_pem,
                    certificate.ssl_protocol,
                    certificate.modified or time.time(),
                ),
            )
            self._bump(db, "version")

    def certificate(self, domain: str) -> Certificate | None:
        """A domain's certificate."""
        row = (
            self._db().execute("SELECT * FROM certificates WHERE domain = ?", (domain,)).fetchone()
        )
        return None if row is None else self._certificate(row)

    def certificates(self) -> list[Certificate]:
        """Every stored certificate."""
        rows = self._db().execute("SELECT * FROM certificates ORDER BY domain")
        return [self._certificate(row) for row in rows]

    @staticmethod
    def _certificate(row: sqlite3.Row) -> Certificate:
        return Certificate(
            domain=row["domain"],
            name=row["name"],
            cert_pem=row["cert_pem"],
            key_pem=row["key_pem"],
            ssl_protocol="off" if row["ssl_protocol"] == "off" else "on",
            modified=row["modified"],
        )

    def delete_certificate(self, domain: str) -> bool:
        """Forget a domain's certificate; whether there was one."""
        with self._write() as db:
            gone = db.execute("DELETE FROM certificates WHERE domain = ?", (domain,)).rowcount
            if gone:
                self._bump(db, "version")
        return bool(gone)
