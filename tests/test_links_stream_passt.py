"""StreamLink against passt, an independent implementation of the same framing.

passt (Debian's package) runs in a namespace of the test's own whose only
route goes through a veth pair, so nothing it does reaches a real network.
It listens on a unix socket as it would for QEMU ``-netdev stream``; we
connect as the VM would and trade real protocol frames with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from tests.support.fixtures import NetnsFactory
from tests.support.netns import Netns
from tests.support.real import need_tool
from trionet.links.stream import StreamLink

pytestmark = pytest.mark.root

VM_MAC = "02:00:00:00:00:05"


def _require_passt() -> str:
    return need_tool("passt", "passt")


@pytest.fixture
def passt_dir(socket_dir: Path) -> Path:
    # passt drops to user nobody before binding, so the directory must let it in.
    socket_dir.chmod(0o777)
    return socket_dir


def _passt_namespace(netns_factory: NetnsFactory) -> Netns:
    ns = netns_factory("p")
    ns.ip_batch(
        [
            "link add v0 type veth peer name v1",
            "address add 10.9.0.2/24 dev v0",
            "link set v0 up",
            "link set v1 up",
            "route add default via 10.9.0.1 dev v0",
        ]
    )
    return ns


async def _connect(path: Path) -> StreamLink:
    with trio.fail_after(5):
        while True:
            try:
                return StreamLink(await trio.open_unix_socket(str(path)))
            except OSError:
                await trio.sleep(0.02)  # passt not listening yet


async def _next(link: StreamLink, want: type, pending: list[bytes]) -> Ether:
    with trio.fail_after(5):
        while True:
            while pending:
                packet = Ether(pending.pop(0))
                if want in packet:
                    return packet
            frames = await link.receive_frames()
            assert frames, f"passt ended the session: {link.end_reason}"
            pending += frames


def test_stream_link_talks_to_passt(netns_factory: NetnsFactory, passt_dir: Path) -> None:
    passt = _require_passt()
    ns = _passt_namespace(netns_factory)
    sock = passt_dir / "passt.sock"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            # -1: serve one VM connection, then exit.
            process = await ns.start(nursery, [passt, "-f", "-q", "-1", "-s", str(sock)])
            link = await _connect(sock)
            pending: list[bytes] = []
            arp = Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
                op=1, hwsrc=VM_MAC, psrc="10.9.0.2", pdst="10.9.0.1"
            )
            discover = (
                Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff")
                / IP(src="0.0.0.0", dst="255.255.255.255")
                / UDP(sport=68, dport=67)
                / BOOTP(chaddr=bytes.fromhex(VM_MAC.replace(":", "")), xid=0x1234)
                / DHCP(options=[("message-type", "discover"), "end"])
            )
            # Both frames in one write: passt must split them by their lengths.
            assert await link.send_frames([bytes(arp), bytes(discover)])
            reply = await _next(link, ARP, pending)
            assert reply[ARP].op == 2 and reply[ARP].psrc == "10.9.0.1"
            assert reply[Ether].dst == VM_MAC
            offer = await _next(link, BOOTP, pending)
            assert offer[BOOTP].xid == 0x1234 and offer[BOOTP].yiaddr == "10.9.0.2"
            assert link.counters.frames_in >= 2 and link.counters.malformed_in == 0
            # The VM goes away: passt (-1) exits by itself.
            await link.aclose()
            with trio.fail_after(5):
                await process.wait()

    trio.run(main)


def test_passt_going_away_ends_the_session(netns_factory: NetnsFactory, passt_dir: Path) -> None:
    passt = _require_passt()
    ns = _passt_namespace(netns_factory)
    sock = passt_dir / "passt.sock"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            process = await ns.start(nursery, [passt, "-f", "-q", "-1", "-s", str(sock)])
            link = await _connect(sock)
            process.kill()
            with trio.fail_after(5):
                assert await link.receive_frames() == []
            # A killed peer closes (EOF) or, with data unread, resets: both end the session.
            reason = link.end_reason or ""
            assert reason == "eof" or "reset" in reason, reason
            assert not await link.send_frames([b"\x00" * 60])

    trio.run(main)
