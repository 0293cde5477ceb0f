"""A domain's functions turned into the typed settings the edge reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .access import IpAcl, Network, RefererPolicy
from .errors import CONFLICTING_FUNCTIONS, ConfigError
from .functions import CheckedFunction, Function, check_functions
from .headers import ResponseHeaders, response_headers
from .query import AUDIO_ONLY_ARG, AUDIO_TRACK_ARG, QueryPolicy
from .urlauth import AuthKind, UrlAuth

RangeMode = Literal["on", "off", "force"]
MIN_RATE = 100 << 10  # the docs: a limit under 100k is applied as 100k


@dataclass(frozen=True)
class SeekConfig:
    """video_seek: whether it is on, FLV by time or bytes, and the parameter names."""

    enabled: bool = False
    flv_by_time: bool = False
    mp4_start_arg: str = "start"
    mp4_end_arg: str = "end"
    flv_start_arg: str = "start"
    flv_end_arg: str = "end"

    @property
    def arg_names(self) -> frozenset[str]:
        """Every query parameter name seeking reads."""
        return frozenset(
            (self.mp4_start_arg, self.mp4_end_arg, self.flv_start_arg, self.flv_end_arg)
        )


@dataclass(frozen=True)
class PreviewConfig:
    """ali_video_preview: the query parameter carrying the preview length in seconds, and
    the longest preview served (vodedge_preview_max; None: as long as asked)."""

    argument: str
    max_seconds: int | None = None

    def length(self, asked: float) -> float:
        """The preview served for a URL asking `asked` seconds."""
        return asked if self.max_seconds is None else min(asked, float(self.max_seconds))


@dataclass(frozen=True)
class TtlRule:
    """One filetype_based_ttl_set or path_based_ttl_set rule."""

    ttl: int
    weight: int
    order: int
    file_types: frozenset[str] = frozenset()
    path: str | None = None
    origin_first: bool = False  # swift_origin_cache_high: the origin's cache headers win
    ignore_origin_no_cache: bool = False  # swift_no_cache_low
    follow_to_client: bool = False  # swift_follow_cachetime: send our TTL to clients
    force_revalidate: bool = False  # with ttl 0: cache, but revalidate every time

    def matches(self, path: str) -> bool:
        """Whether this rule covers the URL path `path` (no query string)."""
        if self.path is not None:
            prefix = self.path.rstrip("/")
            return path == self.path or path.startswith(prefix + "/")
        name = path.rsplit("/", 1)[-1]
        return "." in name and name.rsplit(".", 1)[1] in self.file_types


@dataclass(frozen=True)
class RateLimit:
    """limit_rate: bytes per second per request, by default or from a query parameter."""

    rate: int
    after: int | None = None
    arg: str | None = None
    unit: int = 1 << 10
    start_hour: int = 0
    end_hour: int = 24

    def rate_for(self, query: Mapping[str, str], hour: int) -> int | None:
        """The limit for a request with `query` at local `hour` (0..23); None: unlimited."""
        if not self.start_hour <= hour < self.end_hour:
            return None
        rate = self.rate
        given = query.get(self.arg) if self.arg is not None else None
        if given is not None and given.isascii() and given.isdigit() and len(given) <= 12:
            rate = int(given) * self.unit
        return None if rate == 0 else max(rate, MIN_RATE)


@dataclass(frozen=True)
class SchemeRedirect:
    """https_force / http_force: requests in the other scheme are sent to `scheme`."""

    scheme: Literal["https", "http"]
    status: int = 301


@dataclass(frozen=True)
class Policy:
    """Everything the edge asks of a domain's functions, computed once."""

    audio_split: bool = False
    seek: SeekConfig = SeekConfig()
    preview: PreviewConfig | None = None
    range_mode: RangeMode = "on"
    origin_host: str | None = None
    ttl_rules: tuple[TtlRule, ...] = ()
    query: QueryPolicy = field(default_factory=QueryPolicy)
    referer: RefererPolicy | None = None
    ip_acl: IpAcl | None = None
    rate: RateLimit | None = None
    url_auth: UrlAuth | None = None
    scheme_redirect: SchemeRedirect | None = None
    listen_page: bool = False
    response_headers: ResponseHeaders = field(default_factory=ResponseHeaders)

    def ttl_rule_for(self, path: str) -> TtlRule | None:
        """The rule the CDN applies: highest weight, then the earliest configured."""
        best: TtlRule | None = None
        for rule in self.ttl_rules:
            if rule.matches(path) and (best is None or rule.weight > best.weight):
                best = rule
        return best


def _on(checked: CheckedFunction, name: str) -> bool:
    return checked.get(name, str) == "on"


def _ttl_rule(checked: CheckedFunction, order: int) -> TtlRule:
    return TtlRule(
        ttl=checked.need("ttl", int),
        weight=checked.need("weight", int),
        order=order,
        file_types=frozenset(checked.get("file_type", tuple) or ()),
        path=checked.get("path", str),
        origin_first=_on(checked, "swift_origin_cache_high"),
        ignore_origin_no_cache=_on(checked, "swift_no_cache_low"),
        follow_to_client=_on(checked, "swift_follow_cachetime"),
        force_revalidate=_on(checked, "force_revalidate"),
    )


def _referer(checked: CheckedFunction) -> RefererPolicy:
    white = checked.name == "referer_white_list_set"
    listed = checked.need("refer_domain_allow_list" if white else "refer_domain_deny_list", tuple)
    return RefererPolicy(
        mode="allow" if white else "deny",
        patterns=tuple(str(p) for p in listed),
        allow_empty=_on(checked, "allow_empty"),
        exact=_on(checked, "disable_ast"),
        ignore_scheme=_on(checked, "ignore_scheme"),
        redirect_url=checked.get("redirect_url", str),
    )


def _ip_acl(checked: CheckedFunction) -> IpAcl:
    networks: tuple[Network, ...] = checked.need("ip_list", tuple)
    given = checked.need("ip_acl_xfwd", str)
    xfwd: Literal["on", "off", "all"] = (
        "all" if given == "all" else "off" if given == "off" else "on"
    )
    return IpAcl(
        mode="deny" if checked.name == "ip_black_list_set" else "allow",
        networks=networks,
        status=checked.get("customize_response_status_code", int) or 403,
        xfwd=xfwd,
    )


def url_auth_of(checked: CheckedFunction) -> UrlAuth | None:
    """The signed-URL settings of a checked aliauth function; None for no_auth."""
    kind = checked.need("auth_type", str)
    if kind not in ("type_a", "type_b", "type_c", "type_f"):
        return None
    auth_kind: AuthKind = (
        "type_a" if kind == "type_a" else "type_b" if kind == "type_b"
        else "type_c" if kind == "type_c" else "type_f"
    )  # fmt: skip
    keys = tuple(k for k in (checked.get("auth_key1", str), checked.get("auth_key2", str)) if k)
    given = checked.need("req_auth_ip_acl_xfwd", str)
    xfwd: Literal["on", "off", "all"] = (
        "all" if given == "all" else "off" if given == "off" else "on"
    )
    return UrlAuth(
        kind=auth_kind,
        keys=keys,
        delta=checked.need("ali_auth_delta", int),
        exempt=checked.get("req_auth_ip_white", tuple) or (),
        xfwd=xfwd,
        sign_param=checked.need("sign_param", str),
        time_param=checked.need("time_param", str),
        time_format="dec" if checked.need("time_format", str) == "dec" else "hex",
        encoded_path=checked.need("path_encoding", str) == "on",
        signed_args=tuple(checked.get("vodedge_signed_args", tuple) or ()),
    )


def _rate(checked: CheckedFunction) -> RateLimit:
    return RateLimit(
        rate=checked.need("ali_limit_rate", int),
        after=checked.get("ali_limit_rate_after", int),
        arg=checked.get("traffic_limit_arg", str),
        # The docs name no default unit for traffic_limit_arg; k is ours.
        unit=(1 << 20) if checked.get("traffic_limit_unit", str) == "m" else (1 << 10),
        start_hour=checked.need("ali_limit_start_hour", int),
        end_hour=checked.need("ali_limit_end_hour", int),
    )


def _scheme_redirect(checked: CheckedFunction) -> SchemeRedirect | None:
    if not _on(checked, "enable"):
        return None
    if checked.name == "https_force":
        return SchemeRedirect("https", checked.need("https_rewrite", int))
    return SchemeRedirect("http", checked.need("http_rewrite", int))


def _query(checked: CheckedFunction | None, consumed: frozenset[str]) -> QueryPolicy:
    if checked is None:
        return QueryPolicy(consumed=consumed)
    keep_origin = _on(checked, "keep_oss_args")
    if checked.name == "ali_remove_args":
        names = frozenset(checked.need("ali_remove_args", tuple))
        return QueryPolicy("remove", names, keep_origin, consumed)
    names = frozenset(checked.get("hashkey_args", tuple) or ())
    # The docs: the kept list outranks disable=on (ignore all); with neither, keep all.
    mode: Literal["keep", "none", "all"] = (
        "keep" if names else "none" if _on(checked, "disable") else "all"
    )
    return QueryPolicy(mode, names, keep_origin, consumed)


def build_policy(functions: Sequence[Function]) -> Policy:
    """The typed settings of a function list; ConfigError (located) if it is invalid."""
    checked = check_functions(functions)
    by_name = {c.name: c for c in checked}
    split = by_name.get("ali_video_split")
    seek = SeekConfig()
    if (found := by_name.get("video_seek")) is not None:
        seek = SeekConfig(
            enabled=_on(found, "enable"),
            flv_by_time=_on(found, "flv_seek_by_time"),
            mp4_start_arg=found.need("mp4_seek_start", str),
            mp4_end_arg=found.need("mp4_seek_end", str),
            flv_start_arg=found.need("flv_seek_start", str),
            flv_end_arg=found.need("flv_seek_end", str),
        )
    preview = None
    if (found := by_name.get("ali_video_preview")) is not None and _on(found, "enable"):
        preview = PreviewConfig(
            found.need("ali_video_preview_argument", str), found.get("vodedge_preview_max", int)
        )
        if seek.enabled and preview.argument in seek.arg_names:
            index = [f.name for f in functions].index("ali_video_preview")
            raise ConfigError(
                CONFLICTING_FUNCTIONS,
                f"ali_video_preview: ali_video_preview_argument {preview.argument} "
                "is also a video_seek parameter",
                index=index,
                arg="ali_video_preview_argument",
            )
    consumed = {AUDIO_ONLY_ARG, AUDIO_TRACK_ARG}
    # Generic names such as `start` stay ordinary parameters while their function is off.
    consumed |= seek.arg_names if seek.enabled else set()
    consumed |= {preview.argument} if preview is not None else set()
    url_auth = url_auth_of(by_name["aliauth"]) if "aliauth" in by_name else None
    # The signature never reaches a cache key or the origin (the docs: "restored to the
    # original URL ... to raise the cache hit ratio").
    consumed |= url_auth.signature_args if url_auth is not None else set()
    range_fn = by_name.get("range")
    given = range_fn.need("enable", str) if range_fn is not None else "on"
    range_mode: RangeMode = "force" if given == "force" else "on" if given == "on" else "off"
    host_fn = by_name.get("set_req_host_header")
    referer = next((c for c in checked if c.name.startswith("referer_")), None)
    ip_fn = next((c for c in checked if c.name.startswith("ip_")), None)
    args_fn = next((c for c in checked if c.name in ("set_hashkey_args", "ali_remove_args")), None)
    rate_fn = by_name.get("limit_rate")
    force = next((c for c in checked if c.name in ("https_force", "http_force")), None)
    listen = by_name.get("vodedge_listen_page")
    headers = response_headers(
        [(index, c.values) for index, c in enumerate(checked) if c.name == "set_resp_header"]
    )
    return Policy(
        audio_split=split is not None and _on(split, "enable"),
        seek=seek,
        preview=preview,
        range_mode=range_mode,
        origin_host=host_fn.need("domain_name", str) if host_fn is not None else None,
        ttl_rules=tuple(
            _ttl_rule(c, order) for order, c in enumerate(checked) if c.name.endswith("_ttl_set")
        ),
        query=_query(args_fn, frozenset(consumed)),
        referer=_referer(referer) if referer is not None else None,
        ip_acl=_ip_acl(ip_fn) if ip_fn is not None else None,
        rate=_rate(rate_fn) if rate_fn is not None else None,
        scheme_redirect=_scheme_redirect(force) if force is not None else None,
        url_auth=url_auth,
        listen_page=listen is not None and _on(listen, "enable"),
        response_headers=headers,
    )
