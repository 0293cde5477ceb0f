"""Domain actions: AddCdnDomain, DeleteCdnDomain, DescribeUserDomains,
DescribeCdnDomainDetail, ModifyCdnDomain, StartCdnDomain, StopCdnDomain.

Parameters, response fields and error codes follow the CDN API reference
(2018-05-10, https://api.alibabacloud.com/document/Cdn/2018-05-10/) and the field
names of the SDK's models (alibabacloud-cdn20180510).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..calls import Call, JsonObject
from ..domains import api_domain_name, parse_sources
from ..errors import ApiError, missing
from ..store import DomainExists, DomainRecord, Source, StaleRecord
from .params import choice, integer, iso, optional, required, utc_time
from .registry import Context, action

CDN_TYPES = ("web", "download", "video")
SCOPES = ("domestic", "overseas", "global")
STATUSES = (
    "online",
    "offline",
    "configuring",
    "configure_failed",
    "checking",
    "check_failed",
    "stopping",
    "deleting",
)
SEARCH_TYPES = ("fuzzy_match", "pre_match", "suf_match", "full_match")
# How often a write is retried when another writer changed the record first.
RETRIES = 100


def not_found(name: str) -> ApiError:
    """The documented error for a domain the store does not hold."""
    return ApiError(
        404, "InvalidDomain.NotFound", f"The domain {name} does not exist in our records."
    )


def domain_name(call: Call, parameter: str = "DomainName") -> str:
    """The one domain a call names, normalised as stored."""
    return api_domain_name(required(call, parameter).strip())


async def change_domain(
    context: Context, name: str, change: Callable[[DomainRecord], DomainRecord]
) -> DomainRecord:
    """Apply `change` to the stored domain, again and again until no other writer interferes."""
    for _ in range(RETRIES):
        record = await context.run(context.store.domain, name)
        if record is None:
            raise not_found(name)
        try:
            return (await context.run(context.store.update_domains, [change(record)]))[0]
        except StaleRecord:
            continue
    raise ApiError(503, "ServiceBusy", f"The domain {name} is being configured; try again later.")


@action("AddCdnDomain", writes=True)
async def add_cdn_domain(context: Context, call: Call) -> JsonObject:
    """Add an accelerated domain, online at once."""
    name = domain_name(call)
    cdn_type = choice(call, "CdnType", CDN_TYPES)
    if cdn_type is None:
        raise missing("CdnType")
    sources = parse_sources(required(call, "Sources"))
    record = DomainRecord(
        name=name,
        cdn_type=cdn_type,
        sources=sources,
        scope=choice(call, "Scope", SCOPES, "domestic") or "domestic",
        resource_group_id=optional(call, "ResourceGroupId") or "",
    )
    try:
        await context.run(context.store.add_domain, record)
    except DomainExists:
        raise ApiError(400, "DomainAlreadyExist", f"The domain {name} already exists.") from None
    return {}


@action("DeleteCdnDomain", writes=True)
async def delete_cdn_domain(context: Context, call: Call) -> JsonObject:
    """Remove a domain, its functions and its certificate."""
    name = domain_name(call)
    if not await context.run(context.store.delete_domain, name):
        raise not_found(name)
    return {}


@action("StartCdnDomain", writes=True)
async def start_cdn_domain(context: Context, call: Call) -> JsonObject:
    """Serve a stopped domain again."""
    await change_domain(context, domain_name(call), lambda r: replace(r, status="online"))
    return {}


@action("StopCdnDomain", writes=True)
async def stop_cdn_domain(context: Context, call: Call) -> JsonObject:
    """Stop a domain: its requests get 403 and never reach the origin."""
    await change_domain(context, domain_name(call), lambda r: replace(r, status="offline"))
    return {}


@action("ModifyCdnDomain", writes=True)
async def modify_cdn_domain(context: Context, call: Call) -> JsonObject:
    """Replace a domain's origins (Sources) and/or its resource group."""
    name = domain_name(call)
    text = optional(call, "Sources")
    sources = None if text is None else parse_sources(text)
    group = optional(call, "ResourceGroupId")

    def change(record: DomainRecord) -> DomainRecord:
        return replace(
            record,
            sources=record.sources if sources is None else sources,
            resource_group_id=record.resource_group_id if group is None else group,
        )

    await change_domain(context, name, change)
    return {}


def _source_fields(source: Source) -> JsonObject:
    return {
        "Type": source.type,
        "Content": source.content,
        "Port": source.port,
        "Priority": str(source.priority),
        "Weight": str(source.weight),
    }


@action("DescribeCdnDomainDetail", writes=False)
async def describe_cdn_domain_detail(context: Context, call: Call) -> JsonObject:
    """One domain's settings and origins."""
    name = domain_name(call)
    record = await context.run(context.store.domain, name)
    if record is None:
        raise not_found(name)
    certificate = await context.run(context.store.certificate, name)
    https = certificate is not None and certificate.ssl_protocol == "on"
    return {
        "GetDomainDetailModel": {
            "DomainName": record.name,
            "CdnType": record.cdn_type,
            "Cname": context.cname,
            "HttpsCname": "",
            "Description": record.description,
            "DomainStatus": record.status,
            "GmtCreated": iso(record.created),
            "GmtModified": iso(record.modified),
            "ResourceGroupId": record.resource_group_id,
            "Scope": record.scope,
            "ServerCertificateStatus": "on" if https else "off",
            "SourceModels": {
                "SourceModel": [
                    {**_source_fields(source), "Enabled": "online"} for source in record.sources
                ]
            },
        }
    }


def _matches(search: str, name: str, how: str) -> bool:
    if how == "fuzzy_match":
        return search in name
    if how == "pre_match":
        return name.startswith(search)
    if how == "suf_match":
        return name.endswith(search)
    return name == search


@action("DescribeUserDomains", writes=False)
async def describe_user_domains(context: Context, call: Call) -> JsonObject:
    """The domains, filtered and paged."""
    page = integer(call, "PageNumber", 1, 1, 100_000)
    size = integer(call, "PageSize", 20, 1, 500)
    search = optional(call, "DomainName")
    how = choice(call, "DomainSearchType", SEARCH_TYPES, "full_match") or "full_match"
    status = choice(call, "DomainStatus", STATUSES)
    types = optional(call, "CdnType")
    wanted_types = None if types is None else {t.strip() for t in types.split(",")}
    for cdn_type in wanted_types or ():
        if cdn_type not in CDN_TYPES:
            raise ApiError(
                400, "InvalidCdnType.Malformed", f"Specified CdnType {cdn_type!r} is malformed."
            )
    coverage = choice(call, "Coverage", SCOPES)
    group = optional(call, "ResourceGroupId")
    origin = optional(call, "Source")
    since, until = utc_time(call, "ChangeStartTime"), utc_time(call, "ChangeEndTime")
    if since is not None and until is not None and until <= since:
        raise ApiError(
            400, "InvalidEndTime.Mismatch", "ChangeEndTime must be later than ChangeStartTime."
        )
    search = None if search is None else search.strip().lower()
    records = [
        r
        for r in await context.run(context.store.domains)
        if (search is None or _matches(search, r.name, how))
        and (status is None or r.status == status)
        and (wanted_types is None or r.cdn_type in wanted_types)
        and (coverage is None or r.scope == coverage)
        and (group is None or r.resource_group_id == group)
        and (origin is None or any(s.content == origin for s in r.sources))
        and (since is None or r.modified >= since)
        and (until is None or r.modified < until)
    ]
    https = {
        c.domain for c in await context.run(context.store.certificates) if c.ssl_protocol == "on"
    }
    shown = records[(page - 1) * size : page * size]
    return {
        "PageNumber": page,
        "PageSize": size,
        "TotalCount": len(records),
        "Domains": {
            "PageData": [
                {
                    "DomainName": r.name,
                    "DomainId": r.domain_id,
                    "CdnType": r.cdn_type,
                    "Cname": context.cname,
                    "Coverage": r.scope,
                    "Description": r.description,
                    "DomainStatus": r.status,
                    "GmtCreated": iso(r.created),
                    "GmtModified": iso(r.modified),
                    "ResourceGroupId": r.resource_group_id,
                    "Sandbox": "normal",
                    "SslProtocol": "on" if r.name in https else "off",
                    "Sources": {"Source": [_source_fields(s) for s in r.sources]},
                }
                for r in shown
            ]
        },
    }
