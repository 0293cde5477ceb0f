"""What the edge reads from a domain: TTLs, cache keys, hosts, referers, IPs, rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from vodedge.config import (
    ConfigError,
    Domain,
    Function,
    ListenAddress,
    NodeConfig,
    OriginSpec,
    normalize_host,
    zero_config,
)

ORIGIN = (OriginSpec.from_url("http://127.0.0.1:8000"),)


def domain(*functions: Function, name: str = "video.example.com", **fields: object) -> Domain:
    return Domain(name, ORIGIN, functions, **fields)  # type: ignore[arg-type]


# --- video functions -----------------------------------------------------------------


def test_without_functions_everything_is_off() -> None:
    """...but ranged origin fetches, on by default for new domains (issue 13)."""
    plain = domain()
    assert not plain.audio_split
    assert not plain.seek.enabled and plain.seek.mp4_start_arg == "start"
    assert plain.preview is None and plain.range_mode == "on"
    assert plain.origin_host is None and plain.rate_limit is None
    assert plain.ttl_for("/a.mp4") is None
    assert plain.referer_allowed(None) and plain.ip_allowed("192.0.2.1")


def test_video_functions() -> None:
    d = domain(
        Function.of("ali_video_split", enable="on"),
        Function.of("video_seek", enable="on", flv_seek_by_time="on", mp4_seek_start="s"),
        Function.of("ali_video_preview", enable="on", ali_video_preview_argument="trial"),
        Function.of("range", enable="force"),
        Function.of("set_req_host_header", domain_name="Origin.Example.com"),
    )
    assert d.audio_split
    assert d.seek.enabled and d.seek.flv_by_time
    assert (d.seek.mp4_start_arg, d.seek.mp4_end_arg) == ("s", "end")
    assert (d.seek.flv_start_arg, d.seek.flv_end_arg) == ("start", "end")
    assert d.preview is not None and d.preview.argument == "trial"
    assert d.range_mode == "force"
    assert d.origin_host == "origin.example.com"


def test_switched_off_functions() -> None:
    d = domain(
        Function.of("ali_video_split", enable="off"),
        Function.of("video_seek", enable="off"),
        Function.of("ali_video_preview", enable="off", ali_video_preview_argument="p"),
    )
    assert not d.audio_split and not d.seek.enabled and d.preview is None


def test_origin_host_precedence() -> None:
    with_host = OriginSpec.from_url("http://10.0.0.1", host_header="per-origin.example")
    plain = OriginSpec.from_url("http://10.0.0.2")
    d = Domain(
        "video.example.com",
        (with_host, plain),
        (Function.of("set_req_host_header", domain_name="domain.example"),),
    )
    assert d.origin_host_for(with_host, "video.example.com") == "per-origin.example"
    assert d.origin_host_for(plain, "video.example.com") == "domain.example"
    assert domain().origin_host_for(plain, "video.example.com") == "video.example.com"


# --- TTLs ------------------------------------------------------------------------------


def test_ttl_by_file_type_and_path() -> None:
    d = domain(
        Function.of("filetype_based_ttl_set", ttl="100", file_type="mp4,flv"),
        Function.of("path_based_ttl_set", ttl="200", path="/live"),
    )
    assert d.ttl_for("/a/b.mp4") == 100
    assert d.ttl_for("/a/b.flv") == 100
    assert d.ttl_for("/a/b.MP4") is None  # the docs: file types are case-sensitive
    assert d.ttl_for("/a/b.mp4x") is None
    assert d.ttl_for("/a/mp4") is None
    assert d.ttl_for("/a.mp4/b") is None
    assert d.ttl_for("/live") == 200
    assert d.ttl_for("/live/x.ts") == 200
    assert d.ttl_for("/livestream/x.ts") is None  # a directory, not a string prefix


def test_ttl_highest_weight_wins_whatever_the_kind() -> None:
    d = domain(
        Function.of("path_based_ttl_set", ttl="10", path="/image", weight="50"),
        Function.of("filetype_based_ttl_set", ttl="20", file_type="jpg", weight="90"),
    )
    # The docs' own example: /image/ weight 50 and .jpg weight 90 both match image/a.jpg.
    assert d.ttl_for("/image/a.jpg") == 20
    assert d.ttl_for("/image/a.png") == 10


def test_ttl_same_weight_earliest_configured_wins() -> None:
    d = domain(
        Function.of("path_based_ttl_set", ttl="10", path="/static", weight="60"),
        Function.of("filetype_based_ttl_set", ttl="20", file_type="js", weight="60"),
    )
    assert d.ttl_for("/static/app.js") == 10
    swapped = domain(*reversed(d.functions))
    assert swapped.ttl_for("/static/app.js") == 20


def test_ttl_default_weight_is_one_and_root_covers_all() -> None:
    d = domain(
        Function.of("path_based_ttl_set", ttl="5", path="/"),
        Function.of("filetype_based_ttl_set", ttl="7", file_type="mp4", weight="2"),
    )
    assert d.ttl_for("/anything") == 5
    assert d.ttl_for("/x/y.mp4") == 7
    rule = d.ttl_rule_for("/x/y.mp4")
    assert rule is not None and rule.weight == 2 and not rule.force_revalidate


def test_ttl_zero_with_force_revalidate() -> None:
    d = domain(
        Function.of("filetype_based_ttl_set", ttl="0", file_type="m3u8", force_revalidate="on")
    )
    rule = d.ttl_rule_for("/a.m3u8")
    assert rule is not None and rule.ttl == 0 and rule.force_revalidate


# --- cache key and origin parameters -----------------------------------------------------------

QUERY = {"b": "2", "ali_audio_only": "1", "a": "1", "start": "10", "uid": "7", "p": "30"}


def test_all_parameters_by_default_but_ali_audio_only() -> None:
    d = domain()
    assert d.cache_key_args(QUERY) == [
        ("a", "1"),
        ("b", "2"),
        ("p", "30"),
        ("start", "10"),
        ("uid", "7"),
    ]
    assert d.origin_args(QUERY) == [
        ("b", "2"),
        ("a", "1"),
        ("start", "10"),
        ("uid", "7"),
        ("p", "30"),
    ]


def test_video_parameters_are_consumed_when_their_function_is_on() -> None:
    d = domain(
        Function.of("video_seek", enable="on"),
        Function.of("ali_video_preview", enable="on", ali_video_preview_argument="p"),
    )
    assert d.cache_key_args(QUERY) == [("a", "1"), ("b", "2"), ("uid", "7")]
    assert d.origin_args(QUERY) == [("b", "2"), ("a", "1"), ("uid", "7")]
    # Custom names are consumed; the defaults are then ordinary parameters again.
    custom = domain(Function.of("video_seek", enable="on", mp4_seek_start="s", flv_seek_start="s"))
    assert ("start", "10") in custom.cache_key_args(QUERY)
    assert ("s", "1") not in custom.cache_key_args({"s": "1"})


def test_cache_key_is_order_independent() -> None:
    d = domain()
    assert d.cache_key_args({"a": "1", "b": "2"}) == d.cache_key_args({"b": "2", "a": "1"})


@pytest.mark.parametrize(
    ("args", "key", "origin"),
    [
        # Ignore all parameters, keep them all for the origin.
        (
            {"disable": "on", "keep_oss_args": "on"},
            [],
            [("b", "2"), ("a", "1"), ("uid", "7")],
        ),
        # Ignore all, and the origin gets what the key has: nothing.
        ({"disable": "on", "keep_oss_args": "off"}, [], []),
        # Keep only `a` (the list outranks disable, on or off).
        (
            {"hashkey_args": "a", "disable": "on", "keep_oss_args": "off"},
            [("a", "1")],
            [("a", "1")],
        ),
        (
            {"hashkey_args": "a,zzz", "disable": "off", "keep_oss_args": "on"},
            [("a", "1")],
            [("b", "2"), ("a", "1"), ("uid", "7")],
        ),
        # Neither ignore nor a list: every parameter.
        (
            {"disable": "off", "keep_oss_args": "off"},
            [("a", "1"), ("b", "2"), ("uid", "7")],
            [("b", "2"), ("a", "1"), ("uid", "7")],
        ),
    ],
)
def test_set_hashkey_args(
    args: dict[str, str], key: list[tuple[str, str]], origin: list[tuple[str, str]]
) -> None:
    d = domain(Function.of("set_hashkey_args", **args))
    query = {"b": "2", "ali_audio_only": "1", "a": "1", "uid": "7"}
    assert d.cache_key_args(query) == key
    assert d.origin_args(query) == origin


def test_ali_remove_args() -> None:
    query = {"b": "2", "ali_audio_only": "1", "a": "1", "uid": "7", "token": "x"}
    keep = domain(Function.of("ali_remove_args", ali_remove_args="uid token", keep_oss_args="on"))
    assert keep.cache_key_args(query) == [("a", "1"), ("b", "2")]
    assert keep.origin_args(query) == [("b", "2"), ("a", "1"), ("uid", "7"), ("token", "x")]
    drop = domain(Function.of("ali_remove_args", ali_remove_args="uid token", keep_oss_args="off"))
    assert drop.origin_args(query) == [("b", "2"), ("a", "1")]


def test_video_parameters_never_reach_key_or_origin_whatever_the_key_rules() -> None:
    d = domain(
        Function.of("video_seek", enable="on"),
        Function.of(
            "set_hashkey_args",
            hashkey_args="start,ali_audio_only",
            disable="on",
            keep_oss_args="on",
        ),
    )
    assert d.cache_key_args(QUERY) == []
    assert ("start", "10") not in d.origin_args(QUERY)
    assert ("ali_audio_only", "1") not in d.origin_args(QUERY)


# --- referers ------------------------------------------------------------------------


def white(listed: str, **options: str) -> Domain:
    return domain(Function.of("referer_white_list_set", refer_domain_allow_list=listed, **options))


def black(listed: str, **options: str) -> Domain:
    return domain(Function.of("referer_black_list_set", refer_domain_deny_list=listed, **options))


@pytest.mark.parametrize(
    ("referer", "allowed"),
    [
        ("https://example.com/page", True),
        ("http://example.com", True),
        ("https://www.example.com/x?y=1", True),  # suffix match covers subdomains
        ("https://a.b.example.com/", True),
        ("https://EXAMPLE.com/", True),
        ("https://badexample.com/", False),
        ("https://example.com.evil.net/", False),
        ("https://evil.net/?example.com", False),
        ("https://user@evil.net/", False),
        ("https://example.com@evil.net/", False),
        ("example.com", False),  # no scheme: not a valid referer unless ignore_scheme
        ("ftp://example.com/", False),
        ("https://[::1]/", False),
        ("garbage", False),
        ("", False),  # empty: allow_empty defaults to off on a white list
        (None, False),
    ],
)
def test_referer_white_list(referer: str | None, allowed: bool) -> None:
    assert white("example.com").referer_allowed(referer) is allowed


def test_referer_white_list_options() -> None:
    assert white("a.com", allow_empty="on").referer_allowed(None)
    assert white("a.com", allow_empty="on").referer_allowed("  ")
    assert white("a.com", ignore_scheme="on").referer_allowed("www.a.com/page")
    exact = white("example.com,a*b.example.org", disable_ast="on")
    assert exact.referer_allowed("https://example.com/")
    assert not exact.referer_allowed("https://www.example.com/")
    assert exact.referer_allowed("https://axxb.example.org/")
    assert exact.referer_allowed("https://ab.example.org/")
    assert not exact.referer_allowed("https://x.axb.example.org/")
    suffix = white("a*b.example.org")
    assert suffix.referer_allowed("https://x.axb.example.org/")
    wildcard = white("*.example.net")
    assert wildcard.referer_allowed("https://cdn.example.net/")
    assert not wildcard.referer_allowed("https://example.net/")


def test_referer_ports_and_idna() -> None:
    ported = white("example.com:8080")
    assert ported.referer_allowed("http://example.com:8080/")
    assert not ported.referer_allowed("http://example.com/")
    assert white("example.com:443").referer_allowed("https://example.com/")
    idn = white("bücher.example")
    assert idn.referer_allowed("https://xn--bcher-kva.example/")
    assert idn.referer_allowed("https://bücher.example/")


def test_referer_black_list() -> None:
    d = black("evil.net,*.spam.org")
    assert not d.referer_allowed("https://evil.net/x")
    assert not d.referer_allowed("https://www.evil.net/x")
    assert not d.referer_allowed("https://a.spam.org/")
    assert d.referer_allowed("https://good.com/")
    assert d.referer_allowed(None)  # our default for the black list's allow_empty: on
    assert not black("evil.net", allow_empty="off").referer_allowed("")


def test_referer_redirect_url_is_exposed() -> None:
    policy = white("a.com", redirect_url="https://a.com/hotlink").referer_policy
    assert policy is not None and policy.redirect_url == "https://a.com/hotlink"


# --- IP lists -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("192.168.0.7", True),
        ("192.168.0.255", True),  # 192.168.0.1/24 covers the whole /24
        ("192.168.1.1", False),
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 is the IPv4 address
        ("2001:db8::5", True),
        ("[2001:db8::5]", True),
        ("2001:db9::5", False),
        ("not an ip", False),  # fails closed
        ("", False),
    ],
)
def test_ip_allow_list(ip: str, allowed: bool) -> None:
    d = domain(Function.of("ip_allow_list_set", ip_list="192.168.0.1/24, 10.0.0.0/8,2001:db8::/32"))
    assert d.ip_allowed(ip) is allowed


def test_ip_black_list() -> None:
    d = domain(
        Function.of(
            "ip_black_list_set",
            ip_list="203.0.113.9,2001:db8::/64",
            customize_response_status_code="429",
            ip_acl_xfwd="off",
        )
    )
    assert not d.ip_allowed("203.0.113.9")
    assert not d.ip_allowed("2001:db8::1")
    assert d.ip_allowed("203.0.113.10")
    assert d.ip_allowed("2001:db8:0:1::1")
    assert not d.ip_allowed("bogus")  # an unparsable address is refused, listed or not
    assert d.ip_acl is not None and (d.ip_acl.status, d.ip_acl.xfwd) == (429, "off")


def test_ip_white_list_set_is_the_allow_list() -> None:
    d = domain(Function.of("ip_white_list_set", ip_list="127.0.0.1"))
    assert d.ip_allowed("127.0.0.1") and not d.ip_allowed("127.0.0.2")
    assert d.ip_acl is not None and d.ip_acl.status == 403 and d.ip_acl.xfwd == "on"


# --- rate limits ----------------------------------------------------------------------


def test_rate_limit() -> None:
    assert domain(Function.of("limit_rate", ali_limit_rate="1m")).rate_limit == 1 << 20
    # The docs: under 100k is applied as 100k; 0 means no limit.
    assert domain(Function.of("limit_rate", ali_limit_rate="10k")).rate_limit == 100 << 10
    assert domain(Function.of("limit_rate", ali_limit_rate="0k")).rate_limit is None
    assert domain(Function.of("limit_rate", ali_limit_rate="204800")).rate_limit == 200 << 10


def test_rate_limit_from_a_parameter_and_hours() -> None:
    d = domain(
        Function.of(
            "limit_rate",
            ali_limit_rate="1m",
            traffic_limit_arg="rate",
            traffic_limit_unit="k",
            ali_limit_start_hour="20",
            ali_limit_end_hour="23",
            ali_limit_rate_after="1m",
        )
    )
    config = d.rate_limit_config
    assert config is not None and config.after == 1 << 20
    assert config.rate_for({"rate": "200"}, 21) == 200 << 10
    assert config.rate_for({"rate": "1"}, 21) == 100 << 10
    assert config.rate_for({"rate": "x"}, 21) == 1 << 20
    assert config.rate_for({}, 21) == 1 << 20
    assert config.rate_for({}, 23) is None and config.rate_for({}, 19) is None
    free = domain(Function.of("limit_rate", ali_limit_rate="0k", traffic_limit_arg="rate"))
    assert free.rate_limit_config is not None
    assert free.rate_limit_config.rate_for({}, 0) is None
    assert free.rate_limit_config.rate_for({"rate": "500"}, 0) == 500 << 10


# --- domains, hosts and the node ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("  example.com  ", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example:80", "xn--bcher-kva.example"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[2001:DB8::1]", "2001:db8::1"),
        ("", None),
        (":80", None),
        ("example.com:http", None),
        ("exa mple.com", None),
        ("example..com", None),
        ("[::1", None),
        ("[nope]:80", None),
        ("a/b", None),
    ],
)
def test_normalize_host(header: str, host: str | None) -> None:
    assert normalize_host(header) == host


def node() -> NodeConfig:
    return NodeConfig.with_domains(
        domain(name="video.example.com"),
        domain(name="*.example.com"),
        domain(name="Stopped.Example.com", enabled=False),
        domain(name="*.cdn.example.com"),
        domain(name="bücher.example"),
        domain(name="127.0.0.1"),
    )


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("video.example.com", "video.example.com"),
        ("VIDEO.example.com:8080", "video.example.com"),
        ("other.example.com", "*.example.com"),
        ("a.cdn.example.com", "*.cdn.example.com"),
        ("cdn.example.com", "*.example.com"),
        ("b.a.example.com", None),  # a wildcard covers one label, as on the CDN
        ("example.com", None),
        ("stopped.example.com", None),  # stopped: refused, not handed to the wildcard
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("elsewhere.org", None),
        ("", None),
        ("bad host", None),
    ],
)
def test_domain_for(host: str, name: str | None) -> None:
    found = node().domain_for(host)
    assert (found.name if found is not None else None) == name


def test_lookup_finds_stopped_domains() -> None:
    found = node().lookup("stopped.example.com")
    assert found is not None and not found.enabled


def test_default_domain_serves_every_other_host() -> None:
    catch_all = domain(name="*")
    n = NodeConfig.with_domains(domain(name="a.example.com"), catch_all)
    assert n.default_domain == catch_all
    assert n.domain_for("anything.at.all") == catch_all
    assert n.domain_for("a.example.com") is not None
    assert n.domain_for("a.example.com").name == "a.example.com"  # type: ignore[union-attr]
    assert n.domain_for("bad host") is None


@pytest.mark.parametrize(
    "name", ["", "exa mple.com", "*", "**.example.com", "a.*.example.com", "example.com:80"]
)
def test_bad_domain_names_are_refused(name: str) -> None:
    if name == "*":
        # `*` is the catch-all; it may not be filed among named domains.
        with pytest.raises(ConfigError):
            NodeConfig(domains={"*": domain(name="*")})
        return
    with pytest.raises(ConfigError):
        domain(name=name)


def test_domain_needs_an_origin_and_a_known_fallback() -> None:
    with pytest.raises(ConfigError):
        Domain("example.com", (), ())
    with pytest.raises(ConfigError):
        domain(fallback="ignore")
    assert domain(fallback="passthrough").fallback == "passthrough"


def test_domains_are_immutable_values() -> None:
    d = domain(Function.of("range", enable="on"))
    assert d == domain(Function.of("range", enable="on"))
    assert hash(d) == hash(domain(Function.of("range", enable="on")))
    with pytest.raises(AttributeError):
        d.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        node().domains["x"] = d  # type: ignore[index]


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        ("http://127.0.0.1:8000", ("http", "127.0.0.1", 8000, "")),
        ("https://Origin.Example.com/media/", ("https", "origin.example.com", 443, "/media")),
        ("http://[2001:db8::1]/v", ("http", "2001:db8::1", 80, "/v")),
    ],
)
def test_origin_from_url(url: str, fields: tuple[str, str, int, str]) -> None:
    origin = OriginSpec.from_url(url)
    assert (origin.scheme, origin.host, origin.port, origin.base_path) == fields
    assert origin.kind == "http" and OriginSpec.from_url(origin.url or "") == origin


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com",
        "http://",
        "http://user:pw@example.com",
        "http://example.com/?a=1",
        "http://example.com:0",
        "http://example.com:99999",
        "example.com",
    ],
)
def test_bad_origin_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        OriginSpec.from_url(url)


def test_origin_priority_and_host_header() -> None:
    origin = OriginSpec.from_url(
        "http://10.0.0.1", host_header="Origin.Example.com:81", priority=30
    )
    assert (origin.host_header, origin.priority) == ("origin.example.com:81", 30)
    with pytest.raises(ConfigError):
        OriginSpec.from_url("http://10.0.0.1", priority=0)
    with pytest.raises(ConfigError):
        OriginSpec.from_url("http://10.0.0.1", host_header="bad host")


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:9090", ("::1", 9090)),
        (":8080", ("0.0.0.0", 8080)),
        ("8080", ("0.0.0.0", 8080)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_listen_address(text: str, address: tuple[str, int]) -> None:
    parsed = ListenAddress.parse(text)
    assert (parsed.host, parsed.port) == address
    assert ListenAddress.parse(str(parsed)) == parsed


@pytest.mark.parametrize("text", ["", "host", "1.2.3.4:65536", "a b:80", "[::1:80"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        ListenAddress.parse(text)


def test_with_overrides_parses_command_line_strings() -> None:
    n = node().with_overrides(
        listen="0.0.0.0:80",
        admin_listen="127.0.0.1:9090",
        workers="3",
        cache_dir="/tmp/c",
        cache_size="2GiB",
    )
    assert str(n.listen) == "0.0.0.0:80" and str(n.admin_listen) == "127.0.0.1:9090"
    assert (n.workers, n.cache_dir, n.cache_size) == (3, Path("/tmp/c"), 2 << 30)
    assert n.domain_for("video.example.com") is not None
    with pytest.raises(ConfigError):
        node().with_overrides(cache_size="lots")
    with pytest.raises(ConfigError):
        node().with_overrides(workers="0")


def test_zero_config_from_a_directory(tmp_path: Path) -> None:
    n = zero_config(str(tmp_path))
    served = n.domain_for("whatever.example:8080")
    assert served is not None and served is n.default_domain
    assert served.audio_split and served.seek.enabled
    assert served.origins[0].kind == "dir" and served.origins[0].directory == tmp_path.resolve()
    assert n.domains == {}


def test_zero_config_from_a_url() -> None:
    served = zero_config("http://origin.example:8000/base").domain_for("x")
    assert served is not None and served.origins[0].url == "http://origin.example:8000/base"


def test_zero_config_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        zero_config(str(tmp_path / "absent"))


def test_a_repeated_parameter_keeps_its_order_in_the_key() -> None:
    """The origin gets them in request order and may read either: two objects."""
    from multidict import MultiDict

    d = domain()
    first, second = MultiDict([("v", "1"), ("v", "2")]), MultiDict([("v", "2"), ("v", "1")])
    assert d.cache_key_args(first) != d.cache_key_args(second)
    assert d.cache_key_args(first) == d.origin_args(first)
    mixed = MultiDict([("b", "1"), ("v", "2"), ("a", "0"), ("v", "1")])
    assert d.cache_key_args(mixed) == [("a", "0"), ("b", "1"), ("v", "2"), ("v", "1")]
