"""Certificate actions: SetCdnDomainSSLCertificate and DescribeDomainCertificateInfo.

Parameters, fields and error codes follow the CDN API reference (2018-05-10) and
the SDK's models (alibabacloud-cdn20180510). Only `CertType=upload` (the PEM in
the call) is implemented: `cas` and `free` need Alibaba Cloud's certificate
service and are refused with SetDomainCertificate.ParameterError. The key is
stored, never returned.
"""

from __future__ import annotations

import time

from ..calls import Call, JsonObject
from ..certificates import certificate_names, check_pair, iso_time, summarize_pem
from ..errors import ApiError, missing
from ..store import Certificate
from .domains import domain_name, not_found
from .params import iso, optional
from .registry import Context, action

MAX_CERT_NAME = 128


def _protocol(call: Call) -> str:
    value = call.params.get("SSLProtocol", "")
    if not value:
        raise missing("SSLProtocol")
    if value not in ("on", "off"):
        raise ApiError(
            400, "InvalidSSLProtocol.ValueNotSupported", "The specified SSLProtocol is invalid."
        )
    return value


def _cert_type(call: Call) -> None:
    kind = optional(call, "CertType") or "upload"
    if kind != "upload":
        raise ApiError(
            400,
            "SetDomainCertificate.ParameterError",
            f"The specified parameters are invalid: CertType {kind[:32]!r} needs a certificate"
            " service this node does not have; upload the certificate (CertType=upload).",
        )


def _cert_name(call: Call) -> str | None:
    name = optional(call, "CertName")
    if name is not None and len(name) > MAX_CERT_NAME:
        raise ApiError(
            400,
            "InvalidCertName.TooLong",
            "The length of the certificate name cannot exceed 128 characters.",
        )
    return name


@action("SetCdnDomainSSLCertificate", writes=True)
async def set_certificate(context: Context, call: Call) -> JsonObject:
    """Set a domain's certificate (PEM chain and key) and switch its HTTPS on or off."""
    name = domain_name(call)
    protocol = _protocol(call)
    _cert_type(call)
    cert_name = _cert_name(call)
    pub, pri = optional(call, "SSLPub"), optional(call, "SSLPri")
    if protocol == "on" or pub or pri:
        if not pub:
            raise ApiError(400, "SSLPub.MissingParameter", "The SSLPub parameter is required.")
        if not pri:
            raise ApiError(400, "SSLPri.MissingParameter", "The SSLPri parameter is required.")
    if await context.run(context.store.domain, name) is None:
        raise not_found(name)
    if pub and pri:
        pair = check_pair(pub, pri)
        names = certificate_names(pair.leaf)
        certificate = Certificate(
            domain=name,
            name=cert_name or (names[0] if names else name),
            cert_pem=pair.chain_pem.decode("ascii"),
            key_pem=pair.key_pem.decode("ascii"),
            ssl_protocol="on" if protocol == "on" else "off",
            modified=time.time(),
        )
    else:  # off, and nothing new: keep the stored pair switched off (if any)
        stored = await context.run(context.store.certificate, name)
        if stored is None:
            return {}
        certificate = Certificate(
            domain=name,
            name=cert_name or stored.name,
            cert_pem=stored.cert_pem,
            key_pem=stored.key_pem,
            ssl_protocol="off",
            modified=time.time(),
        )
    try:
        await context.run(context.store.put_certificate, certificate)
    except KeyError:  # deleted meanwhile
        raise not_found(name) from None
    return {}


@action("DescribeDomainCertificateInfo", writes=False)
async def describe_certificate(context: Context, call: Call) -> JsonObject:
    """The domain's certificate as the API describes it: never its key."""
    name = domain_name(call)
    if await context.run(context.store.domain, name) is None:
        raise not_found(name)
    stored = await context.run(context.store.certificate, name)
    if stored is None:
        info: JsonObject = {"DomainName": name, "ServerCertificateStatus": "off"}
        return {"CertInfos": {"CertInfo": [info]}}
    summary = summarize_pem(stored.cert_pem.encode("ascii"))
    info = {
        "DomainName": name,
        "CertName": stored.name,
        "CertDomainName": ",".join(summary.names),
        "CertExpireTime": iso_time(summary.not_after),
        "CertStartTime": iso_time(summary.not_before),
        "CertLife": summary.life,
        "CertOrg": summary.organization,
        "CertType": "upload",
        "CertUpdateTime": iso(stored.modified),
        "ServerCertificateStatus": stored.ssl_protocol,
        "ServerCertificate": stored.cert_pem,
        "Status": "success",
    }
    return {"CertInfos": {"CertInfo": [info]}}
