"""Between the API's words and the edge's model: Sources, domain names, NodeConfig."""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Literal, cast

from vodedge.config import ConfigError, Domain, DomainCertificate, NodeConfig, OriginSpec
from vodedge.config.errors import shown
from vodedge.config.values import parse_hostname

from .errors import ApiError
from .store import DomainRecord, Source, SourceType

MAX_SOURCES = 20
_SOURCE_KEYS = {"type", "content", "port", "priority", "weight", "enabled"}


def bad_domain_name(name: str) -> ApiError:
    """The documented error for a malformed DomainName."""
    return ApiError(
        400, "InvalidDomainName.Malformed", f"Specified DomainName {shown(name)} is malformed."
    )


def api_domain_name(text: str) -> str:
    """A DomainName as stored: lower-case ASCII; a wildcard in the API's form,
    `.example.com` (`*.example.com` is taken as the same name)."""
    wildcard = text.startswith((".", "*."))
    bare = text[1:] if text.startswith(".") else text[2:] if text.startswith("*.") else text
    try:
        host = parse_hostname(bare)
    except ConfigError:
        raise bad_domain_name(text) from None
    if "." not in host and not wildcard:
        raise bad_domain_name(text)  # an accelerated domain has a parent: no bare labels
    return ("." if wildcard else "") + host


def edge_domain_name(name: str) -> str:
    """The edge's name for a stored domain (`.example.com` is `*.example.com` there)."""
    return "*" + name if name.startswith(".") else name


def _malformed(message: str) -> ApiError:
    return ApiError(400, "InvalidSources.Malformed", f"Specified Sources is malformed: {message}")


def _number(item: Mapping[str, object], key: str, default: int, low: int, high: int) -> int:
    value = item.get(key, default)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 7:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _malformed(f"{key} must be an integer from {low} to {high}, got {shown(value)}")
    return value


def parse_sources(text: str) -> tuple[Source, ...]:
    """The API's `Sources` JSON: `[{"content", "type", "port", "priority", "weight"}]`."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise _malformed("not valid JSON") from None
    if not isinstance(raw, list) or not raw:
        raise _malformed("must be a non-empty JSON list of origins")
    if len(raw) > MAX_SOURCES:
        raise _malformed(f"at most {MAX_SOURCES} origins, got {len(raw)}")
    sources = []
    for item in raw:
        if not isinstance(item, dict):
            raise _malformed(f"each origin must be an object, got {shown(item)}")
        unknown = sorted(str(k) for k in item if k not in _SOURCE_KEYS)
        if unknown:
            raise _malformed(f"unknown key {shown(unknown[0])}")
        kind = item.get("type")
        if kind not in ("ipaddr", "domain", "oss", "vodedge"):
            raise ApiError(
                400,
                "InvalidSourceType.Malformed",
                f"Specified SourceType {shown(kind)} is malformed: ipaddr, domain, oss or vodedge.",
            )
        content = item.get("content")
        if not isinstance(content, str) or not content:
            raise _malformed("each origin needs a content (an IP address or a domain name)")
        if kind == "ipaddr" or (kind == "vodedge" and _is_ip(content)):
            try:
                content = ipaddress.ip_address(content.strip("[]")).compressed
            except ValueError:
                raise _malformed(f"{shown(content)} is not an IP address") from None
        else:
            try:
                content = parse_hostname(content)
            except ConfigError:
                raise _malformed(f"{shown(content)} is not a domain name") from None
        sources.append(
            Source(
                type=cast(SourceType, kind),
                content=content,
                port=_number(item, "port", 80, 1, 65535),
                priority=_number(item, "priority", 20, 1, 65535),
                weight=_number(item, "weight", 10, 1, 100),
            )
        )
    return tuple(sources)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def origin_of(source: Source) -> OriginSpec:
    """The edge's origin for a stored source (port 443 is HTTPS, as the API says)."""
    if source.type == "dir":
        return OriginSpec.from_directory(source.content, priority=source.priority)
    scheme: Literal["http", "https"] = "https" if source.port == 443 else "http"
    if source.type == "vodedge":  # a parent node: it gets the client's Host and path
        return OriginSpec(
            kind="vodedge",
            scheme=scheme,
            host=source.content,
            port=source.port,
            priority=source.priority,
        )
    # An OSS bucket answers only to its own name: it is the back-to-origin Host.
    host_header = source.host_header or (source.content if source.type == "oss" else None)
    return OriginSpec(
        kind="http",
        scheme=scheme,
        host=source.content,
        port=source.port,
        base_path=source.base_path,
        host_header=host_header,
        priority=source.priority,
    )


def source_of(origin: OriginSpec) -> Source:
    """A stored source for one of a TOML file's origins (nothing of it lost)."""
    if origin.kind == "dir":
        return Source("dir", str(origin.directory), 0, origin.priority, 10)
    kind: SourceType = "ipaddr" if _is_ip(origin.host) else "domain"
    if origin.kind == "vodedge":
        kind = "vodedge"
    if (origin.scheme == "https") != (origin.port == 443):
        # The API's only scheme rule is the port; say so rather than change the origin.
        raise ConfigError(
            "InvalidParameter",
            f"origin {origin.url}: the store takes https on port 443 and http elsewhere",
        )
    return Source(
        kind, origin.host, origin.port, origin.priority, 10, origin.base_path, origin.host_header
    )


def record_of(domain: Domain) -> DomainRecord:
    """A stored domain for a TOML file's domain (what `import_file_domains` is given)."""
    return DomainRecord(
        name=domain.name[1:] if domain.name.startswith("*.") else domain.name,
        cdn_type="video",
        sources=tuple(source_of(origin) for origin in domain.origins),
        status="online" if domain.enabled else "offline",
        functions=tuple(replace(f, config_id=None) for f in domain.functions),
        fallback=domain.fallback,
    )


def edge_domain(record: DomainRecord) -> Domain:
    """The edge's Domain for a stored one (ConfigError if it no longer validates)."""
    return Domain(
        edge_domain_name(record.name),
        tuple(origin_of(source) for source in record.sources),
        record.functions,
        "passthrough" if record.fallback == "passthrough" else "error",
        record.status == "online",
    )


def node_with(
    base: NodeConfig,
    records: Iterable[DomainRecord],
    certificates: Mapping[str, DomainCertificate] | None = None,
) -> NodeConfig:
    """`base` (listeners, cache, the catch-all) serving the stored domains instead of its own,
    with the certificates set through the API (by the edge's domain name)."""
    domains: dict[str, Domain] = {}
    for record in records:
        try:
            domain = edge_domain(record)
        except ConfigError as error:  # stored by an older vodedge, refused by this one
            sys.stderr.write(f"vodedge: domain {record.name} not served: {error}\n")
            continue
        known = base.domains.get(domain.name)
        if certificates is not None and domain.name in certificates:
            domain = replace(domain, certificate=certificates[domain.name])
        elif known is not None and known.certificate is not None:
            # A certificate the config file names stays with its domain.
            domain = replace(domain, certificate=known.certificate)
        domains[domain.name] = domain
    return replace(base, domains=domains)
