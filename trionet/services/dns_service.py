"""DNS interception, the Trio side (reference §7.1, §7.2, §7.6).

Every guest DNS query, UDP or TCP, to the gateway or to any other address,
is answered here, from the address the guest asked. The decisions (policy,
host alias, rebind protection, pins, truncation) are the sans-IO
:class:`~trionet.dns.intercept.DnsInterceptor`'s; this module only moves
bytes: it hands each query to an exchange, sends what the exchange asks to
the resolver it names, with the per-attempt timeout, and sends the answer
back to the guest.

It hooks in at the engine's two decision points, in front of the relays:
UDP to port 53 never reaches the UDP relay (and UDP to the alternative
resolver ports 5353, 5355, 137 and 853 is dropped, so stub resolvers fall
back to plain DNS), and a TCP SYN to port 53 is accepted locally instead of
being dialled. Each query and each DNS-over-TCP connection is a task in the
engine's flow nursery; their number is capped and the excess dropped and
counted, so a flooding guest costs bounded memory.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import trio

from trionet.dns.config import Nameserver
from trionet.dns.framing import MAX_MESSAGE, TcpFramer, frame
from trionet.dns.intercept import (
    Answer,
    DnsExchange,
    DnsInterceptor,
    SendUpstream,
    Transport,
    Upstream,
)
from trionet.dns.resolvconf import nameservers_from_resolv_conf
from trionet.engine.core import EngineCore
from trionet.engine.guest_stream import GuestTcpStream
from trionet.engine.readiness import IN
from trionet.policy.audit import AuditRecord
from trionet.stack.flows import FlowKey, UdpReceived
from trionet.stack.interface import RefuseReason

__all__ = ["DROPPED_UDP_PORTS", "DnsService", "resolve_nameservers"]

_log = logging.getLogger("trionet.dns")

DNS_PORT = 53
#: DNS over TLS (§7.7): served here when TLS interception gives a way to terminate it.
DOT_PORT = 853
#: mDNS, LLMNR, NetBIOS name service, DNS over QUIC: dropped so stub
#: resolvers give up on them and use plain DNS, which trionet answers (§7.1).
DROPPED_UDP_PORTS = frozenset({5353, 5355, 137, 853})
#: Queries answered at once (UDP and TCP together); more are dropped.
MAX_QUERIES_IN_FLIGHT = 512
#: DNS-over-TCP connections served at once; more are refused.
MAX_TCP_CONNECTIONS = 64
#: Queries one DNS-over-TCP connection may have in flight (pipelining).
MAX_PIPELINED = 16
#: Upstream answers taken per readiness wake-up before other sockets get a turn.
REPLIES_PER_WAKEUP = 16
#: Idle connected UDP sockets kept per upstream for the next queries.
IDLE_SOCKETS_PER_UPSTREAM = 32
#: A DNS-over-TCP connection that sends nothing for this long is closed (§7.6).
TCP_IDLE_TIMEOUT = 30.0
RESOLV_CONF = "/etc/resolv.conf"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Next = Callable[[UdpReceived], None]
_NextTcp = Callable[[FlowKey], None]


class _UpstreamSocket:
    """A connected UDP socket to one resolver, carrying one query at a time."""

    __slots__ = ("query", "sock", "upstream")

    def __init__(self, sock: socket.socket, upstream: Upstream) -> None:
        self.sock = sock
        self.upstream = upstream
        self.query: _UdpQuery | None = None


class _UdpQuery:
    """One guest query over UDP while it waits for an upstream."""

    __slots__ = ("attempt", "done", "exchange", "key", "slot")

    def __init__(self, key: FlowKey) -> None:
        self.key = key
        self.exchange: DnsExchange | None = None
        self.slot: _UpstreamSocket | None = None
        self.attempt = 0  # which attempt a timeout belongs to
        self.done = False


class DnsService:
    """Intercepts a network's DNS traffic; installed in front of the UDP and TCP relays."""

    def __init__(
        self,
        core: EngineCore,
        interceptor: DnsInterceptor,
        *,
        audit: Callable[[AuditRecord], None],
        query_timeout: float,
        udp_next: _Next,
        tcp_next: _NextTcp,
    ) -> None:
        self._core = core
        self.interceptor = interceptor
        self._audit = audit
        self._timeout = query_timeout
        self._udp_next = udp_next
        self._tcp_next = tcp_next
        self._in_flight = 0
        #: DNS-over-TCP readers waiting for the in-flight count to drop
        self._room = trio.lowlevel.ParkingLot()
        self._tcp_connections = 0
        #: every upstream UDP socket, and the idle ones by resolver
        self._sockets: set[_UpstreamSocket] = set()
        self._idle: dict[Upstream, list[_UpstreamSocket]] = {}
        self.counts = core.counters.dropped
        #: With TLS interception: terminates a DNS-over-TLS connection (§7.7)
        #: and returns the decrypted stream, or None when the handshake failed.
        self.dot: Callable[[GuestTcpStream], Awaitable[trio.abc.Stream | None]] | None = None
        core.on_udp = self.on_datagram
        core.on_tcp_connect = self.on_tcp_connect

    # -- the two hooks (run inside the engine's flush: never block) ----------------------

    def on_datagram(self, event: UdpReceived) -> None:
        port = event.key.remote_port
        if port == DNS_PORT:
            if self._in_flight >= MAX_QUERIES_IN_FLIGHT:
                self.counts["dns_overload"] += 1
                return
            self._start_udp(event.key, event.payload)
        elif port in DROPPED_UDP_PORTS:
            self.counts["udp_alternative_resolver"] += 1
        else:
            self._udp_next(event)

    def on_tcp_connect(self, key: FlowKey) -> None:
        core = self._core
        if key.remote_port == DOT_PORT and self.dot is None:
            # DNS over TLS with no way to terminate it: RST (§7.1), so the
            # stub falls back to plain DNS, which trionet answers, instead of
            # resolving past the DNS policy and the pin set.
            self.counts["dns_dot_refused"] += 1
            core.tcp_refuse(key, RefuseReason.REFUSED)
            return
        dot = key.remote_port == DOT_PORT
        if key.remote_port != DNS_PORT and not dot:
            self._tcp_next(key)
            return
        # Always accepted, whatever the destination: DNS policy applies per
        # query, and a query to another resolver is checked as egress then.
        if self._tcp_connections >= MAX_TCP_CONNECTIONS:
            self.counts["dns_tcp_overload"] += 1
            core.tcp_refuse(key, RefuseReason.REFUSED)
            return
        if not core.tcp_accept(key):
            return
        self._tcp_connections += 1
        core.start_flow_task(self._serve_tcp, key, dot)

    # -- UDP ------------------------------------------------------------------------------

    # A UDP query costs no task: its upstream socket is served by the
    # engine's readiness loop and its timeout by the engine's timer, as the
    # UDP relay's flows are. Every callback runs inside an engine batch, so
    # the answer's frame leaves with that batch's flush.

    def _start_udp(self, key: FlowKey, payload: bytes) -> None:
        self._in_flight += 1
        query = _UdpQuery(key)
        try:
            destination = ipaddress.ip_address(key.remote_addr)
            now = trio.current_time()
            query.exchange = self.interceptor.receive_query(
                payload,
                destination=destination,
                transport=Transport.UDP,
                now=now,
                upstream_id=secrets.randbits(16),
                judged_as=self._core.host_stand_in(destination, now),
            )
            self._step(query, query.exchange.next_event())
        except Exception:
            self._broken(query)

    def _step(self, query: _UdpQuery, event: Answer | SendUpstream) -> None:
        """Send the query to the upstream ``event`` names, or answer the guest."""
        exchange = query.exchange
        assert exchange is not None
        while isinstance(event, SendUpstream):
            slot = self._udp_slot(event.upstream)
            if slot is not None:
                try:
                    slot.sock.send(event.query)
                except OSError:
                    self._close_slot(slot)
                else:
                    slot.query = query
                    query.slot = slot
                    query.attempt += 1
                    attempt = query.attempt
                    deadline = trio.current_time() + self._timeout
                    self._core.call_at(deadline, partial(self._timed_out, query, attempt))
                    return
            self.counts["dns_upstream_failed"] += 1
            event = exchange.upstream_failed()
        self._finish_udp(query, event)

    def _readable(self, slot: _UpstreamSocket) -> None:
        """Datagrams from an upstream: the answer to the socket's query, or stale ones."""
        now = trio.current_time()
        for _ in range(REPLIES_PER_WAKEUP):
            try:
                data = slot.sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                # ICMP unreachable from the resolver: this attempt failed.
                query = slot.query
                self._close_slot(slot)
                if query is not None:
                    self._attempt_failed(query)
                return
            query = slot.query
            if query is None or query.exchange is None:
                continue  # a late answer to a query already settled
            try:
                answer = query.exchange.receive_upstream(data, now)
                if answer is None:
                    continue  # not the answer to this query (id, question)
                slot.query = None
                query.slot = None
                self._release_slot(slot)
                self._finish_udp(query, answer)
            except Exception:
                self._broken(query)
            return

    def _timed_out(self, query: _UdpQuery, attempt: int) -> None:
        if query.done or query.attempt != attempt:
            return
        slot = query.slot
        if slot is not None:
            self._close_slot(slot)  # a late answer must not meet another query
        self._attempt_failed(query)

    def _attempt_failed(self, query: _UdpQuery) -> None:
        query.slot = None
        self.counts["dns_upstream_failed"] += 1
        try:
            assert query.exchange is not None
            self._step(query, query.exchange.upstream_failed())
        except Exception:
            self._broken(query)

    def _query_done(self) -> None:
        """One query's upstream work is over: room for the next, UDP or TCP."""
        self._in_flight -= 1
        self._room.unpark()

    def _finish_udp(self, query: _UdpQuery, answer: Answer) -> None:
        query.done = True
        # The attempt's timeout stays on the engine's timer until it is due
        # and holds this query: let the exchange (the guest's bytes, up to
        # 64 KiB, and their parse) go now, not query_timeout later.
        query.exchange = None
        self._query_done()
        self._settled(answer, query.key, Transport.UDP)
        if answer.response is not None:
            self._core.stack.udp_send(query.key, answer.response, trio.current_time())

    def _broken(self, query: _UdpQuery) -> None:
        """A bug must cost one query, never the engine (this runs inside its batch)."""
        _log.exception("DNS interception failed on a query from %s", query.key)
        self.counts["dns_error"] += 1
        if query.slot is not None:
            self._close_slot(query.slot)
            query.slot = None
        if not query.done:
            query.done = True
            query.exchange = None
            self._query_done()

    def _udp_slot(self, upstream: Upstream) -> _UpstreamSocket | None:
        """An idle connected socket to ``upstream``, or a new one (None: the host has none)."""
        idle = self._idle.get(upstream)
        if idle:
            return idle.pop()
        family = socket.AF_INET if upstream.address.version == 4 else socket.AF_INET6
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        except OSError:
            self.counts["host_socket_error"] += 1
            return None
        try:
            # Connected: the kernel drops datagrams from anyone but the resolver.
            sock.connect((str(upstream.address), upstream.port))
        except OSError:
            sock.close()
            return None
        slot = _UpstreamSocket(sock, upstream)
        self._sockets.add(slot)
        self._core.readiness.watch(sock.fileno(), IN, lambda _events: self._readable(slot))
        return slot

    def _release_slot(self, slot: _UpstreamSocket) -> None:
        """Keep a socket that answered for the next query to its resolver.

        Only for the configured resolvers: one the guest named (``dig @X``)
        gets none kept, or a guest naming ever more resolvers would hold
        ever more of the host's descriptors.
        """
        if slot.upstream not in self.interceptor.upstreams:
            self._close_slot(slot)
            return
        idle = self._idle.setdefault(slot.upstream, [])
        if len(idle) < IDLE_SOCKETS_PER_UPSTREAM:
            idle.append(slot)
        else:
            self._close_slot(slot)

    def _close_slot(self, slot: _UpstreamSocket) -> None:
        if slot in self._sockets:
            self._sockets.discard(slot)
            self._core.readiness.forget(slot.sock.fileno())
            slot.sock.close()
        slot.query = None
        idle = self._idle.get(slot.upstream)
        if idle and slot in idle:
            idle.remove(slot)

    def close(self) -> None:
        """Engine teardown: close every upstream UDP socket (TCP ones close with their tasks)."""
        for slot in list(self._sockets):
            self._close_slot(slot)
        self._idle.clear()

    # -- TCP (§7.6) ---------------------------------------------------------------------

    async def _serve_tcp(self, key: FlowKey, dot: bool = False) -> None:
        guest = GuestTcpStream(self._core, key)
        stream: trio.abc.Stream = guest
        if dot:
            assert self.dot is not None
            tls = await self.dot(guest)
            if tls is None:
                guest.abort()
                self._tcp_connections -= 1
                return
            stream = tls
        framer = TcpFramer()
        send_lock = trio.Lock()
        slots = trio.Semaphore(MAX_PIPELINED)

        async def one(query: bytes) -> None:
            try:
                try:
                    response = await self._answer(query, key, dot=dot)
                finally:
                    self._query_done()
                if response is not None:
                    async with send_lock:
                        await stream.send_all(frame(response))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the guest went away; its other answers go nowhere either
            finally:
                slots.release()

        try:
            async with trio.open_nursery() as queries:
                while True:
                    data: bytes | bytearray | None = None
                    with trio.move_on_after(TCP_IDLE_TIMEOUT):
                        data = await stream.receive_some()
                    if data is None:
                        self.counts["dns_tcp_idle"] += 1
                        break
                    if not data:
                        break  # guest EOF
                    for query in framer.feed(data):
                        # Pipelined queries are answered concurrently, in
                        # completion order; past the limit we stop reading,
                        # which closes the guest's TCP window.
                        await slots.acquire()
                        # The in-flight limit holds for UDP and TCP together
                        # (each query holds an upstream socket): over TCP we
                        # wait for room rather than drop, as a stub would
                        # wait for its answer.
                        while self._in_flight >= MAX_QUERIES_IN_FLIGHT:
                            await self._room.park()
                        self._in_flight += 1
                        queries.start_soon(one, query)
            # Every answer is written: now our FIN (after close_notify for DoT).
            await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            guest.abort()  # a no-op after aclose(); a reset on cancellation or error
            self._tcp_connections -= 1

    # -- one query over TCP ----------------------------------------------------------------------

    async def _answer(self, query: bytes, key: FlowKey, *, dot: bool = False) -> bytes | None:
        """The guest's response to ``query`` (None: none), never raising.

        A bug here must cost one query, not the sandbox's whole network (this
        runs in the engine's flow nursery).
        """
        try:
            return await self._answer_unguarded(query, key, dot=dot)
        except Exception:
            _log.exception("DNS interception failed on a query from %s", key)
            self.counts["dns_error"] += 1
            return None

    async def _answer_unguarded(
        self, query: bytes, key: FlowKey, *, dot: bool = False
    ) -> bytes | None:
        # DoT is answered from the configured upstreams whatever address the
        # guest dialled (a plain-text query to a guest-chosen resolver would
        # undo the encryption the guest asked for).
        destination = None if dot else ipaddress.ip_address(key.remote_addr)
        now = trio.current_time()
        exchange = self.interceptor.receive_query(
            query,
            destination=destination,
            transport=Transport.TCP,
            now=now,
            upstream_id=secrets.randbits(16),
            port=DOT_PORT if dot else DNS_PORT,
            judged_as=None if destination is None else self._core.host_stand_in(destination, now),
        )
        event = exchange.next_event()
        while isinstance(event, SendUpstream):
            answer = await self._ask(exchange, event)
            event = answer if answer is not None else exchange.upstream_failed()
        self._settled(event, key, Transport.TCP)
        return event.response

    async def _ask(self, exchange: DnsExchange, ask: SendUpstream) -> Answer | None:
        """One attempt at one resolver: its answer, or None (timed out, failed)."""
        with trio.move_on_after(self._timeout):
            try:
                return await self._ask_tcp(exchange, ask)
            except (OSError, trio.BrokenResourceError) as exc:
                # Refused, unreachable, or reset mid-answer (trio's streams
                # report a reset as BrokenResourceError): this attempt failed.
                _log.debug("resolver %s: %s", ask.upstream, exc)
        self.counts["dns_upstream_failed"] += 1
        return None

    async def _ask_tcp(self, exchange: DnsExchange, ask: SendUpstream) -> Answer | None:
        up = ask.upstream
        stream = await trio.open_tcp_stream(str(up.address), up.port)
        async with stream:
            await stream.send_all(frame(ask.query))
            framer = TcpFramer()
            while data := await stream.receive_some(MAX_MESSAGE + 2):
                for message in framer.feed(data):
                    answer = exchange.receive_upstream(message, trio.current_time())
                    if answer is not None:
                        return answer
        return None  # closed before answering

    def _settled(self, answer: Answer, key: FlowKey, transport: Transport) -> None:
        """Count what went wrong, and put the query's decision on record."""
        if answer.problem is not None:
            self.counts[answer.problem] += 1
        outcome = answer.outcome
        if outcome is None:
            return
        record = AuditRecord.from_decision(
            outcome.decision,
            time=time.time(),
            kind="dns",
            protocol=transport.value,
            source=str(ipaddress.ip_address(key.guest_addr)),
            source_port=key.guest_port,
            destination=str(ipaddress.ip_address(key.remote_addr)),
            port=key.remote_port,
            name=outcome.name,
            reason=outcome.reason,
        )
        self._audit(record)


async def resolve_nameservers(
    entries: Sequence[Nameserver], resolv_conf: str = RESOLV_CONF
) -> list[Upstream]:
    """The upstream resolvers (§7.2): the configured ones, else the host's resolv.conf.

    A configured host name is resolved once, here, through the host's
    resolver (its first address; Trio does that in a worker thread, the one
    place DNS interception uses one) and skipped if it does not resolve.
    Without configured entries: ``resolv_conf``'s nameservers in file order,
    port 53, read once (a small local file, read directly).
    """
    if not entries:
        try:
            with open(resolv_conf, encoding="utf-8", errors="replace") as file:
                text = file.read()
        except OSError:
            _log.warning("no dns.nameservers and %s is unreadable: DNS gets SERVFAIL", resolv_conf)
            return []
        return [Upstream(a) for a in nameservers_from_resolv_conf(text)]
    upstreams: list[Upstream] = []
    for entry in entries:
        address = entry.address
        if address is None:
            try:
                infos = await trio.socket.getaddrinfo(
                    entry.host, entry.port, type=socket.SOCK_DGRAM
                )
            except OSError:
                infos = []
            if not infos:
                _log.warning("dns.nameservers: %s does not resolve; skipped", entry)
                continue
            address = ipaddress.ip_address(infos[0][4][0])
        upstreams.append(Upstream(address, entry.port))
    return upstreams
