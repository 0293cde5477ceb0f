"""What the API layer (signatures, keys) hands to the actions: the contract between them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

# Parameters every call carries and that no action reads (the RPC envelope).
COMMON_PARAMETERS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "SignatureType",
        "Timestamp",
        "RegionId",
    }
)

JsonObject = dict[str, object]


@dataclass(frozen=True)
class Caller:
    """Who made an authenticated call."""

    access_key_id: str
    read_only: bool


@dataclass(frozen=True)
class Call:
    """One authenticated call: the action's name and its own parameters (one value each)."""

    action: str
    params: Mapping[str, str]
    caller: Caller
    request_id: str


# Answers the action's documented fields (without RequestId), or raises ApiError.
Dispatch = Callable[[Call], Awaitable[JsonObject]]
