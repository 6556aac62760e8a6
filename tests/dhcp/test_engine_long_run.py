"""A day of DHCP renewals and router advertisements through the engine, on Trio's MockClock.

The engine's one timer serves the periodic advertisements (the stack reports
them as a deadline) while a scripted client renews its lease at T1, as a
real one does for as long as the guest runs. With the clock jumping ahead
whenever everything sleeps, a simulated day takes well under a second.
"""

from __future__ import annotations

import trio
import trio.testing

from tests.dhcp.client import request
from tests.stack.guest import GUEST4, GUEST6_LL, GW4
from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.dhcp.config import DhcpConfig
from trionet.engine.backend import FrameBackend
from trionet.network import open_network
from trionet.wire.dhcpv4 import MessageType, Option, parse_dhcpv4
from trionet.wire.ethernet import ETHERTYPE_IPV4, parse_ethernet
from trionet.wire.frames import build_ipv4_frame, build_ipv6_frame
from trionet.wire.icmpv6 import RouterSolicitation
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.udp import UdpHeader, parse_udp

DUAL = HostRoutes(ipv4=True, ipv6=True)
DAY = 24 * 3600.0


async def test_a_day_of_renewals_and_advertisements() -> None:
    config = NetworkConfig(dhcp=DhcpConfig(lease_time=600, ra_interval=60))
    async with open_network(config, 0, routes=DUAL) as net:
        a = net.addressing
        assert a.ipv4 is not None
        guest_mac, gateway_mac = a.guest_mac.packed, a.gateway_mac.packed
        assert (a.ipv4.guest.packed, a.ipv4.gateway.packed) == (GUEST4, GW4)
        backend = net.take_backend()
        advertisements = 0

        async def dhcp_reply(backend: FrameBackend) -> bytes:
            nonlocal advertisements
            while True:
                frame = await backend.receive()
                eth, l3 = parse_ethernet(frame)
                if eth.ethertype != ETHERTYPE_IPV4:
                    advertisements += 1  # the only IPv6 the gateway sends here
                    continue
                _, l4 = parse_ipv4(l3)
                udp, data = parse_udp(l4, None)
                assert udp.dst_port == 68
                return bytes(data)

        def dhcp_frame(kind: MessageType, xid: int, *, renewing: bool) -> bytes:
            if renewing:
                message = request(kind, xid=xid, ciaddr=a.ipv4.guest.packed, chaddr=guest_mac)
                src, dst, dst_mac = a.ipv4.guest.packed, GW4, gateway_mac
            else:
                selecting = (
                    (Option.REQUESTED_ADDRESS, a.ipv4.guest.packed),
                    (Option.SERVER_ID, GW4),
                )
                message = request(kind, *selecting, xid=xid, chaddr=guest_mac)
                src, dst, dst_mac = bytes(4), b"\xff" * 4, b"\xff" * 6
            payload = message.to_bytes()
            head = build_ipv4_frame(
                guest_mac, dst_mac, src, dst, UdpHeader(68, 67), payload=payload
            )
            return bytes(head) + payload

        # The guest comes up: a router solicitation, then DHCP.
        rs = build_ipv6_frame(
            guest_mac,
            b"\x33\x33\x00\x00\x00\x02",
            GUEST6_LL,
            bytes.fromhex("ff020000000000000000000000000002"),
            RouterSolicitation(),
            hop_limit=255,
        )
        await backend.send(bytes(rs))
        await backend.send(dhcp_frame(MessageType.REQUEST, 0, renewing=False))
        ack = parse_dhcpv4(await dhcp_reply(backend))
        assert ack.message_type == MessageType.ACK
        start = trio.current_time()
        renewals = 0
        while trio.current_time() - start < DAY:
            t1 = int.from_bytes(ack.option(Option.RENEWAL_TIME) or b"", "big")
            await trio.sleep(t1)
            renewals += 1
            await backend.send(dhcp_frame(MessageType.REQUEST, renewals, renewing=True))
            ack = parse_dhcpv4(await dhcp_reply(backend))
            assert ack.message_type == MessageType.ACK and ack.xid == renewals
            dhcp = net.core.stack.dhcpv4
            assert dhcp is not None and dhcp.lease.active(trio.current_time())
        # Drain what the last wake-ups left.
        while backend.receive_batch_nowait():
            advertisements += 1
    assert renewals == DAY // 300
    # One solicited, three initial, then one a minute.
    assert DAY / 60 <= advertisements <= DAY / 60 + 4


test_a_day_of_renewals_and_advertisements.clock = trio.testing.MockClock(autojump_threshold=0)  # type: ignore[attr-defined]
