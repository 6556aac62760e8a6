"""``trionet serve``: the engine for an external VMM, over a unix socket or a TAP.

One engine serves one guest NIC for the life of the command. A VMM session
is one accepted stream connection or one datagram peer; when it ends (the
VMM quit, or broke the framing) the command exits, or with ``--reconnect``
waits for the next session on the same engine, so a rebooted VM keeps its
addresses. Frames queued for the old session are discarded first.

The guest variables are announced once the socket (or TAP) is ready, so a
launcher can start the VMM as soon as it has read them: on stdout as
``KEY=VALUE`` lines, or atomically written as JSON with ``--print-env``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from typing import Final

import trio

from trionet.cli.audit_file import AuditWriter
from trionet.cli.errors import first_leaf
from trionet.cli.logs import log_event
from trionet.cli.options import NetworkChoice
from trionet.engine.backend import FrameBackend
from trionet.links.dgram import DgramLink
from trionet.links.endpoint import FrameEndpoint
from trionet.links.pcap import PcapEndpoint, PcapWriter
from trionet.links.stream import StreamLink, open_unix_stream_listener
from trionet.links.tap import TapDevice
from trionet.links.tap_link import run_tap_link
from trionet.links.unixpath import remove_stale_socket
from trionet.links.vmm_link import FrameLink, discard_queued, run_vmm_link
from trionet.network import Network, open_network
from trionet.services.ports import PublishError

__all__ = ["ServeError", "ServeOptions", "serve"]

EXIT_SETUP_FAILED: Final = 125

logger = logging.getLogger("trionet.serve")


class ServeError(Exception):
    """The link could not be set up; the message is one line for the user."""

    def __init__(self, message: str, status: int = EXIT_SETUP_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ServeOptions:
    network: NetworkChoice
    qemu_stream: str | None = None
    unixgram: str | None = None
    tap: str | None = None
    vfkit: bool = False
    peer: str | None = None
    print_env: str | None = None
    reconnect: bool = False
    offload: bool = True
    pcap: str | None = None


def serve(options: ServeOptions) -> int:
    """Serve until SIGINT/SIGTERM (exit 0), or until the VMM leaves without --reconnect."""
    try:
        return trio.run(_serve, options)
    except BaseExceptionGroup as group:
        error = first_leaf(group, ServeError)
        if error is None:
            raise
        raise error from None


async def _serve(options: ServeOptions) -> int:
    pcap: PcapWriter | None = None
    if options.pcap is not None:
        try:
            pcap = PcapWriter.create(options.pcap)
        except OSError as exc:
            raise ServeError(f"cannot write {options.pcap}: {exc.strerror}", 2) from exc
    choice = options.network
    audit: AuditWriter | None = None
    if choice.audit is not None:
        try:
            audit = AuditWriter(choice.audit)
        except OSError as exc:
            if pcap is not None:
                pcap.close()
            raise ServeError(f"cannot write {choice.audit}: {exc.strerror}", 2) from exc
    try:
        await _serve_network(options, choice, pcap, audit)
    except PublishError as exc:
        raise ServeError(str(exc)) from None
    finally:
        if pcap is not None:
            pcap.close()
        if audit is not None:
            audit.close()
        for path in (options.qemu_stream, options.unixgram):
            if path is not None:
                with contextlib.suppress(OSError):
                    remove_stale_socket(path)
    return 0


async def _serve_network(
    options: ServeOptions,
    choice: NetworkChoice,
    pcap: PcapWriter | None,
    audit: AuditWriter | None,
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        async with open_network(choice.config, choice.slot, routes=choice.routes) as net:
            if audit is not None:
                net.on_audit(audit)
            backend = net.take_backend()
            endpoint: FrameBackend | PcapEndpoint = (
                backend if pcap is None else PcapEndpoint(backend, pcap)
            )
            ready = _Announcer(net, options.print_env)
            try:
                if options.tap is not None:
                    await _serve_tap(options, ready, endpoint)
                elif options.qemu_stream is not None:
                    await _serve_stream(options, ready, endpoint, options.qemu_stream)
                else:
                    assert options.unixgram is not None
                    await _serve_dgram(options, ready, endpoint, options.unixgram)
            finally:
                if ready.done:  # a set-up error is reported alone, on one line
                    snapshot = net.metrics_handle().snapshot()
                    log_event(logger, logging.INFO, "serve.end", **snapshot)
        nursery.cancel_scope.cancel()


async def _stop_on_signal(cancel_scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log_event(logger, logging.INFO, "serve.stop", signal=signal.Signals(signum).name)
            cancel_scope.cancel()
            return


class _Announcer:
    """Publishes the guest variables once the link is ready, and remembers that it did."""

    def __init__(self, net: Network, print_env: str | None) -> None:
        self.net = net
        self.print_env = print_env
        self.done = False

    def __call__(self) -> None:
        announce(self.net, self.print_env)
        self.done = True


def announce(net: Network, print_env: str | None) -> None:
    """Publish the guest variables: JSON written atomically to a file, or stdout lines."""
    env = net.guest_env_vars()
    if print_env is None:
        sys.stdout.write("".join(f"{key}={value}\n" for key, value in env))
        sys.stdout.flush()
        return
    temporary = f"{print_env}.tmp{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(dict(env), f, indent=2)
        f.write("\n")
    os.replace(temporary, print_env)


async def _serve_tap(
    options: ServeOptions, ready: _Announcer, endpoint: FrameBackend | PcapEndpoint
) -> None:
    assert options.tap is not None
    try:
        tap = TapDevice.open(options.tap, offload=options.offload, uso=False)
    except (OSError, ValueError) as exc:
        raise ServeError(f"cannot open TAP {options.tap!r}: {exc}") from exc
    with tap:
        ready()
        log_event(logger, logging.INFO, "serve.ready", link="tap", name=tap.name)
        await run_tap_link(endpoint, tap)


async def _run_session(endpoint: FrameEndpoint, link: FrameLink, kind: str, peer: str) -> None:
    stale = discard_queued(endpoint)
    log_event(logger, logging.INFO, "session.start", link=kind, peer=peer, discarded=stale)
    reason = "stopped"  # by SIGINT/SIGTERM, unless the link says otherwise
    try:
        reason = await run_vmm_link(endpoint, link)
    finally:
        c = link.counters
        log_event(
            logger,
            logging.INFO,
            "session.end",
            link=kind,
            reason=reason,
            frames_in=c.frames_in,
            frames_out=c.frames_out,
            malformed_in=c.malformed_in,
            drops_out=c.drops_out,
        )


async def _serve_stream(
    options: ServeOptions, ready: _Announcer, endpoint: FrameEndpoint, path: str
) -> None:
    try:
        listener = await open_unix_stream_listener(path)
    except OSError as exc:
        raise ServeError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    async with listener:
        ready()
        log_event(logger, logging.INFO, "serve.ready", link="stream", path=path)
        while True:
            stream = await listener.accept()
            await _run_session(endpoint, StreamLink(stream), "stream", path)
            if not options.reconnect:
                return


async def _serve_dgram(
    options: ServeOptions, ready: _Announcer, endpoint: FrameEndpoint, path: str
) -> None:
    def bind() -> DgramLink:
        try:
            return DgramLink.bind(path, peer=options.peer, require_greeting=options.vfkit)
        except OSError as exc:
            raise ServeError(f"cannot bind {path}: {exc.strerror or exc}") from exc

    link = bind()
    ready()
    log_event(logger, logging.INFO, "serve.ready", link="unixgram", path=path, vfkit=options.vfkit)
    while True:
        await _run_session(endpoint, link, "unixgram", path)
        if not options.reconnect:
            return
        link = bind()  # a new peer needs a fresh socket: the old one is connected to the last
