"""The Usage page: requests made through the edge show up, exactly, in its totals and
charts within a sampling period (a node of its own, sampling every half second)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_node import FULL, READ_ONLY, ApiNode, start_node
from browser import Browser
from edge_harness import wait_until
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from test_actions_sdk import NewSdk
from test_console import assert_labelled
from usage_tally import SAMPLE_SECONDS, USAGE_ENV, Tally

pytestmark = pytest.mark.xdist_group("console-usage")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DOMAIN = "preloaded.example.com"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNode]:
    work = tmp_path_factory.mktemp("console-usage")
    (work / "origin").mkdir()
    shutil.copyfile(SAMPLES / "talk.mp4", work / "origin" / "talk.mp4")
    server = start_node(work, env=USAGE_ENV)
    try:
        yield ApiNode(server)
    finally:
        server.stop()


def _requests(node: ApiNode) -> Tally:
    """Plain and audio-only requests through the edge, tallied."""
    whole = (SAMPLES / "talk.mp4").stat().st_size
    functions = [{"functionName": "ali_video_split",
                  "functionArgs": [{"argName": "enable", "argValue": "on"}]}]  # fmt: skip
    NewSdk(node)("BatchSetCdnDomainConfig", DomainNames=DOMAIN, Functions=json.dumps(functions))
    tally = Tally()
    port = node.server.port
    wait_until(
        lambda: (
            tally.get(port, DOMAIN, "/talk.mp4?ali_audio_only=1", "audio_only", whole).status == 200
            and tally.requests["audio_only"] > 0
        ),
        5,
        "audio extraction on",
        interval=0.05,
    )
    for _ in range(4):
        tally.get(port, DOMAIN, "/talk.mp4", "plain")
    tally.get(port, DOMAIN, "/talk.mp4?ali_audio_only=1", "audio_only", whole)
    return tally


def _cell(browser: Browser, name: str) -> str:
    return str(browser.driver.find_element(By.ID, f"usage-total-{name}").text)


def test_usage_shows_the_requests_made_within_a_sampling_period(
    browser: Browser, node: ApiNode
) -> None:
    tally = _requests(node)
    done = time.monotonic()
    requests = sum(tally.requests.values())
    browser.log_on(f"http://127.0.0.1:{node.port}", FULL.id, FULL.secret)
    browser.by_text("a", "Usage").click()
    browser.by_text("h1", "Usage")
    Select(browser.labelled("Domain")).select_by_visible_text(DOMAIN)
    browser.wait_text(By.ID, "usage-totals", DOMAIN)
    while _cell(browser, "requests") != str(requests):
        assert time.monotonic() < done + SAMPLE_SECONDS + 5.0, _cell(browser, "requests")
        browser.by_text("button", "Refresh").click()
        browser.wait_text(By.ID, "usage-totals", DOMAIN)
    assert _cell(browser, "traffic").startswith(f"{tally.traffic} (")
    assert _cell(browser, "saved").startswith(f"{tally.saved} (") and tally.saved > 0
    assert _cell(browser, "plain") == str(tally.requests["plain"])
    assert _cell(browser, "audio") == str(tally.requests["audio_only"])
    assert _cell(browser, "seek") == "0"
    assert _cell(browser, "hit-ratio") == f"{100 * tally.hits / tally.lookups:.1f}%"
    nodes = browser.driver.find_element(By.ID, "usage-nodes").text
    assert nodes.startswith("Counted by 1 node: ") and "last sample" in nodes
    # Each chart is an image with a spoken summary, and a table of the same numbers.
    for chart in ("traffic", "saved", "requests", "hit-ratio"):
        svg = browser.driver.find_element(By.ID, f"usage-{chart}-chart")
        assert svg.get_attribute("role") == "img"
        summary = browser.driver.find_element(By.ID, str(svg.get_attribute("aria-labelledby")))
        assert "last hour, per minute" in summary.text
    summary = browser.driver.find_element(By.ID, "usage-requests-summary").text
    assert f"total {requests}," in summary
    bars = browser.driver.find_elements(By.CSS_SELECTOR, "#usage-requests-chart rect")
    assert bars  # at least one minute has requests
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "#usage-requests tbody tr")
    assert sum(int(c.get_attribute("textContent")) for r in rows
               for c in r.find_elements(By.TAG_NAME, "td")) == requests  # fmt: skip
    browser.screenshot("usage-hour", whole=True)
    assert_labelled(browser)
    browser.labelled("Last day").click()
    browser.wait_text(By.ID, "usage-totals", "last day")
    assert _cell(browser, "requests") == str(requests)
    assert "per 5 minutes" in browser.driver.find_element(By.ID, "usage-traffic-summary").text
    browser.screenshot("usage-day", whole=True)


def test_a_domains_manage_pane_links_to_its_usage(browser: Browser, node: ApiNode) -> None:
    browser.log_on(f"http://127.0.0.1:{node.port}", FULL.id, FULL.secret)
    row = browser.wait(By.XPATH, f"//tr[th[normalize-space(.)='{DOMAIN}']]")
    row.find_element(By.XPATH, ".//a[normalize-space(.)='Manage']").click()
    pane = browser.wait(By.CSS_SELECTOR, "nav[aria-label='Domain settings']")
    pane.find_element(By.XPATH, ".//a[normalize-space(.)='Usage']").click()
    browser.wait_text(By.ID, "usage-totals", f"{DOMAIN}, last hour")


def test_a_read_only_key_sees_usage(browser: Browser, node: ApiNode) -> None:
    browser.log_on(f"http://127.0.0.1:{node.port}", READ_ONLY.id, READ_ONLY.secret)
    browser.by_text("a", "Usage").click()
    browser.wait_text(By.ID, "usage-totals", "All domains")
    assert int(_cell(browser, "requests")) >= 0
