"""Requests crafted to split what the edge keys from what it fetches (cache poisoning),
request-target forms, and the small refusals: each answered as the README says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, running
from edge_media import SAMPLES

from origins.faulty import payload

pytestmark = pytest.mark.xdist_group("edge_attacks")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker with the test domains."""
    with running(Vodedge(tmp_path_factory.mktemp("vodedge-attacks"), domains(origins))) as server:
        yield server


def _parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _raw_get(edge: Vodedge, target: bytes, host: bytes | None, *extra: bytes) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1"]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += [*extra, b"Connection: close", b"", b""]
    return edge.raw(b"\r\n".join(lines), timeout=15)


def _body_of(answer: bytes) -> bytes:
    """The body of a raw Content-Length answer."""
    status, headers, body = _parse(answer)
    assert status == 200, answer[:300]
    assert int(headers["content-length"]) == len(body), answer[:300]
    return body


# --- 1. the Host that chooses the domain and the key is the Host the origin gets ---------


HOST_SPELLINGS = [
    "FAULTY.TEST.",  # first: the old edge sent the first spelling it met upstream
    "faulty.test",
    "FAULTY.TEST",
    "faulty.test.",
    "Faulty.Test.:8080",
    "faulty.test:80",
]


def test_every_spelling_of_a_host_is_one_object_fetched_as_that_host(
    edge: Vodedge, origins: Origins
) -> None:
    """Case, a trailing dot and a port choose the same domain and key, and the origin is
    asked with the one canonical name: a body that depends on the Host cannot differ."""
    path = "/attacks/host-spellings.bin"
    origins.fault.behave(path, size=30_000, by_host=True)
    want = payload("faulty.test" + path, 30_000)
    for host in HOST_SPELLINGS:
        reply = edge.get(host, path)
        assert reply.status == 200, (host, reply)
        assert reply.body == want, f"{host!r} got a body made for another Host"
    records = origins.fault.requests(path)
    assert [r["host"] for r in records] == ["faulty.test"], records


@pytest.mark.parametrize(
    "host",
    [
        # full-width letters, which IDNA folds onto faulty.test
        "\uff46\uff41\uff55\uff4c\uff54\uff59.test",
        "\uff46aulty.test",
        "faulty\u3002test",  # an ideographic full stop, a label separator to IDNA
        "faulty.t\u0435st",  # a Cyrillic ie
        "f\u00e4ulty.test",
    ],
)
def test_a_unicode_host_is_refused_and_poisons_nothing(
    edge: Vodedge, origins: Origins, host: str
) -> None:
    """A Host that is not ASCII is a 400 that no origin hears of; the plain Host then
    gets the object made for it."""
    path = f"/attacks/unicode-{host.encode().hex()}.bin"
    origins.fault.behave(path, size=20_000, by_host=True)
    status, headers, body = _parse(_raw_get(edge, path.encode(), host.encode()))
    assert status == 400 and headers.get("x-vodedge-error") == "bad_host", (status, body)
    assert host.encode() not in body
    assert origins.fault.requests(path) == []
    reply = edge.get("faulty.test", path)
    assert reply.body == payload("faulty.test" + path, 20_000)
    assert [r["host"] for r in origins.fault.requests(path)] == ["faulty.test"]


def test_a_malformed_host_is_refused(edge: Vodedge, origins: Origins) -> None:
    """A malformed Host (bad characters, empty labels, credentials) is refused, never
    looked up loosely."""
    path = "/attacks/odd-hosts.bin"
    origins.fault.behave(path, size=1000, by_host=True)
    for host in (b"faulty..test", b"faulty.test%2e", b"faulty test", b"user@faulty.test", b"[::1"):
        status, _, body = _parse(_raw_get(edge, path.encode(), host))
        assert 400 <= status < 500, (host, status, body)
    assert origins.fault.requests(path) == []


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/attacks/encoded-small.bin", "/attacks/%65ncoded-small.bin"),  # an unreserved letter
        ("/attacks/a~b-c_d.bin", "/attacks/a%7Eb%2dc%5Fd.bin"),  # unreserved marks
        ("/attacks/x%2fy.bin", "/attacks/x%2Fy.bin"),  # hex case of a reserved escape
        ("/attacks/%c3%bcn%C3%AF.bin", "/attacks/%C3%BCn%c3%af.bin"),  # escapes of UTF-8
    ],
)
def test_spellings_of_one_path_are_one_key_and_one_origin_path(
    edge: Vodedge, origins: Origins, first: str, second: str
) -> None:
    """Equivalent percent-encodings of a path are one cache object, fetched once, under
    one spelling: what the key holds is what the origin was asked."""
    from urllib.parse import unquote

    decoded = unquote(first)
    origins.fault.behave(decoded, size=12_000)
    one = _raw_get(edge, first.encode(), b"faulty.test")
    edge.prime("faulty.test", first)  # stored: the next request is a HIT if the key is one
    two = _raw_get(edge, second.encode(), b"faulty.test")
    assert _body_of(one) == _body_of(two) == payload(decoded, 12_000)
    assert _parse(two)[1]["x-cache"] == "HIT", two[:300]
    assert len(origins.fault.requests(decoded)) == 1


def test_a_stray_percent_is_a_400(edge: Vodedge, origins: Origins) -> None:
    """'%zz' has no meaning: refused, not guessed at (nor passed on to the origin)."""
    for target in (b"/attacks/bad%zz.bin", b"/attacks/bad%2.bin", b"/attacks/bad%.bin"):
        status, headers, _ = _parse(_raw_get(edge, target, b"faulty.test"))
        assert status == 400 and headers.get("x-vodedge-error") == "bad_path", target


# --- 6. absolute-form request targets (RFC 9112 3.2.2) --------------------------------------


def test_an_absolute_form_target_is_served_from_its_own_host(
    edge: Vodedge, origins: Origins
) -> None:
    """GET http://host/x names the host itself; the Host header is ignored; HTTP and
    directory origins both serve it exactly, transforms included."""
    talk = origins.media.add(SAMPLES / "talk.mp4", "attacks/absolute.mp4")
    want = origins.media.file(talk).read_bytes()
    answer = _raw_get(edge, b"http://video.test" + talk.encode(), b"unknown.test")
    assert _body_of(answer) == want
    answer = _raw_get(edge, b"HTTP://VIDEO.TEST:80" + talk.encode(), b"video.test")
    assert _body_of(answer) == want
    audio = edge.get("video.test", talk + "?ali_audio_only=1")
    assert audio.status == 200
    target = f"http://video.test{talk}?ali_audio_only=1".encode()
    assert _body_of(_raw_get(edge, target, b"video.test")) == audio.body
    hello = (origins.directory / "hello.txt").read_bytes()
    assert _body_of(_raw_get(edge, b"http://dir.test/hello.txt", b"video.test")) == hello
    path = "/attacks/absolute-host.bin"
    origins.fault.behave(path, size=5000, by_host=True)
    body = _body_of(_raw_get(edge, b"http://faulty.test" + path.encode(), b"video.test"))
    assert body == payload("faulty.test" + path, 5000)
    assert [r["host"] for r in origins.fault.requests(path)] == ["faulty.test"]


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"http://unknown.test/x.mp4", 403),
        (b"ftp://video.test/x.mp4", 400),
        (b"http://user:pw@video.test/x.mp4", 400),
        (b"http://video.test/../secret.txt", 400),
        (b"http:///x.mp4", 400),
        (b"*", 400),
    ],
)
def test_odd_absolute_targets_get_a_clear_4xx(edge: Vodedge, target: bytes, status: int) -> None:
    """Never a 500, never a guess."""
    got, headers, body = _parse(_raw_get(edge, target, b"video.test"))
    assert got == status, (target, got, body)
    assert "x-vodedge-error" in headers


# --- 10. the small refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "end=0",
        "start=0&end=0",
        "ali_audio_only=1&end=0",
        "start=%D9%A3",  # an Arabic-Indic three
        "end=%EF%BC%95",  # a full-width five
        "start=1%E2%80%8A",  # a trailing hair space
    ],
)
def test_seek_values_that_mean_nothing_are_400(edge: Vodedge, origins: Origins, query: str) -> None:
    """An empty clip and digits that are not ASCII are refused, for MP4 and FLV."""
    mp4 = origins.media.add(SAMPLES / "talk.mp4", "attacks/seek.mp4")
    flv = origins.media.add(SAMPLES / "talk.flv", "attacks/seek.flv")
    for path in (mp4, flv):
        reply = edge.get("video.test", f"{path}?{query}")
        assert reply.status == 400, (path, query, reply)
        assert reply.header("X-Vodedge-Error") == "invalid_seek"


def test_repeated_single_headers_are_refused(edge: Vodedge, origins: Origins) -> None:
    """Two Range (or If-Range, If-Modified-Since) lines are two answers to one question:
    400, not whichever came first."""
    path = origins.media.add(SAMPLES / "talk.mp4", "attacks/two-ranges.mp4")
    for name, one, two in [
        (b"Range", b"bytes=0-9", b"bytes=10-19"),
        (b"Range", b"bytes=0-9", b"bytes=0-9"),
        (b"If-Range", b'"a"', b'"b"'),
        (b"If-Modified-Since", b"Mon, 01 Jan 2024 00:00:00 GMT", b"Mon, 01 Jan 2024 00:00:00 GMT"),
    ]:
        answer = _raw_get(
            edge, path.encode(), b"video.test", name + b": " + one, name + b": " + two
        )
        status, headers, _ = _parse(answer)
        assert status == 400 and headers["x-vodedge-error"] == "repeated_header", answer[:300]
    single = _raw_get(edge, path.encode(), b"video.test", b"Range: bytes=0-9")
    assert _parse(single)[0] == 206


MARKER = b"zq-marker-7f3a"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /x HTTP/1.1\r\nHost: video.test\r\nBad " + MARKER + b"\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: video.test\r\n" + MARKER + b" : y\r\n\r\n",
        b"GET /" + MARKER + b"\x01 HTTP/1.1\r\nHost: video.test\r\n\r\n",
        b"GET /" + MARKER + b" HTTP/9.9\r\nHost: video.test\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: video.test\r\nHost: " + MARKER + b".test\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: video.test\r\nX-" + MARKER + b": " + b"a" * 20000 + b"\r\n\r\n",
    ],
)
def test_unparseable_requests_name_no_library_and_echo_nothing(
    edge: Vodedge, request_bytes: bytes
) -> None:
    """aiohttp's own 400s come out as the edge's: its Server, a fixed reason, a code."""
    answer = edge.raw(request_bytes)
    status, headers, _ = _parse(answer)
    assert 400 <= status < 500, answer[:300]
    assert headers["server"].startswith("vodedge/"), headers
    assert "aiohttp" not in answer.decode("latin-1").lower()
    assert MARKER not in answer, answer[:500]
    assert "x-vodedge-error" in headers, headers


def test_the_unknown_host_403_does_not_echo_the_host(edge: Vodedge) -> None:
    """What a client wrote is not reflected into an error page."""
    status, headers, body = _parse(_raw_get(edge, b"/x.mp4", b"" + MARKER + b".example"))
    assert status == 403 and headers["x-vodedge-error"] == "unknown_host"
    assert MARKER not in body


def test_a_purge_finds_the_object_under_any_spelling_of_its_path(
    edge: Vodedge, origins: Origins
) -> None:
    """`vodedge purge` keys a URL as requests are keyed: another encoding is the same
    object."""
    path = "/attacks/purged-spelling.bin"
    origins.fault.behave(path, size=3000)
    edge.prime("faulty.test", path)
    proc = edge.purge("http://faulty.test/attacks/%70urged-spelling.bin")
    assert proc.returncode == 0 and "1 object(s)" in proc.stdout, proc.stdout + proc.stderr
    assert edge.get("faulty.test", path).header("X-Cache") == "MISS"


def test_a_repeated_query_parameter_in_another_order_is_another_object(
    edge: Vodedge, origins: Origins
) -> None:
    """The origin is sent the parameters in request order and may read the first or the
    last of a repeated one: v=1&v=2 and v=2&v=1 must not share a key."""
    path = "/attacks/repeated-args.bin"
    origins.fault.behave(path, size=2000)
    for query in ("v=1&v=2", "v=2&v=1"):
        edge.prime("faulty.test", f"{path}?{query}")
    assert [r["query"] for r in origins.fault.requests(path)] == ["v=1&v=2", "v=2&v=1"]
    edge.prime("faulty.test", f"{path}?v=1&v=2")  # still the first: a HIT, no new fetch
    assert len(origins.fault.requests(path)) == 2
