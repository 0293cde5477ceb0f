"""TLS per domain: certificate checks, SNI on one listener, https_force / http_force.

Certificates are made at test time (a CA and leaves, tls_certs.py); the client
verifies them against that CA with host-name checking on, as a browser would.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tls_certs import CertificateAuthority, Pair, encrypted_key_pem, other_key_pem
from tls_harness import TlsNode, client_context, get, running

from oracle import vodedge_command
from vodedge.config import (
    ConfigError,
    ConfigFileError,
    Domain,
    Function,
    NodeConfig,
    OriginSpec,
    load_toml,
)
from vodedge.config.model import DomainCertificate, ListenAddress
from vodedge.control.certificates import (
    CertificateStore,
    certificate_names,
    check_pair,
    summarize,
)
from vodedge.control.errors import ApiError
from vodedge.edge.tls import SniContexts, scheme_answer

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    """The test CA every certificate here is signed by."""
    return CertificateAuthority()


# --- checking an uploaded pair (SetCdnDomainSSLCertificate's errors) -----------------


def _code(pub: str, pri: str) -> str:
    with pytest.raises(ApiError) as caught:
        check_pair(pub, pri)
    assert "\n" not in caught.value.message
    assert caught.value.status == 400
    return caught.value.code


def test_a_good_pair_is_kept_as_clean_pem(ca: CertificateAuthority) -> None:
    pair = ca.issue("a.example.test", "www.a.example.test")
    noisy = "junk before\n" + pair.cert_pem + ca.pem + "trailing junk\n"
    checked = check_pair(noisy, pair.key_pem)
    assert checked.chain_pem.decode() == pair.cert_pem + ca.pem  # leaf first, junk gone
    assert b"PRIVATE KEY" in checked.key_pem
    assert certificate_names(checked.leaf) == ("a.example.test", "www.a.example.test")
    # A chain pasted CA first is put in the order TLS sends it: the key's certificate first.
    reordered = check_pair(ca.pem + pair.cert_pem, pair.key_pem)
    assert reordered.chain_pem == checked.chain_pem


def test_bad_pairs_get_the_documented_codes(ca: CertificateAuthority) -> None:
    pair = ca.issue("a.example.test")
    assert _code("not a certificate", pair.key_pem) == "InvalidSSLPub"
    broken = pair.cert_pem.replace(pair.cert_pem.splitlines()[3], "A" * 64)
    assert _code(broken, pair.key_pem) == "InvalidSSLPub"
    assert _code(pair.cert_pem, "not a key") == "InvalidSSLPri"
    assert _code(pair.cert_pem, pair.key_pem.replace("M", "Q")) == "InvalidSSLPri"
    assert _code(pair.cert_pem, encrypted_key_pem(pair)) == "InvalidSSLPri"
    assert _code(pair.cert_pem, other_key_pem()) == "Certificate.MissMatch"
    assert _code(pair.cert_pem * 200, pair.key_pem) == "InvalidCertificate.TooLong"


def test_an_expired_certificate_is_refused_one_not_yet_valid_is_not(
    ca: CertificateAuthority,
) -> None:
    now = datetime.now(UTC)
    old = ca.issue("a.example.test", not_before=now - timedelta(days=9), not_after=now)
    assert _code(old.cert_pem, old.key_pem) == "Certificate.Expired"
    early = ca.issue("a.example.test", not_before=now + timedelta(days=1))
    assert check_pair(early.cert_pem, early.key_pem).leaf == early.certificate


def test_stored_files_are_private_and_named_by_content(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    store = CertificateStore(tmp_path / "certs")
    first = store.save("*.example.test", check_pair(*_pems(ca.issue("*.example.test"))))
    second = store.save("*.example.test", check_pair(*_pems(ca.issue("*.example.test"))))
    assert first != second
    for path in (first.cert_path, first.key_path, second.key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "certs").stat().st_mode) == 0o700
    assert summarize(second.cert_path).names == ("*.example.test",)
    # A pair the API stored is written once, where save would have put it.
    pair = check_pair(*_pems(ca.issue("m.example.test")))
    made = store.materialize("m.example.test", pair.chain_pem, pair.key_pem)
    assert stat.S_IMODE(made.key_path.stat().st_mode) == 0o600
    assert made.key_path.read_bytes() == pair.key_pem
    stamp = made.key_path.stat().st_mtime_ns
    assert store.materialize("m.example.test", pair.chain_pem, pair.key_pem) == made
    assert made.key_path.stat().st_mtime_ns == stamp
    # Unreferenced files go once older than the grace; fresh ones stay (another
    # worker may just have written them for a newer version of the store).
    everything = sorted(p.name for p in (tmp_path / "certs").iterdir())
    assert len(everything) == 6
    assert store.prune([second.cert_path, second.key_path]) == 0
    assert store.prune([second.cert_path, second.key_path], grace=-1) == 4
    (tmp_path / "certs" / "notes.txt").write_text("not ours")
    assert store.prune([], grace=-1) == 2
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["notes.txt"]


def _pems(pair: Pair) -> tuple[str, str]:
    return pair.cert_pem, pair.key_pem


# --- the functions and the redirect ---------------------------------------------------


def _domain(
    name: str, *functions: Function, certificate: DomainCertificate | None = None
) -> Domain:
    return Domain(name, (OriginSpec.from_directory(SAMPLES),), functions, certificate=certificate)


def test_https_force_and_http_force_take_the_documented_arguments() -> None:
    assert _domain("a.test", Function.of("https_force", enable="on")).scheme_redirect is not None
    on_308 = Function.of("https_force", enable="on", https_rewrite="308")
    assert _domain("a.test", on_308).scheme_redirect.status == 308  # type: ignore[union-attr]
    assert _domain("a.test", Function.of("http_force", enable="off")).scheme_redirect is None
    bad = [
        Function.of("https_force", enable="on", https_rewrite="302"),
        Function.of("https_force", https_rewrite="301"),
        Function.of("http_force", enable="on", https_rewrite="301"),
    ]
    codes = []
    for function in bad:
        with pytest.raises(ConfigError) as caught:
            _domain("a.test", function)
        codes.append(caught.value.code)
    assert codes == [
        "InvalidArgValue.Malformed",
        "MissingParameter",
        "InvalidArgName.ValueNotSupported",
    ]
    with pytest.raises(ConfigError):  # one or the other, as the docs say
        _domain(
            "a.test",
            Function.of("https_force", enable="on"),
            Function.of("http_force", enable="off"),
        )


def test_the_redirect_keeps_path_and_query_and_names_the_listener(tmp_path: Path) -> None:
    certificate = DomainCertificate(tmp_path / "a.crt", tmp_path / "a.key")
    forced = _domain("a.test", Function.of("https_force", enable="on"), certificate=certificate)
    node = NodeConfig(listen=ListenAddress("0.0.0.0", 80), listen_tls=ListenAddress("::", 8443))

    def answer(domain: Domain, secure: bool, host: str = "a.test:80") -> object:
        found = scheme_answer(domain, node, secure=secure, host=host, path_qs="/v/x.mp4?a=1&b")
        return found and (found.status, found.location)

    assert answer(forced, False) == (301, "https://a.test:8443/v/x.mp4?a=1&b")
    assert answer(forced, True) is None
    on_443 = replace(node, listen_tls=ListenAddress("0.0.0.0", 443))
    found = scheme_answer(forced, on_443, secure=False, host="A.test", path_qs="/")
    assert found is not None and found.location == "https://A.test/"
    # With HTTPS off for the domain, https_force has nowhere to send clients.
    off = replace(forced, certificate=replace(certificate, enabled=False))
    assert answer(off, False) is None
    plain = _domain("a.test", Function.of("http_force", enable="on", http_rewrite="308"))
    assert answer(plain, False) is None
    # Over TLS a domain without HTTPS is misdirected, whatever its functions.
    assert answer(plain, True) == (421, None)
    both = replace(plain, certificate=certificate)
    assert answer(both, True, host="[::1]:8443") == (308, "http://[::1]/v/x.mp4?a=1&b")


# --- contexts by SNI, in process ------------------------------------------------------


def test_sni_picks_exact_then_wildcard_then_the_catch_all(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    def certificate(*names: str) -> DomainCertificate:
        cert, key = ca.issue(*names).write(tmp_path, names[0].replace("*", "_"))
        return DomainCertificate(cert, key)

    a = _domain("a.example.test", certificate=certificate("a.example.test"))
    wild = _domain("*.example.test", certificate=certificate("*.example.test"))
    off = _domain("off.example.test", certificate=replace(certificate("off.x"), enabled=False))
    config = NodeConfig.with_domains(a, wild, off)
    logged: list[str] = []
    contexts = SniContexts(lambda: config, logged.append)
    assert contexts.context_for("a.example.test") is not contexts.context_for("b.example.test")
    assert contexts.context_for("b.example.test") is not None
    # A stopped HTTPS (off) does not fall back to the wildcard: refused like no name.
    assert contexts.context_for("off.example.test") is None
    assert contexts.context_for("c.b.example.test") is None
    assert contexts.context_for(None) is None
    default = _domain("*", certificate=certificate("default.test"))
    config = NodeConfig.with_domains(a, default)
    assert contexts.context_for("nobody.test") is contexts.context_for(None) is not None
    assert logged == []


def test_a_certificate_that_stops_loading_drops_only_its_domain(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    good_cert, good_key = ca.issue("a.test").write(tmp_path, "a")
    bad_cert, _ = ca.issue("b.test").write(tmp_path, "b")
    config = NodeConfig.with_domains(
        _domain("a.test", certificate=DomainCertificate(good_cert, good_key)),
        _domain("b.test", certificate=DomainCertificate(bad_cert, good_key)),  # key mismatch
    )
    logged: list[str] = []
    contexts = SniContexts(lambda: config, logged.append)
    assert contexts.context_for("a.test") is not None
    assert contexts.context_for("b.test") is None
    assert len(logged) == 1 and logged[0].startswith("vodedge: b.test: certificate not loaded")


# --- a real node: two domains, two certificates, one listener -------------------------


def _toml(domains: dict[str, tuple[Path, Path] | None], *, force: str = "") -> str:
    lines = []
    for name, files in domains.items():
        lines += ["[[domain]]", f'name = "{name}"', f'origins = ["{SAMPLES}"]']
        if files is not None:
            lines.append(f'tls = {{ cert = "{files[0]}", key = "{files[1]}" }}')
        if force and name.startswith("a."):
            lines += ["[[domain.function]]", f'name = "{force}"', 'args = { enable = "on" }']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def node(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNode]:
    """Two workers; a.example.test (https_force), *.wild.test with certificates,
    plain.test without."""
    work = tmp_path_factory.mktemp("tls-node")
    files = {
        "a.example.test": ca.issue("a.example.test").write(work / "certs", "a"),
        "*.wild.test": ca.issue("*.wild.test").write(work / "certs", "wild"),
        "plain.test": None,
    }
    with running(TlsNode(work, _toml(files, force="https_force"))) as server:
        yield server


@pytest.fixture(scope="module")
def ca_file(ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA certificate as a file, for clients."""
    return ca.write(tmp_path_factory.mktemp("ca") / "ca.pem")


def test_each_domain_gets_its_own_certificate_verified(node: TlsNode, ca_file: Path) -> None:
    tls = client_context(ca_file)
    expected = (SAMPLES / "talk.mp4").read_bytes()
    for host, names in [
        ("a.example.test", ["a.example.test"]),
        ("one.wild.test", ["*.wild.test"]),
        ("two.wild.test", ["*.wild.test"]),
    ]:
        answer = get(node.tls_port, host, "/talk.mp4", tls=tls)
        assert answer.status == 200, answer.body[:200]
        assert answer.body == expected
        assert answer.peer is not None and list(certificate_names(answer.peer)) == names


# asyncio's TLS layer closes a failed handshake without flushing OpenSSL's alert.
REFUSED = "UNRECOGNIZED_NAME|unrecognized name|UNEXPECTED_EOF|EOF occurred"


def test_names_without_a_certificate_fail_the_handshake(node: TlsNode, ca_file: Path) -> None:
    tls = client_context(ca_file)
    for name in ("plain.test", "nobody.test", "x.y.wild.test"):
        with pytest.raises(ssl.SSLError, match=REFUSED):
            get(node.tls_port, name, tls=tls)
    # Even a client that verifies nothing is shown no certificate.
    no_sni = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    no_sni.check_hostname = False
    no_sni.verify_mode = ssl.CERT_NONE
    for server_name in ("", "nobody.test"):
        with pytest.raises(ssl.SSLError, match=REFUSED):
            get(node.tls_port, "a.example.test", tls=no_sni, server_name=server_name)
    # The node still serves after refusing.
    assert get(node.tls_port, "a.example.test", "/talk.flv", tls=tls).status == 200


def test_a_host_other_than_the_sni_name_without_https_is_misdirected(
    node: TlsNode, ca_file: Path
) -> None:
    tls = client_context(ca_file)
    answer = get(node.tls_port, "plain.test", "/talk.mp4", tls=tls, server_name="a.example.test")
    assert answer.status == 421
    assert answer.headers["X-Vodedge-Error"] == "misdirected_request"
    # Another domain with HTTPS on is served, as a CDN serves coalesced connections.
    assert get(node.tls_port, "x.wild.test", tls=tls, server_name="a.example.test").status == 404


def test_https_force_redirects_plain_requests(node: TlsNode, ca_file: Path) -> None:
    answer = get(node.port, f"a.example.test:{node.port}", "/talk.mp4?ali_audio_only=1&x=%2F")
    assert answer.status == 301
    location = answer.headers["Location"]
    assert location == f"https://a.example.test:{node.tls_port}/talk.mp4?ali_audio_only=1&x=%2F"
    followed = get(node.tls_port, "a.example.test", location.split(str(node.tls_port), 1)[1],
                   tls=client_context(ca_file))  # fmt: skip
    assert followed.status == 200
    assert get(node.port, "one.wild.test", "/talk.mp4").status == 200  # no https_force there


def test_certificates_change_with_the_configuration_without_a_restart(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path
) -> None:
    first = ca.issue("r.test").write(tmp_path / "one", "r")
    with running(TlsNode(tmp_path / "node", _toml({"r.test": first}))) as server:
        tls = client_context(ca_file)
        before = get(server.tls_port, "r.test", tls=tls).peer
        pids = server.worker_pids()
        replacement = ca.issue("r.test", "www.r.test")
        # Same paths, new content: the files' stamps change.
        first[0].write_text(replacement.cert_pem)
        first[1].write_text(replacement.key_pem)
        server.reload(_toml({"r.test": first, "s.test": ca.issue("s.test").write(tmp_path, "s")}))
        deadline = time.monotonic() + 5
        seen: set[tuple[str, ...]] = set()
        while time.monotonic() < deadline:
            # Several connections: each worker must have switched.
            seen = {
                certificate_names(get(server.tls_port, "r.test", tls=tls).peer)  # type: ignore[arg-type]
                for _ in range(6)
            }
            if seen == {("r.test", "www.r.test")}:
                break
            time.sleep(0.1)
        assert seen == {("r.test", "www.r.test")}
        assert before is not None and certificate_names(before) == ("r.test",)
        assert get(server.tls_port, "s.test", tls=tls).status == 404
        assert server.worker_pids() == pids  # no restart
        # A reload naming a key that does not match is refused; the old pair serves on.
        mismatched = (first[0], tmp_path / "s.key")
        server.reload(_toml({"r.test": mismatched}))
        deadline = time.monotonic() + 5
        while "config not reloaded" not in server.log():  # by the master, for all
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert "r.test: certificate" in server.log()
        for _ in range(4):
            answer = get(server.tls_port, "r.test", tls=tls)
            assert answer.peer is not None
            assert certificate_names(answer.peer) == ("r.test", "www.r.test")
        assert get(server.tls_port, "s.test", tls=tls).status == 404


def test_clients_joining_a_fill_over_tls_each_get_the_whole_object(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path
) -> None:
    # Readers of a growing fill share one file description: a copy that seeks it
    # (asyncio's sendfile fallback under TLS) would mix their bodies.
    origin = tmp_path / "origin"
    origin.mkdir()
    data = os.urandom(24 << 20)
    (origin / "big.bin").write_bytes(data)
    cert, key = ca.issue("f.test").write(tmp_path, "f")
    config = (
        f'[[domain]]\nname = "f.test"\norigins = ["{origin}"]\n'
        f'tls = {{ cert = "{cert}", key = "{key}" }}\n'
    )
    with running(TlsNode(tmp_path / "node", config, workers=1)) as server:
        tls = client_context(ca_file)
        bodies: list[bytes] = []

        def fetch() -> None:
            bodies.append(get(server.tls_port, "f.test", "/big.bin", tls=tls).body)

        threads = [threading.Thread(target=fetch) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        bodies.append(get(server.tls_port, "f.test", "/big.bin", tls=tls).body)  # warm
    digest = hashlib.sha256(data).hexdigest()
    assert [hashlib.sha256(b).hexdigest() == digest for b in bodies] == [True] * 6


def test_silent_tls_clients_are_closed_after_the_idle_timeout(
    ca: CertificateAuthority, ca_file: Path, tmp_path: Path
) -> None:
    cert, key = ca.issue("s.test").write(tmp_path, "s")
    config = (
        f'[[domain]]\nname = "s.test"\norigins = ["{SAMPLES}"]\n'
        f'tls = {{ cert = "{cert}", key = "{key}" }}\n'
    )
    node = TlsNode(tmp_path / "node", config, workers=1, flags=["--idle-timeout", "2"])
    with running(node) as server:
        silent = socket.create_connection(("127.0.0.1", server.tls_port))
        half = socket.create_connection(("127.0.0.1", server.tls_port))
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        handshaken = client_context(ca_file).wrap_socket(
            socket.create_connection(("127.0.0.1", server.tls_port)), server_hostname="s.test"
        )
        started = time.monotonic()
        closed_after = []
        for sock in (silent, half, handshaken):
            sock.settimeout(15)
            # A reset, or a TLS connection cut without close_notify, is a close too.
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                assert sock.recv(1) == b""
            closed_after.append(time.monotonic() - started)
            sock.close()
        assert max(closed_after) < 10, closed_after
        assert (
            get(server.tls_port, "s.test", "/talk.flv", tls=client_context(ca_file)).status == 200
        )


# --- the TOML file ---------------------------------------------------------------------


def test_toml_sets_the_certificate_and_the_tls_listener(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    ca.issue("a.test").write(tmp_path / "certs", "a")
    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\nlisten_tls = "127.0.0.1:8443"\n'
        f'[[domain]]\nname = "a.test"\norigins = ["{SAMPLES}"]\n'
        'tls = { cert = "certs/a.crt", key = "certs/a.key", enabled = false, name = "mine" }\n'
    )
    node = load_toml(path)
    assert node.listen_tls == ListenAddress("127.0.0.1", 8443)
    certificate = node.domains["a.test"].certificate
    assert certificate == DomainCertificate(
        tmp_path / "certs" / "a.crt", tmp_path / "certs" / "a.key", False, "mine"
    )
    path.write_text(
        f'[[domain]]\nname = "a.test"\norigins = ["{SAMPLES}"]\ntls = {{ cert = "x" }}\n'
    )
    with pytest.raises(ConfigFileError, match=r"domain\[0\]\.tls\.cert: .* is not a file"):
        load_toml(path)


def test_a_certificate_that_does_not_load_stops_the_start(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    cert, _ = ca.issue("a.test").write(tmp_path, "a")
    (tmp_path / "other.key").write_text(other_key_pem())
    config = tmp_path / "node.toml"
    config.write_text(_toml({"a.test": (cert, tmp_path / "other.key")}))
    done = subprocess.run(
        [*vodedge_command(), "serve", "--config", str(config), "--listen", "127.0.0.1:0",
         "--listen-tls", "127.0.0.1:0", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": ""},
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vodedge: error: domain a.test: certificate")
    assert "KEY_VALUES_MISMATCH" in lines[0] or "mismatch" in lines[0].lower()
