"""The node configuration the edge reads: origins, domains and node settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from .access import IpAcl, RefererPolicy
from .errors import INVALID_PARAMETER, ConfigError, shown
from .functions import Function
from .headers import ResponseHeaders
from .hosts import CATCH_ALL, HostIndex
from .keys import AccessKey
from .limits import NodeLimits
from .policy import (
    Policy,
    PreviewConfig,
    RangeMode,
    RateLimit,
    SchemeRedirect,
    SeekConfig,
    TtlRule,
    build_policy,
)
from .tier import Tier
from .urlauth import UrlAuth
from .values import parse_host, parse_host_header, parse_hostname, parse_int, parse_size

__all__ = [
    "Domain",
    "DomainCertificate",
    "Fallback",
    "ListenAddress",
    "NodeConfig",
    "OriginSpec",
    "PreviewConfig",
    "RangeMode",
    "RateLimit",
    "SchemeRedirect",
    "SeekConfig",
    "TtlRule",
]

Fallback = Literal["error", "passthrough"]
DEFAULT_PRIORITY = 20  # the CDN's Sources priority: 20 primary, 30 backup; lower wins
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _invalid(message: str) -> ConfigError:
    return ConfigError(INVALID_PARAMETER, message)


OriginKind = Literal["http", "dir", "vodedge"]


@dataclass(frozen=True)
class OriginSpec:
    """Where objects come from: an HTTP(S) server, a local directory, or a parent vodedge
    (kind `vodedge`: asked for source bytes with the client's Host, see edge/parent_tier.py)."""

    kind: OriginKind
    scheme: Literal["http", "https"] = "http"
    host: str = ""
    port: int = 0
    base_path: str = ""
    directory: Path | None = None
    # The back-to-origin Host for this origin (the CDN's per-origin origin_host).
    host_header: str | None = None
    priority: int = DEFAULT_PRIORITY

    def __post_init__(self) -> None:
        if not 1 <= self.priority <= 65535:
            raise _invalid(f"origin priority must be 1..65535, got {self.priority}")
        if self.kind == "dir":
            if self.directory is None or not self.directory.is_absolute():
                raise _invalid("a directory origin needs an absolute directory")
        elif self.kind not in ("http", "vodedge") or not self.host or not 1 <= self.port <= 65535:
            raise _invalid(f"an HTTP origin needs a host and a port, got {self!r}")
        elif self.kind == "vodedge" and (self.base_path or self.host_header):
            # The parent finds the domain by the client's Host and serves its paths.
            raise _invalid("a vodedge (parent) origin takes no path and no host")

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        host_header: str | None = None,
        priority: int = DEFAULT_PRIORITY,
        kind: Literal["http", "vodedge"] = "http",
    ) -> OriginSpec:
        """An HTTP origin from `http(s)://host[:port][/base/path]` (a parent vodedge's
        from `http(s)://host[:port]`)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise _invalid(f"origin URL {shown(url)} is malformed") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid(f"origin URL must be http:// or https:// with a host, got {shown(url)}")
        if parts.username is not None or parts.query or parts.fragment:
            # Credentials would end up in logs; a query has no meaning for a base URL.
            raise _invalid(f"origin URL must have no user, query or fragment: {shown(url)}")
        scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
        return cls(
            kind=kind,
            scheme=scheme,
            host=parse_host(parts.hostname),
            port=port if port is not None else _DEFAULT_PORTS[scheme],
            base_path=parts.path.rstrip("/"),
            host_header=None if host_header is None else _host_header(host_header),
            priority=priority,
        )

    @classmethod
    def from_directory(cls, path: str | Path, *, priority: int = DEFAULT_PRIORITY) -> OriginSpec:
        """A directory origin; the path is made absolute (it is not checked to exist)."""
        return cls(kind="dir", directory=Path(path).absolute(), priority=priority)

    @property
    def url(self) -> str | None:
        """The base URL of an HTTP or vodedge origin (None for a directory)."""
        if self.kind == "dir":
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == _DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.base_path}"


def _host_header(text: str) -> str:
    try:
        return parse_host_header(text)
    except ConfigError as error:
        raise _invalid(f"origin host {error.message}") from None


def normalize_domain_name(name: str) -> str:
    """A domain name as stored: lower-case ASCII; `*.example.com`, an IP, or `*`."""
    if name == CATCH_ALL:
        return name
    try:
        if name.startswith("*."):
            return parse_hostname(name, wildcard=True)
        return parse_host(name)
    except ConfigError as error:
        raise _invalid(f"domain name {error.message}") from None


@dataclass(frozen=True)
class DomainCertificate:
    """A domain's TLS certificate: PEM files (certificate chain, private key) and
    whether HTTPS is on (the API's SSLProtocol). The files are not read here."""

    cert_path: Path
    key_path: Path
    enabled: bool = True
    name: str = ""  # the API's CertName

    def __post_init__(self) -> None:
        if not self.cert_path.is_absolute() or not self.key_path.is_absolute():
            raise _invalid("certificate and key paths must be absolute")
        if len(self.name) > 128:
            raise _invalid("a certificate name has at most 128 characters")


@dataclass(frozen=True)
class Domain:
    """An accelerated domain: its origins, its functions and its typed settings.

    `functions` keeps the list exactly as configured (see `functions_api`); every
    accessor below is computed from it once, when the Domain is made, so a bad
    function is refused then with the API's error code.
    """

    name: str
    origins: tuple[OriginSpec, ...]
    functions: tuple[Function, ...] = ()
    fallback: Fallback = "error"
    enabled: bool = True
    certificate: DomainCertificate | None = None
    _policy: Policy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_domain_name(self.name))
        object.__setattr__(self, "origins", tuple(self.origins))
        object.__setattr__(self, "functions", tuple(self.functions))
        if not self.origins:
            raise _invalid(f"domain {self.name} has no origin")
        if self.fallback not in ("error", "passthrough"):
            raise _invalid(f"fallback must be error or passthrough, got {shown(self.fallback)}")
        object.__setattr__(self, "_policy", build_policy(self.functions))

    @property
    def functions_api(self) -> list[dict[str, object]]:
        """The function list in the API's shape (functionName, functionArgs)."""
        return [function.to_api() for function in self.functions]

    @property
    def tls_enabled(self) -> bool:
        """Whether the domain answers on the TLS listener (a certificate, switched on)."""
        return self.certificate is not None and self.certificate.enabled

    @property
    def scheme_redirect(self) -> SchemeRedirect | None:
        """https_force / http_force when on: the scheme to send clients to, and how."""
        return self._policy.scheme_redirect

    @property
    def audio_split(self) -> bool:
        """ali_video_split: extract audio on `ali_audio_only=1`."""
        return self._policy.audio_split

    @property
    def seek(self) -> SeekConfig:
        """video_seek settings (disabled with default names when not configured)."""
        return self._policy.seek

    @property
    def preview(self) -> PreviewConfig | None:
        """ali_video_preview when it is on."""
        return self._policy.preview

    @property
    def listen_page(self) -> bool:
        """vodedge_listen_page: GET /_vodedge/listen?src=... serves the listening page."""
        return self._policy.listen_page

    @property
    def response_headers(self) -> ResponseHeaders:
        """set_resp_header: headers added, changed or removed, and the CORS answer."""
        return self._policy.response_headers

    @property
    def url_auth(self) -> UrlAuth | None:
        """aliauth when it asks for signed URLs."""
        return self._policy.url_auth

    @property
    def range_mode(self) -> RangeMode:
        """range: ranged origin fetches on (the default), off or forced."""
        return self._policy.range_mode

    @property
    def origin_host(self) -> str | None:
        """set_req_host_header: the domain-wide back-to-origin Host."""
        return self._policy.origin_host

    def origin_host_for(self, origin: OriginSpec, request_host: str) -> str:
        """The Host to send `origin`: its own, else the domain's, else the client's."""
        return origin.host_header or self.origin_host or request_host

    @property
    def ttl_rules(self) -> tuple[TtlRule, ...]:
        """filetype_based_ttl_set and path_based_ttl_set rules in configured order."""
        return self._policy.ttl_rules

    def ttl_rule_for(self, path: str) -> TtlRule | None:
        """The TTL rule covering URL path `path` (highest weight, then earliest)."""
        return self._policy.ttl_rule_for(path)

    def ttl_for(self, path: str) -> int | None:
        """The configured TTL in seconds for URL path `path`, if a rule covers it."""
        rule = self._policy.ttl_rule_for(path)
        return None if rule is None else rule.ttl

    def cache_key_args(self, query: Mapping[str, str]) -> list[tuple[str, str]]:
        """The query parameters that belong in the cache key, sorted."""
        return self._policy.query.cache_key_args(query)

    def origin_args(self, query: Mapping[str, str]) -> list[tuple[str, str]]:
        """The query parameters to send the origin, in request order."""
        return self._policy.query.origin_args(query)

    @property
    def referer_policy(self) -> RefererPolicy | None:
        """The Referer white or black list, if any (with redirect_url)."""
        return self._policy.referer

    def referer_allowed(self, referer: str | None) -> bool:
        """Whether a request with this Referer header (None: absent) may be served."""
        policy = self._policy.referer
        return policy is None or policy.allows(referer)

    @property
    def ip_acl(self) -> IpAcl | None:
        """The IP allow or deny list, if any (with its status and X-Forwarded-For mode)."""
        return self._policy.ip_acl

    def ip_allowed(self, ip: str) -> bool:
        """Whether a client at `ip` may be served."""
        acl = self._policy.ip_acl
        return acl is None or acl.allows(ip)

    @property
    def rate_limit(self) -> int | None:
        """limit_rate's default bytes per second (None: unlimited); see `rate_limit_config`."""
        rate = self._policy.rate
        return None if rate is None else rate.rate_for({}, rate.start_hour)

    @property
    def rate_limit_config(self) -> RateLimit | None:
        """limit_rate in full: per-request parameter, hours, and the unthrottled prefix."""
        return self._policy.rate


@dataclass(frozen=True)
class ListenAddress:
    """A host and port to listen on."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """`host:port`, `[v6]:port`, `:port` or `port` (the last two: every interface)."""
        text = text.strip()
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "", text
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            number = parse_int(port, 0, 65535)
            host = parse_host(host) if host else "0.0.0.0"
        except ConfigError:
            raise _invalid(f"must be host:port like 127.0.0.1:8080, got {shown(text)}") from None
        return cls(host, number)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def default_workers() -> int:
    """One worker per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class NodeConfig:
    """The whole node: listeners, workers, cache, and domains by name.

    `default_domain` (zero-config mode) serves every Host no domain claims.
    """

    listen: ListenAddress = ListenAddress("127.0.0.1", 8080)
    admin_listen: ListenAddress | None = None
    listen_tls: ListenAddress | None = None
    workers: int = field(default_factory=default_workers)
    cache_dir: Path = Path("var/cache")
    cache_size: int = 10 << 30
    limits: NodeLimits = field(default_factory=NodeLimits)
    domains: Mapping[str, Domain] = field(default_factory=dict)
    default_domain: Domain | None = None
    access_keys: tuple[AccessKey, ...] = ()
    tier: Tier = field(default_factory=Tier)
    _index: HostIndex[Domain] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 1024:
            raise _invalid(f"workers must be 1..1024, got {self.workers}")
        if self.cache_size <= 0:
            raise _invalid(f"cache_size must be positive, got {self.cache_size}")
        for name, domain in self.domains.items():
            if name != domain.name or name == CATCH_ALL:
                raise _invalid(f"domain {shown(name)} is filed under the wrong name")
        object.__setattr__(self, "domains", MappingProxyType(dict(self.domains)))
        object.__setattr__(self, "_index", HostIndex.of(self.domains.values(), self.default_domain))

    @classmethod
    def with_domains(cls, *domains: Domain, **settings: object) -> NodeConfig:
        """A node serving `domains` (a domain named `*` becomes the default)."""
        catch_all = [d for d in domains if d.name == CATCH_ALL]
        named = {d.name: d for d in domains if d.name != CATCH_ALL}
        if len(named) + len(catch_all) != len(domains) or len(catch_all) > 1:
            raise _invalid("two domains have the same name")
        node = cls(domains=named, default_domain=catch_all[0] if catch_all else None)
        return replace(node, **settings) if settings else node  # type: ignore[arg-type]

    def lookup(self, host: str) -> Domain | None:
        """The domain configured for Host header `host`, enabled or not."""
        return self._index.lookup(host)

    def domain_for(self, host: str) -> Domain | None:
        """The domain serving Host header `host`, or None: the request is refused.

        A stopped (`enabled = false`) domain serves nothing and does not fall back
        to a wildcard or the default domain.
        """
        domain = self._index.lookup(host)
        return domain if domain is not None and domain.enabled else None

    def with_overrides(
        self,
        *,
        listen: str | None = None,
        admin_listen: str | None = None,
        listen_tls: str | None = None,
        workers: int | str | None = None,
        cache_dir: str | Path | None = None,
        cache_size: int | str | None = None,
        limits: Mapping[str, object] | None = None,
        role: str | None = None,
        fleet_secret: str | None = None,
    ) -> NodeConfig:
        """This node with command-line settings applied (strings parsed as in the file)."""
        changes: dict[str, object] = {}
        if role is not None or fleet_secret is not None:
            changes["tier"] = Tier(
                role=self.tier.role if role is None else role,  # type: ignore[arg-type]
                secret=self.tier.secret if fleet_secret is None else fleet_secret,
            )
        if listen is not None:
            changes["listen"] = ListenAddress.parse(listen)
        if admin_listen is not None:
            changes["admin_listen"] = ListenAddress.parse(admin_listen)
        if listen_tls is not None:
            changes["listen_tls"] = ListenAddress.parse(listen_tls)
        if workers is not None:
            changes["workers"] = (
                workers if isinstance(workers, int) else parse_int(workers, 1, 1024)
            )
        if cache_dir is not None:
            changes["cache_dir"] = Path(cache_dir)
        if cache_size is not None:
            changes["cache_size"] = (
                cache_size if isinstance(cache_size, int) else parse_size(cache_size)
            )
        if limits:
            changes["limits"] = self.limits.with_values(limits)
        return replace(self, **changes)  # type: ignore[arg-type]
