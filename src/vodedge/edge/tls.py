"""HTTPS on the client listener: a TLS context per domain, chosen by SNI, and the
https_force / http_force redirects.

A name the node holds no certificate for (and a client sending no SNI) gets a
fatal `unrecognized_name` alert, unless the catch-all domain `*` has one: like
a CDN node, it never answers with some other customer's certificate.
"""

from __future__ import annotations

import os
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vodedge.config import Domain, NodeConfig
from vodedge.config.hosts import HostIndex

# Python's defaults for a server, minus what no current client needs.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def server_context() -> ssl.SSLContext:
    """A server context with the node's protocol settings and no certificate yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    return context


def domain_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server context holding one domain's chain and key; ssl.SSLError or OSError
    if they do not load (unparsable, or the key does not match)."""
    context = server_context()
    context.load_cert_chain(cert_path, key_path)
    return context


@dataclass(frozen=True)
class _Entry:
    """A domain and its context (None: HTTPS off), for HostIndex: a name whose domain
    has HTTPS off is refused, never answered by a wildcard covering it."""

    name: str
    context: ssl.SSLContext | None
    enabled: bool = True


# A loaded context stays valid while neither file changes (path, size, mtime).
_FileStamp = tuple[str, int, int]


def _stamp(path: Path) -> _FileStamp:
    info = os.stat(path)
    return (str(path), info.st_size, info.st_mtime_ns)


class SniContexts:
    """The TLS listener's context: its SNI callback switches each connection to the
    context of the domain named, from the configuration `current()` returns.

    The index is rebuilt at the first handshake after the configuration object
    changes, reusing contexts whose files did not change: a certificate set
    through the API or a reloaded file takes effect without a restart.
    """

    def __init__(self, current: Callable[[], NodeConfig], log: Callable[[str], None]) -> None:
        self._current = current
        self._log = log
        self._config: NodeConfig | None = None
        self._index: HostIndex[_Entry] = HostIndex()
        self._loaded: dict[tuple[_FileStamp, _FileStamp], ssl.SSLContext] = {}
        self.context = server_context()
        self.context.sni_callback = self._choose

    def refresh(self) -> None:
        """Rebuild the index if the configuration changed since the last handshake."""
        config = self._current()
        if config is self._config:
            return
        loaded: dict[tuple[_FileStamp, _FileStamp], ssl.SSLContext] = {}
        entries: list[_Entry] = []
        catch_all: _Entry | None = None
        domains = list(config.domains.values())
        if config.default_domain is not None:
            domains.append(config.default_domain)
        for domain in domains:
            context = self._context_for(domain, loaded)
            if domain is config.default_domain:
                catch_all = _Entry(domain.name, context)
            else:
                entries.append(_Entry(domain.name, context))
        self._index = HostIndex.of(entries, catch_all)
        self._loaded = loaded
        self._config = config

    def _context_for(
        self, domain: Domain, loaded: dict[tuple[_FileStamp, _FileStamp], ssl.SSLContext]
    ) -> ssl.SSLContext | None:
        certificate = domain.certificate
        if certificate is None or not certificate.enabled:
            return None
        try:
            key = (_stamp(certificate.cert_path), _stamp(certificate.key_path))
            context = self._loaded.get(key) or domain_context(
                certificate.cert_path, certificate.key_path
            )
        except (OSError, ssl.SSLError) as exc:
            # The other domains keep their HTTPS; this one answers as unknown.
            self._log(f"vodedge: {domain.name}: certificate not loaded: {exc}")
            return None
        loaded[key] = context
        return context

    def context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        """The context answering `server_name` (None: no SNI), or None: refused."""
        self.refresh()
        entry = self._index.catch_all if server_name is None else self._index.lookup(server_name)
        return None if entry is None else entry.context

    def _choose(
        self, connection: ssl.SSLObject, server_name: str | None, base: ssl.SSLContext
    ) -> int | None:
        try:
            context = self.context_for(server_name)
        except Exception as exc:  # an exception here would only be printed by OpenSSL's glue
            self._log(f"vodedge: TLS handshake for {server_name!r}: {exc}")
            context = None
        if context is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = context
        return None


def stderr_log(line: str) -> None:
    """Write one line to stderr (the worker's log)."""
    sys.stderr.write(line + "\n")


@dataclass(frozen=True)
class SchemeAnswer:
    """What to answer instead of serving: a redirect (with `location`) or a refusal."""

    status: int
    location: str | None = None
    code: str = ""
    message: str = ""


def scheme_answer(
    domain: Domain, node: NodeConfig, *, secure: bool, host: str, path_qs: str
) -> SchemeAnswer | None:
    """The request's scheme against the domain's: None when it may be served.

    Over TLS, a domain whose HTTPS is off is refused with 421 (its Host came on
    a connection made for another name). https_force / http_force redirect a
    request that came in on the other scheme; https_force only while the
    domain's HTTPS is on (with no certificate the redirect would lead nowhere).
    The Location keeps the Host's name, the path and the query; its port is the
    node's listener for that scheme, left out when it is the scheme's default.
    """
    if secure and not domain.tls_enabled:
        return SchemeAnswer(421, code="misdirected_request", message="HTTPS is off for this domain")
    wanted = domain.scheme_redirect
    if wanted is None or (wanted.scheme == "https") == secure:
        return None
    if wanted.scheme == "https" and not domain.tls_enabled:
        return None
    name = _host_name(host)
    if wanted.scheme == "https":
        port = node.listen_tls.port if node.listen_tls is not None else 443
        default = 443
    else:
        port = node.listen.port
        default = 80
    authority = name if port == default else f"{name}:{port}"
    return SchemeAnswer(wanted.status, f"{wanted.scheme}://{authority}{path_qs}")


def _host_name(host: str) -> str:
    """The Host header without its port (brackets of an IPv6 address kept)."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host
