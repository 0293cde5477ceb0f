"""The cache index: one SQLite row per stored object, shared by every worker."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from vodedge.edge.extents import Extent, merged, missing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    file TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT,
    last_modified TEXT,
    content_type TEXT,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    origin_age INTEGER NOT NULL DEFAULT 0,
    ranges INTEGER NOT NULL DEFAULT 0,
    last_access REAL NOT NULL,
    content_encoding TEXT,
    disk INTEGER,
    present INTEGER
);
CREATE INDEX IF NOT EXISTS objects_lru ON objects (last_access);
CREATE TABLE IF NOT EXISTS extents (
    file TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    PRIMARY KEY (file, start)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS objects_extents AFTER DELETE ON objects BEGIN
    DELETE FROM extents WHERE file = old.file;
END;
CREATE TABLE IF NOT EXISTS origin_notes (
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (origin, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purges (
    key TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS expiries (
    key TEXT NOT NULL,
    prefix INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS expiries_at ON expiries (at);
"""
# Purges and expiries are remembered this long: longer than any fill can run.
PURGE_MEMORY = 86400.0


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the cache knows of one object version, from the origin's response."""

    key: str
    size: int
    etag: str | None
    last_modified: str | None
    content_type: str | None
    stored_at: float
    expires_at: float
    origin_age: int = 0
    ranges: bool = False
    # An origin that compresses despite our `Accept-Encoding: identity`: the stored bytes
    # are encoded, and clients must be told.
    content_encoding: str | None = None

    def fresh(self, now: float) -> bool:
        """True while the object may be served without asking the origin."""
        return now < self.expires_at

    def age(self, now: float) -> int:
        """The `Age` to send: time in our cache plus the origin's own age."""
        return max(int(now - self.stored_at), 0) + self.origin_age


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored object: its metadata, the file holding it, and how many of its bytes the
    file holds (a sparse object holds only some extents; -1: all of them)."""

    meta: ObjectMeta
    file: Path
    present: int = -1

    @property
    def partial(self) -> bool:
        """True when some of the object's bytes are not on disk."""
        return 0 <= self.present < self.meta.size


class CacheIndex:
    """Rows of stored objects; every statement is its own short transaction."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA case_sensitive_like=ON")  # prefix purges match paths exactly
        # A row replaced (INSERT OR REPLACE) takes its extents with it, as a deleted one.
        self._db.execute("PRAGMA recursive_triggers=ON")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(objects)")}
        if "content_encoding" not in columns:  # an index written by an earlier version
            self._db.execute("ALTER TABLE objects ADD COLUMN content_encoding TEXT")
        if "disk" not in columns:
            self._db.execute("ALTER TABLE objects ADD COLUMN disk INTEGER")
        if "present" not in columns:  # rows of whole objects only: present is NULL
            self._db.execute("ALTER TABLE objects ADD COLUMN present INTEGER")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def get(self, key: str) -> Entry | None:
        """The stored object for `key`, or None."""
        row = self._db.execute(
            "SELECT file, size, etag, last_modified, content_type, stored_at, expires_at,"
            " origin_age, ranges, content_encoding, present FROM objects WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        file, size, etag, modified, ctype, stored, expires, age, ranges, encoding, present = row
        meta = ObjectMeta(
            key, size, etag, modified, ctype, stored, expires, age, bool(ranges), encoding
        )
        return Entry(meta, Path(file), -1 if present is None else present)

    def put(
        self, entry: Entry, disk: int | None = None, filled_since: float | None = None
    ) -> Path | None:
        """Store `entry` (its file taking `disk` bytes of blocks), returning the file of
        the version it replaced, if any. A whole object is one extent; a sparse one
        (`entry.present` 0) starts with none. An object whose fill started at
        `filled_since` is stored stale if an expiry covering it came since."""
        meta = entry.meta
        whole = entry.present < 0 or entry.present >= meta.size
        with self._transaction():
            # In the same transaction as the row: an expiry is either seen here or hits
            # the row.
            if filled_since is not None and self._covered("expiries", meta.key, filled_since):
                meta = replace(meta, expires_at=0)
            row = self._db.execute("SELECT file FROM objects WHERE key = ?", (meta.key,)).fetchone()
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    meta.key, str(entry.file), meta.size, meta.etag, meta.last_modified,
                    meta.content_type, meta.stored_at, meta.expires_at, meta.origin_age,
                    int(meta.ranges), time.time(), meta.content_encoding, disk,
                    meta.size if whole else 0,
                ),
            )  # fmt: skip
            if whole and meta.size > 0:
                self._db.execute(
                    "INSERT OR REPLACE INTO extents VALUES (?, 0, ?)", (str(entry.file), meta.size)
                )
        return Path(row[0]) if row and row[0] != str(entry.file) else None

    def extents(self, file: Path) -> list[tuple[int, int]]:
        """The byte ranges of `file` that are on disk, in order."""
        rows = self._db.execute(
            "SELECT start, end FROM extents WHERE file = ? ORDER BY start", (str(file),)
        )
        return [(int(start), int(end)) for start, end in rows]

    def add_extents(self, entry: Entry, written: list[tuple[int, int]], disk: int) -> int | None:
        """Record these byte ranges of the entry's file as written (its blocks now `disk`
        bytes); how many bytes it holds now, None if the row no longer names this file
        (replaced, purged, evicted: nothing is recorded)."""
        file = str(entry.file)
        with self._transaction():
            row = self._db.execute(
                "SELECT 1 FROM objects WHERE key = ? AND file = ?", (entry.meta.key, file)
            ).fetchone()
            if row is None:
                return None
            (present,) = self._db.execute(
                "SELECT coalesce(present, 0) FROM objects WHERE key = ? AND file = ?",
                (entry.meta.key, file),
            ).fetchone()
            present += self._merge_extents(file, sorted(written))
            self._db.execute(
                "UPDATE objects SET present = ?, disk = ? WHERE key = ? AND file = ?",
                (present, disk, entry.meta.key, file),
            )
        return int(present)

    def _merge_extents(self, file: str, written: list[tuple[int, int]]) -> int:
        """Add sorted ranges to the file's (disjoint) extents, joining those they touch
        (read by the primary key: the one before the first, those starting within);
        how many bytes were new."""
        low, high = written[0][0], max(end for _, end in written)
        before = self._db.execute(
            "SELECT start, end FROM extents WHERE file = ? AND start <= ? ORDER BY start DESC"
            " LIMIT 1",
            (file, low),
        ).fetchall()
        within = self._db.execute(
            "SELECT start, end FROM extents WHERE file = ? AND start > ? AND start <= ?",
            (file, low, high),
        ).fetchall()
        old = {(int(a), int(b)) for a, b in [*before, *within] if b >= low}
        new = set(merged([*old, *written]))
        self._db.executemany(
            "DELETE FROM extents WHERE file = ? AND start = ?", [(file, a) for a, _ in old - new]
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO extents VALUES (?, ?, ?)",
            [(file, a, b) for a, b in new - old],
        )
        return sum(b - a for a, b in new) - sum(b - a for a, b in old)

    def drop_extents(
        self, entry: Entry, choose: Callable[[list[Extent]], list[Extent]]
    ) -> list[Extent]:
        """Forget the ranges `choose` picks from the extents of a sparse object (still
        partial, its row still naming its file: else none), made durable before this
        returns (the caller then frees their blocks); the ranges forgotten."""
        file = str(entry.file)
        self._db.execute("PRAGMA synchronous=FULL")  # a power cut must not undo it either
        try:
            with self._transaction():
                row = self._db.execute(
                    "SELECT present, size FROM objects WHERE key = ? AND file = ?",
                    (entry.meta.key, file),
                ).fetchone()
                if row is None or row[0] is None or row[0] >= row[1]:
                    return []  # gone, replaced, or complete now (read without locks)
                extents = self.extents(entry.file)
                dropped = merged(choose(extents))
                if not dropped:
                    return []
                kept = [gap for start, end in extents for gap in missing(dropped, start, end)]
                old, new = set(extents), set(kept)
                self._db.executemany(
                    "DELETE FROM extents WHERE file = ? AND start = ?",
                    [(file, a) for a, _ in old - new],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO extents VALUES (?, ?, ?)",
                    [(file, a, b) for a, b in new - old],
                )
                self._db.execute(
                    "UPDATE objects SET present = ? WHERE key = ? AND file = ?",
                    (sum(b - a for a, b in kept), entry.meta.key, file),
                )
        finally:
            self._db.execute("PRAGMA synchronous=NORMAL")
        return dropped

    def present(self, entry: Entry) -> int | None:
        """How many bytes the entry's file holds, None if the row no longer names it."""
        row = self._db.execute(
            "SELECT coalesce(present, size) FROM objects WHERE key = ? AND file = ?",
            (entry.meta.key, str(entry.file)),
        ).fetchone()
        return None if row is None else int(row[0])

    def set_disk(self, entry: Entry, disk: int) -> None:
        """Record the blocks the entry's file holds (reserved before a ranged fetch)."""
        self._db.execute(
            "UPDATE objects SET disk = ? WHERE key = ? AND file = ?",
            (disk, entry.meta.key, str(entry.file)),
        )

    def refresh(self, key: str, stored_at: float, expires_at: float, origin_age: int) -> None:
        """Record a successful revalidation."""
        self._db.execute(
            "UPDATE objects SET stored_at = ?, expires_at = ?, origin_age = ? WHERE key = ?",
            (stored_at, expires_at, origin_age, key),
        )

    def touch(self, accesses: dict[str, float]) -> None:
        """Record recent accesses (batched, for LRU)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE objects SET last_access = max(last_access, ?) WHERE key = ?",
                [(when, key) for key, when in accesses.items()],
            )

    def delete(self, key: str) -> Path | None:
        """Forget `key`, returning its file."""
        with self._transaction():
            row = self._db.execute("SELECT file FROM objects WHERE key = ?", (key,)).fetchone()
            self._db.execute("DELETE FROM objects WHERE key = ?", (key,))
        return Path(row[0]) if row else None

    def delete_entry(self, entry: Entry) -> None:
        """Forget `entry` only if its row still names its file (not a newer version)."""
        self._db.execute(
            "DELETE FROM objects WHERE key = ? AND file = ?", (entry.meta.key, str(entry.file))
        )

    def delete_prefix(self, prefix: str) -> list[tuple[str, Path]]:
        """Forget every key starting with `prefix`, returning the keys and their files."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._transaction():
            rows = self._db.execute(
                "SELECT key, file FROM objects WHERE key LIKE ? ESCAPE '\\'", (pattern,)
            ).fetchall()
            self._db.execute("DELETE FROM objects WHERE key LIKE ? ESCAPE '\\'", (pattern,))
        return [(key, Path(file)) for key, file in rows]

    def expire(self, keys: list[str], prefix: str | None = None) -> int:
        """Make these objects stale at once; how many were stored. The keys (and
        `prefix`, covering keys not stored yet) are remembered, so that fills which
        started before do not publish fresh."""
        now = time.time()
        with self._transaction():
            self._db.execute("DELETE FROM expiries WHERE at < ?", (now - PURGE_MEMORY,))
            # Keys under the prefix are covered by its one row.
            rows = [(key, 0, now) for key in keys if not (prefix and key.startswith(prefix))]
            if prefix:
                rows.append((prefix, 1, now))
            self._db.executemany("INSERT INTO expiries VALUES (?, ?, ?)", rows)
            return sum(
                self._db.execute("UPDATE objects SET expires_at = 0 WHERE key = ?", (key,)).rowcount
                for key in keys
            )

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """Every key starting with `prefix`."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db.execute("SELECT key FROM objects WHERE key LIKE ? ESCAPE '\\'", (pattern,))
        # LIKE ignores ASCII case: the prefix itself decides.
        return [row[0] for row in rows if row[0].startswith(prefix)]

    def record_purge(self, key: str, prefix: bool) -> None:
        """Remember a purge, so that fills which started before it do not publish."""
        now = time.time()
        with self._transaction():
            self._db.execute("DELETE FROM purges WHERE at < ?", (now - PURGE_MEMORY,))
            self._db.execute("INSERT INTO purges VALUES (?, ?, ?)", (key, int(prefix), now))

    def purged_since(self, key: str, since: float) -> bool:
        """Whether a purge covering `key` happened after `since`."""
        return self._covered("purges", key, since)

    def _covered(self, table: str, key: str, since: float) -> bool:
        row = self._db.execute(
            f"SELECT 1 FROM {table} WHERE at >= ? AND (key = ? OR (prefix = 1 AND"
            " substr(?, 1, length(key)) = key)) LIMIT 1",
            (since, key, key),
        ).fetchone()
        return row is not None

    def last_purge(self, key: str) -> float | None:
        """When the latest remembered purge covering `key` happened, if any."""
        row = self._db.execute(
            "SELECT max(at) FROM purges WHERE key = ? OR (prefix = 1 AND"
            " substr(?, 1, length(key)) = key)",
            (key, key),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def note_origin(self, origin: str, kind: str, until: float) -> None:
        """Remember, for every worker, something learned about an origin until `until`."""
        self._db.execute(
            "INSERT OR REPLACE INTO origin_notes VALUES (?, ?, ?)", (origin, kind, until)
        )

    def origin_notes(self, now: float) -> dict[tuple[str, str], float]:
        """What is remembered of origins now: (origin, kind) -> until when."""
        rows = self._db.execute(
            "SELECT origin, kind, until FROM origin_notes WHERE until > ?", (now,)
        )
        return {(origin, kind): float(until) for origin, kind, until in rows}

    def total_size(self) -> int:
        """Disk space of all stored objects: their allocated blocks (the length for rows
        written before blocks were counted)."""
        row = self._db.execute("SELECT coalesce(sum(coalesce(disk, size)), 0) FROM objects")
        return int(row.fetchone()[0])

    def count(self) -> int:
        """How many objects are stored."""
        return int(self._db.execute("SELECT count(*) FROM objects").fetchone()[0])

    def oldest(self, limit: int) -> list[tuple[str, int]]:
        """The least recently used keys and the disk space of each."""
        rows = self._db.execute(
            "SELECT key, coalesce(disk, size) FROM objects ORDER BY last_access LIMIT ?", (limit,)
        ).fetchall()
        return [(key, size) for key, size in rows]

    def files(self) -> set[str]:
        """Every file the index refers to."""
        return {row[0] for row in self._db.execute("SELECT file FROM objects")}

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if kind else "COMMIT")


def iter_rows(index: CacheIndex) -> Iterator[str]:
    """Every key in the index (for tests and tools)."""
    yield from (row[0] for row in index._db.execute("SELECT key FROM objects"))
