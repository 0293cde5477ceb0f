"""The ranged test origin does what tests of the edge rely on: RFC 9110 ranges, an exact
log of what it sent, and each fault exactly when and as asked."""

from __future__ import annotations

import email.utils
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPConnection, IncompleteRead
from pathlib import Path

import pytest

from origins.ranged_origin import RangedOrigin, parse_range, parse_ranges

SIZE = 300_000
BIG = 1 << 30  # a sparse file: no disk, but offsets past 4 GiB-safe arithmetic still matter
MARK = b"the last bytes of the big object"


@dataclass
class Got:
    """A response as a client saw it; `outcome` says how its body ended."""

    status: int
    headers: dict[str, str]
    body: bytes
    outcome: str  # "complete", "short" (FIN before the announced end) or "reset"


def get(
    origin: RangedOrigin, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
) -> Got:
    """One request on a fresh connection."""
    connection = HTTPConnection("127.0.0.1", origin.port, timeout=30)
    try:
        connection.request(method, path, headers=dict(headers or {}))
        response = connection.getresponse()
        head = {name.lower(): value for name, value in response.getheaders()}
        body, outcome = b"", "complete"
        try:
            while chunk := response.read(65536):
                body += chunk
        except IncompleteRead as exc:
            body, outcome = body + exc.partial, "short"
        except ConnectionResetError:
            outcome = "reset"
        # read(amt) returns b"" at an early FIN rather than raising IncompleteRead.
        if outcome == "complete" and method == "GET" and "content-length" in head:
            outcome = "short" if len(body) < int(head["content-length"]) else outcome
        return Got(response.status, head, body, outcome)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with a 300 kB object, its next version, and a sparse 1 GiB object."""
    root = tmp_path_factory.mktemp("ranged-root")
    (root / "dir").mkdir()
    (root / "dir" / "a.bin").write_bytes(random.Random(1).randbytes(SIZE))
    (root / "v2.bin").write_bytes(random.Random(2).randbytes(SIZE + 1000))
    with (root / "big.bin").open("wb") as big:
        big.truncate(BIG)
        big.seek(BIG - len(MARK))
        big.write(MARK)
    return root


@pytest.fixture(scope="module")
def origin(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangedOrigin]:
    """One origin process for the module; every test starts from a clean state."""
    with RangedOrigin(files, tmp_path_factory.mktemp("ranged-work")) as server:
        yield server


@pytest.fixture
def data(origin: RangedOrigin, files: Path) -> bytes:
    """The 300 kB object's bytes, with the origin's faults and log forgotten."""
    origin.reset()
    return (files / "dir" / "a.bin").read_bytes()


A = "/dir/a.bin"


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, SIZE)),
        ("bytes=-100", (SIZE - 100, SIZE)),
        ("bytes=-999999999", (0, SIZE)),
        ("bytes=5-999999999", (5, SIZE)),
        (f"bytes={SIZE - 1}-{SIZE - 1}", (SIZE - 1, SIZE)),
        ("bytes=0-0", (0, 1)),
        (f"bytes={SIZE}-", "unsatisfiable"),
        (f"bytes={SIZE + 5}-{SIZE + 9}", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=5-2", None),
        ("items=0-1", None),
        ("bytes=x-1", None),
        ("bytes=-", None),
    ],
)
def test_ranges_as_rfc_9110_says(
    origin: RangedOrigin, data: bytes, header: str, want: tuple[int, int] | str | None
) -> None:
    """206 for a satisfiable range, 416 with `*/size` for none, the whole object when the
    header is invalid; the log says exactly what was sent."""
    assert parse_range(header, SIZE) == want
    got = get(origin, A, {"Range": header})
    (served,) = origin.log(A)
    assert served.range == header
    if want == "unsatisfiable":
        assert got.status == 416 and got.headers["content-range"] == f"bytes */{SIZE}"
        assert served.status == 416 and served.sent == 0
        return
    start, end = want if isinstance(want, tuple) else (0, SIZE)
    assert got.outcome == "complete" and got.body == data[start:end]
    assert got.status == (206 if want else 200)
    if want:
        assert got.headers["content-range"] == f"bytes {start}-{end - 1}/{SIZE}"
    else:
        assert "content-range" not in got.headers
    assert int(got.headers["content-length"]) == end - start
    assert (served.status, served.start, served.end, served.sent) == (
        got.status,
        start,
        end,
        end - start,
    )
    assert served.completed and served.error is None and served.faults == []


def multipart(got: Got) -> list[tuple[str, bytes]]:
    """The (Content-Range, data) of each part of a multipart/byteranges body."""
    kind, _, boundary = got.headers["content-type"].partition("; boundary=")
    assert kind == "multipart/byteranges" and boundary, got.headers
    assert got.body.endswith(f"\r\n--{boundary}--\r\n".encode())
    out = []
    for chunk in got.body.split(f"\r\n--{boundary}".encode())[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        assert fields["Content-Type"] == "application/octet-stream"
        out.append((fields["Content-Range"], data))
    return out


def test_several_ranges_as_nginx_answers_them(origin: RangedOrigin, data: bytes) -> None:
    """Several ranges: multipart/byteranges with the satisfiable ones in the order asked
    (overlaps kept), its exact length; one satisfiable: a plain 206; none: 416."""
    header = f"bytes=200-299,0-99,50-149,{SIZE}-,{SIZE - 10}-"
    assert parse_ranges(header, SIZE) == [(200, 300), (0, 100), (50, 150), (SIZE - 10, SIZE)]
    got = get(origin, A, {"Range": header})
    assert got.status == 206 and got.outcome == "complete"
    assert int(got.headers["content-length"]) == len(got.body)
    assert multipart(got) == [
        (f"bytes 200-299/{SIZE}", data[200:300]),
        (f"bytes 0-99/{SIZE}", data[:100]),
        (f"bytes 50-149/{SIZE}", data[50:150]),
        (f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}", data[-10:]),
    ]
    (served,) = origin.log(A)
    assert served.parts == [[200, 300, 100], [0, 100, 100], [50, 150, 100], [SIZE - 10, SIZE, 10]]
    assert served.sent == len(got.body) and served.completed
    assert origin.ranges(A) == [(200, 300), (0, 100), (50, 150), (SIZE - 10, SIZE)]
    assert origin.covered(A) == [(0, 150), (200, 300), (SIZE - 10, SIZE)]
    one = get(origin, A, {"Range": f"bytes=5-9,{SIZE}-"})
    assert one.status == 206 and one.headers["content-range"] == f"bytes 5-9/{SIZE}"
    assert one.body == data[5:10]
    assert get(origin, A, {"Range": f"bytes={SIZE}-,{SIZE + 1}-"}).status == 416
    assert parse_ranges("bytes=0-1,x-2", SIZE) is None


def test_faults_on_several_ranges(origin: RangedOrigin, data: bytes) -> None:
    """multi_whole answers several ranges (only) with the whole object; content_range
    shifts every part; a reset mid-body leaves `covered` with what each part sent."""
    origin.faults(A, {"kind": "multi_whole"})
    assert get(origin, A, {"Range": "bytes=0-9,20-29"}).body == data
    assert get(origin, A, {"Range": "bytes=0-9"}).body == data[:10]
    origin.faults(A, {"kind": "content_range", "start_delta": 1, "end_delta": 1})
    shifted = multipart(get(origin, A, {"Range": "bytes=0-9,20-29"}))
    assert shifted == [(f"bytes 1-10/{SIZE}", data[1:11]), (f"bytes 21-30/{SIZE}", data[21:31])]
    origin.reset()
    first = len(f"\r\n--b\r\nContent-Type: x\r\nContent-Range: bytes 0-999/{SIZE}\r\n\r\n")
    origin.faults(A, {"kind": "reset", "after": 2 * first + 1000 + 500})
    cut = get(origin, A, {"Range": "bytes=0-999,5000-9999"})
    assert cut.outcome == "reset"
    (served,) = origin.log(A)
    assert served.parts[0] == [0, 1000, 1000] and 0 < served.parts[1][2] < 5000
    assert origin.covered(A) == [(0, 1000), (5000, 5000 + served.parts[1][2])]


def test_validators_like_nginx_and_conditionals(
    origin: RangedOrigin, files: Path, data: bytes
) -> None:
    """ETag "mtime-size" in hex and Last-Modified from the file; 304 on a match; If-Range
    with the current validator gives the range, with another the whole object."""
    stat = (files / "dir" / "a.bin").stat()
    etag = f'"{int(stat.st_mtime):x}-{SIZE:x}"'
    modified = email.utils.formatdate(int(stat.st_mtime), usegmt=True)
    got = get(origin, A)
    assert (got.headers["etag"], got.headers["last-modified"]) == (etag, modified)
    assert got.headers["accept-ranges"] == "bytes"
    assert get(origin, A, {"If-None-Match": etag}).status == 304
    assert get(origin, A, {"If-Modified-Since": modified}).status == 304
    assert get(origin, A, {"If-None-Match": '"other"'}).status == 200
    for validator in (etag, modified):
        same = get(origin, A, {"Range": "bytes=10-19", "If-Range": validator})
        assert same.status == 206 and same.body == data[10:20]
    other = get(origin, A, {"Range": "bytes=10-19", "If-Range": '"other"'})
    assert other.status == 200 and other.body == data
    assert [s.status for s in origin.log(A)] == [200, 304, 304, 200, 206, 206, 200]


def test_head_and_missing(origin: RangedOrigin, data: bytes) -> None:
    """HEAD announces the length and sends nothing; an absent file or one outside the root
    is a 404."""
    got = get(origin, A, {"Range": "bytes=0-9"}, method="HEAD")
    assert got.status == 206 and got.body == b"" and got.headers["content-length"] == "10"
    assert origin.log(A)[0].sent == 0
    assert get(origin, "/dir/none.bin").status == 404
    assert get(origin, "/dir/../../etc/passwd").status == 404


def test_a_range_at_the_end_of_a_1_gib_object(origin: RangedOrigin) -> None:
    """The object is streamed from disk: a range near its end is exact and cheap."""
    origin.reset()
    got = get(origin, "/big.bin", {"Range": f"bytes={BIG - 1000}-"})
    assert (
        got.status == 206 and got.headers["content-range"] == f"bytes {BIG - 1000}-{BIG - 1}/{BIG}"
    )
    assert got.body == bytes(1000 - len(MARK)) + MARK
    assert origin.ranges("/big.bin") == [(BIG - 1000, BIG)]
    assert origin.proc is not None
    status = Path(f"/proc/{origin.proc.pid}/status").read_text().splitlines()
    rss_kb = int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
    assert rss_kb < 200_000, f"origin RSS {rss_kb} kB"


def test_reset_mid_range(origin: RangedOrigin, data: bytes) -> None:
    """`reset` sends `after` bytes of the range, then a TCP RST; the log says so."""
    origin.faults(A, {"kind": "reset", "after": 70_000})
    got = get(origin, A, {"Range": "bytes=1000-199999"})
    assert got.status == 206 and got.outcome == "reset"
    assert data[1000:].startswith(got.body) and len(got.body) <= 70_000
    (served,) = origin.log(A)
    assert (served.sent, served.completed, served.error) == (70_000, False, "reset")
    assert served.faults == ["reset"] and (served.start, served.end) == (1000, 200_000)


def test_covered_merges_what_was_sent(origin: RangedOrigin, data: bytes) -> None:
    """`covered` is the union of the bytes sent: overlaps and neighbours merge, a cut
    response counts only what it sent, HEAD and 416 count nothing."""
    origin.faults(A, {"kind": "reset", "after": 500, "skip": 3, "count": 1})
    for header in ("bytes=100-199", "bytes=150-299", "bytes=300-399", "bytes=1000-9999"):
        get(origin, A, {"Range": header})
    get(origin, A, {"Range": "bytes=5000-5999"}, method="HEAD")
    get(origin, A, {"Range": f"bytes={SIZE}-"})
    assert origin.covered(A) == [(100, 400), (1000, 1500)]


def test_short_mid_range(origin: RangedOrigin, data: bytes) -> None:
    """`short` sends `after` bytes, then closes cleanly before the announced end."""
    origin.faults(A, {"kind": "short", "after": 5000})
    got = get(origin, A, {"Range": "bytes=100-"})
    assert got.status == 206 and got.outcome == "short" and got.body == data[100:5100]
    (served,) = origin.log(A)
    assert (served.sent, served.completed, served.error) == (5000, False, "short")


@pytest.mark.parametrize(
    ("lie", "announced", "sent"),
    [
        ({"start_delta": 10}, "bytes 1010-1999/300000", (1010, 2000)),
        ({"end_delta": -500}, "bytes 1000-1499/300000", (1000, 1500)),
        ({"end_delta": 7}, "bytes 1000-2006/300000", (1000, 2007)),
        ({"total_delta": 1}, "bytes 1000-1999/300001", (1000, 2000)),
    ],
)
def test_wrong_content_range(
    origin: RangedOrigin,
    data: bytes,
    lie: dict[str, int],
    announced: str,
    sent: tuple[int, int],
) -> None:
    """`content_range` answers another range than asked (or a wrong total); the bytes are
    those the header announces, so only a check of the header against the request sees it."""
    origin.faults(A, {"kind": "content_range", **lie})
    got = get(origin, A, {"Range": "bytes=1000-1999"})
    assert got.status == 206 and got.headers["content-range"] == announced
    assert got.body == data[sent[0] : sent[1]]
    assert origin.ranges(A) == [sent]


def test_change_between_two_ranges(origin: RangedOrigin, files: Path, data: bytes) -> None:
    """`change` makes the object a new version from the counted request on: new ETag and
    Last-Modified, the new file's bytes, for every later request too."""
    origin.faults(A, {"kind": "change", "skip": 1, "source": "v2.bin"})
    new = (files / "v2.bin").read_bytes()
    first = get(origin, A, {"Range": "bytes=0-99"})
    second = get(origin, A, {"Range": "bytes=100-199"})
    whole = get(origin, A)
    assert first.body == data[:100] and second.body == new[100:200] and whole.body == new
    assert second.headers["content-range"] == f"bytes 100-199/{len(new)}"
    assert first.headers["etag"] != second.headers["etag"] == whole.headers["etag"]
    assert first.headers["last-modified"] != second.headers["last-modified"]
    assert [s.version for s in origin.log(A)] == [0, 1, 1]
    # The old validator no longer matches: If-Range gives the whole new object.
    stale = get(origin, A, {"Range": "bytes=0-9", "If-Range": first.headers["etag"]})
    assert stale.status == 200 and stale.body == new


def test_change_without_new_bytes(origin: RangedOrigin, data: bytes) -> None:
    """Without `source` only the validators change."""
    origin.faults(A, {"kind": "change"})
    got = get(origin, A, {"Range": "bytes=0-99"})
    assert got.body == data[:100] and got.headers["etag"].endswith('-v1"')


def test_200_instead_of_206(origin: RangedOrigin, data: bytes) -> None:
    """`full` answers a ranged request with the whole object; whole requests are not
    counted, so they stay healthy and do not use up `count`."""
    origin.faults(A, {"kind": "full", "count": 1})
    assert get(origin, A).status == 200
    got = get(origin, A, {"Range": "bytes=10-19"})
    assert got.status == 200 and got.body == data and "content-range" not in got.headers
    after = get(origin, A, {"Range": "bytes=10-19"})
    assert after.status == 206 and after.body == data[10:20]
    assert [s.faults for s in origin.log(A)] == [[], ["full"], []]


def test_416_for_a_satisfiable_range(origin: RangedOrigin, data: bytes) -> None:
    """`unsatisfiable` answers 416 whatever was asked."""
    origin.faults(A, {"kind": "unsatisfiable"})
    got = get(origin, A, {"Range": "bytes=0-9"})
    assert got.status == 416 and got.headers["content-range"] == f"bytes */{SIZE}"


def test_skip_and_count_pick_the_requests(origin: RangedOrigin, data: bytes) -> None:
    """skip 1, count 2: the first counted request is healthy, the next two misbehave, the
    rest are healthy again; `requests: whole` counts only requests without Range."""
    origin.faults(
        A,
        {"kind": "reset", "after": 10, "skip": 1, "count": 2},
        {"kind": "short", "after": 20, "requests": "whole"},
    )
    outcomes = [get(origin, A, {"Range": "bytes=0-99999"}).outcome for _ in range(4)]
    assert outcomes == ["complete", "reset", "reset", "complete"]
    whole = get(origin, A)
    assert whole.outcome == "short" and whole.body == data[:20]
    assert [s.sent for s in origin.log(A)] == [100_000, 10, 10, 100_000, 20]


def test_slow_and_delay(origin: RangedOrigin, data: bytes) -> None:
    """`slow` paces the body at `rate` bytes/s and `delay` holds the status line: both only
    ever make a response later (lower bounds, which load cannot break)."""
    origin.faults(A, {"kind": "slow", "rate": 100_000}, {"kind": "delay", "seconds": 0.3})
    started = time.monotonic()
    got = get(origin, A, {"Range": "bytes=0-39999"})
    elapsed = time.monotonic() - started
    assert got.body == data[:40_000] and elapsed >= 0.3 + 0.4 * 0.9
    (served,) = origin.log(A)
    assert served.faults == ["slow", "delay"] and served.ended - served.began >= 0.65


def test_log_of_every_path_and_connection(origin: RangedOrigin, data: bytes) -> None:
    """The log without a path holds every path; one keep-alive connection is one peer."""
    connection = HTTPConnection("127.0.0.1", origin.port, timeout=10)
    try:
        for header in ("bytes=0-9", "bytes=10-19"):
            connection.request("GET", A, headers={"Range": header})
            assert connection.getresponse().read() == data[int(header[6:].split("-")[0]) :][:10]
    finally:
        connection.close()
    get(origin, "/v2.bin", {"Range": "bytes=0-0"})
    log = origin.log()
    assert [(s.path, s.start, s.end) for s in log] == [(A, 0, 10), (A, 10, 20), ("/v2.bin", 0, 1)]
    assert log[0].peer == log[1].peer != log[2].peer
    assert origin.sent() == 21 and origin.sent(A) == 20


@pytest.mark.parametrize(
    "faults",
    [[{"kind": "nope"}], [{"kind": "reset", "when": 1}], [{"kind": "slow"}], "x"],
)
def test_bad_fault_specs_are_refused(origin: RangedOrigin, faults: object) -> None:
    """A fault the origin cannot apply is a 400, not a silently healthy path."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        origin.url + "/_control/faults",
        data=json.dumps({"path": A, "faults": faults}).encode(),
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400


def test_stops_on_sigterm(files: Path, tmp_path: Path) -> None:
    """The process exits when stopped and leaves its log."""
    server = RangedOrigin(files, tmp_path)
    server.start()
    assert server.proc is not None and server.proc.poll() is None
    server.stop()
    assert server.proc.returncode == 0
    assert os.path.exists(tmp_path / "ranged.log")
