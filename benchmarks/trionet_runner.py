"""One trionet engine in its own process, attached to a guest namespace by a TAP.

    ip netns exec HOST python -m benchmarks.trionet_runner --host-ns HOST --guest-ns GUEST
        [--mtu N] [--no-offload] [--stats FILE] [--max-connections N] [--profile FILE]

Started *inside* the namespace playing the host, so the TAP is created there
and every host socket the engine opens lands there too. The TAP is then moved
into the guest namespace as ``eth0`` and configured from the engine's guest
variables, as a guest init would. Prints ``READY`` once frames flow and runs
until stdin closes or SIGTERM/SIGINT arrives, so the driver can kill it by
pid and a crashed driver (closed pipe) takes it down too.

It runs in its own process so the benchmark driver's CPU use does not count
against the engine, and so its RSS can be read from /proc alone.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import os
import resource
import signal
import sys

import trio

from tests.support.netns import Netns, configure_guest, move_link
from trionet.addressing import HostRoutes, derive_addressing
from trionet.config import InterfaceOverrides, NetworkConfig
from trionet.guest_env import guest_env_vars, parse_guest_env
from trionet.links.tap import TapDevice
from trionet.network import open_network
from trionet.policy import NetworkPolicy
from trionet.ports.config import parse_publish

# IPv4 only: every workload uses it, and the host namespace routes nothing.
ROUTES = HostRoutes(ipv4=True, ipv6=False)


def _raise_fd_limit() -> None:
    # Each held guest connection is one host socket; the default soft limit
    # (1024) would cap the idle-connection measurement, not the engine.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(config: NetworkConfig, tap: TapDevice, stats: str | None) -> None:
    async with open_network(config, 0, routes=ROUTES) as net:
        await net.attach_tap(tap)
        print("READY", flush=True)
        # Nobody reads our stdout after READY; a full pipe must not stall the engine.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def watch_stdin() -> None:
                    # EOF on stdin: the driver went away; so do we.
                    stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
                    while await stdin.receive_some(4096):
                        pass
                    nursery.cancel_scope.cancel()

                async def watch_signals() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(watch_stdin)
                nursery.start_soon(watch_signals)
        if stats:
            # Drops and link counters tell a slow run from a lossy one.
            counters = tap.counters
            record = {
                "engine": net.metrics_handle().snapshot(),
                "tap": {name: getattr(counters, name) for name in counters.__slots__},
            }
            with open(stats, "w") as out:
                json.dump(record, out, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-ns", required=True, help="the namespace we were started in")
    parser.add_argument("--guest-ns", required=True)
    parser.add_argument("--tap-name", default="tnb0", help="unique while in the host namespace")
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--no-offload", action="store_true")
    parser.add_argument("--max-connections", type=int, default=None)
    parser.add_argument("--profile", default=None, help="write cProfile stats here")
    parser.add_argument("--stats", default=None, help="write the engine's counters here at exit")
    parser.add_argument(
        "--publish", type=parse_publish, action="append", default=[], help="as trionet run -p"
    )
    args = parser.parse_args()
    _raise_fd_limit()
    interface = InterfaceOverrides(mtu=args.mtu)
    # The workloads reach servers on the host's loopback through the gateway,
    # as they reach slirp4netns's and pasta's: the policy must let them.
    config = NetworkConfig(
        interface=interface, ports=tuple(args.publish), policy=NetworkPolicy.allow_all()
    )
    if args.max_connections is not None:
        config = dataclasses.replace(config, max_connections=args.max_connections)
    tap = TapDevice.open(args.tap_name, offload=not args.no_offload, uso=False)
    try:
        addressing = derive_addressing(config, 0, ROUTES)
        guest_config = parse_guest_env(dict(guest_env_vars(addressing)))
        guest = Netns(args.guest_ns)
        move_link(Netns(args.host_ns), tap.name, guest, guest_config.iface)
        configure_guest(guest, guest_config)
    except BaseException:
        tap.close()
        raise
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            trio.run(_serve, config, tap, args.stats)
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
    else:
        trio.run(_serve, config, tap, args.stats)


if __name__ == "__main__":
    main()
