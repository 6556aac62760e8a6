"""Capture the fuzz seed corpus from a real Linux kernel (run as root).

    python -m fuzz.capture_corpus [--out fuzz/corpus]

Creates a network namespace holding a TAP device whose other end is this
process, configures addresses, static neighbours and a forwarding path to a
second TAP with a smaller MTU, then makes the kernel emit the frames the
parsers must handle, reading each from the TAP file descriptor:

- ARP requests (an unresolved IPv4 neighbour) and an ARP reply (to our request);
- NDP: router solicitation, DAD and address-resolution neighbour
  solicitations, a neighbour advertisement (to our solicitation), MLDv2
  reports (hop-by-hop extension header);
- TCP SYNs over IPv4 and IPv6 (Linux sends MSS, SACK-permitted, timestamps,
  window scale), and, after we answer one, ACKs with SACK blocks, data and FIN;
- fragmented UDP over IPv4 and IPv6 (a 3000-byte datagram at MTU 1500);
- ICMP errors: port unreachable, fragmentation needed / packet too big,
  time exceeded (v4 and v6), and echo replies.

Frames we inject are built with trionet.wire; the kernel answering them is a
check on those builders too. Every frame read is stored once under a name
saying what it is, and the namespace is removed afterwards whatever happens.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

from trionet.wire import ParseError
from trionet.wire.arp import ArpOperation, ArpPacket, parse_arp
from trionet.wire.dhcpv4 import DHCP_SERVER_PORT, MessageType, parse_dhcpv4
from trionet.wire.dhcpv6 import DHCPV6_SERVER_PORT, parse_dhcpv6
from trionet.wire.dhcpv6 import MessageType as Dhcpv6Type
from trionet.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ethernet
from trionet.wire.frames import build_arp_frame, build_ipv4_frame, build_ipv6_frame
from trionet.wire.icmpv4 import Icmpv4Echo, parse_icmpv4
from trionet.wire.icmpv6 import Icmpv6Echo, NeighborSolicitation, parse_icmpv6
from trionet.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, parse_ipv4
from trionet.wire.ipv6 import NEXT_HEADER_ICMPV6, parse_ipv6
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions, parse_tcp
from trionet.wire.udp import UdpHeader, parse_udp

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000

TAP = "tncap0"
FAR_TAP = "tncap1"
KERNEL_MAC = bytes.fromhex("02aa00000002")
PEER_MAC = bytes.fromhex("02aa00000001")
KERNEL_V4 = bytes([10, 77, 0, 2])
PEER_V4 = bytes([10, 77, 0, 1])
FAR_V4 = bytes([10, 78, 0, 5])  # behind the second TAP, MTU 1280
KERNEL_V6 = bytes.fromhex("fd770000000000000000000000000002")
PEER_V6 = bytes.fromhex("fd770000000000000000000000000001")
FAR_V6 = bytes.fromhex("fd780000000000000000000000000005")
SOLICITED_NODE_KERNEL = bytes.fromhex("ff0200000000000000000001ff000002")
SOLICITED_NODE_MAC = bytes.fromhex("3333ff000002")

DEFAULT_OUT = Path(__file__).parent / "corpus"


class Capture:
    """A namespace with a TAP whose frames this object reads and writes."""

    def __init__(self) -> None:
        self.ns = f"trionet-cap-{os.getpid()}"
        self.fd = -1
        self.far_fd = -1
        self.frames: list[bytes] = []
        self.background: list[subprocess.Popen[bytes]] = []

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.ns, *args], check=True)

    def sysctl(self, name: str, value: str) -> None:
        self.in_ns(["sysctl", "-q", "-w", f"{name}={value}"])

    def in_ns(self, argv: list[str]) -> None:
        subprocess.run(["ip", "netns", "exec", self.ns, *argv], check=True, timeout=20)

    def python_in_ns(self, code: str, *, wait: bool = True) -> None:
        argv = ["ip", "netns", "exec", self.ns, sys.executable, "-c", code]
        if wait:
            subprocess.run(argv, check=True, timeout=20)
        else:
            self.background.append(subprocess.Popen(argv))

    def __enter__(self) -> Capture:
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        try:
            self._setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _setup(self) -> None:
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", TAP.encode(), IFF_TAP | IFF_NO_PI))
        subprocess.run(["ip", "link", "set", TAP, "netns", self.ns], check=True)
        self.ip("link", "set", "lo", "up")
        for name, value in [
            ("net.ipv4.icmp_ratelimit", "0"),
            ("net.ipv6.icmp.ratelimit", "0"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv6.conf.default.router_solicitation_delay", "0"),
        ]:
            self.sysctl(name, value)
        self.ip("link", "set", TAP, "address", KERNEL_MAC.hex(":"), "mtu", "1500")
        self.ip("addr", "add", "10.77.0.2/24", "dev", TAP)
        self.ip("-6", "addr", "add", "fd77::2/64", "dev", TAP)
        # A second TAP, never read, is the narrower next hop for forwarding errors.
        self.far_fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
        ifreq = struct.pack("16sH", FAR_TAP.encode(), IFF_TAP | IFF_NO_PI)
        fcntl.ioctl(self.far_fd, TUNSETIFF, ifreq)
        subprocess.run(["ip", "link", "set", FAR_TAP, "netns", self.ns], check=True)
        self.ip("link", "set", FAR_TAP, "mtu", "1280", "up")
        self.ip("addr", "add", "10.78.0.1/24", "dev", FAR_TAP)
        self.ip("-6", "addr", "add", "fd78::1/64", "dev", FAR_TAP, "nodad")

    def __exit__(self, *exc: object) -> None:
        for proc in self.background:
            proc.kill()
            proc.wait()
        for fd in (self.fd, self.far_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.far_fd = -1
        subprocess.run(["ip", "netns", "del", self.ns], check=False)

    def drain(self, seconds: float) -> list[bytes]:
        """Read every frame the kernel emits in the next ``seconds``."""
        got: list[bytes] = []
        stop = time.monotonic() + seconds
        while (left := stop - time.monotonic()) > 0:
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                break
            while True:
                try:
                    got.append(os.read(self.fd, 65536))
                except BlockingIOError:
                    break
        self.frames.extend(got)
        return got

    def send(self, frame: bytes | bytearray, payload: bytes = b"") -> None:
        os.write(self.fd, bytes(frame) + payload)


def _tcp_syn(frames: list[bytes], dst_port: int) -> tuple[bytes, TcpHeader] | None:
    for frame in frames:
        try:
            eth, l3 = parse_ethernet(frame)
            if eth.ethertype != ETHERTYPE_IPV4:
                continue
            ip4, l4 = parse_ipv4(l3)
            if ip4.protocol != PROTO_TCP:
                continue
            tcp, _ = parse_tcp(l4, None)
        except ParseError:
            continue
        if tcp.dst_port == dst_port and tcp.flags == TcpFlags.SYN:
            return frame, tcp
    return None


def capture(cap: Capture) -> None:
    cap.ip("link", "set", TAP, "up")
    # Link up: router solicitation, DAD neighbour solicitation, MLD reports.
    cap.drain(2.5)
    cap.ip("neigh", "add", "10.77.0.1", "lladdr", PEER_MAC.hex(":"), "dev", TAP)
    cap.ip("-6", "neigh", "add", "fd77::1", "lladdr", PEER_MAC.hex(":"), "dev", TAP)
    cap.ip("route", "add", "default", "via", "10.77.0.1")
    cap.ip("-6", "route", "add", "default", "via", "fd77::1")

    # ARP and NDP address resolution for neighbours that never answer.
    cap.python_in_ns(
        "import socket\n"
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('10.77.0.3', 9))\n"
        "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'x', ('fd77::3', 9))\n"
    )
    cap.drain(0.5)

    # Fragmented UDP: 3000 bytes at MTU 1500, both families.
    cap.python_in_ns(
        "import socket\n"
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(bytes(3000), ('10.77.0.1', 9))\n"
        "socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(bytes(3000), ('fd77::1', 9))\n"
    )
    cap.drain(0.3)

    # TCP: an IPv6 SYN left unanswered, and an IPv4 connection we answer
    # so the kernel also sends ACKs with SACK blocks, data and a FIN.
    cap.python_in_ns(
        "import socket\n"
        "s = socket.socket(socket.AF_INET6); s.settimeout(0.5)\n"
        "try: s.connect(('fd77::1', 8080))\n"
        "except OSError: pass\n"
    )
    cap.python_in_ns(
        "import socket, time\n"
        "s = socket.create_connection(('10.77.0.1', 80), timeout=5)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); time.sleep(1.5); s.close(); time.sleep(1)\n",
        wait=False,
    )
    found = _tcp_syn(cap.drain(0.5), 80)
    if found is None:
        raise RuntimeError("the kernel sent no IPv4 SYN")
    _, syn = found
    iss = 0x10000000
    tsval = syn.options.timestamp[0] if syn.options.timestamp else 0
    synack = TcpHeader(
        80,
        syn.src_port,
        iss,
        syn.seq + 1,
        TcpFlags.SYN | TcpFlags.ACK,
        65535,
        options=TcpOptions(1460, 7, True, (), (1000, tsval)),
    )
    cap.send(build_ipv4_frame(PEER_MAC, KERNEL_MAC, PEER_V4, KERNEL_V4, synack))
    cap.drain(0.3)
    # Two out-of-order segments: the kernel's duplicate ACKs carry SACK blocks.
    for gap, ts in ((1000, 1001), (3000, 1002)):
        segment = TcpHeader(
            80,
            syn.src_port,
            iss + 1 + gap,
            syn.seq + 1,
            TcpFlags.ACK | TcpFlags.PSH,
            512,
            options=TcpOptions(timestamp=(ts, tsval)),
        )
        data = bytes(100)
        cap.send(
            build_ipv4_frame(PEER_MAC, KERNEL_MAC, PEER_V4, KERNEL_V4, segment, payload=data), data
        )
        cap.drain(0.2)
    cap.drain(2.0)  # the client's FIN

    # ICMP errors and replies to frames we inject.
    udp = UdpHeader(40000, 9)
    data = b"ping"
    for frame in (
        build_ipv4_frame(PEER_MAC, KERNEL_MAC, PEER_V4, KERNEL_V4, udp, payload=data),
        build_ipv6_frame(PEER_MAC, KERNEL_MAC, PEER_V6, KERNEL_V6, udp, payload=data),
        build_ipv4_frame(
            PEER_MAC, KERNEL_MAC, PEER_V4, KERNEL_V4, Icmpv4Echo(True, 7, 1), payload=data
        ),
        build_ipv6_frame(
            PEER_MAC, KERNEL_MAC, PEER_V6, KERNEL_V6, Icmpv6Echo(True, 7, 1), payload=data
        ),
    ):
        cap.send(frame, data)
        cap.drain(0.2)
    cap.send(
        build_arp_frame(
            PEER_MAC,
            b"\xff" * 6,
            ArpPacket(ArpOperation.REQUEST, PEER_MAC, PEER_V4, bytes(6), KERNEL_V4),
        )
    )
    cap.drain(0.2)
    cap.send(
        build_ipv6_frame(
            PEER_MAC,
            SOLICITED_NODE_MAC,
            PEER_V6,
            SOLICITED_NODE_KERNEL,
            NeighborSolicitation(KERNEL_V6, PEER_MAC),
            hop_limit=255,
        )
    )
    cap.drain(0.2)

    # Forwarding errors: too big for the far TAP's MTU 1280, and TTL/hop limit 1.
    cap.sysctl("net.ipv4.ip_forward", "1")
    cap.sysctl("net.ipv6.conf.all.forwarding", "1")
    big = bytes(1400)
    cap.send(build_ipv4_frame(PEER_MAC, KERNEL_MAC, PEER_V4, FAR_V4, udp, payload=big), big)
    cap.drain(0.2)
    cap.send(build_ipv6_frame(PEER_MAC, KERNEL_MAC, PEER_V6, FAR_V6, udp, payload=big), big)
    cap.drain(0.2)
    cap.send(
        build_ipv4_frame(PEER_MAC, KERNEL_MAC, PEER_V4, FAR_V4, udp, payload=data, ttl=1), data
    )
    cap.drain(0.2)
    cap.send(
        build_ipv6_frame(PEER_MAC, KERNEL_MAC, PEER_V6, FAR_V6, udp, payload=data, hop_limit=1),
        data,
    )
    cap.drain(0.3)


def describe(frame: bytes) -> str:
    """A file-name slug for what a frame is, from trionet's own parse."""
    try:
        eth, l3 = parse_ethernet(frame)
        if eth.ethertype == ETHERTYPE_ARP:
            arp = parse_arp(l3)
            return "arp-request" if arp.operation == ArpOperation.REQUEST else "arp-reply"
        if eth.ethertype == ETHERTYPE_IPV4:
            ip4, l4 = parse_ipv4(l3)
            if ip4.is_fragment:
                more = "-more" if ip4.more_fragments else ""
                return f"ipv4-fragment-{ip4.frag_offset}{more}"
            if ip4.protocol == PROTO_TCP:
                return f"ipv4-{_tcp_slug(parse_tcp(l4, None)[0])}"
            if ip4.protocol == PROTO_UDP:
                udp4, data4 = parse_udp(l4, None)
                if udp4.dst_port == DHCP_SERVER_PORT:
                    kind = parse_dhcpv4(data4).message_type
                    return f"ipv4-udp-dhcp-{MessageType(kind).name.lower() if kind else 'none'}"
                return "ipv4-udp"
            if ip4.protocol == PROTO_ICMP:
                return f"ipv4-icmp-{_icmp_slug(parse_icmpv4(l4)[0])}"
            return f"ipv4-proto{ip4.protocol}"
        if eth.ethertype == ETHERTYPE_IPV6:
            ip6, l4 = parse_ipv6(l3)
            if ip6.fragment is not None:
                more = "-more" if ip6.fragment.more else ""
                return f"ipv6-fragment-{ip6.fragment.offset}{more}"
            if ip6.next_header == PROTO_TCP:
                return f"ipv6-{_tcp_slug(parse_tcp(l4, None)[0])}"
            if ip6.next_header == PROTO_UDP:
                udp6, data6 = parse_udp(l4, None)
                if udp6.dst_port == DHCPV6_SERVER_PORT:
                    kind6 = parse_dhcpv6(data6).msg_type
                    return f"ipv6-udp-dhcpv6-{Dhcpv6Type(kind6).name.lower()}"
                return "ipv6-udp"
            if ip6.next_header == NEXT_HEADER_ICMPV6:
                return f"ipv6-icmpv6-{_icmp_slug(parse_icmpv6(l4, None)[0])}"
            return f"ipv6-nh{ip6.next_header}"
        return f"ethertype-{eth.ethertype:04x}"
    except ParseError as exc:
        return f"unparsed-{exc.reason.split(':')[0]}"


def _icmp_slug(message: object) -> str:
    name = type(message).__name__.removeprefix("Icmpv4").removeprefix("Icmpv6").lower()
    if isinstance(message, Icmpv4Echo | Icmpv6Echo):
        return "echo-request" if message.request else "echo-reply"
    for field in ("type", "code"):
        if hasattr(message, field):
            name += f"-{field}{getattr(message, field)}"
    return name


def _tcp_slug(tcp: TcpHeader) -> str:
    names = [flag.name.lower() for flag in TcpFlags if flag in tcp.flags and flag.name]
    slug = "tcp-" + "-".join(names)
    if tcp.options.sack_blocks:
        slug += f"-sack{len(tcp.options.sack_blocks)}"
    return slug


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.capture_corpus", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespace and TAP device)", file=sys.stderr)
        return 2
    with Capture() as cap:
        capture(cap)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.bin"):
        old.unlink()
    seen: set[bytes] = set()
    index = 0
    for frame in cap.frames:
        if frame in seen:
            continue
        seen.add(frame)
        index += 1
        path = args.out / f"{index:02d}-{describe(frame)}.bin"
        path.write_bytes(frame)
        print(f"{path.name:50} {len(frame):5d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
