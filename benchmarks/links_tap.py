"""TapDevice frame rates against a real guest namespace (run as root from the repo root).

    python -m benchmarks.links_tap [--frames N] [--no-offload]

read: the guest kernel sends N small UDP datagrams to the gateway; we count
what TapDevice.read_batch delivers per second after each wait_readable.
write: N 60-byte frames written with TapDevice.write (the guest drops them,
they are addressed to nobody). Bounded by N; prints one line per direction.
"""

from __future__ import annotations

import argparse
import sys
import time

import trio

from tests.support.fixtures import default_guest_env
from tests.support.netns import (
    configure_guest,
    create_netns,
    delete_netns,
    in_netns,
    move_link,
)
from trionet.guest_env import parse_guest_env
from trionet.links.tap import TapDevice

FLOOD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 9))
for _ in range(int(sys.argv[2])):
    s.send(b"x")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--no-offload", action="store_true")
    args = parser.parse_args()
    host, guest = create_netns("h"), create_netns("g")
    try:
        with in_netns(host):
            tap = TapDevice.open("tnt0", offload=not args.no_offload)
        config = parse_guest_env(dict(default_guest_env()))
        move_link(host, tap.name, guest, config.iface)
        configure_guest(guest, config)
        assert config.ipv4 is not None
        gateway = str(config.ipv4.gateway)
        guest.ip("neigh", "replace", gateway, "lladdr", "02:6d:73:00:00:01", "dev", "eth0")
        trio.run(_bench, tap, guest.exec_argv([sys.executable, "-c", FLOOD, gateway]), args)
        tap.close()
    finally:
        delete_netns(guest)
        delete_netns(host)


async def _bench(tap: TapDevice, flood: list[str], args: argparse.Namespace) -> None:
    n = args.frames
    # Drain what the guest sent while being configured (IPv6 RS, MLD).
    tap.read_batch(10_000)
    received = wakeups = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.run_process, [*flood, str(n)])
        start = last = time.perf_counter()
        with trio.move_on_after(30):
            while received < n:
                with trio.move_on_after(1.0) as idle:
                    await tap.wait_readable()
                if idle.cancelled_caught:
                    break  # the flood ended; some frames were dropped by a full queue
                wakeups += 1
                received += len(tap.read_batch(256))
                last = time.perf_counter()
    elapsed = last - start
    print(
        f"read : {received} frames in {elapsed:.3f}s = {received / elapsed / 1e3:.0f}k frames/s,"
        f" {received / max(wakeups, 1):.1f} frames per wake-up (guest sender may be the limit)"
    )
    frame = [b"\x00" * tap.vnet_hdr_size, b"\x02\x00\x00\x00\x00\x99" + b"\x00" * 54]
    if not tap.vnet_hdr_size:
        frame = frame[1:]
    start = time.perf_counter()
    for _ in range(n):
        tap.write(frame)
    elapsed = time.perf_counter() - start
    print(
        f"write: {n} frames in {elapsed:.3f}s = {n / elapsed / 1e3:.0f}k frames/s"
        f" ({tap.counters.drops_out} dropped)"
    )


if __name__ == "__main__":
    main()
