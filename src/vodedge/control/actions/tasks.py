"""Cache actions: RefreshObjectCaches, PushObjectCache, DescribeRefreshTasks,
DescribeRefreshQuota.

A task is stored, then applied by the node's workers (see `node.sync`): every
worker applies a refresh (the cache on disk is shared, but each worker keeps
recent lookups in memory) and it is Complete once all have; a preload is taken by
one worker, which fetches the object through the node's own client listener, so
it is cached exactly as a client's request would cache it.
"""

from __future__ import annotations

import calendar
import importlib
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ..calls import Call, JsonObject
from ..domains import api_domain_name, edge_domain_name
from ..errors import ApiError, missing
from ..store import DomainRecord, TaskKind, TaskQuery, TaskStatus
from .params import boolean, choice, integer, invalid, iso, optional, required, utc_time
from .registry import Context, action

# The CDN's defaults (RefreshObjectCaches, DescribeRefreshQuota): per day, and per call.
DAILY_QUOTA: Mapping[str, int] = {
    "file": 10_000,
    "directory": 100,
    "regex": 20,
    "preload": 1_000,
}
PER_CALL = {"file": 1_000, "directory": 100, "regex": 100, "preload": 1_000}
MAX_DOMAINS_PER_CALL = 10
MAX_PATH = 1024
MAX_REGEX = 256
MAX_REPEATS = 2
_OBJECT_TYPES = {"file": "file", "exquery": "file", "directory": "directory", "regex": "regex"}
_DESCRIBED_TYPES = ("file", "directory", "regex", "preload")
_STATUSES = ("Complete", "Refreshing", "Failed")


def owner(records: Sequence[DomainRecord], host: str) -> DomainRecord | None:
    """The stored domain that serves `host`: its own name, else the nearest wildcard."""
    by_name = {edge_domain_name(r.name): r for r in records}
    if host in by_name:
        return by_name[host]
    labels = host.split(".")
    for start in range(1, len(labels) - 1):
        record = by_name.get("*." + ".".join(labels[start:]))
        if record is not None:
            return record
    return None


def _repeats(items: Any, inside: bool) -> int:
    """Unbounded repetitions in a parsed pattern; ValueError if one is nested in another."""
    parser: Any = importlib.import_module("re._parser")
    count = 0
    for op, arg in items:
        if op in (parser.MAX_REPEAT, parser.MIN_REPEAT, parser.POSSESSIVE_REPEAT):
            _low, high, sub = arg
            if high == parser.MAXREPEAT or high > 100:
                if inside:
                    raise ValueError("a repetition inside a repetition")
                count += 1 + _repeats(sub, True)
            else:
                count += _repeats(sub, inside)
        elif op == parser.SUBPATTERN:
            count += _repeats(arg[-1], inside)
        elif op == parser.BRANCH:
            count += sum(_repeats(branch, inside) for branch in arg[1])
        elif op in (parser.ASSERT, parser.ASSERT_NOT):
            count += _repeats(arg[1], inside)
        elif op in (parser.GROUPREF, parser.GROUPREF_EXISTS):
            raise ValueError("a back-reference")
    return count


def check_regex(path: str) -> None:
    """A refresh's regular expression, refused unless matching it is cheap: no nested or
    more than MAX_REPEATS unbounded repetitions, no back-references (a worker matches it
    against every cached key of the domain; backtracking must stay polynomial and small)."""
    parser: Any = importlib.import_module("re._parser")
    if len(path) > MAX_REGEX:
        raise ValueError(f"over {MAX_REGEX} characters")
    try:
        parsed = parser.parse(path)
    except (re.error, RecursionError, OverflowError):
        raise ValueError("not a regular expression") from None
    if _repeats(parsed, False) > MAX_REPEATS:
        raise ValueError(f"more than {MAX_REPEATS} unbounded repetitions")


def _objects(text: str, records: Sequence[DomainRecord], kind: TaskKind) -> list[tuple[str, str]]:
    """(domain, path) for each line of ObjectPath; the path's host must be a stored domain."""
    lines = [line.strip() for line in re.split(r"\r?\n", text) if line.strip()]
    if not lines:
        raise missing("ObjectPath")
    if len(lines) > PER_CALL[kind]:
        raise ApiError(
            400,
            "SingleRequest.OverLimit",
            f"A maximum of {PER_CALL[kind]} {kind} objects are supported for each request.",
        )
    objects = []
    for line in lines:
        bare = re.sub(r"^https?://", "", line, flags=re.IGNORECASE)
        host, slash, path = bare.partition("/")
        host = host.lower().rstrip(".")
        if (
            len(line) > MAX_PATH
            or not host
            or any(ord(c) < 33 for c in line)
            or (not slash and kind != "directory")
        ):
            raise invalid("ObjectPath", line, "must be a URL like example.com/path/file.mp4")
        if kind == "regex":
            try:
                check_regex(path)
            except ValueError as why:
                raise invalid(
                    "ObjectPath", line, f"is not a regular expression we take: {why}"
                ) from None
        record = owner(records, host.partition(":")[0])
        if record is None:
            raise ApiError(
                404, "InvalidDomain.NotFound", f"The domain {host} does not exist in our records."
            )
        objects.append((record.name, line))
    if len({domain for domain, _ in objects}) > MAX_DOMAINS_PER_CALL:
        raise ApiError(
            400,
            "SingleRequest.OverLimit",
            f"The objects of a request may belong to at most {MAX_DOMAINS_PER_CALL} domains.",
        )
    return objects


def _today() -> float:
    now = time.gmtime()
    return float(calendar.timegm((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0)))


async def _submit(context: Context, call: Call, kind: TaskKind, force: bool) -> str:
    records = await context.run(context.store.domains)
    objects = _objects(required(call, "ObjectPath"), records, kind)
    used = await context.run(context.store.task_counts_since, _today())
    if used.get(kind, 0) + len(objects) > DAILY_QUOTA[kind]:
        code = "QuotaExceeded.Preload" if kind == "preload" else "QuotaExceeded.Refresh"
        raise ApiError(
            400, code, f"Your {kind} quota of {DAILY_QUOTA[kind]} objects a day is used up."
        )
    task_id = await context.run(context.store.add_task, kind, objects, force)
    return str(task_id)


@action("RefreshObjectCaches", writes=True)
async def refresh_object_caches(context: Context, call: Call) -> JsonObject:
    """Purge files, directories or a regular expression's matches from the cache."""
    raw = optional(call, "ObjectType") or "File"
    kind = _OBJECT_TYPES.get(raw.lower())
    if kind is None:
        raise ApiError(
            400, "InvalidObjectType.Malformed", f"Specified ObjectType {raw[:32]!r} is invalid."
        )
    task_id = await _submit(context, call, cast(TaskKind, kind), boolean(call, "Force"))
    return {"RefreshTaskId": task_id}


@action("PushObjectCache", writes=True)
async def push_object_cache(context: Context, call: Call) -> JsonObject:
    """Prefetch URLs: the node fetches and caches them as a client's request would."""
    choice(call, "Area", ("domestic", "overseas"))
    boolean(call, "L2Preload")
    task_id = await _submit(context, call, "preload", False)
    return {"PushTaskId": task_id}


@action("DescribeRefreshTasks", writes=False)
async def describe_refresh_tasks(context: Context, call: Call) -> JsonObject:
    """Refresh and preload objects with their status, filtered and paged."""
    page = integer(call, "PageNumber", 1, 1, 100_000)
    size = integer(call, "PageSize", 20, 1, 100)
    task_text = optional(call, "TaskId")
    if task_text is not None and not (
        task_text.isascii() and task_text.isdigit() and len(task_text) < 19
    ):
        raise invalid("TaskId", task_text, "must be a task ID")
    raw_kind = optional(call, "ObjectType")
    kind = None if raw_kind is None else raw_kind.lower()
    if kind is not None and kind not in _DESCRIBED_TYPES:
        raise invalid("ObjectType", raw_kind or "", f"must be one of {', '.join(_DESCRIBED_TYPES)}")
    status = choice(call, "Status", _STATUSES)
    domain = optional(call, "DomainName")
    if (domain is not None or status is not None) and kind is None:
        raise missing("ObjectType")  # as the reference says: DomainName and Status need it
    start, end = utc_time(call, "StartTime"), utc_time(call, "EndTime")
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "InvalidEndTime.Mismatch", "EndTime must be later than StartTime.")
    query = TaskQuery(
        task_id=None if task_text is None else int(task_text),
        path=optional(call, "ObjectPath"),
        kind=cast(TaskKind | None, kind),
        domain=None if domain is None else api_domain_name(domain.strip()),
        status=cast(TaskStatus | None, status),
        start=start,
        end=end,
        page=page,
        size=size,
    )
    total, tasks = await context.run(context.store.tasks, query)
    return {
        "PageNumber": page,
        "PageSize": size,
        "TotalCount": total,
        "Tasks": {
            "CDNTask": [
                {
                    "TaskId": str(task.task_id),
                    "ObjectPath": task.path,
                    "ObjectType": task.kind,
                    "Status": task.status,
                    "Process": task.process,
                    "CreationTime": iso(task.created),
                    "Description": task.description,
                }
                for task in tasks
            ]
        },
    }


@action("DescribeRefreshQuota", writes=False)
async def describe_refresh_quota(context: Context, call: Call) -> JsonObject:
    """Today's quotas (UTC day) and what is left of them."""
    used = await context.run(context.store.task_counts_since, _today())

    def left(kind: str) -> str:
        return str(max(0, DAILY_QUOTA[kind] - used.get(cast(TaskKind, kind), 0)))

    return {
        "UrlQuota": str(DAILY_QUOTA["file"]),
        "UrlRemain": left("file"),
        "DirQuota": str(DAILY_QUOTA["directory"]),
        "DirRemain": left("directory"),
        "RegexQuota": str(DAILY_QUOTA["regex"]),
        "RegexRemain": left("regex"),
        "PreloadQuota": str(DAILY_QUOTA["preload"]),
        "PreloadRemain": left("preload"),
        # Not offered by a vodedge node: no blocking, no parameter-ignoring refresh
        # of its own (ExQuery is a File refresh here), no L2 tier.
        "BlockQuota": "0",
        "BlockRemain": "0",
        "IgnoreParamsQuota": "0",
        "IgnoreParamsRemain": "0",
        "PreloadEdgeQuota": "0",
        "PreloadEdgeRemain": "0",
    }
