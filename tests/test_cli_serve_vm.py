"""A real VM under QEMU fetches a page from the host through ``trionet serve --qemu-stream``.

The whole path a user gets: QEMU's ``-netdev stream`` into the serve
command, the engine, and a host socket to this test's HTTP server on
127.0.0.1. The VM's init configures eth0 from the variables serve wrote
with ``--print-env`` and runs busybox wget against the gateway.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.host_http import BODY, http_port
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


def test_vm_fetches_a_host_page_through_serve(
    http_port: int, tmp_path: Path, socket_dir: Path
) -> None:
    _require_vm_tools()
    kernel = find_guest_kernel()
    assert kernel is not None
    sock, env_file = socket_dir / "trionet.sock", socket_dir / "env.json"
    serve, env = start_serve_for_qemu(sock, env_file)
    try:
        gateway = env["MSB_NET_IPV4"].split("gw=")[1].split(",")[0]
        mac = env["MSB_NET"].split("mac=")[1].split(",")[0]
        script = f"wget -q -O - http://{gateway}:{http_port}/page || exit 5\n"
        initramfs = build_initramfs(kernel, script, tmp_path / "initramfs.cpio")
        netdev = f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}"
        vm = subprocess.run(
            qemu_argv(kernel, initramfs, netdev, env, mac=mac),
            capture_output=True,
            timeout=150,
            check=False,
        )
        output = vm.stdout.decode(errors="replace")
        assert f"{EXIT_MARKER} 0" in output, output[-3000:]
        assert BODY.decode().strip() + "\r\n" + EXIT_MARKER in output
        # QEMU quit: the session ended, and without --reconnect serve exits cleanly.
        _, stderr = serve.communicate(timeout=10)
        assert serve.returncode == 0, stderr
        assert "event=session.end link=stream reason=eof" in stderr, stderr
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGKILL)
            serve.communicate()
