"""``open_network``: one sandbox's network engine, scoped to an ``async with``.

Everything the engine runs lives in a nursery owned by the block: the stack's
timer, the readiness loop that serves every relayed host socket (TCP and
UDP), a task per flow handler or ping, link tasks. Leaving the block for any reason
(normal exit, an exception, cancellation, or the termination handle) resets
every guest connection, closes every host socket and the frame endpoint, and
waits for all of it: no task or file descriptor outlives the block.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import NetworkConfig
from trionet.dns.intercept import DnsInterceptor
from trionet.engine.audit import DEFAULT_BUFFER, AuditCallback, AuditLog
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
from trionet.policy.audit import AuditRecord
from trionet.policy.evaluate import PolicyEvaluator
from trionet.policy.model import NetworkPolicy
from trionet.policy.pins import PinSet
from trionet.ports.config import PortMapping
from trionet.secrets.handle import SecretsHandle
from trionet.services.dns_service import DnsService, resolve_nameservers
from trionet.services.ports import PortPublisher
from trionet.services.secret_sources import resolve_sources
from trionet.stack.interface import Stack, StackParams

if TYPE_CHECKING:
    # The TLS machinery (cryptography, h11, h2: about 10 MiB resident) loads
    # only when a configuration enables TLS or asks for the host's CAs; an
    # engine without TLS never pays for it.
    from trionet.services.tls_intercept import TlsInterceptor
    from trionet.tls.certs import CertificateAuthority

__all__ = ["MULTI_TENANT", "Network", "multi_tenant_config", "open_network"]

#: ``open_network(profile=MULTI_TENANT)``: the deployment profile of §10.7.
MULTI_TENANT = "multi-tenant"
_MULTI_TENANT_MAX_CONNECTIONS = 256
_log = logging.getLogger("trionet.engine")


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
        secrets: SecretsHandle,
        tls: TlsInterceptor | None,
        ports: PortPublisher,
    ) -> None:
        self.config = config
        self.addressing = addressing
        self._core = core
        self._termination = termination
        self._nursery = nursery
        self._backend_taken = False
        self._ports = ports
        self._metrics = MetricsHandle(
            core.counters, lambda: core.stack.drops, host_sockets, core.audit.snapshot
        )
        self._secrets = secrets
        self._tls = tls

    def take_backend(self) -> FrameBackend:
        """The guest's frame endpoint, for a VMM or a link. One-shot."""
        if self._backend_taken:
            raise RuntimeError("the backend was already taken")
        self._backend_taken = True
        return self._core.backend

    def guest_env_vars(self) -> list[tuple[str, str]]:
        """The ``MSB_NET*`` variables, then one ``ENV=placeholder`` per secret (§1.3).

        The placeholders are all the guest ever learns of the secrets.
        """
        return guest_env_vars(self.addressing) + self._secrets.snapshot().env_vars()

    def ca_cert_pem(self) -> bytes | None:
        """The TLS interception CA's certificate, byte for byte as loaded; None without TLS."""
        return None if self._tls is None else self._tls.ca.cert_pem

    def host_cas_cert_pem(self) -> bytes | None:
        """The host's trust roots as one de-duplicated PEM bundle, when ``trust_host_cas``.

        Read afresh on each call; None when off or when the host has none.
        """
        if not self.config.trust_host_cas:
            return None
        from trionet.services.tls_files import host_trust_ders
        from trionet.tls.certs import dedupe_pem_bundle

        return dedupe_pem_bundle(host_trust_ders())

    @property
    def pins(self) -> PinSet:
        """The DNS pin set: which names this sandbox resolved to which addresses (§7.5)."""
        return self._core.pins

    def secrets_handle(self) -> SecretsHandle:
        """Rotate, remove or re-scope secrets at run time (new connections see the change)."""
        return self._secrets

    def audit_records(self) -> AsyncIterator[AuditRecord]:
        """Every policy decision from now on, as :class:`~trionet.AuditRecord` objects.

        ``async for record in net.audit_records(): ...``. Each iterator has
        its own buffer of ``audit_buffer`` records; if it falls further
        behind, the oldest are dropped (counted as ``audit.dropped`` in the
        metrics snapshot) -- the engine never waits for a reader.
        """
        return self._core.audit.records()

    def on_audit(self, callback: AuditCallback) -> Callable[[], None]:
        """Call ``callback(record)`` synchronously for each decision; returns an unsubscriber.

        The callback runs inside the engine's frame processing: it must be
        quick and must not block. One that raises is logged and counted.
        """
        return self._core.audit.on_record(callback)

    def termination_handle(self) -> TerminationHandle:
        return self._termination

    def metrics_handle(self) -> MetricsHandle:
        return self._metrics

    async def publish(self, mapping: PortMapping) -> PortMapping:
        """Publish a guest port on the host; returns once the listener is bound.

        The result is the mapping as bound: ``host_port=0`` becomes the port
        the kernel picked. A taken port (or an address the host does not
        have) raises :class:`~trionet.services.ports.PublishError`, an
        ``OSError``, and leaves nothing behind.
        """
        await trio.lowlevel.checkpoint()
        return self._ports.publish(mapping)

    async def unpublish(self, mapping: PortMapping, *, reset: bool = False) -> None:
        """Stop publishing ``mapping`` (as :meth:`publish` returned it).

        New clients are refused at once; connections already relayed carry
        on unless ``reset``, which resets them both ways. ``KeyError`` if
        the mapping is not published.
        """
        await trio.lowlevel.checkpoint()
        self._ports.unpublish(mapping, reset=reset)

    def published(self) -> list[PortMapping]:
        """The mappings published now, as bound."""
        return self._ports.published()

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
        gateway_echo_events=True,  # so the policy decides gateway pings too
    )


def multi_tenant_config(config: NetworkConfig) -> tuple[NetworkConfig, list[str]]:
    """``config`` as the multi-tenant profile (§10.7) allows it, and what was changed.

    Nothing a tenant's config says may widen what the platform grants:
    interface overrides, published ports and custom nameservers go, rebind
    protection is forced on, host CAs are not trusted, at most 256
    connections. Sections other branches add are reset to their defaults by
    name when present.
    """
    changes: dict[str, object] = {}
    fields = {f.name: f for f in dataclasses.fields(config)}
    for name in ("interface", "ports"):
        f = fields.get(name)
        if f is None:
            continue
        default = (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        )
        if getattr(config, name) != default:
            changes[name] = default
    dns = config.dns
    if dns.nameservers or not dns.rebind_protection:
        changes["dns"] = dataclasses.replace(dns, nameservers=(), rebind_protection=True)
    if "trust_host_cas" in fields and getattr(config, "trust_host_cas", False):
        changes["trust_host_cas"] = False
    if config.max_connections > _MULTI_TENANT_MAX_CONNECTIONS:
        changes["max_connections"] = _MULTI_TENANT_MAX_CONNECTIONS
    return dataclasses.replace(config, **changes), sorted(changes)  # type: ignore[arg-type]


async def _intercept_dns(
    config: NetworkConfig,
    addressing: GuestAddressing,
    core: EngineCore,
) -> DnsService:
    """Put DNS interception in front of the relays (reference §7)."""
    dns = config.dns
    udp_next, tcp_next = core.on_udp, core.on_tcp_connect
    assert udp_next is not None and tcp_next is not None, "install the relays first"
    interceptor = DnsInterceptor(
        core.policy_evaluator,
        core.pins,
        gateway_ipv4=None if addressing.ipv4 is None else addressing.ipv4.gateway,
        gateway_ipv6=None if addressing.ipv6 is None else addressing.ipv6.gateway,
        gateway_addresses=[] if addressing.ipv6 is None else [addressing.ipv6.gateway_link_local],
        host_alias=addressing.host_alias,
        upstreams=await resolve_nameservers(dns.nameservers),
        rebind_protection=dns.rebind_protection,
    )
    return DnsService(
        core,
        interceptor,
        audit=core.audit.emit,
        query_timeout=dns.query_timeout_ms / 1000,
        # Whatever handled UDP and TCP SYNs until now handles what DNS does
        # not take: installed last, DNS interception sees them first.
        udp_next=udp_next,
        tcp_next=tcp_next,
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
    profile: str | None = None,
    audit_buffer: int = DEFAULT_BUFFER,
    ca: CertificateAuthority | None = None,
) -> AsyncIterator[Network]:
    """Create a network engine for ``slot`` and run it for the block's duration.

    Every new flow is decided by ``config.policy`` (the public profile unless
    the config says otherwise) and then by ``policy``, an optional embedder
    hook called with a :class:`~trionet.NewFlow` for flows the configured
    policy allowed: both must allow. ``profile="multi-tenant"`` applies the
    §10.7 deployment profile: the config is sanitised (see
    :func:`multi_tenant_config`) and the public profile becomes a platform
    floor every flow must pass as well. ``routes`` overrides the host route
    probe (tests use it); ``flow_handler`` replaces the plain relay between an
    accepted guest connection and its host connection; ``audit_buffer`` is
    each :meth:`Network.audit_records` iterator's buffer; ``ca`` is the TLS
    interception CA when the caller loaded it already (``trionet run`` does,
    to give CMD the same CA); otherwise it is loaded or created here.
    """
    platform: NetworkPolicy | None = None
    if profile == MULTI_TENANT:
        config, changed = multi_tenant_config(config)
        if changed:
            _log.warning("multi-tenant profile: reset %s", ", ".join(changed))
        platform = NetworkPolicy.public()
    elif profile is not None:
        raise ValueError(f"unknown profile {profile!r} (only {MULTI_TENANT!r})")
    for warning in config.policy.shadowed():
        _log.warning("policy: %s", warning)
    addressing = derive_addressing(config, slot, routes)
    counters = EngineCounters()
    secrets = SecretsHandle(resolve_sources(config.secrets))
    evaluator = PolicyEvaluator(
        config.policy, EngineCore.gateways_of(addressing), PinSet(), platform
    )
    core = EngineCore(
        Stack(_stack_params(config, addressing)),
        addressing,
        counters,
        policy,
        evaluator=evaluator,
        audit=AuditLog(audit_buffer),
    )
    tls: TlsInterceptor | None = None
    if config.tls.enabled:
        from trionet.services.tls_files import load_or_create_ca
        from trionet.services.tls_intercept import TlsInterceptor

        tls = TlsInterceptor(
            core,
            config.tls,
            ca=ca if ca is not None else load_or_create_ca(config.tls),
            secrets=secrets,
        )
        core.peeked_ports = frozenset(config.tls.intercepted_ports)
        if config.tls.block_quic_on_intercept:
            core.blocked_udp_ports = core.peeked_ports
    relay_options = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    tcp = TcpRelay(
        core,
        handler=flow_handler,
        choose_handler=None if tls is None else tls.choose,
        **relay_options,
    )
    udp = UdpRelay(core)
    IcmpRelay(core)
    dns = await _intercept_dns(config, addressing, core)
    if tls is not None:
        dns.dot = tls.terminate_dot  # DNS over TLS answered by trionet's DNS (§7.7)
    ports = (
        PortPublisher(core)
        if connect_timeout is None
        else PortPublisher(core, connect_timeout=connect_timeout)
    )
    # Bound before anything runs, so a taken port fails open_network with
    # a plain PublishError and leaves nothing behind.
    try:
        for mapping in config.ports:
            ports.publish(mapping)
    except BaseException:
        ports.close()
        core.readiness.close()
        raise
    core.backend.limit(config.rate_limiter, core.call_at)
    async with trio.open_nursery() as nursery:
        termination = TerminationHandle(nursery.cancel_scope)
        if tls is not None:
            tls.termination = termination
        await nursery.start(core.run)
        network = Network(
            config,
            addressing,
            core,
            termination,
            nursery,
            host_sockets=lambda: tcp.held + ports.relays,
            secrets=secrets,
            tls=tls,
            ports=ports,
        )
        try:
            yield network
        finally:
            nursery.cancel_scope.cancel()
            ports.close()
            tcp.close()
            udp.close()
            dns.close()
            core.shutdown()
            core.backend.close()
