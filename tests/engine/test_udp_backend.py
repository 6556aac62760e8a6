"""UDP relaying through the backend alone (no root): replies, idle expiry."""

from __future__ import annotations

import os
import socket

import trio
import trio.testing

from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.engine.udp_relay import UdpRelay
from trionet.network import open_network
from trionet.policy import NetworkPolicy
from trionet.wire.checksum import pseudo_header_v4
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.frames import build_ipv4_frame
from trionet.wire.ipv4 import PROTO_UDP, parse_ipv4
from trionet.wire.udp import UdpHeader, parse_udp

GUEST_MAC = bytes.fromhex("026d73000002")
GATEWAY_MAC = bytes.fromhex("026d73000001")
GUEST = bytes([172, 16, 0, 2])
GATEWAY = bytes([172, 16, 0, 1])


def _datagram(port: int, payload: bytes) -> bytes:
    frame = build_ipv4_frame(
        GUEST_MAC, GATEWAY_MAC, GUEST, GATEWAY, UdpHeader(40000, port), payload=payload
    )
    return bytes(frame) + payload


async def _echo(sock: trio.socket.SocketType) -> None:
    while True:
        data, peer = await sock.recvfrom(65535)
        await sock.sendto(data.upper(), peer)


async def test_udp_round_trip_and_idle_expiry() -> None:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    async with trio.open_nursery() as nursery:
        server = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        nursery.start_soon(_echo, server)
        async with open_network(
            NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=HostRoutes(True, False)
        ) as net:
            backend = net.take_backend()
            await backend.send(_datagram(port, b"hello"))
            with trio.fail_after(5):
                frame = await backend.receive()
            _, payload = parse_ethernet(frame)
            ip, body = parse_ipv4(payload)
            assert (ip.src, ip.dst, ip.protocol) == (GATEWAY, GUEST, PROTO_UDP)
            udp, data = parse_udp(body, pseudo_header_v4(ip.src, ip.dst, PROTO_UDP, len(body)))
            assert (udp.src_port, udp.dst_port, bytes(data)) == (port, 40000, b"HELLO")
            flows = net.metrics_handle().snapshot()["udp_flows"]
            assert flows == {"opened": 1, "evicted": 0}

            # Traffic keeps the flow; 60 s of silence ends it.
            await trio.sleep(59)
            await backend.send(_datagram(port, b"again"))
            assert (await backend.receive())[-5:] == b"AGAIN"
            await trio.sleep(59)
            assert net.core.counters.udp_flows_opened == 1
            await trio.sleep(2)
            await backend.send(_datagram(port, b"new flow"))
            await backend.receive()
            assert net.core.counters.udp_flows_opened == 2
        nursery.cancel_scope.cancel()


test_udp_round_trip_and_idle_expiry.clock = trio.testing.MockClock(autojump_threshold=0)  # type: ignore[attr-defined]


async def test_running_out_of_file_descriptors_drops_flows_not_the_engine() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=HostRoutes(True, False)
    ) as net:
        backend = net.take_backend()
        open_fds = len(__import__("os").listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds + 10, hard))
        try:
            for port in range(20000, 20100):
                await backend.send(_datagram(port, b"x"))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        snapshot = net.metrics_handle().snapshot()
        assert snapshot["dropped"]["host_socket_error"] > 0  # type: ignore[index]
        assert 0 < snapshot["udp_flows"]["opened"] < 100  # type: ignore[index]
        # and the engine still works
        await backend.send(_datagram(20200, b"x"))
        assert net.core.counters.udp_flows_opened == snapshot["udp_flows"]["opened"] + 1  # type: ignore[index]


async def test_a_policy_that_raises_denies_instead_of_crashing() -> None:
    def broken_policy(flow: object) -> object:
        raise RuntimeError("bug in the embedder's policy")

    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()),
        0,
        routes=HostRoutes(True, False),
        policy=broken_policy,  # type: ignore[arg-type]
    ) as net:
        backend = net.take_backend()
        await backend.send(_datagram(9, b"x"))
        assert net.metrics_handle().snapshot()["dropped"] == {"policy_error": 1}
        assert net.core.counters.udp_flows_opened == 0


async def test_a_policy_evaluator_that_raises_denies_instead_of_crashing() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=HostRoutes(True, False)
    ) as net:

        def broken_egress(*args: object, **kwargs: object) -> object:
            raise RecursionError("a bug in the policy core")

        net.core.policy_evaluator.egress = broken_egress  # type: ignore[method-assign]
        backend = net.take_backend()
        await backend.send(_datagram(9, b"x"))
        assert net.metrics_handle().snapshot()["dropped"] == {"policy_error": 1}
        assert net.core.counters.udp_flows_opened == 0


async def test_the_least_recently_used_flow_is_evicted_and_its_socket_closed() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=HostRoutes(True, False)
    ) as net:
        backend = net.take_backend()
        relay = UdpRelay(net.core, max_flows=2)  # takes over the engine's UDP events
        fds_before = len(os.listdir("/proc/self/fd"))
        for port in (20001, 20002, 20001, 20003):  # 20002 is then the least recent
            await backend.send(_datagram(port, b"x"))
        assert (net.core.counters.udp_flows_opened, net.core.counters.udp_flows_evicted) == (3, 1)
        assert len(os.listdir("/proc/self/fd")) == fds_before + 2
        await backend.send(_datagram(20001, b"x"))  # still open: no new flow
        assert net.core.counters.udp_flows_opened == 3
        relay.close()  # open_network closes only the relay it made
        assert len(os.listdir("/proc/self/fd")) == fds_before
