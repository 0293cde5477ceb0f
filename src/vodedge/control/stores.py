"""Which store a node uses: the embedded SQLite one, or a fleet's Redis (`--store`)."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from .store import ControlStore, WorkerStore

STORE_SCHEMES = ("redis://", "rediss://", "redis+sentinel://", "unix://")


def check_store_url(url: str) -> str:
    """`url` if it names a store vodedge can use; ValueError (one line) otherwise."""
    if not url.startswith(STORE_SCHEMES):
        raise ValueError(
            f"--store {url!r}: expected a redis://, rediss:// or redis+sentinel:// URL"
        )
    return url


def node_name(state_dir: Path) -> str:
    """How a node is named in a fleet's acknowledgements: made once, kept in the state
    directory, so a restarted node is the same node and replays what it missed."""
    path = state_dir / "node-name"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{socket.gethostname()}-{secrets.token_hex(4)}"
    path.write_text(name + "\n")
    return name


def open_store(state_dir: Path, url: str | None, node: str) -> ControlStore:
    """The store of the node's API: Redis at `url` as `node` (reads falling back to the
    node's copy), or SQLite in `state_dir`."""
    if url:
        from .fleet_store import FleetStore
        from .redis_store import RedisStore
        from .replica import Replica

        return FleetStore(RedisStore(url, node), Replica(state_dir))
    from .sqlite_store import SqliteStore

    return SqliteStore(state_dir)


def worker_store(state_dir: Path, fleet: bool) -> WorkerStore:
    """The store the node's workers follow: its SQLite store, or its copy of Redis."""
    if fleet:
        from .replica import Replica

        return Replica(state_dir)
    from .sqlite_store import SqliteStore

    return SqliteStore(state_dir)
