"""What a domain's DNS should point at: the node's address, shown as the domain's Cname.

The CDN answers each domain's CNAME in its own zone; a node does no DNS, so its answer
is where it serves: `VODEDGE_CNAME` when set (the node's DNS name, or on a fleet the
name of its balancer, the same on every node), else the client listener's address (the
machine's host name when it listens on every address), with `:port` unless it is 80.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

CNAME_ENV = "VODEDGE_CNAME"


def node_cname(listen: tuple[str, int], environ: Mapping[str, str]) -> str:
    """The address shown as every domain's Cname."""
    given = environ.get(CNAME_ENV, "").strip()
    if given:
        return given
    host, port = listen
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False  # a host name
    if wildcard or not host:
        host = socket.getfqdn()
    elif ":" in host:
        host = f"[{host}]"
    return host if port == 80 else f"{host}:{port}"
