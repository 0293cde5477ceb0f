"""The one body writer: every kind of body (plan, growing file, FLV stream) gets the same
send timeout, pacing and counting, and one URL is one body whichever path made it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from edge_config import RATE, Origins, domain, domains, function
from edge_harness import RawClient, Vodedge, running, stalled_reader, wait_until
from edge_media import SAMPLES

from media_matrix import media
from origins.faulty import payload

pytestmark = pytest.mark.xdist_group("edge_delivery")

SEND_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker with a 2 s send timeout, and a paced domain on the fault origin."""
    paced = domain(
        "paced-faulty.test", origins.fault.url, function("limit_rate", ali_limit_rate="256k")
    )
    server = Vodedge(
        tmp_path_factory.mktemp("vodedge-delivery"),
        domains(origins, extra=paced),
        send_timeout=SEND_TIMEOUT,
    )
    with running(server):
        yield server


def _saved(edge: Vodedge) -> float:
    """vodedge_audio_saved_bytes_total for video.test, once the metrics stop moving."""

    def read() -> float:
        for line in edge.metrics().splitlines():
            if line.startswith('vodedge_audio_saved_bytes_total{domain="video.test"}'):
                return float(line.split()[-1])
        return 0.0

    last = read()
    for _ in range(50):
        time.sleep(0.1)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError("the metrics never settled")


# --- 7. one URL, one body ---------------------------------------------------------------


@pytest.mark.parametrize("query", ["ali_audio_only=1", "ali_audio_only=1&start=100000"])
def test_an_flv_streamed_on_a_miss_is_the_cached_body(
    edge: Vodedge, origins: Origins, query: str
) -> None:
    """The chunked body of a miss and the Content-Length body once cached are the same
    bytes with the same validators, so If-Range resumes one with the other exactly."""
    source = media("flv_h264_aac_10s_kfindex")
    path = origins.media.add(source, f"delivery/one-body-{len(query)}.flv")
    origins.fault.behave(path, chunk=16 << 10, drip_after=0, interval=0.01)
    url = f"{path}?{query}"
    streamed = edge.get("faulty.test", url)
    assert streamed.status == 200 and streamed.complete, streamed
    assert streamed.header("Transfer-Encoding") == "chunked", streamed
    edge.prime("faulty.test", path)
    cached = edge.get("faulty.test", url)
    assert cached.header("Content-Length") == str(len(cached.body))
    assert cached.body == streamed.body, "the streamed and the cached body differ"
    assert streamed.header("ETag") and cached.header("ETag") == streamed.header("ETag")
    assert cached.header("Last-Modified") == streamed.header("Last-Modified")
    half = len(streamed.body) // 2
    for validator in (streamed.header("ETag"), streamed.header("Last-Modified")):
        assert validator is not None
        rest = edge.get("faulty.test", url, {"Range": f"bytes={half}-", "If-Range": validator})
        assert rest.status == 206, rest
        assert streamed.body[:half] + rest.body == cached.body


# --- 8. stalled readers and pacing on streamed bodies ---------------------------------------


def test_a_stalled_reader_of_a_chunked_body_is_dropped(edge: Vodedge, origins: Origins) -> None:
    """An object of unknown length streamed as it fills: a reader that takes nothing for
    longer than the send timeout loses its connection before the end."""
    path = "/delivery/stalled-chunked.bin"
    size = 48 << 20
    origins.fault.behave(path, size=size, chunked=True, chunk=1 << 20, drip_after=0, interval=0.02)
    received, closed = stalled_reader(edge, "faulty.test", path)
    assert closed, f"still connected after {received} bytes"
    assert received < size, "the stalled reader got the whole object"


def test_limit_rate_paces_a_chunked_body(edge: Vodedge, origins: Origins) -> None:
    """limit_rate holds a body streamed as it fills (no Content-Length) to its rate too."""
    path = "/delivery/paced-chunked.bin"
    size = 1_200_000
    origins.fault.behave(path, size=size, chunked=True)
    started = time.monotonic()
    reply = edge.get("paced-faulty.test", path, timeout=30)
    elapsed = time.monotonic() - started
    assert reply.complete and reply.body == payload(path, size)
    assert reply.header("Content-Length") is None
    assert elapsed >= (size - RATE // 4) / RATE * 0.9, f"{size} bytes in {elapsed:.2f} s"


# --- 9. counting ---------------------------------------------------------------------------


def test_the_saving_is_counted_on_the_bytes_sent(edge: Vodedge, origins: Origins) -> None:
    """Audio extraction saves source bytes per byte sent: all of them for a whole body, a
    share for a 206, nothing for HEAD, 304 or 416."""
    talk = origins.media.add(SAMPLES / "talk.mp4", "delivery/counted.mp4")
    size = origins.media.file(talk).stat().st_size
    url = talk + "?ali_audio_only=1"
    edge.prime("video.test", talk)
    whole = edge.get("video.test", url)
    assert whole.status == 200
    out = len(whole.body)
    etag = whole.header("ETag")
    assert etag is not None
    before = _saved(edge)
    for reply, status in [
        (edge.get("video.test", url, method="HEAD"), 200),
        (edge.get("video.test", url, {"If-None-Match": etag}), 304),
        (edge.get("video.test", url, {"Range": f"bytes={out + 10}-"}), 416),
    ]:
        assert reply.status == status, reply
    assert _saved(edge) == before, "HEAD, 304 or 416 counted a saving"
    part = edge.get("video.test", url, {"Range": "bytes=0-9999"})
    assert part.status == 206 and len(part.body) == 10_000
    share = 10_000 * (size - out) / out
    assert abs(_saved(edge) - before - share) <= 1
    edge.get("video.test", url)
    assert abs(_saved(edge) - before - share - (size - out)) <= 2


def test_a_client_that_goes_away_is_logged_499_with_what_it_got(
    edge: Vodedge, origins: Origins
) -> None:
    """A paced response the client hangs up on: 499 and the bytes that went out, not the
    status and length it would have had."""
    path = "/delivery/cancelled.bin"
    size = 4_000_000
    origins.fault.behave(path, size=size)
    edge.prime("paced-faulty.test", path)
    client = RawClient(edge.port, "paced-faulty.test", path)
    headers = client.read_head()
    assert client.status == 200 and headers["content-length"] == str(size)
    got = len(client.read_body(100_000))
    client.close()

    def logged() -> dict[str, object] | None:
        lines = [line for line in edge.access_lines() if line["path"] == path]
        return lines[-1] if lines and lines[-1]["method"] == "GET" else None

    wait_until(lambda: logged() is not None, 15, "the cancelled request's log line")
    line = logged()
    assert line is not None and line["status"] == 499, line
    sent = line["bytes"]
    assert isinstance(sent, int) and got <= sent < size, (got, line)
    assert line.get("aborted") == "client_gone", line
