"""Host header normalisation and matching hosts to domain names (exact, then wildcard)."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from .errors import ConfigError
from .values import to_ascii_host

# Underscores are not LDH, but real Host headers carry them; they cannot match a
# configured domain name anyway, so tolerating them only avoids a misleading error.
_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?")
CATCH_ALL = "*"


@functools.lru_cache(maxsize=4096)  # per request, and clients send few distinct Hosts
def normalize_host(header: str) -> str | None:
    """A Host header's name: port stripped, lower-case, IDNA ASCII; None if malformed."""
    text = header.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end > 0 else "x"
        if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
            return None
        try:
            return ipaddress.IPv6Address(text[1:end]).compressed
        except ValueError:
            return None
    name, _, port = text.partition(":")
    if (port and not (port.isascii() and port.isdigit())) or not name:
        return None
    try:
        host = to_ascii_host(name)
    except ConfigError:
        return None
    return host if _HOST.fullmatch(host) and ".." not in host else None


class Named(Protocol):
    """Anything with a normalised domain `name` and an `enabled` flag."""

    @property
    def name(self) -> str: ...

    @property
    def enabled(self) -> bool: ...


D = TypeVar("D", bound=Named)


@dataclass(frozen=True)
class HostIndex(Generic[D]):
    """Domains by exact name and by wildcard suffix (`*.example.com` covers one label)."""

    exact: dict[str, D] = field(default_factory=dict)
    wildcard: dict[str, D] = field(default_factory=dict)
    catch_all: D | None = None

    @classmethod
    def of(cls, domains: Iterable[D], catch_all: D | None = None) -> HostIndex[D]:
        """An index of `domains` (names already normalised)."""
        index: HostIndex[D] = cls(catch_all=catch_all)
        for domain in domains:
            if domain.name.startswith("*."):
                index.wildcard[domain.name[2:]] = domain
            else:
                index.exact[domain.name] = domain
        return index

    def lookup(self, header: str) -> D | None:
        """The domain serving Host `header`, enabled or not."""
        host = normalize_host(header)
        if host is None:
            return None
        found = self.exact.get(host)
        if found is None and "." in host:
            # Like the CDN, a wildcard covers exactly one more label: *.a.com has b.a.com,
            # not c.b.a.com (which an entry *.b.a.com would cover).
            found = self.wildcard.get(host.split(".", 1)[1])
        return found if found is not None else self.catch_all
