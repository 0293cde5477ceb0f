"""What the edge asks its origins, and how their answers become cache objects: Host
headers, failover, query parameters, cache keys, TTL rules, revalidation, ranged reads,
purges racing fills."""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domain, domains, function
from edge_harness import RawClient, Vodedge, concurrent_gets, free_port, running
from edge_media import SAMPLES, big_tail_moov, cli_output

from origins.faulty import payload

pytestmark = pytest.mark.xdist_group("edge_origins")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker with the test domains and a few more about origins."""
    fault, nginx = origins.fault.url, origins.nginx.url
    extra = "".join(
        [
            domain(
                "hosthdr.test", "", origins=f'[{{ url = "{fault}", host = "from-origin.test" }}]'
            ),
            domain(
                "reqhost.test",
                fault,
                function("set_req_host_header", domain_name="from-function.test"),
            ),
            domain(
                "failover.test",
                "",
                origins=f'[{{ url = "http://127.0.0.1:{free_port()}", priority = 10 }}, '
                f'{{ url = "{fault}", priority = 20 }}]',
            ),
            domain("*.wild.test", fault),
            domain("off.test", nginx, enabled=False),
            domain(
                "ttl.test",
                nginx,
                function("path_based_ttl_set", ttl="1", path="/origins/ttl"),
            ),
        ]
    )
    work = tmp_path_factory.mktemp("vodedge-origins")
    with running(Vodedge(work, domains(origins, extra=extra))) as server:
        yield server


def _copy(origins: Origins, name: str) -> tuple[str, bytes]:
    path = origins.media.add(SAMPLES / "talk.mp4", f"origins/{name}")
    return path, origins.media.file(path).read_bytes()


# --- what the origin is asked --------------------------------------------------------------


def test_back_to_origin_host(edge: Vodedge, origins: Origins) -> None:
    """The client's Host by default; the origin's own `host`; set_req_host_header's."""
    for host, expected in [
        ("faulty.test", "faulty.test"),
        ("hosthdr.test", "from-origin.test"),
        ("reqhost.test", "from-function.test"),
    ]:
        path, _ = _copy(origins, f"host-{host}.mp4")
        assert edge.get(host, path, method="HEAD").status == 200
        (record,) = origins.fault.requests(path)
        assert record["host"] == expected, (host, record)


def test_failover_to_the_backup_origin(edge: Vodedge, origins: Origins) -> None:
    """The preferred origin refuses connections: the backup serves."""
    path, source = _copy(origins, "failover.mp4")
    reply = edge.get("failover.test", path)
    assert reply.status == 200 and reply.body == source
    assert len(origins.fault.requests(path)) == 1


def test_video_parameters_never_reach_the_origin(edge: Vodedge, origins: Origins) -> None:
    """ali_audio_only and the seek parameters are the edge's; others go to the origin."""
    path, _ = _copy(origins, "query.mp4")
    reply = edge.get("faulty.test", path + "?ali_audio_only=1&start=0.5&token=abc&end=1.5")
    assert reply.status == 200, reply
    assert [r["query"] for r in origins.fault.requests(path)] == ["token=abc"]


# --- domains and cache keys ----------------------------------------------------------------


def test_a_stopped_domain_is_refused(edge: Vodedge, origins: Origins) -> None:
    """enabled = false: 403 and no origin request."""
    path, _ = _copy(origins, "stopped.mp4")
    reply = edge.get("off.test", path)
    assert reply.status == 403, reply
    assert origins.nginx.settled_hits(path) == []


def test_a_wildcard_covers_one_label(edge: Vodedge, origins: Origins) -> None:
    """*.wild.test serves a.wild.test, not a.b.wild.test (nor wild.test)."""
    path = origins.media.write("origins/wild.bin", os.urandom(4000))
    assert edge.get("a.wild.test", path).status == 200
    assert edge.get("a.b.wild.test", path).status == 403
    assert edge.get("wild.test", path).status == 403


def test_a_wildcard_domain_keeps_each_hosts_object(edge: Vodedge, origins: Origins) -> None:
    """a.wild.test and b.wild.test are asked of the origin as themselves: each gets its own."""
    path = "/origins/per-host.bin"
    origins.fault.behave(path, size=50_000, by_host=True)
    for host in ("a.wild.test", "b.wild.test", "a.wild.test"):
        reply = edge.get(host, path)
        assert reply.status == 200
        assert reply.body == payload(host + path, 50_000), f"{host} got another host's object"


def test_an_encoded_question_mark_is_not_a_query(edge: Vodedge, origins: Origins) -> None:
    """/f.bin?x=1 and /f.bin%3Fx=1 are different objects at the origin, and at the edge."""
    plain = origins.media.write("origins/f.bin", b"the file f.bin\n" * 100)
    origins.media.write("origins/f.bin?x=1", b"a file named f.bin?x=1\n" * 100)
    first = edge.get("video.test", plain + "?x=1")
    assert first.body == b"the file f.bin\n" * 100
    second = edge.get("video.test", "/origins/f.bin%3Fx=1")
    assert second.status == 200
    assert second.body == b"a file named f.bin?x=1\n" * 100


@pytest.mark.parametrize(
    ("name", "target"), [("hello world.txt", "/hello%20world.txt"), ("vidé.txt", "/vid%C3%A9.txt")]
)
def test_a_directory_origin_decodes_the_path(
    edge: Vodedge, origins: Origins, name: str, target: str
) -> None:
    """Names with spaces or non-ASCII letters are reachable, as nginx would serve them."""
    (origins.directory / name).write_text(f"the file {name}\n")
    reply = edge.get("dir.test", target)
    assert reply.status == 200, reply
    assert reply.body.decode() == f"the file {name}\n"


def test_nginx_decodes_what_the_edge_forwards(edge: Vodedge, origins: Origins) -> None:
    """The same names through an HTTP origin (the edge forwards the path as it came)."""
    origins.media.write("origins/hello world.txt", b"spaced\n")
    reply = edge.get("video.test", "/origins/hello%20world.txt")
    assert reply.status == 200 and reply.body == b"spaced\n"


def test_directory_paths_are_404(edge: Vodedge, origins: Origins) -> None:
    """A directory is no object: 404 (never a listing, never a 500)."""
    (origins.directory / "sub").mkdir(exist_ok=True)
    for target in ("/", "/sub", "/sub/"):
        assert edge.get("dir.test", target).status == 404, target


def test_purge_drops_query_variants_and_escapes_prefixes(edge: Vodedge, origins: Origins) -> None:
    """Purging a URL drops its query variants; a directory purge is a literal prefix."""
    variants = [_copy(origins, "purge-q.mp4")[0] + q for q in ("", "?a=1", "?b=2")]
    underscore = _copy(origins, "p_q/a.mp4")[0]
    lookalike = _copy(origins, "pXq/a.mp4")[0]
    for path in [*variants, underscore, lookalike]:
        edge.prime("video.test", path)
    proc = edge.purge(f"http://video.test{variants[0]}")
    assert proc.returncode == 0 and "3 object(s)" in proc.stdout, proc.stdout + proc.stderr
    proc = edge.purge("http://video.test/origins/p_q/")
    assert "1 object(s)" in proc.stdout, proc.stdout
    states = [edge.get("video.test", p, method="HEAD").header("X-Cache") for p in variants]
    assert states == ["MISS"] * 3
    assert edge.get("video.test", underscore, method="HEAD").header("X-Cache") == "MISS"
    assert edge.get("video.test", lookalike, method="HEAD").header("X-Cache") == "HIT"


@pytest.mark.parametrize("target", ["url", "directory"])
def test_a_purge_during_a_fill_is_not_undone_by_it(
    edge: Vodedge, origins: Origins, target: str
) -> None:
    """Purged (the URL, or its directory) while the old version streams in: the next
    request fetches the new one."""
    path = origins.media.write(f"origins/purge-race-{target}/x.bin", os.urandom(300_000))
    old = origins.media.file(path).read_bytes()
    origins.fault.behave(path, chunk=32 << 10, drip_after=0, interval=0.05)
    client = RawClient(edge.port, "faulty.test", path)
    client.read_head()
    new = os.urandom(300_000)
    origins.media.write(path.lstrip("/"), new)
    purged = path if target == "url" else path.rsplit("/", 1)[0] + "/"
    proc = edge.purge(f"http://faulty.test{purged}")
    assert proc.returncode == 0, proc.stderr
    body, _ = client.read_to_end()
    client.close()
    assert body == old
    origins.fault.wait_filled(path)
    time.sleep(0.2)
    reply = edge.get("faulty.test", path)
    assert reply.body == new, f"X-Cache {reply.header('X-Cache')}: the purged version came back"


def test_content_encoding_from_the_origin_reaches_the_client(
    edge: Vodedge, origins: Origins
) -> None:
    """An origin that gzips despite `Accept-Encoding: identity`: the stored bytes are gzip,
    so the client must be told (or they are garbage to it)."""
    text = b"a text object that an origin insists on compressing\n" * 200
    path = origins.media.write("origins/gzipped.txt", gzip.compress(text))
    origins.fault.behave(path, headers={"Content-Encoding": "gzip"})
    for _ in ("miss", "hit"):
        reply = edge.get("faulty.test", path, {"Accept-Encoding": "gzip"})
        assert reply.status == 200
        encoding = reply.header("Content-Encoding")
        decoded = gzip.decompress(reply.body) if encoding == "gzip" else reply.body
        assert decoded == text, f"Content-Encoding {encoding!r}: the client cannot read it"


def test_vary_star_is_never_reused(edge: Vodedge, origins: Origins) -> None:
    """`Vary: *` matches no later request (RFC 9111 4.1): each goes to the origin."""
    path, source = _copy(origins, "vary-star.mp4")
    origins.fault.behave(path, headers={"Vary": "*"})
    for _ in range(2):
        reply = edge.get("faulty.test", path)
        assert reply.body == source and reply.header("X-Cache") != "HIT"
    assert len(origins.fault.requests(path)) == 2


# --- freshness against nginx ---------------------------------------------------------------


def test_a_ttl_rule_revalidates_with_nginx(edge: Vodedge, origins: Origins) -> None:
    """path_based_ttl_set ttl=1: then If-None-Match to nginx, its 304 makes a REVALIDATED
    hit; a changed file makes an EXPIRED one with the new bytes."""
    path, source = _copy(origins, "ttl/object.mp4")
    edge.prime("ttl.test", path)
    assert edge.get("ttl.test", path).header("X-Cache") == "HIT"
    edge.wait_expired("ttl.test", path)
    again = edge.get("ttl.test", path)
    assert again.header("X-Cache") == "REVALIDATED" and again.body == source
    conditional = origins.nginx.settled_hits(path)[-1]
    assert conditional.status == 304 and conditional.if_none_match, conditional
    changed = source[::-1]
    origins.media.write(path.lstrip("/"), changed)
    edge.wait_expired("ttl.test", path)
    head = edge.get("ttl.test", path, method="HEAD")
    assert head.header("X-Cache") == "EXPIRED"
    edge.prime("ttl.test", path)
    assert edge.get("ttl.test", path).body == changed


def test_concurrent_clients_of_an_expired_object_revalidate_once(
    edge: Vodedge, origins: Origins
) -> None:
    """10 clients at once after max-age ran out: one conditional request to the origin."""
    path, source = _copy(origins, "expired-herd.mp4")
    origins.fault.behave(path, cache_control="max-age=1", headers_delay=0.0)
    edge.prime("faulty.test", path)
    edge.wait_expired("faulty.test", path)
    origins.fault.behave(path, cache_control="max-age=1", headers_delay=0.3)
    replies = concurrent_gets(edge.port, [("faulty.test", path, {})] * 10)
    assert all(r.status == 200 and r.body == source for r in replies)
    conditional = [r for r in origins.fault.requests(path) if r["if_none_match"]]
    assert len(conditional) == 1, conditional


# --- ranged reads ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The several-MB tail-moov MP4 and its audio-only rendition from the CLI."""
    source = big_tail_moov()
    result = cli_output("extract", source, tmp_path_factory.mktemp("big"))
    assert result.output is not None, result.error
    return source, result.output


def test_a_range_far_ahead_of_the_fill_goes_to_the_origin(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """A player seeking into a cold object gets its bytes at once from a ranged request;
    the fill goes on and is stored."""
    source, _ = big
    path = origins.media.add(source, "origins/seek-ahead.mp4")
    data = source.read_bytes()
    origins.fault.behave(path, chunk=64 << 10, drip_after=0, interval=0.02)
    first, last = len(data) - 150_000, len(data) - 50_001
    reply = edge.get("faulty.test", path, {"Range": f"bytes={first}-{last}"})
    assert reply.status == 206, reply
    assert reply.body == data[first : last + 1]
    assert reply.header("Content-Range") == f"bytes {first}-{last}/{len(data)}"
    records = origins.fault.requests(path)
    # At once: the whole-object fetch (paced to ~2.4 s) had not even sent those bytes
    # when they arrived (looked at later, it can only have sent more).
    whole = [r for r in records if r["range"] is None]
    assert all(r["sent"] <= first for r in whole), records
    assert any(r["range"] for r in records), records
    edge.prime("faulty.test", path)
    hit = edge.get("faulty.test", path, {"Range": f"bytes={first}-{last}"})
    assert hit.header("X-Cache") == "HIT" and hit.body == data[first : last + 1]


def test_an_origin_without_ranges_still_gets_its_tail_moov_read(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """No Accept-Ranges: no Range is sent; the audio waits for the fill, and is exact."""
    source, want = big
    path = origins.media.add(source, "origins/no-ranges.mp4")
    origins.fault.behave(path, ranges=False, chunk=256 << 10, drip_after=0, interval=0.005)
    reply = edge.get("faulty.test", path + "?ali_audio_only=1")
    assert reply.status == 200 and reply.body == want
    assert [r["range"] for r in origins.fault.requests(path)] == [None]


def test_split_function_off_means_plain_delivery(origins: Origins, edge: Vodedge) -> None:
    """A domain without ali_video_split answers ?ali_audio_only=1 with the original."""
    path, source = _copy(origins, "no-split.mp4")
    reply = edge.get(
        "referer.test", path + "?ali_audio_only=1", {"Referer": "http://good.example/"}
    )
    assert reply.status == 200 and reply.body == source
    assert reply.header("Content-Type") == "video/mp4"
