"""An expired console session goes back to the log-on page (a node with 3-second sessions)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_node import ENV, FULL, node_toml
from browser import Browser
from edge_harness import Vodedge
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.xdist_group("console-expiry")
SESSION_SECONDS = 3.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    work = tmp_path_factory.mktemp("console-expiry")
    (work / "origin").mkdir()
    env = {
        "VODEDGE_ACCESS_KEY_ID": ENV.id,
        "VODEDGE_ACCESS_KEY_SECRET": ENV.secret,
        "VODEDGE_CONSOLE_SESSION_SECONDS": str(SESSION_SECONDS),
    }
    server = Vodedge(work, node_toml(work / "origin"), env=env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_expired_session_goes_back_to_log_on(browser: Browser, node: Vodedge) -> None:
    base = f"http://127.0.0.1:{node.admin_port}"
    browser.log_on(base, FULL.id, FULL.secret)
    browser.wait(By.XPATH, "//tr[th[normalize-space(.)='preloaded.example.com']]")
    browser.settle(SESSION_SECONDS + 0.5)
    browser.by_text("a", "Domain Names").click()
    shown = browser.wait_text(By.ID, "logon-error", "expired").text
    browser.screenshot("log-on-expired")
    assert shown == "Your session has expired. Log on again."
    # Logging on again leads back where the operator was.
    browser.type_into(browser.labelled("AccessKey ID"), ENV.id)
    browser.type_into(browser.labelled("AccessKey Secret"), ENV.secret)
    browser.by_text("button", "Log on").click()
    browser.by_text("h1", "Domain Names")
