"""Domain certificates: checking an uploaded PEM pair as SetCdnDomainSSLCertificate
does, storing it (the key with mode 0600), and describing it without its key.

Error codes are SetCdnDomainSSLCertificate's (api.alibabacloud.com, Cdn
2018-05-10): InvalidSSLPub, InvalidSSLPri, Certificate.MissMatch,
Certificate.Expired, InvalidCertificate.TooLong. Like the CDN, an expired
certificate is refused; one not valid yet is accepted (it may be set ahead of
its start). A certificate that does not name the domain is accepted too (the
API documents no error for it): DescribeDomainCertificateInfo shows the names
it covers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import ssl
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from vodedge.config import DomainCertificate
from vodedge.control.errors import ApiError
from vodedge.control.store import Certificate

# A chain of a leaf and a few intermediates is a few kB; this bounds what we parse.
MAX_CERTIFICATE = 64 << 10
MAX_KEY = 16 << 10
MAX_CHAIN = 10
# Unreferenced certificate files are deleted once this old (seconds), see prune.
PRUNE_GRACE = 60.0
_PAIR_FILE = re.compile(r"[a-z0-9_.-]+\.[0-9a-f]{16}\.(?:crt|key)|\..+\.\d+\.tmp")
# The key types TLS servers sign with.
TlsKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _invalid_pub(reason: str) -> ApiError:
    return ApiError(400, "InvalidSSLPub", f"The specified SSLPub is invalid: {reason}.")


def _invalid_pri(reason: str) -> ApiError:
    return ApiError(400, "InvalidSSLPri", f"The specified SSLPri is invalid: {reason}.")


@dataclass(frozen=True)
class CertificatePair:
    """A checked certificate chain and key, re-encoded as clean PEM."""

    chain_pem: bytes
    key_pem: bytes
    leaf: x509.Certificate


def check_pair(ssl_pub: str, ssl_pri: str, *, now: datetime | None = None) -> CertificatePair:
    """The chain and key given to SetCdnDomainSSLCertificate, or the API's error."""
    if len(ssl_pub) > MAX_CERTIFICATE:
        raise ApiError(
            400, "InvalidCertificate.TooLong", "The maximum length of the certificate is exceeded."
        )
    if len(ssl_pri) > MAX_KEY:
        raise _invalid_pri(f"longer than {MAX_KEY} characters")
    chain = _parse_chain(ssl_pub)
    key = _parse_key(ssl_pri)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    wanted = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    matching = [
        c for c in chain if c.public_key().public_bytes(serialization.Encoding.DER, spki) == wanted
    ]
    if not matching:
        raise ApiError(400, "Certificate.MissMatch", "The SSLPri does not match the certificate.")
    # The key's certificate is the leaf, which TLS sends first, wherever it was pasted.
    leaf = matching[0]
    chain = [leaf, *(c for c in chain if c is not leaf)]
    moment = now or datetime.now(UTC)
    if leaf.not_valid_after_utc <= moment:
        raise ApiError(
            400,
            "Certificate.Expired",
            f"The certificate has expired (on {iso_time(leaf.not_valid_after_utc)}).",
        )
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return CertificatePair(chain_pem, key_pem, leaf)


def _parse_chain(text: str) -> list[x509.Certificate]:
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise _invalid_pub("no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        chain = x509.load_pem_x509_certificates(text.encode("utf-8", "replace"))
    except ValueError as exc:
        raise _invalid_pub(f"the PEM does not parse ({_first_line(exc)})") from None
    if len(chain) > MAX_CHAIN:
        raise _invalid_pub(f"a chain of at most {MAX_CHAIN} certificates is accepted")
    for certificate in chain:
        try:
            certificate.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise _invalid_pub(f"its public key is unsupported ({_first_line(exc)})") from None
    return chain


def _parse_key(text: str) -> TlsKey:
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        raise _invalid_pri("no PEM private key (-----BEGIN PRIVATE KEY-----)")
    try:
        key = serialization.load_pem_private_key(text.encode("utf-8", "replace"), password=None)
    except TypeError:
        raise _invalid_pri("the key is encrypted; upload it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _invalid_pri(f"the PEM does not parse ({_first_line(exc)})") from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise _invalid_pri(f"a {type(key).__name__} cannot sign for TLS")
    return key


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:120] if text else type(exc).__name__


def iso_time(moment: datetime) -> str:
    """A UTC time as the API writes it: 2018-06-03T22:03:39Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CertificateFiles:
    """Where a stored certificate chain and its key are."""

    cert_path: Path
    key_path: Path


class CertificateStore:
    """A directory of domain certificates: `<domain>.<digest>.crt` and `.key` (0600).

    Files are named by their content, so a new certificate is a new pair of
    paths: a configuration naming them changes, and every worker reloads it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, domain: str, pair: CertificatePair) -> CertificateFiles:
        """Write the pair durably (checked by loading it as the edge will) and return it."""
        files = self.files_for(domain, pair.chain_pem, pair.key_pem)
        self._write(files, pair.chain_pem, pair.key_pem)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(files.cert_path, files.key_path)
        except ssl.SSLError as exc:
            # cryptography accepted what OpenSSL's TLS will not (e.g. a key type).
            self.remove(files)
            raise _invalid_pub(f"it cannot serve TLS ({exc.reason or exc})") from None
        return files

    def materialize(self, domain: str, chain_pem: bytes, key_pem: bytes) -> CertificateFiles:
        """The files of a pair checked before (stored by the API), written if missing."""
        files = self.files_for(domain, chain_pem, key_pem)
        if not (files.cert_path.is_file() and files.key_path.is_file()):
            self._write(files, chain_pem, key_pem)
        return files

    def files_for(self, domain: str, chain_pem: bytes, key_pem: bytes) -> CertificateFiles:
        """Where a pair's files are (named by the domain and a digest of their content)."""
        digest = hashlib.sha256(chain_pem + key_pem).hexdigest()[:16]
        stem = f"{_file_name(domain)}.{digest}"
        return CertificateFiles(self.directory / f"{stem}.crt", self.directory / f"{stem}.key")

    def _write(self, files: CertificateFiles, chain_pem: bytes, key_pem: bytes) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(files.cert_path, chain_pem)
        _write_private(files.key_path, key_pem)
        _sync_directory(self.directory)

    def remove(self, files: CertificateFiles) -> None:
        """Delete a stored pair (one no configuration names any more)."""
        for path in (files.cert_path, files.key_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def prune(self, keep: Collection[Path], grace: float = PRUNE_GRACE) -> int:
        """Delete pairs (and leftover temporary files) not in `keep` and older than
        `grace` seconds; how many files went.

        Workers prune as they follow the store: one still on an older version
        must not take the files another has just written for a newer one, hence
        the grace. A worker needs files only to load them after its own
        configuration changed, and then it names the current ones.
        """
        if not self.directory.is_dir():
            return 0
        kept = {Path(path).name for path in keep}
        oldest = time.time() - grace
        removed = 0
        for path in self.directory.iterdir():
            if path.name in kept or not _PAIR_FILE.fullmatch(path.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < oldest:
                    path.unlink()
                    removed += 1
        return removed


def _file_name(domain: str) -> str:
    # Names are normalised (lower-case LDH, dots); a wildcard's `*` becomes `_`.
    return domain.replace("*", "_")


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass(frozen=True)
class CertificateSummary:
    """What DescribeDomainCertificateInfo says of a certificate (never its key)."""

    names: tuple[str, ...]
    organization: str
    not_before: datetime
    not_after: datetime
    pem: str

    @property
    def life(self) -> str:
        """The validity period as the API words it: "3 months", "1 years"."""
        months = round((self.not_after - self.not_before).days / 30.44)
        if months >= 12 and months % 12 == 0:
            return f"{months // 12} years"
        return f"{max(months, 1)} months"


def summarize(cert_path: Path) -> CertificateSummary:
    """The leaf of a stored chain, described; OSError or ValueError if unreadable."""
    return summarize_pem(cert_path.read_bytes())


def summarize_pem(pem: bytes) -> CertificateSummary:
    """The leaf of a PEM chain, described; ValueError if it does not parse."""
    leaf = x509.load_pem_x509_certificates(pem)[0]
    return CertificateSummary(
        names=certificate_names(leaf),
        organization=_attribute(leaf.issuer, NameOID.ORGANIZATION_NAME)
        or _attribute(leaf.issuer, NameOID.COMMON_NAME),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        pem=pem.decode("ascii", "replace"),
    )


def certificate_names(leaf: x509.Certificate) -> tuple[str, ...]:
    """The DNS names a certificate covers (its SANs, else its subject CN)."""
    try:
        extension = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        common = _attribute(leaf.subject, NameOID.COMMON_NAME)
        return (common,) if common else ()
    san = extension.value
    assert isinstance(san, x509.SubjectAlternativeName)
    return tuple(san.get_values_for_type(x509.DNSName))


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return ""
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def stored_certificates(
    certificates: Iterable[Certificate], directory: Path, edge_name: Callable[[str], str]
) -> dict[str, DomainCertificate]:
    """The API's certificates as files the edge loads, by the edge's domain name.

    Each worker writes a pair it does not find yet (0600, named by content): the
    store holds the truth, the files are what OpenSSL reads.
    """
    files = CertificateStore(directory)
    found: dict[str, DomainCertificate] = {}
    for certificate in certificates:
        name = edge_name(certificate.domain)
        made = files.materialize(
            name, certificate.cert_pem.encode("ascii"), certificate.key_pem.encode("ascii")
        )
        found[name] = DomainCertificate(
            made.cert_path, made.key_path, certificate.ssl_protocol == "on", certificate.name
        )
    return found
