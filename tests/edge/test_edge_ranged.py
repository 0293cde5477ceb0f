"""Ranged origin reads beside a running fill: with backup origins, and under limit_rate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import RATE, SPLIT, Origins, domain, domains, function
from edge_harness import Vodedge, free_port, running
from edge_media import big_tail_moov, cli_output

pytestmark = pytest.mark.xdist_group("edge_ranged")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker; a domain whose preferred origin is down, and a rate-limited one."""
    fault = origins.fault.url
    extra = domain(
        "backup.test",
        "",
        SPLIT,
        origins=f'[{{ url = "http://127.0.0.1:{free_port()}", priority = 10 }}, '
        f'{{ url = "{fault}", priority = 20 }}]',
    ) + domain("slow-faulty.test", fault, function("limit_rate", ali_limit_rate="256k"))
    work = tmp_path_factory.mktemp("vodedge-ranged")
    with running(Vodedge(work, domains(origins, extra=extra))) as server:
        yield server


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The several-MB tail-moov MP4 and its audio-only rendition from the CLI."""
    source = big_tail_moov()
    result = cli_output("extract", source, tmp_path_factory.mktemp("big"))
    assert result.output is not None, result.error
    return source, result.output


# The whole object drips in over ~0.5 s: ranged reads happen while it fills.
DRIP = {"chunk": 256 << 10, "drip_after": 0, "interval": 0.02}


def test_tail_moov_read_from_the_origin_that_serves(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """Preferred origin down, backup filling: the audio-only answer still comes, exact."""
    source, want = big
    path = origins.media.add(source, "ranged/backup.mp4")
    origins.fault.behave(path, **DRIP)
    reply = edge.get("backup.test", path + "?ali_audio_only=1", timeout=20)
    assert reply.status == 200, (reply, reply.body[:200])
    assert reply.body == want


def test_limit_rate_holds_a_range_served_from_the_origin(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """1 MB asked far ahead of a cold object's fill still comes at the domain's 256 KiB/s."""
    source, _ = big
    path = origins.media.add(source, "ranged/limited.mp4")
    data = source.read_bytes()
    origins.fault.behave(path, **DRIP)
    first, last = len(data) - 1_000_000, len(data) - 1
    reply = edge.get("slow-faulty.test", path, {"Range": f"bytes={first}-{last}"}, timeout=30)
    assert reply.status == 206 and reply.body == data[first:]
    floor = (1_000_000 - RATE // 4) / RATE
    assert reply.elapsed >= floor * 0.9, f"{reply.elapsed:.2f} s < {floor:.2f} s"
