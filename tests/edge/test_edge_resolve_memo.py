"""The resolve memo answers exactly as `resolve` (issue 15), seeks included.

Requests are read by aiohttp's own HTTP parser (the one the server runs, so the query
is parsed as a client's is), from targets generated over seek arguments and their
look-alikes (escapes, "+", repeats, fragments, values that are not seconds) on
domains that seek, seek with other names, do not seek, limit rates by an argument,
preview, sign their URLs or redirect to HTTPS.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.http_parser import HttpRequestParser
from edge_config import SEEK, SPLIT, domain, function
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vodedge.config import NodeConfig
from vodedge.config.loader import load_toml
from vodedge.edge.refusal import Refusal
from vodedge.edge.resolve import Resolved, ResolveMemo, resolve
from vodedge.edge.resp_headers import DOMAIN

ORIGIN = "http://127.0.0.1:9"  # never contacted: resolving asks no origin
HOSTS = ("a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test", "A.TEST:80")
TABLES = "".join(
    [
        domain("a.test", ORIGIN, SPLIT, SEEK),
        domain(
            "b.test",
            ORIGIN,
            SPLIT,
            function(
                "video_seek",
                enable="on",
                flv_seek_by_time="on",
                mp4_seek_start="s",
                mp4_seek_end="e",
                flv_seek_start="from",
                flv_seek_end="start",
            ),
        ),
        # No seeking: start and end are ordinary arguments of the key.
        domain("c.test", ORIGIN, SPLIT),
        # A seek argument sets the rate too.
        domain(
            "d.test",
            ORIGIN,
            SPLIT,
            SEEK,
            function("limit_rate", ali_limit_rate="0k", traffic_limit_arg="end"),
            function("set_hashkey_args", hashkey_args="v,start", disable="on", keep_oss_args="off"),
        ),
        domain(
            "e.test",
            ORIGIN,
            SEEK,
            function("ali_video_preview", enable="on", ali_video_preview_argument="e"),
        ),
        domain(
            "f.test",
            ORIGIN,
            SEEK,
            function("aliauth", auth_type="type_a", auth_key1="aliyuncdnexp1234"),
        ),
        domain("g.test", ORIGIN, SEEK, function("https_force", enable="on")),
    ]
)
# Seek arguments and plain seconds drawn most often (the shapes the memo remembers).
NAMES = ("start", "end") * 3 + (
    "s",
    "e",
    "from",
    "v",
    "ali_audio_only",
    "st%61rt",
    "start+",
    "START",
)
PLAIN = ("1", "1.5", "10.000", "0", "20", "900")
VALUES = PLAIN * 3 + ("", "x", "-1", "1e3", "%31", "+2", "5.5.5", "9" * 20)
PATHS = ("/a.mp4", "/a.flv", "/a.bin", "/b.MP4", "/%61.mp4", "/a.m4a")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> NodeConfig:
    path = tmp_path_factory.mktemp("memo") / "config.toml"
    path.write_text(TABLES)
    return load_toml(path)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _request(loop: asyncio.AbstractEventLoop, target: str, host: str) -> web.BaseRequest:
    """A request as the server's parser reads it from the wire."""
    protocol = types.SimpleNamespace(
        ssl_context=None, peername=("192.0.2.7", 5000), sockname=("127.0.0.1", 80), transport=None
    )
    parser = HttpRequestParser(protocol, loop, 2**16, max_line_size=8190, max_field_size=8190)
    raw = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    messages, _upgraded, _tail = parser.feed_data(raw)
    message, payload = messages[0]
    return web.BaseRequest(message, payload, protocol, None, None, loop)


def _outcome(call: Callable[[], Resolved]) -> tuple[str, object]:
    """A Resolved as its fields (the query as its items), or a refusal as what a client
    gets of it."""
    try:
        found: Resolved = call()
    except Refusal as refusal:
        response = refusal.response()
        return "refused", (response.status, refusal.code, str(refusal), dict(response.headers))
    fields = {name: getattr(found, name) for name in Resolved.__slots__}
    fields["query"] = list(found.query.items())
    return "resolved", fields


pieces = st.tuples(
    st.sampled_from(NAMES), st.sampled_from(("=", "=", "=", "")), st.sampled_from(VALUES)
)
targets = st.tuples(
    st.sampled_from(PATHS),
    st.lists(pieces, max_size=5),
    st.sampled_from(("", "", "", "#x", "&", ";")),
).map(
    lambda parts: (
        parts[0]
        + ("?" if parts[1] or parts[2] else "")
        + "&".join(name + eq + (value if eq else "") for name, eq, value in parts[1])
        + parts[2]
    )
)


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(st.tuples(targets, st.sampled_from(HOSTS)), min_size=1, max_size=12))
def test_the_memo_answers_as_resolve(
    requests: list[tuple[str, str]], config: NodeConfig, loop: asyncio.AbstractEventLoop
) -> None:
    """Every request of a sequence gets from one memo what resolve gives it alone; each
    is asked twice, and again with its seek values changed (a remembered shape)."""
    memo = ResolveMemo()
    asked = []
    for target, host in requests:
        asked += [(target, host), (target, host)]
        moved = target.replace("=1.5", "=7.25").replace("=20", "=3").replace("=900", "=300")
        asked.append((moved, host))
    for target, host in asked:
        plain = _request(loop, target, host)
        memoised = _request(loop, target, host)
        expected = _outcome(partial(resolve, plain, config))
        assert _outcome(partial(memo.resolve, memoised, config)) == expected, (target, host)
        assert memoised.get(DOMAIN) is plain.get(DOMAIN)


def test_a_seek_at_each_new_start_is_resolved_once(
    config: NodeConfig, loop: asyncio.AbstractEventLoop
) -> None:
    """Random starts on one object make one remembered shape; another object, Host or
    argument order is another; values that are not plain seconds are not remembered by
    shape."""
    memo = ResolveMemo()
    for n in range(20):
        start = f"{n * 7.5:.3f}"
        found = memo.resolve(_request(loop, f"/a.mp4?start={start}&end=900", "a.test"), config)
        assert found.transform is not None and found.transform.start == float(start)
    assert len(memo._shapes) == 1 and not memo._found
    memo.resolve(_request(loop, "/a.mp4?end=900&start=1", "a.test"), config)
    memo.resolve(_request(loop, "/b.mp4?start=1&end=900", "a.test"), config)
    assert len(memo._shapes) == 3
    # On a domain without seeking, start is part of the key: one answer per target.
    memo.resolve(_request(loop, "/a.mp4?start=1", "c.test"), config)
    memo.resolve(_request(loop, "/a.mp4?start=2", "c.test"), config)
    assert len(memo._found) == 2 and len(memo._shapes) == 3
    memo.resolve(_request(loop, "/a.mp4?start=%31", "a.test"), config)
    assert len(memo._found) == 3


def test_a_new_configuration_forgets_shapes(
    config: NodeConfig, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    """What a shape resolved to under one configuration is not used under the next."""
    memo = ResolveMemo()
    memo.resolve(_request(loop, "/a.mp4?start=1", "a.test"), config)
    path = tmp_path / f"config-{time.monotonic_ns()}.toml"
    path.write_text(domain("a.test", ORIGIN, SPLIT))  # seeking off
    after = load_toml(path)
    found = memo.resolve(_request(loop, "/a.mp4?start=2", "a.test"), after)
    assert found.transform is None and "start=2" in found.key


def test_a_rate_set_by_a_seek_argument_follows_each_request(
    config: NodeConfig, loop: asyncio.AbstractEventLoop
) -> None:
    """limit_rate read from an argument that is also the seek's end: a remembered shape
    answers each request with the rate its own value sets."""
    memo = ResolveMemo()
    for end in ("900", "300", "900", "200"):
        target = f"/a.mp4?start=1&end={end}"
        found = memo.resolve(_request(loop, target, "d.test"), config)
        assert found == resolve(_request(loop, target, "d.test"), config)
        assert found.rate == (int(end) << 10, 0)
    assert len(memo._shapes) == 1
