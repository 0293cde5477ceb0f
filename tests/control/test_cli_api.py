"""The CLI's API commands (`vodedge domain|config|push|purge URL`) against a real node.

They are run as an operator would, as processes with the endpoint and key in
the environment or in flags; what they did is checked through the SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
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


# --- happy paths, checked through the SDK and the edge -----------------------------------


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The stdout of a command that succeeded, quietly."""
    assert done.returncode == 0 and done.stderr == "", (done.stdout, done.stderr)
    return done.stdout


def detail(node: ApiNode, domain: str) -> dict[str, object]:
    from alibabacloud_cdn20180510 import models

    answer = node.new_client().describe_cdn_domain_detail(
        models.DescribeCdnDomainDetailRequest(domain_name=domain)
    )
    model = answer.body.to_map()["GetDomainDetailModel"]
    assert isinstance(model, dict)
    return model


def test_a_domain_s_life_through_the_cli(api_node: ApiNode) -> None:
    name = "cli-life.example.com"
    # Origins that refuse at once: the edge may ask them before the stop reaches it.
    add = ["domain", "add", name, "--origin", "127.0.0.1:9", "--origin", "localhost"]
    assert ok(vodedge(api_node, *add)) == f"{name}: added\n"
    model = detail(api_node, name)
    assert model["DomainStatus"] == "online"
    sources = model["SourceModels"]["SourceModel"]  # type: ignore[index]
    assert [(s["Type"], s["Content"], s["Port"]) for s in sources] == [
        ("ipaddr", "127.0.0.1", 9),
        ("domain", "localhost", 80),
    ]
    listed = ok(vodedge(api_node, "domain", "list")).splitlines()
    assert listed[0].split() == ["DOMAIN", "STATUS", "HTTPS", "TYPE", "ORIGINS"]
    row = next(line.split() for line in listed if line.startswith(name + " "))
    assert row == [name, "online", "off", "video", "127.0.0.1:9,localhost:80"]
    shown = json.loads(ok(vodedge(api_node, "domain", "show", name)))
    assert shown["DomainName"] == name and shown["CdnType"] == "video"
    assert ok(vodedge(api_node, "domain", "stop", name)) == f"{name}: stopped\n"
    stopped = time.time()
    assert detail(api_node, name)["DomainStatus"] == "offline"
    api_node.server.changed_within(
        name,
        stopped,
        lambda: api_node.server.get(name, "/x.mp4").status == 403,
        lambda line: line["status"] == 403,
    )
    assert ok(vodedge(api_node, "domain", "start", name)) == f"{name}: started\n"
    assert detail(api_node, name)["DomainStatus"] == "online"
    assert ok(vodedge(api_node, "domain", "delete", name)) == f"{name}: deleted\n"
    gone = one_error_line(vodedge(api_node, "domain", "show", name))
    assert gone.startswith("InvalidDomain.NotFound: ")
    again = one_error_line(vodedge(api_node, "domain", "delete", name))
    assert again.startswith("InvalidDomain.NotFound: ")


def test_functions_through_the_cli(api_node: ApiNode) -> None:
    name = "cli-config.example.com"
    ok(vodedge(api_node, "domain", "add", name, "--origin", "192.0.2.8"))
    said = ok(
        vodedge(api_node, "config", "set", name, "video_seek", "enable=on", "mp4_seek_start=s")
    )
    config_id = said.split()[-1]
    assert said == f"{name}: video_seek ConfigId {config_id}\n" and config_id.isdigit()
    ok(vodedge(api_node, "config", "set", name, "ali_video_split", "enable=on"))
    got = ok(vodedge(api_node, "config", "get", name)).splitlines()
    assert f"{config_id}  video_seek  enable=on mp4_seek_start=s" in got
    assert any(line.endswith("  ali_video_split  enable=on") for line in got)
    # Updating by ConfigId keeps the id; the arguments are replaced.
    ok(vodedge(api_node, "config", "set", name, "video_seek", "enable=off",
               "--config-id", config_id))  # fmt: skip
    only = json.loads(ok(vodedge(api_node, "config", "get", name, "video_seek", "--json")))
    assert [(c["ConfigId"], c["FunctionArgs"]["FunctionArg"]) for c in only] == [
        (config_id, [{"ArgName": "enable", "ArgValue": "off"}])
    ]
    # A bad value, an unknown function: the API's codes, nothing stored.
    bad = one_error_line(vodedge(api_node, "config", "set", name, "range", "enable=maybe"))
    assert bad.startswith("InvalidArgValue.Malformed: ")
    unknown = one_error_line(vodedge(api_node, "config", "set", name, "nope", "a=b"))
    assert unknown.startswith("InvalidFunctionName.ValueNotSupported: ")
    assert len(ok(vodedge(api_node, "config", "get", name)).splitlines()) == 2
    # Deleting by function name and by id.
    assert ok(vodedge(api_node, "config", "delete", name, "ali_video_split")).startswith(
        f"{name}: deleted ConfigId "
    )
    ok(vodedge(api_node, "config", "delete", name, config_id))
    assert ok(vodedge(api_node, "config", "get", name)) == ""
    missing = one_error_line(vodedge(api_node, "config", "delete", name, "range"))
    assert missing == f"{name} has no range configured"


def test_push_and_purge_through_the_cli(api_node: ApiNode) -> None:
    host, path = "preloaded.example.com", "/cli-push.bin"
    (api_node.server.work / "origin" / path[1:]).write_bytes(os.urandom(100_000))
    url = f"http://{host}{path}"
    assert api_node.server.get(host, path, method="HEAD").header("X-Cache") == "MISS"
    pushed = ok(vodedge(api_node, "push", url, "--wait")).splitlines()
    assert pushed[0].startswith("PushTaskId ") and pushed[1].endswith(": Complete")
    assert api_node.server.get(host, path, method="HEAD").header("X-Cache") == "HIT"
    purged = ok(vodedge(api_node, "purge", url, f"http://{host}/dir/", "--wait")).splitlines()
    assert purged[0].startswith("RefreshTaskId ") and purged[0].endswith("(1 file)")
    assert purged[1].startswith("RefreshTaskId ") and purged[1].endswith("(1 directory)")
    assert all(line.endswith(": Complete") for line in purged[2:]) and len(purged) == 4
    assert api_node.server.get(host, path, method="HEAD").header("X-Cache") == "MISS"
