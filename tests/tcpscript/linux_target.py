"""The Linux kernel as a script target, over a TUN device, in real time.

Run inside a throwaway network namespace (``ip netns exec``; see
:func:`run_on_linux`): it brings up ``tun0`` as 10.9.0.1 (the kernel's
side), listens on 10.9.0.1:8080, and plays the peer 10.9.0.2 from the
script. Socket calls act on the accepted kernel socket (TCP_NODELAY, as
trionet's relay sends without Nagle). Prints one JSON line:
``{"ok": true}`` or ``{"ok": false, "error": ...}``.

Usage: ``python -m tests.tcpscript.linux_target SCRIPT``.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.linux_tcp_peer import emit, open_tun, parse
from tests.tcpscript.format import Step, parse_script
from tests.tcpscript.runner import PEER_PORT, SERVER_PORT, ScriptMismatchError, Sent, run_script
from trionet.wire.tcp import TcpHeader

__all__ = ["LinuxTarget", "run_on_linux"]


class LinuxTarget:
    def __init__(self) -> None:
        # Reno, as trionet: PRR's numbers depend on the reduction (CUBIC's
        # is 0.7, Reno's 0.5). Per namespace since Linux 4.15.
        subprocess.run(["sysctl", "-q", "-w", "net.ipv4.tcp_congestion_control=reno"], check=True)
        self.fd = open_tun()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("10.9.0.1", SERVER_PORT))
        self.listener.listen(8)
        self.sock: socket.socket | None = None
        self.start = time.monotonic()

    def _sleep_until(self, at: float) -> None:
        delay = self.start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def inject(self, header: TcpHeader, payload: bytes, at: float) -> None:
        self._sleep_until(at)
        os.write(self.fd, emit(header, payload))

    def collect(self, until: float, *, first: bool) -> list[Sent]:
        out: list[Sent] = []
        while True:
            left = self.start + until - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0.0))
            if not ready:
                return out
            packet = os.read(self.fd, 70000)
            at = time.monotonic() - self.start
            parsed = parse(packet)
            if parsed is None or parsed[0].dst_port != PEER_PORT:
                continue
            out.append(Sent(at, parsed[0], bytes(parsed[1])))
            if first:
                return out

    def call(self, step: Step, at: float) -> None:
        self._sleep_until(at)
        if step.kind == "accept":
            self.listener.settimeout(1.0)
            self.sock, _ = self.listener.accept()
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return
        sock = self.sock
        if sock is None:
            raise ScriptMismatchError("no accepted socket")
        if step.kind == "read":
            sock.settimeout(1.0)
            got = b""
            try:
                while len(got) < step.count:
                    chunk = sock.recv(step.count - len(got))
                    if not chunk:
                        break
                    got += chunk
            except TimeoutError:
                pass
            if len(got) != step.count:
                raise ScriptMismatchError(f"read {len(got)} bytes, expected {step.count}")
        elif step.kind == "write":
            sock.setblocking(False)
            taken = sock.send(bytes(step.count))
            if taken != step.count:
                raise ScriptMismatchError(f"wrote {taken} bytes of {step.count}")
        elif step.kind == "shutdown":
            sock.shutdown(socket.SHUT_WR)
        elif step.kind == "close":
            sock.close()
            self.sock = None


def main() -> None:
    script = parse_script(Path(sys.argv[1]))
    result: dict[str, object] = {"ok": True}
    try:
        run_script(script, LinuxTarget(), "linux")
    except ScriptMismatchError as exc:
        result = {"ok": False, "error": str(exc)}
    print(json.dumps(result))


def run_on_linux(path: Path, netns: str) -> dict[str, object]:
    """Run one script against the kernel in a fresh namespace ``netns`` (root)."""
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        proc = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                netns,
                sys.executable,
                "-m",
                "tests.tcpscript.linux_target",
                str(path),
            ],
            cwd=Path(__file__).resolve().parent.parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"ok": False, "error": proc.stderr[-2000:]}
    result: dict[str, object] = json.loads(lines[-1])
    return result


if __name__ == "__main__":
    main()
