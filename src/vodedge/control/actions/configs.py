"""Function actions: BatchSetCdnDomainConfig, DescribeCdnDomainConfigs, DeleteSpecificConfig.

A call is all or nothing: every function of every domain is validated (with
`vodedge.config`, whose errors carry the API's codes) against the domain's whole
resulting list before anything is written, and all domains are written in one
transaction. A ConfigId in the call updates that rule; a function that may have
only one rule replaces it (keeping its ConfigId); others are added with a new one.
"""

from __future__ import annotations

from dataclasses import replace

from vodedge.config import ConfigError, Function
from vodedge.config.functions import VOCABULARY, check_functions, parse_functions

from ..calls import Call, JsonObject
from ..domains import api_domain_name, edge_domain
from ..errors import ApiError
from ..store import DomainRecord, StaleRecord
from .domains import RETRIES, change_domain, domain_name, not_found
from .params import optional, required
from .registry import Context, action

MAX_DOMAINS = 50


def api_error(error: ConfigError) -> ApiError:
    """A validation error as the API answers it."""
    return ApiError(error.status, error.code, error.message)


def _config_ids(text: str) -> list[int]:
    ids = [part.strip() for part in text.split(",")]
    if not ids or not all(i.isascii() and i.isdigit() and len(i) <= 19 for i in ids):
        raise ApiError(
            400, "InvalidConfigId.Malformed", f"Specified ConfigId {text[:64]!r} is malformed."
        )
    return [int(i) for i in ids]


def _config_not_found(config_id: int, domain: str) -> ApiError:
    return ApiError(
        404, "InvalidConfigId.NotFound", f"ConfigId {config_id} does not exist on {domain}."
    )


def merged(record: DomainRecord, functions: tuple[Function, ...]) -> tuple[DomainRecord, list[int]]:
    """`record` with the call's functions set, validated as a whole; where each one went."""
    current = list(record.functions)
    positions = []
    for function in functions:
        if function.config_id is not None:
            at = next((i for i, f in enumerate(current) if f.config_id == function.config_id), None)
            if at is None:
                raise _config_not_found(function.config_id, record.name)
            if current[at].name != function.name:
                raise ApiError(
                    400,
                    "InvalidFunctions.Malformed",
                    f"ConfigId {function.config_id} is a {current[at].name},"
                    f" not a {function.name}.",
                )
            current[at] = function
        else:
            spec = VOCABULARY.get(function.name)
            at = next((i for i, f in enumerate(current) if f.name == function.name), None)
            if spec is not None and not spec.repeatable and at is not None:
                current[at] = replace(function, config_id=current[at].config_id)
            else:
                at = len(current)
                current.append(function)
        positions.append(at)
    try:
        check_functions(current)
        new = replace(record, functions=tuple(current))
        edge_domain(new)
    except ConfigError as error:
        raise api_error(error) from None
    return new, positions


@action("BatchSetCdnDomainConfig", writes=True)
async def batch_set_cdn_domain_config(context: Context, call: Call) -> JsonObject:
    """Set functions on domains: every function on every domain, all or nothing."""
    names = [api_domain_name(n.strip()) for n in required(call, "DomainNames").split(",")]
    if len(names) > MAX_DOMAINS:
        raise ApiError(
            400,
            "DomainNameOverLimit",
            f"A maximum of {MAX_DOMAINS} domains are supported for each request.",
        )
    names = list(dict.fromkeys(names))
    try:
        functions = parse_functions(required(call, "Functions"))
    except ConfigError as error:
        raise api_error(error) from None
    if not functions:
        raise ApiError(400, "InvalidFunctions.Malformed", "Functions lists no function.")
    try:  # the call on its own first: a function given twice is refused, not merged
        check_functions([replace(function, config_id=None) for function in functions])
    except ConfigError as error:
        raise api_error(error) from None
    for _ in range(RETRIES):
        records, positions = [], []
        for name in names:
            record = await context.run(context.store.domain, name)
            if record is None:
                raise not_found(name)
            new, where = merged(record, functions)
            records.append(new)
            positions.append(where)
        try:
            stored = await context.run(context.store.update_domains, records)
        except StaleRecord:
            continue
        break
    else:
        raise ApiError(503, "ServiceBusy", "The domains are being configured; try again later.")
    models: list[JsonObject] = [
        {
            "DomainName": record.name,
            "FunctionName": function.name,
            "ConfigId": record.functions[at].config_id,
        }
        for record, where in zip(stored, positions, strict=True)
        for function, at in zip(functions, where, strict=True)
    ]
    return {"DomainConfigList": {"DomainConfigModel": models}}


@action("DescribeCdnDomainConfigs", writes=False)
async def describe_cdn_domain_configs(context: Context, call: Call) -> JsonObject:
    """A domain's functions, all or by FunctionNames, or the one rule a ConfigId names."""
    name = domain_name(call)
    text = optional(call, "FunctionNames")
    wanted = None if text is None else {n.strip() for n in text.split(",") if n.strip()}
    for function_name in wanted or ():
        if function_name not in VOCABULARY:
            raise ApiError(
                400,
                "InvalidFunctionName.ValueNotSupported",
                f"FunctionName {function_name[:64]!r} is not supported.",
            )
    config_text = optional(call, "ConfigId")
    config_ids = None if config_text is None else set(_config_ids(config_text))
    record = await context.run(context.store.domain, name)
    if record is None:
        raise not_found(name)
    return {
        "DomainConfigs": {
            "DomainConfig": [
                {
                    "FunctionName": f.name,
                    "ConfigId": str(f.config_id),
                    "Status": "success",
                    "ParentId": "",
                    "FunctionArgs": {
                        "FunctionArg": [{"ArgName": a.name, "ArgValue": a.value} for a in f.args]
                    },
                }
                for f in record.functions
                if (wanted is None or f.name in wanted)
                and (config_ids is None or f.config_id in config_ids)
            ]
        }
    }


@action("DeleteSpecificConfig", writes=True)
async def delete_specific_config(context: Context, call: Call) -> JsonObject:
    """Remove rules by ConfigId (comma-separated) from one domain."""
    name = domain_name(call)
    config_ids = _config_ids(required(call, "ConfigId"))

    def change(record: DomainRecord) -> DomainRecord:
        present = {f.config_id for f in record.functions}
        for config_id in config_ids:
            if config_id not in present:
                raise _config_not_found(config_id, record.name)
        return replace(
            record, functions=tuple(f for f in record.functions if f.config_id not in config_ids)
        )

    await change_domain(context, name, change)
    return {}
