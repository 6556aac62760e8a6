"""A stock VM boots through ``trionet serve --qemu-stream`` and configures itself.

The project's test kernel with an init that does nothing but DHCP (busybox
udhcpc, whose lease script writes /etc/resolv.conf) and the kernel's SLAAC:
no ``MSB_NET*`` variables reach the guest, and the script below knows no
address in advance. It reads the gateway from the routes DHCP and the router
advertisement installed and fetches a page from this test's HTTP servers on
the host's 127.0.0.1 and ::1, over IPv4 and IPv6.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.host_http import BODY, _Handler, http_port
from tests.support.qemu_guest import (
    EXIT_MARKER,
    build_initramfs,
    find_guest_kernel,
    qemu_argv,
    start_serve_for_qemu,
)
from tests.test_links_qemu_vm import _require_vm_tools

pytestmark = pytest.mark.root

__all__ = ["http_port"]  # a fixture


class _Ipv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@pytest.fixture
def http6_port() -> Iterator[int]:
    server = _Ipv6Server(("::1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_stock_vm_configures_itself_and_fetches_over_both_families(
    http_port: int, http6_port: int, tmp_path: Path, socket_dir: Path
) -> None:
    _require_vm_tools()
    kernel = find_guest_kernel()
    assert kernel is not None
    sock, env_file = socket_dir / "trionet.sock", socket_dir / "env.json"
    serve, env = start_serve_for_qemu(sock, env_file)
    try:
        # Only the NIC's MAC is taken from trionet: that is the VMM's setting.
        mac = env["MSB_NET"].split("mac=")[1].split(",")[0]
        # The host alias, through the nameserver DHCP named (trionet answers
        # it itself, so nothing leaves the machine).
        alias = (
            "nslookup host.trionet.internal || exit 7\n"
            f"wget -q -O - http://host.trionet.internal:{http_port}/page || exit 8\n"
        )
        script = (
            "echo RESOLV $(cat /etc/resolv.conf)\n"
            "ip -6 addr show dev eth0 | grep 'scope global' | sed 's/^/ADDR6 /'\n"
            # The routers DHCP and the RA named; nothing trionet-specific.
            "gw4=$(ip route show default | sed -n 's/.*via \\([0-9.]*\\).*/\\1/p')\n"
            "gw6=$(ip -6 route show default | sed -n 's/.*via \\([0-9a-f:]*\\).*/\\1/p')\n"
            "echo ROUTERS $gw4 $gw6\n"
            f"wget -q -O - http://$gw4:{http_port}/page || exit 5\n"
            f'wget -q -O - "http://[$gw6%eth0]:{http6_port}/page" || exit 6\n' + alias
        )
        initramfs = build_initramfs(kernel, script, tmp_path / "initramfs.cpio", stock=True)
        netdev = f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"
        vm = subprocess.run(
            qemu_argv(kernel, initramfs, netdev, {}, mac=mac),
            capture_output=True,
            timeout=150,
            check=False,
        )
        output = vm.stdout.decode(errors="replace")
        assert f"{EXIT_MARKER} 0" in output, output[-3000:]
        assert "RESOLV nameserver 172.16.0.1" in output, output[-3000:]
        assert "ROUTERS 172.16.0.1 fe80::1" in output, output[-3000:]
        assert "inet6 fd42:6d73:62:" in output, output[-3000:]  # SLAAC, from the RA
        assert output.count(BODY.decode().strip()) == 3, output[-3000:]
        _, stderr = serve.communicate(timeout=10)
        assert serve.returncode == 0, stderr
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGKILL)
            serve.communicate()
