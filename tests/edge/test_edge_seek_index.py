"""MP4 and FLV seeks served from a memoised index: any start gives the media layer's clip,
a new object version gets a new index, and audio clips read one stored copy of the audio."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from edge_config import Origins, domains
from edge_harness import RawClient, Vodedge, concurrent_gets, running, wait_until
from edge_media import SAMPLES

from media_matrix import media
from vodedge.media.flv.plan import flv_clip_plan
from vodedge.media.mp4.seek import clip_plan
from vodedge.media.reading import run_bytes
from vodedge.media.seeking import parse_seconds

pytestmark = pytest.mark.xdist_group("edge_seek_index")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker, so that a clip asked twice is asked of the same process."""
    work = tmp_path_factory.mktemp("vodedge-seek-index")
    with running(Vodedge(work, domains(origins), workers=1)) as server:
        yield server


def expected(source: bytes, start: str | None, end: str | None, audio_only: bool) -> bytes:
    """The media layer's clip of `source` for these query values."""
    plan = run_bytes(
        clip_plan(
            len(source),
            start=None if start is None else parse_seconds(start, "start"),
            end=None if end is None else parse_seconds(end, "end"),
            audio_only=audio_only,
        ),
        source,
    )
    return plan.render(source)


def test_random_starts_give_the_media_layers_clips(edge: Vodedge, origins: Origins) -> None:
    """Clips at random starts, some asked at once, each equal to a cold plan of them."""
    path = origins.media.add(SAMPLES / "talk.mp4", "seek-index/talk.mp4")
    source = (SAMPLES / "talk.mp4").read_bytes()
    edge.prime("video.test", path)
    rng = random.Random(15)
    asks: list[tuple[str, str | None, bool]] = []
    for _ in range(6):
        start = f"{rng.uniform(0, 7.5):.3f}"
        asks.append((start, f"{float(start) + 0.7:.3f}", False))
        asks.append((start, None, True))
    queries = [
        f"{path}?{'ali_audio_only=1&' if audio else ''}start={start}"
        + ("" if end is None else f"&end={end}")
        for start, end, audio in asks
    ]
    replies = concurrent_gets(edge.port, [("video.test", q, {}) for q in queries])
    for (start, end, audio), reply in zip(asks, replies, strict=True):
        assert reply.status == 200, (start, end, audio, reply.body[:200])
        assert reply.body == expected(source, start, end, audio), (start, end, audio)


def test_a_client_leaving_does_not_fail_the_shared_index_build(
    edge: Vodedge, origins: Origins
) -> None:
    """Two clients ask cold clips of one cached object (a 632 kB moov, indexed in a
    worker thread); the first hangs up as soon as it has asked. The second gets the
    media layer's clip, and so does every later one (the index was built and kept)."""
    source_path = media("mp4_long_30min")
    source = source_path.read_bytes()
    for attempt in range(3):  # three objects: each first ask is a cold build
        path = origins.media.add(source_path, f"seek-index/leaving-{attempt}.mp4")
        edge.prime("video.test", path)
        start = f"{100 + 333.3 * attempt:.1f}"
        query = f"{path}?start={start}&end={float(start) + 10:.1f}"
        leaver = RawClient(edge.port, "video.test", query)
        leaver.close()
        stayer = RawClient(edge.port, "video.test", query)
        stayer.read_head()
        body, complete = stayer.read_to_end()
        stayer.close()
        want = expected(source, start, f"{float(start) + 10:.1f}", False)
        assert stayer.status == 200 and complete and body == want, attempt
        later = edge.get("video.test", f"{path}?ali_audio_only=1&start={start}")
        assert later.status == 200 and later.body == expected(source, start, None, True)


def test_a_new_version_gets_a_new_index(edge: Vodedge, origins: Origins) -> None:
    """max-age=1: the origin's object changes; its clips change with it."""
    path = origins.media.add(SAMPLES / "talk.mp4", "seek-index/changing.mp4")
    origins.fault.behave(path, cache_control="max-age=1")
    url = path + "?ali_audio_only=1&start=2.5"
    old, new = (SAMPLES / "talk.mp4").read_bytes(), (SAMPLES / "tail-moov.mp4").read_bytes()
    assert edge.get("faulty.test", url).body == expected(old, "2.5", None, True)
    origins.media.write(path.lstrip("/"), new)
    edge.wait_expired("faulty.test", path)
    for _ in range(3):
        reply = edge.get("faulty.test", url)
        assert reply.status == 200 and reply.body == expected(new, "2.5", None, True)


def test_audio_clips_read_one_stored_copy_of_the_audio(edge: Vodedge, origins: Origins) -> None:
    """A drag along the progress bar (a new start each time) stores the audio samples'
    bytes once per object version, never a file per clip; the clips after it read from
    that copy and are byte for byte the media layer's, Range included."""
    path = origins.media.add(SAMPLES / "talk.mp4", "seek-index/rendition.mp4")
    source = (SAMPLES / "talk.mp4").read_bytes()
    edge.prime("video.test", path)
    before = len(edge.object_files())
    first = edge.get("video.test", f"{path}?ali_audio_only=1&start=0.5")
    assert first.body == expected(source, "0.5", None, True)
    wait_until(lambda: len(edge.object_files()) == before + 1, 5, "the audio samples stored")
    for start in ("1.25", "2.75", "4", "1.25", "0.5"):
        reply = edge.get("video.test", f"{path}?ali_audio_only=1&start={start}")
        assert reply.status == 200 and reply.body == expected(source, start, None, True)
    clip = expected(source, "2.75", "6.5", True)
    reply = edge.get("video.test", f"{path}?ali_audio_only=1&start=2.75&end=6.5")
    assert reply.body == clip
    ranged = edge.get(
        "video.test", f"{path}?ali_audio_only=1&start=2.75&end=6.5", {"Range": "bytes=700-"}
    )
    assert ranged.status == 206 and ranged.body == clip[700:]
    time.sleep(1.0)  # a rendition would be written in the background by now
    assert len(edge.object_files()) == before + 1


def flv_expected(source: bytes, start: str | None, end: str | None, by_time: bool) -> bytes:
    """The scanning planner's audio-only FLV clip of `source` for these query values."""
    plan = run_bytes(flv_clip_plan(len(source), start, end, by_time, True), source)
    return plan.render(source)


def test_audio_only_flv_seeks_read_one_stored_copy_of_the_audio(
    edge: Vodedge, origins: Origins
) -> None:
    """The first audio-only FLV output stores the object's audio and script tags once;
    seeks after it, by time and by byte, open-ended or not, Range included, read that
    copy (a few pieces each, however many tags) and are byte for byte the scanning
    planner's; no file per seek. (Two domains, seeking by time and by byte: two
    objects, each with its stored audio.)"""
    path = origins.media.add(SAMPLES / "talk.flv", "seek-index/talk.flv")
    source = (SAMPLES / "talk.flv").read_bytes()
    edge.prime("seek.test", path)
    edge.prime("video.test", path)
    before = len(edge.object_files())
    first = edge.get("seek.test", f"{path}?ali_audio_only=1&fs=0.5")
    assert first.body == flv_expected(source, "0.5", None, True)
    first = edge.get("video.test", f"{path}?ali_audio_only=1&start=5000")
    assert first.body == flv_expected(source, "5000", None, False)
    wait_until(lambda: len(edge.object_files()) == before + 2, 5, "the audio tags stored")
    rng = random.Random(13)
    asks: list[tuple[str, str, str | None, bool]] = []
    for _ in range(6):
        start = f"{rng.uniform(0, 9.5):.3f}"
        asks.append(("seek.test", start, None, True))
        asks.append(("seek.test", start, f"{float(start) + 1.5:.3f}", True))
        offset = rng.randrange(0, len(source) - 1000)
        asks.append(("video.test", str(offset), None, False))
        asks.append(("video.test", str(offset), str(offset + rng.randrange(1, 90_000)), False))
    names = {"seek.test": ("fs", "fe"), "video.test": ("start", "end")}
    queries = [
        (host, f"{path}?ali_audio_only=1&{names[host][0]}={start}", {})
        if end is None
        else (host, f"{path}?ali_audio_only=1&{names[host][0]}={start}&{names[host][1]}={end}", {})
        for host, start, end, _ in asks
    ]
    replies = concurrent_gets(edge.port, queries)
    for (host, start, end, by_time), reply in zip(asks, replies, strict=True):
        assert reply.status == 200, (host, start, end, reply.body[:200])
        assert reply.header("X-Cache") == "HIT"
        assert reply.body == flv_expected(source, start, end, by_time), (host, start, end)
    want = flv_expected(source, "3.25", None, True)
    ranged = edge.get("seek.test", f"{path}?ali_audio_only=1&fs=3.25", {"Range": "bytes=1000-"})
    assert ranged.status == 206 and ranged.body == want[1000:]
    time.sleep(1.0)  # a rendition would be written in the background by now
    assert len(edge.object_files()) == before + 2
