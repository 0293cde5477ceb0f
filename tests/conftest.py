"""Shared fixtures: generated test media and the ffmpeg oracle."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import media_matrix
import native_build

# Hypothesis times examples and their generation by the wall clock, which a busy machine
# stretches tenfold; the tests bound the product's own time themselves (on CPU time).
settings.register_profile("vodedge", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("vodedge")

REPO = media_matrix.REPO
SHARED_MEDIA = media_matrix.SHARED_MEDIA


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail at once, with the fix, when the oracle is missing or the compiled modules
    are older than their sources (every test would run the old code)."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        raise pytest.UsageError(
            f"{' and '.join(missing)} not found: `make test` installs Debian's ffmpeg"
        )
    problems = native_build.stale()
    if problems:
        raise pytest.UsageError("stale compiled modules:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def media() -> Callable[[str], Path]:
    """`media(name)`: the path of a generated test case (made on first use)."""
    return media_matrix.media


@pytest.fixture(scope="session")
def shared_media() -> Path:
    """The directory of real third-party sample files; skips when it is absent."""
    if not (SHARED_MEDIA / "MANIFEST.tsv").is_file():
        pytest.skip(f"{SHARED_MEDIA} is not there (it lives beside the repository)")
    return SHARED_MEDIA


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under `--dist loadgroup`, pytest-xdist names each test of an `xdist_group`
    `ID@GROUP` so that the group runs on one worker; fail a test it did not name (a
    pytest it does not know), rather than split a group's shared servers silently."""
    if not getattr(item.config.option, "loadgroup", False):  # set on the workers by xdist
        return
    if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
        pytest.fail(
            "pytest-xdist did not keep this test's xdist_group on one worker: this pytest"
            " and pytest-xdist split the groups (see the pins in pyproject.toml)",
            pytrace=False,
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, show the stderr of every vodedge still running (the servers the edge
    harness started, when a test uses it)."""
    outcome = yield
    report = outcome.get_result()
    harness = sys.modules.get("edge_harness")
    if report.failed and harness is not None:
        for server in harness.RUNNING:
            report.sections.append((f"vodedge stderr ({server.work})", server.log_text()))
