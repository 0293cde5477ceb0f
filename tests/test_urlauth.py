"""Signed URLs (aliauth) against an independent signer written from the CDN's documentation.

The signer below does not import vodedge: it follows the documented algorithms
(type A: md5("Path-timestamp-rand-uid-key") in `auth_key`; B: md5(key + YYYYMMDDHHMM
in UTC+8 + Path) in the path; C: md5(key + Path + hex time) in the path or in
KEY1/KEY2; F: the same in `sign`/`time`) and is itself checked against the worked
examples of the documentation. Every type is then verified by vodedge at the clock
edges (signed, exactly at expiry, one second after), with key rotation and with each
part of the URL tampered with.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from url_signing import CN, ref_sign
from vodedge.config.errors import ConfigError
from vodedge.config.functions import Function, check_functions
from vodedge.config.policy import build_policy
from vodedge.config.urlauth import AuthDenied, UrlAuth, verify

KEY1 = "aliyuncdnexp1234"
KEY2 = "SecondKeyForRotation2026"
OTHER = "NotAConfiguredKey0000"
T0 = 1_764_500_000  # signing time used throughout (2025-11-30)
DELTA = 1800
UNKNOWN = "InvalidArgName.ValueNotSupported"


def test_reference_signer_reproduces_the_documented_examples() -> None:
    """The worked examples of the type A, B, C and F pages."""
    assert ref_sign("a", KEY1, "/video/standard/test.mp4", 1444435200) == (
        "/video/standard/test.mp4",
        "auth_key=1444435200-0-0-23bf85053008f5c0e791667a313e28ce",
    )
    b_time = int(datetime(2015, 8, 15, 8, 0, tzinfo=CN).timestamp())
    path = "/4/44/44c0909bcfc20a01afaf256ca99a8b8b.mp3"
    assert ref_sign("b", KEY1, path, b_time) == (
        f"/201508150800/9044548ef1527deadafa49a890a377f0{path}",
        "",
    )
    assert ref_sign("c", KEY1, "/test.flv", 0x55CE8100) == (
        "/a37fa50a5fb8f71214b1e7c95ec7a1bd/55CE8100/test.flv",
        "",
    )
    assert ref_sign("c", KEY1, "/test.flv", 0x55CE8100, c_query=True)[1] == (
        "KEY1=a37fa50a5fb8f71214b1e7c95ec7a1bd&KEY2=55CE8100"
    )
    assert ref_sign("f", KEY1, "/test.flv", 0x55CE8100)[1] == (
        "sign=a37fa50a5fb8f71214b1e7c95ec7a1bd&time=55CE8100"
    )


# --- vodedge's verifier ----------------------------------------------------------------

KINDS = {"a": "type_a", "b": "type_b", "c": "type_c", "f": "type_f"}
VARIANTS = ["a", "b", "c", "c_query", "f", "f_dec", "f_names"]


def auth_for(variant: str, **extra: str) -> UrlAuth:
    """The domain configuration of a variant, built through the function vocabulary."""
    kind = variant[0]
    args = {"auth_type": KINDS[kind], "auth_key1": KEY1, "auth_key2": KEY2, **extra}
    if variant == "f_dec":
        args["time_format"] = "dec"
    if variant == "f_names":
        args |= {"sign_param": "token", "time_param": "ts"}
    policy = build_policy([Function.of("aliauth", **args)])
    assert policy.url_auth is not None
    return policy.url_auth


def signed(variant: str, key: str = KEY1, when: int = T0, **kw: object) -> tuple[str, str]:
    """A URL signed by the reference signer for `variant`."""
    options: dict[str, object] = {
        "c_query": variant == "c_query",
        "dec": variant == "f_dec",
        **({"sign_param": "token", "time_param": "ts"} if variant == "f_names" else {}),
        **kw,
    }
    path = str(options.pop("path", "/video/talk%20one.mp4"))
    return ref_sign(variant[0], key, path, when, **options)  # type: ignore[arg-type]


def signing_time(variant: str, when: int = T0) -> int:
    """The time the URL says it was signed (type B keeps only the minute)."""
    return when - when % 60 if variant == "b" else when


def denied(auth: UrlAuth, path: str, query: str, now: int) -> str:
    """The code a request is refused with (the test fails if it is accepted)."""
    with pytest.raises(AuthDenied) as caught:
        verify(auth, path, query, now)
    assert caught.value.reason.startswith("denied by req auth")
    return caught.value.code


@pytest.mark.parametrize("variant", VARIANTS)
def test_clock_edges(variant: str) -> None:
    """Valid when signed, still valid exactly at timestamp + delta, expired one second later."""
    auth = auth_for(variant)
    path, query = signed(variant)
    expiry = signing_time(variant) + DELTA
    for now in (signing_time(variant), expiry - 1, expiry):
        result = verify(auth, path, query, now)
        assert result.path == "/video/talk%20one.mp4"
        assert result.query == ""
    assert denied(auth, path, query, expiry + 1) == "auth_expired"
    # A URL signed in the future (the documented way to lengthen validity) is valid now.
    later = signed(variant, when=T0 + 600)
    assert verify(auth, *later, T0).path == "/video/talk%20one.mp4"


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_rotation(variant: str) -> None:
    """auth_key2 is accepted beside auth_key1; any other key is not."""
    auth = auth_for(variant)
    assert verify(auth, *signed(variant, key=KEY2), T0).path == "/video/talk%20one.mp4"
    assert denied(auth, *signed(variant, key=OTHER), T0) == "auth_invalid"
    only_one = auth_for(variant, auth_key2="")
    assert denied(only_one, *signed(variant, key=KEY2), T0) == "auth_invalid"


def _flip_hex(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


@pytest.mark.parametrize("variant", VARIANTS)
def test_tampering_with_each_part(variant: str) -> None:
    """The path, the timestamp, the hash (and type A's rand and uid) are all covered."""
    auth = auth_for(variant)
    path, query = signed(variant, rand="477b3bbc253f467b8def6711128c7bec", uid="7")
    assert verify(auth, path, query, T0)
    tampered: list[tuple[str, str]] = [
        (path.replace("talk", "tall"), query),  # the file
        (path.replace("%20", "+"), query),  # its encoding as sent
        (path + "x", query),
    ]
    if variant == "a":
        stamp, rand, uid, digest = query.split("=", 1)[1].split("-")
        for fields in (
            (str(int(stamp) + 1), rand, uid, digest),
            (stamp, rand + "a", uid, digest),
            (stamp, rand, "8", digest),
            (stamp, rand, uid, _flip_hex(digest)),
        ):
            tampered.append((path, "auth_key=" + "-".join(fields)))
    elif variant == "b":
        _, stamp, digest, rest = path.split("/", 3)
        minute = datetime.strptime(stamp, "%Y%m%d%H%M") + timedelta(minutes=1)
        tampered.append((f"/{minute:%Y%m%d%H%M}/{digest}/{rest}", query))
        tampered.append((f"/{stamp}/{_flip_hex(digest)}/{rest}", query))
    elif variant == "c":
        _, digest, stamp, rest = path.split("/", 3)
        tampered.append((f"/{digest}/{int(stamp, 16) + 1:X}/{rest}", query))
        tampered.append((f"/{_flip_hex(digest)}/{stamp}/{rest}", query))
    else:
        (sign_name, digest), (time_name, stamp) = (p.split("=") for p in query.split("&"))
        later = str(int(stamp) + 1) if variant == "f_dec" else f"{int(stamp, 16) + 1:X}"
        tampered.append((path, f"{sign_name}={digest}&{time_name}={later}"))
        tampered.append((path, f"{sign_name}={_flip_hex(digest)}&{time_name}={stamp}"))
    for bad_path, bad_query in tampered:
        assert denied(auth, bad_path, bad_query, T0) in ("auth_invalid", "auth_malformed"), (
            bad_path,
            bad_query,
        )


@pytest.mark.parametrize("variant", VARIANTS)
def test_missing_and_malformed(variant: str) -> None:
    """No signature at all, and signatures that do not parse."""
    auth = auth_for(variant)
    assert denied(auth, "/video/talk.mp4", "", T0) in ("auth_missing", "auth_malformed")
    assert denied(auth, "/video/talk.mp4", "start=3", T0) in ("auth_missing", "auth_malformed")
    garbage = {
        "a": ("/v.mp4", "auth_key=abc"),
        "b": ("/2025AB301200/0123456789abcdef0123456789abcdef/v.mp4", ""),
        "c": ("/0123456789abcdef0123456789abcdef/XYZ/v.mp4", ""),
        "c_query": ("/v.mp4", "KEY1=0123456789abcdef0123456789abcdef&KEY2=-1"),
        "f": ("/v.mp4", "sign=short&time=55CE8100"),
        "f_dec": ("/v.mp4", "sign=0123456789abcdef0123456789abcdef&time=55CE8100"),
        "f_names": ("/v.mp4", "token=0123456789abcdef0123456789abcdef&ts=&ts=1"),
    }[variant]
    assert denied(auth, *garbage, T0) == "auth_malformed"


@pytest.mark.parametrize("variant", VARIANTS)
def test_signature_is_taken_out_and_other_parameters_kept(variant: str) -> None:
    """What reaches the cache key and the origin: the original path and the other parameters."""
    auth = auth_for(variant)
    path, query = signed(variant, query="ali_audio_only=1&start=2")
    result = verify(auth, path, query, T0)
    assert (result.path, result.query) == ("/video/talk%20one.mp4", "ali_audio_only=1&start=2")
    assert not auth.signature_args & {"ali_audio_only", "start"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_documented_hash_leaves_parameters_open_and_the_extension_closes_them(
    variant: str,
) -> None:
    """As documented, free_time can be raised on a signed URL; with vodedge_signed_args not."""
    plain = auth_for(variant)
    path, query = signed(variant, query="free_time=10")
    assert verify(plain, path, query.replace("free_time=10", "free_time=999"), T0)
    ours = auth_for(variant, vodedge_signed_args="free_time,start")
    path, query = signed(variant, query="free_time=10", signed=("free_time", "start"))
    assert verify(ours, path, query, T0).query.startswith("free_time=10")
    for bad in (
        query.replace("free_time=10", "free_time=999"),
        query.replace("free_time=10", "free_time=10&free_time=999"),
        # The edge reads escaped names decoded: a second copy spelled otherwise.
        "free%5Ftime=999&" + query,
        query + "&%66ree_time=999",
        query + "&st%61rt=5",
        query.replace("free_time=10&", "").replace("free_time=10", ""),
        query + "&start=5",
    ):
        assert denied(ours, path, bad, T0) in ("auth_invalid", "auth_malformed"), bad
    # A URL signed without the parameter cannot have it added.
    path, query = signed(variant, signed=("free_time", "start"))
    assert verify(ours, path, query, T0)
    sep = "&" if query else ""
    assert denied(ours, path, f"{query}{sep}free_time=999", T0) == "auth_invalid"


def test_ip_white_list_exempts() -> None:
    """req_auth_ip_white: listed clients need no signature (which address: req_auth_ip_acl_xfwd)."""
    auth = auth_for("a", req_auth_ip_white="192.168.0.0/24,2001:db8::1")
    assert auth.exempts("10.0.0.1", "192.168.0.7, 10.1.1.1")
    assert not auth.exempts("192.168.0.7", "10.0.0.1")
    assert auth.exempts("192.168.0.7", None)
    off = auth_for("a", req_auth_ip_white="192.168.0.0/24", req_auth_ip_acl_xfwd="off")
    assert off.exempts("192.168.0.9", "10.0.0.1") and not off.exempts("10.0.0.1", "192.168.0.9")
    both = auth_for("a", req_auth_ip_white="192.168.0.0/24", req_auth_ip_acl_xfwd="all")
    assert both.exempts("192.168.0.9", "192.168.0.1")
    assert not both.exempts("192.168.0.9", "10.0.0.1")
    assert not auth_for("a").exempts("192.168.0.7", None)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"auth_type": "type_x", "auth_key1": KEY1}, "InvalidArgValue.Malformed"),
        ({"auth_type": "type_d", "auth_key1": KEY1}, "InvalidArgValue.Malformed"),
        ({"auth_type": "type_a"}, "MissingParameter"),
        ({"auth_type": "type_a", "auth_key1": "short"}, "InvalidArgValue.Malformed"),
        ({"auth_type": "type_a", "auth_key1": KEY1 + "-"}, "InvalidArgValue.Malformed"),
        ({"auth_type": "type_a", "auth_key1": KEY1, "ali_auth_delta": "-1"}, None),
        ({"auth_type": "type_f", "auth_key1": KEY1, "time_format": "oct"}, None),
        ({"auth_type": "type_f", "auth_key1": KEY1, "sign_param": "t", "time_param": "t"}, None),
        ({"auth_type": "type_a", "auth_key1": KEY1, "req_auth_ip_white": "1.2.3"}, None),
        ({"auth_type": "type_a", "auth_key1": KEY1, "vodedge_signed_args": "auth_key"}, None),
        ({"auth_type": "type_a", "auth_key1": KEY1, "nonsense": "1"}, UNKNOWN),
    ],
)  # fmt: skip
def test_configuration_is_validated(args: dict[str, str], code: str | None) -> None:
    """Bad aliauth arguments are refused with the API's error codes."""
    with pytest.raises(ConfigError) as caught:
        check_functions([Function.of("aliauth", **args)])
    assert caught.value.code == (code or "InvalidArgValue.Malformed")


def test_no_auth_is_off() -> None:
    """auth_type no_auth turns signing off (keys may be left out)."""
    assert build_policy([Function.of("aliauth", auth_type="no_auth")]).url_auth is None


def test_signature_parameters_leave_the_cache_key() -> None:
    """The query policy drops the signature parameters from the cache key and origin request."""
    policy = build_policy([Function.of("aliauth", auth_type="type_f", auth_key1=KEY1)])
    query = {"sign": "x", "time": "y", "lang": "en"}
    assert policy.query.cache_key_args(query) == [("lang", "en")]
    assert policy.query.origin_args(query) == [("lang", "en")]


@pytest.mark.parametrize("variant", ["a", "b", "c", "f"])
def test_sign_command_agrees_with_the_reference(variant: str) -> None:
    """`vodedge sign` prints the URL the reference signer builds; --ttl shifts the timestamp."""
    url = "http://cdn.example.com/video/talk.mp4?free_time=30"
    out = subprocess.run(
        [sys.executable, "-m", "vodedge", "sign", url, "--type", variant, "--key", KEY1,
         "--now", str(T0), "--ttl", "3600", "--delta", "1800", "--sign-args", "free_time"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    path, query = ref_sign(
        variant, KEY1, "/video/talk.mp4", T0 + 1800, query="free_time=30", signed=("free_time",)
    )
    assert out == f"http://cdn.example.com{path}?{query}"
    auth = auth_for(variant, vodedge_signed_args="free_time")
    stamp_time = signing_time(variant, T0 + 1800)
    assert verify(auth, path, query, stamp_time + DELTA)
    assert denied(auth, path, query, stamp_time + DELTA + 1) == "auth_expired"


def test_sign_command_refuses_bad_input() -> None:
    """A short key or a URL without a path: one line on stderr, exit code 2."""
    for argv in (["http://x/a.mp4", "--type", "a", "--key", "short"],
                 ["x", "--type", "f", "--key", KEY1]):  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "vodedge", "sign", *argv], capture_output=True, text=True
        )
        assert proc.returncode == 2
        assert proc.stderr.startswith("vodedge: error:") and proc.stderr.count("\n") == 1
