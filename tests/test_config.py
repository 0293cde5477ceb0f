"""The function vocabulary: every function and argument, accepted and refused."""

from __future__ import annotations

import json

import pytest

from vodedge.config import (
    VOCABULARY,
    ConfigError,
    Domain,
    Function,
    OriginSpec,
    check_function,
    parse_functions,
)

ORIGIN = (OriginSpec.from_url("http://127.0.0.1:8000"),)

# (function, args) that must be accepted; together they use every argument.
GOOD: list[tuple[str, dict[str, str]]] = [
    ("ali_video_split", {"enable": "on"}),
    ("ali_video_split", {"enable": "off"}),
    ("video_seek", {"enable": "on"}),
    (
        "video_seek",
        {
            "enable": "off",
            "flv_seek_by_time": "on",
            "mp4_seek_start": "mp4starttime",
            "mp4_seek_end": "mp4endtime",
            "flv_seek_start": "flvstarttime",
            "flv_seek_end": "flv_end_2",
        },
    ),
    ("ali_video_preview", {"enable": "on", "ali_video_preview_argument": "fds"}),
    ("range", {"enable": "on"}),
    ("range", {"enable": "off"}),
    ("range", {"enable": "force"}),
    ("set_req_host_header", {"domain_name": "example.com"}),
    ("set_req_host_header", {"domain_name": "origin.example.com:8080"}),
    ("set_req_host_header", {"domain_name": "[2001:db8::1]:81"}),
    ("set_req_host_header", {"domain_name": "192.0.2.1"}),
    ("filetype_based_ttl_set", {"ttl": "500000", "file_type": "jpg"}),
    (
        "filetype_based_ttl_set",
        {
            "ttl": "99999999",
            "file_type": "mp4,flv,tar.gz",
            "weight": "99",
            "swift_origin_cache_high": "on",
            "swift_no_cache_low": "off",
            "swift_follow_cachetime": "on",
            "force_revalidate": "off",
        },
    ),
    ("filetype_based_ttl_set", {"ttl": "0", "file_type": "m3u8", "force_revalidate": "on"}),
    ("path_based_ttl_set", {"ttl": "1", "path": "/example/demo", "weight": "1"}),
    ("path_based_ttl_set", {"ttl": "60", "path": "/"}),
    ("set_hashkey_args", {"hashkey_args": "key1,key2", "disable": "on", "keep_oss_args": "on"}),
    ("set_hashkey_args", {"hashkey_args": "", "disable": "on", "keep_oss_args": "off"}),
    ("set_hashkey_args", {"disable": "off", "keep_oss_args": "off"}),
    ("ali_remove_args", {"ali_remove_args": "test", "keep_oss_args": "off"}),
    ("ali_remove_args", {"ali_remove_args": "a b c", "keep_oss_args": "on"}),
    ("referer_white_list_set", {"refer_domain_allow_list": "example.aliyundoc.com"}),
    (
        "referer_white_list_set",
        {
            "refer_domain_allow_list": "example.aliyundoc.com,*.demo.com,a*b.example.com,1.2.3.4",
            "allow_empty": "on",
            "redirect_url": "https://www.example.com/denied",
            "disable_ast": "on",
            "ignore_scheme": "on",
        },
    ),
    ("referer_white_list_set", {"refer_domain_allow_list": "bücher.example:8080"}),
    (
        "referer_black_list_set",
        {
            "refer_domain_deny_list": "bad.example.com",
            "allow_empty": "off",
            "redirect_url": "http://www.example.com",
            "disable_ast": "off",
            "ignore_scheme": "off",
        },
    ),
    ("ip_allow_list_set", {"ip_list": "192.168.0.1/24"}),
    ("ip_white_list_set", {"ip_list": "10.0.0.1"}),
    (
        "ip_black_list_set",
        {
            "ip_list": "192.168.0.1,10.0.0.0/8,2001:db8::/32,::1",
            "customize_response_status_code": "429",
            "ip_acl_xfwd": "all",
            "ip_list_notes": "192.x.x.1 (abuse)",
        },
    ),
    ("ip_black_list_set", {"ip_list": "1.2.3.4", "ip_acl_xfwd": "off"}),
    ("limit_rate", {"ali_limit_rate": "1m"}),
    (
        "limit_rate",
        {
            "ali_limit_rate": "100k",
            "ali_limit_rate_after": "1000",
            "traffic_limit_arg": "rate",
            "traffic_limit_unit": "k",
            "ali_limit_start_hour": "20",
            "ali_limit_end_hour": "23",
        },
    ),
    ("limit_rate", {"ali_limit_rate": "0k", "traffic_limit_arg": "rate"}),
]

MALFORMED = "InvalidArgValue.Malformed"
MISSING = "MissingParameter"
UNKNOWN_ARG = "InvalidArgName.ValueNotSupported"

# (function, args, expected code, the argument blamed)
BAD: list[tuple[str, dict[str, str], str, str | None]] = [
    ("ali_video_split", {}, MISSING, "enable"),
    ("ali_video_split", {"enable": "yes"}, MALFORMED, "enable"),
    ("ali_video_split", {"enable": "ON"}, MALFORMED, "enable"),
    ("ali_video_split", {"enable": "on", "switch": "on"}, UNKNOWN_ARG, "switch"),
    ("video_seek", {"enable": "on", "flv_seek_by_time": "1"}, MALFORMED, "flv_seek_by_time"),
    ("video_seek", {"enable": "on", "mp4_seek_start": "st-art"}, MALFORMED, "mp4_seek_start"),
    ("video_seek", {"enable": "on", "mp4_seek_end": "a b"}, MALFORMED, "mp4_seek_end"),
    ("video_seek", {"enable": "on", "flv_seek_start": "x" * 65}, MALFORMED, "flv_seek_start"),
    ("video_seek", {"enable": "on", "flv_seek_end": "é"}, MALFORMED, "flv_seek_end"),
    ("video_seek", {"enable": "on", "mp4_seek_end": "start"}, MALFORMED, "mp4_seek_end"),
    (
        "video_seek",
        {"enable": "on", "flv_seek_start": "ali_audio_only"},
        MALFORMED,
        "flv_seek_start",
    ),
    ("video_seek", {}, MISSING, "enable"),
    ("ali_video_preview", {"enable": "on"}, MISSING, "ali_video_preview_argument"),
    (
        "ali_video_preview",
        {"enable": "on", "ali_video_preview_argument": "a&b"},
        MALFORMED,
        "ali_video_preview_argument",
    ),
    (
        "ali_video_preview",
        {"enable": "maybe", "ali_video_preview_argument": "p"},
        MALFORMED,
        "enable",
    ),
    ("range", {"enable": "auto"}, MALFORMED, "enable"),
    ("range", {}, MISSING, "enable"),
    ("set_req_host_header", {}, MISSING, "domain_name"),
    ("set_req_host_header", {"domain_name": "exa mple.com"}, MALFORMED, "domain_name"),
    ("set_req_host_header", {"domain_name": "example.com:99999"}, MALFORMED, "domain_name"),
    ("set_req_host_header", {"domain_name": "http://example.com"}, MALFORMED, "domain_name"),
    ("set_req_host_header", {"domain_name": "-bad-.com"}, MALFORMED, "domain_name"),
    ("filetype_based_ttl_set", {"file_type": "jpg"}, MISSING, "ttl"),
    ("filetype_based_ttl_set", {"ttl": "10"}, MISSING, "file_type"),
    ("filetype_based_ttl_set", {"ttl": "100000000", "file_type": "jpg"}, MALFORMED, "ttl"),
    ("filetype_based_ttl_set", {"ttl": "-1", "file_type": "jpg"}, MALFORMED, "ttl"),
    ("filetype_based_ttl_set", {"ttl": "1.5", "file_type": "jpg"}, MALFORMED, "ttl"),
    ("filetype_based_ttl_set", {"ttl": "1_0", "file_type": "jpg"}, MALFORMED, "ttl"),
    ("filetype_based_ttl_set", {"ttl": "\u0661\u0660", "file_type": "jpg"}, MALFORMED, "ttl"),
    ("filetype_based_ttl_set", {"ttl": "10", "file_type": ".jpg"}, MALFORMED, "file_type"),
    ("filetype_based_ttl_set", {"ttl": "10", "file_type": "jpg,,png"}, MALFORMED, "file_type"),
    ("filetype_based_ttl_set", {"ttl": "10", "file_type": "j pg"}, MALFORMED, "file_type"),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "weight": "0"},
        MALFORMED,
        "weight",
    ),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "weight": "100"},
        MALFORMED,
        "weight",
    ),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "swift_origin_cache_high": "true"},
        MALFORMED,
        "swift_origin_cache_high",
    ),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "swift_no_cache_low": "x"},
        MALFORMED,
        "swift_no_cache_low",
    ),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "swift_follow_cachetime": "1"},
        MALFORMED,
        "swift_follow_cachetime",
    ),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "force_revalidate": "no"},
        MALFORMED,
        "force_revalidate",
    ),
    (
        "filetype_based_ttl_set",
        {"ttl": "10", "file_type": "jpg", "path": "/a"},
        UNKNOWN_ARG,
        "path",
    ),
    ("path_based_ttl_set", {"ttl": "10"}, MISSING, "path"),
    ("path_based_ttl_set", {"ttl": "10", "path": "example"}, MALFORMED, "path"),
    ("path_based_ttl_set", {"ttl": "10", "path": "/a b"}, MALFORMED, "path"),
    ("path_based_ttl_set", {"ttl": "10", "path": "/a?b"}, MALFORMED, "path"),
    ("path_based_ttl_set", {"ttl": "x", "path": "/a"}, MALFORMED, "ttl"),
    ("set_hashkey_args", {"keep_oss_args": "on"}, MISSING, "disable"),
    ("set_hashkey_args", {"disable": "on"}, MISSING, "keep_oss_args"),
    (
        "set_hashkey_args",
        {
            "hashkey_args": ",".join(f"k{i}" for i in range(11)),
            "disable": "on",
            "keep_oss_args": "on",
        },
        MALFORMED,
        "hashkey_args",
    ),
    (
        "set_hashkey_args",
        {"hashkey_args": "a=b", "disable": "on", "keep_oss_args": "on"},
        MALFORMED,
        "hashkey_args",
    ),
    ("set_hashkey_args", {"disable": "all", "keep_oss_args": "on"}, MALFORMED, "disable"),
    ("set_hashkey_args", {"disable": "on", "keep_oss_args": "1"}, MALFORMED, "keep_oss_args"),
    ("ali_remove_args", {"keep_oss_args": "on"}, MISSING, "ali_remove_args"),
    ("ali_remove_args", {"ali_remove_args": "", "keep_oss_args": "on"}, MISSING, "ali_remove_args"),
    (
        "ali_remove_args",
        {"ali_remove_args": "a&b", "keep_oss_args": "on"},
        MALFORMED,
        "ali_remove_args",
    ),
    ("ali_remove_args", {"ali_remove_args": "a"}, MISSING, "keep_oss_args"),
    ("referer_white_list_set", {}, MISSING, "refer_domain_allow_list"),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "https://example.com"},
        MALFORMED,
        "refer_domain_allow_list",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "example.com,,b.com"},
        MALFORMED,
        "refer_domain_allow_list",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "example.com/path"},
        MALFORMED,
        "refer_domain_allow_list",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "example.com:0"},
        MALFORMED,
        "refer_domain_allow_list",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "a.com", "allow_empty": "yes"},
        MALFORMED,
        "allow_empty",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "a.com", "redirect_url": "www.example.com"},
        MALFORMED,
        "redirect_url",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "a.com", "redirect_url": "ftp://example.com/"},
        MALFORMED,
        "redirect_url",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "a.com", "disable_ast": "1"},
        MALFORMED,
        "disable_ast",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_allow_list": "a.com", "ignore_scheme": "true"},
        MALFORMED,
        "ignore_scheme",
    ),
    (
        "referer_white_list_set",
        {"refer_domain_deny_list": "a.com"},
        UNKNOWN_ARG,
        "refer_domain_deny_list",
    ),
    ("referer_black_list_set", {"allow_empty": "on"}, MISSING, "refer_domain_deny_list"),
    (
        "referer_black_list_set",
        {"refer_domain_deny_list": "a .com"},
        MALFORMED,
        "refer_domain_deny_list",
    ),
    ("ip_allow_list_set", {}, MISSING, "ip_list"),
    ("ip_allow_list_set", {"ip_list": "192.168.0.256"}, MALFORMED, "ip_list"),
    ("ip_allow_list_set", {"ip_list": "10.0.0.0/33"}, MALFORMED, "ip_list"),
    ("ip_allow_list_set", {"ip_list": "1.2.3.4,"}, MALFORMED, "ip_list"),
    ("ip_allow_list_set", {"ip_list": "fe80::1%eth0"}, MALFORMED, "ip_list"),
    ("ip_allow_list_set", {"ip_list": "example.com"}, MALFORMED, "ip_list"),
    ("ip_white_list_set", {"ip_list": "01.2.3.4"}, MALFORMED, "ip_list"),
    (
        "ip_black_list_set",
        {"ip_list": "1.2.3.4", "customize_response_status_code": "42"},
        MALFORMED,
        "customize_response_status_code",
    ),
    (
        "ip_black_list_set",
        {"ip_list": "1.2.3.4", "customize_response_status_code": "600"},
        MALFORMED,
        "customize_response_status_code",
    ),
    ("ip_black_list_set", {"ip_list": "1.2.3.4", "ip_acl_xfwd": "both"}, MALFORMED, "ip_acl_xfwd"),
    (
        "ip_black_list_set",
        {"ip_list": "1.2.3.4", "ip_list_notes": "two\nlines"},
        MALFORMED,
        "ip_list_notes",
    ),
    ("limit_rate", {}, MISSING, "ali_limit_rate"),
    ("limit_rate", {"ali_limit_rate": "1 m"}, MALFORMED, "ali_limit_rate"),
    ("limit_rate", {"ali_limit_rate": "1g"}, MALFORMED, "ali_limit_rate"),
    ("limit_rate", {"ali_limit_rate": "-1k"}, MALFORMED, "ali_limit_rate"),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "ali_limit_rate_after": "lots"},
        MALFORMED,
        "ali_limit_rate_after",
    ),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "traffic_limit_arg": "r-ate"},
        MALFORMED,
        "traffic_limit_arg",
    ),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "traffic_limit_arg": "rate", "traffic_limit_unit": "g"},
        MALFORMED,
        "traffic_limit_unit",
    ),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "traffic_limit_unit": "k"},
        MALFORMED,
        "traffic_limit_unit",
    ),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "ali_limit_start_hour": "25"},
        MALFORMED,
        "ali_limit_start_hour",
    ),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "ali_limit_end_hour": "-1"},
        MALFORMED,
        "ali_limit_end_hour",
    ),
    (
        "limit_rate",
        {"ali_limit_rate": "1m", "ali_limit_start_hour": "20", "ali_limit_end_hour": "8"},
        MALFORMED,
        "ali_limit_end_hour",
    ),
]


# One valid and one invalid value per argument name (names mean the same in every function).
GOOD_VALUE = {
    "enable": "on",
    "flv_seek_by_time": "on",
    "mp4_seek_start": "ms",
    "mp4_seek_end": "me",
    "flv_seek_start": "fs",
    "flv_seek_end": "fe",
    "ali_video_preview_argument": "preview",
    "domain_name": "origin.example.com",
    "ttl": "3600",
    "file_type": "mp4,flv",
    "path": "/videos",
    "weight": "50",
    "swift_origin_cache_high": "on",
    "swift_no_cache_low": "on",
    "swift_follow_cachetime": "on",
    "force_revalidate": "on",
    "hashkey_args": "v,id",
    "disable": "on",
    "keep_oss_args": "off",
    "ali_remove_args": "uid token",
    "refer_domain_allow_list": "example.com,*.example.org",
    "refer_domain_deny_list": "bad.example.com",
    "allow_empty": "on",
    "redirect_url": "https://example.com/no",
    "disable_ast": "on",
    "ignore_scheme": "on",
    "ip_list": "192.0.2.0/24,2001:db8::1",
    "customize_response_status_code": "451",
    "ip_acl_xfwd": "off",
    "ip_list_notes": "office and VPN",
    "ali_limit_rate": "2m",
    "ali_limit_rate_after": "512k",
    "traffic_limit_arg": "rate",
    "traffic_limit_unit": "m",
    "ali_limit_start_hour": "1",
    "ali_limit_end_hour": "23",
    "https_rewrite": "308",
    "http_rewrite": "301",
    "auth_type": "no_auth",  # the other types need auth_key1 (tests/test_urlauth.py)
    "auth_key1": "aliyuncdnexp1234",
    "auth_key2": "A" * 128,
    "ali_auth_delta": "3600",
    "req_auth_ip_white": "192.0.2.1,2001:db8::/64",
    "req_auth_ip_acl_xfwd": "all",
    "sign_param": "token",
    "time_param": "ts",
    "time_format": "dec",
    "path_encoding": "off",
    "auth_m3u8": "off",
    "vodedge_signed_args": "free_time,start",
    "vodedge_preview_max": "30",
    "key": "Access-Control-Allow-Origin",
    "value": "https://player.example.com",
    "header_operation_type": "modify",
    "access_origin_control": "on",
}
BAD_VALUE = {
    "enable": "maybe",
    "flv_seek_by_time": "1",
    "mp4_seek_start": "st-art",
    "mp4_seek_end": "a b",
    "flv_seek_start": "x" * 65,
    "flv_seek_end": "\u00e9",
    "ali_video_preview_argument": "a&b",
    "domain_name": "exa mple.com",
    "ttl": "-1",
    "file_type": ".jpg",
    "path": "relative",
    "weight": "0",
    "swift_origin_cache_high": "true",
    "swift_no_cache_low": "x",
    "swift_follow_cachetime": "1",
    "force_revalidate": "no",
    "hashkey_args": "a=b",
    "disable": "all",
    "keep_oss_args": "1",
    "ali_remove_args": "a&b",
    "refer_domain_allow_list": "https://example.com",
    "refer_domain_deny_list": "a .com",
    "allow_empty": "yes",
    "redirect_url": "www.example.com",
    "disable_ast": "1",
    "ignore_scheme": "true",
    "ip_list": "192.168.0.256",
    "customize_response_status_code": "42",
    "ip_acl_xfwd": "both",
    "ip_list_notes": "two\nlines",
    "ali_limit_rate": "1g",
    "ali_limit_rate_after": "lots",
    "traffic_limit_arg": "r-ate",
    "traffic_limit_unit": "g",
    "ali_limit_start_hour": "25",
    "ali_limit_end_hour": "-1",
    "https_rewrite": "302",  # the docs name 301 and 308 only
    "http_rewrite": "307",
    "auth_type": "type_g",
    "auth_key1": "short",
    "auth_key2": "has-a-dash-in-it-here",
    "ali_auth_delta": "1.5",
    "req_auth_ip_white": "192.0.2.300",
    "req_auth_ip_acl_xfwd": "both",
    "sign_param": "si gn",
    "time_param": "ti&me",
    "time_format": "oct",
    "path_encoding": "yes",
    "auth_m3u8": "1",
    "vodedge_signed_args": "a=b",
    "vodedge_preview_max": "0",
    "key": "Content-Length",  # the edge's own (framing)
    "value": "a\r\nSet-Cookie: x=1",
    "header_operation_type": "rewrite",  # not supported
    "access_origin_control": "yes",
}


def _required(name: str) -> dict[str, str]:
    return {arg: GOOD_VALUE[arg] for arg, spec in VOCABULARY[name].args.items() if spec.required}


# Every function with every argument set, and with only its required ones.
GOOD += [(name, {arg: GOOD_VALUE[arg] for arg in spec.args}) for name, spec in VOCABULARY.items()]
GOOD += [(name, _required(name)) for name in VOCABULARY]
BAD += [
    (name, {**_required(name), arg: BAD_VALUE[arg]}, MALFORMED, arg)
    for name, spec in VOCABULARY.items()
    for arg in spec.args
]
BAD += [
    (name, {k: v for k, v in _required(name).items() if k != arg}, MISSING, arg)
    for name, spec in VOCABULARY.items()
    for arg, arg_spec in spec.args.items()
    if arg_spec.required
]
BAD += [(name, {**_required(name), "bogus": "on"}, UNKNOWN_ARG, "bogus") for name in VOCABULARY]


def _function(name: str, args: dict[str, str]) -> Function:
    return Function.of(name, **args)


def test_every_argument_has_a_good_and_a_bad_value() -> None:
    every = {arg for spec in VOCABULARY.values() for arg in spec.args}
    assert every == set(GOOD_VALUE) == set(BAD_VALUE)


@pytest.mark.parametrize(("name", "args"), GOOD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GOOD)])
def test_good_function_is_accepted(name: str, args: dict[str, str]) -> None:
    checked = check_function(_function(name, args))
    assert checked.name == name
    # A domain takes it too, and keeps it exactly as given.
    domain = Domain("example.com", ORIGIN, (_function(name, args),))
    assert domain.functions_api == [
        {
            "functionName": name,
            "functionArgs": [{"argName": k, "argValue": v} for k, v in args.items()],
        }
    ]


@pytest.mark.parametrize(
    ("name", "args", "code", "arg"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_function_is_refused(
    name: str, args: dict[str, str], code: str, arg: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        check_function(_function(name, args))
    error = caught.value
    assert (error.code, error.arg) == (code, arg)
    assert name in error.message
    assert "\n" not in str(error) and str(error) == error.message
    assert error.status == 400


def test_unknown_function_is_refused_with_the_api_code() -> None:
    with pytest.raises(ConfigError) as caught:
        check_function(Function.of("ali_video_splits", enable="on"))
    assert caught.value.code == "InvalidFunctionName.ValueNotSupported"
    assert "ali_video_splits" in str(caught.value)


def test_a_known_cdn_function_outside_the_vocabulary_is_refused_not_stored() -> None:
    with pytest.raises(ConfigError) as caught:
        Domain("example.com", ORIGIN, (Function.of("gzip", enable="on"),))
    assert (caught.value.code, caught.value.index) == ("InvalidFunctionName.ValueNotSupported", 0)


def test_argument_given_twice_is_refused() -> None:
    function = Function.of("range", enable="on")
    function = Function("range", function.args * 2)
    with pytest.raises(ConfigError) as caught:
        check_function(function)
    assert (caught.value.code, caught.value.arg) == ("InvalidFunctionArgs.Malformed", "enable")


def test_defaults_are_the_documented_ones() -> None:
    seek = check_function(Function.of("video_seek", enable="on")).values
    assert seek == {
        "enable": "on",
        "flv_seek_by_time": "off",
        "mp4_seek_start": "start",
        "mp4_seek_end": "end",
        "flv_seek_start": "start",
        "flv_seek_end": "end",
    }
    ttl = check_function(Function.of("path_based_ttl_set", ttl="5", path="/a")).values
    assert ttl["weight"] == 1 and ttl["force_revalidate"] == "off"
    white = check_function(Function.of("referer_white_list_set", refer_domain_allow_list="a.com"))
    assert white.values["allow_empty"] == "off" and white.values["disable_ast"] == "off"
    ip = check_function(Function.of("ip_black_list_set", ip_list="1.2.3.4")).values
    assert ip["ip_acl_xfwd"] == "on" and "customize_response_status_code" not in ip
    rate = check_function(Function.of("limit_rate", ali_limit_rate="1m")).values
    assert (rate["ali_limit_start_hour"], rate["ali_limit_end_hour"]) == (0, 24)


def test_empty_optional_value_means_not_set() -> None:
    values = check_function(
        Function.of("set_hashkey_args", hashkey_args="", disable="on", keep_oss_args="on")
    ).values
    assert "hashkey_args" not in values or values["hashkey_args"] == ()


# --- the API's JSON shape --------------------------------------------------------------


def test_parse_functions_reads_the_documented_example() -> None:
    raw = (
        '[{"functionArgs":[{"argName":"file_type","argValue":"jpg"},'
        '{"argName":"ttl","argValue":"18"},{"argName":"weight","argValue":"30"}],'
        '"functionName":"filetype_based_ttl_set","configId":5068995}]'
    )
    (function,) = parse_functions(raw)
    assert function.name == "filetype_based_ttl_set"
    assert function.arg("ttl") == "18" and function.config_id == 5068995
    assert function.to_api() == json.loads(raw)[0]
    check_function(function)


def test_parse_functions_takes_integers_and_capitalised_keys_as_the_docs_show() -> None:
    (function,) = parse_functions(
        [
            {
                "FunctionName": "limit_rate",
                "FunctionArgs": [{"ArgName": "ali_limit_rate", "ArgValue": 1024}],
            }
        ]
    )
    assert function == Function.of("limit_rate", ali_limit_rate="1024")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "InvalidFunctions.Malformed"),
        ('{"functionName": "range"}', "InvalidFunctions.Malformed"),
        ("[1]", "InvalidFunctions.Malformed"),
        ('[{"functionArgs": []}]', "InvalidFunctions.Malformed"),
        ('[{"functionName": "range", "extra": 1}]', "InvalidFunctions.Malformed"),
        ('[{"functionName": "range", "functionArgs": {}}]', "InvalidFunctionArgs.Malformed"),
        (
            '[{"functionName": "range", "functionArgs": [{"argValue": "on"}]}]',
            "InvalidFunctionArgs.Malformed",
        ),
        (
            '[{"functionName": "range",'
            ' "functionArgs": [{"argName": "enable", "argValue": true}]}]',
            "InvalidArgValue.Malformed",
        ),
        (
            '[{"functionName": "range",'
            ' "functionArgs": [{"argName": "enable", "argValue": null}]}]',
            "InvalidArgValue.Malformed",
        ),
        ('[{"functionName": "range", "configId": "x"}]', "InvalidFunctions.Malformed"),
        ('[{"functionName": "range", "configId": "\\u00b2"}]', "InvalidFunctions.Malformed"),
        ('[{"functionName": "range", "parentId": 12}]', "Function.InvalidParentId"),
        ("[" * 100000 + "]" * 100000, "InvalidFunctions.Malformed"),
    ],
)
def test_parse_functions_refuses_bad_shapes(raw: str, code: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_functions(raw)
    assert caught.value.code == code
    assert "\n" not in str(caught.value)


def test_parse_functions_locates_the_bad_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_functions([{"functionName": "range", "functionArgs": []}, {"functionName": 3}])
    assert caught.value.index == 1


# --- a domain's whole list ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        (("range", {"enable": "on"}), ("range", {"enable": "off"}), "ConfigDuplicate"),
        (
            ("ip_allow_list_set", {"ip_list": "1.2.3.4"}),
            ("ip_white_list_set", {"ip_list": "1.2.3.5"}),
            "ConfigDuplicate",
        ),
        (
            ("referer_white_list_set", {"refer_domain_allow_list": "a.com"}),
            ("referer_black_list_set", {"refer_domain_deny_list": "b.com"}),
            "InvalidFunctions.Conflict",
        ),
        (
            ("ip_allow_list_set", {"ip_list": "1.2.3.4"}),
            ("ip_black_list_set", {"ip_list": "1.2.3.5"}),
            "InvalidFunctions.Conflict",
        ),
        (
            ("set_hashkey_args", {"disable": "on", "keep_oss_args": "on"}),
            ("ali_remove_args", {"ali_remove_args": "a", "keep_oss_args": "on"}),
            "InvalidFunctions.Conflict",
        ),
        (
            ("video_seek", {"enable": "on"}),
            ("ali_video_preview", {"enable": "on", "ali_video_preview_argument": "start"}),
            "InvalidFunctions.Conflict",
        ),
    ],
)
def test_duplicates_and_conflicts_are_refused(
    first: tuple[str, dict[str, str]], second: tuple[str, dict[str, str]], code: str
) -> None:
    functions = (Function.of("ali_video_split", enable="on"), _function(*first), _function(*second))
    with pytest.raises(ConfigError) as caught:
        Domain("example.com", ORIGIN, functions)
    assert (caught.value.code, caught.value.index) == (code, 2)


def test_ttl_rules_repeat() -> None:
    domain = Domain(
        "example.com",
        ORIGIN,
        (
            Function.of("filetype_based_ttl_set", ttl="10", file_type="mp4"),
            Function.of("filetype_based_ttl_set", ttl="20", file_type="flv"),
            Function.of("path_based_ttl_set", ttl="30", path="/a"),
            Function.of("path_based_ttl_set", ttl="40", path="/b"),
        ),
    )
    assert [rule.ttl for rule in domain.ttl_rules] == [10, 20, 30, 40]


HOSTILE_HEADERS = [
    ("key", "X-A\r\nSet-Cookie"),
    ("key", "X A"),
    ("key", "X:A"),
    ("key", "X-\u00e9"),
    ("key", "x" * 129),
    ("key", "Transfer-Encoding"),
    ("key", "content-length"),
    ("key", "Content-Range"),
    ("key", "Connection"),
    ("key", "X-Vodedge-Error"),
    ("value", "a\r\nSet-Cookie: x=1"),
    ("value", "a\nb"),
    ("value", "a\x00b"),
    ("value", "caf\u00e9"),
    ("value", " padded"),
    ("value", "x" * 2049),
    ("header_operation_type", "rewrite"),
]


@pytest.mark.parametrize(("arg", "value"), HOSTILE_HEADERS)
def test_hostile_response_headers_are_refused(arg: str, value: str) -> None:
    """Header names and values that could split a response or lie about its body."""
    args = {"key": "X-Served-By", "value": "edge", arg: value}
    with pytest.raises(ConfigError) as caught:
        Domain("example.com", ORIGIN, (Function.of("set_resp_header", **args),))
    assert (caught.value.code, caught.value.arg) == (MALFORMED, arg)


def test_response_header_rules_of_a_domain() -> None:
    """One rule per header; Access-Control-Allow-Origin takes * or origins; CORS defaults."""
    twice = (
        Function.of("set_resp_header", key="X-A", value="1"),
        Function.of("set_resp_header", key="x-a", value="2"),
    )
    with pytest.raises(ConfigError) as caught:
        Domain("example.com", ORIGIN, twice)
    assert (caught.value.code, caught.value.index) == ("ConfigDuplicate", 1)
    bad = Function.of("set_resp_header", key="Access-Control-Allow-Origin", value="a.com")
    with pytest.raises(ConfigError) as caught:
        Domain("example.com", ORIGIN, (bad,))
    assert (caught.value.code, caught.value.arg) == (MALFORMED, "value")
    cors = Domain(
        "example.com",
        ORIGIN,
        (
            Function.of(
                "set_resp_header",
                key="Access-Control-Allow-Origin",
                value="https://a.example,https://b.example",
                access_origin_control="on",
            ),
            Function.of("set_resp_header", key="Access-Control-Max-Age", value="60"),
        ),
    ).response_headers.cors
    assert cors is not None
    assert cors.allow_origin("https://b.example") == "https://b.example"
    assert cors.allow_origin("https://c.example") is None
    assert cors.max_age == "60" and "Range" in cors.request_headers
