"""The engine with a real Linux kernel as its guest.

Each test builds a host namespace (where the engine's host side and the
servers live) and a guest namespace whose eth0 is a TAP attached to the
engine, configured from the engine's guest variables like a guest init would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from tests.engine.servers import HttpServer, echo_handler, serve_tcp
from tests.support.fixtures import GuestLink, GuestLinkFactory
from tests.support.netns import in_netns
from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.network import Network, open_network
from trionet.policy import NetworkPolicy

pytestmark = pytest.mark.root

DUAL = HostRoutes(ipv4=True, ipv6=True)
GW4 = "172.16.0.1"
GW6 = "fd42:6d73:62::1"


def run_with_engine(
    link: GuestLink,
    body: Callable[[Network, trio.Nursery], Awaitable[None]],
    *,
    config: NetworkConfig | None = None,
    timeout: float = 60.0,
    connect_timeout: float | None = None,
) -> Network:
    """Run ``body`` with an engine attached to ``link``, inside the host namespace.

    ``config`` defaults to one that allows everything; ``connect_timeout`` is
    the engine's dial (and published-port connect) timeout.
    """
    result: list[Network] = []

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(timeout):
            async with trio.open_nursery() as servers:
                async with open_network(
                    config or NetworkConfig(policy=NetworkPolicy.allow_all()),
                    0,
                    routes=DUAL,
                    connect_timeout=connect_timeout,
                ) as net:
                    await net.attach_tap(link.tap)
                    result.append(net)
                    await body(net, servers)
                servers.cancel_scope.cancel()

    trio.run(main)
    return result[0]


@pytest.mark.parametrize("gateway", [GW4, GW6])
def test_curl_reaches_host_loopback_through_gateway(
    guest_link_factory: GuestLinkFactory, gateway: str
) -> None:
    link = guest_link_factory()
    server = HttpServer()

    async def body(net: Network, servers: trio.Nursery) -> None:
        loopback = "127.0.0.1" if ":" not in gateway else "::1"
        port = await serve_tcp(servers, server.handle, loopback)
        host = f"[{gateway}]" if ":" in gateway else gateway
        result = await link.guest.arun(
            ["curl", "-sS", "--max-time", "10", f"http://{host}:{port}/1000"], timeout=15
        )
        assert result.stdout == (bytes(range(256)) * 4)[:1000]

    net = run_with_engine(link, body)
    assert server.requests == [b"GET /1000 HTTP/1.1"]
    snapshot = net.metrics_handle().snapshot()
    assert snapshot["connections"] == {  # type: ignore[comparison-overlap]
        "opened": 1,
        "refused": 0,
        "reset": 0,
        "host_sockets": 0,
    }
    assert net.metrics_handle().tx_bytes() > 0 and net.metrics_handle().rx_bytes() > 1000


def test_closed_port_is_refused_at_once(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        script = (
            (
                "import socket\n"
                "for addr in ('GW4', 'GW6'):\n"
                "    try: socket.create_connection((addr, 1), timeout=3)\n"
                "    except ConnectionRefusedError: print('refused')\n"
            )
            .replace("GW4", GW4)
            .replace("GW6", GW6)
        )
        with trio.fail_after(5):
            result = await link.guest.arun(["python3", "-c", script])
        assert result.stdout == b"refused\nrefused\n"

    net = run_with_engine(link, body)
    assert net.metrics_handle().snapshot()["connections"]["refused"] == 2  # type: ignore[index]


def test_ping_gateway(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        for target in (GW4, GW6):
            result = await link.guest.arun(["ping", "-c", "2", "-i", "0.2", "-W", "2", target])
            assert b" 0% packet loss" in result.stdout

    run_with_engine(link, body)


def test_echo_over_tcp(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        port = await serve_tcp(servers, echo_handler, "127.0.0.1")
        payload = b"hello trionet\n" * 1000
        script = (
            "import socket,sys;"
            f"s=socket.create_connection(('{GW4}',{port}));"
            "d=sys.stdin.buffer.read();s.sendall(d);s.shutdown(socket.SHUT_WR);"
            "b=b''\n"
            "while True:\n c=s.recv(65536)\n if not c: break\n b+=c\n"
            "sys.stdout.buffer.write(b)"
        )
        result = await link.guest.arun(["python3", "-c", script], stdin=payload, timeout=20)
        assert result.stdout == payload

    run_with_engine(link, body)
