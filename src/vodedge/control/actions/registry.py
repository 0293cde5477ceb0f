"""The action registry: name to handler, and the Dispatch the API layer calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from ..calls import Call, Dispatch, JsonObject
from ..errors import ApiError
from ..store import ControlStore, StoreUnavailable
from ..usage import UsageStore

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every action gets besides its call: the store, reached from a thread (and
    the usage store, when the node samples its counters)."""

    store: ControlStore
    usage: UsageStore | None = None
    cname: str = ""  # every domain's Cname: where the node serves (see node_address)

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a (blocking) store call off the event loop."""
        return await asyncio.to_thread(function, *args, **kwargs)


Handler = Callable[[Context, Call], Awaitable[JsonObject]]


@dataclass(frozen=True)
class ActionSpec:
    """A registered action: its handler, and whether it changes anything."""

    name: str
    handler: Handler
    writes: bool


REGISTRY: dict[str, ActionSpec] = {}


def action(name: str, *, writes: bool) -> Callable[[Handler], Handler]:
    """Register `handler` as the action `name` (the API's spelling)."""

    def register(handler: Handler) -> Handler:
        if name in REGISTRY:
            raise RuntimeError(f"action {name} is registered twice")
        REGISTRY[name] = ActionSpec(name, handler, writes)
        return handler

    return register


def make_dispatch(
    store: ControlStore, usage: UsageStore | None = None, cname: str = ""
) -> Dispatch:
    """The Dispatch over `store`: finds the action, checks the caller may write, runs it."""
    context = Context(store, usage, cname)

    async def dispatch(call: Call) -> JsonObject:
        spec = REGISTRY.get(call.action)
        if spec is None:
            raise ApiError(
                404, "InvalidApi.NotFound", f"Specified api {call.action[:64]!r} is not found."
            )
        if spec.writes and call.caller.read_only:
            raise ApiError(
                403,
                "Forbidden.RAM",
                f"The access key {call.caller.access_key_id} is read-only:"
                f" {call.action} is not allowed.",
            )
        try:
            return await spec.handler(context, call)
        except StoreUnavailable:
            raise ApiError(
                503,
                "ServiceUnavailable",
                "The shared store cannot be reached; the node serves its last configuration."
                " Try again later.",
            ) from None

    return dispatch
