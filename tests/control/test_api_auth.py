"""The API's front door against a real node: every bad request gets its documented error.

Requests are hand-made (api_client.py) so they can be stale, replayed or changed
after signing; their signatures come from the SDKs' own signing code. Each error
is JSON with RequestId, HostId, Code and a one-line Message, and no secret.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pytest
from api_client import (
    AUTH_CODES,
    Answer,
    Key,
    Prepared,
    acs3_request,
    send,
    timestamp,
    v1_request,
    with_headers,
)
from api_node import ENV, FULL, READ_ONLY, SECRETS, SLOW, UNKNOWN, ApiNode, keys_toml, start_node
from edge_harness import free_port, raw_request, wait_until

from oracle import vodedge_command

# The calls that pass here are Describe* calls the store's actions answer.
PASSED = (200,)


def assert_error(answer: Answer, status: int, code: str) -> None:
    """`answer` is the documented error: status, code, and the error's JSON shape."""
    assert answer.status == status, answer
    data = answer.json
    assert set(data) == {"RequestId", "HostId", "Code", "Message"}, data
    assert data["Code"] == code, data
    assert data["Message"] and "\n" not in data["Message"], data
    assert data["RequestId"] == answer.headers.get("x-acs-request-id"), answer
    assert answer.headers["content-type"].startswith("application/json"), answer
    for secret in SECRETS:
        assert secret not in answer.body.decode(errors="replace"), "a secret in an answer"


def assert_passed(answer: Answer) -> None:
    """`answer` got past authentication and its action answered."""
    assert answer.status in PASSED, answer
    assert answer.code not in AUTH_CODES, answer
    assert answer.json["RequestId"], answer


def call(node: ApiNode, prepared: Prepared) -> Answer:
    """Send a prepared request to the node's API."""
    return send(node.port, prepared)


# --- signatures that hold -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_v1_signed_call_passes(api_node: ApiNode, method: str) -> None:
    answer = call(api_node, v1_request(api_node.port, FULL, "DescribeRefreshQuota", method=method))
    assert_passed(answer)


def test_a_v1_call_with_a_form_body_passes(api_node: ApiNode) -> None:
    form = {"ObjectPath": "http://a.example.com/x y+z~*.mp4\nhttp://a.example.com/é"}
    prepared = v1_request(api_node.port, FULL, "DescribeRefreshTasks", method="POST", form=form)
    assert_passed(call(api_node, prepared))


def test_an_acs3_signed_call_passes(api_node: ApiNode) -> None:
    query = {"DomainName": "a b*~é.example.com", "PageSize": "5"}
    form = {"Tag.1.Key": "k =&v", "Tag.1.Value": "ü"}
    prepared = acs3_request(api_node.port, FULL, "DescribeUserDomains", query, form=form)
    assert_passed(call(api_node, prepared))


def test_the_environment_key_and_a_read_only_key_can_describe(api_node: ApiNode) -> None:
    for key in (ENV, READ_ONLY):
        assert_passed(call(api_node, acs3_request(api_node.port, key, "DescribeRefreshQuota")))
        assert_passed(call(api_node, v1_request(api_node.port, key, "DescribeRefreshQuota")))


# --- wrong secret, unknown key ---------------------------------------------------------------


def test_a_wrong_secret_is_signature_does_not_match_with_the_string_to_sign(
    api_node: ApiNode,
) -> None:
    wrong = Key(FULL.id, "not-the-secret-0123456789")
    prepared = v1_request(api_node.port, wrong, "DescribeRefreshQuota")
    answer = call(api_node, prepared)
    assert_error(answer, 400, "SignatureDoesNotMatch")
    # The older SDK compares what follows the colon with its own string to sign.
    assert answer.json["Message"].split(":")[1] == prepared.string_to_sign
    answer = call(api_node, acs3_request(api_node.port, wrong, "DescribeRefreshQuota"))
    assert_error(answer, 400, "SignatureDoesNotMatch")
    assert answer.json["Message"].split(":")[1].startswith("ACS3-HMAC-SHA256\\n")


def test_an_unknown_key_is_not_found(api_node: ApiNode) -> None:
    for prepared in (
        v1_request(api_node.port, UNKNOWN, "DescribeRefreshQuota"),
        acs3_request(api_node.port, UNKNOWN, "DescribeRefreshQuota"),
    ):
        assert_error(call(api_node, prepared), 404, "InvalidAccessKeyId.NotFound")


# --- tampering after signing ---------------------------------------------------------------


def test_a_query_changed_after_v1_signing_is_refused(api_node: ApiNode) -> None:
    prepared = v1_request(api_node.port, FULL, "DescribeUserDomains", {"PageSize": "5"})
    for tampered in (
        prepared.target.replace("PageSize=5", "PageSize=6"),
        prepared.target + "&DomainName=other.example.com",
        prepared.target.replace("Action=DescribeUserDomains", "Action=DeleteCdnDomain"),
    ):
        answer = call(api_node, replace(prepared, target=tampered))
        assert_error(answer, 400, "SignatureDoesNotMatch")


def test_a_form_body_changed_after_v1_signing_is_refused(api_node: ApiNode) -> None:
    prepared = v1_request(
        api_node.port, FULL, "DescribeRefreshTasks", method="POST", form={"TaskId": "1"}
    )
    answer = call(api_node, replace(prepared, body=b"TaskId=2"))
    assert_error(answer, 400, "SignatureDoesNotMatch")


def test_a_query_or_body_changed_after_acs3_signing_is_refused(api_node: ApiNode) -> None:
    query = {"PageSize": "5"}
    form = {"DomainName": "a.example.com"}
    prepared = acs3_request(api_node.port, FULL, "DescribeUserDomains", query, form=form)
    tampered = [
        replace(prepared, target=prepared.target.replace("PageSize=5", "PageSize=6")),
        replace(prepared, target=prepared.target + "&PageNumber=2"),
        replace(prepared, body=b"DomainName=b.example.com"),
        # The body and its hash header both changed: the hash is a signed header.
        with_headers(
            replace(prepared, body=b"DomainName=b.example.com"),
            **{"x-acs-content-sha256": hashlib.sha256(b"DomainName=b.example.com").hexdigest()},
        ),
        with_headers(prepared, **{"x-acs-action": "DeleteCdnDomain"}),
    ]
    for bad in tampered:
        assert_error(call(api_node, bad), 400, "SignatureDoesNotMatch")


def test_an_acs3_signature_must_cover_the_essential_headers(api_node: ApiNode) -> None:
    prepared = acs3_request(api_node.port, FULL, "DescribeRefreshQuota")
    authorization = prepared.headers["Authorization"]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0]
    narrowed = ";".join(h for h in signed.split(";") if h != "x-acs-date")
    bad = with_headers(prepared, Authorization=authorization.replace(signed, narrowed))
    assert_error(call(api_node, bad), 400, "IncompleteSignature")
    garbled = with_headers(prepared, Authorization="ACS3-HMAC-SHA256 Credential=x")
    assert_error(call(api_node, garbled), 400, "IncompleteSignature")
    other = with_headers(prepared, Authorization=authorization.replace("SHA256", "SM3", 1))
    assert_error(call(api_node, other), 400, "InvalidSignatureMethod")


# --- replay and time -----------------------------------------------------------------------


def test_a_replayed_nonce_is_refused_also_after_a_restart_and_a_wiped_cache(tmp_path: Path) -> None:
    server = start_node(tmp_path)
    try:
        node = ApiNode(server)
        v1 = v1_request(node.port, FULL, "DescribeRefreshQuota")
        acs3 = acs3_request(node.port, FULL, "DescribeRefreshQuota")
        for prepared in (v1, acs3):
            assert_passed(call(node, prepared))
            assert_error(call(node, prepared), 400, "SignatureNonceUsed")
        server.stop()
        shutil.rmtree(server.cache_dir)  # nonces are state, not cache
        server.start()  # on new ports
        assert_error(call(node, v1), 400, "SignatureNonceUsed")
        # The Host header is signed: the same nonce, signed for the new port.
        nonce = acs3.headers["x-acs-signature-nonce"]
        again = acs3_request(node.port, FULL, "DescribeRefreshQuota", nonce=nonce)
        assert_error(call(node, again), 400, "SignatureNonceUsed")
        # The same nonce for another key is that key's own.
        other = v1_request(
            node.port,
            ENV,
            "DescribeRefreshQuota",
            nonce=v1.target.split("SignatureNonce=")[1].split("&")[0],
        )
        assert_passed(call(node, other))
    finally:
        server.stop()


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60])
def test_stale_and_future_timestamps_are_expired(api_node: ApiNode, offset: int) -> None:
    stamp = timestamp(offset)
    for prepared in (
        v1_request(api_node.port, FULL, "DescribeRefreshQuota", stamp=stamp),
        acs3_request(api_node.port, FULL, "DescribeRefreshQuota", stamp=stamp),
    ):
        assert_error(call(api_node, prepared), 400, "InvalidTimeStamp.Expired")


def test_timestamps_within_the_window_pass(api_node: ApiNode) -> None:
    for offset in (-14 * 60, 14 * 60):
        stamp = timestamp(offset)
        assert_passed(
            call(api_node, v1_request(api_node.port, FULL, "DescribeRefreshQuota", stamp=stamp))
        )


@pytest.mark.parametrize(
    "stamp",
    ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01 00:00:00", "2026-01-01T00:00:00+08:00", ""],
)
def test_malformed_timestamps_are_format_errors(api_node: ApiNode, stamp: str) -> None:
    prepared = acs3_request(api_node.port, FULL, "DescribeRefreshQuota", stamp=stamp or " ")
    if stamp:
        assert_error(call(api_node, prepared), 400, "InvalidTimeStamp.Format")
        v1 = v1_request(api_node.port, FULL, "DescribeRefreshQuota", stamp=stamp)
        assert_error(call(api_node, v1), 400, "InvalidTimeStamp.Format")
    else:
        assert_error(call(api_node, prepared), 400, "MissingParameter")


# --- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Action",
        "Version",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    ],
)
def test_a_missing_v1_parameter_is_named(api_node: ApiNode, name: str) -> None:
    prepared = v1_request(api_node.port, FULL, "DescribeRefreshQuota")
    path, _, query = prepared.target.partition("?")
    kept = "&".join(p for p in query.split("&") if p.split("=")[0] != name)
    answer = call(api_node, replace(prepared, target=f"{path}?{kept}"))
    assert_error(answer, 400, "MissingParameter")
    assert name in answer.json["Message"]


@pytest.mark.parametrize(
    "header", ["x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"]
)
def test_a_missing_acs3_header_is_named(api_node: ApiNode, header: str) -> None:
    prepared = acs3_request(api_node.port, FULL, "DescribeRefreshQuota")
    headers = {k: v for k, v in prepared.headers.items() if k != header}
    answer = call(api_node, replace(prepared, headers=headers))
    assert_error(answer, 400, "MissingParameter")
    assert header in answer.json["Message"]


def test_an_unsigned_request_is_refused(api_node: ApiNode) -> None:
    answer = call(api_node, Prepared("GET", "/?Action=DescribeUserDomains&Version=2018-05-10"))
    assert_error(answer, 400, "MissingParameter")
    assert_error(call(api_node, Prepared("GET", "/")), 400, "MissingParameter")


def test_duplicated_parameters_are_refused(api_node: ApiNode) -> None:
    prepared = v1_request(api_node.port, FULL, "DescribeUserDomains", {"PageSize": "5"})
    twice = replace(prepared, target=prepared.target + "&PageSize=5")
    answer = call(api_node, twice)
    assert_error(answer, 400, "InvalidParameter")
    assert "PageSize" in answer.json["Message"]
    # In the query and in the form body at once.
    both = v1_request(
        api_node.port, FULL, "DescribeUserDomains", method="POST", form={"PageSize": "5"}
    )
    both = replace(both, target=both.target + "&PageSize=5")
    assert_error(call(api_node, both), 400, "InvalidParameter")


def test_an_unknown_action_or_version_is_not_found(api_node: ApiNode) -> None:
    for prepared in (
        v1_request(api_node.port, FULL, "DescribeNothingAtAll"),
        acs3_request(api_node.port, FULL, "NoSuchAction"),
        v1_request(api_node.port, FULL, "DescribeRefreshQuota", version="2014-11-11"),
        acs3_request(api_node.port, FULL, "DescribeRefreshQuota", version="2014-11-11"),
        v1_request(api_node.port, FULL, "Describe/../x"),
    ):
        assert_error(call(api_node, prepared), 404, "InvalidApi.NotFound")


def test_a_read_only_key_cannot_write(api_node: ApiNode) -> None:
    for action in ("AddCdnDomain", "DeleteCdnDomain", "BatchSetCdnDomainConfig", "NoSuchAction"):
        params = {"DomainName": "ro.example.com"}
        for prepared in (
            v1_request(api_node.port, READ_ONLY, action, params),
            acs3_request(api_node.port, READ_ONLY, action, params),
        ):
            assert_error(call(api_node, prepared), 403, "Forbidden.RAM")


# --- sizes ---------------------------------------------------------------------------------


def test_a_body_over_1_mib_is_refused(api_node: ApiNode) -> None:
    big = {"Content": "x" * (1 << 20)}
    prepared = v1_request(api_node.port, FULL, "DescribeRefreshTasks", method="POST", form=big)
    assert_error(call(api_node, prepared), 413, "RequestEntityTooLarge")
    prepared = acs3_request(api_node.port, FULL, "DescribeRefreshTasks", form=big)
    assert_error(call(api_node, prepared), 413, "RequestEntityTooLarge")


def test_a_chunked_body_over_1_mib_is_refused(api_node: ApiNode) -> None:
    prepared = v1_request(api_node.port, FULL, "DescribeRefreshTasks", method="POST")
    chunk = b"a=" + b"x" * 65534
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    headers = {
        **prepared.headers,
        "Transfer-Encoding": "chunked",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    chunked = replace(prepared, headers=headers, body=body)
    answer = send(api_node.port, chunked)
    assert_error(answer, 413, "RequestEntityTooLarge")


@pytest.mark.parametrize("where", ["query", "form"])
def test_ten_thousand_parameters_are_refused_fast(api_node: ApiNode, where: str) -> None:
    many = "&".join(f"P{i}=1" for i in range(10_000))
    prepared = v1_request(api_node.port, FULL, "DescribeUserDomains", method="POST")
    if where == "query":
        prepared = replace(prepared, target=f"{prepared.target}&{many}")
    else:
        prepared = replace(
            prepared,
            body=many.encode(),
            headers={**prepared.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
    answer = call(api_node, prepared)
    assert_error(answer, 400, "InvalidParameter")
    assert "parameters" in answer.json["Message"]
    assert answer.elapsed < 5.0, answer.elapsed


def test_bad_encodings_are_invalid_parameters(api_node: ApiNode) -> None:
    prepared = v1_request(api_node.port, FULL, "DescribeUserDomains")
    answer = call(api_node, replace(prepared, target=prepared.target + "&DomainName=%ff%fe"))
    assert_error(answer, 400, "InvalidParameter")
    form = replace(
        prepared,
        method="POST",
        body=b"DomainName=\xff",
        headers={**prepared.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(call(api_node, form), 400, "InvalidParameter")


# --- everything else -------------------------------------------------------------------------


def test_other_methods_are_refused(api_node: ApiNode) -> None:
    prepared = v1_request(api_node.port, FULL, "DescribeRefreshQuota")
    for method in ("PUT", "DELETE", "PATCH"):
        answer = call(api_node, replace(prepared, method=method))
        assert_error(answer, 400, "UnsupportedHTTPMethod")


def test_a_key_over_its_rate_is_throttled(api_node: ApiNode) -> None:
    answers = [
        call(api_node, v1_request(api_node.port, SLOW, "DescribeRefreshQuota")) for _ in range(3)
    ]
    assert_passed(answers[0])
    assert_error(answers[-1], 400, "Throttling.User")
    assert 0 < int(answers[-1].headers["x-acs-retry-after"]) <= 1000  # milliseconds
    assert answers[-1].headers["retry-after"] == "1"
    # Other keys are not slowed down by it.
    assert_passed(call(api_node, v1_request(api_node.port, FULL, "DescribeRefreshQuota")))
    time.sleep(1.1)
    assert_passed(call(api_node, v1_request(api_node.port, SLOW, "DescribeRefreshQuota")))


def test_metrics_and_health_are_still_served(api_node: ApiNode) -> None:
    assert api_node.server.metrics()
    health = send(api_node.port, Prepared("GET", "/healthz"))
    assert health.status == 200 and health.body == b"ok\n"


def test_no_secret_or_traceback_reaches_the_log(api_node: ApiNode) -> None:
    call(api_node, v1_request(api_node.port, Key(FULL.id, "wrong-secret-0123456789"), "X"))
    malformed = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert raw_request(api_node.port, malformed).split(b"\r\n")[0].endswith(b" 400 Bad Request")
    log = api_node.log_text()
    for secret in SECRETS:
        assert secret not in log
    assert "Traceback" not in log


# --- starting ------------------------------------------------------------------------------


def _serve(
    tmp_path: Path, config: str, admin: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    origin = tmp_path / "origin"
    origin.mkdir(exist_ok=True)
    config_file = tmp_path / "node.toml"
    config_file.write_text(
        config + f'\n[[domain]]\nname = "a.example.com"\norigins = ["{origin}"]\n'
    )
    command = [
        *vodedge_command(), "serve", "--config", str(config_file),
        "--listen", f"127.0.0.1:{free_port()}", "--admin", admin,
        "--cache-dir", str(tmp_path / "cache"), "--workers", "1",
    ]  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VODEDGE_ACCESS")}
    return subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_a_public_admin_listener_without_keys_refuses_to_start(tmp_path: Path) -> None:
    done = _serve(tmp_path, "", f"0.0.0.0:{free_port()}", {})
    assert done.returncode == 2, done
    assert "not loopback and no access key" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        ("", {"VODEDGE_ACCESS_KEY_ID": "only-the-id"}, "set both"),
        ("", {"VODEDGE_ACCESS_KEY_ID": "k", "VODEDGE_ACCESS_KEY_SECRET": "short-secret"}, "16"),
        ('[[access_keys]]\nid = "k"\nsecret = "short-secret"\n', {}, "access_keys[0]"),
        ('[[access_keys]]\nid = "k k"\nsecret = "0123456789abcdef"\n', {}, "access_keys[0]"),
        (
            keys_toml() + f'[[access_keys]]\nid = "{FULL.id}"\nsecret = "x{FULL.secret}"\n',
            {},
            "twice",
        ),
    ],
)
def test_bad_keys_refuse_to_start_without_showing_the_secret(
    tmp_path: Path, config: str, env: dict[str, str], message: str
) -> None:
    done = _serve(tmp_path, config, f"127.0.0.1:{free_port()}", env)
    assert done.returncode == 2, done
    assert message in done.stderr, done.stderr
    assert "short-secret" not in done.stderr and FULL.secret not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_loopback_admin_listener_without_keys_starts_and_refuses_every_call(
    tmp_path: Path,
) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    from edge_harness import Vodedge

    config = f'[[domain]]\nname = "a.example.com"\norigins = ["{origin}"]\n'
    server = Vodedge(tmp_path, config, env={})
    server.start()
    try:
        answer = send(
            server.admin_port, v1_request(server.admin_port, FULL, "DescribeRefreshQuota")
        )
        assert_error(answer, 404, "InvalidAccessKeyId.NotFound")
    finally:
        server.stop()


def test_percent_encoding_is_rfc3986(api_node: ApiNode) -> None:
    """Values with every kind of character sign the same on both sides."""
    value = "".join(chr(c) for c in range(32, 127)) + "é中文🎬"
    assert quote(value, safe="~")
    for prepared in (
        v1_request(api_node.port, FULL, "DescribeUserDomains", {"DomainName": value}),
        acs3_request(api_node.port, FULL, "DescribeUserDomains", {"DomainName": value}),
        acs3_request(api_node.port, FULL, "DescribeUserDomains", form={"DomainName": value}),
    ):
        assert_passed(call(api_node, prepared))


def test_a_reload_changes_the_keys(tmp_path: Path) -> None:
    server = start_node(tmp_path)
    try:
        node = ApiNode(server)
        assert_passed(call(node, v1_request(node.port, FULL, "DescribeRefreshQuota")))
        added = Key("vodedge-added", "added-secret-0123456789abcdef")
        origin = tmp_path / "origin"
        server.reload(
            f'[[access_keys]]\nid = "{added.id}"\nsecret = "{added.secret}"\n'
            f'[[domain]]\nname = "preloaded.example.com"\norigins = ["{origin}"]\n'
        )

        def reloaded() -> bool:
            answer = call(node, v1_request(node.port, added, "DescribeRefreshQuota"))
            return answer.code != "InvalidAccessKeyId.NotFound"

        wait_until(reloaded, 10, "the new key to be accepted")
        answer = call(node, v1_request(node.port, FULL, "DescribeRefreshQuota"))
        assert_error(answer, 404, "InvalidAccessKeyId.NotFound")
        # The environment's pair stays.
        assert_passed(call(node, v1_request(node.port, ENV, "DescribeRefreshQuota")))
    finally:
        server.stop()


def _listed(node: ApiNode, name: str) -> bool:
    answer = call(node, v1_request(node.port, FULL, "DescribeUserDomains", {"DomainName": name}))
    assert answer.status == 200, answer
    return bool(answer.json["Domains"]["PageData"])


def test_refused_hand_made_writes_change_nothing(api_node: ApiNode) -> None:
    name = "hand-made.example.com"
    params = {
        "DomainName": name,
        "CdnType": "video",
        "Sources": '[{"content":"127.0.0.1","type":"ipaddr","port":8000}]',
    }
    port = api_node.port
    good = v1_request(port, FULL, "AddCdnDomain", params, method="POST")
    wrong = Key(FULL.id, "wrong-secret-0123456789abcdef")
    refused = [
        replace(good, target=good.target.replace("hand-made", "other")),
        v1_request(port, FULL, "AddCdnDomain", params, method="POST", stamp=timestamp(-3600)),
        v1_request(port, FULL, "AddCdnDomain", params, method="POST", stamp=timestamp(3600)),
        v1_request(port, wrong, "AddCdnDomain", params, method="POST"),
        v1_request(port, UNKNOWN, "AddCdnDomain", params, method="POST"),
        v1_request(port, READ_ONLY, "AddCdnDomain", params, method="POST"),
        replace(good, target=good.target + "&CdnType=video"),
        replace(good, target="&".join(p for p in good.target.split("&") if "Signature=" not in p)),
        acs3_request(port, FULL, "AddCdnDomain", form={**params, "Pad": "x" * (1 << 20)}),
        acs3_request(port, FULL, "AddCdnDomain", {**params, **{f"P{i}": "" for i in range(600)}}),
    ]
    for prepared in refused:
        answer = call(api_node, prepared)
        assert answer.status >= 400 and answer.code in AUTH_CODES | {
            "InvalidParameter",
            "RequestEntityTooLarge",
        }, answer
        assert not _listed(api_node, name), prepared
    # The untouched request works once; its replay never reaches the action again.
    assert call(api_node, good).status == 200
    assert _listed(api_node, name)
    assert_error(call(api_node, good), 400, "SignatureNonceUsed")


def test_a_caller_leaving_mid_body_is_no_error_in_the_log(api_node: ApiNode) -> None:
    for head in (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 100\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ):
        with socket.create_connection(("127.0.0.1", api_node.port), timeout=5) as sock:
            sock.sendall(head)
            time.sleep(0.2)
    assert_passed(call(api_node, v1_request(api_node.port, FULL, "DescribeRefreshQuota")))
    assert "vodedge: api:" not in api_node.log_text()


def test_silent_connections_to_the_admin_listener_are_closed(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    origin.mkdir()
    config = "[node]\nidle_timeout = 1\n" + keys_toml()
    config += f'[[domain]]\nname = "a.example.com"\norigins = ["{origin}"]\n'
    server = start_node(tmp_path, config)
    try:
        with socket.create_connection(("127.0.0.1", server.admin_port), timeout=15) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the node
            assert time.monotonic() - started < 10
    finally:
        server.stop()


def test_a_huge_wrongly_signed_call_gets_a_bounded_answer(api_node: ApiNode) -> None:
    wrong = Key(FULL.id, "not-the-secret-0123456789")
    form = {"ObjectPath": "a" * 900_000}
    prepared = v1_request(api_node.port, wrong, "RefreshObjectCaches", method="POST", form=form)
    answer = call(api_node, prepared)
    assert_error(answer, 400, "SignatureDoesNotMatch")
    assert len(answer.body) < 300_000 and answer.json["Message"].endswith("...")
