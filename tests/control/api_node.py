"""A real `vodedge serve` with access keys, and clients of both SDK generations
pointed at its admin listener.

`start_node` runs `vodedge serve --config FILE --listen ... --admin ...`
on free loopback ports, with the keys below from the file and one pair from the
environment. `api_node.new_client(key)` is an `alibabacloud_cdn20180510` client,
`api_node.old_client(key)` an `aliyun-python-sdk-core` one (its requests need the
endpoint and `http` set on each request: `old.call(request)` does that).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "edge"))

from api_client import Key
from edge_harness import Vodedge

FULL = Key("vodedge-full", "full-secret-0123456789abcdef")
READ_ONLY = Key("vodedge-reader", "reader-secret-0123456789abcdef")
SLOW = Key("vodedge-slow", "slow-secret-0123456789abcdef")  # one call a second
ENV = Key("vodedge-env", "env-secret-0123456789abcdef")  # from VODEDGE_ACCESS_KEY_*
UNKNOWN = Key("vodedge-nobody", "nobody-secret-0123456789abcdef")
SECRETS = tuple(k.secret for k in (FULL, READ_ONLY, SLOW, ENV, UNKNOWN))
SLOW_RATE = 1


def keys_toml() -> str:
    """The [[access_keys]] tables of the test node."""
    return f"""
[[access_keys]]
id = "{FULL.id}"
secret = "{FULL.secret}"

[[access_keys]]
id = "{READ_ONLY.id}"
secret = "{READ_ONLY.secret}"
read_only = true

[[access_keys]]
id = "{SLOW.id}"
secret = "{SLOW.secret}"
rate = {SLOW_RATE}
"""


def node_toml(origin_dir: Path) -> str:
    """The test node's config file: keys, and the one domain the loader requires."""
    return (
        keys_toml()
        + f"""
[[domain]]
name = "preloaded.example.com"
origins = ["{origin_dir}"]
"""
    )


class OldClient:
    """An aliyun-python-sdk-core client whose requests go to the test node over http."""

    def __init__(self, key: Key, endpoint: str) -> None:
        from aliyunsdkcore.client import AcsClient

        self.client = AcsClient(key.id, key.secret, "cn-hangzhou", auto_retry=False)
        self.endpoint = endpoint

    def call(self, request: Any) -> dict[str, Any]:
        """Send an SDK request (a generated one or a CommonRequest); its JSON answer."""
        request.set_endpoint(self.endpoint)
        request.set_protocol_type("http")
        body = self.client.do_action_with_exception(request)
        data = json.loads(body)
        assert isinstance(data, dict)
        return data


@dataclass
class ApiNode:
    """A running node and ways to call its API."""

    server: Vodedge

    @property
    def port(self) -> int:
        """The admin listener, where the API is."""
        return self.server.admin_port

    @property
    def endpoint(self) -> str:
        """HOST:PORT, as the SDKs take an endpoint."""
        return f"127.0.0.1:{self.port}"

    def new_client(self, key: Key = FULL, signature_algorithm: str | None = None) -> Any:
        """An alibabacloud_cdn20180510 client (ACS3-HMAC-SHA256) for `key`; with
        `signature_algorithm="v2"` it signs RPC v1.0 HMAC-SHA1 like the older SDK."""
        from alibabacloud_cdn20180510.client import Client
        from alibabacloud_tea_openapi.models import Config

        config = Config(
            access_key_id=key.id,
            access_key_secret=key.secret,
            endpoint=self.endpoint,
            protocol="http",
            read_timeout=30000,
            connect_timeout=5000,
            signature_algorithm=signature_algorithm,
        )
        return Client(config)

    def old_client(self, key: Key = FULL) -> OldClient:
        """An aliyun-python-sdk-core client (signature v1.0) for `key`."""
        return OldClient(key, self.endpoint)

    def log_text(self) -> str:
        """Everything the node wrote on stderr so far."""
        return self.server.stderr_log.read_text(errors="replace")


def start_node(work: Path, config: str | None = None, **options: Any) -> Vodedge:
    """A started node (the caller stops it) with the test keys, file and environment."""
    origin = work / "origin"
    origin.mkdir(parents=True, exist_ok=True)
    env = {
        "VODEDGE_ACCESS_KEY_ID": ENV.id,
        "VODEDGE_ACCESS_KEY_SECRET": ENV.secret,
        **options.pop("env", {}),
    }
    server = Vodedge(work, config or node_toml(origin), env=env, **options)
    server.start()
    return server
