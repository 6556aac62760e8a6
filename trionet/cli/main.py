"""Entry point of the ``trionet`` console script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trionet import __version__
from trionet.addressing import MAX_SLOT, derive_addressing
from trionet.config import ConfigError, NetworkConfig
from trionet.guest_env import guest_env_vars

__all__ = ["main"]


def _slot(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_SLOT:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{MAX_SLOT}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trionet",
        description="A userspace network engine for sandboxes and microVMs.",
    )
    parser.add_argument("--version", action="version", version=f"trionet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    env = commands.add_parser(
        "env", help="print the guest network variables for a slot as KEY=VALUE lines"
    )
    env.add_argument("--slot", type=_slot, default=0, help="sandbox slot (default 0)")
    env.add_argument("--config", metavar="FILE", help="network config, TOML or JSON")
    return parser


def _load_config(path: str | None) -> NetworkConfig:
    return NetworkConfig() if path is None else NetworkConfig.load(path)


def _cmd_env(args: argparse.Namespace) -> int:
    addressing = derive_addressing(_load_config(args.config), args.slot)
    for key, value in guest_env_vars(addressing):
        print(f"{key}={value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        if args.command == "env":
            return _cmd_env(args)
    except (ConfigError, ValueError) as exc:
        print(f"trionet: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
