"""A "world" namespace: servers that are somewhere else, not on the host.

trionet judges a destination that is one of its host's own addresses as the
host (``engine/host_addresses.py``): the host kernel would deliver it
locally, to every service bound to ``0.0.0.0``. So a test that wants a
*public* (or private, or metadata) server must not put that address on the
host namespace the engine runs in. :func:`world` puts the addresses on the
loopback of a namespace of their own, joined to the host by a veth pair with
a route per address: from the engine, they are one hop away, as a real
server is.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Iterator

from tests.support.netns import Netns, create_netns, delete_netns

__all__ = ["world"]

# The veth's own addresses (documentation ranges, on the link only).
_HOST4, _WORLD4 = "192.0.2.1", "192.0.2.2"
_HOST6, _WORLD6 = "fd99:7e57::1", "fd99:7e57::2"


@contextlib.contextmanager
def world(host: Netns, addresses: Iterable[str]) -> Iterator[Netns]:
    """A namespace holding ``addresses`` (``"203.0.113.10/32"`` or bare), routed from ``host``."""
    ns = create_netns("w")
    try:
        host.ip("link", "add", "tnw0", "type", "veth", "peer", "name", "tnw1", "netns", ns.name)
        host.ip_batch(
            [
                f"address add {_HOST4}/30 dev tnw0",
                f"address add {_HOST6}/64 dev tnw0 nodad",
                "link set tnw0 up",
            ]
        )
        commands = [
            f"address add {_WORLD4}/30 dev tnw1",
            f"address add {_WORLD6}/64 dev tnw1 nodad",
            "link set tnw1 up",
        ]
        routes = []
        for text in addresses:
            network = ipaddress.ip_network(text if "/" in text else f"{text}", strict=False)
            commands.append(f"address add {network} dev lo")
            via = _WORLD4 if network.version == 4 else _WORLD6
            routes.append(f"route add {network} via {via} dev tnw0")
        ns.ip_batch(commands)
        host.ip_batch(routes)
        yield ns
    finally:
        delete_netns(ns)  # takes both ends of the veth with it
