"""api.py in-process with a test-only dispatch: what actions receive and how answers look.

The node-level tests (test_api_auth.py) run the real dispatch; here a recording one
shows the contract of calls.py: the action's own parameters only, who called,
the request id, and how an action's answer or error becomes JSON.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from api_client import Key, Prepared, acs3_request, send, v1_request
from hypothesis import given, settings
from hypothesis import strategies as st

import vodedge.control.api as api_module
from vodedge.config.keys import AccessKey
from vodedge.control.api import MAX_REQUEST_LINE, Api
from vodedge.control.calls import COMMON_PARAMETERS, Call, JsonObject
from vodedge.control.errors import ApiError
from vodedge.control.keys import KeyRing
from vodedge.control.nonces import NonceStore
from vodedge.control.throttle import Throttle

WRITER = Key("writer", "writer-secret-0123456789")
READER = Key("reader", "reader-secret-0123456789")
RING = KeyRing(
    [AccessKey(WRITER.id, WRITER.secret), AccessKey(READER.id, READER.secret, read_only=True)]
)


async def _exchange(
    tmp_path: Path, dispatch: Any, build: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    api = Api(dispatch, lambda: RING, NonceStore(tmp_path / "nonces.sqlite"))
    app = web.Application()
    api.add_routes(app)
    async with TestServer(app, host="127.0.0.1") as server, ClientSession() as session:
        assert server.port is not None
        prepared: Prepared = build(server.port)
        headers = {k: v for k, v in prepared.headers.items() if k.lower() != "host"}
        headers["Host"] = prepared.headers.get("Host", f"127.0.0.1:{server.port}")
        async with session.request(
            prepared.method,
            f"http://127.0.0.1:{server.port}{prepared.target}",
            headers=headers,
            data=prepared.body or None,
            skip_auto_headers=["Content-Type"],
        ) as response:
            return response.status, json.loads(await response.read()), dict(response.headers)


def exchange(
    tmp_path: Path, dispatch: Any, build: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Serve the API with `dispatch`, send `build(port)`; status, JSON, headers."""
    return asyncio.run(_exchange(tmp_path, dispatch, build))


def test_an_action_gets_its_own_parameters_and_the_caller(tmp_path: Path) -> None:
    calls: list[Call] = []

    async def dispatch(call: Call) -> JsonObject:
        calls.append(call)
        return {"RequestId": "not this one", "Domains": {"PageData": []}, "TotalCount": 0}

    status, body, headers = exchange(
        tmp_path,
        dispatch,
        lambda port: v1_request(
            port,
            WRITER,
            "DescribeUserDomains",
            {"PageSize": "5"},
            method="POST",
            form={"DomainName": "a.example.com"},
        ),
    )
    assert status == 200, body
    (call,) = calls
    assert call.action == "DescribeUserDomains"
    assert dict(call.params) == {"PageSize": "5", "DomainName": "a.example.com"}
    assert call.caller.access_key_id == WRITER.id and not call.caller.read_only
    assert body == {"RequestId": call.request_id, "Domains": {"PageData": []}, "TotalCount": 0}
    assert next(iter(body)) == "RequestId"
    assert headers["x-acs-request-id"] == call.request_id


def test_acs3_parameters_come_from_the_query_and_the_form(tmp_path: Path) -> None:
    calls: list[Call] = []

    async def dispatch(call: Call) -> JsonObject:
        calls.append(call)
        return {}

    status, body, _ = exchange(
        tmp_path,
        dispatch,
        lambda port: acs3_request(
            port, READER, "DescribeRefreshTasks", {"TaskId": "7"}, form={"ObjectPath": "a b"}
        ),
    )
    assert status == 200, body
    assert dict(calls[0].params) == {"TaskId": "7", "ObjectPath": "a b"}
    assert calls[0].caller.read_only


def test_an_action_error_is_the_documented_json(tmp_path: Path) -> None:
    async def dispatch(call: Call) -> JsonObject:
        raise ApiError(404, "InvalidDomain.NotFound", "The domain\ndoes not exist.")

    status, body, _ = exchange(
        tmp_path, dispatch, lambda port: v1_request(port, WRITER, "DescribeCdnDomainDetail")
    )
    assert status == 404
    assert body["Code"] == "InvalidDomain.NotFound"
    assert body["Message"] == "The domain does not exist."
    assert set(body) == {"RequestId", "HostId", "Code", "Message"}


def test_a_crashing_action_is_an_internal_error_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def dispatch(call: Call) -> JsonObject:
        raise RuntimeError("boom\nwith a -----BEGIN PRIVATE KEY----- in it")

    status, body, _ = exchange(
        tmp_path, dispatch, lambda port: v1_request(port, WRITER, "DescribeRefreshQuota")
    )
    assert status == 500
    assert body["Code"] == "InternalError"
    assert "boom" not in body["Message"]
    logged = capsys.readouterr().err
    assert "RuntimeError at test_api_dispatch.py:" in logged
    assert "PRIVATE KEY" not in logged and "boom" not in logged
    assert len(logged.strip().splitlines()) == 1 and "Traceback" not in logged


def test_nonces_are_shared_by_every_store_on_the_file(tmp_path: Path) -> None:
    first = NonceStore(tmp_path / "n.sqlite")
    second = NonceStore(tmp_path / "n.sqlite")
    assert first.use("k", "nonce-1", expires=1_000.0, now=100.0)
    assert not second.use("k", "nonce-1", expires=1_000.0, now=200.0)
    assert second.use("other-key", "nonce-1", expires=1_000.0, now=200.0)
    # Once expired, a nonce may come again (its old call is refused as expired anyway).
    assert second.use("k", "nonce-1", expires=3_000.0, now=1_001.0)
    assert not first.use("k", "nonce-1", expires=3_000.0, now=1_002.0)


def test_a_throttle_refills_at_its_rate() -> None:
    throttle = Throttle()
    assert all(throttle.allow("k", 2.0, 0.0) for _ in range(2))
    assert not throttle.allow("k", 2.0, 0.0)
    assert throttle.allow("k", 2.0, 0.5)
    assert not throttle.allow("k", 2.0, 0.5)
    assert throttle.allow("other", 2.0, 0.5)


# --- hostile input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The API with a dispatch that answers {} in a thread of its own, for fuzzing."""

    async def dispatch(call: Call) -> JsonObject:
        return {}

    loop = asyncio.new_event_loop()
    nonces = NonceStore(tmp_path_factory.mktemp("hostile") / "nonces.sqlite")
    api = Api(dispatch, lambda: RING, nonces)
    app = web.Application()
    api.add_routes(app)
    runner = web.AppRunner(app, max_line_size=MAX_REQUEST_LINE)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:

        async def shutdown() -> None:
            await runner.cleanup()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        nonces.close()


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
query_items = st.lists(
    st.tuples(st.sampled_from([*sorted(COMMON_PARAMETERS), "DomainName", "a b", "é"]), text),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    query=query_items,
    body=st.binary(max_size=200),
    content_type=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "text/plain; charset=latin-1"]
    ),
    authorization=st.one_of(
        st.none(),
        header_text,
        header_text.map(lambda t: f"ACS3-HMAC-SHA256 {t}"),
        st.builds(
            lambda c, s, g: f"ACS3-HMAC-SHA256 Credential={c},SignedHeaders={s},Signature={g}",
            header_text.filter(lambda t: "," not in t),
            st.sampled_from(["host", "host;x-acs-date", "x-acs-action;x-acs-version", ""]),
            header_text.filter(lambda t: "," not in t),
        ),
    ),
    acs_date=st.one_of(st.none(), header_text),
    method=st.sampled_from(["GET", "POST", "PUT"]),
)
def test_hostile_requests_get_a_documented_error(
    hostile_port: int,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str,
    authorization: str | None,
    acs_date: str | None,
    method: str,
) -> None:
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    if acs_date is not None:
        headers.update({"x-acs-date": acs_date, "x-acs-action": "A", "x-acs-version": "v"})
        headers["x-acs-signature-nonce"] = "n"
    target = "/?" + urlencode(query, quote_via=quote) if query else "/"
    answer = send(hostile_port, Prepared(method, target, headers, body))
    assert 400 <= answer.status < 500, answer
    data = answer.json
    assert set(data) == {"RequestId", "HostId", "Code", "Message"}, data
    assert "\n" not in data["Message"]


def test_a_body_too_slow_to_arrive_is_a_timeout(
    hostile_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_module, "BODY_SECONDS", 0.5)
    with socket.create_connection(("127.0.0.1", hostile_port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        reply = sock.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert json.loads(body)["Code"] == "RequestTimeout"


def _use_nonces(path: str, nonces: list[str], out: Any) -> None:
    store = NonceStore(Path(path))
    out.put([n for n in nonces if store.use("k", n, expires=2e9, now=1e9)])
    store.close()


def test_each_nonce_is_accepted_once_across_processes(tmp_path: Path) -> None:
    """Processes racing over one file (as workers or nodes sharing it would)."""
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    nonces = [f"n{i}" for i in range(300)]
    path = str(tmp_path / "shared.sqlite")
    NonceStore(Path(path)).close()
    processes = [
        context.Process(target=_use_nonces, args=(path, nonces[i:] + nonces[:i], out))
        for i in (0, 100, 200)
    ]
    for process in processes:
        process.start()
    accepted = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
    everything = [n for part in accepted for n in part]
    assert sorted(everything) == sorted(nonces)  # each exactly once, none lost
