"""Ranged reads against origins whose validators vary (issue 12, class 4), and shared
tail reads (class 10).

An origin behind a balancer may send another ETag with every response for the same
bytes. The tail moov of a cold object is read with a ranged request beside the fill;
that read passes when length and Last-Modified agree (If-Range semantics), and one
that does not agree waits for the fill instead of discarding it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, concurrent_gets, running
from edge_media import big_tail_moov, cli_output

pytestmark = pytest.mark.xdist_group("edge_origin_versions")

# The object drips in over a few seconds: tail reads happen while it fills.
DRIP = {"chunk": 128 << 10, "drip_after": 0, "interval": 0.05}


@pytest.fixture(scope="module")
def edge2(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers."""
    work = tmp_path_factory.mktemp("vodedge-versions")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        yield server


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The several-MB tail-moov MP4 and its audio-only rendition from the CLI."""
    source = big_tail_moov()
    result = cli_output("extract", source, tmp_path_factory.mktemp("big"))
    assert result.output is not None, result.error
    return source, result.output


def _fills(origins: Origins, path: str) -> list[dict[str, object]]:
    return [r for r in origins.fault.requests(path) if r["range"] is None]


def _ranged(origins: Origins, path: str) -> list[dict[str, object]]:
    return [r for r in origins.fault.requests(path) if r["range"] is not None]


def test_an_etag_per_response_passes_on_length_and_last_modified(
    edge2: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """Every response a new ETag, same bytes and Last-Modified: ten audio-only requests on
    a cold tail-moov object all get the exact output; the fill is never started over."""
    source, want = big
    path = origins.media.add(source, "versions/flip.mp4")
    origins.fault.behave(path, etag="flip", **DRIP)
    replies = concurrent_gets(edge2.port, [("faulty.test", path + "?ali_audio_only=1", {})] * 10)
    statuses = [r.status for r in replies]
    assert statuses == [200] * 10, [(r.status, r.body[:100]) for r in replies]
    assert all(r.body == want for r in replies)
    assert len(_fills(origins, path)) == 1, _fills(origins, path)
    assert _ranged(origins, path), "the tail was not read with a ranged request"


def test_a_changed_object_waits_for_the_fill_instead_of_discarding_it(
    edge2: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """Nothing tells the versions apart (a new ETag, no Last-Modified): the ranged read is
    refused, the request waits for the fill, and the fill is not thrown away."""
    source, want = big
    path = origins.media.add(source, "versions/changed.mp4")
    origins.fault.behave(path, etag="flip", last_modified=None, **DRIP)
    replies = concurrent_gets(edge2.port, [("faulty.test", path + "?ali_audio_only=1", {})] * 4)
    assert [r.status for r in replies] == [200] * 4, [(r.status, r.body[:100]) for r in replies]
    assert all(r.body == want for r in replies)
    assert len(_fills(origins, path)) == 1, _fills(origins, path)


def test_cold_audio_requests_share_the_ranged_tail_read(
    edge2: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """30 cold audio-only requests for one tail-moov object over two workers: one ranged
    origin request for the tail, one fill, nothing left beside the stored object."""
    source, want = big
    path = origins.media.add(source, "versions/shared-tail.mp4")
    origins.fault.behave(path, **DRIP)
    replies = concurrent_gets(
        edge2.port, [("faulty.test", path + "?ali_audio_only=1", {})] * 30, timeout=60
    )
    assert all(r.status == 200 and r.body == want for r in replies)
    ranged = _ranged(origins, path)
    print(f"[shared tail] ranged_requests={len(ranged)} fills={len(_fills(origins, path))}")
    assert len(ranged) == 1, ranged
    assert len(_fills(origins, path)) == 1
    edge2.prime("faulty.test", path)
    assert edge2.tmp_files() == [] and edge2.lock_files() == []
