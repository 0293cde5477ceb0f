"""Property tests: parsers accept what they should and raise nothing but ConfigError."""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.config import ConfigError, Domain, Function, OriginSpec, normalize_host
from vodedge.config.access import RefererPolicy, glob_match, parse_ip_list, parse_referer_list
from vodedge.config.functions import VOCABULARY, check_function, parse_functions
from vodedge.config.model import ListenAddress
from vodedge.config.values import parse_host_header, parse_http_url, parse_rate, parse_size

ORIGIN = (OriginSpec.from_url("http://127.0.0.1:8000"),)
# Text biased toward the characters these grammars care about.
tricky = st.text(
    st.sampled_from(list("0123456789.,:/*[]-_ kKmMgGiIbBtT%aéü\n\t@?#=&")) | st.characters(),
    max_size=40,
)


def only_config_errors(parse: Callable[[str], object], text: str) -> object:
    try:
        return parse(text)
    except ConfigError as error:
        assert error.message and "\n" not in str(error)
        return None


@given(tricky)
def test_parsers_raise_only_config_errors(text: str) -> None:
    for parse in (
        parse_size,
        parse_rate,
        parse_ip_list,
        parse_referer_list,
        parse_host_header,
        parse_http_url,
        ListenAddress.parse,
    ):
        only_config_errors(parse, text)
    assert normalize_host(text) is None or normalize_host(text) == normalize_host(text.upper())


units = {"": 1, "B": 1, "k": 1024, "KB": 1000, "KiB": 1024, "MB": 10**6, "MiB": 1 << 20}
units |= {"G": 1 << 30, "GB": 10**9, "GiB": 1 << 30, "TiB": 1 << 40, "TB": 10**12}


@given(st.integers(0, 10**6), st.sampled_from(sorted(units)), st.booleans())
def test_sizes_round_trip(number: int, unit: str, space: bool) -> None:
    text = f"{number}{' ' if space and unit else ''}{unit}"
    assert parse_size(text) == number * units[unit]
    assert parse_size(text.lower()) == number * units[unit]


def test_size_examples() -> None:
    assert parse_size("10GiB") == 10 << 30
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1.5GiB") == 3 << 29
    for bad in ("", "GiB", "-1MB", "10 PB", "1e9", "0x10", "10GiBs", "\u0661\u0660"):
        with pytest.raises(ConfigError):
            parse_size(bad)


@given(st.integers(0, 10**9), st.sampled_from(["", "k", "K", "m", "M"]))
def test_rates_round_trip(number: int, unit: str) -> None:
    assert parse_rate(f"{number}{unit}") == number * {"": 1, "k": 1024, "m": 1 << 20}[unit.lower()]


ipv4 = st.ip_addresses(v=4)
ipv6 = st.ip_addresses(v=6)


@st.composite
def networks(draw: st.DrawFn) -> str:
    address = draw(ipv4 | ipv6)
    if draw(st.booleans()):
        return str(address)
    return f"{address}/{draw(st.integers(0, address.max_prefixlen))}"


@given(st.lists(networks(), min_size=1, max_size=8), st.sampled_from([",", ", "]))
def test_ip_lists_parse_and_match(entries: list[str], separator: str) -> None:
    parsed = parse_ip_list(separator.join(entries))
    assert len(parsed) == len(entries)
    d = Domain("a.com", ORIGIN, (Function.of("ip_allow_list_set", ip_list=",".join(entries)),))
    for network in parsed:
        # Every listed network's first address is allowed; the deny list refuses it.
        assert d.ip_allowed(str(network.network_address))
    black = Domain("a.com", ORIGIN, (Function.of("ip_black_list_set", ip_list=",".join(entries)),))
    for network in parsed:
        assert not black.ip_allowed(str(network.network_address))


def canonical(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


@given(st.ip_addresses(), st.ip_addresses())
def test_ip_acl_is_exact_for_single_addresses(
    listed: ipaddress.IPv4Address | ipaddress.IPv6Address,
    client: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    d = Domain("a.com", ORIGIN, (Function.of("ip_allow_list_set", ip_list=str(listed)),))
    assert d.ip_allowed(str(client)) is (canonical(listed) == canonical(client))


label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(label, min_size=2, max_size=4).map(".".join)


@given(st.lists(hostnames, min_size=1, max_size=5), hostnames, label)
def test_referer_patterns_match_listed_hosts_and_their_subdomains(
    listed: list[str], other: str, sub: str
) -> None:
    patterns = parse_referer_list(",".join(listed))
    assert patterns == tuple(listed)
    suffix = RefererPolicy("allow", patterns, allow_empty=False)
    exact = RefererPolicy("allow", patterns, allow_empty=False, exact=True)
    for host in listed:
        assert suffix.allows(f"https://{host}/page")
        assert suffix.allows(f"http://{sub}.{host}/")
        assert exact.allows(f"https://{host}")
        assert exact.allows(f"https://{sub}.{host}") is any(f"{sub}.{host}" == h for h in listed)
    covered = any(other == h or other.endswith("." + h) for h in listed)
    assert suffix.allows(f"https://{other}/") is covered
    assert (
        RefererPolicy("deny", patterns, allow_empty=True).allows(f"https://{other}/") is not covered
    )


@given(st.lists(hostnames, min_size=1, max_size=3), tricky, st.booleans(), st.booleans())
def test_referer_matching_never_raises(
    listed: list[str], referer: str, exact: bool, bare: bool
) -> None:
    policy = RefererPolicy(
        "allow", tuple(listed), allow_empty=False, exact=exact, ignore_scheme=bare
    )
    assert isinstance(policy.allows(referer), bool)


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(VOCABULARY)),
    st.dictionaries(
        st.sampled_from(sorted({a for s in VOCABULARY.values() for a in s.args})), tricky
    ),
)
def test_check_function_raises_only_config_errors(name: str, args: dict[str, str]) -> None:
    try:
        check_function(Function.of(name, **args))
    except ConfigError as error:
        assert error.code and "\n" not in str(error)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_parse_functions_raises_only_config_errors(raw: object) -> None:
    try:
        parse_functions(raw)
    except ConfigError as error:
        assert error.code.startswith(("Invalid", "Function."))


@given(st.text("ab*.", max_size=8), st.text("ab.", max_size=12))
def test_glob_match_agrees_with_a_regex(pattern: str, text: str) -> None:
    regex = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    assert glob_match(pattern, text) is (re.fullmatch(regex, text, re.DOTALL) is not None)


def test_hostile_referers_match_in_linear_time() -> None:
    policy = RefererPolicy("allow", ("a*a*a*a*a*a*a*a*a*b.com",), allow_empty=False)
    started = time.thread_time()  # CPU time: waiting for a core on a busy machine is not
    assert not policy.allows("https://" + "a." * 120 + "a/")
    assert not policy.allows("https://" + "a" * 250 + "/")
    assert time.thread_time() - started < 0.5
