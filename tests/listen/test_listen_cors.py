"""A player on another site fetch()es ranges from vodedge in headless Chromium (CORS).

The player's page is an object of one vodedge (origin http://127.0.0.1:P1); the media
comes from a second vodedge whose domain lists that origin in `set_resp_header`
Access-Control-Allow-Origin with access_origin_control on (origin http://localhost:P2).
The browser sends the preflight itself and reads the exposed headers; an origin not
listed is refused by the browser.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser import Browser
from edge_config import domain, function
from edge_harness import Vodedge, running
from edge_media import MediaDir, generated

TONE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=4")
M4A = (*TONE, "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", "-f", "mp4")
FETCH = """
const [url, headers, done] = arguments;
fetch(url, {headers: headers, cache: 'no-store'}).then(async r => done({
    status: r.status,
    range: r.headers.get('Content-Range'),
    length: r.headers.get('Content-Length'),
    error: r.headers.get('X-Vodedge-Error'),
    size: (await r.arrayBuffer()).byteLength,
})).catch(e => done({failed: String(e)}));
"""


@pytest.fixture(scope="module")
def player(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Vodedge, MediaDir]]:
    """The player's site: a zero-config vodedge serving a plain page."""
    root = MediaDir(tmp_path_factory.mktemp("cors-player"))
    (root.root / "player.txt").write_text("the player's page\n")
    edge = Vodedge(tmp_path_factory.mktemp("vodedge-cors-player"), "", origin=str(root.root))
    with running(edge) as server:
        yield server, root


@pytest.fixture(scope="module")
def streams(
    player: tuple[Vodedge, MediaDir], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vodedge]:
    """The media's site: every Host, CORS for the player's origin only."""
    edge, root = player
    assert edge.origin is not None
    root.add(generated("cors-tone", M4A, "m4a"), "tone.m4a")
    config = domain(
        "*",
        edge.origin,
        function("ali_video_split", enable="on"),
        function(
            "set_resp_header",
            key="Access-Control-Allow-Origin",
            value=f"http://127.0.0.1:{edge.port}",
            access_origin_control="on",
        ),
    )
    with running(Vodedge(tmp_path_factory.mktemp("vodedge-cors-streams"), config)) as server:
        yield server


def fetch(browser: Browser, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """The page's fetch() of `url`: what the script could read, or why it failed."""
    browser.driver.set_script_timeout(30)
    return dict(browser.driver.execute_async_script(FETCH, url, headers))


def test_a_player_elsewhere_fetches_ranges(
    browser: Browser, player: tuple[Vodedge, MediaDir], streams: Vodedge
) -> None:
    """A Range fetch() from the listed origin gets its 206 and reads Content-Range; a
    header that is not CORS-safelisted makes the browser preflight first; a page of
    another origin gets nothing."""
    edge, _ = player
    browser.driver.get(f"http://127.0.0.1:{edge.port}/player.txt")
    url = f"http://localhost:{streams.port}/tone.m4a?ali_audio_only=1"
    size = len(streams.get("localhost", "/tone.m4a?ali_audio_only=1").body)
    got = fetch(browser, url, {"Range": "bytes=0-99", "If-None-Match": '"not-this"'})
    assert got == {"status": 206, "range": f"bytes 0-99/{size}", "length": "100",
                   "error": None, "size": 100}, got  # fmt: skip
    # A refusal is readable too: its status and code reach the script.
    bad = fetch(browser, url + "&vodedge_audio_track=x", {"Range": "bytes=0-99"})
    assert (bad.get("status"), bad.get("error")) == (400, "invalid_track"), bad
    deadline = time.monotonic() + 30
    while not any(line.get("method") == "OPTIONS" for line in streams.access_lines()):
        assert time.monotonic() < deadline, streams.access_lines()
        time.sleep(0.2)
    # Another site (here: no origin at all) is not let in by the browser.
    browser.driver.get("data:text/html,<title>elsewhere</title>")
    refused = fetch(browser, url, {"Range": "bytes=0-99"})
    assert "failed" in refused, refused
