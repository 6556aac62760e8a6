"""Command-line options shared by ``run`` and ``serve``, mapped onto NetworkConfig.

The options override the config file's interface fields and (``--net``) its
policy; validation stays in :mod:`trionet.config`, so ``--mtu 70000`` fails
with the same message a config file would get.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import NoReturn

from trionet.addressing import MAX_SLOT, HostRoutes, probe_host_routes
from trionet.cli.logs import LEVELS
from trionet.config import ConfigError, NetworkConfig
from trionet.policy.model import NetworkPolicy
from trionet.ports.config import PortMapping, parse_publish

__all__ = [
    "NetworkChoice",
    "OneLineParser",
    "add_logging_options",
    "add_network_options",
    "log_level",
    "net_policy",
    "network_choice",
    "slot_number",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def slot_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_SLOT:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{MAX_SLOT}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def net_policy(text: str) -> NetworkPolicy:
    """``--net``: ``all``, ``none``, or profiles (public, private, host) joined by commas."""
    if text == "all":
        return NetworkPolicy.allow_all()
    if text == "none":
        return NetworkPolicy.deny_all()
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty profile name")
    try:
        return NetworkPolicy.from_profiles(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or all, none") from None


def add_network_options(parser: argparse.ArgumentParser, *, offload: bool = True) -> None:
    group = parser.add_argument_group("network")
    group.add_argument("--config", metavar="FILE", help="network config, TOML or JSON")
    group.add_argument(
        "--net",
        type=net_policy,
        metavar="all|none|PROFILE[,PROFILE...]",
        help="what the guest may reach, replacing the config's policy: profiles public, "
        "private, host (DNS through the gateway included); default: the config's policy, "
        "else public (the internet only: not the host, private ranges, loopback, link-local "
        "or the metadata service)",
    )
    group.add_argument(
        "--audit",
        metavar="FILE",
        help="write every policy decision to FILE as JSON lines ('-' for stderr)",
    )
    group.add_argument(
        "--slot", type=slot_number, default=0, metavar="N", help="sandbox slot (default 0)"
    )
    group.add_argument("--mtu", type=_whole, metavar="N", help="guest MTU (default 1500)")
    group.add_argument(
        "--ipv4",
        action=argparse.BooleanOptionalAction,
        help="give the guest IPv4 (default: when the host routes IPv4)",
    )
    group.add_argument(
        "--ipv6",
        action=argparse.BooleanOptionalAction,
        help="give the guest IPv6 (default: when the host routes IPv6)",
    )
    if offload:
        group.add_argument(
            "--no-offload",
            dest="offload",
            action="store_false",
            help="plain MTU-sized TAP frames: no virtio-net header, TSO or checksum offload",
        )
    group.add_argument(
        "--pcap", metavar="FILE", help="write every frame, both directions, to FILE (pcap)"
    )
    group.add_argument(
        "-p",
        "--publish",
        type=_publish,
        action="append",
        default=[],
        metavar="[ADDR:]HOST:GUEST[/udp]",
        help="publish a guest port on the host (repeatable; ADDR defaults to 127.0.0.1,"
        " IPv6 in brackets: [::1]:8080:80)",
    )
    group.add_argument(
        "--publish-real-source",
        action="store_true",
        help="-p TCP clients not on the host's loopback reach the guest from their own address",
    )


def _publish(text: str) -> PortMapping:
    try:
        return parse_publish(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_logging_options(parser: argparse.ArgumentParser, default: str) -> None:
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output (repeat for debug)",
    )
    group.add_argument(
        "--log-level",
        choices=LEVELS,
        default=default,
        help=f"log level on stderr, as logfmt lines (default {default})",
    )


def log_level(args: argparse.Namespace) -> str:
    index = max(0, LEVELS.index(args.log_level) - args.verbose)
    return LEVELS[index]


@dataclass(frozen=True, slots=True)
class NetworkChoice:
    config: NetworkConfig
    slot: int
    routes: HostRoutes
    #: where audit records go: a file, "-" for stderr, None for nowhere
    audit: str | None = None


def network_choice(args: argparse.Namespace) -> NetworkChoice:
    """The config file plus option overrides; raises ConfigError with the field's path."""
    config = NetworkConfig() if args.config is None else NetworkConfig.load(args.config)
    if not config.enabled:
        raise ConfigError("enabled", "the config disables the network (enabled = false)")
    iface = config.interface
    if args.mtu is not None:
        iface = dataclasses.replace(iface, mtu=args.mtu)
    # An explicit address turns its family on whatever the routes say, so
    # --no-ipvN must drop it too.
    if args.ipv4 is False:
        iface = dataclasses.replace(iface, ipv4_address=None)
    if args.ipv6 is False:
        iface = dataclasses.replace(iface, ipv6_address=None)
    published = tuple(
        dataclasses.replace(mapping, real_source=args.publish_real_source)
        for mapping in args.publish
    )
    config = dataclasses.replace(config, interface=iface, ports=config.ports + published)
    if args.net is not None:
        config = dataclasses.replace(config, policy=args.net)
    probed = probe_host_routes()
    routes = HostRoutes(
        ipv4=probed.ipv4 if args.ipv4 is None else args.ipv4,
        ipv6=probed.ipv6 if args.ipv6 is None else args.ipv6,
    )
    return NetworkChoice(config, args.slot, routes, args.audit)
