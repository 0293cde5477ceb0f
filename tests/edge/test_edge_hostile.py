"""Hostile or broken clients: what they can make the server log, learn, or smuggle."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from edge_config import SPLIT, Origins, domain, domains
from edge_harness import Vodedge, free_port, running
from edge_media import SAMPLES

pytestmark = pytest.mark.xdist_group("edge_hostile")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker, with a domain whose origin refuses connections."""
    down = domain("down.test", f"http://127.0.0.1:{free_port()}", SPLIT)
    work = tmp_path_factory.mktemp("vodedge-hostile")
    with running(Vodedge(work, domains(origins, extra=down))) as server:
        yield server


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: video.test\r\nHost: blocked.test\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: video.test\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: video.test\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
    b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: video.test\r\n\r\n",
    b"GET /x HTTP/9.9\r\nHost: video.test\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: video.test\r\nBad Header\r\n\r\n",
    b"G\x00T /x HTTP/1.1\r\nHost: video.test\r\n\r\n",
]


def test_malformed_requests_leave_no_traceback_in_the_log(edge: Vodedge) -> None:
    """Each malformed request gets its 400, and the server's log no traceback."""
    before = edge.stderr_log.read_text()
    for request in MALFORMED:
        answer = edge.raw(request)
        assert answer.startswith(b"HTTP/1.") and b" 4" in answer[:13], answer[:100]
    added = edge.stderr_log.read_text()[len(before) :]
    assert "Traceback" not in added, added[-3000:]
    assert len(added.splitlines()) <= len(MALFORMED), added[-3000:]


def test_a_smuggled_request_behind_cl_and_te_is_not_answered(edge: Vodedge) -> None:
    """Content-Length with Transfer-Encoding is refused, and the bytes behind it are not
    read as a second request."""
    smuggled = b"GET /hello.txt HTTP/1.1\r\nHost: dir.test\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    request = (
        b"POST /x HTTP/1.1\r\nHost: video.test\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" % len(body)
    ) + body
    answer = edge.raw(request)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer[:13], answer[:200]
    assert answer.count(b"HTTP/1.") == 1, answer
    assert b"hello from the directory origin" not in answer


def test_errors_do_not_reveal_the_origins_address(edge: Vodedge, origins: Origins) -> None:
    """A client learns that the origin failed, not where the origin is."""
    reply = edge.get("down.test", "/talk.mp4")
    assert reply.status == 502 and reply.header("X-Vodedge-Error") == "origin_unreachable"
    assert b"127.0.0.1" not in reply.body, reply.body


def test_many_idle_connections_do_not_starve_a_request(edge: Vodedge, origins: Origins) -> None:
    """300 connections that never send a byte; a real client is still served."""
    path = origins.media.add(SAMPLES / "talk.mp4", "hostile/served.mp4")
    idle = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", edge.port), timeout=5)
            idle.append(sock)
        reply = edge.get("video.test", path, timeout=10)
        assert reply.status == 200 and reply.body == origins.media.file(path).read_bytes()
    finally:
        for sock in idle:
            sock.close()
