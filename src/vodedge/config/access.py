"""Access rules: Referer white/black lists and IP allow/deny lists."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from .errors import ConfigError, shown
from .values import bad, to_ascii_host

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ListMode = Literal["allow", "deny"]
_PATTERN_LABEL = re.compile(r"[a-z0-9_*](?:[a-z0-9_*-]{0,61}[a-z0-9_*])?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_referer_list(text: str) -> tuple[str, ...]:
    """Comma-separated referer domains (`*` matches any characters), normalised."""
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or any(not entry or any(c.isspace() for c in entry) for entry in entries):
        raise bad(f"must be domains separated by commas, got {shown(text)}")
    return tuple(_referer_entry(entry) for entry in entries)


def _referer_entry(entry: str) -> str:
    host, sep, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    if sep and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise bad(f"has a bad port in {shown(entry)}")
    try:
        labels = [to_ascii_host(label) if label != "*" else label for label in host.split(".")]
    except ConfigError:
        raise bad(f"is not a domain pattern: {shown(entry)}") from None
    if len(host) > 253 or not all(_PATTERN_LABEL.fullmatch(label) for label in labels):
        # Schemes, paths and spaces are refused: the lists hold host names only.
        raise bad(f"entries are domains like example.com or *.example.com, got {shown(entry)}")
    normal = ".".join(labels)
    return f"{normal}:{int(port)}" if sep else normal


def glob_match(pattern: str, text: str) -> bool:
    """Whether `text` matches `pattern`, where `*` stands for any characters.

    Two pointers with backtracking to the last star only: O(len(pattern) * len(text)),
    where a regex of several `.*` could take exponential time on a hostile Referer.
    """
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, t, p + 1
        elif p < len(pattern) and pattern[p] == text[t]:
            p, t = p + 1, t + 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return pattern[p:].strip("*") == ""


def host_matches(pattern: str, host: str, exact: bool) -> bool:
    """Whether `host` matches a referer pattern (and, unless `exact`, its subdomains too)."""
    if glob_match(pattern, host):
        return True
    # Without disable_ast a listed domain also covers its subdomains (the docs' suffix match).
    return not exact and any(
        glob_match(pattern, host[i + 1 :]) for i, ch in enumerate(host) if ch == "."
    )


def referer_host(referer: str, ignore_scheme: bool) -> tuple[str, int | None] | None:
    """The (host, port) a Referer names, or None when it names none."""
    text = referer.strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in _DEFAULT_PORTS:
        target = text
    elif not scheme and ignore_scheme:
        target = "//" + text
    else:
        return None
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
        if not host:
            return None
        host = to_ascii_host(host)
    except (ValueError, ConfigError):
        return None
    if len(host) > 253:
        return None
    return host, port if port is not None else _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True)
class RefererPolicy:
    """A Referer white list (`allow`) or black list (`deny`) and its options."""

    mode: ListMode
    patterns: tuple[str, ...]
    allow_empty: bool
    exact: bool = False
    ignore_scheme: bool = False
    redirect_url: str | None = None

    def matches(self, referer: str) -> bool:
        """Whether a non-empty Referer is on the list."""
        found = referer_host(referer, self.ignore_scheme)
        if found is None:
            return False
        host, port = found
        for pattern in self.patterns:
            name, colon, listed_port = pattern.rpartition(":")
            if not colon:
                name = pattern
            elif port != int(listed_port):
                continue
            if host_matches(name, host, self.exact):
                return True
        return False

    def allows(self, referer: str | None) -> bool:
        """Whether a request with this Referer header (None: absent) may be served."""
        if referer is None or not referer.strip():
            return self.allow_empty
        return self.matches(referer) == (self.mode == "allow")


def parse_ip_list(text: str) -> tuple[Network, ...]:
    """Comma-separated IPv4/IPv6 addresses and CIDR blocks."""
    entries = [entry.strip() for entry in text.split(",")]
    if not text.strip() or any(not entry for entry in entries):
        raise bad(f"must be IP addresses or CIDRs separated by commas, got {shown(text)}")
    networks = []
    for entry in entries:
        try:
            if "%" in entry or not entry.isascii():
                raise ValueError(entry)
            # strict=False: the docs' own example, 192.168.0.1/24, has host bits set.
            networks.append(_unmapped(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise bad(f"entries are IP addresses or CIDRs, got {shown(entry)}") from None
    return tuple(networks)


def _unmapped(network: Network) -> Network:
    # IPv4-mapped IPv6 blocks are kept as IPv4, as client addresses are (see client_address).
    mapped = network.network_address
    if (
        isinstance(mapped, ipaddress.IPv6Address)
        and mapped.ipv4_mapped is not None
        and network.prefixlen >= 96
    ):
        return ipaddress.IPv4Network(f"{mapped.ipv4_mapped}/{network.prefixlen - 96}")
    return network


def client_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in `ip` (IPv4-mapped IPv6 as IPv4), or None if it is not one."""
    text = ip.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class IpAcl:
    """An IP allow list or deny list and how a refused request is answered."""

    mode: ListMode
    networks: tuple[Network, ...]
    status: int = 403
    # Which address the docs' ip_acl_xfwd says to check: on = X-Forwarded-For's first,
    # off = the connection's, all = both. The edge picks the address(es) to pass.
    xfwd: Literal["on", "off", "all"] = "on"

    def matches(self, ip: str) -> bool:
        """Whether `ip` falls in one of the listed networks."""
        address = client_address(ip)
        if address is None:
            return False
        return any(address.version == net.version and address in net for net in self.networks)

    def allows(self, ip: str) -> bool:
        """Whether a client at `ip` may be served; an unparsable address never is."""
        if client_address(ip) is None:
            return False
        return self.matches(ip) == (self.mode == "allow")
