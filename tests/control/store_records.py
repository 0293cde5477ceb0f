"""Domain records for the store tests (SQLite and Redis)."""

from __future__ import annotations

from dataclasses import replace

from vodedge.control.store import DomainRecord, Source

SOURCE = Source("ipaddr", "127.0.0.1", 8000)


def record(name: str = "video.example.com", **changes: object) -> DomainRecord:
    """A video domain with one origin, changed as given."""
    base = DomainRecord(name=name, cdn_type="video", sources=(SOURCE,))
    return replace(base, **changes)  # type: ignore[arg-type]
