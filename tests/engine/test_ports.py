"""Published ports with a real Linux guest, driven through the embedding API.

The engine runs in a host namespace; the guest namespace's eth0 is a TAP
attached to it. Guest servers are real programs; host clients are Python
sockets in the host namespace (or in a third, "peer" namespace joined to
the host one by a veth pair, for a client that is not on loopback).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

import pytest
import trio

from tests.engine.test_real_guest import run_with_engine
from tests.support.fixtures import GuestLink, GuestLinkFactory, NetnsFactory
from trionet import PortMapping
from trionet.config import NetworkConfig
from trionet.network import Network
from trionet.services.ports import PublishError

pytestmark = pytest.mark.root

GW4 = "172.16.0.1"
LOCAL4 = PortMapping(0, 7000)

#: A guest TCP server on port 7000: says which address the client came from, then echoes.
TCP_SERVER = """
import socket, threading
srv = socket.create_server(('0.0.0.0', 7000), backlog=64)
def serve(c, a):
    c.sendall(('from %s %d\\n' % a[:2]).encode())
    while d := c.recv(65536):
        c.sendall(d)
    c.close()
while True:
    c, a = srv.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"""
#: A guest UDP echo on port 7001 that prefixes the peer it saw.
UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 7001))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(('%s %d ' % a).encode() + d, a)
"""


def _ready_check(port: int) -> str:
    """A guest script that returns once something listens on ``port`` (a probe the server sees)."""
    return (
        "import socket,time\nfor _ in range(100):\n"
        f" try: socket.create_connection(('127.0.0.1',{port}),timeout=1).close(); break\n"
        " except OSError: time.sleep(0.05)"
    )


async def _start_guest(link: GuestLink, servers: trio.Nursery, script: str, port: int) -> None:
    await link.guest.start(servers, ["python3", "-c", script])
    if port:
        await link.guest.arun(["python3", "-c", _ready_check(port)], timeout=10)


async def _client(address: tuple[str, int], payload: bytes = b"") -> bytes:
    """Connect, read the greeting line, echo ``payload``, half-close, read to EOF."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    with sock:
        await sock.connect(address)
        await sock.send(payload)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while data := await sock.recv(65536):
            received += data
        return received


async def _expect_reset(address: tuple[str, int]) -> None:
    """The connection is reset: recv raises ECONNRESET, never returns EOF."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    # On loopback the reset may beat trio's check of the connect.
    with (
        trio.fail_after(5),
        trio.socket.socket(family, socket.SOCK_STREAM) as sock,
        pytest.raises(ConnectionResetError),
    ):
        await sock.connect(address)
        data = await sock.recv(100)
        raise AssertionError(f"read {data!r} instead of a reset")


def test_publish_unpublish_while_running(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        await _start_guest(link, servers, TCP_SERVER, 7000)
        mapping = await net.publish(LOCAL4)
        assert mapping.host_port != 0 and mapping.guest_port == 7000
        assert net.published() == [mapping]
        reply = await _client(("127.0.0.1", mapping.host_port), b"x" * 100_000)
        assert (
            reply
            == f"from {GW4} ".encode()
            + reply.split(b" ")[2].split(b"\n")[0]
            + b"\n"
            + b"x" * 100_000
        )
        # A taken port is a clear error and leaves nothing behind.
        with pytest.raises(PublishError, match="Address already in use") as info:
            await net.publish(PortMapping(mapping.host_port, 7000))
        assert info.value.errno == errno.EADDRINUSE
        assert net.published() == [mapping]
        # A relay established before unpublish carries on; new clients are refused.
        held = trio.socket.socket()
        await held.connect(("127.0.0.1", mapping.host_port))
        assert (await held.recv(100)).startswith(b"from ")
        await net.unpublish(mapping)
        assert net.published() == []
        with pytest.raises(ConnectionRefusedError):
            await _client(("127.0.0.1", mapping.host_port))
        await held.send(b"still here")
        assert await held.recv(100) == b"still here"
        # Republished on another port (IPv6 bind), it works at once.
        again = await net.publish(PortMapping(0, 7000, host_bind=ipaddress.ip_address("::1")))
        assert (await _client(("::1", again.host_port), b"v6")).endswith(b"\nv6")
        # unpublish(reset=True) resets the relays it made.
        held6 = trio.socket.socket(socket.AF_INET6)
        await held6.connect(("::1", again.host_port))
        assert (await held6.recv(100)).startswith(b"from ")
        await net.unpublish(again, reset=True)
        with pytest.raises(ConnectionResetError):
            await held6.recv(100)
        held.close()
        held6.close()
        # The relay cap: at the cap, further clients are reset.
        capped = await net.publish(LOCAL4)
        ports = net._ports  # type: ignore[attr-defined]
        while ports.relays:  # the closed relays above wind down
            await trio.sleep(0.01)
        ports._max_relays = 1
        first = trio.socket.socket()
        await first.connect(("127.0.0.1", capped.host_port))
        assert (await first.recv(100)).startswith(b"from ")
        await _expect_reset(("127.0.0.1", capped.host_port))
        first.close()

    net = run_with_engine(link, body, config=NetworkConfig())
    assert net.metrics_handle().snapshot()["connections"]["host_sockets"] == 0  # type: ignore[index]


#: A guest server that half-closes first, then counts what the client still sends.
HALF_CLOSE_SERVER = """
import socket, sys
srv = socket.create_server(('0.0.0.0', 7002))
while True:
    c, _ = srv.accept()
    try:
        c.sendall(b'bye')
        c.shutdown(socket.SHUT_WR)
        n = 0
        while d := c.recv(65536):
            n += len(d)
        if n:  # not the readiness probe
            open(sys.argv[1], 'w').write(str(n))
    except OSError:
        pass  # the readiness probe, gone already
    c.close()
"""


def test_guest_half_close_reaches_the_client_which_still_sends(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    link = guest_link_factory()
    count = tmp_path / "count"

    async def body(net: Network, servers: trio.Nursery) -> None:
        await link.guest.start(servers, ["python3", "-c", HALF_CLOSE_SERVER, str(count)])
        await link.guest.arun(["python3", "-c", _ready_check(7002)], timeout=10)
        mapping = await net.publish(PortMapping(0, 7002))
        with trio.socket.socket() as sock:
            await sock.connect(("127.0.0.1", mapping.host_port))
            received = b""
            while data := await sock.recv(100):  # the guest's FIN is our EOF
                received += data
            assert received.endswith(b"bye")
            for _ in range(100):
                await sock.send(b"z" * 1000)
            sock.shutdown(socket.SHUT_WR)
            assert await sock.recv(100) == b""  # and the guest closed quietly
        with trio.fail_after(5):
            while not count.exists() or not count.read_text():
                await trio.sleep(0.05)
        assert count.read_text() == "100000"

    run_with_engine(link, body, config=NetworkConfig())


def test_closed_guest_port_and_silent_guest_reset_the_client(
    guest_link_factory: GuestLinkFactory,
) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        closed = await net.publish(PortMapping(0, 7999))
        await _expect_reset(("127.0.0.1", closed.host_port))
        # A guest that never answers: its address is gone, the SYN is ignored.
        link.guest.ip("addr", "flush", "dev", "eth0")
        await _expect_reset(("127.0.0.1", closed.host_port))

    net = run_with_engine(link, body, config=NetworkConfig(), connect_timeout=1.0)
    snapshot = net.metrics_handle().snapshot()
    assert snapshot["connections"]["refused"] == 1  # type: ignore[index]
    assert snapshot["dropped"]["published_guest_timeout"] == 1  # type: ignore[index]


def test_ingress_policy_deny_resets(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    # Everything allowed but TCP from 127.0.0.1 to guest port 7000.
    config = NetworkConfig.from_dict(
        {
            "policy": {
                "default_egress": "allow",
                "default_ingress": "allow",
                "rules": [
                    {
                        "direction": "ingress",
                        "destination": {"cidr": "127.0.0.1/32"},
                        "protocols": ["tcp"],
                        "ports": [{"start": 7000, "end": 7000}],
                        "action": "deny",
                    }
                ],
            }
        }
    )

    async def body(net: Network, servers: trio.Nursery) -> None:
        await _start_guest(link, servers, TCP_SERVER, 7000)
        v4 = await net.publish(LOCAL4)
        v6 = await net.publish(PortMapping(0, 7000, host_bind=ipaddress.ip_address("::1")))
        await _expect_reset(("127.0.0.1", v4.host_port))
        # The peer is what the policy judges: ::1 is not denied.
        assert (await _client(("::1", v6.host_port), b"ok")).endswith(b"\nok")

    net = run_with_engine(link, body, config=config)
    assert net.metrics_handle().snapshot()["dropped"]["published_denied"] == 1  # type: ignore[index]


def test_real_source_for_a_peer_off_loopback(
    guest_link_factory: GuestLinkFactory, netns_factory: NetnsFactory
) -> None:
    link = guest_link_factory()
    peer = netns_factory("p")
    link.host.ip("link", "add", "tntpeer0", "type", "veth", "peer", "name", "tntpeer1")
    link.host.ip("link", "set", "tntpeer1", "netns", str(peer.path))
    link.host.ip("addr", "add", "10.199.0.1/24", "dev", "tntpeer0")
    link.host.ip("link", "set", "tntpeer0", "up")
    peer.ip("addr", "add", "10.199.0.2/24", "dev", "tntpeer1")
    peer.ip("link", "set", "tntpeer1", "up")
    peer.ip("link", "set", "lo", "up")

    async def body(net: Network, servers: trio.Nursery) -> None:
        await _start_guest(link, servers, TCP_SERVER, 7000)
        real = await net.publish(
            PortMapping(0, 7000, host_bind=ipaddress.ip_address("0.0.0.0"), real_source=True)
        )
        plain = await net.publish(
            PortMapping(0, 7000, host_bind=ipaddress.ip_address("10.199.0.1"))
        )
        script = (
            "import socket,sys\n"
            "for port in sys.argv[1:]:\n"
            "    s=socket.create_connection(('10.199.0.1',int(port)),timeout=5)\n"
            "    print(s.makefile().readline().split()[1])\n"
        )
        result = await peer.arun(
            ["python3", "-c", script, str(real.host_port), str(plain.host_port)], timeout=15
        )
        assert result.stdout.decode().split() == ["10.199.0.2", GW4]
        # A loopback client of the real-source mapping appears as the gateway.
        reply = await _client(("127.0.0.1", real.host_port))
        assert reply.startswith(f"from {GW4} ".encode())

    run_with_engine(link, body, config=NetworkConfig())


def test_udp_peers_are_mapped_and_answered(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()

    async def body(net: Network, servers: trio.Nursery) -> None:
        await _start_guest(link, servers, UDP_ECHO, 0)
        v4 = await net.publish(PortMapping(0, 7001, "udp"))
        v6 = await net.publish(PortMapping(0, 7001, "udp", ipaddress.ip_address("::1")))
        replies = []
        for family, address in (
            (socket.AF_INET, ("127.0.0.1", v4.host_port)),
            (socket.AF_INET, ("127.0.0.1", v4.host_port)),
            (socket.AF_INET6, ("::1", v6.host_port)),
        ):
            sock = trio.socket.socket(family, socket.SOCK_DGRAM)
            with sock:
                await sock.connect(address)
                for _attempt in range(50):  # the guest server may still be starting
                    await sock.send(b"ping")
                    with trio.move_on_after(0.2):
                        replies.append((await sock.recv(65535)).split())
                        break
        assert len(replies) == 3
        assert all(r[0] == GW4.encode() and r[2] == b"ping" for r in replies)
        ports = {int(r[1]) for r in replies}
        assert len(ports) == 3 and all(49152 <= p <= 65535 for p in ports)
        # A peer keeps its port while it talks; an idle mapping expires.
        net._ports._udp_idle = 0.3  # type: ignore[attr-defined]
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await sock.connect(("127.0.0.1", v4.host_port))
            seen = []
            for pause in (0.0, 0.1, 0.6):
                await trio.sleep(pause)
                await sock.send(b"again")
                with trio.fail_after(2):
                    seen.append(int((await sock.recv(100)).split()[1]))
        assert seen[0] == seen[1] != seen[2]

    run_with_engine(link, body, config=NetworkConfig())
