"""A fleet node's own copy of the shared store, in SQLite in its state directory.

The node's master keeps it in step with Redis (see `follower`); the node's workers
follow it as a one-node store (their version polling never reaches Redis); the
node's API answers reads from it while Redis is out of reach; and it survives a
restart, so a node started during an outage serves what Redis last said. It
remembers the stream id it applied last, in the same transaction as the change.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from vodedge.config.keys import AccessKey

from .redis_store import Delta, Snapshot, _id
from .sqlite_store import (
    _DOMAIN_COLUMNS,
    TASK_MEMORY,
    SqliteStore,
    _domain_row,
)
from .store import Certificate, DomainRecord, TaskQuery, TaskRecord

REPLICA_DIR = "fleet"
_ALL_ROWS = 2**31 - 1  # (a copy holds the tasks of TASK_MEMORY: tens of thousands at most)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS replica (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
    id TEXT PRIMARY KEY, secret TEXT NOT NULL, read_only INTEGER NOT NULL, rate REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS forwarded (row INTEGER PRIMARY KEY);
"""


def replica_dir(state_dir: Path) -> Path:
    """Where a fleet node keeps its copy: `fleet` in the state directory."""
    return state_dir / REPLICA_DIR


class Replica(SqliteStore):
    """The copy: a SqliteStore whose records are written as Redis has them."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(replica_dir(state_dir))
        self._db().executescript(_SCHEMA)

    def last_id(self) -> str | None:
        """The stream id applied last; None before the first snapshot."""
        return self._value("last_id")

    def seen(self) -> int | None:
        """How many entries the stream had had when the copy last caught up with it
        (None: unknown, it stopped while behind)."""
        value = self._value("seen")
        return None if value is None else int(value)

    def fleet_version(self) -> int:
        """Redis's version when the copy was last brought up to date."""
        return int(self._value("fleet_version") or 0)

    def synced_at(self) -> float:
        """When the copy was last brought up to date (0: never)."""
        return float(self._value("synced_at") or 0)

    def _value(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM replica WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def access_keys(self) -> tuple[AccessKey, ...]:
        """The fleet's access keys as last seen."""
        rows = self._db().execute("SELECT id, secret, read_only, rate FROM access_keys ORDER BY id")
        return tuple(AccessKey(r[0], r[1], bool(r[2]), r[3]) for r in rows)

    # --- bringing it up to date -----------------------------------------------------------

    def replace_all(self, snapshot: Snapshot) -> None:
        """Make the copy what `snapshot` says (a first sync, or one after falling behind)."""
        with self._write() as db:
            db.execute("DELETE FROM domains")
            db.execute("DELETE FROM certificates")
            for record in snapshot.domains:
                self._put_domain(db, record)
            for certificate in snapshot.certificates:
                self._put_certificate(db, certificate)
            self._put_keys(db, snapshot.keys)
            self._put_tasks(db, snapshot.tasks)
            self._synced(db, snapshot.last_id, snapshot.seen, snapshot.version)

    def apply(self, delta: Delta) -> None:
        """Apply what changed, and remember how far the stream was read."""
        with self._write() as db:
            row = db.execute("SELECT value FROM replica WHERE key = 'last_id'").fetchone()
            if row is not None and _id(str(row[0])) >= _id(delta.last_id):
                return  # applied already (by another process of the node)
            for name, record in delta.domains.items():
                if record is None:
                    db.execute("DELETE FROM domains WHERE name = ?", (name,))
                    db.execute("DELETE FROM certificates WHERE domain = ?", (name,))
                else:
                    self._put_domain(db, record)
            for domain, certificate in delta.certificates.items():
                if certificate is None:
                    db.execute("DELETE FROM certificates WHERE domain = ?", (domain,))
                else:
                    self._put_certificate(db, certificate)
            if delta.keys is not None:
                self._put_keys(db, delta.keys)
            self._put_tasks(db, delta.tasks)
            self._synced(db, delta.last_id, delta.seen, delta.version)

    def _synced(
        self, db: sqlite3.Connection, last_id: str, seen: int | None, version: int | None
    ) -> None:
        values = [("last_id", last_id), ("synced_at", str(time.time()))]
        if seen is None:
            db.execute("DELETE FROM replica WHERE key = 'seen'")
        else:
            values.append(("seen", str(seen)))
        if version is not None:
            values.append(("fleet_version", str(version)))
        db.executemany("INSERT OR REPLACE INTO replica VALUES (?, ?)", values)
        self._bump(db, "version")

    @staticmethod
    def _put_domain(db: sqlite3.Connection, record: DomainRecord) -> None:
        db.execute(
            f"INSERT OR REPLACE INTO domains ({_DOMAIN_COLUMNS})"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            _domain_row(record),
        )

    @staticmethod
    def _put_certificate(db: sqlite3.Connection, certificate: Certificate) -> None:
        db.execute(
            "INSERT OR REPLACE INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
            (
                certificate.domain,
                certificate.name,
                certificate.cert_pem,
                certificate.key_pem,
                certificate.ssl_protocol,
                certificate.modified,
            ),
        )

    @staticmethod
    def _put_keys(db: sqlite3.Connection, keys: Iterable[AccessKey]) -> None:
        db.execute("DELETE FROM access_keys")
        db.executemany(
            "INSERT INTO access_keys VALUES (?, ?, ?, ?)",
            [(k.id, k.secret, int(k.read_only), k.rate) for k in keys],
        )

    @staticmethod
    def _put_tasks(db: sqlite3.Connection, tasks: Iterable[TaskRecord]) -> None:
        # Rows are Redis's: one already here (replayed after a snapshot) is kept as it is.
        db.executemany(
            "INSERT OR IGNORE INTO tasks (row, task_id, kind, path, domain, force, status,"
            " created) VALUES (?, ?, ?, ?, ?, ?, 'Refreshing', ?)",
            [(t.row, t.task_id, t.kind, t.path, t.domain, int(t.force), t.created) for t in tasks],
        )
        old = time.time() - TASK_MEMORY
        db.execute(
            "DELETE FROM forwarded WHERE row IN"
            " (SELECT row FROM tasks WHERE created < ? AND status != 'Refreshing')",
            (old,),
        )
        db.execute(
            "DELETE FROM task_acks WHERE task_id IN"
            " (SELECT task_id FROM tasks WHERE created < ? AND status != 'Refreshing')",
            (old,),
        )
        db.execute("DELETE FROM tasks WHERE created < ? AND status != 'Refreshing'", (old,))

    def tasks(self, query: TaskQuery) -> tuple[int, list[TaskRecord]]:
        """Tasks as the fleet's API answers them from the copy (while Redis is out of
        reach): a task is Complete once every node applied it, which only Redis knows,
        so one this node finished is still Refreshing here."""
        if query.status is None:
            total, page = super().tasks(query)
            return total, [_unconfirmed(t) for t in page]
        _, every = super().tasks(replace(query, status=None, page=1, size=_ALL_ROWS))
        matching = [t for t in map(_unconfirmed, every) if t.status == query.status]
        start = (query.page - 1) * query.size
        return len(matching), matching[start : start + query.size]

    # --- what the node's workers did, for Redis ----------------------------------------

    def finished(self) -> tuple[list[int], dict[int, str]]:
        """Tasks this node's workers finished (every object applied or fetched) and
        Redis was not told yet; the preload rows among them that failed, and why."""
        rows = (
            self._db()
            .execute(
                "SELECT row, task_id, status, description FROM tasks t"
                " WHERE row NOT IN (SELECT row FROM forwarded) AND NOT EXISTS"
                " (SELECT 1 FROM tasks o WHERE o.task_id = t.task_id AND o.status = 'Refreshing')"
            )
            .fetchall()
        )
        ids = sorted({int(r["task_id"]) for r in rows})
        failed = {int(r["row"]): str(r["description"]) for r in rows if r["status"] == "Failed"}
        return ids, failed

    def forwarded(self, task_ids: Iterable[int]) -> None:
        """Redis was told these tasks are done here."""
        ids = list(task_ids)
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._write() as db:
            db.execute(
                f"INSERT OR IGNORE INTO forwarded SELECT row FROM tasks WHERE task_id IN ({marks})",
                ids,
            )


def _unconfirmed(task: TaskRecord) -> TaskRecord:
    """`task` as far as this node can tell the fleet's: done here is not done everywhere."""
    if task.status != "Complete":
        return task
    return replace(task, status="Refreshing", process="99%")
