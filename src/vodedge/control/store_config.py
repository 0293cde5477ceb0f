"""The node configuration built from the store: its domains over the file's settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vodedge.config import NodeConfig

from .certificates import stored_certificates
from .domains import edge_domain_name, node_with, record_of
from .store import ControlStore


def state_dir_for(cache_dir: Path) -> Path:
    """The default state directory: `state` beside the cache directory."""
    return cache_dir.absolute().parent / "state"


def certificates_dir(state_dir: Path) -> Path:
    """Where the API's certificates are written as files: `certs` in the state directory."""
    return state_dir / "certs"


def store_loader(
    load_base: Callable[[], NodeConfig],
    store: ControlStore,
    *,
    from_file: bool,
    certificates_dir: Path | None = None,
    before: Callable[[NodeConfig], None] | None = None,
) -> Callable[[], NodeConfig]:
    """A loader of the node: `load_base`'s settings (and catch-all), the store's domains.

    With `from_file`, the base's own domains are first imported into the store where
    the file changed them (see `import_file_domains`): a file edit and SIGHUP still
    take effect; otherwise what the API did stands. Certificates set through the API
    are written as files in `certificates_dir` for the edge to load. A fleet node
    reads its copy of Redis (`store`), after `before` brought it up to date (and
    imported the file's domains into Redis itself).
    """

    def load() -> NodeConfig:
        base = load_base()
        if before is not None:
            before(base)
        elif from_file:
            store.import_file_domains([record_of(d) for d in base.domains.values()])
        records, stored = store.domains(), store.certificates()
        certificates = None
        if certificates_dir is not None:
            certificates = stored_certificates(stored, certificates_dir, edge_domain_name)
        return node_with(base, records, certificates)

    return load
