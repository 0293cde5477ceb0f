"""The address a node shows as every domain's Cname."""

from __future__ import annotations

import socket

from vodedge.control.node_address import CNAME_ENV, node_cname


def test_the_cname_is_the_listener_unless_one_is_given() -> None:
    assert node_cname(("203.0.113.5", 80), {}) == "203.0.113.5"
    assert node_cname(("203.0.113.5", 8080), {}) == "203.0.113.5:8080"
    assert node_cname(("2001:db8::5", 8080), {}) == "[2001:db8::5]:8080"
    assert node_cname(("edge1.example.net", 80), {}) == "edge1.example.net"
    # Listening on every address: the machine's name is where DNS should point.
    assert node_cname(("0.0.0.0", 80), {}) == socket.getfqdn()
    assert node_cname(("::", 81), {}) == f"{socket.getfqdn()}:81"
    # A fleet names its balancer, the same on every node.
    given = {CNAME_ENV: " videos.cdn.example.net "}
    assert node_cname(("0.0.0.0", 8080), given) == "videos.cdn.example.net"
