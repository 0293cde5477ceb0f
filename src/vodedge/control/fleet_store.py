"""The store a fleet node's API uses: Redis, and the node's copy for reads while Redis
is out of reach (writes are refused then: StoreUnavailable, HTTP 503)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from .redis_store import RedisStore
from .replica import Replica
from .store import (
    Certificate,
    DomainRecord,
    StoreUnavailable,
    TaskKind,
    TaskQuery,
    TaskRecord,
)

T = TypeVar("T")
READS_FROM_COPY_FOR = 2.0  # seconds


class FleetStore:
    """A ControlStore: writes go to Redis; reads too, or to the copy when it is down."""

    def __init__(self, fleet: RedisStore, replica: Replica) -> None:
        self.fleet = fleet
        self.replica = replica
        self._down_until = 0.0

    def _read(self, shared: Callable[[], T], local: Callable[[], T]) -> T:
        # Once Redis failed, reads go to the copy for a while without trying it (an
        # unreachable host costs a connect timeout per try).
        if time.monotonic() < self._down_until:
            return local()
        try:
            return shared()
        except StoreUnavailable:
            self._down_until = time.monotonic() + READS_FROM_COPY_FOR
            return local()

    def _write(self, change: Callable[[], T]) -> T:
        done = change()
        self._down_until = 0.0  # Redis answers: read what was just written from it
        return done

    def version(self) -> int:
        """Redis's version, or the one the copy last saw."""
        return self._read(self.fleet.version, self.replica.fleet_version)

    def domain(self, name: str) -> DomainRecord | None:
        """The domain stored under `name`."""
        return self._read(lambda: self.fleet.domain(name), lambda: self.replica.domain(name))

    def domains(self) -> list[DomainRecord]:
        """Every domain, by name."""
        return self._read(self.fleet.domains, self.replica.domains)

    def add_domain(self, record: DomainRecord) -> DomainRecord:
        """Store a new domain in Redis."""
        return self._write(lambda: self.fleet.add_domain(record))

    def update_domains(self, records: Sequence[DomainRecord]) -> list[DomainRecord]:
        """Write all of `records` or none, in Redis."""
        return self._write(lambda: self.fleet.update_domains(records))

    def delete_domain(self, name: str) -> bool:
        """Forget a domain and its certificate, in Redis."""
        return self._write(lambda: self.fleet.delete_domain(name))

    def import_file_domains(self, records: Sequence[DomainRecord]) -> list[str]:
        """A config file's domains into Redis, where the file changed them."""
        return self._write(lambda: self.fleet.import_file_domains(records))

    def add_task(self, kind: TaskKind, objects: Sequence[tuple[str, str]], force: bool) -> int:
        """A task in Redis, for every node."""
        return self._write(lambda: self.fleet.add_task(kind, objects, force))

    def tasks(self, query: TaskQuery) -> tuple[int, list[TaskRecord]]:
        """Tasks as Redis has them (fleet-wide), or as this node applied them."""
        return self._read(lambda: self.fleet.tasks(query), lambda: self.replica.tasks(query))

    def task_counts_since(self, since: float) -> Mapping[TaskKind, int]:
        """Objects submitted since `since`, fleet-wide (or those this node saw)."""
        return self._read(
            lambda: self.fleet.task_counts_since(since),
            lambda: self.replica.task_counts_since(since),
        )

    def put_certificate(self, certificate: Certificate) -> None:
        """Set a domain's certificate in Redis."""
        self._write(lambda: self.fleet.put_certificate(certificate))

    def certificate(self, domain: str) -> Certificate | None:
        """A domain's certificate."""
        return self._read(
            lambda: self.fleet.certificate(domain), lambda: self.replica.certificate(domain)
        )

    def certificates(self) -> list[Certificate]:
        """Every stored certificate."""
        return self._read(self.fleet.certificates, self.replica.certificates)

    def delete_certificate(self, domain: str) -> bool:
        """Forget a domain's certificate, in Redis."""
        return self._write(lambda: self.fleet.delete_certificate(domain))
