"""Console sessions: a random cookie token naming a key id, a CSRF token and an expiry."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from vodedge.config.errors import INVALID_PARAMETER, ConfigError

DEFAULT_SECONDS = 8 * 3600.0
SESSION_SECONDS_ENV = "VODEDGE_CONSOLE_SESSION_SECONDS"
# Bounds memory whatever logs on: the oldest sessions go first.
MAX_SESSIONS = 10_000


def session_seconds(text: str | None) -> float:
    """A session's lifetime from the environment's text: DEFAULT_SECONDS when unset."""
    if text is None:
        return DEFAULT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 30 * 86400:
        raise ConfigError(
            INVALID_PARAMETER, f"{SESSION_SECONDS_ENV} must be seconds in (0, 2592000]"
        )
    return seconds


@dataclass(frozen=True)
class Session:
    """A logged-on browser: which key it acts as (its secret is not kept), until when."""

    key_id: str
    csrf: str
    expires: float


class Sessions:
    """The live sessions of one admin listener, in memory (a restart logs everyone off)."""

    def __init__(self, seconds: float = DEFAULT_SECONDS) -> None:
        self.seconds = seconds
        self._by_token: dict[str, Session] = {}

    def open(self, key_id: str, now: float) -> tuple[str, Session]:
        """A new session for `key_id`: its cookie token and the session."""
        self._sweep(now)
        while len(self._by_token) >= MAX_SESSIONS:
            del self._by_token[next(iter(self._by_token))]
        token = secrets.token_urlsafe(32)
        session = Session(key_id, secrets.token_urlsafe(32), now + self.seconds)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None, now: float) -> Session | None:
        """The live session of `token`, None when there is none or it expired."""
        if not token:
            return None
        session = self._by_token.get(token)
        if session is None:
            return None
        if session.expires <= now:
            del self._by_token[token]
            return None
        return session

    def close(self, token: str | None) -> None:
        """End the session of `token` (log off)."""
        if token:
            self._by_token.pop(token, None)

    def _sweep(self, now: float) -> None:
        for token in [t for t, s in self._by_token.items() if s.expires <= now]:
            del self._by_token[token]


def csrf_matches(session: Session, given: str | None) -> bool:
    """Whether `given` is the session's CSRF token (compared in constant time)."""
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())
