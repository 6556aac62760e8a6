"""``trionet serve``: the real command, driven by a frame-level peer over a real unix socket.

The peer plays the VMM: it speaks QEMU's stream framing (4-byte big-endian
length, then the frame) or one frame per datagram, with frames built and
parsed by scapy, an implementation independent of trionet's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from tests.support.netns import Netns, configure_guest, move_link

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parent.parent
GUEST_MAC = "02:6d:73:00:00:02"
GATEWAY_MAC = "02:6d:73:00:00:01"
GUEST = "172.16.0.2"
GATEWAY = "172.16.0.1"


def _arp_request() -> bytes:
    return bytes(
        Ether(src=GUEST_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=GUEST_MAC, psrc=GUEST, pdst=GATEWAY)
    )


def _ping(seq: int) -> bytes:
    return bytes(
        Ether(src=GUEST_MAC, dst=GATEWAY_MAC)
        / IP(src=GUEST, dst=GATEWAY)
        / ICMP(type=8, id=0x4242, seq=seq)
        / b"trionet-serve-test"
    )


class Serve:
    """A running ``trionet serve``; its guest variables, once it announced them."""

    def __init__(self, socket_dir: Path, *link_args: str) -> None:
        self.env_file = socket_dir / "env.json"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trionet.cli.main",
                "serve",
                *link_args,
                "--net",
                "public,host",  # the tests ping the gateway: the host
                "--ipv4",
                "--print-env",
                str(self.env_file),
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 15
        while not self.env_file.exists():
            assert self.process.poll() is None, self.process.communicate()[1]
            assert time.monotonic() < deadline, "serve never announced its variables"
            time.sleep(0.02)
        self.env: dict[str, str] = json.loads(self.env_file.read_text())

    def stop(self, timeout: float = 10) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr

    def wait(self, timeout: float = 10) -> tuple[int, str]:
        _, stderr = self.process.communicate(timeout=timeout)
        return self.process.returncode, stderr


@pytest.fixture
def serve_factory(socket_dir: Path) -> Iterator[type[Serve]]:
    started: list[Serve] = []

    class Tracked(Serve):
        def __init__(self, *link_args: str) -> None:
            super().__init__(socket_dir, *link_args)
            started.append(self)

    yield Tracked
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.communicate()


def _session_end(stderr: str) -> dict[str, str]:
    for line in stderr.splitlines():
        if "event=session.end" in line:
            return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
    raise AssertionError(f"no session.end in {stderr}")


class StreamPeer:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.buffer = b""

    def send(self, frame: bytes, *, bytewise: bool = False) -> None:
        data = struct.pack(">I", len(frame)) + frame
        if not bytewise:
            self.sock.sendall(data)
            return
        for i in range(len(data)):  # partial reads on the other side
            self.sock.sendall(data[i : i + 1])

    def receive(self) -> bytes:
        while True:
            if len(self.buffer) >= 4:
                (size,) = struct.unpack(">I", self.buffer[:4])
                if len(self.buffer) >= 4 + size:
                    frame, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
                    return frame
            chunk = self.sock.recv(65536)
            assert chunk, "serve closed the stream"
            self.buffer += chunk

    def receive_matching(self, kind: type, attempts: int = 20) -> Ether:
        for _ in range(attempts):
            frame = Ether(self.receive())
            if frame.haslayer(kind):
                return frame
        raise AssertionError(f"no {kind.__name__} frame")


def _check_arp_and_ping(send: object, receive_matching: object) -> None:
    send(_arp_request())  # type: ignore[operator]
    reply = receive_matching(ARP)  # type: ignore[operator]
    assert reply[ARP].op == 2 and reply[ARP].psrc == GATEWAY and reply[ARP].hwsrc == GATEWAY_MAC
    send(_ping(1))  # type: ignore[operator]
    echo = receive_matching(ICMP)  # type: ignore[operator]
    assert echo[ICMP].type == 0 and echo[ICMP].seq == 1 and echo[IP].src == GATEWAY
    assert bytes(echo[ICMP].payload) == b"trionet-serve-test"


def test_stream_answers_arp_and_ping_and_counts_framing_errors(
    serve_factory: type[Serve], socket_dir: Path
) -> None:
    path, audit = socket_dir / "qemu.sock", socket_dir / "audit.jsonl"
    serve = serve_factory("--qemu-stream", str(path), "--audit", str(audit))
    assert serve.env["MSB_NET"] == f"iface=eth0,mac={GUEST_MAC},mtu=1500"
    assert serve.env["MSB_NET_IPV4"] == f"addr={GUEST}/30,gw={GATEWAY},dns={GATEWAY}"
    peer = StreamPeer(path)
    peer.send(_arp_request(), bytewise=True)
    reply = peer.receive_matching(ARP)
    assert reply[ARP].hwsrc == GATEWAY_MAC
    _check_arp_and_ping(peer.send, peer.receive_matching)
    peer.send(b"\x00" * 5)  # a runt: dropped and counted, the session goes on
    peer.send(bytes(Ether(src=GUEST_MAC, dst=GATEWAY_MAC, type=0x88B5)) + b"x" * 66000)
    peer.send(_ping(2))
    assert peer.receive_matching(ICMP)[ICMP].seq == 2
    peer.sock.sendall(struct.pack(">I", 0xFFFFFFFF))  # framing lost: the session ends
    status, stderr = serve.wait()
    assert status == 0, stderr
    end = _session_end(stderr)
    assert end["malformed_in"] == "2", end
    assert "frame length 4294967295 exceeds the maximum" in end["reason"], end
    assert re.search(r"oversized_frame.: 1", stderr), stderr  # the 66 KB frame
    assert not path.exists()  # the socket file is removed on exit
    peer.sock.close()
    # Both gateway pings were decided by the host profile's rule, on record.
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["protocol"], r["destination"], r["verdict"], r["rule"]) for r in records] == [
        ("icmpv4", GATEWAY, "allow", "allow egress group:host"),
    ] * 2


def test_stream_reconnect_serves_the_next_vmm_until_sigterm(
    serve_factory: type[Serve], socket_dir: Path
) -> None:
    path = socket_dir / "qemu.sock"
    serve = serve_factory("--qemu-stream", str(path), "--reconnect")
    for _ in range(2):
        peer = StreamPeer(path)
        _check_arp_and_ping(peer.send, peer.receive_matching)
        peer.sock.close()  # the VMM goes away; serve waits for the next
    time.sleep(0.2)
    assert serve.process.poll() is None
    status, stderr = serve.stop()
    assert status == 0, stderr
    assert stderr.count("event=session.end") == 2
    assert "event=serve.stop signal=SIGTERM" in stderr


def test_unixgram_vfkit_greeting_arp_ping_and_drops(
    serve_factory: type[Serve], socket_dir: Path
) -> None:
    path = socket_dir / "vfkit.sock"
    serve = serve_factory("--unixgram", str(path), "--vfkit")
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stranger.bind(str(socket_dir / "stranger.sock"))
    stranger.sendto(_arp_request(), str(path))  # no greeting: not the peer, dropped
    vm = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    vm.bind(str(socket_dir / "vm.sock"))
    vm.settimeout(10)
    vm.connect(str(path))
    vm.send(b"VFKT")
    vm.send(b"\x01\x02")  # a runt datagram: dropped and counted

    def receive_matching(kind: type, attempts: int = 20) -> Ether:
        for _ in range(attempts):
            frame = Ether(vm.recv(70000))
            if frame.haslayer(kind):
                return frame
        raise AssertionError(f"no {kind.__name__} frame")

    _check_arp_and_ping(vm.send, receive_matching)
    status, stderr = serve.stop()
    assert status == 0, stderr
    end = _session_end(stderr)
    assert end["malformed_in"] == "2", end  # the stranger's frame and the runt
    assert not path.exists()
    vm.close()
    stranger.close()


def test_serve_bad_options_are_one_line_and_status_2(socket_dir: Path) -> None:
    for args in (
        [],
        ["--qemu-stream", "a", "--unixgram", "b"],
        ["--qemu-stream", "a", "--vfkit"],
        ["--tap", "x", "--mtu", "10"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "trionet.cli.main", "serve", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1, (args, result.stderr)


def test_serve_refuses_to_replace_a_regular_file(socket_dir: Path) -> None:
    path = socket_dir / "not-a-socket"
    path.write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "trionet.cli.main", "serve", "--qemu-stream", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1 and "is not a socket" in result.stderr
    assert path.read_text() == "mine"
    assert os.path.exists(path)


def test_tap_serves_a_namespace_guest(
    netns_factory: Callable[[str], Netns], socket_dir: Path
) -> None:
    """``serve --tap``: the TAP serve opens is moved into a guest namespace, which pings."""
    host, guest = netns_factory("h"), netns_factory("g")
    env_file = socket_dir / "env.json"
    argv = [sys.executable, "-m", "trionet.cli.main", "serve", "--tap", "tntsrv0", "--ipv4"]
    argv += ["--net", "public,host"]  # it pings the gateway: the host
    process = subprocess.Popen(
        host.exec_argv([*argv, "--no-ipv6", "--print-env", str(env_file)]),
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not env_file.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        move_link(host, "tntsrv0", guest, "eth0")
        configure_guest(guest, json.loads(env_file.read_text()))
        result = guest.run(["ping", "-c", "2", "-i", "0.2", "-W", "5", GATEWAY], check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "event=serve.ready link=tap name=tntsrv0" in stderr


def test_unixgram_reconnect_after_the_vm_leaves(
    serve_factory: type[Serve], socket_dir: Path
) -> None:
    """A datagram peer's leaving shows when a frame to it is refused; then the next VM is served"""
    path = socket_dir / "vfkit.sock"
    serve = serve_factory("--unixgram", str(path), "--vfkit", "--reconnect")
    host_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    host_udp.bind(("127.0.0.1", 0))
    host_udp.settimeout(10)
    first = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    first.bind(str(socket_dir / "vm1.sock"))
    first.connect(str(path))
    first.send(b"VFKT")
    first.send(
        bytes(
            Ether(src=GUEST_MAC, dst=GATEWAY_MAC)
            / IP(src=GUEST, dst=GATEWAY)
            / UDP(sport=4242, dport=host_udp.getsockname()[1])
            / b"hello"
        )
    )
    data, relay = host_udp.recvfrom(100)  # the engine relayed the guest's datagram
    assert data == b"hello"
    first.close()  # the VM leaves; only then does the host answer...
    host_udp.sendto(b"bye", relay)  # ...so the engine's frame to the VM is refused
    host_udp.close()
    deadline = time.monotonic() + 10
    second = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    second.bind(str(socket_dir / "vm2.sock"))
    second.settimeout(1)
    # Until serve has re-bound its path for the next VM. A greeting that lands
    # in the old socket in the instant between its peer being found gone and
    # its close is lost with it, as on any datagram socket: greet again.
    while True:
        try:
            second.connect(str(path))
            second.send(b"VFKT")
            second.send(_arp_request())
            reply = Ether(second.recv(70000))
            break
        except (ConnectionRefusedError, PermissionError, FileNotFoundError, TimeoutError):
            assert time.monotonic() < deadline, "serve never took a second VM"
            time.sleep(0.05)
    assert reply.haslayer(ARP) and reply[ARP].hwsrc == GATEWAY_MAC
    status, stderr = serve.stop()
    assert status == 0, stderr
    assert stderr.count("event=session.end") == 2, stderr
    assert 'reason="send failed: Connection refused"' in stderr, stderr
    second.close()
