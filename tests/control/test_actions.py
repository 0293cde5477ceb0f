"""The actions called directly (no HTTP, no signature): documented fields, errors,
all-or-nothing writes. The same actions through both SDKs: test_actions_sdk.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vodedge.config import ConfigError, Function, FunctionArg, check_function
from vodedge.config.functions import VOCABULARY
from vodedge.control.actions import REGISTRY, make_dispatch
from vodedge.control.calls import Call, Caller, JsonObject
from vodedge.control.errors import ApiError
from vodedge.control.sqlite_store import SqliteStore
from vodedge.control.store import TaskQuery

Api = Callable[..., JsonObject]
SOURCES = json.dumps([{"content": "127.0.0.1", "type": "ipaddr", "port": 8000}])
DOMAIN = "video.example.com"


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state")


@pytest.fixture
def api(store: SqliteStore) -> Api:
    """`api(Action, **params)`: the action's answer, or its ApiError raised."""
    dispatch = make_dispatch(store)

    def call(action: str, *, read_only: bool = False, **params: str) -> JsonObject:
        caller = Caller("test-key", read_only)
        return asyncio.run(dispatch(Call(action, params, caller, "request-1")))

    return call


def error(api: Api, action: str, **params: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        api(action, **params)
    assert "\n" not in caught.value.message
    return caught.value


def functions(*items: Function) -> str:
    return json.dumps([f.to_api() for f in items])


def add(api: Api, name: str = DOMAIN, **params: str) -> None:
    api("AddCdnDomain", DomainName=name, CdnType="video", Sources=SOURCES, **params)


# --- domains --------------------------------------------------------------------------------


def test_add_describe_modify_start_stop_delete(api: Api) -> None:
    """A domain's life through the actions, each answer in the documented shape."""
    assert api("AddCdnDomain", DomainName=DOMAIN, CdnType="video", Sources=SOURCES) == {}
    detail = api("DescribeCdnDomainDetail", DomainName=DOMAIN)["GetDomainDetailModel"]
    assert isinstance(detail, dict)
    assert (detail["DomainName"], detail["CdnType"], detail["DomainStatus"]) == (
        DOMAIN,
        "video",
        "online",
    )
    assert detail["SourceModels"] == {
        "SourceModel": [
            {
                "Content": "127.0.0.1",
                "Type": "ipaddr",
                "Port": 8000,
                "Priority": "20",
                "Weight": "10",
                "Enabled": "online",
            }
        ]
    }
    assert detail["GmtCreated"].endswith("Z") and detail["ServerCertificateStatus"] == "off"
    new = json.dumps(
        [
            {"content": "origin.example.net", "type": "domain", "port": 443, "priority": "30"},
            {"content": "bucket.oss-cn-hangzhou.aliyuncs.com", "type": "oss", "weight": "5"},
        ]
    )
    assert api("ModifyCdnDomain", DomainName=DOMAIN, Sources=new) == {}
    listed = api("DescribeUserDomains")
    page = listed["Domains"]["PageData"]  # type: ignore[index]
    assert listed["TotalCount"] == 1 and page[0]["Sources"]["Source"] == [
        {
            "Type": "domain",
            "Content": "origin.example.net",
            "Port": 443,
            "Priority": "30",
            "Weight": "10",
        },
        {
            "Type": "oss",
            "Content": "bucket.oss-cn-hangzhou.aliyuncs.com",
            "Port": 80,
            "Priority": "20",
            "Weight": "5",
        },
    ]
    assert api("StopCdnDomain", DomainName=DOMAIN) == {}
    assert (
        api("DescribeCdnDomainDetail", DomainName=DOMAIN)["GetDomainDetailModel"][  # type: ignore[index]
            "DomainStatus"
        ]
        == "offline"
    )
    assert api("StartCdnDomain", DomainName=DOMAIN) == {}
    assert api("DeleteCdnDomain", DomainName=DOMAIN) == {}
    assert error(api, "DescribeCdnDomainDetail", DomainName=DOMAIN).code == "InvalidDomain.NotFound"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"CdnType": "video", "Sources": SOURCES}, "MissingParameter"),
        (
            {"DomainName": "bad_name!.com", "CdnType": "video", "Sources": SOURCES},
            "InvalidDomainName.Malformed",
        ),
        ({"DomainName": DOMAIN, "CdnType": "live", "Sources": SOURCES}, "InvalidCdnType.Malformed"),
        ({"DomainName": DOMAIN, "CdnType": "video"}, "MissingParameter"),
        ({"DomainName": DOMAIN, "CdnType": "video", "Sources": "[{"}, "InvalidSources.Malformed"),
        ({"DomainName": DOMAIN, "CdnType": "video", "Sources": "[]"}, "InvalidSources.Malformed"),
        (
            {
                "DomainName": DOMAIN,
                "CdnType": "video",
                "Sources": '[{"content": "1.2.3.4", "type": "ftp"}]',
            },
            "InvalidSourceType.Malformed",
        ),
        (
            {
                "DomainName": DOMAIN,
                "CdnType": "video",
                "Sources": '[{"content": "not an ip", "type": "ipaddr"}]',
            },
            "InvalidSources.Malformed",
        ),
        (
            {
                "DomainName": DOMAIN,
                "CdnType": "video",
                "Sources": '[{"content": "1.2.3.4", "type": "ipaddr", "port": 70000}]',
            },
            "InvalidSources.Malformed",
        ),
        (
            {"DomainName": DOMAIN, "CdnType": "video", "Sources": SOURCES, "Scope": "moon"},
            "InvalidScope.Malformed",
        ),
    ],
)
def test_add_refuses_bad_parameters_and_stores_nothing(
    api: Api, store: SqliteStore, params: dict[str, str], code: str
) -> None:
    """Each bad AddCdnDomain parameter gets its documented code, and no domain appears."""
    assert error(api, "AddCdnDomain", **params).code == code
    assert store.domains() == [] and store.version() == 0


def test_add_twice_is_refused(api: Api) -> None:
    """A name is taken whatever its spelling (case, `.wild` or `*.wild` for a wildcard)."""
    add(api, ".wild.example.com")
    failure = error(
        api, "AddCdnDomain", DomainName="*.WILD.example.com", CdnType="web", Sources=SOURCES
    )
    assert failure.code == "DomainAlreadyExist"
    add(api)
    assert (
        error(api, "AddCdnDomain", DomainName=DOMAIN.upper(), CdnType="web", Sources=SOURCES).code
        == "DomainAlreadyExist"
    )


def test_unknown_domains_are_404(api: Api) -> None:
    for action in (
        "DeleteCdnDomain",
        "StartCdnDomain",
        "StopCdnDomain",
        "DescribeCdnDomainDetail",
        "DescribeCdnDomainConfigs",
    ):
        failure = error(api, action, DomainName="nowhere.example.com")
        assert (failure.status, failure.code) == (404, "InvalidDomain.NotFound"), action


def test_describe_user_domains_filters_and_pages(api: Api) -> None:
    """Paging and the documented filters; wildcard domains in the API's `.example.com` form."""
    for name in ("a.example.com", "b.example.com", "c.example.org", ".wild.example.com"):
        add(api, name)
    api("StopCdnDomain", DomainName="b.example.com")

    def names(**params: str) -> list[str]:
        data = api("DescribeUserDomains", **params)["Domains"]["PageData"]  # type: ignore[index]
        return [d["DomainName"] for d in data]

    assert names() == [".wild.example.com", "a.example.com", "b.example.com", "c.example.org"]
    assert names(PageSize="2", PageNumber="2") == ["b.example.com", "c.example.org"]
    assert api("DescribeUserDomains", PageSize="2")["TotalCount"] == 4
    assert names(DomainName="a.example.com") == ["a.example.com"]
    assert names(DomainName="example", DomainSearchType="fuzzy_match") != []
    assert names(DomainName="b.", DomainSearchType="pre_match") == ["b.example.com"]
    assert names(DomainName=".org", DomainSearchType="suf_match") == ["c.example.org"]
    assert names(DomainStatus="offline") == ["b.example.com"]
    assert names(CdnType="web") == []
    assert names(Source="127.0.0.1") == names()
    assert names(ChangeStartTime="2000-01-01T00:00:00Z") == names()
    assert names(ChangeEndTime="2000-01-01T00:00:00Z") == []
    assert error(api, "DescribeUserDomains", PageSize="501").code == "InvalidPageSize.Malformed"
    assert error(api, "DescribeUserDomains", PageNumber="0").code == "InvalidPageNumber.Malformed"
    assert error(api, "DescribeUserDomains", DomainSearchType="x").code.startswith("Invalid")


# --- functions ------------------------------------------------------------------------------


def test_batch_set_gives_config_ids_and_updates_by_them(api: Api) -> None:
    """Many domains x many functions; a ConfigId updates that rule; singletons replace."""
    add(api, "a.example.com")
    add(api, "b.example.com")
    split = Function.of("ali_video_split", enable="on")
    ttl = Function.of("path_based_ttl_set", ttl="60", path="/v")
    answer = api(
        "BatchSetCdnDomainConfig",
        DomainNames="a.example.com,b.example.com",
        Functions=functions(split, ttl),
    )
    models = answer["DomainConfigList"]["DomainConfigModel"]  # type: ignore[index]
    assert [(m["DomainName"], m["FunctionName"]) for m in models] == [
        ("a.example.com", "ali_video_split"),
        ("a.example.com", "path_based_ttl_set"),
        ("b.example.com", "ali_video_split"),
        ("b.example.com", "path_based_ttl_set"),
    ]
    ids = [m["ConfigId"] for m in models]
    assert len(set(ids)) == 4 and all(isinstance(i, int) for i in ids)
    # Off again: the singleton keeps its ConfigId; a repeatable rule by ConfigId is updated.
    off = Function.of("ali_video_split", enable="off")
    longer = Function(ttl.name, (FunctionArg("ttl", "120"), FunctionArg("path", "/v")), ids[1])
    again = api(
        "BatchSetCdnDomainConfig", DomainNames="a.example.com", Functions=functions(off, longer)
    )["DomainConfigList"]["DomainConfigModel"]  # type: ignore[index]
    assert [m["ConfigId"] for m in again] == ids[:2]
    configs = api("DescribeCdnDomainConfigs", DomainName="a.example.com")
    listed = configs["DomainConfigs"]["DomainConfig"]  # type: ignore[index]
    assert [(c["FunctionName"], c["ConfigId"], c["Status"]) for c in listed] == [
        ("ali_video_split", str(ids[0]), "success"),
        ("path_based_ttl_set", str(ids[1]), "success"),
    ]
    assert listed[0]["FunctionArgs"] == {"FunctionArg": [{"ArgName": "enable", "ArgValue": "off"}]}
    assert listed[1]["FunctionArgs"]["FunctionArg"][0] == {"ArgName": "ttl", "ArgValue": "120"}
    # A second ttl rule without ConfigId is a new rule.
    api(
        "BatchSetCdnDomainConfig",
        DomainNames="a.example.com",
        Functions=functions(Function.of("path_based_ttl_set", ttl="5", path="/w")),
    )
    by_name = api(
        "DescribeCdnDomainConfigs", DomainName="a.example.com", FunctionNames="path_based_ttl_set"
    )["DomainConfigs"]["DomainConfig"]  # type: ignore[index]
    assert len(by_name) == 2
    one = api("DescribeCdnDomainConfigs", DomainName="a.example.com", ConfigId=str(ids[1]))
    assert [c["ConfigId"] for c in one["DomainConfigs"]["DomainConfig"]] == [str(ids[1])]  # type: ignore[index]
    assert api("DeleteSpecificConfig", DomainName="a.example.com", ConfigId=str(ids[1])) == {}
    left = api("DescribeCdnDomainConfigs", DomainName="a.example.com")
    assert str(ids[1]) not in [c["ConfigId"] for c in left["DomainConfigs"]["DomainConfig"]]  # type: ignore[index]
    failure = error(api, "DeleteSpecificConfig", DomainName="a.example.com", ConfigId=str(ids[1]))
    assert failure.code == "InvalidConfigId.NotFound"
    # b's rules are b's: its ConfigIds do not belong to a.
    failure = error(api, "DeleteSpecificConfig", DomainName="a.example.com", ConfigId=str(ids[3]))
    assert failure.code == "InvalidConfigId.NotFound"


def test_batch_set_is_all_or_nothing(api: Api, store: SqliteStore) -> None:
    """One bad function, or one unknown domain, and no domain changes."""
    add(api, "a.example.com")
    add(api, "b.example.com")
    version = store.version()
    good = Function.of("ali_video_split", enable="on")
    bad = Function.of("video_seek", enable="on", mp4_seek_start="s", mp4_seek_end="s")
    failure = error(
        api,
        "BatchSetCdnDomainConfig",
        DomainNames="a.example.com,b.example.com",
        Functions=functions(good, bad),
    )
    assert failure.code == "InvalidArgValue.Malformed"
    failure = error(
        api,
        "BatchSetCdnDomainConfig",
        DomainNames="a.example.com,nowhere.example.com",
        Functions=functions(good),
    )
    assert failure.code == "InvalidDomain.NotFound"
    unknown = Function.of("make_coffee", enable="on")
    failure = error(
        api,
        "BatchSetCdnDomainConfig",
        DomainNames="a.example.com",
        Functions=functions(good, unknown),
    )
    assert failure.code == "InvalidFunctionName.ValueNotSupported"
    extra = Function.of("ali_video_split", enable="on", colour="blue")
    failure = error(
        api, "BatchSetCdnDomainConfig", DomainNames="a.example.com", Functions=functions(extra)
    )
    assert failure.code == "InvalidArgName.ValueNotSupported"
    failure = error(api, "BatchSetCdnDomainConfig", DomainNames="a.example.com", Functions="[{]")
    assert failure.code == "InvalidFunctions.Malformed"
    twice = functions(Function.of("range", enable="on"), Function.of("range", enable="off"))
    failure = error(api, "BatchSetCdnDomainConfig", DomainNames="a.example.com", Functions=twice)
    assert failure.code == "ConfigDuplicate"
    assert store.version() == version
    assert all(d.functions == () for d in store.domains())


# Values no argument parser of the vocabulary takes (each is tried until one is refused).
BAD_VALUES = ("\x00", "not a value!", "-1", "999999999999999", "on,off", "/", "a" * 2000)
# Values some argument takes: each needed argument gets the first its parser accepts.
GOOD_VALUES = (
    "on", "60", "mp4", "/v", "origin.example.com", "10.0.0.0/8", "1m", "token", "type_a",
    "http://example.com/", "a-secret-key-0123456789", "off", "no_auth",
)  # fmt: skip


def _valid_args(function: str, arg: str, value: str) -> dict[str, str]:
    """`arg` = `value`, and every other argument the function needs with a value it takes."""
    spec = VOCABULARY[function]
    chosen = {name: GOOD_VALUES[0] for name, a in spec.args.items() if a.required and name != arg}
    for _ in range(len(spec.args) * len(GOOD_VALUES)):
        try:
            check_function(Function.of(function, **chosen, **{arg: value}))
            break
        except ConfigError as failure:
            blamed = failure.arg
            if blamed is None or blamed == arg:
                break  # the value of `arg` itself, or the function as a whole
            at = GOOD_VALUES.index(chosen[blamed]) + 1 if blamed in chosen else 0
            assert at < len(GOOD_VALUES), f"no value of {function}.{blamed} is taken"
            chosen[blamed] = GOOD_VALUES[at]
    return {**chosen, arg: value}


def _bad_value(function: str, arg: str) -> str:
    """A value of `arg` that the vocabulary refuses, blaming `arg`."""
    for value in BAD_VALUES:
        try:
            check_function(Function.of(function, **_valid_args(function, arg, value)))
        except ConfigError as failure:
            if failure.arg == arg:
                return value
    raise AssertionError(f"no bad value found for {function}.{arg}")


ARGS = [(function, arg) for function, spec in VOCABULARY.items() for arg in spec.args]


def bad_function(function: str, arg: str) -> Function:
    """`function` with valid arguments but `arg` given a value it does not take."""
    return Function.of(function, **_valid_args(function, arg, _bad_value(function, arg)))


@pytest.mark.parametrize(("function", "arg"), ARGS, ids=[f"{f}.{a}" for f, a in ARGS])
def test_every_argument_with_a_bad_value_is_refused(
    api: Api, store: SqliteStore, function: str, arg: str
) -> None:
    """Every argument of the vocabulary, given a value it does not take: the documented
    error names it, and nothing is stored."""
    add(api)
    version = store.version()
    failure = error(
        api,
        "BatchSetCdnDomainConfig",
        DomainNames=DOMAIN,
        Functions=functions(bad_function(function, arg)),
    )
    assert (failure.status, failure.code) == (400, "InvalidArgValue.Malformed")
    assert arg in failure.message
    assert store.version() == version and store.domain(DOMAIN).functions == ()  # type: ignore[union-attr]


def test_describe_configs_refuses_unknown_function_names(api: Api) -> None:
    add(api)
    failure = error(api, "DescribeCdnDomainConfigs", DomainName=DOMAIN, FunctionNames="nope")
    assert failure.code == "InvalidFunctionName.ValueNotSupported"
    failure = error(api, "DescribeCdnDomainConfigs", DomainName=DOMAIN, ConfigId="x1")
    assert failure.code == "InvalidConfigId.Malformed"


# --- tasks ----------------------------------------------------------------------------------


def test_refresh_push_describe_and_quota(api: Api, store: SqliteStore) -> None:
    """Tasks get ids, are described per object with documented fields, and count against
    the day's quota."""
    add(api)
    refresh = api("RefreshObjectCaches", ObjectPath=f"{DOMAIN}/a.mp4\r\nhttp://{DOMAIN}/b.mp4")
    task_id = refresh["RefreshTaskId"]
    assert isinstance(task_id, str) and task_id.isdigit()
    directory = api(
        "RefreshObjectCaches", ObjectPath=f"{DOMAIN}/dir/", ObjectType="Directory", Force="true"
    )["RefreshTaskId"]
    regex = api("RefreshObjectCaches", ObjectPath=f"{DOMAIN}/.*\\.flv", ObjectType="Regex")
    push = api("PushObjectCache", ObjectPath=f"{DOMAIN}/a.mp4")["PushTaskId"]
    described = api("DescribeRefreshTasks", TaskId=task_id)
    assert described["TotalCount"] == 2 and described["PageSize"] == 20
    tasks = described["Tasks"]["CDNTask"]  # type: ignore[index]
    assert {t["ObjectPath"] for t in tasks} == {f"{DOMAIN}/a.mp4", f"http://{DOMAIN}/b.mp4"}
    assert all(
        t["TaskId"] == task_id
        and t["Status"] == "Refreshing"
        and t["ObjectType"] == "file"
        and t["CreationTime"].endswith("Z")
        and t["Process"] == "0%"
        for t in tasks
    )
    kinds = {
        t["TaskId"]: t["ObjectType"]
        for t in api("DescribeRefreshTasks")["Tasks"]["CDNTask"]  # type: ignore[index]
    }
    assert kinds[directory] == "directory" and kinds[push] == "preload"
    assert kinds[regex["RefreshTaskId"]] == "regex"  # type: ignore[index]
    preloads = api("DescribeRefreshTasks", ObjectType="preload", DomainName=DOMAIN)
    assert preloads["TotalCount"] == 1
    assert api("DescribeRefreshTasks", ObjectPath=f"{DOMAIN}/dir/")["TotalCount"] == 1
    assert error(api, "DescribeRefreshTasks", Status="Complete").code == "MissingParameter"
    quota = api("DescribeRefreshQuota")
    assert (quota["UrlQuota"], quota["UrlRemain"]) == ("10000", "9998")
    assert (quota["DirRemain"], quota["RegexRemain"], quota["PreloadRemain"]) == ("99", "19", "999")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"ObjectPath": ""}, "MissingParameter"),
        ({"ObjectPath": f"{DOMAIN}/a", "ObjectType": "Everything"}, "InvalidObjectType.Malformed"),
        ({"ObjectPath": "nowhere.example.com/a"}, "InvalidDomain.NotFound"),
        ({"ObjectPath": f"{DOMAIN}"}, "InvalidObjectPath.Malformed"),
        ({"ObjectPath": f"{DOMAIN}/a b"}, "InvalidObjectPath.Malformed"),
        ({"ObjectPath": f"{DOMAIN}/(", "ObjectType": "Regex"}, "InvalidObjectPath.Malformed"),
        (
            {"ObjectPath": "\n".join(f"{DOMAIN}/{i}" for i in range(1001))},
            "SingleRequest.OverLimit",
        ),
        ({"ObjectPath": f"{DOMAIN}/a", "Force": "maybe"}, "InvalidForce.Malformed"),
    ],
)
def test_refresh_refuses_bad_parameters(
    api: Api, store: SqliteStore, params: dict[str, str], code: str
) -> None:
    add(api)
    assert error(api, "RefreshObjectCaches", **params).code == code
    assert store.tasks(TaskQuery())[0] == 0


def test_read_only_keys_only_describe_and_unknown_actions_are_404(api: Api) -> None:
    """A read-only key may call every Describe* action and no other; an unknown action is
    InvalidApi.NotFound."""
    for name, spec in REGISTRY.items():
        assert spec.writes == (not name.startswith("Describe")), name
    failure = error(
        api, "AddCdnDomain", read_only=True, DomainName=DOMAIN, CdnType="video", Sources=SOURCES
    )
    assert (failure.status, failure.code) == (403, "Forbidden.RAM")
    assert api("DescribeUserDomains", read_only=True)["TotalCount"] == 0
    failure = error(api, "MakeCoffee")
    assert (failure.status, failure.code) == (404, "InvalidApi.NotFound")
