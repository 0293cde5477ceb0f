"""One JSON line per request."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

LOG = logging.getLogger("vodedge.access")


def log_request(**fields: Any) -> None:
    """Write one access-log line (only when the access logger is enabled)."""
    if LOG.isEnabledFor(logging.INFO):
        fields["time"] = round(time.time(), 3)
        LOG.info(json.dumps(fields, separators=(",", ":"), default=str))
