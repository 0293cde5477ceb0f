"""Every action through both official SDKs against a real two-worker node, and what the
edge does about it: functions switched within a second on every worker, a stopped
domain refused before its origin, purges and prefetches that really change the cache."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from api_client import Key
from api_node import FULL, ApiNode, start_node
from edge_harness import FaultOrigin, RawClient, Vodedge, http_request, running, wait_until
from edge_media import SAMPLES, MediaDir
from test_actions import ARGS, bad_function

pytestmark = pytest.mark.xdist_group("control_sdk")


def _snake(name: str) -> str:
    out = ""
    for index, char in enumerate(name):
        if char.isupper() and index:
            out += "_"
        out += char.lower()
    return out


class NewSdk:
    """alibabacloud-cdn20180510: the generated request and response models."""

    name = "new"

    def __init__(self, node: ApiNode, key: Key = FULL) -> None:
        self.client = node.new_client(key)

    def __call__(self, action: str, **params: Any) -> dict[str, Any]:
        from alibabacloud_cdn20180510 import models

        request = getattr(models, f"{action}Request")(
            **{_snake(key): value for key, value in params.items()}
        )
        response = getattr(self.client, _snake(action))(request)
        body: dict[str, Any] = response.body.to_map()  # only the fields the SDK knows
        assert body.get("RequestId"), body
        return body


class OldSdk:
    """aliyun-python-sdk-cdn's request classes over aliyun-python-sdk-core."""

    name = "old"

    def __init__(self, node: ApiNode) -> None:
        self.client = node.old_client(FULL)

    def __call__(self, action: str, **params: Any) -> dict[str, Any]:
        import importlib

        module = importlib.import_module(f"aliyunsdkcdn.request.v20180510.{action}Request")
        request = getattr(module, f"{action}Request")()
        for key, value in params.items():
            text = str(value).lower() if isinstance(value, bool) else value
            setter = getattr(request, f"set_{key}", None)
            if setter is None:  # a parameter newer than this SDK release: set it by name
                request.add_query_param(key, text)
            else:
                setter(text)
        body = self.client.call(request)
        assert body.get("RequestId"), body
        return body


Sdk = Callable[..., dict[str, Any]]


@dataclass
class Setup:
    node: ApiNode
    origin: FaultOrigin
    talk: str  # the sample's URL path on the origin

    @property
    def server(self) -> Vodedge:
        return self.node.server

    def sources(self, *backups: int) -> str:
        main = {"content": "127.0.0.1", "type": "ipaddr", "port": self.origin.port}
        extra = [
            {"content": "127.0.0.1", "type": "ipaddr", "port": port, "priority": "30"}
            for port in backups
        ]
        return json.dumps([main, *extra])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A two-worker node (the API's test keys) and a fault origin that logs its requests."""
    work = tmp_path_factory.mktemp("sdk-node")
    media = MediaDir(work / "media")
    media.root.mkdir()
    talk = media.add(SAMPLES / "talk.mp4", "v/talk.mp4")
    with running(FaultOrigin(media.root, work / "origin")) as origin:
        server = start_node(work / "node", workers=2)
        try:
            yield Setup(ApiNode(server), origin, talk)
        finally:
            server.stop()


@pytest.fixture(params=["new", "old"])
def sdk(request: pytest.FixtureRequest, setup: Setup) -> Sdk:
    """Each test runs once with each SDK generation."""
    return NewSdk(setup.node) if request.param == "new" else OldSdk(setup.node)


def _task_done(sdk: Sdk, task_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """Wait until every object of a task is Complete; its last description."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = sdk("DescribeRefreshTasks", TaskId=task_id)["Tasks"]["CDNTask"]
        if tasks and all(t["Status"] == "Complete" for t in tasks):
            return tasks[0]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, tasks
        time.sleep(0.05)


def test_every_action_through_the_sdk(setup: Setup, sdk: Sdk) -> None:
    """Each action's happy path, read back through the SDK's own response models."""
    name = f"life-{sdk.name}.example.com"  # type: ignore[attr-defined]
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    listed = sdk("DescribeUserDomains", DomainName=name, PageSize=10, PageNumber=1)
    assert (listed["TotalCount"], listed["PageSize"], listed["PageNumber"]) == (1, 10, 1)
    data = listed["Domains"]["PageData"][0]
    assert (data["DomainName"], data["DomainStatus"], data["CdnType"]) == (name, "online", "video")
    assert data["Sources"]["Source"][0]["Port"] == setup.origin.port
    sdk("ModifyCdnDomain", DomainName=name, Sources=setup.sources(setup.origin.port))
    detail = sdk("DescribeCdnDomainDetail", DomainName=name)["GetDomainDetailModel"]
    assert [s["Priority"] for s in detail["SourceModels"]["SourceModel"]] == ["20", "30"]
    split = {
        "functionName": "ali_video_split",
        "functionArgs": [{"argName": "enable", "argValue": "on"}],
    }
    ttl = {
        "functionName": "path_based_ttl_set",
        "functionArgs": [
            {"argName": "ttl", "argValue": "60"},
            {"argName": "path", "argValue": "/v"},
        ],
    }
    functions = [split, ttl]
    models = sdk("BatchSetCdnDomainConfig", DomainNames=name, Functions=json.dumps(functions))[
        "DomainConfigList"
    ]["DomainConfigModel"]
    assert [m["FunctionName"] for m in models] == ["ali_video_split", "path_based_ttl_set"]
    split_id, ttl_id = (str(m["ConfigId"]) for m in models)
    configs = sdk("DescribeCdnDomainConfigs", DomainName=name, FunctionNames="ali_video_split")
    [config] = configs["DomainConfigs"]["DomainConfig"]
    assert (config["ConfigId"], config["FunctionArgs"]["FunctionArg"][0]["ArgValue"]) == (
        split_id,
        "on",
    )
    by_id = sdk("DescribeCdnDomainConfigs", DomainName=name, ConfigId=ttl_id)
    assert [c["FunctionName"] for c in by_id["DomainConfigs"]["DomainConfig"]] == [
        "path_based_ttl_set"
    ]
    sdk("DeleteSpecificConfig", DomainName=name, ConfigId=ttl_id)
    left = sdk("DescribeCdnDomainConfigs", DomainName=name)["DomainConfigs"]["DomainConfig"]
    assert [c["ConfigId"] for c in left] == [split_id]
    sdk("StopCdnDomain", DomainName=name)
    stopped = sdk("DescribeCdnDomainDetail", DomainName=name)["GetDomainDetailModel"]
    assert stopped["DomainStatus"] == "offline"
    sdk("StartCdnDomain", DomainName=name)
    refresh = sdk("RefreshObjectCaches", ObjectPath=f"{name}{setup.talk}", ObjectType="File")
    task = _task_done(sdk, refresh["RefreshTaskId"])
    assert (task["ObjectType"], task["Process"]) == ("file", "100%")
    push = sdk("PushObjectCache", ObjectPath=f"{name}{setup.talk}")
    assert _task_done(sdk, push["PushTaskId"], 15)["ObjectType"] == "preload"
    quota = sdk("DescribeRefreshQuota")
    assert quota["UrlQuota"] == "10000" and int(quota["UrlRemain"]) < 10000
    sdk("DeleteCdnDomain", DomainName=name)
    assert sdk("DescribeUserDomains", DomainName=name)["TotalCount"] == 0


def test_a_common_request_reaches_the_actions(setup: Setup) -> None:
    """The older SDK's CommonRequest, as scripts without the cdn package write it."""
    from aliyunsdkcore.request import CommonRequest

    request = CommonRequest()
    request.set_accept_format("json")
    request.set_version("2018-05-10")
    request.set_action_name("DescribeUserDomains")
    request.add_query_param("DomainName", "preloaded.example.com")
    body = setup.node.old_client(FULL).call(request)
    assert body["TotalCount"] == 1
    # The TOML file's domain was imported: its directory origin shows as vodedge's own type.
    source = body["Domains"]["PageData"][0]["Sources"]["Source"][0]
    assert source["Type"] == "dir"


def _refusal(sdk: Sdk, action: str, **params: Any) -> str:
    """The error code the SDK raises for a refused call."""
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from Tea.exceptions import TeaException

    try:
        sdk(action, **params)
    except TeaException as error:
        return str(error.code)
    except ServerException as error:
        return str(error.get_error_code())
    raise AssertionError(f"{action} was not refused")


def test_every_bad_argument_value_is_refused_through_the_sdk(setup: Setup, sdk: Sdk) -> None:
    """Each argument of the vocabulary with a value it does not take: the SDK reports
    InvalidArgValue.Malformed and the domain has no function afterwards."""
    name = f"bad-{sdk.name}.example.com"  # type: ignore[attr-defined]
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    for function, arg in ARGS:
        bad = json.dumps([bad_function(function, arg).to_api()])
        code = _refusal(sdk, "BatchSetCdnDomainConfig", DomainNames=name, Functions=bad)
        assert code == "InvalidArgValue.Malformed", (function, arg)
    unknown = json.dumps([{"functionName": "make_coffee", "functionArgs": []}])
    code = _refusal(sdk, "BatchSetCdnDomainConfig", DomainNames=name, Functions=unknown)
    assert code == "InvalidFunctionName.ValueNotSupported"
    assert sdk("DescribeCdnDomainConfigs", DomainName=name)["DomainConfigs"]["DomainConfig"] == []
    assert _refusal(sdk, "DescribeCdnDomainDetail", DomainName="no.example.com") == (
        "InvalidDomain.NotFound"
    )


# --- what the edge does -----------------------------------------------------------------------


def _answers(server: Vodedge, host: str, path: str, count: int = 16) -> list[tuple[int, str]]:
    """(status, Content-Type) of `count` requests on fresh connections (spread on workers)."""
    out = []
    for _ in range(count):
        reply = http_request(server.port, host, path, method="HEAD")
        out.append((reply.status, reply.header("Content-Type") or ""))
    return out


def _answered_within_a_second(server: Vodedge, host: str, path: str, status: int) -> None:
    """Every worker answers `status` for `host` from at most a second after now (the
    answer of the call that changed it), by the node's clock; waited for generously."""
    server.changed_within(
        host,
        time.time(),
        lambda: all(s == status for s, _ in _answers(server, host, path)),
        lambda line: line["status"] == status,
    )


def test_video_split_switches_within_a_second_on_every_worker(setup: Setup, sdk: Sdk) -> None:
    """A new domain, then ali_video_split on, then off, through the SDK: each worker
    serves each change within one second of the call's answer, without restarting."""
    server = setup.server
    name = f"split-{sdk.name}.example.com"  # type: ignore[attr-defined]
    path = setup.talk + "?ali_audio_only=1"
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    _answered_within_a_second(server, name, path, 200)
    pids = server.worker_pids()
    # A keep-alive connection opened before the changes: it must see them, never be dropped.
    kept = HTTPConnection("127.0.0.1", server.port, timeout=10)

    def on_kept_connection() -> str:
        kept.request("HEAD", path, headers={"Host": name})
        response = kept.getresponse()
        response.read()
        return f"{response.status} {response.getheader('Content-Type')}"

    assert on_kept_connection() == "200 video/mp4"
    for enable, wanted, function in (
        ("on", "audio/mp4", "audio_only"),
        ("off", "video/mp4", "plain"),
    ):
        functions = [{"functionName": "ali_video_split",
                      "functionArgs": [{"argName": "enable", "argValue": enable}]}]  # fmt: skip
        sdk("BatchSetCdnDomainConfig", DomainNames=name, Functions=json.dumps(functions))
        server.changed_within(
            name,
            time.time(),
            lambda w=wanted: all(a == (200, w) for a in _answers(server, name, path)),
            lambda line, f=function: (line["status"], line["function"]) == (200, f),
        )
        assert all(a == (200, wanted) for a in _answers(server, name, path, 24))
        assert on_kept_connection() == f"200 {wanted}"
    kept.close()
    assert server.worker_pids() == pids


def test_a_stopped_domain_is_refused_and_its_origin_never_asked(setup: Setup, sdk: Sdk) -> None:
    """StopCdnDomain: 403 on every worker within a second, and no origin request."""
    server = setup.server
    name = f"stop-{sdk.name}.example.com"  # type: ignore[attr-defined]
    path = f"/v/talk.mp4?stop={sdk.name}"  # type: ignore[attr-defined]
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    _answered_within_a_second(server, name, setup.talk, 200)
    sdk("StopCdnDomain", DomainName=name)
    _answered_within_a_second(server, name, setup.talk, 403)
    # Once stopped everywhere, an object never asked for (a new query) is not fetched.
    assert all(http_request(server.port, name, path).status == 403 for _ in range(16))
    assert [r for r in setup.origin.requests(setup.talk) if r["query"] == path.split("?")[1]] == []
    sdk("StartCdnDomain", DomainName=name)
    _answered_within_a_second(server, name, setup.talk, 200)


def test_refresh_and_push_change_the_cache(setup: Setup, sdk: Sdk) -> None:
    """A refresh drops the object (the next request is a MISS that asks the origin); a
    push fills it (the next request is a HIT without a client having asked)."""
    server = setup.server
    name = f"cache-{sdk.name}.example.com"  # type: ignore[attr-defined]
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    wait_until(lambda: _answers(server, name, setup.talk, 1)[0][0] == 200, 5, "the domain")
    server.prime(name, setup.talk)
    fetched = len(setup.origin.requests(setup.talk))
    task = sdk("RefreshObjectCaches", ObjectPath=f"http://{name}{setup.talk}")["RefreshTaskId"]
    _task_done(sdk, task)
    assert server.get(name, setup.talk, method="HEAD").header("X-Cache") == "MISS"
    server.prime(name, setup.talk)
    assert len(setup.origin.requests(setup.talk)) == fetched + 1
    # A forced directory refresh, then a push: the object is back before any client asks.
    task = sdk("RefreshObjectCaches", ObjectPath=f"{name}/v/", ObjectType="Directory", Force=True)[
        "RefreshTaskId"
    ]
    _task_done(sdk, task)
    push = sdk("PushObjectCache", ObjectPath=f"{name}{setup.talk}")["PushTaskId"]
    _task_done(sdk, push, 15)
    assert len(setup.origin.requests(setup.talk)) == fetched + 2
    assert server.get(name, setup.talk, method="HEAD").header("X-Cache") == "HIT"
    # Without Force, a directory or a regular expression marks objects stale: the next
    # request revalidates with the origin (unchanged: 304) instead of fetching again.
    for object_path, kind in ((f"{name}/v/", "Directory"), (f"{name}/v/.*\\.mp4", "Regex")):
        task = sdk("RefreshObjectCaches", ObjectPath=object_path, ObjectType=kind)["RefreshTaskId"]
        _task_done(sdk, task)
        assert server.get(name, setup.talk, method="HEAD").header("X-Cache") == "REVALIDATED"
        assert server.get(name, setup.talk, method="HEAD").header("X-Cache") == "HIT"
    # With Force, a regular expression drops what it matches.
    task = sdk(
        "RefreshObjectCaches", ObjectPath=f"{name}/v/.*\\.mp4", ObjectType="Regex", Force=True
    )["RefreshTaskId"]
    _task_done(sdk, task)
    assert server.get(name, setup.talk, method="HEAD").header("X-Cache") == "MISS"


@pytest.mark.parametrize("kind", ["Directory", "Regex"])
@pytest.mark.parametrize("changed", [True, False], ids=["changed", "unchanged"])
def test_a_refresh_during_a_fill_is_not_undone_by_it(
    setup: Setup, changed: bool, kind: str
) -> None:
    """A directory or a regular expression refreshed without Force while an object of it
    streams in (its row not there yet): the fill must not publish it fresh. The next
    request fetches the new version, or revalidates an unchanged one."""
    sdk = NewSdk(setup.node)
    server, origin = setup.server, setup.origin
    name = f"refresh-race-{kind.lower()}-{'changed' if changed else 'same'}.example.com"
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    wait_until(
        lambda: all(status == 200 for status, _ in _answers(server, name, setup.talk)),
        5,
        "the domain on every worker",
    )
    media = MediaDir(origin.root)
    path = media.write(f"race-{'changed' if changed else 'same'}/x.bin", os.urandom(300_000))
    old = media.file(path).read_bytes()
    origin.behave(path, chunk=32 << 10, drip_after=0, interval=0.05)
    client = RawClient(server.port, name, path)
    client.read_head()
    new = os.urandom(300_000) if changed else old
    if changed:
        media.write(path.lstrip("/"), new)
    directory = path.rsplit("/", 1)[0] + "/"
    target = directory if kind == "Directory" else directory + ".*\\.bin"
    task = sdk("RefreshObjectCaches", ObjectPath=f"{name}{target}", ObjectType=kind)
    _task_done(sdk, task["RefreshTaskId"])
    body, _ = client.read_to_end()
    client.close()
    assert body == old
    origin.wait_filled(path)
    time.sleep(0.2)
    reply = server.get(name, path)
    cache = reply.header("X-Cache")
    assert reply.body == new, f"X-Cache {cache}: the refreshed version came back"
    assert cache == ("MISS" if changed else "REVALIDATED") or (changed and cache == "EXPIRED")


def test_push_of_a_missing_object_fails_with_a_reason(setup: Setup, sdk: Sdk) -> None:
    name = f"push-{sdk.name}.example.com"  # type: ignore[attr-defined]
    sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    push = sdk("PushObjectCache", ObjectPath=f"{name}/v/none.mp4")["PushTaskId"]
    deadline = time.monotonic() + 10
    while True:
        [task] = sdk("DescribeRefreshTasks", TaskId=push)["Tasks"]["CDNTask"]
        if task["Status"] != "Refreshing" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (task["Status"], task["Description"]) == ("Failed", "the node answered 404")


def test_concurrent_calls_lose_no_update(setup: Setup) -> None:
    """Four clients of both SDKs add rules to one domain at once: every rule is there,
    each with its own ConfigId."""
    import threading

    name = "concurrent.example.com"
    first = NewSdk(setup.node)
    first("AddCdnDomain", DomainName=name, CdnType="video", Sources=setup.sources())
    failures: list[BaseException] = []

    def writer(which: int) -> None:
        sdk = NewSdk(setup.node) if which % 2 else OldSdk(setup.node)
        try:
            for n in range(10):
                rule = [{"functionName": "path_based_ttl_set", "functionArgs": [
                    {"argName": "ttl", "argValue": "60"},
                    {"argName": "path", "argValue": f"/w{which}/{n}"}]}]  # fmt: skip
                sdk("BatchSetCdnDomainConfig", DomainNames=name, Functions=json.dumps(rule))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    configs = first("DescribeCdnDomainConfigs", DomainName=name)["DomainConfigs"]["DomainConfig"]
    paths = sorted(c["FunctionArgs"]["FunctionArg"][1]["ArgValue"] for c in configs)
    assert paths == sorted(f"/w{w}/{n}" for w in range(4) for n in range(10))
    assert len({c["ConfigId"] for c in configs}) == 40


# --- durability -----------------------------------------------------------------------------


def test_acknowledged_writes_survive_kill_9_of_the_whole_node(tmp_path: Path) -> None:
    """A burst of AddCdnDomain calls; the master and its workers are SIGKILLed mid-burst;
    after a restart every call that was answered is there."""
    import os
    import signal
    import threading

    server = start_node(tmp_path / "node", workers=2)
    node = ApiNode(server)
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(which: int) -> None:
        sdk = NewSdk(node)
        n = 0
        while not stop.is_set() and n < 400:
            name = f"burst-{which}-{n}.example.com"
            try:
                sdk("AddCdnDomain", DomainName=name, CdnType="web",
                    Sources='[{"content": "127.0.0.1", "type": "ipaddr", "port": 9}]')  # fmt: skip
            except Exception:
                return  # the node is gone: this call was not acknowledged
            acknowledged.append(name)
            n += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 40, 30, "some writes to be acknowledged")
    victims = [server.pid, *server.worker_pids()]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert server.proc is not None
    server.proc.wait(10)
    count = len(acknowledged)
    assert count >= 40
    server.start()
    try:
        sdk = NewSdk(node)
        listed = sdk("DescribeUserDomains", DomainName="burst-", DomainSearchType="pre_match",
                     PageSize=500)  # fmt: skip
        stored = {d["DomainName"] for d in listed["Domains"]["PageData"]}
        assert listed["TotalCount"] <= 500
        assert set(acknowledged) <= stored, set(acknowledged) - stored
    finally:
        server.stop()


def test_the_file_seeds_the_store_then_the_api_owns_the_domain(tmp_path: Path) -> None:
    """A TOML domain is served from the store; stopped through the API it stays stopped
    across SIGHUP and restart while its table is unchanged; an edit of the table wins."""
    from api_node import node_toml

    work = tmp_path / "node"
    origin = work / "origin"
    origin.mkdir(parents=True)
    (origin / "hello.txt").write_text("hello\n")
    server = start_node(work)
    try:
        sdk = NewSdk(ApiNode(server))
        host = "preloaded.example.com"
        assert server.get(host, "/hello.txt").status == 200
        sdk("StopCdnDomain", DomainName=host)
        _answered_within_a_second(server, host, "/hello.txt", 403)
        # The domain's table unchanged (the API's stop stands); a domain added beside it
        # tells when the worker has read the file again.
        marker = f'\n[[domain]]\nname = "reloaded.example.com"\norigins = ["{origin}"]\n'
        server.reload(server.config_file.read_text() + marker)
        wait_until(
            lambda: all(
                s == 200 for s, _ in _answers(server, "reloaded.example.com", "/hello.txt")
            ),
            30,
            "the file read again",
        )
        assert all(s == 403 for s, _ in _answers(server, host, "/hello.txt"))
        server.stop()
        server.start()
        assert all(s == 403 for s, _ in _answers(server, host, "/hello.txt"))
        edited = node_toml(origin) + 'fallback = "passthrough"\n'  # the domain's table changed
        server.reload(edited)
        wait_until(
            lambda: all(s == 200 for s, _ in _answers(server, host, "/hello.txt")),
            30,
            "the edited table to win",
        )
        sdk = NewSdk(ApiNode(server))  # the restart chose new ports
        detail = sdk("DescribeCdnDomainDetail", DomainName=host)["GetDomainDetailModel"]
        assert detail["DomainStatus"] == "online"
    finally:
        server.stop()


class StoreOnlyNode(Vodedge):
    """`vodedge serve` with neither --config nor --origin: every domain from the store."""

    def command(self) -> list[str]:
        command = super().command()
        at = command.index("--config")
        return command[:at] + command[at + 2 :]


def test_a_node_without_config_or_origin_serves_what_the_api_adds(
    setup: Setup, tmp_path: Path
) -> None:
    """Empty at first; a domain added through the API is served, and still is after a
    restart; the store is a private file in `state` beside the cache directory."""
    from api_node import ENV

    env = {"VODEDGE_ACCESS_KEY_ID": ENV.id, "VODEDGE_ACCESS_KEY_SECRET": ENV.secret}
    server = StoreOnlyNode(tmp_path / "node", "", env=env, workers=2)
    server.start()
    try:
        assert "from the store in" in server.log_text()
        sdk = NewSdk(ApiNode(server), ENV)
        assert sdk("DescribeUserDomains")["TotalCount"] == 0
        assert server.get("fresh.example.com", setup.talk, method="HEAD").status == 403
        sdk("AddCdnDomain", DomainName="fresh.example.com", CdnType="video",
            Sources=setup.sources())  # fmt: skip
        _answered_within_a_second(server, "fresh.example.com", setup.talk, 200)
        state = server.cache_dir.parent / "state" / "control.sqlite"
        assert state.stat().st_mode & 0o777 == 0o600
        server.stop()
        server.start()
        assert all(s == 200 for s, _ in _answers(server, "fresh.example.com", setup.talk))
    finally:
        server.stop()
