"""Headless chromium driven by Selenium, with the steps an operator takes in the console."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
WAIT = 10.0
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
# Where screenshots go (VODEDGE_TEST_OUTPUT, or .cache/test-output), a directory per suite.
OUTPUT = Path(
    os.environ.get(
        "VODEDGE_TEST_OUTPUT", Path(__file__).resolve().parents[2] / ".cache" / "test-output"
    )
)


@dataclass
class Browser:
    """A chromium session and where its screenshots go."""

    driver: webdriver.Chrome
    shots: Path

    @classmethod
    def start(
        cls, chromium: Path, chromedriver: Path, profile: Path, shots: Path, *extra: str
    ) -> Browser:
        """Chromium with a fresh `--user-data-dir` (and `extra` flags); no Selenium
        Manager, no network."""
        os.environ["SE_AVOID_STATS"] = "true"
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for flag in (*FLAGS, *extra, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
        driver.set_page_load_timeout(WAIT)
        return cls(driver, shots)

    def quit(self) -> None:
        """End chromium and its driver."""
        self.driver.quit()

    def wait(self, by: str, what: str) -> WebElement:
        """The element once it is visible."""
        return WebDriverWait(self.driver, WAIT).until(
            expected_conditions.visibility_of_element_located((by, what))
        )

    def wait_text(self, by: str, what: str, text: str) -> WebElement:
        """The element once its text contains `text`."""
        WebDriverWait(self.driver, WAIT).until(
            expected_conditions.text_to_be_present_in_element((by, what), text)
        )
        return self.driver.find_element(by, what)

    def by_text(self, tag: str, text: str) -> WebElement:
        """The visible `tag` element whose text is `text` (how an operator finds it)."""
        return self.wait(By.XPATH, f"//{tag}[normalize-space(.)='{text}']")

    def labelled(self, label: str) -> WebElement:
        """The control the label with visible text `label` names."""
        found = self.by_text("label", label)
        return self.driver.find_element(By.ID, str(found.get_attribute("for")))

    def screenshot(self, name: str, *, whole: bool = False) -> Path:
        """Save the page as NAME.png in the screenshot directory (`whole`: all of its
        height, not only the window's)."""
        path = self.shots / f"{re.sub(r'[^A-Za-z0-9_.-]', '-', name)}.png"
        size = self.driver.get_window_size()
        if whole:
            height = int(self.driver.execute_script("return document.body.scrollHeight"))
            self.driver.set_window_size(size["width"], min(height + 160, 6000))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            if whole:
                self.driver.set_window_size(size["width"], size["height"])
        return path

    def open_console(self, base: str) -> None:
        """A fresh visit: no cookie, the console's first page."""
        self.driver.get(base + "/console/")
        self.driver.delete_all_cookies()
        self.driver.get(base + "/console/")
        self.by_text("h1", "Log on")

    def log_on(self, base: str, key_id: str, secret: str) -> None:
        """Log on with an AccessKey pair; waits for the Domain Names page."""
        self.open_console(base)
        self.type_into(self.labelled("AccessKey ID"), key_id)
        self.type_into(self.labelled("AccessKey Secret"), secret)
        self.by_text("button", "Log on").click()
        self.by_text("h1", "Domain Names")

    @staticmethod
    def type_into(element: WebElement, text: str) -> None:
        """Replace the field's text."""
        element.clear()
        element.send_keys(text)

    def session_cookie(self) -> str:
        """The console's session cookie, as the browser holds it."""
        cookie = self.driver.get_cookie("vodedge_console")
        assert cookie is not None, "no session cookie"
        return str(cookie["value"])

    def csrf_token(self) -> str:
        """The CSRF token the page holds in memory."""
        return str(self.driver.execute_script("return state.session.CsrfToken"))

    def settle(self, seconds: float) -> None:
        """Let time pass (a session expiring)."""
        time.sleep(seconds)
