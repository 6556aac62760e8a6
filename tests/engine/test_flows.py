"""Engine behaviour under many flows, UDP, ICMP, limits and teardown (real guest)."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from tests.engine.servers import HttpServer, echo_handler, serve_tcp, udp_echo
from tests.engine.test_real_guest import DUAL, GW4, GW6, run_with_engine
from tests.support.fixtures import GuestLinkFactory, NetnsFactory
from tests.support.leaks import assert_nothing_left, snapshot
from tests.support.netns import in_netns
from trionet.config import NetworkConfig
from trionet.engine.guest_stream import GuestTcpStream
from trionet.network import Network, open_network
from trionet.policy import NetworkPolicy

pytestmark = pytest.mark.root

_CONCURRENT = """
import asyncio, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def one(i):
    r, w = await asyncio.open_connection(host, port)
    msg = (b"%05d" % i) * 2000
    w.write(msg)
    await w.drain()
    got = await r.readexactly(len(msg))
    w.close()
    return got == msg
async def main():
    results = await asyncio.gather(*(one(i) for i in range(count)))
    print(sum(results))
asyncio.run(main())
"""


def test_200_concurrent_connections(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        port = await serve_tcp(servers, echo_handler, "127.0.0.1")
        result = await link.guest.arun(
            ["python3", "-c", _CONCURRENT, GW4, str(port), "200"], timeout=60
        )
        assert result.stdout.strip() == b"200"
        # Once the relays are done nothing is kept for them (no leak).
        tcp = net.core.stack.tcp
        with trio.fail_after(10):
            while len(tcp) or tcp.finished_count:
                await trio.sleep(0.05)

    net = run_with_engine(link, body)
    connections = net.metrics_handle().snapshot()["connections"]
    assert connections["opened"] == 200  # type: ignore[index]


_UDP = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(5)
for size in (1, 100, 1472, 30000):
    msg = bytes(i % 251 for i in range(size))
    s.sendto(msg, (host, port))
    data, peer = s.recvfrom(65535)
    assert data == msg, (size, len(data))
    assert peer[1] == port
print("ok")
"""


@pytest.mark.parametrize("gateway", [GW4, GW6])
def test_udp_echo_and_a_30kb_datagram(guest_link_factory: GuestLinkFactory, gateway: str) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_DGRAM)
        await sock.bind(("::1" if ":" in gateway else "127.0.0.1", 0))
        servers.start_soon(udp_echo, sock)
        port = sock.getsockname()[1]
        result = await link.guest.arun(["python3", "-c", _UDP, gateway, str(port)], timeout=20)
        assert result.stdout.strip() == b"ok", result.stderr

    net = run_with_engine(link, body)
    assert net.metrics_handle().snapshot()["udp_flows"]["opened"] == 1  # type: ignore[index]


def test_udp_to_a_closed_port_gets_port_unreachable(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    script = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.connect(('{GW4}', 9))\n"
        "s.settimeout(3)\n"
        "s.send(b'x')\n"
        "try:\n    s.recv(100)\nexcept ConnectionRefusedError:\n    print('refused')\n"
    )

    async def body(net: Network, servers: trio.Nursery) -> None:
        result = await link.guest.arun(["python3", "-c", script], timeout=10)
        assert result.stdout.strip() == b"refused", result.stderr

    run_with_engine(link, body)


def test_ping_a_host_side_address(
    guest_link_factory: GuestLinkFactory, netns_factory: NetnsFactory
) -> None:
    link = guest_link_factory()
    remote = netns_factory("r")
    # A "remote" host behind a veth, reachable only from the host namespace.
    link.host.ip(
        "link", "add", "tnv0", "type", "veth", "peer", "name", "tnv1", "netns", remote.name
    )
    link.host.ip("address", "add", "198.18.0.1/24", "dev", "tnv0")
    link.host.ip("link", "set", "tnv0", "up")
    remote.ip("address", "add", "198.18.0.2/24", "dev", "tnv1")
    remote.ip("link", "set", "tnv1", "up")
    link.host.run(["sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"])

    async def body(net: Network, servers: trio.Nursery) -> None:
        result = await link.guest.arun(
            ["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.0.2"], timeout=10
        )
        assert b" 0% packet loss" in result.stdout

    run_with_engine(link, body)


def test_max_connections_refuses_the_excess(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    script = (
        "import socket, sys\n"
        "held = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(3)]\n"
        "try:\n"
        "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
        "except ConnectionRefusedError:\n"
        "    print('refused')\n"
    )

    async def body(net: Network, servers: trio.Nursery) -> None:
        port = await serve_tcp(servers, echo_handler, "127.0.0.1")
        result = await link.guest.arun(["python3", "-c", script, GW4, str(port)], timeout=10)
        assert result.stdout.strip() == b"refused"

    net = run_with_engine(
        link, body, config=NetworkConfig(max_connections=3, policy=NetworkPolicy.allow_all())
    )
    assert net.metrics_handle().snapshot()["dropped"]["limit"] == 1  # type: ignore[index]


def test_leaving_the_block_mid_transfer_resets_and_leaks_nothing(
    guest_link_factory: GuestLinkFactory,
) -> None:
    link = guest_link_factory()
    server = HttpServer()
    before = snapshot()
    outcome: dict[str, object] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(30):
            async with trio.open_nursery() as outer:
                port = await serve_tcp(outer, server.handle, "127.0.0.1")
                async with open_network(
                    NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=DUAL
                ) as net:
                    await net.attach_tap(link.tap)
                    process = await link.guest.start(
                        outer,
                        ["curl", "-sS", "-o", "/dev/null", f"http://{GW4}:{port}/{1 << 34}"],
                        capture_stderr=True,
                    )
                    # Leave the block once data is flowing.
                    while net.metrics_handle().rx_bytes() < 50_000_000:
                        await trio.sleep(0.05)
                with trio.fail_after(5):
                    await process.wait()
                outcome["returncode"] = process.returncode
                outer.cancel_scope.cancel()

    trio.run(main)
    # curl: "Recv failure: Connection reset by peer" is exit status 56.
    assert outcome["returncode"] == 56
    assert_nothing_left(before)


async def _hold(stream: trio.SocketStream) -> None:
    async with stream:
        await trio.sleep_forever()


def test_guest_connection_is_a_half_closeable_stream(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    accepted_send, accepted_receive = trio.open_memory_channel[GuestTcpStream](1)

    async def hand_over(guest: GuestTcpStream, host: trio.SocketStream) -> None:
        await accepted_send.send(guest)
        await trio.sleep_forever()

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as outer:
                port = await serve_tcp(outer, _hold, "127.0.0.1")
                async with open_network(
                    NetworkConfig(policy=NetworkPolicy.allow_all()),
                    0,
                    routes=DUAL,
                    flow_handler=hand_over,
                ) as net:
                    await net.attach_tap(link.tap)

                    async def maker() -> tuple[GuestTcpStream, trio.SocketStream]:
                        with in_netns(link.guest):
                            sock = trio.socket.socket()
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        await sock.connect((GW4, port))
                        return await accepted_receive.receive(), trio.SocketStream(sock)

                    await trio.testing.check_half_closeable_stream(maker, None)
                outer.cancel_scope.cancel()

    trio.run(main)


_USO = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_UDP, 103, 1000)  # UDP_SEGMENT: one send, 1000-byte datagrams
s.settimeout(5)
s.sendto(bytes(i % 251 for i in range(9500)), (host, port))
sizes = sorted(len(s.recvfrom(65535)[0]) for _ in range(10))
print(sizes)
"""


def test_udp_segmentation_offload_from_the_guest(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory(uso=True)
    assert link.tap.offloads.uso, "this kernel should accept USO on a TAP"

    async def body(net: Network, servers: trio.Nursery) -> None:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        servers.start_soon(udp_echo, sock)
        port = sock.getsockname()[1]
        result = await link.guest.arun(["python3", "-c", _USO, GW4, str(port)], timeout=15)
        assert (
            result.stdout.strip() == b"[500, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]"
        )

    run_with_engine(link, body)


_ECHO_ONCE = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:
    s.sendall(b"across families")
    print(s.recv(100).decode())
"""


@pytest.mark.parametrize(("gateway", "bound"), [(GW6, "127.0.0.1"), (GW4, "::1")])
def test_the_host_alias_reaches_a_server_on_the_other_loopback(
    guest_link_factory: GuestLinkFactory, gateway: str, bound: str
) -> None:
    """§4.3: a refused dial to one loopback tries the other family's.

    A guest that resolves the host alias to its IPv6 gateway (as getaddrinfo
    prefers) must still reach a host server bound only to 127.0.0.1.
    """
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        port = await serve_tcp(servers, echo_handler, bound)
        result = await link.guest.arun(
            ["python3", "-c", _ECHO_ONCE, gateway, str(port)], timeout=20
        )
        assert result.stdout.strip() == b"across families"

    run_with_engine(link, body)


def test_a_port_closed_on_both_loopbacks_is_refused(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # a port nothing listens on, on either family
        result = await link.guest.arun(
            ["python3", "-c", _ECHO_ONCE, GW6, str(port)], timeout=20, check=False
        )
        assert b"ConnectionRefusedError" in result.stderr

    run_with_engine(link, body)


@pytest.mark.parametrize(
    ("profiles", "reached"), [(["public"], False), (["public", "host"], True)]
)
def test_the_host_under_another_of_its_addresses_is_the_host(
    guest_link_factory: GuestLinkFactory, profiles: list[str], reached: bool
) -> None:
    """A host's own public address reaches its 0.0.0.0 services like the gateway.

    So it is judged as the gateway: the default profile (public, no host)
    must not reach the host that way, and a profile with ``host`` may.
    """
    link = guest_link_factory()
    link.host.run(["ip", "address", "add", "203.0.113.77/32", "dev", "lo"])
    link.host.run(["ip", "address", "add", "2001:db8::77/128", "dev", "lo"])
    config = NetworkConfig(policy=NetworkPolicy.from_profiles(profiles))

    async def body(net: Network, servers: trio.Nursery) -> None:
        for address, wildcard in (("203.0.113.77", "0.0.0.0"), ("2001:db8::77", "::")):
            port = await serve_tcp(servers, echo_handler, wildcard)
            result = await link.guest.arun(
                ["python3", "-c", _ECHO_ONCE, address, str(port)], timeout=20, check=False
            )
            if reached:
                assert result.stdout.strip() == b"across families", result.stderr
            else:
                assert b"ConnectionRefusedError" in result.stderr, result

    net = run_with_engine(link, body, config=config)
    records = net.metrics_handle().snapshot()["audit"]
    assert records["deny" if not reached else "allow"] >= 2  # type: ignore[index]
