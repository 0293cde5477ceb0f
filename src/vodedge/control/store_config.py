"""The node configuration built from the store: its domains over the file's settings,
kept on disk as a local copy for when a fleet's store is out of reach."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from vodedge.config import NodeConfig

from .certificates import stored_certificates
from .domains import edge_domain_name, node_with, record_of
from .local_copy import load_copy, save_copy
from .store import ControlStore, StoreUnavailable


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
    state_dir: Path | None = None,
) -> Callable[[], NodeConfig]:
    """A loader of the node: `load_base`'s settings (and catch-all), the store's domains.

    With `from_file`, the base's own domains are first imported into the store where
    the file changed them (see `import_file_domains`): a file edit and SIGHUP still
    take effect; otherwise what the API did stands. Certificates set through the API
    are written as files in `certificates_dir` for the edge to load. With `state_dir`,
    what the store said is kept there, and used when the store is out of reach.
    """

    def load() -> NodeConfig:
        base = load_base()
        try:
            if from_file:
                store.import_file_domains([record_of(d) for d in base.domains.values()])
            records, stored = store.domains(), store.certificates()
            if state_dir is not None:
                save_copy(state_dir, records, stored)
        except StoreUnavailable as exc:
            # A fleet's Redis out of reach: serve what it last said, if we ever heard it.
            copy = None if state_dir is None else load_copy(state_dir)
            if copy is None:
                raise ValueError(f"{exc}, and no local copy of the configuration") from None
            sys.stderr.write(f"vodedge: {exc}: serving the local copy of the configuration\n")
            records, stored = copy
        certificates = None
        if certificates_dir is not None:
            certificates = stored_certificates(stored, certificates_dir, edge_domain_name)
        return node_with(base, records, certificates)

    return load
