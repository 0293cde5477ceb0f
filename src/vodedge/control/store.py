"""What the control plane keeps: records, and the store interface the actions use.

The store is a Protocol so that a shared store (Redis, for a fleet) can replace the
embedded SQLite one (`sqlite_store.SqliteStore`) without touching the actions. The
workers of a node follow a `WorkerStore`: always SQLite (a fleet node keeps a copy of
Redis in SQLite, see `replica`).

Writes follow one rule: read a record, compute the new one, write it back with
`update_domains`, which refuses (`StaleRecord`) if any record changed since it was
read. Callers retry; no update is ever lost, whichever process writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from vodedge.config import Function

DomainStatus = Literal["online", "offline"]
TaskKind = Literal["file", "directory", "regex", "preload"]
TaskStatus = Literal["Refreshing", "Complete", "Failed"]
# `vodedge` (a parent node, by IP or name) and `dir` are vodedge's own.
SourceType = Literal["ipaddr", "domain", "oss", "dir", "vodedge"]


class StoreError(Exception):
    """A store operation that cannot be done as asked."""


class DomainExists(StoreError):
    """AddCdnDomain of a name the store already holds."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (a fleet's Redis is down): try again later."""


class StaleRecord(StoreError):
    """A record changed between read and write: read again and retry."""


@dataclass(frozen=True)
class Source:
    """One origin of a domain, as the API's `Sources` describes it.

    `dir` (a local directory) and `base_path`/`host_header` are vodedge's own: they
    let a TOML file's origins live in the store; the API neither sets nor shows them.
    """

    type: SourceType
    content: str
    port: int = 80
    priority: int = 20
    weight: int = 10
    base_path: str = ""
    host_header: str | None = None


@dataclass(frozen=True)
class DomainRecord:
    """An accelerated domain as stored: what the API describes, and its functions."""

    name: str
    cdn_type: str
    sources: tuple[Source, ...]
    status: DomainStatus = "online"
    functions: tuple[Function, ...] = ()
    description: str = ""
    scope: str = "domestic"
    resource_group_id: str = ""
    fallback: str = "error"  # vodedge's own: unsupported media is an error or passed through
    domain_id: int = 0  # assigned by the store
    created: float = 0.0
    modified: float = 0.0
    revision: int = 0  # bumped by every write; what update_domains compares


@dataclass(frozen=True)
class TaskRecord:
    """One object of a refresh or preload task (a call's objects share `task_id`)."""

    row: int
    task_id: int
    kind: TaskKind
    path: str  # as the caller gave it: host/path, with or without a scheme
    domain: str
    force: bool
    status: TaskStatus
    created: float
    process: str = "0%"
    description: str = ""


@dataclass(frozen=True)
class TaskQuery:
    """DescribeRefreshTasks' filters and page."""

    task_id: int | None = None
    path: str | None = None
    kind: TaskKind | None = None
    domain: str | None = None
    status: TaskStatus | None = None
    start: float | None = None
    end: float | None = None
    page: int = 1
    size: int = 20


@dataclass(frozen=True)
class Certificate:
    """A domain's TLS certificate: PEM text, and whether HTTPS is on."""

    domain: str
    name: str
    cert_pem: str
    key_pem: str = field(repr=False)
    ssl_protocol: Literal["on", "off"] = "on"
    modified: float = 0.0


class ControlStore(Protocol):
    """Domains, their functions, certificates, tasks, and a version that every write bumps."""

    def version(self) -> int:
        """A number that grows with every change of domains, certificates or tasks."""
        ...

    def domain(self, name: str) -> DomainRecord | None:
        """The domain stored under `name`."""
        ...

    def domains(self) -> list[DomainRecord]:
        """Every domain, by name."""
        ...

    def add_domain(self, record: DomainRecord) -> DomainRecord:
        """Store a new domain (DomainExists if the name is taken); functions get ConfigIds."""
        ...

    def update_domains(self, records: Sequence[DomainRecord]) -> list[DomainRecord]:
        """Write all of `records` or none: StaleRecord if one changed since it was read.

        Functions without a ConfigId are given one.
        """
        ...

    def delete_domain(self, name: str) -> bool:
        """Forget a domain and its certificate; whether it existed."""
        ...

    def import_file_domains(self, records: Sequence[DomainRecord]) -> list[str]:
        """Make the store agree with a config file's domains where the file changed;
        the names written or deleted."""
        ...

    def add_task(self, kind: TaskKind, objects: Sequence[tuple[str, str]], force: bool) -> int:
        """A task over (domain, path) objects; its TaskId."""
        ...

    def tasks(self, query: TaskQuery) -> tuple[int, list[TaskRecord]]:
        """The total matching `query`, and the page it asks for (newest first)."""
        ...

    def task_counts_since(self, since: float) -> Mapping[TaskKind, int]:
        """How many objects of each kind were submitted since `since` (for quotas)."""
        ...

    def put_certificate(self, certificate: Certificate) -> None:
        """Set a domain's certificate (the domain must exist)."""
        ...

    def certificate(self, domain: str) -> Certificate | None:
        """A domain's certificate."""
        ...

    def certificates(self) -> list[Certificate]:
        """Every stored certificate."""
        ...

    def delete_certificate(self, domain: str) -> bool:
        """Forget a domain's certificate; whether there was one."""
        ...


class WorkerStore(ControlStore, Protocol):
    """A store the workers of one node follow (SQLite: the node's own, or a fleet
    node's copy of Redis): refreshes each worker applies, preloads one worker takes."""

    def set_workers(self, count: int) -> None:
        """How many workers must apply a refresh before it is Complete."""
        ...

    def pending_refreshes(self, worker: int) -> list[TaskRecord]:
        """Refresh objects still Refreshing that `worker` has not applied."""
        ...

    def ack_refreshes(self, task_ids: Sequence[int], worker: int) -> None:
        """`worker` applied these tasks; those every worker applied become Complete."""
        ...

    def claim_preloads(self, worker: int, limit: int) -> list[TaskRecord]:
        """Preload objects no worker has taken yet, now taken by `worker`."""
        ...

    def finish_preload(self, row: int, ok: bool, description: str) -> None:
        """A taken preload object is Complete (ok) or Failed (with why)."""
        ...

    def release_preloads(self, worker: int) -> None:
        """Hand back what `worker` took and did not finish (it is starting afresh)."""
        ...
