"""A node's own copy of the last configuration its store gave it, on disk: what it
serves from while a fleet's Redis is out of reach, also across a restart."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .redis_store import _domain, _domain_json
from .store import Certificate, DomainRecord

COPY_FILE = "last-config.json"


def copy_path(state_dir: Path) -> Path:
    """Where the copy lives: in the state directory."""
    return state_dir / COPY_FILE


def save_copy(
    state_dir: Path, domains: list[DomainRecord], certificates: list[Certificate]
) -> None:
    """Replace the copy at once (write, fsync, rename); 0600, as it holds private keys."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = copy_path(state_dir)
    text = json.dumps(
        {
            "domains": [json.loads(_domain_json(d)) for d in domains],
            "certificates": [asdict(c) for c in certificates],
        }
    )
    if path.exists() and path.read_text() == text:
        return
    temporary = path.with_name(f".{COPY_FILE}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def load_copy(state_dir: Path) -> tuple[list[DomainRecord], list[Certificate]] | None:
    """The last saved domains and certificates, or None when none was saved."""
    try:
        item = json.loads(copy_path(state_dir).read_text())
    except FileNotFoundError:
        return None
    domains = [_domain(json.dumps(d)) for d in item["domains"]]
    return domains, [Certificate(**c) for c in item["certificates"]]
