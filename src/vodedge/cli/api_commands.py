"""`vodedge domain …`, `vodedge config …`, `vodedge purge URL…` and `vodedge push URL…`:
thin clients of the node's API, for operators without an SDK."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from vodedge.cli.api_client import ApiCallError, Endpoint, JsonObject, call

PAGE_SIZE = 500  # DescribeUserDomains' largest page
WAIT_SECONDS = 60.0
ACTED = {"start": "started", "stop": "stopped", "delete": "deleted"}


def endpoint_of(args: argparse.Namespace) -> Endpoint:
    """The endpoint the flags and environment give (ValueError when incomplete)."""
    return Endpoint.from_flags(args.endpoint, args.access_key_id, args.access_key_secret)


def run(args: argparse.Namespace) -> int:
    """Run one API command: 0, or 2 with `vodedge: error: <Code>: <Message>` on stderr."""
    try:
        endpoint = endpoint_of(args)
        if args.command == "domain":
            return _domain(endpoint, args)
        if args.command == "config":
            return _config(endpoint, args)
        if args.command == "push":
            answer = call(endpoint, "PushObjectCache", {"ObjectPath": "\n".join(args.urls)})
            task = str(answer.get("PushTaskId"))
            print(f"PushTaskId {task}")
            if args.wait:
                _wait_for(endpoint, "PushTaskId", [task], time.monotonic() + WAIT_SECONDS)
            return 0
        if args.command == "purge":
            return _purge(endpoint, args)
    except (ApiCallError, ValueError) as exc:
        sys.stderr.write(f"vodedge: error: {exc}\n")
        return 2
    sys.stderr.write(f"vodedge: error: unknown command {args.command}\n")
    return 2


# --- domains ----------------------------------------------------------------------------


def sources_of(origins: Sequence[str]) -> str:
    """The Sources JSON for `HOST[:PORT]` origins (an IP address is `ipaddr`)."""
    import ipaddress

    sources = []
    for text in origins:
        parts = urlsplit(text if "://" in text else f"//{text}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"origin {text!r} has a bad port") from None
        host = parts.hostname or ""
        if not host or parts.path not in ("", "/"):
            raise ValueError(f"origin must be HOST[:PORT], got {text!r}")
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        try:
            ipaddress.ip_address(host)
            kind = "ipaddr"
        except ValueError:
            kind = "domain"
        sources.append(
            {"type": kind, "content": host, "port": port, "priority": "20", "weight": "10"}
        )
    return json.dumps(sources)


def _domain(endpoint: Endpoint, args: argparse.Namespace) -> int:
    verb = args.verb
    if verb == "add":
        if bool(args.origin) == bool(args.sources):
            raise ValueError("give --origin (one or more) or --sources, not both")
        sources = args.sources or sources_of(args.origin)
        params = {"DomainName": args.domain, "CdnType": args.cdn_type, "Sources": sources}
        call(endpoint, "AddCdnDomain", params)
        print(f"{args.domain}: added")
        return 0
    if verb == "list":
        domains = _all_domains(endpoint)
        if args.json:
            print(json.dumps(domains, indent=2, ensure_ascii=False))
            return 0
        rows = [("DOMAIN", "STATUS", "HTTPS", "TYPE", "ORIGINS")]
        for item in domains:
            origins = [
                f"{s.get('Content')}:{s.get('Port')}" for s in _items(item, "Sources", "Source")
            ]
            rows.append(
                (
                    str(item.get("DomainName", "")),
                    str(item.get("DomainStatus", "")),
                    str(item.get("SslProtocol", "")),
                    str(item.get("CdnType", "")),
                    ",".join(origins),
                )
            )
        _table(rows)
        return 0
    if verb == "show":
        answer = call(endpoint, "DescribeCdnDomainDetail", {"DomainName": args.domain})
        print(json.dumps(answer.get("GetDomainDetailModel", {}), indent=2, ensure_ascii=False))
        return 0
    action = {"start": "StartCdnDomain", "stop": "StopCdnDomain", "delete": "DeleteCdnDomain"}
    call(endpoint, action[verb], {"DomainName": args.domain})
    print(f"{args.domain}: {ACTED[verb]}")
    return 0


def _all_domains(endpoint: Endpoint) -> list[JsonObject]:
    domains: list[JsonObject] = []
    for page in range(1, 10_000):
        answer = call(
            endpoint, "DescribeUserDomains", {"PageNumber": str(page), "PageSize": str(PAGE_SIZE)}
        )
        batch = _items(answer, "Domains", "PageData")
        domains += batch
        total = answer.get("TotalCount")
        if not batch or (isinstance(total, int) and len(domains) >= total):
            break
    return domains


def _items(answer: Mapping[str, object], outer: str, inner: str) -> list[JsonObject]:
    """`answer[outer][inner]`, the API's way of nesting a list."""
    wrapper = answer.get(outer)
    items = wrapper.get(inner) if isinstance(wrapper, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


# --- functions --------------------------------------------------------------------------


def _config(endpoint: Endpoint, args: argparse.Namespace) -> int:
    if args.verb == "set":
        function: dict[str, object] = {
            "functionName": args.function,
            "functionArgs": [_arg(text) for text in args.args],
        }
        if args.config_id:
            function["configId"] = _config_id(args.config_id)
        answer = call(
            endpoint,
            "BatchSetCdnDomainConfig",
            {"DomainNames": args.domain, "Functions": json.dumps([function])},
        )
        for model in _items(answer, "DomainConfigList", "DomainConfigModel"):
            name, stored = model.get("DomainName"), model.get("FunctionName")
            print(f"{name}: {stored} ConfigId {model.get('ConfigId')}")
        return 0
    if args.verb == "get":
        configs = _configs(endpoint, args.domain, args.functions)
        if args.json:
            print(json.dumps(configs, indent=2, ensure_ascii=False))
            return 0
        for config in configs:
            pairs = " ".join(
                f"{a.get('ArgName')}={a.get('ArgValue')}"
                for a in _items(config, "FunctionArgs", "FunctionArg")
            )
            print(f"{config.get('ConfigId')}  {config.get('FunctionName')}  {pairs}".rstrip())
        return 0
    ids = [w for w in args.which if w.isdigit()]
    names = [w for w in args.which if not w.isdigit()]
    if names:
        found = _configs(endpoint, args.domain, names)
        missing = set(names) - {str(c.get("FunctionName")) for c in found}
        if missing:
            raise ValueError(f"{args.domain} has no {', '.join(sorted(missing))} configured")
        ids += [str(c.get("ConfigId")) for c in found]
    call(endpoint, "DeleteSpecificConfig", {"DomainName": args.domain, "ConfigId": ",".join(ids)})
    print(f"{args.domain}: deleted ConfigId {', '.join(ids)}")
    return 0


def _configs(endpoint: Endpoint, domain: str, functions: Sequence[str]) -> list[JsonObject]:
    params = {"DomainName": domain}
    if functions:
        params["FunctionNames"] = ",".join(functions)
    answer = call(endpoint, "DescribeCdnDomainConfigs", params)
    return _items(answer, "DomainConfigs", "DomainConfig")


def _arg(text: str) -> dict[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"function arguments are ARG=VALUE, got {text!r}")
    return {"argName": name, "argValue": value}


def _config_id(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"--config-id must be a number, got {text!r}")
    return int(text)


# --- purge ------------------------------------------------------------------------------


def _purge(endpoint: Endpoint, args: argparse.Namespace) -> int:
    directories = [u for u in args.urls if u.endswith("/")]
    files = [u for u in args.urls if not u.endswith("/")]
    tasks = []
    for kind, urls in (("File", files), ("Directory", directories)):
        if urls:
            answer = call(
                endpoint, "RefreshObjectCaches", {"ObjectPath": "\n".join(urls), "ObjectType": kind}
            )
            tasks.append(str(answer.get("RefreshTaskId")))
            print(f"RefreshTaskId {answer.get('RefreshTaskId')} ({len(urls)} {kind.lower()})")
    if args.wait:
        _wait_for(endpoint, "RefreshTaskId", tasks, time.monotonic() + WAIT_SECONDS)
    return 0


def _wait_for(endpoint: Endpoint, label: str, tasks: Sequence[str], deadline: float) -> None:
    """Poll DescribeRefreshTasks until every object of `tasks` is Complete."""
    for task in tasks:
        while True:
            answer = call(endpoint, "DescribeRefreshTasks", {"TaskId": task})
            found = _items(answer, "Tasks", "CDNTask")
            statuses = {str(t.get("Status")) for t in found}
            if statuses and statuses <= {"Complete"}:
                print(f"{label} {task}: Complete")
                break
            if "Failed" in statuses:
                why = "; ".join(str(t.get("Description") or "") for t in found).strip("; ")
                raise ApiCallError(None, f"task {task} failed{': ' + why if why else ''}")
            if time.monotonic() > deadline:
                state = ", ".join(sorted(statuses)) or "not listed"
                raise ApiCallError(None, f"task {task} is still {state}")
            time.sleep(0.2)
