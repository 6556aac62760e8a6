"""Entry point of the ``trionet`` console script: ``env``, ``run`` and ``serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trionet import __version__
from trionet.addressing import derive_addressing
from trionet.cli.logs import configure_logging
from trionet.cli.options import (
    OneLineParser,
    add_logging_options,
    add_network_options,
    log_level,
    network_choice,
    slot_number,
)
from trionet.config import ConfigError, NetworkConfig
from trionet.guest_env import guest_env_vars

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2


def _slot_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--slot", type=slot_number, default=0, help="sandbox slot (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="trionet",
        description="A userspace network engine for sandboxes and microVMs.",
    )
    parser.add_argument("--version", action="version", version=f"trionet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    env = commands.add_parser(
        "env", help="print the guest network variables for a slot as KEY=VALUE lines"
    )
    _slot_option(env)
    env.add_argument("--config", metavar="FILE", help="network config, TOML or JSON")

    run = commands.add_parser(
        "run",
        help="run a command in a network namespace networked by trionet",
        usage="trionet run [options] -- CMD [ARGS...]",
        description="Run CMD in new network and mount namespaces whose only interface, eth0, "
        "is a TAP served by an engine in this process. CMD's exit status is trionet's.",
    )
    add_network_options(run)
    add_logging_options(run, "warning")

    serve = commands.add_parser(
        "serve",
        help="run the engine for a VMM over a unix socket or a TAP",
        description="Serve one guest NIC to an external VMM until SIGINT/SIGTERM.",
    )
    link = serve.add_argument_group("link (exactly one)").add_mutually_exclusive_group(
        required=True
    )
    link.add_argument(
        "--qemu-stream",
        metavar="PATH",
        help="listen on a unix stream socket: QEMU -netdev stream, passt/libkrun unixstream",
    )
    link.add_argument(
        "--unixgram",
        metavar="PATH",
        help="bind a unix datagram socket: QEMU -netdev dgram, vfkit, krunkit/libkrun",
    )
    link.add_argument("--tap", metavar="NAME", help="an existing (or new) TAP device")
    serve.add_argument(
        "--vfkit",
        action="store_true",
        help="with --unixgram: accept a peer only after its VFKT greeting (vfkit, krunkit)",
    )
    serve.add_argument(
        "--peer",
        metavar="PATH",
        help="with --unixgram: the VMM's own socket path (QEMU's local.path) to send to",
    )
    serve.add_argument(
        "--print-env",
        metavar="FILE",
        help="write the guest variables to FILE as JSON instead of printing them",
    )
    serve.add_argument(
        "--reconnect",
        action="store_true",
        help="after a VMM disconnects, wait for the next one instead of exiting",
    )
    add_network_options(serve)
    add_logging_options(serve, "info")
    return parser


def _cmd_env(args: argparse.Namespace) -> int:
    config = NetworkConfig() if args.config is None else NetworkConfig.load(args.config)
    addressing = derive_addressing(config, args.slot)
    # The secrets' placeholders too (never their values), as Network.guest_env_vars().
    for key, value in guest_env_vars(addressing) + config.secrets.env_vars():
        print(f"{key}={value}")
    return 0


def _cmd_run(args: argparse.Namespace, command: list[str]) -> int:
    from trionet.cli.run import RunError, RunOptions, run

    choice = network_choice(args)
    configure_logging(log_level(args))
    try:
        return run(RunOptions(choice, command, offload=args.offload, pcap=args.pcap))
    except RunError as exc:
        print(f"trionet run: {exc}", file=sys.stderr)
        return exc.status


def _cmd_serve(args: argparse.Namespace) -> int:
    from trionet.cli.serve import ServeError, ServeOptions, serve

    if (args.vfkit or args.peer) and args.unixgram is None:
        print("trionet serve: --vfkit and --peer need --unixgram (see --help)", file=sys.stderr)
        return EXIT_USAGE
    choice = network_choice(args)
    configure_logging(log_level(args))
    options = ServeOptions(
        network=choice,
        qemu_stream=args.qemu_stream,
        unixgram=args.unixgram,
        tap=args.tap,
        vfkit=args.vfkit,
        peer=args.peer,
        print_env=args.print_env,
        reconnect=args.reconnect,
        offload=args.offload,
        pcap=args.pcap,
    )
    try:
        return serve(options)
    except ServeError as exc:
        print(f"trionet serve: {exc}", file=sys.stderr)
        return exc.status


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command: list[str] = []
    if "run" in argv and "--" in argv and argv.index("run") < argv.index("--"):
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "run" and not command:
        print(
            "trionet run: give the command to run after --, as in: trionet run -- sh",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.command == "env":
            return _cmd_env(args)
        if args.command == "run":
            return _cmd_run(args, command)
        if args.command == "serve":
            return _cmd_serve(args)
    except (ConfigError, ValueError) as exc:
        print(f"trionet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Ctrl-C before run/serve took over signal handling (while importing, say).
        return 128 + 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
