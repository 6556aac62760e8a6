"""EngineCore: the one place where the sans-IO stack meets Trio.

Every interaction with the stack follows the same shape: call it
synchronously with the current time, then :meth:`EngineCore.flush`, which
hands the frames it produced to the backend, turns its events into task
wake-ups or new tasks, and moves the single timer's deadline if the stack now
needs attention sooner. No other module touches the stack directly.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

import trio

from trionet.addressing import GuestAddressing
from trionet.engine.audit import AuditLog
from trionet.engine.backend import FrameBackend
from trionet.engine.host_addresses import HostAddresses
from trionet.engine.metrics import EngineCounters
from trionet.engine.policy import FlowPolicy, NewFlow, Verdict
from trionet.engine.readiness import ReadinessLoop
from trionet.policy.audit import AuditRecord
from trionet.policy.evaluate import Decision, PolicyEvaluator, PolicyVerdict
from trionet.policy.groups import Gateways
from trionet.policy.pins import PinSet
from trionet.stack.flows import (
    EchoRequested,
    FlowKey,
    StackEvent,
    TcpActivity,
    TcpConnectionGone,
    TcpConnectRequested,
    UdpReceived,
)
from trionet.stack.interface import RefuseReason, Stack, TcpStatus

__all__ = ["EngineCore"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_log = logging.getLogger("trionet.engine")


def _nothing() -> None:
    """A deadline whose only job is to wake the timer, which then flushes."""


_LOOPBACK4 = ipaddress.IPv4Address("127.0.0.1")
_LOOPBACK6 = ipaddress.IPv6Address("::1")
#: Rounds of events one flush handles; what is left waits for the next one.
_MAX_FLUSH_ROUNDS = 16
#: Rounds of EngineCore.drain that may find work before a task waits through Trio.
DRAIN_ROUNDS = 8


class EngineCore:
    """Owns the stack, its timer and the per-connection wake-ups."""

    def __init__(
        self,
        stack: Stack,
        addressing: GuestAddressing,
        counters: EngineCounters,
        policy: FlowPolicy,
        *,
        evaluator: PolicyEvaluator,
        audit: AuditLog,
    ) -> None:
        self.stack = stack
        self.addressing = addressing
        self.counters = counters
        #: the embedder's hook, asked after the configured policy allowed a flow
        self.policy = policy
        #: the configured policy (and the multi-tenant floor); see trionet.policy
        self.policy_evaluator = evaluator
        #: TCP ports whose flows a service decides again with a peeked
        #: hostname (TLS interception's ports): a DEFER there admits the SYN.
        self.peeked_ports: frozenset[int] = frozenset()
        #: the host's own addresses other than the gateway (see host_addresses.py)
        self.host_addresses = HostAddresses()
        #: UDP ports new flows to which are denied (QUIC to intercepted ports)
        self.blocked_udp_ports: frozenset[int] = frozenset()
        #: names the guest resolved through trionet, for domain rules (engine clock)
        self.pins: PinSet = evaluator.pins
        self.audit = audit
        self.backend = FrameBackend(
            self.ingest,
            counters,
            lambda v4, v6: stack.enable_tso(ipv4=v4, ipv6=v6),
            drain=self.drain,
        )
        self._waiters: dict[FlowKey, trio.Event] = {}
        self._timer_scope: trio.CancelScope | None = None
        #: the engine's own deadlines (a dial's timeout), served by the same timer
        self._deadlines: list[tuple[float, int, Callable[[], None]]] = []
        self._deadline_ids = itertools.count()
        self._flows: trio.Nursery | None = None
        self._flushing = False
        #: host sockets served without a task per socket (see readiness.py)
        self.readiness = ReadinessLoop(self.batch, drain=self.drain)
        # Set by the relays at start-up; see trionet.network. They run
        # inside flush() and must not block.
        self.on_tcp_connect: Callable[[FlowKey], None] | None = None
        self.on_tcp_activity: Callable[[FlowKey], None] | None = None
        self.on_udp: Callable[[UdpReceived], None] | None = None
        self.on_echo: Callable[[EchoRequested], None] | None = None
        #: connections someone other than the TCP relay owns (published ports):
        #: their activity goes to this callback instead of on_tcp_activity
        self.tcp_watchers: dict[FlowKey, Callable[[], None]] = {}
        #: guest datagrams to these keys are replies to a published UDP port's peer
        self.udp_watchers: dict[FlowKey, Callable[[bytes], None]] = {}

    # -- running -------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the timer and the readiness loop, and host flow tasks, until cancelled."""
        async with trio.open_nursery() as flows:
            self._flows = flows
            flows.start_soon(self._run_timer)
            await flows.start(self.readiness.run)
            task_status.started()

    def start_flow_task(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        assert self._flows is not None, "EngineCore.run() is not running"
        self._flows.start_soon(fn, *args)

    def call_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` (synchronously, then flush) once Trio's clock reaches ``deadline``.

        Not cancellable: the callback checks whether it still matters.
        """
        heapq.heappush(self._deadlines, (deadline, next(self._deadline_ids), callback))
        scope = self._timer_scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    async def _run_timer(self) -> None:
        # One timer for the whole engine: sleep until the stack's earliest
        # deadline or the engine's own; flush() and call_at() pull it in
        # whenever something needs us sooner.
        deadlines = self._deadlines
        while True:
            deadline = self.stack.next_deadline()
            if deadline is None:
                deadline = math.inf
            if deadlines and deadlines[0][0] < deadline:
                deadline = deadlines[0][0]
            with trio.CancelScope(deadline=deadline) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            now = trio.current_time()
            with self.batch():
                self.stack.poll(now)
                while deadlines and deadlines[0][0] <= now:
                    heapq.heappop(deadlines)[2]()

    def shutdown(self) -> None:
        """Reset every guest connection and flush the RSTs (engine teardown)."""
        self.stack.abort_all(trio.current_time())
        self.flush()
        for event in self._waiters.values():
            event.set()
        self._waiters.clear()

    def drain(self) -> None:
        """Move what is ready now, without waiting: host sockets, then the guest's link.

        Called at the end of each wake-up, before its task waits again. On a
        shared CPU the other end usually answered while the engine worked
        (the guest's kernel receives inside our TAP write, a local server
        inside our send), and waiting for Trio to report it costs a
        scheduler pass (~20 µs here) that a non-blocking look does not.
        Bounded: after DRAIN_ROUNDS rounds that found work the task waits
        through Trio anyway, so the engine's other tasks keep their turn.
        When nothing is ready this costs one ``epoll_wait(0)`` and one read
        that finds nothing.
        """
        service = self.readiness.service
        poll_link = self.backend.poll_link
        for _round in range(DRAIN_ROUNDS):
            moved = service()
            if not poll_link() and not moved:
                return

    # -- frames in and out -----------------------------------------------------

    def ingest(self, frames: Iterable[bytes | memoryview], checksum_valid: bool) -> None:
        now = trio.current_time()
        receive = self.stack.receive_frame
        for frame in frames:
            receive(frame, now, checksum_valid)
        self.flush()  # taking the stack's output ends the batch

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run callbacks whose stack calls go out in one flush at the end.

        Inside, :meth:`flush` (and so every ``tcp_*`` call below) only
        defers: the readiness loop's handlers and the timer's callbacks each
        cost one flush per wake-up, however many connections they touch.
        """
        if self._flushing:
            yield
            return
        self._flushing = True
        try:
            yield
        finally:
            self._flushing = False
        self.flush()

    def flush(self) -> None:
        """Hand the stack's frames to the backend and its events to their owners.

        Event handlers run synchronously and often call into the stack (a
        relay reading what the guest sent, refusing a SYN), which makes more
        events and frames; a flush from inside a handler returns at once and
        the outer one takes them, so handlers never nest. Each round hands
        over the frames made so far, then runs the handlers; rounds repeat
        until the handlers cause no more events.
        """
        if self._flushing:
            return
        self._flushing = True
        stack = self.stack
        try:
            for _round in range(_MAX_FLUSH_ROUNDS):
                # Frames first: their payloads may be views of send buffers
                # (TcpConfig.segment_views) that a handler's send could
                # overwrite once the guest's ACKs, taken since, freed them.
                frames = stack.take_frames()
                if frames:
                    self.backend.deliver(frames)
                events = stack.take_events()
                if not events:
                    break
                for event in events:
                    self._dispatch(event)
            else:
                # Handlers kept making events: finish from the timer task
                # right away rather than leave them for an unrelated wake-up.
                frames = stack.take_frames()
                if frames:
                    self.backend.deliver(frames)
                self.call_at(trio.current_time(), _nothing)
        finally:
            self._flushing = False
        scope = self._timer_scope
        if scope is not None:
            deadline = stack.next_deadline()
            if deadline is not None and deadline < scope.deadline:
                scope.deadline = deadline

    def _dispatch(self, event: StackEvent) -> None:
        if isinstance(event, TcpActivity | TcpConnectionGone):
            self.tcp_wake(event.key)
            watcher = self.tcp_watchers.get(event.key)
            if watcher is not None:
                watcher()
            elif self.on_tcp_activity is not None:
                self.on_tcp_activity(event.key)
        elif isinstance(event, TcpConnectRequested):
            if self.on_tcp_connect is None:
                self.stack.tcp_refuse(event.key, trio.current_time(), RefuseReason.REFUSED)
            else:
                self.on_tcp_connect(event.key)
        elif isinstance(event, UdpReceived):
            reply = self.udp_watchers.get(event.key)
            if reply is not None:
                # Intercepted before the egress policy, as §5.1 does: it
                # answers a peer the ingress policy already admitted.
                reply(event.payload)
            elif self.on_udp is not None:
                self.on_udp(event)
        elif self.on_echo is not None:
            self.on_echo(event)

    # -- flows -------------------------------------------------------------------

    def describe(self, key: FlowKey, protocol: str) -> NewFlow:
        """Classify a flow by destination, for the policy and for dialling."""
        guest = ipaddress.ip_address(key.guest_addr)
        destination = ipaddress.ip_address(key.remote_addr)
        return NewFlow(
            protocol=protocol,
            guest=guest,
            guest_port=key.guest_port,
            destination=destination,
            destination_port=key.remote_port,
            # The stack drops loopback destinations already; classifying
            # them as the host too keeps a policy on host access airtight.
            to_host=self.is_gateway(destination) or destination.is_loopback,
        )

    def allows(self, flow: NewFlow) -> bool:
        """Decide a new guest flow (see :meth:`_decide`), failing closed.

        A decision runs inside the engine's flush: a bug in it must cost the
        one flow it was deciding, not the whole network.
        """
        try:
            return self._decide(flow)
        except Exception:
            _log.exception("deciding %s raised; denying it", flow)
            self.counters.dropped["policy_error"] += 1
            return False

    def _decide(self, flow: NewFlow) -> bool:
        """Decide a new guest flow: the configured policy, then the embedder's hook.

        Both must allow. Each decision goes on record (one audit record per
        flow, with the rule that decided it). A TCP SYN is evaluated
        *deferred* (§10.3): a domain rule that cannot be settled without the
        hostname says DEFER. On a port whose hostname a service peeks (TLS
        interception's SNI) the SYN then goes through and the service decides
        again; elsewhere the flow is decided on the pin set alone -- what this
        sandbox resolved through trionet.

        A destination that is one of the host's own addresses (not the
        gateway) is judged as the gateway, since that is what it reaches.
        """
        now = trio.current_time()
        protocol = flow.protocol
        if protocol == "icmp":
            protocol = "icmpv4" if flow.destination.version == 4 else "icmpv6"
            port = None
        else:
            port = flow.destination_port
        evaluator = self.policy_evaluator
        destination, reason = flow.destination, None
        stand_in = None if flow.to_host else self.host_stand_in(destination, now)
        if stand_in is not None:
            destination, reason = stand_in, "host-address"
        decision = evaluator.egress(destination, port, protocol, now, deferred=protocol == "tcp")
        if decision.verdict is PolicyVerdict.DEFER:
            if protocol == "tcp" and port in self.peeked_ports:
                # A service peeks this flow's hostname and decides again
                # with it (TLS interception: the SNI); let the SYN through.
                decision = Decision(
                    PolicyVerdict.ALLOW,
                    decision.rule_index,
                    decision.rule_text,
                    decision.matched_name,
                )
                reason = "deferred-to-sni"
            else:
                decision = evaluator.egress(destination, port, protocol, now)
        drop = "policy"
        if decision.verdict is PolicyVerdict.ALLOW and (
            protocol == "udp" and port in self.blocked_udp_ports
        ):
            # QUIC to a port whose TCP is intercepted: dropped so the client
            # falls back to TCP, where interception happens (§5.1).
            reason, drop = "quic-blocked", "quic_blocked"
            decision = Decision(PolicyVerdict.DENY, None, "tls.block_quic_on_intercept")
        if decision.verdict is PolicyVerdict.ALLOW:
            try:
                verdict = self.policy(flow)
            except Exception:
                # The hook is the embedder's code: a bug in it must not take
                # the engine down, and failing closed is the safe reading.
                _log.exception("the flow policy raised; denying %s", flow)
                verdict, drop = None, "policy_error"
            if verdict is not Verdict.ALLOW:
                reason = "embedder-policy"
                decision = Decision(PolicyVerdict.DENY, None, "embedder policy")
        # The record names what the guest resolved this address as, even when
        # an address rule decided: "10.0.0.5" alone says less than its name.
        name = decision.matched_name
        if name is None:
            name = min(self.pins.names_for(flow.destination, now), default=None)
        self.audit_decision(
            decision,
            "flow",
            protocol,
            flow.guest,
            flow.guest_port,
            flow.destination,
            port,
            name=name,
            reason=reason,
        )
        if decision.verdict is not PolicyVerdict.ALLOW:
            self.counters.dropped[drop] += 1
            return False
        return True

    def audit_decision(
        self,
        decision: Decision,
        kind: str,
        protocol: str,
        source: IPAddress,
        source_port: int | None,
        destination: IPAddress,
        port: int | None,
        *,
        name: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Put ``decision`` on record (wall-clock time; the engine's clock is not an epoch)."""
        self.audit.emit(
            AuditRecord.from_decision(
                decision,
                time=time.time(),
                kind=kind,
                protocol=protocol,
                source=str(source),
                source_port=source_port,
                destination=str(destination),
                port=port,
                name=name,
                reason=reason,
            )
        )

    def ingress_decision(self, peer_ip: IPAddress, guest_port: int, protocol: str) -> bool:
        """May ``peer_ip`` reach ``guest_port`` through a published port? (§10.5)

        The one ingress decision point: every accepted published TCP
        connection and every new published UDP peer passes here, with the
        peer as the address the policy judges. Each decision goes on record.
        """
        decision = self.policy_evaluator.ingress(
            peer_ip, guest_port, protocol, trio.current_time()
        )
        a = self.addressing
        guest: IPAddress | None
        if peer_ip.version == 4 or a.ipv6 is None:
            guest = None if a.ipv4 is None else a.ipv4.guest
        else:
            guest = a.ipv6.guest
        self.audit_decision(
            decision,
            "ingress",
            protocol,
            peer_ip,
            None,
            peer_ip if guest is None else guest,
            guest_port,
        )
        if decision.verdict is not PolicyVerdict.ALLOW:
            self.counters.dropped["ingress_policy"] += 1
            return False
        return True

    @staticmethod
    def gateways_of(addressing: GuestAddressing) -> Gateways:
        """The policy's ``host`` group: every address the guest reaches the host by."""
        return Gateways(
            None if addressing.ipv4 is None else addressing.ipv4.gateway,
            ()
            if addressing.ipv6 is None
            else (addressing.ipv6.gateway, addressing.ipv6.gateway_link_local),
        )

    def host_stand_in(self, address: IPAddress, now: float) -> IPAddress | None:
        """The gateway, if ``address`` is another of the host's own addresses.

        The host kernel delivers such an address locally, so what the guest
        reaches there is the host: it is judged as the gateway (the ``host``
        group), not as the public or private address it looks like.
        """
        if self.is_gateway(address) or not self.host_addresses.is_local(address, now):
            return None
        return self.gateway_for(address)

    def gateway_for(self, address: IPAddress) -> IPAddress:
        """The gateway of ``address``'s family (``address`` itself if that family is off)."""
        a = self.addressing
        if address.version == 4:
            return address if a.ipv4 is None else a.ipv4.gateway
        return address if a.ipv6 is None else a.ipv6.gateway

    def is_gateway(self, address: IPAddress) -> bool:
        a = self.addressing
        if a.ipv4 is not None and address == a.ipv4.gateway:
            return True
        return a.ipv6 is not None and address in (a.ipv6.gateway, a.ipv6.gateway_link_local)

    @staticmethod
    def host_target(flow: NewFlow) -> IPAddress:
        """Where to dial on the host: the gateway stands for the host's loopback."""
        if flow.to_host:
            return _LOOPBACK4 if flow.destination.version == 4 else _LOOPBACK6
        return flow.destination

    @staticmethod
    def other_loopback(address: IPAddress) -> IPAddress:
        """The host's loopback of the other family, where a refused host dial tries next."""
        return _LOOPBACK6 if address.version == 4 else _LOOPBACK4

    def open_host_socket(self, target: IPAddress, kind: socket.SocketKind) -> socket.socket | None:
        """A non-blocking host socket to reach ``target``; None (counted) if the host has none."""
        family = socket.AF_INET if target.version == 4 else socket.AF_INET6
        try:
            return socket.socket(family, kind | socket.SOCK_NONBLOCK)
        except OSError:
            # Out of file descriptors, most likely: this flow fails, the engine runs on.
            self.counters.dropped["host_socket_error"] += 1
            return None

    # -- TCP connections, for GuestTcpStream and the relays ---------------------------

    def tcp_accept(self, key: FlowKey) -> bool:
        accepted = self.stack.tcp_accept(key, trio.current_time())
        self.flush()
        if accepted:
            self.counters.connections_opened += 1
        return accepted

    def tcp_refuse(self, key: FlowKey, reason: RefuseReason) -> None:
        self.stack.tcp_refuse(key, trio.current_time(), reason)
        self.counters.connections_refused += 1
        self.flush()

    def tcp_status(self, key: FlowKey) -> TcpStatus:
        return self.stack.tcp_status(key)

    def tcp_read(self, key: FlowKey, max_bytes: int) -> bytes:
        data = self.stack.tcp_read(key, max_bytes, trio.current_time())
        self.flush()
        return data

    def tcp_send(self, key: FlowKey, data: memoryview) -> int:
        taken = self.stack.tcp_send(key, data, trio.current_time())
        self.flush()
        return taken

    def tcp_shutdown(self, key: FlowKey) -> None:
        self.stack.tcp_shutdown(key, trio.current_time())
        self.flush()

    def tcp_abort(self, key: FlowKey) -> None:
        if self.stack.tcp_abort(key, trio.current_time()):
            self.counters.connections_reset += 1
        self.flush()

    def tcp_release(self, key: FlowKey) -> None:
        self.stack.tcp_release(key, trio.current_time())
        self.flush()

    async def tcp_wait(self, key: FlowKey) -> None:
        event = self._waiters.get(key)
        if event is None:
            event = self._waiters[key] = trio.Event()
        await event.wait()

    def tcp_wake(self, key: FlowKey) -> None:
        event = self._waiters.pop(key, None)
        if event is not None:
            event.set()
