"""The listening page in headless Chromium, against a real zero-config `vodedge serve`.

For MP4 with its moov at the head and at the tail, a two-language MP4 and an FLV
(through the vendored mpegts.js): the page loads nothing from elsewhere, plays, reports
the file's duration (ffprobe's, within 0.1 s), advances, continues from a seek to the
middle, and Listen only resumes within a second of where the video was, from
audio-only URLs. A screenshot per case goes to the test output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from browser import Browser
from edge_config import domain, function
from edge_harness import Vodedge, running
from edge_media import MediaDir, generated
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from oracle import probe
from url_signing import ref_sign

SECONDS = 6
VIDEO = ("-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={SECONDS}")
TONE = ("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={SECONDS}")
TONE2 = ("-f", "lavfi", "-i", f"sine=frequency=660:sample_rate=44100:duration={SECONDS}")
CODECS = ("-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
          "-c:a", "aac", "-b:a", "64k")  # fmt: skip
AV = (*VIDEO, *TONE, "-map", "0:v", "-map", "1:a", *CODECS)
LANGUAGES = ("-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra")
LANGS = (*VIDEO, *TONE, *TONE2, "-map", "0:v", "-map", "1:a", "-map", "2:a", *CODECS,
         *LANGUAGES, "-f", "mp4")  # fmt: skip
MEDIA = {
    "head.mp4": ((*AV, "-movflags", "+faststart", "-f", "mp4"), "mp4"),
    "tail.mp4": ((*AV, "-f", "mp4"), "mp4"),
    "langs.mp4": (LANGS, "mp4"),
    "talk.flv": ((*AV, "-f", "flv"), "flv"),
}
LOAD = 30.0  # a loaded 2-core machine: generous waits, exact checks


@dataclass(frozen=True)
class Site:
    """The node and what it serves."""

    edge: Vodedge
    files: dict[str, Path]

    @property
    def base(self) -> str:
        """The page's origin."""
        return f"http://127.0.0.1:{self.edge.port}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`vodedge serve --origin DIR` over the generated files (the page is on)."""
    root = MediaDir(tmp_path_factory.mktemp("listen-origin"))
    files = {}
    for name, (args, ext) in MEDIA.items():
        source = generated(f"listen-{name.split('.')[0]}", args, ext)
        root.add(source, name)
        files[name] = source
    edge = Vodedge(tmp_path_factory.mktemp("vodedge-listen-browser"), "", origin=str(root.root))
    with running(edge) as server:
        yield Site(server, files)


def js(browser: Browser, script: str) -> Any:
    """Run `script` in the page; its value."""
    return browser.driver.execute_script(script)


def until(browser: Browser, script: str, what: str, timeout: float = LOAD) -> Any:
    """Poll `script` until it returns something truthy."""
    try:
        return WebDriverWait(browser.driver, timeout, poll_frequency=0.05).until(
            lambda driver: driver.execute_script(script)
        )
    except Exception as exc:
        state = js(browser, "const v = document.getElementById('player'); return [v.currentTime,"
                   " v.duration, v.readyState, v.paused, v.error && v.error.code,"
                   " document.getElementById('status').textContent]")  # fmt: skip
        raise AssertionError(f"waited {timeout} s for {what}; player: {state}") from exc


VIDEO_STATE = "const v = document.getElementById('player');"


def resources(browser: Browser) -> list[dict[str, Any]]:
    """Every resource the page fetched, as Resource Timing saw it."""
    return list(
        js(browser, "return performance.getEntriesByType('resource').map(e => ({name: e.name,"
           " initiator: e.initiatorType, size: e.transferSize, status: e.responseStatus}))")
    )  # fmt: skip


def open_page(browser: Browser, site: Site, name: str) -> float:
    """Load the page for /NAME and wait for the media's metadata; its duration."""
    browser.driver.get(f"{site.base}/_vodedge/listen?src=/{name}")
    return float(until(browser, VIDEO_STATE + "return v.readyState >= 1 && v.duration", "metadata"))


def play_and_switch(browser: Browser, site: Site, name: str) -> None:
    """The journey every case takes: duration, play, seek to the middle, listen only."""
    duration = open_page(browser, site, name)
    expected = float(probe(site.files[name])["format"]["duration"])
    assert abs(duration - expected) <= 0.1, (duration, expected)
    js(browser, VIDEO_STATE + "v.play();")
    until(browser, VIDEO_STATE + "return v.currentTime > 0.3", "playback to advance")
    middle = round(duration / 2, 2)
    js(browser, VIDEO_STATE + f"v.currentTime = {middle};")
    until(browser, VIDEO_STATE + f"return !v.seeking && v.currentTime > {middle + 0.2}",
          "playback to continue from the middle")  # fmt: skip
    at = float(js(browser, VIDEO_STATE + "return v.currentTime"))
    assert middle <= at < middle + 3, (middle, at)
    # A person's click on the switch (not a script's).
    browser.driver.find_element(By.CSS_SELECTOR, "label.switch").click()
    resumed = until(browser, "return window.vodedgeListen.state.resumedAt", "listen only")
    switched = js(browser, "return window.vodedgeListen.state.switchedAt")
    assert switched >= at and abs(resumed - switched) <= 1.0, (at, switched, resumed)
    until(browser, VIDEO_STATE + f"return !v.paused && v.currentTime > {resumed + 0.3}",
          "listen only to play on")  # fmt: skip
    if name.endswith(".mp4"):
        assert js(browser, VIDEO_STATE + "return v.currentSrc").endswith(
            f"/{name}?ali_audio_only=1"
        )
    # The audio-only response is counted once it has finished arriving.
    until(browser, "return window.vodedgeListen.totals.audio.responses > 0", "audio bytes")


def until_logged(site: Site, name: str) -> list[dict[str, Any]]:
    """The access log's lines for /NAME once one for its audio only is there (the log is
    written every 2 s)."""
    deadline = time.monotonic() + LOAD
    while True:
        lines = [line for line in site.edge.access_lines() if line["path"].startswith(f"/{name}")]
        if any("ali_audio_only=1" in line["path"] for line in lines):
            return lines
        assert time.monotonic() < deadline, lines
        time.sleep(0.2)


def check_network(browser: Browser, site: Site, name: str) -> None:
    """Nothing from elsewhere; audio-only URLs after the switch; 206s for MP4 ranges."""
    seen = resources(browser)
    assert all(r["name"].startswith(site.base + "/") for r in seen), seen
    media = [r for r in seen if r["name"].split("?")[0] == f"{site.base}/{name}"]
    audio = [r for r in media if "ali_audio_only=1" in r["name"]]
    assert audio and media[0] not in audio, media
    assert js(browser, "return window.vodedgeListen.state.counting") == "service-worker"
    shown = {mode: int(browser.driver.find_element(By.ID, f"bytes-{mode}").get_attribute(
        "data-bytes") or 0) for mode in ("video", "audio")}  # fmt: skip
    lines = until_logged(site, name)
    sent = {mode: sum(line["bytes"] for line in lines
                      if ("ali_audio_only=1" in line["path"]) == (mode == "audio"))
            for mode in ("video", "audio")}  # fmt: skip
    # What reached the player, never more than the node sent for that mode.
    assert 0 < shown["video"] <= sent["video"] and 0 < shown["audio"] <= sent["audio"], (
        shown, sent)  # fmt: skip
    if name.endswith(".mp4"):
        # The browser asked ranges and got them (304: its own copy was still good).
        assert {line["status"] for line in lines} <= {206, 304}, lines
        ranged = {line["function"] for line in lines if line["status"] == 206}
        assert {"plain", "audio_only"} <= ranged, lines


@pytest.mark.parametrize("name", ["head.mp4", "tail.mp4", "talk.flv"])
def test_plays_and_listens(browser: Browser, site: Site, name: str) -> None:
    """MP4 (moov at head and at tail) natively, FLV through mpegts.js and MSE."""
    play_and_switch(browser, site, name)
    check_network(browser, site, name)
    if name.endswith(".flv"):
        assert js(browser, VIDEO_STATE + "return v.currentSrc").startswith("blob:")  # MSE
        assert js(browser, "return typeof window.mpegts") == "object"
    browser.screenshot(f"listen-{name}")


def test_two_languages(browser: Browser, site: Site) -> None:
    """Both languages are offered; choosing one plays that track alone, in place, in both
    modes."""
    play_and_switch(browser, site, "langs.mp4")
    select = Select(browser.wait(By.ID, "language"))
    offered = {option.get_attribute("data-language"): option.get_attribute("value")
               for option in select.options if option.get_attribute("value")}  # fmt: skip
    assert set(offered) == {"eng", "fra"}, offered
    info = json.loads(js(browser, "return JSON.stringify(window.vodedgeListen.state.info)"))
    assert [t["language"] for t in info["tracks"] if t["kind"] == "audio"] == ["eng", "fra"]
    before = float(js(browser, VIDEO_STATE + "return v.currentTime"))
    select.select_by_value(offered["fra"])
    until(browser, VIDEO_STATE + "return v.currentSrc.includes('vodedge_audio_track=')",
          "the French track's URL")  # fmt: skip
    resumed = until(browser, "return window.vodedgeListen.state.resumedAt", "the French track")
    assert abs(resumed - before) <= 1.0, (before, resumed)
    src = js(browser, VIDEO_STATE + "return v.currentSrc")
    assert src.endswith(f"?ali_audio_only=1&vodedge_audio_track={offered['fra']}"), src
    until(browser, VIDEO_STATE + f"return !v.paused && v.currentTime > {resumed + 0.3}",
          "the French track to play")  # fmt: skip
    browser.screenshot("listen-two-languages")
    # Back to the video: still in French, from where the listening was.
    before = float(js(browser, VIDEO_STATE + "return v.currentTime"))
    browser.driver.find_element(By.CSS_SELECTOR, "label.switch").click()
    until(browser, "return !window.vodedgeListen.state.audio", "the video mode")
    resumed = until(browser, "return window.vodedgeListen.state.resumedAt", "the French video")
    assert abs(resumed - before) <= 1.0, (before, resumed)
    src = js(browser, VIDEO_STATE + "return v.currentSrc")
    assert src.endswith(f"/langs.mp4?vodedge_audio_track={offered['fra']}"), src
    check_network(browser, site, "langs.mp4")


def test_hostile_src_stays_text(browser: Browser, site: Site) -> None:
    """Quotes, parentheses and ampersands in src stay text: no script, no alert, no request."""
    src = "/it's(1)&x.mp4?a='b'&c=(alert(1))"
    browser.driver.get(f"{site.base}/_vodedge/listen?src={quote(src, safe='')}")
    browser.wait(By.ID, "title")
    time.sleep(0.5)  # what a script could do, it would have done by now
    assert js(browser, "return document.querySelectorAll('script').length") == 1
    assert browser.driver.find_element(By.ID, "path").text == src
    assert browser.driver.find_element(By.ID, "title").text == "it's(1)&x.mp4"
    assert js(browser, "return document.getElementById('listen').dataset.src") == src
    seen = resources(browser)
    assert all(r["name"].startswith(site.base + "/") for r in seen), seen
    browser.screenshot("listen-hostile-src")


KEY = "aliyuncdnexp1234"


@pytest.fixture(scope="module")
def paid(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Every Host served with signed URLs and a signed preview length (and the page on)."""
    assert site.edge.origin is not None
    config = domain(
        "*",
        site.edge.origin,
        function("ali_video_split", enable="on"),
        function("vodedge_listen_page", enable="on"),
        function("ali_video_preview", enable="on", ali_video_preview_argument="free_time"),
        function("aliauth", auth_type="type_a", auth_key1=KEY, vodedge_signed_args="free_time"),
    )
    with running(Vodedge(tmp_path_factory.mktemp("vodedge-listen-paid"), config)) as server:
        yield server


def test_signed_preview_plays(browser: Browser, site: Site, paid: Vodedge, tmp_path: Path) -> None:
    """A signed URL with a 3-second preview plays for 3 seconds, and so does listen only
    (its URL adds ali_audio_only, which the signature does not cover); a raised preview
    length is refused and the page says why."""
    path, query = ref_sign("a", KEY, "/head.mp4", int(time.time()), query="free_time=3",
                           signed=("free_time",))  # fmt: skip
    src = f"{path}?{query}"
    preview = paid.get("127.0.0.1", src)
    assert preview.status == 200, preview
    (tmp_path / "preview.mp4").write_bytes(preview.body)
    expected = float(probe(tmp_path / "preview.mp4")["format"]["duration"])
    assert abs(expected - 3) < 0.2, expected
    base = f"http://127.0.0.1:{paid.port}"
    browser.driver.get(f"{base}/_vodedge/listen?src={quote(src, safe='')}")
    duration = float(until(browser, VIDEO_STATE + "return v.readyState >= 1 && v.duration",
                           "metadata"))  # fmt: skip
    assert abs(duration - expected) <= 0.1, (duration, expected)
    js(browser, VIDEO_STATE + "v.play();")
    until(browser, VIDEO_STATE + "return v.currentTime > 1", "the preview to play")
    browser.driver.find_element(By.CSS_SELECTOR, "label.switch").click()
    resumed = until(browser, "return window.vodedgeListen.state.resumedAt", "listen only")
    switched = js(browser, "return window.vodedgeListen.state.switchedAt")
    assert abs(resumed - switched) <= 1.0, (switched, resumed)
    assert js(browser, VIDEO_STATE + "return v.currentSrc").endswith(f"{query}&ali_audio_only=1")
    audio = float(js(browser, VIDEO_STATE + "return v.duration"))
    assert abs(audio - 3) <= 0.1, audio
    browser.screenshot("listen-signed-preview")
    raised = src.replace("free_time=3", "free_time=30")
    browser.driver.get(f"{base}/_vodedge/listen?src={quote(raised, safe='')}")
    browser.wait_text(By.ID, "status", "403 (auth_invalid)")
