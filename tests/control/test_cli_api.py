"""The CLI's API commands (`vodedge domain|config|push|purge URL`) against a real node.

They are run as an operator would, as processes with the endpoint and key in
the environment or in flags; what they did is checked through the SDK.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from api_client import Key
from api_node import FULL, READ_ONLY, UNKNOWN, ApiNode

from oracle import vodedge_command


def vodedge(
    node: ApiNode | None, *args: str, key: Key = FULL, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`vodedge ARGS…` with the node's endpoint and `key` in the environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VODEDGE_ACCESS_KEY")}
    if node is not None:
        environment |= {
            "VODEDGE_ENDPOINT": f"http://{node.endpoint}",
            "VODEDGE_ACCESS_KEY_ID": key.id,
            "VODEDGE_ACCESS_KEY_SECRET": key.secret,
        }
    environment |= env or {}
    return subprocess.run(
        [*vodedge_command(), *args], capture_output=True, text=True, timeout=60, env=environment
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (exit 2, no traceback)."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("vodedge: error: ")
    return lines[0].removeprefix("vodedge: error: ")


def test_the_api_refuses_a_wrong_secret_or_an_unknown_key_with_its_code(api_node: ApiNode) -> None:
    wrong = Key(FULL.id, "not-the-secret-0123456789")
    assert one_error_line(vodedge(api_node, "domain", "list", key=wrong)).startswith(
        "SignatureDoesNotMatch: "
    )
    assert one_error_line(vodedge(api_node, "domain", "list", key=UNKNOWN)).startswith(
        "InvalidAccessKeyId.NotFound: "
    )


def test_a_valid_signature_reaches_the_key_checks(api_node: ApiNode) -> None:
    # A read-only key writing is refused after its signature was verified.
    done = vodedge(
        api_node, "domain", "add", "ro.example.com", "--origin", "127.0.0.1:9", key=READ_ONLY
    )
    assert one_error_line(done).startswith("Forbidden.RAM: ")


def test_flags_outrank_the_environment(api_node: ApiNode) -> None:
    wrong = Key(FULL.id, "not-the-secret-0123456789")
    done = vodedge(
        api_node,
        "domain", "add", "ro.example.com", "--origin", "127.0.0.1:9",
        "--endpoint", api_node.endpoint,  # no scheme: http
        "--access-key-id", READ_ONLY.id, "--access-key-secret", READ_ONLY.secret,
        key=wrong,
    )  # fmt: skip
    assert one_error_line(done).startswith("Forbidden.RAM: ")


def test_no_endpoint_no_key_or_no_node_are_one_line(tmp_path: Path) -> None:
    assert "VODEDGE_ENDPOINT" in one_error_line(vodedge(None, "domain", "list"))
    no_key = vodedge(None, "push", "http://a.test/x", env={"VODEDGE_ENDPOINT": "127.0.0.1:1"})
    assert "VODEDGE_ACCESS_KEY_ID" in one_error_line(no_key)
    nowhere = {
        "VODEDGE_ENDPOINT": "http://127.0.0.1:1",
        "VODEDGE_ACCESS_KEY_ID": "x",
        "VODEDGE_ACCESS_KEY_SECRET": "y",
    }
    nobody = vodedge(None, "purge", "http://a.test/x", env=nowhere)
    assert one_error_line(nobody).startswith("cannot reach the API at http://127.0.0.1:1/")
    bad = vodedge(None, "config", "set", "a.test", "range", "enable", env=nowhere)
    assert one_error_line(bad) == "function arguments are ARG=VALUE, got 'enable'"
    origin = vodedge(None, "domain", "add", "a.test", "--origin", "h:99999", env=nowhere)
    assert one_error_line(origin) == "origin 'h:99999' has a bad port"
