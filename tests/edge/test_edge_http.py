"""Plain delivery and the request contract's errors, against real origins (nginx, faulty)."""

from __future__ import annotations

import email.utils
import os
import time

import pytest
from edge_config import Origins
from edge_harness import Vodedge, wait_until
from edge_media import SAMPLES

from media_matrix import media

pytestmark = pytest.mark.xdist_group("edge_http")


def _nginx_head(origins: Origins, path: str) -> dict[str, str]:
    """What nginx itself says about `path` (ETag, Last-Modified...)."""
    from edge_harness import http_request

    reply = http_request(origins.nginx.port, "origin", path, method="HEAD")
    return dict(reply.headers.items())


# Most tests here look at one object in several ways: it is put in the cache first,
# so every answer is a HIT (misses are test_edge_cache's).


@pytest.fixture(scope="module")
def talk(origins: Origins, edge: Vodedge) -> str:
    """The plain sample on nginx, already in the edge's cache."""
    path = origins.media.add(SAMPLES / "talk.mp4", "http/talk.mp4")
    edge.prime("video.test", path)
    return path


# --- plain delivery ------------------------------------------------------------------


def test_head_miss_then_get_hits(edge: Vodedge, origins: Origins) -> None:
    """A miss then hits: the origin's bytes and validators, our cache headers, one fetch."""
    path = origins.media.add(SAMPLES / "talk.mp4", "http/head-first.mp4")
    source = origins.media.file(path).read_bytes()
    nginx = _nginx_head(origins, path)
    first = edge.get("video.test", path, method="HEAD")
    assert first.status == 200 and first.body == b"", first
    assert first.header("X-Cache") == "MISS"
    wait_until(lambda: len(origins.nginx.hits(path)) == 2, 5, "nginx to log the fill")
    second = edge.get("video.test", path)
    assert second.status == 200 and second.body == source
    assert second.header("X-Cache") == "HIT"
    third = edge.get("video.test", path, method="HEAD")
    assert third.status == 200 and third.body == b""
    assert third.header("X-Cache") == "HIT"
    for reply in (first, second, third):
        assert reply.header("Content-Length") == str(len(source))
        assert reply.header("Content-Type") == "video/mp4"
        assert reply.header("ETag") == nginx["ETag"]
        assert reply.header("Last-Modified") == nginx["Last-Modified"]
        assert reply.header("Accept-Ranges") == "bytes"
        assert "vodedge" in (reply.header("Via") or "")
        assert (reply.header("Age") or "").isdigit()
    gets = [h for h in origins.nginx.settled_hits(path) if h.method == "GET"]
    assert len(gets) == 1, gets


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=100-199", 100, 200),
        ("bytes=0-0", 0, 1),
        ("bytes=369000-", 369000, None),
        ("bytes=-500", -500, None),
        ("bytes=369800-999999999", 369800, None),
        ("bytes=-999999999", 0, None),
    ],
)
def test_single_range(edge: Vodedge, origins: Origins, talk: str, header: str,
                      start: int, stop: int | None) -> None:  # fmt: skip
    """One range: 206, the exact slice and a Content-Range naming it."""
    source = origins.media.file(talk).read_bytes()
    want = source[start:stop]
    first = len(source) + start if start < 0 else start
    reply = edge.get("video.test", talk, {"Range": header})
    assert reply.status == 206, reply
    assert reply.body == want
    assert reply.header("Content-Length") == str(len(want))
    assert reply.header("Content-Range") == (f"bytes {first}-{first + len(want) - 1}/{len(source)}")


@pytest.mark.parametrize("header", ["bytes=369828-", "bytes=400000-400100"])
def test_unsatisfiable_range(edge: Vodedge, origins: Origins, talk: str, header: str) -> None:
    """A range past the end: 416 with `bytes */size`."""
    size = origins.media.file(talk).stat().st_size
    reply = edge.get("video.test", talk, {"Range": header})
    assert reply.status == 416, reply
    assert reply.header("Content-Range") == f"bytes */{size}"


def test_zero_length_suffix_range_is_unsatisfiable(
    edge: Vodedge, origins: Origins, talk: str
) -> None:
    """`bytes=-0` asks for nothing: 416, never 206 with the whole object."""
    reply = edge.get("video.test", talk, {"Range": "bytes=-0"})
    assert reply.status == 416, reply


@pytest.mark.parametrize(
    "header", ["bytes=5-1", "bytes=abc", "bytes=0-1,5-6", "items=0-1", "bytes=--1"]
)
def test_malformed_or_multi_range_gets_the_whole_object(
    edge: Vodedge, origins: Origins, talk: str, header: str
) -> None:
    """Ranges we do not serve are ignored, as RFC 9110 allows: 200 and every byte."""
    source = origins.media.file(talk).read_bytes()
    reply = edge.get("video.test", talk, {"Range": header})
    assert reply.status == 200, reply
    assert reply.body == source
    assert reply.header("Content-Range") is None


def test_conditional_requests(edge: Vodedge, origins: Origins, talk: str) -> None:
    """If-None-Match and If-Modified-Since: 304 when current, 200 otherwise."""
    nginx = _nginx_head(origins, talk)
    etag, modified = nginx["ETag"], nginx["Last-Modified"]
    earlier = email.utils.formatdate(
        email.utils.parsedate_to_datetime(modified).timestamp() - 3600, usegmt=True
    )
    cases = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": f'"nope", {etag}'}, 304),
        ({"If-None-Match": f"W/{etag}"}, 304),  # If-None-Match compares weakly
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        ({"If-Modified-Since": modified}, 304),
        ({"If-Modified-Since": earlier}, 200),
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3).
        ({"If-None-Match": '"nope"', "If-Modified-Since": modified}, 200),
    ]
    for headers, status in cases:
        reply = edge.get("video.test", talk, headers)
        assert reply.status == status, (headers, reply)
        if status == 304:
            assert reply.body == b""
            assert reply.header("ETag") == etag
        else:
            assert reply.body == origins.media.file(talk).read_bytes()


def test_if_range(edge: Vodedge, origins: Origins, talk: str) -> None:
    """If-Range: the range when the validator matches, the whole object when not."""
    nginx = _nginx_head(origins, talk)
    source = origins.media.file(talk).read_bytes()
    cases = [
        ({"If-Range": nginx["ETag"]}, 206),
        ({"If-Range": '"other"'}, 200),
        ({"If-Range": f"W/{nginx['ETag']}"}, 200),  # weak tags never match If-Range
        ({"If-Range": nginx["Last-Modified"]}, 206),
        ({"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200),
    ]
    for headers, status in cases:
        reply = edge.get("video.test", talk, {"Range": "bytes=10-19", **headers})
        assert reply.status == status, (headers, reply)
        assert reply.body == (source[10:20] if status == 206 else source)


# --- freshness and revalidation (the fault origin sets Cache-Control) -------------------


# The fault origin drips these in small chunks, so a miss is served while it fills.
DRIP = {"chunk": 32 << 10, "drip_after": 0, "interval": 0.002}


def _fault_path(origins: Origins, name: str, **behaviour: object) -> str:
    path = origins.media.write(f"http/{name}", os.urandom(300_000))
    origins.fault.behave(path, **DRIP, **behaviour)
    return path


def test_age_counts_the_origins_age(edge: Vodedge, origins: Origins) -> None:
    """Age = the origin's Age plus our time in cache."""
    path = _fault_path(origins, "aged.mp4", age=100)
    assert int(edge.get("faulty.test", path).header("Age") or -1) >= 100
    assert int(edge.get("faulty.test", path).header("Age") or -1) >= 100


def test_revalidated_then_expired(edge: Vodedge, origins: Origins) -> None:
    """max-age=1: HIT, then REVALIDATED on the origin's 304, EXPIRED when the ETag moved."""
    path = _fault_path(origins, "max-age-1.mp4", cache_control="max-age=1")
    source = origins.media.file(path).read_bytes()
    assert edge.get("faulty.test", path).header("X-Cache") == "MISS"
    hit = edge.get("faulty.test", path)
    assert hit.header("X-Cache") == "HIT" and hit.body == source
    edge.wait_expired("faulty.test", path)
    again = edge.get("faulty.test", path)
    assert again.header("X-Cache") == "REVALIDATED", again
    assert again.body == source
    records = origins.fault.requests(path)
    assert len(records) == 2, records
    assert records[1]["if_none_match"] == hit.header("ETag")
    assert records[1]["status"] == 304
    # A new version at the origin: new bytes, new ETag.
    changed = origins.media.write(path.lstrip("/"), source[::-1])
    assert changed == path
    edge.wait_expired("faulty.test", path)
    expired = edge.get("faulty.test", path)
    assert expired.header("X-Cache") == "EXPIRED", expired
    assert expired.body == source[::-1]
    assert expired.header("ETag") != hit.header("ETag")
    assert edge.get("faulty.test", path).body == source[::-1]


def test_stale_copy_when_the_origin_fails_revalidation(edge: Vodedge, origins: Origins) -> None:
    """An expired object whose origin now answers 503 is served as it was (STALE)."""
    path = _fault_path(origins, "stale.mp4", cache_control="max-age=1")
    source = origins.media.file(path).read_bytes()
    assert edge.get("faulty.test", path).status == 200
    origins.fault.behave(path, **DRIP, status=503)
    edge.wait_expired("faulty.test", path)
    reply = edge.get("faulty.test", path)
    assert reply.status == 200 and reply.body == source
    assert reply.header("X-Cache") == "STALE"


@pytest.mark.parametrize("directive", ["no-store", "private", "private, max-age=600"])
def test_uncacheable_responses_pass_through(
    edge: Vodedge, origins: Origins, directive: str
) -> None:
    """no-store / private: every request goes to the origin, none is a HIT."""
    name = f"uncached-{directive.split(',')[0]}-{len(directive)}.mp4"
    path = _fault_path(origins, name, cache_control=directive)
    source = origins.media.file(path).read_bytes()
    for _ in range(3):
        reply = edge.get("faulty.test", path)
        assert reply.status == 200 and reply.body == source
        assert reply.header("X-Cache") != "HIT"
    assert len(origins.fault.requests(path)) == 3


def test_origin_404_and_redirects_reach_the_client(edge: Vodedge, origins: Origins) -> None:
    """A 404 stays a 404; a redirect keeps its status and Location."""
    assert edge.get("faulty.test", "/http/absent.mp4").status == 404
    assert edge.get("video.test", "/http/absent.mp4").status == 404
    path = _fault_path(origins, "moved.mp4", status=302, location="http://elsewhere.test/new.mp4")
    reply = edge.get("faulty.test", path)
    assert reply.status == 302, reply
    assert reply.header("Location") == "http://elsewhere.test/new.mp4"


# --- errors of the request contract ----------------------------------------------------


def _one_line_error(reply: object, status: int, code: str) -> None:
    from edge_harness import Reply

    assert isinstance(reply, Reply)
    assert reply.status == status, reply
    assert reply.header("X-Vodedge-Error") == code, reply
    text = reply.body.decode()
    assert text.endswith("\n") and text.count("\n") == 1 and len(text) > 1, text


@pytest.mark.parametrize(
    ("case", "code"), [("mp4_video_only", "no_audio_track"), ("flv_video_only", "no_audio_track")]
)
def test_no_audio_track(edge: Vodedge, origins: Origins, case: str, code: str) -> None:
    """Nothing to extract: a 4xx, one line, a machine-readable code."""
    path = origins.media.add(media(case), f"http/{case}{media(case).suffix}")
    for _ in ("miss", "hit"):
        _one_line_error(edge.get("video.test", path + "?ali_audio_only=1"), 422, code)


def test_not_media_is_415(edge: Vodedge, origins: Origins) -> None:
    """A .mp4 that is not ISO BMFF: 415 not_iso_bmff."""
    path = origins.media.write("http/not-really.mp4", b"<html>this is no video</html>\n" * 40)
    for _ in ("miss", "hit"):
        _one_line_error(edge.get("video.test", path + "?ali_audio_only=1"), 415, "not_iso_bmff")


def test_passthrough_fallback_serves_the_original(edge: Vodedge, origins: Origins) -> None:
    """fallback = passthrough: the original object instead of an error."""
    for case in ("mp4_video_only", "flv_video_only"):
        path = origins.media.add(media(case), f"http/{case}{media(case).suffix}")
        reply = edge.get("pass.test", path + "?ali_audio_only=1")
        assert reply.status == 200, reply
        assert reply.body == media(case).read_bytes()
        assert reply.header("X-Vodedge-Error") is None
    junk = origins.media.write("http/junk.mp4", b"junk" * 100)
    reply = edge.get("pass.test", junk + "?ali_audio_only=1")
    assert reply.status == 200 and reply.body == b"junk" * 100


@pytest.mark.parametrize(
    "query", ["start=abc", "start=5&end=2", "end=-1", "start=nan", "start=1e3", "start=1&end=1"]
)
def test_bad_seek_values_are_400(edge: Vodedge, talk: str, query: str) -> None:
    """Malformed or out-of-order seek values: 400 invalid_seek."""
    _one_line_error(edge.get("video.test", f"{talk}?{query}"), 400, "invalid_seek")


def test_unknown_host_never_reaches_an_origin(edge: Vodedge, origins: Origins) -> None:
    """An unknown, empty or odd Host is refused and no origin hears of it."""
    path = origins.media.add(SAMPLES / "talk.mp4", "http/unknown-host.mp4")
    for host in ("unknown.test", "video.test.evil", "127.0.0.1", "", "video.test@evil",
                 "evil/../video.test"):  # fmt: skip
        reply = edge.get(host, path + "?ali_audio_only=1")
        assert 400 <= reply.status < 500, (host, reply)
        assert reply.body != origins.media.file(path).read_bytes()
    answer = edge.raw(f"GET {path} HTTP/1.0\r\n\r\n".encode())  # no Host at all
    assert answer.split(b" ", 2)[1].startswith(b"4"), answer[:200]
    assert origins.nginx.settled_hits(path) == []
    assert origins.fault.requests(path) == []


TRAVERSALS = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/hello.txt/../../secret.txt",
    "/x/..%2f..%2fsecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/%00/../secret.txt",
    "/hello.txt%00.mp4",
    "/%252e%252e/secret.txt",
    "/%c0%ae%c0%ae/secret.txt",
    "//../secret.txt",
    "/./../secret.txt",
    "/%2fsecret.txt",
    "http://dir.test/../secret.txt",
]


def test_path_traversal_never_escapes_a_directory_origin(edge: Vodedge, origins: Origins) -> None:
    """Dot segments, encoded or not, backslashes, NUL, symlinks: never the file beside the root."""
    secret = origins.secret.read_bytes()
    link = origins.directory / "link.txt"
    if not link.exists():
        link.symlink_to(origins.secret)
    ok = edge.get("dir.test", "/hello.txt")
    assert ok.status == 200 and ok.body.startswith(b"hello"), ok
    for target in [*TRAVERSALS, "/link.txt"]:
        reply = edge.get("dir.test", target)
        assert secret not in reply.body, target
        assert 400 <= reply.status < 500, (target, reply)
        # And without any client-side normalisation at all.
        request = f"GET {target} HTTP/1.1\r\nHost: dir.test\r\nConnection: close\r\n\r\n"
        answer = edge.raw(request.encode())
        assert secret not in answer, target


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: video.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: video.test\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: video.test\r\n"
        + b"".join(b"X-%d: y\r\n" % i for i in range(500))
        + b"\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: video.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: video.test\r\nBad Header\r\n\r\n",
    ],
    ids=[
        "long-request-line",
        "long-header",
        "many-headers",
        "garbage",
        "bad-version",
        "bad-header-line",
    ],
)
def test_oversized_or_malformed_requests_get_4xx(edge: Vodedge, request_bytes: bytes) -> None:
    """Request lines and headers past the limits, or malformed: a 4xx status line."""
    answer = edge.raw(request_bytes)
    assert answer.startswith(b"HTTP/1."), answer[:200]
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]
    # The server is still there for the next client.
    assert edge.get("dir.test", "/hello.txt").status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_405(edge: Vodedge, origins: Origins, method: str) -> None:
    """Only GET and HEAD: 405 with Allow, and the origin hears nothing."""
    path = origins.media.add(SAMPLES / "talk.mp4", f"http/method-{method}.mp4")
    reply = edge.get("video.test", path, method=method)
    assert reply.status == 405, reply
    assert reply.header("Allow") == "GET, HEAD"
    assert reply.header("X-Vodedge-Error") == "method_not_allowed"
    assert origins.nginx.settled_hits(path) == []


def test_access_log_has_one_json_line_per_request(edge: Vodedge, talk: str) -> None:
    """Every request leaves exactly one JSON line with what it was and what it got."""
    marker = f"/http/log-marker-{time.monotonic_ns()}.mp4"
    before = len(edge.access_lines())
    edge.get("video.test", talk)
    edge.get("video.test", marker)
    edge.get("nobody.test", talk)
    edge.get("video.test", talk, method="DELETE")

    def four_more() -> bool:
        return len(edge.access_lines()) >= before + 4

    wait_until(four_more, 5, "four access-log lines")
    lines = edge.access_lines()[before:]
    assert len(lines) == 4, lines
    assert [line["status"] for line in lines] == [200, 404, 403, 405]
    assert lines[1]["path"] == marker and lines[1]["host"] == "video.test"
    assert lines[0]["bytes"] == 369828
    for line in lines:
        assert {"host", "method", "path", "status", "bytes", "ms", "time", "remote"} <= set(line)
