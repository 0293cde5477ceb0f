"""The API's actions, by name; `make_dispatch(store)` is what the API layer calls."""

from __future__ import annotations

from . import certificates, configs, domains, tasks, usage
from .registry import REGISTRY, ActionSpec, Context, action, make_dispatch

__all__ = [
    "REGISTRY",
    "ActionSpec",
    "Context",
    "action",
    "certificates",
    "configs",
    "domains",
    "make_dispatch",
    "tasks",
    "usage",
]
