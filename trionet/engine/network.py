"""``open_network``: one sandbox's network engine, scoped to an ``async with``.

Everything the engine runs lives in a nursery owned by the block: the stack's
timer, the readiness loop that serves every relayed host socket (TCP and
UDP), a task per flow handler or ping, link tasks. Leaving the block for any reason
(normal exit, an exception, cancellation, or the termination handle) resets
every guest connection, closes every host socket and the frame endpoint, and
waits for all of it: no task or file descriptor outlives the block.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import NetworkConfig
from trionet.engine.backend import FrameBackend
from trionet.engine.core import EngineCore
from trionet.engine.icmp_relay import IcmpRelay
from trionet.engine.metrics import EngineCounters, MetricsHandle
from trionet.engine.policy import FlowPolicy, allow_all
from trionet.engine.tcp_relay import FlowHandler, TcpRelay
from trionet.engine.termination import TerminationHandle
from trionet.engine.udp_relay import UdpRelay
from trionet.guest_env import guest_env_vars
from trionet.links.tap import TapDevice
from trionet.links.tap_link import run_tap_link
from trionet.stack.interface import Stack, StackParams

__all__ = ["Network", "open_network"]


class Network:
    """The handle an embedder gets from :func:`open_network`."""

    def __init__(
        self,
        config: NetworkConfig,
        addressing: GuestAddressing,
        core: EngineCore,
        termination: TerminationHandle,
        nursery: trio.Nursery,
        *,
        host_sockets: Callable[[], int],
    ) -> None:
        self.config = config
        self.addressing = addressing
        self._core = core
        self._termination = termination
        self._nursery = nursery
        self._backend_taken = False
        self._metrics = MetricsHandle(core.counters, lambda: core.stack.drops, host_sockets)

    def take_backend(self) -> FrameBackend:
        """The guest's frame endpoint, for a VMM or a link. One-shot."""
        if self._backend_taken:
            raise RuntimeError("the backend was already taken")
        self._backend_taken = True
        return self._core.backend

    def guest_env_vars(self) -> list[tuple[str, str]]:
        """The ``MSB_NET*`` variables the guest's init configures itself from."""
        return guest_env_vars(self.addressing)

    def ca_cert_pem(self) -> bytes | None:
        """The TLS interception CA, once TLS interception exists (None until then)."""
        return None

    def host_cas_cert_pem(self) -> bytes | None:
        """The host's trust roots for the guest, once TLS interception exists."""
        return None

    def termination_handle(self) -> TerminationHandle:
        return self._termination

    def metrics_handle(self) -> MetricsHandle:
        return self._metrics

    @property
    def core(self) -> EngineCore:
        """The engine core, for links and services built on this network."""
        return self._core

    async def attach_tap(self, tap: TapDevice) -> None:
        """Connect the guest's frame endpoint to ``tap`` for the network's lifetime.

        Takes the backend (so it cannot also be taken by a VMM). The TAP is
        closed when the network shuts down.
        """
        await self._nursery.start(_run_tap, self.take_backend(), tap)


async def _run_tap(
    backend: FrameBackend, tap: TapDevice, *, task_status: trio.TaskStatus[None]
) -> None:
    with tap:
        await run_tap_link(backend, tap, task_status=task_status)


def _stack_params(config: NetworkConfig, addressing: GuestAddressing) -> StackParams:
    return StackParams(
        guest_mac=addressing.guest_mac.packed,
        gateway_mac=addressing.gateway_mac.packed,
        mtu=addressing.mtu,
        gateway_ipv4=None if addressing.ipv4 is None else addressing.ipv4.gateway.packed,
        guest_ipv4=None if addressing.ipv4 is None else addressing.ipv4.guest.packed,
        gateway_ipv6=None if addressing.ipv6 is None else addressing.ipv6.gateway.packed,
        gateway_ipv6_link_local=(
            None if addressing.ipv6 is None else addressing.ipv6.gateway_link_local.packed
        ),
        guest_ipv6=None if addressing.ipv6 is None else addressing.ipv6.guest.packed,
        max_connections=config.max_connections,
        isn_secret=os.urandom(16),
        dhcp=config.dhcp,
        ipv4_prefix_len=30 if addressing.ipv4 is None else addressing.ipv4.prefix_len,
    )


@asynccontextmanager
async def open_network(
    config: NetworkConfig,
    slot: int,
    *,
    routes: HostRoutes | None = None,
    policy: FlowPolicy = allow_all,
    flow_handler: FlowHandler | None = None,
    connect_timeout: float | None = None,
) -> AsyncIterator[Network]:
    """Create a network engine for ``slot`` and run it for the block's duration.

    ``routes`` overrides the host route probe (tests use it); ``policy`` is
    the new-flow decision point; ``flow_handler`` replaces the plain relay
    between an accepted guest connection and its host connection.
    """
    addressing = derive_addressing(config, slot, routes)
    counters = EngineCounters()
    core = EngineCore(Stack(_stack_params(config, addressing)), addressing, counters, policy)
    relay_options = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    tcp = TcpRelay(core, handler=flow_handler, **relay_options)
    udp = UdpRelay(core)
    IcmpRelay(core)
    async with trio.open_nursery() as nursery:
        termination = TerminationHandle(nursery.cancel_scope)
        await nursery.start(core.run)
        network = Network(
            config, addressing, core, termination, nursery, host_sockets=lambda: tcp.held
        )
        try:
            yield network
        finally:
            nursery.cancel_scope.cancel()
            tcp.close()
            udp.close()
            core.shutdown()
            core.backend.close()
