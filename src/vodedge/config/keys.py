"""Access keys of the management API: an id, a secret, what the pair may do."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import INVALID_PARAMETER, ConfigError

# A pair's calls per second (and burst: that many at once) unless it says otherwise.
DEFAULT_RATE = 200.0
MIN_SECRET_LENGTH = 16
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SECRET = re.compile(rf"[\x21-\x7e]{{{MIN_SECRET_LENGTH},256}}")


@dataclass(frozen=True)
class AccessKey:
    """One key pair; `read_only` pairs may call only `Describe*` actions."""

    id: str
    secret: str = field(repr=False)
    read_only: bool = False
    rate: float = DEFAULT_RATE

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.id):
            raise ConfigError(
                INVALID_PARAMETER,
                "an access key id is 1 to 128 letters, digits, '.', '_' or '-'",
            )
        # The message never quotes the secret, whatever is wrong with it.
        if not _SECRET.fullmatch(self.secret):
            raise ConfigError(
                INVALID_PARAMETER,
                f"the secret of access key {self.id} must be {MIN_SECRET_LENGTH} to 256"
                " printable ASCII characters without spaces",
            )
        if not 0 < self.rate <= 1e6:
            raise ConfigError(
                INVALID_PARAMETER, f"the rate of access key {self.id} must be 0 < rate <= 1e6"
            )
