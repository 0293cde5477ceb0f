"""Fixtures of the control-plane tests: `api_node`, a real node with the test keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_node import ApiNode, start_node


@pytest.fixture(scope="module")
def api_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNode]:
    """One node with the test keys, shared by a module's tests."""
    server = start_node(tmp_path_factory.mktemp("api-node"))
    try:
        yield ApiNode(server)
    finally:
        server.stop()
