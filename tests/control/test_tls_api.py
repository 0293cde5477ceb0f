"""Certificates through the API, with both official SDKs: SetCdnDomainSSLCertificate makes
a domain answer on the TLS listener (SNI, verification on), DescribeDomainCertificateInfo
describes it without its key, bad certificates get the API's codes and change nothing."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_client import Key
from api_node import FULL, READ_ONLY, ApiNode, keys_toml, start_node
from Tea.exceptions import TeaException
from tls_certs import CertificateAuthority, Pair, other_key_pem
from tls_harness import client_context, get

from ports import free_port
from vodedge.control.certificates import certificate_names

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
A, B = "a.tls-api.test", "b.tls-api.test"
# How long to wait for a change: each one must show within a second, but a check takes
# several TLS handshakes, slow on a busy machine.
CHANGE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority()


@pytest.fixture(scope="module")
def ca_file(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ca.write(tmp_path_factory.mktemp("ca") / "ca.pem")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNode]:
    """Two workers, a TLS listener, and two domains (from the file) without certificates."""
    work = tmp_path_factory.mktemp("tls-api")
    config = keys_toml() + "".join(
        f'\n[[domain]]\nname = "{name}"\norigins = ["{SAMPLES}"]\n' for name in (A, B)
    )
    tls_port = free_port()
    server = start_node(work, config, workers=2, limits={"--listen-tls": f"127.0.0.1:{tls_port}"})
    server.tls_port = tls_port  # type: ignore[attr-defined]
    try:
        yield ApiNode(server)
    finally:
        server.stop()


def tls_port(node: ApiNode) -> int:
    port = node.server.tls_port  # type: ignore[attr-defined]
    assert isinstance(port, int)
    return port


def set_certificate(
    node: ApiNode, domain: str, pair: Pair | None, *, client: Any = None, **extra: str
) -> Any:
    """SetCdnDomainSSLCertificate through the current SDK."""
    from alibabacloud_cdn20180510 import models

    request = models.SetCdnDomainSSLCertificateRequest(
        domain_name=domain,
        sslprotocol=extra.pop("protocol", "on"),
        sslpub=None if pair is None else pair.cert_pem,
        sslpri=None if pair is None else pair.key_pem,
        cert_type=extra.pop("cert_type", "upload"),
        cert_name=extra.pop("name", None),
    )
    assert not extra
    return (client or node.new_client()).set_cdn_domain_sslcertificate(request)


def sdk_error(call: Callable[[], object]) -> str:
    with pytest.raises(TeaException) as caught:
        call()
    return str(caught.value.code)


def describe(node: ApiNode, domain: str, key: Key = FULL) -> dict[str, Any]:
    from alibabacloud_cdn20180510 import models

    answer = node.new_client(key).describe_domain_certificate_info(
        models.DescribeDomainCertificateInfoRequest(domain_name=domain)
    )
    body = answer.body.to_map()
    assert isinstance(body, dict)
    return body


def served_names(node: ApiNode, ca_file: Path, host: str) -> tuple[str, ...] | None:
    """The names of the certificate served for `host` (None: the handshake failed)."""
    import ssl

    try:
        answer = get(tls_port(node), host, "/talk.mp4", tls=client_context(ca_file))
    except (ssl.SSLError, ConnectionError):
        return None
    if answer.status == 421:
        # HTTPS went off between the handshake and the request: refused as well.
        assert answer.headers["X-Vodedge-Error"] == "misdirected_request"
        return None
    assert answer.status == 200 and answer.body == (SAMPLES / "talk.mp4").read_bytes()
    assert answer.peer is not None
    return certificate_names(answer.peer)


def eventually(check: Callable[[], object], expected: object, since: float | None = None) -> None:
    """`check()` returns `expected` on every worker within a second of `since` (the
    monotonic time of the call's answer; default: now, just after it).

    Judged by when each check began, not by how long checking takes: a check begun
    more than a second after `since` must see the change (the node handles it later
    still), while a test runner slowed by a busy machine only checks less often.
    Several connections per round: both workers must have the change.
    """
    since = time.monotonic() if since is None else since
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while True:
        seen = []
        for _ in range(4):
            began = time.monotonic()
            seen.append(check())
            late = began - since
            assert seen[-1] == expected or late <= 1.0, (
                f"{seen[-1]!r}, not {expected!r}, {late:.2f} s after the change"
            )
        if all(s == expected for s in seen):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still {seen}, not {expected!r}")
        time.sleep(0.05)


def test_two_domains_two_certificates_one_listener(
    node: ApiNode, ca: CertificateAuthority, ca_file: Path
) -> None:
    assert served_names(node, ca_file, A) is None  # no certificate yet: no handshake
    set_certificate(node, A, ca.issue(A), name="a-cert")
    set_certificate(node, B, ca.issue(B, f"www.{B}"))
    answered = time.monotonic()
    eventually(lambda: served_names(node, ca_file, A), (A,), answered)
    eventually(lambda: served_names(node, ca_file, B), (B, f"www.{B}"), answered)


def test_describe_tells_the_certificate_never_the_key(
    node: ApiNode, ca: CertificateAuthority
) -> None:
    not_after = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    pair = ca.issue(A, not_after=not_after)
    set_certificate(node, A, pair, name="a-cert")
    body = describe(node, A)
    assert set(body) == {"RequestId", "CertInfos"}
    (info,) = body["CertInfos"]["CertInfo"]
    assert info["DomainName"] == A
    assert info["CertName"] == "a-cert"
    assert info["CertDomainName"] == A
    assert info["CertExpireTime"] == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["CertLife"] == "3 months"
    assert info["CertOrg"] == "vodedge tests"
    assert (info["CertType"], info["ServerCertificateStatus"]) == ("upload", "on")
    assert info["ServerCertificate"] == pair.cert_pem
    text = json.dumps(body)
    assert "PRIVATE KEY" not in text
    key_body = "".join(pair.key_pem.splitlines()[1:-1])
    assert key_body[:40] not in text.replace("\\n", "")
    # A read-only key may describe, not set; the key is not in the node's log either.
    assert describe(node, A, READ_ONLY)["CertInfos"] == body["CertInfos"]
    read_only = node.new_client(READ_ONLY)
    assert sdk_error(lambda: set_certificate(node, A, pair, client=read_only)) == "Forbidden.RAM"
    assert key_body[:40] not in node.log_text()


def test_the_old_sdk_switches_https_off_and_on(
    node: ApiNode, ca: CertificateAuthority, ca_file: Path
) -> None:
    from aliyunsdkcdn.request.v20180510.SetCdnDomainSSLCertificateRequest import (
        SetCdnDomainSSLCertificateRequest,
    )

    pair = ca.issue(B)
    set_certificate(node, B, pair)
    eventually(lambda: served_names(node, ca_file, B), (B,))
    off = SetCdnDomainSSLCertificateRequest()
    off.set_DomainName(B)
    off.set_SSLProtocol("off")
    node.old_client().call(off)
    eventually(lambda: served_names(node, ca_file, B), None)
    assert describe(node, B)["CertInfos"]["CertInfo"][0]["ServerCertificateStatus"] == "off"
    on = SetCdnDomainSSLCertificateRequest()
    on.set_DomainName(B)
    on.set_SSLProtocol("on")
    on.set_CertType("upload")
    on.set_SSLPub(pair.cert_pem)
    on.set_SSLPri(pair.key_pem)
    node.old_client().call(on)
    eventually(lambda: served_names(node, ca_file, B), (B,))


def test_bad_certificates_get_the_documented_codes_and_change_nothing(
    node: ApiNode, ca: CertificateAuthority, ca_file: Path
) -> None:
    good = ca.issue(A)
    set_certificate(node, A, good)
    eventually(lambda: served_names(node, ca_file, A), (A,))
    before = describe(node, A)["CertInfos"]
    now = datetime.now(UTC)
    expired = ca.issue(A, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    mismatched = Pair(good.cert_pem, other_key_pem(), good.certificate)
    garbage = Pair("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                   good.key_pem, good.certificate)  # fmt: skip
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: set_certificate(node, A, expired), "Certificate.Expired"),
        (lambda: set_certificate(node, A, mismatched), "Certificate.MissMatch"),
        (lambda: set_certificate(node, A, garbage), "InvalidSSLPub"),
        (lambda: set_certificate(node, A, good, cert_type="cas"),
         "SetDomainCertificate.ParameterError"),
        (lambda: set_certificate(node, A, good, protocol="maybe"),
         "InvalidSSLProtocol.ValueNotSupported"),
        (lambda: set_certificate(node, A, None), "SSLPub.MissingParameter"),
        (lambda: set_certificate(node, A, good, name="n" * 129), "InvalidCertName.TooLong"),
        (lambda: set_certificate(node, "nobody.tls-api.test", good), "InvalidDomain.NotFound"),
        (lambda: describe(node, "nobody.tls-api.test"), "InvalidDomain.NotFound"),
    ]  # fmt: skip
    assert [sdk_error(call) for call, _ in cases] == [code for _, code in cases]
    assert describe(node, A)["CertInfos"] == before
    assert served_names(node, ca_file, A) == (A,)


def test_keys_are_files_of_mode_0600_in_a_private_directory(
    node: ApiNode, ca: CertificateAuthority
) -> None:
    pair = ca.issue(A)
    set_certificate(node, A, pair)
    state = node.server.cache_dir.parent / "state"
    keys = []
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while not keys and time.monotonic() < deadline:
        keys = [p for p in (state / "certs").glob("*.key") if p.read_text() == pair.key_pem]
        time.sleep(0.05)
    assert keys, sorted(p.name for p in (state / "certs").iterdir())
    assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "certs").stat().st_mode) == 0o700
    # The store holds the keys too: its database and WAL are the owner's only.
    stored = list(state.glob("control.sqlite*"))
    assert stored
    for path in stored:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_https_force_through_the_sdk_redirects(
    node: ApiNode, ca: CertificateAuthority, ca_file: Path
) -> None:
    from alibabacloud_cdn20180510 import models

    set_certificate(node, A, ca.issue(A))
    functions = [{"functionName": "https_force",
                  "functionArgs": [{"argName": "enable", "argValue": "on"},
                                   {"argName": "https_rewrite", "argValue": "308"}]}]  # fmt: skip
    node.new_client().batch_set_cdn_domain_config(
        models.BatchSetCdnDomainConfigRequest(domain_names=A, functions=json.dumps(functions))
    )

    def plain() -> tuple[int, str | None]:
        answer = get(node.server.port, A, "/talk.mp4?x=1")
        return answer.status, answer.headers.get("Location")

    eventually(plain, (308, f"https://{A}:{tls_port(node)}/talk.mp4?x=1"))
    assert served_names(node, ca_file, A) == (A,)


def test_a_wildcard_domain_added_through_the_api_gets_its_certificate(
    node: ApiNode, ca: CertificateAuthority, ca_file: Path
) -> None:
    import socket

    from alibabacloud_cdn20180510 import models

    sources = json.dumps([{"content": "127.0.0.1", "type": "ipaddr", "port": 9}])
    node.new_client().add_cdn_domain(
        models.AddCdnDomainRequest(domain_name=".w.tls-api.test", cdn_type="video", sources=sources)
    )
    set_certificate(node, ".w.tls-api.test", ca.issue("*.w.tls-api.test"))

    def handshake(name: str) -> tuple[str, ...] | None:
        import ssl

        try:
            with client_context(ca_file).wrap_socket(
                socket.create_connection(("127.0.0.1", tls_port(node)), timeout=10),
                server_hostname=name,
            ) as sock:
                der = sock.getpeercert(binary_form=True)
        except (ssl.SSLError, ConnectionError):
            return None
        assert der is not None
        from cryptography import x509

        return certificate_names(x509.load_der_x509_certificate(der))

    eventually(lambda: handshake("x.w.tls-api.test"), ("*.w.tls-api.test",))
    assert handshake("y.w.tls-api.test") == ("*.w.tls-api.test",)
    assert handshake("y.x.w.tls-api.test") is None  # one label only, as the Host lookup
    info = describe(node, ".w.tls-api.test")["CertInfos"]["CertInfo"][0]
    assert (info["DomainName"], info["CertDomainName"]) == (".w.tls-api.test", "*.w.tls-api.test")
