"""The TCP machine against the real Linux TCP (window scaling, timestamps and
SACK on, as the kernel defaults), over a TUN device in a throwaway namespace.

Both directions of opening (the kernel connects to us, as a guest does; we
connect to a kernel listener, as for published ports), with and without
injected loss: a 3 MB echo must come back intact and both ends must close.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.root
@pytest.mark.parametrize("mode", ["passive", "active"])
@pytest.mark.parametrize("loss", [0.0, 0.03])
def test_echo_with_linux_tcp(mode: str, loss: float) -> None:
    netns = f"trionet-tcp-{os.getpid()}-{mode}-{int(loss * 100)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        peer = [sys.executable, "-m", "tests.linux_tcp_peer", mode, "3000000", str(loss), "7"]
        proc = subprocess.run(
            ["ip", "netns", "exec", netns, *peer],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result.get("kernel_received_ok") is True, result
    assert result.get("closed") is True, result
    assert result["state"] == "CLOSED", result
    assert "reset" not in result, result
    assert result["send_mss"] == 1448  # MSS 1460 minus the timestamp option
    if mode == "passive":
        # What the kernel offered; the machine must have negotiated all of it.
        assert "window_scale=" in result["kernel_syn_options"]
        assert "sack_permitted=True" in result["kernel_syn_options"]
