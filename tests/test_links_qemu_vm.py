"""A real VM (Debian's kernel under QEMU) whose NIC is a StreamLink or a DgramLink.

The test plays the gateway with scapy: it answers the guest's ARP and NDP
and its pings, over nothing but the frames the StreamLink carries. The guest
configures eth0 from the guest variables like any guest init and pings the
gateway on both families; its exit status comes back on the serial console.
This is ``trionet serve --qemu-stream`` / ``--unixgram`` minus the engine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import trio
from scapy.layers.inet import ICMP, IP
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

from tests.support import real
from tests.support.fixtures import default_guest_env
from tests.support.qemu_guest import (
    EXIT_MARKER,
    build_initramfs,
    find_guest_kernel,
    qemu_argv,
)
from trionet.guest_env import parse_guest_env
from trionet.links.dgram import DgramLink
from trionet.links.stream import StreamLink, open_unix_stream_listener

GATEWAY_MAC = "02:6d:73:00:00:01"


def _require_vm_tools() -> None:
    missing = [t for t in ("qemu-system-x86_64", "busybox", "cpio") if shutil.which(t) is None]
    if find_guest_kernel() is None:
        missing.append("a guest kernel (linux-image-amd64)")
    if missing:
        real.missing(f"needs {', '.join(missing)}")


def _answer(packet: Packet, guest_mac: str) -> tuple[str, Packet] | None:
    """The gateway's reply to one guest frame, named for what it answers, if any."""
    eth = Ether(src=GATEWAY_MAC, dst=guest_mac)
    if ARP in packet and packet[ARP].op == 1:
        return "arp", eth / ARP(
            op=2,
            hwsrc=GATEWAY_MAC,
            psrc=packet[ARP].pdst,
            hwdst=packet[ARP].hwsrc,
            pdst=packet[ARP].psrc,
        )
    if ICMP in packet and packet[ICMP].type == 8:
        return "ping", (
            eth
            / IP(src=packet[IP].dst, dst=packet[IP].src)
            / ICMP(type=0, id=packet[ICMP].id, seq=packet[ICMP].seq)
            / bytes(packet[ICMP].payload)
        )
    if ICMPv6ND_NS in packet:
        return "ndp", (
            eth
            / IPv6(src=packet[ICMPv6ND_NS].tgt, dst=packet[IPv6].src)
            / ICMPv6ND_NA(tgt=packet[ICMPv6ND_NS].tgt, R=1, S=1, O=1)
            / ICMPv6NDOptDstLLAddr(lladdr=GATEWAY_MAC)
        )
    if ICMPv6EchoRequest in packet:
        request = packet[ICMPv6EchoRequest]
        return "ping6", (
            eth
            / IPv6(src=packet[IPv6].dst, dst=packet[IPv6].src)
            / ICMPv6EchoReply(id=request.id, seq=request.seq, data=request.data)
        )
    return None


@pytest.mark.parametrize("transport", ["stream", "dgram"])
def test_vm_pings_gateway_through_link(tmp_path: Path, socket_dir: Path, transport: str) -> None:
    _require_vm_tools()
    kernel = find_guest_kernel()
    assert kernel is not None
    env = dict(default_guest_env())
    config = parse_guest_env(env)
    assert config.ipv4 is not None and config.ipv6 is not None
    guest_mac = str(config.mac)
    script = (
        f"ping -c1 -W10 {config.ipv4.gateway} || exit 4\n"
        f"ping -c1 -W10 {config.ipv6.gateway} || exit 6\n"
    )
    initramfs = build_initramfs(kernel, script, tmp_path / "initramfs.cpio")
    sock, vm_sock = socket_dir / "trionet.sock", socket_dir / "vm.sock"
    netdev = (
        f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"
        if transport == "stream"
        else f"dgram,id=n0,local.type=unix,local.path={vm_sock},"
        f"remote.type=unix,remote.path={sock}"
    )
    argv = qemu_argv(kernel, initramfs, netdev, env, mac=guest_mac)
    answered: list[str] = []

    async def main() -> str:
        listener = await open_unix_stream_listener(sock) if transport == "stream" else None
        dgram = DgramLink.bind(sock, peer=str(vm_sock)) if transport == "dgram" else None
        output = b""
        async with trio.open_nursery() as nursery:

            async def run_vm() -> None:
                nonlocal output
                result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True)
                output = result.stdout
                nursery.cancel_scope.cancel()  # the VM is done: stop playing gateway

            nursery.start_soon(run_vm)
            with trio.fail_after(120):
                link: StreamLink | DgramLink
                if listener is not None:
                    link = StreamLink(await listener.accept())
                else:
                    assert dgram is not None
                    link = dgram
                while frames := await link.receive_frames():
                    replies = []
                    for frame in frames:
                        packet = Ether(frame)
                        answer = _answer(packet, guest_mac)
                        if answer is not None:
                            answered.append(answer[0])
                            replies.append(bytes(answer[1]))
                    await link.send_frames(replies)
        if listener is not None:
            await listener.aclose()
            await link.aclose()
        if dgram is not None:
            dgram.close()
        return output.decode(errors="replace")

    output = trio.run(main)
    assert f"{EXIT_MARKER} 0" in output, output[-3000:]
    assert set(answered) == {"arp", "ping", "ndp", "ping6"}, answered
