"""Fixtures of the listening page's browser tests: a zero-config node over generated media,
and headless chromium (tests/console/browser.py) allowed to start playback from a script."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(TESTS / "console"), str(TESTS / "edge")]

from browser import CHROMEDRIVER, CHROMIUM, OUTPUT, Browser  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless chromium for a module's tests; screenshots in OUTPUT/listen."""
    if not (CHROMEDRIVER.is_file() and CHROMIUM.is_file()):
        pytest.fail("chromium and chromium-driver not found: `make test` installs them")
    shots = OUTPUT / "listen"
    shots.mkdir(parents=True, exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    # play() from a test script is not a user's gesture; the switch is still clicked.
    browser = Browser.start(
        CHROMIUM, CHROMEDRIVER, profile, shots, "--autoplay-policy=no-user-gesture-required"
    )
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
