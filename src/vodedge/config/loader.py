"""Reading a node configuration from TOML, and the zero-config node.

The file (see examples/vodedge.toml)::

    [node]                          # every key optional
    listen = "127.0.0.1:8080"       # host:port, [v6]:port, or :port for every interface
    admin_listen = "127.0.0.1:9090" # /metrics and the API; absent: no admin listener
    listen_tls = "127.0.0.1:8443"   # HTTPS for domains with a certificate; absent: none
    workers = 4                     # default: one per CPU
    role = "edge"                   # "parent": never fetch through vodedge origins
    fleet_secret = "..."            # signs edges' source requests to their parent
                                    # (prefer VODEDGE_FLEET_SECRET: 16..256 characters)
    cache_dir = "var/cache"         # relative paths are relative to this file
    cache_size = "10GiB"            # or 500MB, 64k, a plain byte count ...
    idle_timeout = "30s"            # limits (limits.py): durations as 30, "30s", "500ms"
    max_connections = 0             # per worker; 0: from the descriptor limit
    lane = true                     # false: every request through aiohttp's request loop

    [[domain]]
    name = "video.example.com"      # or "*.example.com" (one label), or "*" (every other Host)
    origins = [                     # at least one; lower priority is preferred (default 20)
      { url = "http://127.0.0.1:8000", host = "origin.example.com" },
      { dir = "/srv/media", priority = 30 },
      "https://backup.example.net/media",   # a bare string: a URL, else a directory
      { vodedge = "http://10.0.0.9:8080" },  # a parent vodedge (fleet, see README)
    ]
    fallback = "passthrough"        # unsupported media: "error" (default) or "passthrough"
    enabled = true                  # false: the domain is stopped, its Host is refused
    tls = { cert = "certs/video.pem", key = "certs/video.key" }  # PEM chain and key;
                                    # enabled = false keeps them but turns HTTPS off

    [[domain.function]]             # the CDN API's vocabulary, see functions.py
    name = "video_seek"
    args = { enable = "on", mp4_seek_start = "s" }   # true/false are read as "on"/"off"

    [[access_keys]]                 # key pairs of the API on the admin listener
    id = "ops"                      # letters, digits, '.', '_', '-'
    secret = "at-least-16-chars"    # 16..256 printable ASCII characters
    read_only = false               # true: Describe* actions only
    rate = 200                      # calls per second (and burst) before Throttling.User

Errors name the file, the key path (0-based: `domain[1].function[2].args.ttl`)
and the reason, on one line.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from .errors import UNKNOWN_FUNCTION, ConfigError, ConfigFileError, shown
from .functions import Function, FunctionArg
from .hosts import CATCH_ALL
from .keys import DEFAULT_RATE, AccessKey
from .limits import LIMIT_KEYS
from .model import (
    Domain,
    DomainCertificate,
    ListenAddress,
    NodeConfig,
    OriginSpec,
    normalize_domain_name,
)
from .tier import ROLES, Tier
from .values import parse_host_header, parse_size

T = TypeVar("T")
_NODE_KEYS = {
    "listen",
    "admin_listen",
    "listen_tls",
    "workers",
    "cache_dir",
    "cache_size",
    "role",
    "fleet_secret",
    *LIMIT_KEYS,
}
_DOMAIN_KEYS = {"name", "origins", "fallback", "enabled", "function", "tls"}
_TLS_KEYS = {"cert", "key", "enabled", "name"}
_FUNCTION_KEYS = {"name", "args"}
_ACCESS_KEY_KEYS = {"id", "secret", "read_only", "rate"}


class _File:
    """The file being read, for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent

    def error(self, key: str, reason: str, code: str | None = None) -> ConfigFileError:
        if code is None:
            return ConfigFileError(str(self.path), key, reason)
        return ConfigFileError(str(self.path), key, reason, code=code)

    def expect(self, value: object, kind: type[T], key: str, what: str) -> T:
        # bool is an int in Python, never in TOML.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"must be {what}, got {shown(value)}")
        return value

    def table(self, value: object, key: str, allowed: set[str]) -> Mapping[str, object]:
        table = self.expect(value, dict, key, "a table")
        for name in table:
            if name not in allowed:
                raise self.error(f"{key}.{name}" if key else name, "is not a known key")
        return table

    def parsed(self, key: str, parse: Callable[[], T]) -> T:
        try:
            return parse()
        except ConfigError as error:
            raise self.error(key, error.message, error.code) from None

    def directory(self, text: str) -> Path:
        path = self.base / Path(text).expanduser()  # an absolute `text` replaces the base
        return Path(os.path.normpath(path.absolute()))


def load_toml(path: str | Path) -> NodeConfig:
    """The node configured by the TOML file at `path`; ConfigFileError if it is bad."""
    source = _File(Path(path))
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise source.error("", f"cannot be read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise source.error("", f"is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise source.error("", "is not UTF-8 text") from None
    top = source.table(document, "", {"node", "domain", "access_keys"})
    node = _node(source, top.get("node", {}))
    keys = _access_keys(source, top.get("access_keys", []))
    # No [[domain]] is a node whose domains all come from the API (its store).
    raw_domains = source.expect(top.get("domain", []), list, "domain", "an array of [[domain]]")
    domains: dict[str, Domain] = {}
    catch_all: Domain | None = None
    for index, raw in enumerate(raw_domains):
        domain = _domain(source, raw, f"domain[{index}]")
        if domain.name in domains or (domain.name == CATCH_ALL and catch_all is not None):
            raise source.error(f"domain[{index}].name", f"{domain.name} is configured twice")
        if domain.name == CATCH_ALL:
            catch_all = domain
        else:
            domains[domain.name] = domain
    return replace(node, domains=domains, default_domain=catch_all, access_keys=keys)


def _access_keys(source: _File, raw: object) -> tuple[AccessKey, ...]:
    items = source.expect(raw, list, "access_keys", "an array of [[access_keys]]")
    keys: dict[str, AccessKey] = {}
    for index, item in enumerate(items):
        key = f"access_keys[{index}]"
        table = source.table(item, key, _ACCESS_KEY_KEYS)
        for name in ("id", "secret"):
            if name not in table:
                raise source.error(f"{key}.{name}", "is missing")
        key_id = source.expect(table["id"], str, f"{key}.id", "a string")
        secret = table["secret"]
        if not isinstance(secret, str):  # never shown: it may be a secret of another type
            raise source.error(f"{key}.secret", "must be a string")
        read_only = source.expect(
            table.get("read_only", False), bool, f"{key}.read_only", "true or false"
        )
        rate = table.get("rate", DEFAULT_RATE)
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise source.error(f"{key}.rate", f"must be a number, got {shown(rate)}")
        try:
            access_key = AccessKey(key_id, secret, read_only, float(rate))
        except ConfigError as error:
            raise source.error(key, error.message, error.code) from None
        if key_id in keys:
            raise source.error(f"{key}.id", f"{key_id} is configured twice")
        keys[key_id] = access_key
    return tuple(keys.values())


def _listen(source: _File, table: Mapping[str, object], key: str) -> ListenAddress | None:
    if key not in table:
        return None
    text = source.expect(table[key], str, f"node.{key}", "a string like 127.0.0.1:8080")
    return source.parsed(f"node.{key}", lambda: ListenAddress.parse(text))


def _node(source: _File, raw: object) -> NodeConfig:
    table = source.table(raw, "node", _NODE_KEYS)
    node = NodeConfig()
    listen = _listen(source, table, "listen")
    admin_listen = _listen(source, table, "admin_listen")
    listen_tls = _listen(source, table, "listen_tls")
    workers = source.expect(table.get("workers", node.workers), int, "node.workers", "an integer")
    if not 1 <= workers <= 1024:
        raise source.error("node.workers", f"must be 1..1024, got {workers}")
    cache_dir = node.cache_dir
    if "cache_dir" in table:
        cache_dir = source.directory(
            source.expect(table["cache_dir"], str, "node.cache_dir", "a path")
        )
    size = table.get("cache_size", node.cache_size)
    if isinstance(size, str):
        text = size
        size = source.parsed("node.cache_size", lambda: parse_size(text))
    cache_size = source.expect(size, int, "node.cache_size", "a size like 10GiB")
    if cache_size <= 0:
        raise source.error("node.cache_size", "must be positive")
    limits = node.limits
    for key in sorted(LIMIT_KEYS & set(table)):
        limits = source.parsed(f"node.{key}", partial(limits.with_values, {key: table[key]}))
    role = table.get("role", "edge")
    if role not in ROLES:
        raise source.error("node.role", f"must be edge or parent, got {shown(role)}")
    secret = table.get("fleet_secret")
    if secret is not None and not isinstance(secret, str):  # never shown: it is a secret
        raise source.error("node.fleet_secret", "must be a string")
    tier = source.parsed("node.fleet_secret", lambda: Tier(role, secret))
    return NodeConfig(
        listen=listen or node.listen,
        admin_listen=admin_listen,
        listen_tls=listen_tls,
        workers=workers,
        cache_dir=cache_dir,
        cache_size=cache_size,
        limits=limits,
        tier=tier,
    )


def _domain(source: _File, raw: object, key: str) -> Domain:
    table = source.table(raw, key, _DOMAIN_KEYS)
    if "name" not in table:
        raise source.error(f"{key}.name", "is missing")
    name = source.expect(table["name"], str, f"{key}.name", "a domain name")
    name = source.parsed(f"{key}.name", lambda: normalize_domain_name(name))
    raw_origins = source.expect(table.get("origins"), list, f"{key}.origins", "a list of origins")
    if not raw_origins:
        raise source.error(f"{key}.origins", "needs at least one origin")
    origins = tuple(
        _origin(source, item, f"{key}.origins[{i}]") for i, item in enumerate(raw_origins)
    )
    fallback = source.expect(table.get("fallback", "error"), str, f"{key}.fallback", "a string")
    if fallback not in ("error", "passthrough"):
        raise source.error(
            f"{key}.fallback", f"must be error or passthrough, got {shown(fallback)}"
        )
    enabled = source.expect(table.get("enabled", True), bool, f"{key}.enabled", "true or false")
    raw_functions = source.expect(
        table.get("function", []), list, f"{key}.function", "an array of [[domain.function]]"
    )
    functions = tuple(
        _function(source, item, f"{key}.function[{i}]") for i, item in enumerate(raw_functions)
    )
    certificate = _certificate(source, table["tls"], f"{key}.tls") if "tls" in table else None
    try:
        return Domain(
            name,
            origins,
            functions,
            "passthrough" if fallback == "passthrough" else "error",
            enabled,
            certificate,
        )
    except ConfigError as error:
        where = key if error.index is None else f"{key}.function[{error.index}]"
        if error.arg is not None:
            where += f".args.{error.arg}"
        elif error.code == UNKNOWN_FUNCTION:
            where += ".name"
        raise source.error(where, error.message, error.code) from None


def _certificate(source: _File, raw: object, key: str) -> DomainCertificate:
    table = source.table(raw, key, _TLS_KEYS)
    paths = []
    for part in ("cert", "key"):
        if part not in table:
            raise source.error(f"{key}.{part}", "is missing")
        path = source.directory(source.expect(table[part], str, f"{key}.{part}", "a path"))
        if not path.is_file():
            raise source.error(f"{key}.{part}", f"{path} is not a file")
        paths.append(path)
    enabled = source.expect(table.get("enabled", True), bool, f"{key}.enabled", "true or false")
    name = source.expect(table.get("name", ""), str, f"{key}.name", "a string")
    return source.parsed(key, lambda: DomainCertificate(paths[0], paths[1], enabled, name))


def _origin(source: _File, raw: object, key: str) -> OriginSpec:
    if isinstance(raw, str):
        raw = {"url": raw} if raw.startswith(("http://", "https://")) else {"dir": raw}
    table = source.table(raw, key, {"url", "dir", "vodedge", "host", "priority"})
    priority = source.expect(table.get("priority", 20), int, f"{key}.priority", "an integer")
    if not 1 <= priority <= 65535:
        raise source.error(f"{key}.priority", f"must be 1..65535, got {priority}")
    if sum(name in table for name in ("url", "dir", "vodedge")) != 1:
        raise source.error(key, "needs exactly one of url, dir or vodedge")
    if "vodedge" in table:
        if "host" in table:
            raise source.error(f"{key}.host", "does not apply: a parent gets the client's Host")
        parent = source.expect(table["vodedge"], str, f"{key}.vodedge", "a parent's URL")
        return source.parsed(
            f"{key}.vodedge",
            lambda: OriginSpec.from_url(parent, priority=priority, kind="vodedge"),
        )
    if "dir" in table:
        if "host" in table:
            raise source.error(f"{key}.host", "applies to URL origins only")
        path = source.directory(source.expect(table["dir"], str, f"{key}.dir", "a path"))
        if not path.is_dir():
            raise source.error(f"{key}.dir", f"{path} is not a directory")
        return OriginSpec.from_directory(path.resolve(), priority=priority)
    url = source.expect(table["url"], str, f"{key}.url", "a URL")
    host = None
    if "host" in table:
        text = source.expect(table["host"], str, f"{key}.host", "a host name")
        host = source.parsed(f"{key}.host", lambda: parse_host_header(text))
    return source.parsed(
        f"{key}.url", lambda: OriginSpec.from_url(url, host_header=host, priority=priority)
    )


def _function(source: _File, raw: object, key: str) -> Function:
    table = source.table(raw, key, _FUNCTION_KEYS)
    if "name" not in table:
        raise source.error(f"{key}.name", "is missing")
    name = source.expect(table["name"], str, f"{key}.name", "a function name")
    args = source.expect(table.get("args", {}), dict, f"{key}.args", "a table of arguments")
    values = []
    for arg, value in args.items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, int):
            value = str(value)
        values.append(FunctionArg(arg, source.expect(value, str, f"{key}.args.{arg}", "a string")))
    return Function(name, tuple(values))


def zero_config(origin: str) -> NodeConfig:
    """A node serving every Host from `origin` (a directory or an http(s) URL).

    Audio extraction, video seeking and the listening page are on, with the default
    parameter names.
    """
    if origin.startswith(("http://", "https://")):
        spec = OriginSpec.from_url(origin)
    else:
        path = Path(origin).expanduser()
        if not path.is_dir():
            raise ConfigError("InvalidParameter", f"origin {shown(origin)} is not a directory")
        spec = OriginSpec.from_directory(path.resolve())
    functions = (
        Function.of("ali_video_split", enable="on"),
        Function.of("video_seek", enable="on"),
        Function.of("vodedge_listen_page", enable="on"),
    )
    return NodeConfig(default_domain=Domain(CATCH_ALL, (spec,), functions))
