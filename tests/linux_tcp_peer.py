"""Run the TCP machine against the real Linux TCP over a TUN device.

Executed by ``test_tcp_linux_interop.py`` inside a throwaway network namespace
(``ip netns exec``): it creates ``tun0`` (10.9.0.1/24, the kernel's side),
plays 10.9.0.2 with a :class:`TcpConnection`, and drives a kernel socket from
a thread. A tiny IPv4/TCP codec lives here so the test does not depend on the
wire module. Loss can be injected both ways to exercise SACK recovery.

Usage: ``python -m tests.linux_tcp_peer {passive|active} NBYTES LOSS SEED``;
prints one JSON line with the outcome.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time

from trionet.tcp import Closed, ConnectionReset, PeerFinished, TcpConfig, TcpConnection
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions

KERNEL = socket.inet_aton("10.9.0.1")
ME = socket.inet_aton("10.9.0.2")
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse(packet: bytes) -> tuple[TcpHeader, bytes] | None:
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != 6:
        return None
    ihl = (packet[0] & 15) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    tcp = packet[ihl:total]
    sport, dport, seq, ack, off_flags, window, _, urgent = struct.unpack("!HHIIHHHH", tcp[:20])
    doff = (off_flags >> 12) * 4
    opts = tcp[20:doff]
    mss = ws = ts = None
    sackp = False
    blocks: list[tuple[int, int]] = []
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        length = opts[i + 1]
        body = opts[i + 2 : i + length]
        if kind == 2:
            mss = struct.unpack("!H", body)[0]
        elif kind == 3:
            ws = body[0]
        elif kind == 4:
            sackp = True
        elif kind == 5:
            blocks = [struct.unpack("!II", body[j : j + 8]) for j in range(0, len(body), 8)]
        elif kind == 8:
            ts = struct.unpack("!II", body)
        i += length
    header = TcpHeader(
        sport,
        dport,
        seq,
        ack,
        TcpFlags(off_flags & 0xFF),
        window,
        urgent,
        TcpOptions(mss, ws, sackp, tuple(blocks), ts),
    )
    return header, tcp[doff:]


def emit(header: TcpHeader, payload: bytes) -> bytes:
    o = header.options
    opts = b""
    if o.mss is not None:
        opts += struct.pack("!BBH", 2, 4, o.mss)
    if o.sack_permitted:
        opts += b"\x04\x02"
    if o.timestamp is not None:
        opts += b"\x01\x01" + struct.pack("!BBII", 8, 10, *o.timestamp)
    if o.window_scale is not None:
        opts += b"\x01" + struct.pack("!BBB", 3, 3, o.window_scale)
    if o.sack_blocks:
        opts += b"\x01\x01" + struct.pack("!BB", 5, 2 + 8 * len(o.sack_blocks))
        for left, right in o.sack_blocks:
            opts += struct.pack("!II", left, right)
    opts += b"\0" * (-len(opts) % 4)
    doff = (20 + len(opts)) // 4
    tcp = struct.pack(
        "!HHIIHHHH",
        header.src_port,
        header.dst_port,
        header.seq,
        header.ack,
        doff << 12 | int(header.flags),
        header.window,
        0,
        header.urgent,
    )
    tcp += opts + payload
    pseudo = ME + KERNEL + struct.pack("!BBH", 0, 6, len(tcp))
    csum = _csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, ME, KERNEL)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ip + tcp


def open_tun() -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", b"tun0", IFF_TUN | IFF_NO_PI))
    for cmd in (
        "ip link set lo up",
        "ip link set tun0 up mtu 1500",
        "ip addr add 10.9.0.1/24 dev tun0",
    ):
        subprocess.run(cmd.split(), check=True)
    return fd


def main() -> None:
    mode, nbytes, loss, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    data = rng.randbytes(nbytes)
    fd = open_tun()
    cfg = TcpConfig(mss=1460, rto_min=0.2, time_wait=0.5)
    result: dict[str, object] = {}
    start = time.monotonic()

    def now() -> float:
        return time.monotonic() - start

    def kernel_side(sock: socket.socket) -> None:
        try:
            sock.settimeout(30)
            sender = threading.Thread(target=lambda: (sock.sendall(data), sock.shutdown(1)))
            sender.start()
            got = bytearray()
            while chunk := sock.recv(65536):
                got += chunk
            sender.join()
            result["kernel_received_ok"] = bytes(got) == data
            result["kernel_received"] = len(got)
        except Exception as exc:  # reported in the JSON line
            result["kernel_error"] = repr(exc)
        finally:
            sock.close()

    conn: TcpConnection | None = None
    if mode == "passive":
        client = socket.socket()
        threading.Thread(
            target=lambda: (client.connect(("10.9.0.2", 80)), kernel_side(client)), daemon=True
        ).start()
    else:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("10.9.0.1", 8080))
        listener.listen()
        threading.Thread(target=lambda: kernel_side(listener.accept()[0]), daemon=True).start()
        conn = TcpConnection.connect(40000, 8080, iss=rng.getrandbits(32), config=cfg, now=0.0)

    echoed_closed = False
    dropped = [0, 0]
    while now() < 60:
        if conn is not None:
            for header, payload in conn.segments_to_send(now()):
                if loss and header.flags & TcpFlags.ACK and rng.random() < loss:
                    dropped[0] += 1
                    continue
                os.write(fd, emit(header, payload))
            while (ev := conn.next_event()) is not None:
                if isinstance(ev, PeerFinished):
                    echoed_closed = True
                elif isinstance(ev, ConnectionReset):
                    result["reset"] = ev.reason.value
                elif isinstance(ev, Closed):
                    result["closed"] = True
            if conn.readable_bytes:
                # Echo everything back; the send buffer is as large as needed here.
                conn.send(conn.read(conn.send_space))
            if echoed_closed and not conn.unacked_bytes and not conn.readable_bytes:
                conn.close()
            if result.get("closed") and "kernel_received_ok" in result:
                break
            deadline = conn.next_deadline()
            if deadline is not None and deadline <= now():
                conn.handle_timers(now())
                continue
            timeout = 0.05 if deadline is None else max(0.0, min(0.05, deadline - now()))
        else:
            timeout = 0.05
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            continue
        packet = os.read(fd, 70000)
        parsed = parse(packet)
        if parsed is None:
            continue
        header, payload = parsed
        if loss and payload and rng.random() < loss:
            dropped[1] += 1
            continue
        if conn is None:
            if header.flags & TcpFlags.SYN:
                conn = TcpConnection.accept(header, iss=rng.getrandbits(32), config=cfg, now=now())
                result["kernel_syn_options"] = repr(header.options)
            continue
        conn.receive_segment(header, payload, now())

    result["dropped"] = dropped
    result["elapsed"] = round(now(), 3)
    if conn is not None:
        result["state"] = conn.state.value
        result["stats"] = conn.stats
        result["send_mss"] = conn.send_mss
    print(json.dumps(result))


if __name__ == "__main__":
    main()
