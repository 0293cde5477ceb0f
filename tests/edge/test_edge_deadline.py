"""An origin that drips (issue 12, class 10): bytes keep coming, too slowly to trip the
read timeout, and the origin_deadline setting still ends the fetch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, running, wait_until
from edge_media import SAMPLES

pytestmark = pytest.mark.xdist_group("edge_deadline")

DEADLINE = 3.0


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Default read timeout (30 s), a 3 s deadline per origin response."""
    work = tmp_path_factory.mktemp("vodedge-deadline")
    server = Vodedge(work, domains(origins), limits={"--origin-deadline": f"{DEADLINE}s"})
    with running(server):
        yield server


def test_a_dripping_origin_does_not_hold_a_client_forever(edge: Vodedge, origins: Origins) -> None:
    """One byte every half second: the client's body is cut (never complete-looking) soon
    after the deadline, and nothing is stored."""
    path = origins.media.add(SAMPLES / "talk.mp4", "deadline/drip.mp4")
    size = origins.media.file(path).stat().st_size
    origins.fault.behave(path, chunk=1, drip_after=0, interval=0.5)
    reply = edge.get("faulty.test", path, timeout=30)
    print(f"[deadline] status={reply.status} elapsed_s={reply.elapsed:.2f} bytes={len(reply.body)}")
    assert reply.elapsed < DEADLINE + 3, reply.elapsed
    assert reply.status == 504 or not reply.complete, reply
    assert len(reply.body) < size
    wait_until(lambda: edge.tmp_files() == [], 5, "the failed fill's file to go")
    origins.fault.behave(path)
    assert edge.get("faulty.test", path, method="HEAD").header("X-Cache") == "MISS"


def test_headers_that_never_come_in_time(edge: Vodedge, origins: Origins) -> None:
    """An origin that waits past the deadline before answering: 504 at the deadline."""
    path = origins.media.add(SAMPLES / "talk.mp4", "deadline/late.mp4")
    origins.fault.behave(path, headers_delay=DEADLINE + 5)
    reply = edge.get("faulty.test", path, timeout=30)
    assert reply.status == 504 and reply.elapsed < DEADLINE + 3, (reply, reply.elapsed)
    origins.fault.behave(path)
