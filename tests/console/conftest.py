"""Fixtures of the console tests: a real node with the test keys, and headless chromium."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS / "control"), str(TESTS / "edge")]

from browser import CHROMEDRIVER, CHROMIUM, OUTPUT, Browser  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless chromium for a module's tests, with a fresh profile."""
    if not (CHROMEDRIVER.is_file() and CHROMIUM.is_file()):
        pytest.fail("chromium and chromium-driver not found: `make test` installs them")
    shots = OUTPUT / "console"
    shots.mkdir(parents=True, exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    browser = Browser.start(CHROMIUM, CHROMEDRIVER, profile, shots)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
