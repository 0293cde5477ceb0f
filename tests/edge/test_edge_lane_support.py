"""The lane's preconditions: the installed aiohttp has what it leans on, and the switch."""

from __future__ import annotations

import pytest

from vodedge.config.errors import ConfigError
from vodedge.config.limits import NodeLimits
from vodedge.edge import lane


def test_installed_aiohttp_has_what_the_lane_leans_on() -> None:
    # Without these internals the lane turns itself off: every request would be slower
    # and nothing else would say so.
    missing = [name for name in lane._INTERNALS if not hasattr(lane.RequestHandler, name)]
    assert lane.SUPPORTED, f"aiohttp lacks {missing}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("on", True), ("off", False), (" OFF ", False), ("true", True), (True, True), (False, False)],
)
def test_lane_setting_reads_on_and_off(value: object, expected: bool) -> None:
    assert NodeLimits().with_values({"lane": value}).lane is expected


@pytest.mark.parametrize("value", ["maybe", "", 1, 0.5, "1"])
def test_lane_setting_refuses_anything_else(value: object) -> None:
    with pytest.raises(ConfigError, match="lane must be on or off"):
        NodeLimits().with_values({"lane": value})
