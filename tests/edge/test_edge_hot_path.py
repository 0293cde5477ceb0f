"""The HIT's shortcuts (issue 15): the resolve memo, and small objects answered whole.

The memo is driven with aiohttp's own request objects and configurations loaded from
TOML; small objects through a real server in front of nginx.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from edge_config import Origins, domain, function
from edge_harness import Vodedge, wait_until
from multidict import CIMultiDict

from vodedge.config import NodeConfig
from vodedge.config.loader import load_toml
from vodedge.edge import cache_store
from vodedge.edge.cache_index import Entry, ObjectMeta
from vodedge.edge.cache_store import SMALL_OBJECT, Store
from vodedge.edge.refusal import Refusal
from vodedge.edge.resolve import ResolveMemo, resolve

pytestmark = pytest.mark.xdist_group("edge_hot_path")

ORIGIN = "http://127.0.0.1:9"  # never contacted: resolving asks no origin


def _config(tmp_path: Path, *tables: str) -> NodeConfig:
    """A configuration of these [[domain]] tables, loaded as `vodedge serve` loads it."""
    path = tmp_path / f"config-{time.monotonic_ns()}.toml"
    path.write_text("".join(tables))
    return load_toml(path)


def _request(target: str, host: str = "a.test", **headers: str) -> web.Request:
    pairs = CIMultiDict([("Host", host)])
    for name, value in headers.items():
        pairs.add(name.replace("_", "-"), value)
    return make_mocked_request("GET", target, headers=pairs)


def _refusal(memo: ResolveMemo, request: web.Request, config: NodeConfig) -> Refusal:
    with pytest.raises(Refusal) as caught:
        memo.resolve(request, config)
    return caught.value


def test_the_memo_answers_as_resolve_and_remembers(tmp_path: Path) -> None:
    """A second request for the same target gets the same answer, without resolving it
    again; another Host, path or query is another answer."""
    config = _config(tmp_path, domain("a.test", ORIGIN), domain("b.test", ORIGIN))
    memo = ResolveMemo()
    first = memo.resolve(_request("/x.bin?v=1"), config)
    assert first == resolve(_request("/x.bin?v=1"), config)
    assert memo.resolve(_request("/x.bin?v=1"), config) is first
    other_host = memo.resolve(_request("/x.bin?v=1", host="b.test"), config)
    assert other_host.domain.name == "b.test" and other_host.key != first.key
    other_query = memo.resolve(_request("/x.bin?v=2"), config)
    assert other_query.key != first.key
    spelled = memo.resolve(_request("/%78.bin?v=1", host="A.TEST."), config)
    assert spelled.key == first.key and spelled is not first


def test_a_new_configuration_is_resolved_anew(tmp_path: Path) -> None:
    """What was remembered under one configuration is not used under the next."""
    before = _config(tmp_path, domain("a.test", ORIGIN))
    after = _config(tmp_path, domain("b.test", ORIGIN))
    memo = ResolveMemo()
    assert memo.resolve(_request("/x.bin"), before).domain.name == "a.test"
    assert _refusal(memo, _request("/x.bin"), after).code == "unknown_host"
    denied = _config(
        tmp_path,
        domain("a.test", ORIGIN, function("referer_white_list_set", refer_domain_allow_list="ok")),
    )
    assert _refusal(memo, _request("/x.bin"), denied).code == "referer_denied"


def test_per_request_checks_run_on_a_remembered_target(tmp_path: Path) -> None:
    """The Referer, the client's address and repeated headers are checked every time."""
    config = _config(
        tmp_path,
        domain("a.test", ORIGIN, function("referer_white_list_set", refer_domain_allow_list="ok")),
        domain("b.test", ORIGIN, function("ip_allow_list_set", ip_list="10.0.0.0/8")),
        domain("c.test", ORIGIN),
    )
    memo = ResolveMemo()
    good = memo.resolve(_request("/x.bin", Referer="http://ok/"), config)
    assert memo.resolve(_request("/x.bin", Referer="http://ok/"), config) is good
    assert _refusal(memo, _request("/x.bin", Referer="http://evil/"), config).code == (
        "referer_denied"
    )
    forwarded = _request("/x.bin", host="b.test", X_Forwarded_For="10.1.2.3")
    assert memo.resolve(forwarded, config).domain.name == "b.test"
    outside = _request("/x.bin", host="b.test", X_Forwarded_For="192.0.2.1")
    assert _refusal(memo, outside, config).code == "ip_denied"
    memo.resolve(_request("/x.bin", host="c.test"), config)
    twice = CIMultiDict([("Host", "c.test"), ("Range", "bytes=0-1"), ("Range", "bytes=2-3")])
    repeated = make_mocked_request("GET", "/x.bin", headers=twice)
    assert _refusal(memo, repeated, config).code == "repeated_header"


def test_signed_urls_are_never_remembered(tmp_path: Path) -> None:
    """A URL signature expires: each request is verified again."""
    key = "aliyuncdnexp1234"
    auth = function("aliauth", auth_type="type_a", auth_key1=key, ali_auth_delta="60")
    config = _config(tmp_path, domain("a.test", ORIGIN, auth))
    memo = ResolveMemo()
    assert _refusal(memo, _request("/x.bin"), config).code == "auth_missing"
    assert _refusal(memo, _request("/x.bin"), config).code == "auth_missing"
    assert not memo._found


def test_the_memo_is_bounded(tmp_path: Path) -> None:
    """Many targets (a client walking URLs) never hold more than `size` answers."""
    config = _config(tmp_path, domain("a.test", ORIGIN))
    memo = ResolveMemo(size=8, longest=64)
    for n in range(50):
        memo.resolve(_request(f"/x{n}.bin"), config)
        assert len(memo._found) <= 8
    memo.resolve(_request("/" + "y" * 100), config)
    assert all(len(target) <= 64 for _host, target, _secure in memo._found)


# --- small objects through a server ----------------------------------------------------


def test_a_small_hit_keeps_the_http_contract(edge: Vodedge, origins: Origins) -> None:
    """A small object (answered whole, in one write) gets what a large one gets: HEAD,
    Range, suffix and unsatisfiable ranges, If-None-Match, If-Range; its bytes counted."""
    data = os.urandom(3000)
    path = origins.media.write("hot/small.bin", data)
    edge.prime("video.test", path)
    whole = edge.get("video.test", path)
    assert whole.status == 200 and whole.body == data and whole.header("X-Cache") == "HIT"
    assert whole.header("Content-Length") == "3000"
    etag = whole.header("ETag")
    assert etag and (whole.header("Server") or "").startswith("vodedge/")
    head = edge.get("video.test", path, method="HEAD")
    assert head.status == 200 and head.body == b"" and head.header("Content-Length") == "3000"
    part = edge.get("video.test", path, {"Range": "bytes=10-19"})
    assert part.status == 206 and part.body == data[10:20]
    assert part.header("Content-Range") == "bytes 10-19/3000"
    tail = edge.get("video.test", path, {"Range": "bytes=-5"})
    assert tail.status == 206 and tail.body == data[-5:]
    outside = edge.get("video.test", path, {"Range": "bytes=5000-"})
    assert outside.status == 416 and outside.header("Content-Range") == "bytes */3000"
    assert edge.get("video.test", path, {"If-None-Match": etag}).status == 304
    other = edge.get("video.test", path, {"Range": "bytes=0-9", "If-Range": '"other"'})
    assert other.status == 200 and other.body == data
    marker = time.monotonic_ns()
    edge.get("video.test", f"{path}?marker={marker}")

    def logged() -> bool:
        return any(line["path"].endswith(f"marker={marker}") for line in edge.access_lines())

    wait_until(logged, 5, "the access-log line")
    lines = [line for line in edge.access_lines() if line["path"].endswith(f"marker={marker}")]
    assert [(line["status"], line["bytes"]) for line in lines] == [(200, 3000)]


def test_a_purged_small_object_is_never_served_again(edge: Vodedge, origins: Origins) -> None:
    """A small object replaced at the origin and purged: its new bytes, at once."""
    path = origins.media.write("hot/replaced.bin", b"old " * 100)
    edge.prime("video.test", path)
    old = edge.get("video.test", path)
    assert old.body == b"old " * 100 and old.header("X-Cache") == "HIT"
    origins.media.write("hot/replaced.bin", b"new!" * 120)
    proc = edge.purge(f"http://video.test{path}")
    assert proc.returncode == 0, proc.stderr
    reply = edge.get("video.test", path)
    assert reply.header("X-Cache") == "MISS" and reply.body == b"new!" * 120
    edge.prime("video.test", path)
    new = edge.get("video.test", path)
    assert new.body == b"new!" * 120 and new.header("X-Cache") == "HIT"
    assert new.header("Content-Length") == "480" and new.header("ETag") != old.header("ETag")


def test_small_objects_in_memory_follow_their_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small object's bytes come from memory only while its file is the one they were
    read from: a replaced, truncated or removed file is never answered from memory."""
    store = Store(tmp_path / "store", 1 << 30)
    file = tmp_path / "object"

    def entry(size: int, key: str = "a.test/x.bin", at: Path = file) -> Entry:
        meta = ObjectMeta(key, size, '"v"', None, None, 0.0, time.time() + 60)
        return Entry(meta, at)

    file.write_bytes(b"a" * 1000)
    assert store.small_bytes(entry(1000)) == b"a" * 1000
    assert store.small_bytes(entry(1000)) == b"a" * 1000  # from memory
    staged = tmp_path / "staged"
    staged.write_bytes(b"b" * 1000)
    os.replace(staged, file)  # same name and size, another file
    assert store.small_bytes(entry(1000)) == b"b" * 1000
    file.write_bytes(b"b" * 999)
    assert store.small_bytes(entry(1000)) is None  # disagrees with its row
    file.unlink()
    assert store.small_bytes(entry(1000)) is None
    big = tmp_path / "big"
    big.write_bytes(bytes(SMALL_OBJECT + 1))
    assert store.small_bytes(entry(SMALL_OBJECT + 1, at=big)) is None  # not small
    monkeypatch.setattr(cache_store, "SMALL_MEMORY", 10_000)
    for n in range(30):
        path = tmp_path / f"o{n}"
        path.write_bytes(bytes([n]) * 1000)
        assert store.small_bytes(entry(1000, f"a.test/o{n}", path)) == bytes([n]) * 1000
        assert store._small_total <= 10_000


def test_every_request_reaches_the_one_handler(edge: Vodedge, origins: Origins) -> None:
    """With no router in front, a target that is no path is the stages' 400 (it was an
    internal error); Expect is answered as aiohttp's Application did; both are logged."""
    star = edge.raw(b"OPTIONS * HTTP/1.1\r\nHost: video.test\r\nConnection: close\r\n\r\n")
    assert star.startswith(b"HTTP/1.1 400 ") and b"X-Vodedge-Error: bad_path" in star, star
    path = origins.media.write("hot/expect.bin", b"x" * 100)
    edge.prime("video.test", path)
    asked = f"GET {path} HTTP/1.1\r\nHost: video.test\r\nConnection: close\r\n"
    going = edge.raw(f"{asked}Expect: 100-continue\r\n\r\n".encode())
    assert going.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), going[:200]
    assert going.endswith(b"x" * 100)
    odd = edge.raw(f"{asked}Expect: something-else\r\n\r\n".encode())
    assert odd.startswith(b"HTTP/1.1 417 ") and b"expectation_failed" in odd, odd
    marker = f"{path}?expect={time.monotonic_ns()}"
    closing = "Host: video.test\r\nConnection: close\r\n"
    edge.raw(f"GET {marker} HTTP/1.1\r\n{closing}Expect: no\r\n\r\n".encode())

    def logged() -> list[dict[str, object]]:
        return [line for line in edge.access_lines() if line["path"] == marker]

    wait_until(lambda: bool(logged()), 5, "the refused request's log line")
    assert [line["status"] for line in logged()] == [417]
