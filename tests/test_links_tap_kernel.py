"""TapDevice against a real Linux guest: a namespace whose eth0 is the TAP.

scapy decodes and builds frames here (an independent implementation; the
project's own codecs are tested elsewhere). Each test provokes the guest
kernel into sending something, checks what arrives through the TAP, and where
useful answers it and watches the effect in the guest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from tests.support.fixtures import GuestLink, GuestLinkFactory, NetnsFactory
from tests.support.netns import in_netns
from trionet.links.tap import TapDevice
from trionet.wire import virtio_net as vn

pytestmark = pytest.mark.root

GATEWAY_MAC = "02:6d:73:00:00:01"  # slot 0's gateway, as derive_addressing makes it
Match = Callable[[vn.VirtioNetHeader | None, Packet], bool]


class FrameReader:
    """Frames from a TAP in order; a batch read for one match keeps the rest for later."""

    def __init__(self, tap: TapDevice) -> None:
        self.tap = tap
        self.pending: deque[bytes] = deque()

    async def next(
        self, match: Match, timeout: float = 5.0
    ) -> tuple[vn.VirtioNetHeader | None, Packet]:
        """The next frame that matches; others (IPv6 RS, MLD...) are skipped."""
        with trio.fail_after(timeout):
            while True:
                while self.pending:
                    header, frame = self.tap.split(self.pending.popleft())
                    packet = Ether(bytes(frame))
                    if match(header, packet):
                        return header, packet
                await self.tap.wait_readable()
                self.pending.extend(self.tap.read_batch())


def send(tap: TapDevice, packet: Packet) -> None:
    parts: list[bytes] = [bytes(packet)]
    if tap.vnet_hdr_size:
        parts.insert(0, vn.NO_OFFLOAD.to_bytes())
    assert tap.write(parts)


def gw4(link: GuestLink) -> str:
    assert link.config.ipv4 is not None
    return str(link.config.ipv4.gateway)


def gw6(link: GuestLink) -> str:
    assert link.config.ipv6 is not None
    return str(link.config.ipv6.gateway)


def guest_ip4(link: GuestLink) -> str:
    assert link.config.ipv4 is not None
    return str(link.config.ipv4.interface.ip)


def guest_ip6(link: GuestLink) -> str:
    assert link.config.ipv6 is not None
    return str(link.config.ipv6.interface.ip)


@pytest.mark.parametrize("offload", [True, False])
def test_open_negotiates_offloads(netns_factory: NetnsFactory, offload: bool) -> None:
    host = netns_factory("h")
    with in_netns(host), TapDevice.open("tnt0", offload=offload) as tap:
        assert tap.name == "tnt0"
        # The device exists in the namespace the thread was in, not in the test's.
        assert "tnt0" in host.ip("link", "show").stdout
        if offload:
            assert tap.vnet_hdr_size == 10
            assert tap.offloads.csum and tap.offloads.tso4 and tap.offloads.tso6
        else:
            assert tap.vnet_hdr_size == 0
            assert not tap.offloads.csum
    assert "tnt0" not in host.ip("link", "show").stdout
    tap.close()  # idempotent


def test_attach_existing_fd_and_close_wakes_waiter(netns_factory: NetnsFactory) -> None:
    host = netns_factory("h")
    with in_netns(host), TapDevice.open("tnt0") as owner:
        tap = TapDevice.attach(os.dup(owner.fileno()))
        assert (tap.name, tap.vnet_hdr_size) == ("tnt0", 10)
        assert tap.offloads.tso4

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep, 0)

                async def waiter() -> None:
                    with pytest.raises(trio.ClosedResourceError):
                        await tap.wait_readable()

                nursery.start_soon(waiter)
                await trio.sleep(0.05)
                tap.close()

        trio.run(main)
        assert tap.closed


@pytest.mark.parametrize("offload", [True, False])
def test_guest_arp_and_ping_answered_through_tap(
    guest_link_factory: GuestLinkFactory, offload: bool
) -> None:
    started = time.monotonic()
    link = guest_link_factory(offload=offload)
    setup_s = time.monotonic() - started
    assert setup_s < 5, f"fixture took {setup_s:.2f}s"
    tap, guest_mac = link.tap, str(link.config.mac)
    assert "eth0" in link.guest.ip("link", "show").stdout

    async def main() -> subprocess.CompletedProcess[bytes]:
        reader = FrameReader(tap)
        async with trio.open_nursery() as nursery:
            ping = await link.guest.start(
                nursery, ["ping", "-c1", "-W5", gw4(link)], capture_stdout=True
            )
            _, request = await reader.next(
                lambda h, p: ARP in p and p[ARP].op == 1 and p[ARP].pdst == gw4(link)
            )
            assert request[Ether].src == guest_mac
            assert request[ARP].hwsrc == guest_mac and request[ARP].psrc == guest_ip4(link)
            send(
                tap,
                Ether(src=GATEWAY_MAC, dst=guest_mac)
                / ARP(
                    op=2,
                    hwsrc=GATEWAY_MAC,
                    psrc=gw4(link),
                    hwdst=guest_mac,
                    pdst=guest_ip4(link),
                ),
            )
            _, echo = await reader.next(
                lambda h, p: ICMP in p and p[ICMP].type == 8 and p[IP].dst == gw4(link)
            )
            assert echo[Ether].dst == GATEWAY_MAC  # the guest used our ARP answer
            send(
                tap,
                Ether(src=GATEWAY_MAC, dst=guest_mac)
                / IP(src=gw4(link), dst=guest_ip4(link))
                / ICMP(type=0, id=echo[ICMP].id, seq=echo[ICMP].seq)
                / bytes(echo[ICMP].payload),
            )
            with trio.fail_after(5):
                returncode = await ping.wait()
        return subprocess.CompletedProcess(ping.args, returncode)

    result = trio.run(main)
    assert result.returncode == 0
    neigh = link.guest.ip("neigh", "show", gw4(link), "dev", "eth0").stdout
    assert GATEWAY_MAC in neigh
    assert tap.counters.frames_out == 2 and tap.counters.frames_in >= 2


def test_guest_ndp_and_ping6_answered_through_tap(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    tap, guest_mac = link.tap, str(link.config.mac)

    async def main() -> int:
        reader = FrameReader(tap)
        async with trio.open_nursery() as nursery:
            ping = await link.guest.start(nursery, ["ping", "-6", "-c1", "-W5", gw6(link)])
            _, ns = await reader.next(
                lambda h, p: ICMPv6ND_NS in p and p[ICMPv6ND_NS].tgt == gw6(link)
            )
            assert ns[IPv6].dst.startswith("ff02::1:ff")  # solicited-node multicast
            send(
                tap,
                Ether(src=GATEWAY_MAC, dst=guest_mac)
                / IPv6(src=gw6(link), dst=ns[IPv6].src)
                / ICMPv6ND_NA(tgt=gw6(link), R=1, S=1, O=1)
                / ICMPv6NDOptDstLLAddr(lladdr=GATEWAY_MAC),
            )
            _, echo = await reader.next(lambda h, p: ICMPv6EchoRequest in p)
            assert echo[Ether].dst == GATEWAY_MAC
            send(
                tap,
                Ether(src=GATEWAY_MAC, dst=guest_mac)
                / IPv6(src=gw6(link), dst=guest_ip6(link))
                / ICMPv6EchoReply(
                    id=echo[ICMPv6EchoRequest].id,
                    seq=echo[ICMPv6EchoRequest].seq,
                    data=echo[ICMPv6EchoRequest].data,
                ),
            )
            with trio.fail_after(5):
                returncode = await ping.wait()
        return returncode

    assert trio.run(main) == 0
    assert GATEWAY_MAC in link.guest.ip("-6", "neigh", "show", gw6(link)).stdout


def _pin_gateway(link: GuestLink) -> None:
    """Give the guest permanent neighbour entries, so tests skip ARP/NDP."""
    for gw in (gw4(link), gw6(link)):
        link.guest.ip("neigh", "replace", gw, "lladdr", GATEWAY_MAC, "dev", "eth0")


UDP_SEND = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as s:
    s.sendto(b"u" * 100, (sys.argv[1], 9999))
"""


@pytest.mark.parametrize("offload", [True, False])
@pytest.mark.parametrize("family", [4, 6])
def test_guest_udp_checksum_partial_only_with_offload(
    guest_link_factory: GuestLinkFactory, offload: bool, family: int
) -> None:
    link = guest_link_factory(offload=offload)
    _pin_gateway(link)
    dst = gw4(link) if family == 4 else gw6(link)
    link.guest.run([sys.executable, "-c", UDP_SEND, dst])

    async def main() -> tuple[vn.VirtioNetHeader | None, Packet]:
        return await FrameReader(link.tap).next(lambda h, p: UDP in p and p[UDP].dport == 9999)

    header, packet = trio.run(main)
    assert bytes(packet[UDP].payload) == b"u" * 100
    l3 = 14 + (20 if family == 4 else 40)
    if offload:
        assert header is not None and header.needs_csum and header.gso is vn.GsoType.NONE
        assert (header.csum_start, header.csum_offset) == (l3, 6)
    else:
        assert header is None
        # A complete checksum: scapy's recomputation must agree with the guest's.
        sent = packet[UDP].chksum
        del packet[UDP].chksum
        assert Ether(bytes(packet))[UDP].chksum == sent


TCP_SEND = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.create_connection((sys.argv[1], 8080), timeout=10) as s:
    s.sendall(b"x" * int(sys.argv[2]))
"""
TCP_BYTES = 200_000


@pytest.mark.parametrize("offload", [True, False])
@pytest.mark.parametrize("family", [4, 6])
def test_guest_tcp_bulk_send_gso(
    guest_link_factory: GuestLinkFactory, offload: bool, family: int
) -> None:
    """A SYN-ACK and ACKs from the TAP side let the guest push 200 KB; offloads make it GSO."""
    link = guest_link_factory(offload=offload)
    _pin_gateway(link)
    tap, guest_mac = link.tap, str(link.config.mac)
    gw, me = (gw4(link), guest_ip4(link)) if family == 4 else (gw6(link), guest_ip6(link))
    ip_layer = IP if family == 4 else IPv6
    mss = 1460 if family == 4 else 1440
    frames: list[tuple[vn.VirtioNetHeader | None, Packet]] = []

    async def main() -> int:
        reader = FrameReader(tap)
        async with trio.open_nursery() as nursery:
            sender = await link.guest.start(
                nursery, [sys.executable, "-c", TCP_SEND, gw, str(TCP_BYTES)]
            )
            _, syn = await reader.next(lambda h, p: TCP in p and p[TCP].flags == "S")
            base = ip_layer(src=gw, dst=me)
            rcv_nxt = syn[TCP].seq + 1
            send(
                tap,
                Ether(src=GATEWAY_MAC, dst=guest_mac)
                / base
                / TCP(
                    sport=8080,
                    dport=syn[TCP].sport,
                    flags="SA",
                    seq=1000,
                    ack=rcv_nxt,
                    window=65535,
                    options=[("MSS", mss), ("WScale", 7)],
                ),
            )
            received = 0
            while received < TCP_BYTES:
                header, packet = await reader.next(
                    lambda h, p: TCP in p and len(p[TCP].payload) > 0
                )
                frames.append((header, packet))
                payload = bytes(packet[TCP].payload)
                # The guest never needs a retransmission here: the TAP loses nothing.
                assert packet[TCP].seq == rcv_nxt
                assert payload == b"x" * len(payload)
                rcv_nxt += len(payload)
                received += len(payload)
                send(
                    tap,
                    Ether(src=GATEWAY_MAC, dst=guest_mac)
                    / base
                    / TCP(
                        sport=8080,
                        dport=syn[TCP].sport,
                        flags="A",
                        seq=1001,
                        ack=rcv_nxt,
                        window=65535,
                    ),
                )
            with trio.fail_after(10):
                returncode = await sender.wait()
        return returncode

    assert trio.run(main) == 0
    sizes = [len(packet) for _, packet in frames]
    if offload:
        gso = [h for h, p in frames if h is not None and h.gso is not vn.GsoType.NONE]
        assert gso, f"no GSO frame among sizes {sizes}"
        kind = vn.GsoType.TCPV4 if family == 4 else vn.GsoType.TCPV6
        assert all(h.gso is kind and h.gso_size == mss and h.needs_csum for h in gso)
        assert max(sizes) > 14 + 1500
        l3 = 14 + (20 if family == 4 else 40)
        assert all((h.csum_start, h.csum_offset) == (l3, 16) for h in gso)
        assert all(h.hdr_len >= l3 + 20 for h in gso)
    else:
        assert max(sizes) <= 14 + 1500
        assert all(h is None for h, _ in frames)


TCP_SINK = """
import hashlib, socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family) as server:
    server.bind((sys.argv[1], 5001))
    server.listen()
    conn, _ = server.accept()
    digest, total = hashlib.sha256(), 0
    while data := conn.recv(1 << 16):
        digest.update(data)
        total += len(data)
    with open(sys.argv[2], "w") as out:
        out.write(f"{total} {digest.hexdigest()}")
"""


def _pseudo_header_sum(src: str, dst: str, length: int, family: int) -> int:
    """The folded, NOT inverted pseudo-header sum a partial-checksum frame carries."""
    raw = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    if family == 4:
        raw += bytes([0, 6]) + length.to_bytes(2, "big")
    else:
        raw += length.to_bytes(4, "big") + bytes([0, 0, 0, 6])
    total = sum(int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize("family", [4, 6])
def test_gso_frames_written_to_guest_arrive_intact(
    guest_link_factory: GuestLinkFactory, family: int, tmp_path: Path
) -> None:
    """What the engine will do for guest-bound bulk data: 60 KB GSO frames, checksum partial."""
    link = guest_link_factory()
    _pin_gateway(link)
    tap, guest_mac = link.tap, str(link.config.mac)
    gw, me = (gw4(link), guest_ip4(link)) if family == 4 else (gw6(link), guest_ip6(link))
    ip_layer = IP if family == 4 else IPv6
    l3 = 14 + (20 if family == 4 else 40)
    mss = 1460 if family == 4 else 1440
    chunks = [os.urandom(60_000), os.urandom(60_000)]
    result = tmp_path / "sink.txt"

    async def main() -> int:
        reader = FrameReader(tap)
        async with trio.open_nursery() as nursery:
            sink = await link.guest.start(
                nursery, [sys.executable, "-c", TCP_SINK, me, str(result)]
            )
            iss = 5000
            synack = None
            with trio.fail_after(5):
                while synack is None:  # until the sink listens (a RST before that)
                    send(
                        tap,
                        Ether(src=GATEWAY_MAC, dst=guest_mac)
                        / ip_layer(src=gw, dst=me)
                        / TCP(
                            sport=40000,
                            dport=5001,
                            flags="S",
                            seq=iss,
                            window=65535,
                            options=[("MSS", mss), ("WScale", 7)],
                        ),
                    )
                    _, reply = await reader.next(lambda h, p: TCP in p and p[TCP].sport == 5001)
                    if reply[TCP].flags == "SA":
                        synack = reply
                    else:
                        await trio.sleep(0.05)
            ack = synack[TCP].seq + 1
            seq = iss + 1

            def segment(flags: str, payload_len: int) -> bytes:
                ip = (
                    IP(src=gw, dst=me, len=40 + payload_len)
                    if family == 4
                    else IPv6(src=gw, dst=me, plen=20 + payload_len)
                )
                return bytes(
                    Ether(src=GATEWAY_MAC, dst=guest_mac)
                    / ip
                    / TCP(sport=40000, dport=5001, flags=flags, seq=seq, ack=ack, window=65535)
                )

            send(tap, Ether(segment("A", 0)))
            for chunk in chunks:
                headers = bytearray(segment("PA", len(chunk)))
                # Note: the guest trusts a partial checksum on local delivery, so a wrong
                # pseudo-header sum would pass here too; it matters once the guest forwards.
                csum = _pseudo_header_sum(gw, me, 20 + len(chunk), family)
                headers[l3 + 16 : l3 + 18] = csum.to_bytes(2, "big")
                vnet = vn.VirtioNetHeader.tcp_gso(
                    ipv6=family == 6, l4_offset=l3, headers_len=len(headers), mss=mss
                )
                # Header, packet headers and payload as separate parts: nothing is joined.
                assert tap.write([vnet.to_bytes(), headers, memoryview(chunk)])
                seq += len(chunk)
                # The guest acknowledges the whole super-frame: it took it as valid segments.
                await reader.next(
                    lambda h, p, want=seq: TCP in p and p[TCP].sport == 5001 and p[TCP].ack == want
                )
            send(tap, Ether(segment("FA", 0)))
            with trio.fail_after(5):
                returncode = await sink.wait()
        return returncode

    assert trio.run(main) == 0
    data = b"".join(chunks)
    assert result.read_text() == f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def _refusing_ioctl(
    monkeypatch: pytest.MonkeyPatch, refuse: Callable[[int, object], bool]
) -> list[tuple[int, object]]:
    """Make the kernel say EINVAL to chosen ioctls, as an older kernel would."""
    import errno
    import fcntl

    from trionet.links import tap as tap_module

    calls: list[tuple[int, object]] = []
    real = fcntl.ioctl

    def ioctl(fd: int, request: int, arg: object = 0, *rest: object) -> object:
        calls.append((request, arg))
        if refuse(request, arg):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, request, arg, *rest)  # type: ignore[call-overload]

    monkeypatch.setattr(tap_module.fcntl, "ioctl", ioctl)
    return calls


def test_offload_ladder_steps_down(
    netns_factory: NetnsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trionet.links import tap as t

    host = netns_factory("h")
    uso = t.TUN_F_USO4 | t.TUN_F_USO6
    tso = t.TUN_F_TSO4 | t.TUN_F_TSO6
    # A kernel without USO: TSO is still negotiated.
    calls = _refusing_ioctl(
        monkeypatch, lambda req, arg: req == t.TUNSETOFFLOAD and isinstance(arg, int) and arg & uso
    )
    with in_netns(host), TapDevice.open("tnt0") as tap:
        assert tap.offloads == t.TapOffloads(csum=True, tso4=True, tso6=True, uso=False)
    assert [a for r, a in calls if r == t.TUNSETOFFLOAD] == [
        t.TUN_F_CSUM | tso | uso,
        t.TUN_F_CSUM | tso,
    ]
    monkeypatch.undo()
    # No TSO either: checksum offload only.
    _refusing_ioctl(
        monkeypatch,
        lambda req, arg: req == t.TUNSETOFFLOAD and isinstance(arg, int) and arg & (uso | tso),
    )
    with in_netns(host), TapDevice.open("tnt1") as tap:
        assert tap.offloads == t.TapOffloads(csum=True) and tap.vnet_hdr_size == 10
    monkeypatch.undo()
    # Every offload refused: the vnet header stays, frames are plain.
    _refusing_ioctl(monkeypatch, lambda req, arg: req == t.TUNSETOFFLOAD and arg != 0)
    with in_netns(host), TapDevice.open("tnt2") as tap:
        assert tap.offloads == t.NO_OFFLOADS and tap.vnet_hdr_size == 10
    monkeypatch.undo()
    # No vnet header at all: plain frames without a header.
    _refusing_ioctl(
        monkeypatch,
        lambda req, arg: (
            req == t.TUNSETIFF
            and isinstance(arg, bytes)
            and int.from_bytes(arg[16:18], "little") & t.IFF_VNET_HDR
        ),
    )
    with in_netns(host), TapDevice.open("tnt3") as tap:
        assert tap.vnet_hdr_size == 0 and tap.offloads == t.NO_OFFLOADS


def test_attach_rejects_tun_device(netns_factory: NetnsFactory) -> None:
    import fcntl
    import struct

    from trionet.links import tap as t

    host = netns_factory("h")
    with in_netns(host):
        fd = os.open("/dev/net/tun", os.O_RDWR)
        try:
            fcntl.ioctl(fd, t.TUNSETIFF, struct.pack("16sH22x", b"tun9", 0x0001 | t.IFF_NO_PI))
            with pytest.raises(t.TapError, match="TUN"):
                TapDevice.attach(fd)
        finally:
            os.close(fd)


def test_mtu_65520_frame_read_whole(guest_link_factory: GuestLinkFactory) -> None:
    """A frame near 64 KB fits one read: the read buffer never truncates."""
    from tests.support.fixtures import default_guest_env
    from trionet.addressing import HostRoutes
    from trionet.config import InterfaceOverrides, NetworkConfig

    env = default_guest_env(
        config=NetworkConfig(interface=InterfaceOverrides(mtu=65520)),
        routes=HostRoutes(ipv4=True, ipv6=False),
    )
    link = guest_link_factory(env, offload=False)
    link.guest.ip("neigh", "replace", gw4(link), "lladdr", GATEWAY_MAC, "dev", "eth0")
    sender = UDP_SEND.replace('b"u" * 100', 'b"u" * 65_000')
    link.guest.run([sys.executable, "-c", sender, gw4(link)])

    async def main() -> tuple[vn.VirtioNetHeader | None, Packet]:
        return await FrameReader(link.tap).next(lambda h, p: UDP in p)

    header, packet = trio.run(main)
    assert header is None
    assert len(packet) == 14 + 20 + 8 + 65_000
    assert bytes(packet[UDP].payload) == b"u" * 65_000


UDP_GSO_SEND = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as s:
    s.setsockopt(socket.SOL_UDP, 103, 1000)  # UDP_SEGMENT: the kernel cuts 1000-byte datagrams
    s.sendto(bytes(range(250)) * 40, (sys.argv[1], 9998))
"""


@pytest.mark.parametrize(("offload", "uso"), [(True, True), (True, False), (False, False)])
def test_guest_udp_segmentation_arrives_as_uso_super_frame(
    guest_link_factory: GuestLinkFactory, offload: bool, uso: bool
) -> None:
    """With USO negotiated the engine must itself cut UDP_L4 frames into datagrams."""
    link = guest_link_factory(offload=offload, uso=uso)
    assert link.tap.offloads.uso == uso
    assert link.tap.offloads.tso4 == offload
    _pin_gateway(link)
    link.guest.run([sys.executable, "-c", UDP_GSO_SEND, gw4(link)])

    async def main() -> list[tuple[vn.VirtioNetHeader | None, Packet]]:
        reader, got = FrameReader(link.tap), []
        total = 0
        while total < 10_000:
            header, packet = await reader.next(lambda h, p: UDP in p and p[UDP].dport == 9998)
            got.append((header, packet))
            total += len(packet[UDP].payload)
        return got

    frames = trio.run(main)
    payload = b"".join(bytes(p[UDP].payload) for _, p in frames)
    assert payload == bytes(range(250)) * 40
    if uso:
        [(header, _)] = frames
        assert header is not None and header.gso is vn.GsoType.UDP_L4
        assert header.gso_size == 1000 and header.needs_csum
        assert (header.csum_start, header.csum_offset) == (34, 6)
    else:
        assert len(frames) == 10
        assert all(len(p[UDP].payload) == 1000 for _, p in frames)
