"""Replay protection: each signature nonce is accepted once while its timestamp is valid.

The nonces live in SQLite, so every process that opens the same file (and every
restart) refuses a nonce another has accepted.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

PURGE_SECONDS = 60.0


class NonceStore:
    """Nonces seen, per access key, each kept until its call's timestamp expires."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL,"
            " expires REAL NOT NULL, PRIMARY KEY (key_id, nonce)) WITHOUT ROWID"
        )
        self._next_purge = 0.0

    def use(self, key_id: str, nonce: str, expires: float, now: float) -> bool:
        """Record `nonce` until `expires`; False if it is recorded already and not expired."""
        if now >= self._next_purge:
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            self._next_purge = now + PURGE_SECONDS
        cursor = self._db.execute(
            "INSERT INTO nonces (key_id, nonce, expires) VALUES (?, ?, ?)"
            " ON CONFLICT (key_id, nonce) DO UPDATE SET expires = excluded.expires"
            " WHERE nonces.expires < ?",
            (key_id, nonce, expires, now),
        )
        return cursor.rowcount == 1

    def close(self) -> None:
        """Close the database."""
        self._db.close()
