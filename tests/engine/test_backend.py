"""The engine through its frame backend alone, as a VMM sees it (no root needed)."""

from __future__ import annotations

import pytest
import trio

from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.engine.backend import FrameBackend
from trionet.engine.metrics import EngineCounters
from trionet.network import open_network
from trionet.policy import NetworkPolicy
from trionet.wire.arp import ArpOperation, ArpPacket, parse_arp
from trionet.wire.ethernet import ETHERTYPE_ARP, parse_ethernet
from trionet.wire.frames import build_arp_frame, build_ipv4_frame
from trionet.wire.icmpv4 import Icmpv4Echo, parse_icmpv4
from trionet.wire.ipv4 import parse_ipv4

DUAL = HostRoutes(ipv4=True, ipv6=True)
GUEST_MAC = bytes.fromhex("026d73000002")
GATEWAY_MAC = bytes.fromhex("026d73000001")
GUEST = bytes([172, 16, 0, 2])
GATEWAY = bytes([172, 16, 0, 1])


def _arp_request() -> bytes:
    packet = ArpPacket(ArpOperation.REQUEST, GUEST_MAC, GUEST, bytes(6), GATEWAY)
    return bytes(build_arp_frame(GUEST_MAC, b"\xff" * 6, packet))


async def test_arp_and_ping_through_the_backend() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=DUAL
    ) as net:
        backend = net.take_backend()
        await backend.send(_arp_request())
        eth, payload = parse_ethernet(await backend.receive())
        assert (eth.dst, eth.src, eth.ethertype) == (GUEST_MAC, GATEWAY_MAC, ETHERTYPE_ARP)
        reply = parse_arp(payload)
        assert (reply.operation, reply.sender_mac, reply.sender_ip) == (
            ArpOperation.REPLY,
            GATEWAY_MAC,
            GATEWAY,
        )

        data = b"ping payload"
        echo = Icmpv4Echo(True, 0x1234, 7)
        frame = build_ipv4_frame(GUEST_MAC, GATEWAY_MAC, GUEST, GATEWAY, echo, payload=data)
        await backend.send_batch([bytes(frame) + data])
        _, payload = parse_ethernet(await backend.receive())
        ip, body = parse_ipv4(payload)
        assert (ip.src, ip.dst) == (GATEWAY, GUEST)
        message, echoed = parse_icmpv4(body)
        assert message == Icmpv4Echo(False, 0x1234, 7)
        assert bytes(echoed) == data

        metrics = net.metrics_handle()
        assert metrics.tx_bytes() == len(_arp_request()) + len(frame) + len(data)
        assert metrics.rx_bytes() > 0


async def test_malformed_frames_are_counted_not_fatal() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=DUAL
    ) as net:
        backend = net.take_backend()
        await backend.send_batch(
            [b"", b"\x00" * 13, GATEWAY_MAC + GUEST_MAC + b"\x08\x00" + b"\x45"]
        )
        assert backend.receive_batch_nowait() == []
        dropped = net.metrics_handle().snapshot()["dropped"]
        assert dropped == {"malformed": 3}


async def test_take_backend_is_one_shot() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=DUAL
    ) as net:
        net.take_backend()
        with pytest.raises(RuntimeError, match="already taken"):
            net.take_backend()


async def test_backend_ends_with_the_engine() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=DUAL
    ) as net:
        backend = net.take_backend()
    with pytest.raises(trio.EndOfChannel):
        await backend.receive()
    with pytest.raises(trio.ClosedResourceError):
        await backend.send(_arp_request())


async def test_termination_handle_runs_the_hook_once_and_ends_everything() -> None:
    calls: list[str] = []
    reached_end = False
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 0, routes=DUAL
    ) as net:
        handle = net.termination_handle()
        handle.set_hook(calls.append)
        assert handle.reason is None
        handle.terminate("secret sent to the wrong host")
        handle.terminate("second reason is ignored")
        await trio.sleep_forever()
        reached_end = True
    assert calls == ["secret sent to the wrong host"]
    assert handle.reason == "secret sent to the wrong host"
    assert not reached_end


async def test_guest_env_vars_and_no_ca_yet() -> None:
    async with open_network(
        NetworkConfig(policy=NetworkPolicy.allow_all()), 3, routes=HostRoutes(True, False)
    ) as net:
        assert dict(net.guest_env_vars())["MSB_NET_IPV4"] == (
            "addr=172.16.0.14/30,gw=172.16.0.13,dns=172.16.0.13"
        )
        assert net.ca_cert_pem() is None
        assert net.host_cas_cert_pem() is None


async def test_a_cancelled_receive_keeps_its_frames() -> None:
    backend = FrameBackend(lambda frames, valid: None, EngineCounters(), lambda v4, v6: None)
    backend.deliver([b"frame-1", b"frame-2"])
    with trio.CancelScope() as scope:
        scope.cancel()  # a receive with a timeout that just expired
        await backend.receive_batch()
    assert backend.receive_batch_nowait() == [b"frame-1", b"frame-2"]
