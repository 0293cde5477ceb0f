"""A node's place in a fleet's tiers: an edge or a parent, and the secret they share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .errors import INVALID_PARAMETER, ConfigError, shown

Role = Literal["edge", "parent"]
ROLES: tuple[Role, ...] = ("edge", "parent")
MIN_SECRET_LENGTH = 16
_SECRET = re.compile(rf"[\x21-\x7e]{{{MIN_SECRET_LENGTH},256}}")


@dataclass(frozen=True)
class Tier:
    """`role` parent: the node never fetches through origins of kind vodedge (it is the
    one they name). `secret` signs an edge's source requests to its parent, and lets a
    parent tell them from clients' (no secret: none are signed, none trusted)."""

    role: Role = "edge"
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(
                INVALID_PARAMETER, f"role must be edge or parent, got {shown(self.role)}"
            )
        # The message never quotes the secret, whatever is wrong with it.
        if self.secret is not None and not _SECRET.fullmatch(self.secret):
            raise ConfigError(
                INVALID_PARAMETER,
                f"fleet_secret must be {MIN_SECRET_LENGTH} to 256 printable ASCII characters"
                " without spaces",
            )
