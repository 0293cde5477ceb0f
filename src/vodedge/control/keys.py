"""The access keys the API accepts: the configuration's pairs and one from the environment."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Callable, Iterable, Mapping

from vodedge.config.errors import INVALID_PARAMETER, ConfigError
from vodedge.config.keys import AccessKey

ENV_ID = "VODEDGE_ACCESS_KEY_ID"
ENV_SECRET = "VODEDGE_ACCESS_KEY_SECRET"


class KeyRing:
    """Access keys by id."""

    def __init__(self, keys: Iterable[AccessKey]) -> None:
        self._keys: dict[str, AccessKey] = {}
        for key in keys:
            known = self._keys.get(key.id)
            if known is not None and known != key:
                raise ConfigError(
                    INVALID_PARAMETER, f"access key {key.id} is configured twice, differently"
                )
            self._keys[key.id] = key

    @classmethod
    def of(cls, configured: Iterable[AccessKey], environ: Mapping[str, str]) -> KeyRing:
        """The configured pairs plus the environment's (full access), if it sets one."""
        keys = list(configured)
        key_id, secret = environ.get(ENV_ID), environ.get(ENV_SECRET)
        if (key_id is None) != (secret is None):
            raise ConfigError(INVALID_PARAMETER, f"set both {ENV_ID} and {ENV_SECRET}, or neither")
        if key_id is not None and secret is not None:
            try:
                keys.append(AccessKey(key_id, secret))
            except ConfigError as error:
                raise ConfigError(error.code, f"{ENV_ID}/{ENV_SECRET}: {error.message}") from None
        return cls(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key_id: str) -> AccessKey | None:
        """The pair named `key_id`, None when there is none."""
        return self._keys.get(key_id)


class CurrentKeys:
    """The key ring of the current configuration, rebuilt when its pairs change."""

    def __init__(
        self, configured: Callable[[], tuple[AccessKey, ...]], environ: Mapping[str, str]
    ) -> None:
        self._configured = configured
        self._environ = dict(environ)
        self._pairs = configured()
        self._ring = KeyRing.of(self._pairs, self._environ)

    def __call__(self) -> KeyRing:
        pairs = self._configured()
        if pairs != self._pairs:
            self._pairs = pairs
            try:
                self._ring = KeyRing.of(pairs, self._environ)
            except ConfigError as error:  # the last good pairs stay
                sys.stderr.write(f"vodedge: access keys not reloaded: {error}\n")
        return self._ring


def is_loopback(host: str) -> bool:
    """Whether a listener on `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_admin_keys(host: str, port: int, keys: KeyRing) -> None:
    """Refuse an admin listener others can reach when no key could call its API."""
    if not keys and not is_loopback(host):
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ConfigError(
            INVALID_PARAMETER,
            f"the admin listener {shown} is not loopback and no access key is configured"
            f" ([[access_keys]] in the config file, or {ENV_ID} and {ENV_SECRET}):"
            " its API would refuse every call",
        )
