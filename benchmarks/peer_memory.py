"""RSS of trionet engine processes holding many idle guest TCP connections.

The config caps ``max_connections`` at 4096 per engine, so N connections are
spread over ceil(N / 4000) engines, each in its own process with its own
guest namespace (one shared host namespace holds the accepting server). The
figure is the sum of the engines' RSS growth from their idle baseline (after
a warm-up connection) divided by the connections held: bytes per connection
beyond baseline, with no data buffered (the connections are idle).
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import time

from benchmarks.peer_lab import (
    HOLD_PORT,
    PROBE,
    runner_argv,
    spawn,
    start_trionet,
    stop,
    trionet_gateway,
    wait_for_line,
)
from tests.support.netns import Netns, create_netns, delete_netns, sweep_stale_netns

PER_ENGINE = 4000  # under the 4096 cap, leaving room for stragglers


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _settled_rss(pid: int, seconds: float = 1.0) -> int:
    # The engine frees and allocates while flows settle; take the last of a few reads.
    time.sleep(seconds)
    return rss_bytes(pid)


def idle_connections(total: int) -> dict[str, object]:
    """Hold ``total`` idle guest connections through trionet; RSS growth per connection."""
    engines = math.ceil(total / PER_ENGINE)
    shares = [total // engines + (1 if i < total % engines else 0) for i in range(engines)]
    sweep_stale_netns()
    host = create_netns("mh")
    guests: list[Netns] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        server = spawn(
            host.exec_argv([sys.executable, PROBE, "hold", str(HOLD_PORT)]),
            stdout=subprocess.PIPE,
        )
        processes.append(server)
        wait_for_line(server, b"LISTENING", 10)
        runners = []
        for index in range(engines):
            guest = create_netns(f"mg{index}")
            guests.append(guest)
            guest.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"])
            argv = runner_argv(
                host, guest, mtu=1500, offload=True, max_connections=4096, tap_name=f"tnm{index}"
            )
            runners.append(start_trionet(processes, host.exec_argv(argv)))
        target = trionet_gateway(1500)
        baseline = []
        for runner, guest in zip(runners, guests, strict=True):
            # One connection first, so the baseline includes the code paths a flow touches.
            guest.run([sys.executable, PROBE, "connect", target, str(HOLD_PORT)])
            baseline.append(_settled_rss(runner.pid, 0.3))
        opened = 0
        errors = []
        for share, guest in zip(shares, guests, strict=True):
            opener = spawn(
                guest.exec_argv(
                    [sys.executable, PROBE, "open", target, str(HOLD_PORT), str(share)]
                ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            processes.append(opener)
            line = wait_for_line(opener, b"OPEN", 90).decode()
            count = int(line.split()[1])
            opened += count
            if count < share:
                errors.append(line)
        after = [_settled_rss(runner.pid) for runner in runners]
        growth = sum(after) - sum(baseline)
        return {
            "requested": total,
            "held": opened,
            "engines": engines,
            "baseline_rss_bytes": baseline,
            "rss_bytes": after,
            "bytes_per_connection": growth / max(opened, 1),
            **({"errors": errors} if errors else {}),
        }
    finally:
        for process in reversed(processes):
            with contextlib.suppress(Exception):
                stop(process)
        for guest in guests:
            delete_netns(guest)
        delete_netns(host)
