"""Stage one, resolve: a request becomes a domain, a transform and a cache key, or a refusal."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from urllib.parse import unquote, urlencode

from aiohttp import web
from multidict import MultiDict

from vodedge.config import Domain, NodeConfig, TtlRule, normalize_host
from vodedge.config.urlauth import AuthDenied, Authorized, verify
from vodedge.edge.parent_tier import (
    DENIED,
    SOURCE_HEADER,
    SourceDenied,
    SourceRequest,
    verify_source,
)
from vodedge.edge.refusal import Refusal
from vodedge.edge.resp_headers import DOMAIN, preflight
from vodedge.edge.target import BadTarget, normalize_path, read_target
from vodedge.edge.tls import scheme_answer
from vodedge.edge.transforms import Transform, reseek, reseeks, transform_for
from vodedge.media.errors import MediaError

MEDIA_STATUS = {
    "invalid_seek": 400,
    "invalid_track": 400,
    "not_iso_bmff": 415,
    "not_flv": 415,
    "not_mpeg_audio": 415,
    "not_mpeg_ts": 415,
    "unsupported_media": 415,
    "no_audio_track": 422,
    "limit_exceeded": 422,
}


def media_refusal(
    exc: MediaError, *, domain: str | None = None, function: str | None = None
) -> Refusal:
    """The answer to a media error: its status by code, its one-line message."""
    status = MEDIA_STATUS.get(exc.code, 422)
    return Refusal(status, exc.code, str(exc), domain=domain, function=function)


@dataclass(frozen=True, slots=True)
class Resolved:
    """Everything the later stages need to know about a request, decided once."""

    domain: Domain
    # The canonical host (lower-case ASCII, no port): what chose the domain and the
    # key, and what the origin is sent as Host unless the domain names another.
    host: str
    path: str  # the decoded path: TTL rules, content types, transforms
    # The path percent-encoded in one canonical spelling (so %3F stays no query, and
    # /%73mall.mp4 is /small.mp4): the key's and the origin's.
    raw_path: str
    query: Mapping[str, str]
    transform: Transform | None
    key: str
    origin_query: str
    ttl_rule: TtlRule | None
    # limit_rate for this request: bytes per second after the free prefix, or None.
    rate: tuple[int, int] | None
    # A child edge's signed request for source bytes (parent_tier), None for a client's.
    source: SourceRequest | None = None

    @property
    def function(self) -> str:
        """The label used in metrics and logs."""
        return "plain" if self.transform is None else self.transform.function


def resolve(request: web.BaseRequest, config: NodeConfig) -> Resolved:
    """The request's domain, transform and cache key; Refusal when it is not served."""
    try:
        target = read_target(request.raw_path, request.headers.get("Host"))
    except BadTarget as exc:
        raise Refusal(400, exc.code, str(exc)) from None
    host = target.host_header
    domain = config.domain_for(host)
    if domain is None:
        # The Host is not echoed: an error page must not reflect what a client wrote.
        raise Refusal(403, "unknown_host", "this node serves no such domain")
    name = domain.name
    request[DOMAIN] = domain  # its set_resp_header rules apply to whatever is answered
    _refuse_repeated(request, name)
    if request.method == "OPTIONS" and (cors := preflight(domain, request)) is not None:
        raise cors
    source = _source_request(request, config, host, name)
    answer = None
    if source is None:  # an edge's request: the edge answered the client's scheme
        answer = scheme_answer(
            domain, config, secure=request.secure, host=host, path_qs=request.rel_url.raw_path_qs
        )
    if answer is not None:
        if answer.location is not None:
            raise Refusal.redirect(answer.location, answer.status, domain=name)
        raise Refusal(answer.status, answer.code, answer.message, domain=name)
    if request.method not in ("GET", "HEAD"):
        raise Refusal(
            405,
            "method_not_allowed",
            "only GET and HEAD are served",
            headers={"Allow": "GET, HEAD"},
            domain=name,
        )
    path = target.path
    if _bad_path(path):
        raise Refusal(400, "bad_path", "the path is not acceptable", domain=name)
    if source is not None:
        return _source_resolved(domain, host, target.raw_path, request.query, source)
    _refuse_client(domain, request)
    raw_path = target.raw_path
    auth = domain.url_auth
    if auth is not None:
        sent_path, _, sent_query = target.sent.partition("?")
        try:
            authorized = verify(auth, sent_path, sent_query, int(time.time()))
        except AuthDenied as denied:
            if not auth.exempts(request.remote or "", request.headers.get("X-Forwarded-For")):
                raise Refusal(403, denied.code, denied.reason, domain=name) from None
            # req_auth_ip_white: served unsigned
            authorized = Authorized(sent_path, sent_query)
        if authorized.path != sent_path:  # types B and C carry the signature in the path
            try:
                raw_path = normalize_path(authorized.path)
            except BadTarget as exc:
                raise Refusal(400, exc.code, str(exc), domain=name) from None
            path = unquote(raw_path, errors="replace")
            if _bad_path(path):
                raise Refusal(400, "bad_path", "the path is not acceptable", domain=name)
    query = request.query
    try:
        transform = transform_for(domain, path, query)
    except MediaError as exc:
        raise media_refusal(exc, domain=name, function="seek") from None
    return Resolved(
        domain=domain,
        host=host,
        path=path,
        raw_path=raw_path,
        query=query,
        transform=transform,
        key=cache_key(domain, host, raw_path, query),
        origin_query=urlencode(domain.origin_args(query)),
        ttl_rule=domain.ttl_rule_for(path),
        rate=_rate(domain, query),
    )


class ResolveMemo:
    """`resolve` remembered per (Host, request target, scheme) under one configuration.

    Only what the target and the configuration decide is remembered (the domain, the
    path's checks, the transform, the key). What a request's headers, address or the
    clock decide is checked again on every request: repeated headers, the IP list, the
    Referer, limit_rate by the hour. Signed URLs (their expiry) and a child edge's source
    requests are never remembered, nor is any request but GET and HEAD. A new
    configuration (a new `NodeConfig` object) starts an empty memo.

    A seek's target is remembered without the values of its seek arguments (see
    `_seek_shape`): a listener dragging the progress bar asks a new start every time,
    and only the transform depends on it (a domain's seek arguments never reach its
    cache key or its origin). A request of a remembered shape gets the remembered
    answer with the transform (and limit_rate) made from its own query.
    """

    def __init__(self, size: int = 2048, longest: int = 1024) -> None:
        self.size = size
        self.longest = longest  # longer targets are resolved each time (bounded memory)
        self._config: NodeConfig | None = None
        self._found: dict[tuple[str | None, str, bool], Resolved] = {}
        # A shape's model, and its transform when `reseek` may make the others' from it.
        self._shapes: dict[tuple[str | None, str, bool], tuple[Resolved, Transform | None]] = {}
        # Every seek argument name of the configuration's domains that seek.
        self._seek_names: frozenset[str] = frozenset()

    def resolve(self, request: web.BaseRequest, config: NodeConfig) -> Resolved:
        """What `resolve(request, config)` answers, from the memo when it may."""
        if config is not self._config:
            self._found = {}
            self._shapes = {}
            self._config = config
            self._seek_names = _seek_names(config)
        headers = request.headers
        if request.method not in ("GET", "HEAD") or SOURCE_HEADER in headers:
            return resolve(request, config)
        target = request.raw_path
        host = headers.get("Host")
        key = (host, target, request.secure)
        found = self._found.get(key)
        if found is not None:
            return _checked(request, found)
        shape = _seek_shape(target, self._seek_names) if self._seek_names else None
        if shape is not None:
            form = (host, shape[0], key[2])
            model = self._shapes.get(form)
            if model is not None:
                return _reseek(request, model[0], shape[1], model[1])
        found = resolve(request, config)
        if found.domain.url_auth is None and len(target) + len(host or "") <= self.longest:
            if shape is not None and _seeks_by(found.domain, shape[1]):
                if len(self._shapes) >= self.size:
                    self._shapes = {}
                names = shape[1].keys()
                base = found.transform if reseeks(found.domain, found.transform, names) else None
                self._shapes[form] = (found, base)
            else:
                if len(self._found) >= self.size:
                    self._found = {}
                self._found[key] = found
        return found


def _checked(request: web.BaseRequest, found: Resolved) -> Resolved:
    """A remembered answer after the checks of the request's own headers, address and
    clock."""
    domain = found.domain
    _check(request, domain)
    if domain.rate_limit_config is not None:
        found = dataclasses.replace(found, rate=_rate(domain, found.query))
    return found


def _check(request: web.BaseRequest, domain: Domain) -> None:
    """resolve's checks of what a remembered target does not decide, in its order."""
    request[DOMAIN] = domain
    _refuse_repeated(request, domain.name)
    _refuse_client(domain, request)


def _reseek(
    request: web.BaseRequest, model: Resolved, values: dict[str, str], base: Transform | None
) -> Resolved:
    """The answer to a target of `model`'s shape with these seek argument values: its
    query is the model's with them (names and order as written, no escapes), its
    transform made from it (from `base`, the model's, when not None: only the bounds
    differ); a refusal of the transform comes after the other checks."""
    query = _Reseeked(model.query, values)
    domain = model.domain
    refused = None
    try:
        if base is not None:
            transform = reseek(base, domain.seek, values)
        else:
            transform = transform_for(domain, model.path, query)
    except MediaError as exc:
        refused = media_refusal(exc, domain=domain.name, function="seek")
    _check(request, domain)
    if refused is not None:
        raise refused
    return Resolved(
        domain=domain,
        host=model.host,
        path=model.path,
        raw_path=model.raw_path,
        query=query,
        transform=transform,
        key=model.key,
        origin_query=model.origin_query,
        ttl_rule=model.ttl_rule,
        rate=None if domain.rate_limit_config is None else _rate(domain, query),
    )


class _Reseeked(Mapping[str, str]):
    """A remembered query with other values of its seek arguments (each name once, in
    its place), made only when read: only limit_rate reads a reseeked query, and a
    multidict made per drag of the progress bar costs more than it seems in a busy
    worker (its code and the copy fall out of the caches between requests)."""

    __slots__ = ("_made", "_model", "_values")

    def __init__(self, model: Mapping[str, str], values: dict[str, str]) -> None:
        self._model = model
        self._values = values
        self._made: MultiDict[str] | None = None

    def _query(self) -> MultiDict[str]:
        made = self._made
        if made is None:
            made = self._made = MultiDict(self._model)
            made.update(self._values)
        return made

    def __getitem__(self, name: str) -> str:
        return self._query()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._query())

    def __len__(self) -> int:
        return len(self._query())

    # As the multidict has them: a name given twice is two items (Mapping's would be one).
    def items(self) -> ItemsView[str, str]:
        return self._query().items()

    def values(self) -> ValuesView[str]:
        return self._query().values()

    def __eq__(self, other: object) -> bool:
        return self._query() == (other._query() if isinstance(other, _Reseeked) else other)

    __hash__ = None  # type: ignore[assignment]  # as a multidict: unhashable

    def __repr__(self) -> str:
        return repr(self._query())


# A seek argument's value that reads the same raw and decoded (yarl's parse): 1 to 32
# digits and dots, as players write seconds (a strip, cheaper than a regex's match).
_PLAIN_VALUE = "0123456789."


def _seek_names(config: NodeConfig) -> frozenset[str]:
    domains = [*config.domains.values()]
    if config.default_domain is not None:
        domains.append(config.default_domain)
    names: set[str] = set()
    for domain in domains:
        if domain.seek.enabled:
            names |= domain.seek.arg_names
    return frozenset(names)


def _seek_shape(target: str, names: frozenset[str]) -> tuple[str, dict[str, str]] | None:
    """The target with the values of its seek arguments left out, and those values; None
    when it has none, or when its query could parse otherwise than piece by piece as
    written (escapes, "+", a fragment, a name given twice, a value not plainly digits)."""
    path, mark, query = target.partition("?")
    if not mark or not path.startswith("/") or "%" in query or "+" in query or "#" in query:
        return None
    pieces = query.split("&")
    values: dict[str, str] = {}
    for at, piece in enumerate(pieces):
        name, equals, value = piece.partition("=")
        if name not in names:
            continue
        plain = 0 < len(value) <= 32 and not value.strip(_PLAIN_VALUE)
        if not equals or name in values or not plain:
            return None
        values[name] = value
        pieces[at] = name + "="
    if not values:
        return None
    return path + "?" + "&".join(pieces), values


def _seeks_by(domain: Domain, values: Mapping[str, str]) -> bool:
    """Whether the arguments in `values` are `domain`'s seek arguments: read by the
    transform alone (and by limit_rate, made again), never by the cache key or the
    origin's query."""
    seek = domain.seek
    return seek.enabled and all(name in seek.arg_names for name in values)


def _source_request(
    request: web.BaseRequest, config: NodeConfig, host: str, domain: str
) -> SourceRequest | None:
    """The child edge's source request this is, None for a client's; Refusal when its
    signature does not verify (a client can gain nothing by sending the header)."""
    values = request.headers.getall(SOURCE_HEADER, ())
    if not values:
        return None
    if len(values) > 1:
        raise Refusal(400, "repeated_header", f"{SOURCE_HEADER} may appear once", domain=domain)
    try:
        return verify_source(config.tier.secret, host, request.raw_path, values[0], time.time())
    except SourceDenied as exc:
        raise Refusal(403, DENIED, str(exc), domain=domain) from None


def _source_resolved(
    domain: Domain, host: str, raw_path: str, query: Mapping[str, str], source: SourceRequest
) -> Resolved:
    """An edge's source request: the plain object, whatever arguments its URL carries."""
    return Resolved(
        domain=domain,
        host=host,
        path=unquote(raw_path, errors="replace"),
        raw_path=raw_path,
        query=query,
        transform=None,
        key=cache_key(domain, host, raw_path, query),
        origin_query=urlencode(domain.origin_args(query)),
        ttl_rule=domain.ttl_rule_for(unquote(raw_path, errors="replace")),
        rate=None,
        source=source,
    )


def cache_key(domain: Domain, host: str, raw_path: str, query: Mapping[str, str]) -> str:
    """The cache key of a request: domain, path as sent (so %3F is not a query) and the
    kept query arguments.

    A wildcard domain whose origin is asked with the client's Host keys objects
    by that Host: the origin may answer each Host differently.
    """
    owner = domain.name
    if (
        "*" in owner
        and domain.origin_host is None
        and any(spec.kind != "dir" and not spec.host_header for spec in domain.origins)
    ):
        owner = normalize_host(host) or owner
    args = domain.cache_key_args(query)
    with contextlib.suppress(BadTarget):  # purges name paths as users write them
        raw_path = normalize_path(raw_path)
    return f"{owner}{raw_path}" + ("?" + urlencode(args) if args else "")


def _rate(domain: Domain, query: Mapping[str, str]) -> tuple[int, int] | None:
    """limit_rate for this request (its query may set the rate), or None."""
    config = domain.rate_limit_config
    if config is None:
        return None
    rate = config.rate_for(query, time.localtime().tm_hour)
    return None if rate is None else (rate, config.after or 0)


# Headers that may appear once: two of them are two answers to one question (RFC 9110
# 5.3), so the request is refused rather than one picked. Host is aiohttp's to refuse.
SINGLE_HEADERS = ("Range", "If-Range", "If-Modified-Since", "Referer")


def _refuse_repeated(request: web.BaseRequest, domain: str) -> None:
    headers = request.headers
    for name in SINGLE_HEADERS:
        # Most requests carry none of them: a lookup, not a list made, for each.
        if name in headers and len(headers.getall(name)) > 1:
            raise Refusal(400, "repeated_header", f"{name} may appear once", domain=domain)


def _refuse_client(domain: Domain, request: web.BaseRequest) -> None:
    """Refuse a client the domain's IP list or Referer policy turns away."""
    if domain.ip_acl is None and domain.referer_policy is None:
        return  # most domains: nothing to look at
    name = domain.name
    refused = _ip_refusal(domain, request)
    if refused is not None:
        raise Refusal(refused, "ip_denied", "your address may not fetch this", domain=name)
    if not domain.referer_allowed(request.headers.get("Referer")):
        redirect = domain.referer_policy.redirect_url if domain.referer_policy else None
        if redirect:
            raise Refusal.redirect(redirect, domain=name)
        raise Refusal(403, "referer_denied", "this referer may not fetch this", domain=name)


def _ip_refusal(domain: Domain, request: web.BaseRequest) -> int | None:
    """The status refusing this client by the domain's IP list, None when allowed.

    Which addresses count follows ip_acl_xfwd: the first X-Forwarded-For
    address (on, the default), the connection's (off), or every one (all).
    """
    acl = domain.ip_acl
    if acl is None:
        return None
    remote = request.remote or ""
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if acl.xfwd == "off" or not forwarded:
        addresses = [remote]
    elif acl.xfwd == "on":
        addresses = forwarded[:1]
    else:
        addresses = [remote, *forwarded]
    return None if all(acl.allows(a) for a in addresses) else int(acl.status)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def _bad_path(path: str) -> bool:
    if not path.startswith("/") or _UNSAFE.search(path):
        return True
    # A "." or ".." segment follows a "/": most paths have none to look for.
    return "/." in path and any(segment in (".", "..") for segment in path.split("/"))
