"""The lane's preconditions: the installed aiohttp has what it leans on, and the switch."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


@pytest.mark.parametrize(("flags", "expected"), [([], True), (["--lane", "off"], False)])
def test_serve_flag_reaches_the_node(tmp_path: Path, flags: list[str], expected: bool) -> None:
    from vodedge.cli.parser import parser_for
    from vodedge.cli.serving import node_loader

    argv = ["serve", "--origin", str(tmp_path), "--cache-dir", str(tmp_path / "c"), *flags]
    node = node_loader(parser_for(argv).parse_args(argv))()
    assert node.limits.lane is expected


def test_make_server_takes_the_lane_only_when_asked(tmp_path: Path) -> None:
    from vodedge.config.loader import zero_config
    from vodedge.edge.app import Edge, make_server
    from vodedge.edge.cache import DiskCache

    async def kinds() -> tuple[bool, bool]:
        edge = Edge(zero_config(str(tmp_path)), DiskCache(tmp_path / "store", 1 << 20))
        try:
            on, off = make_server(edge), make_server(edge, lane=False)
            return isinstance(on(), lane.LaneHandler), isinstance(off(), lane.LaneHandler)
        finally:
            await edge.close()

    assert asyncio.run(kinds()) == (True, False)
