"""Published ports: host listeners whose clients reach guest ports (reference §9).

TCP. Each accepted host connection is checked against the ingress policy
(:meth:`EngineCore.ingress_decision`, deny: reset) and the relay cap, then
becomes an *active open* from trionet's own TCP machine to the guest port:
from the gateway and an ephemeral port (49152-65535), or from the peer's own
address when the mapping asks for the real source. The host socket is not
read until the guest answered: its SYN-ACK starts a
:class:`~trionet.engine.tcp_splice.TcpSplice`, the same task-free relay
guest-initiated flows use (half-close both ways, end-to-end back-pressure);
a RST from a closed guest port, or silence until the connect timeout, resets
the host client. It never sees a connection accepted and then quietly ended.

UDP. One host socket per mapping. Each host peer gets a gateway ephemeral
port toward the guest; the guest's replies to that port go back to the
peer from the published socket. A peer mapping expires after 60 s without
traffic from the peer, on the engine's timer.

Everything runs from the readiness loop and the engine's timer: listeners
and UDP sockets are watched there, no task per connection or per peer.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace

import trio

from trionet.engine.core import EngineCore
from trionet.engine.denials import RecentDenials
from trionet.engine.readiness import IN
from trionet.engine.tcp_splice import TcpSplice, close_with_reset
from trionet.policy.groups import normalize
from trionet.ports.config import PortMapping
from trionet.stack.flows import FlowKey

__all__ = ["PortPublisher", "PublishError"]

_log = logging.getLogger("trionet.ports")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

EPHEMERAL_FIRST = 49152
EPHEMERAL_LAST = 65535
#: Inbound TCP relays at once (reference §9.1: 256).
DEFAULT_MAX_RELAYS = 256
#: How long the guest has to answer our SYN before the host client is reset.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: A UDP peer mapping lives this long after the peer's last datagram.
DEFAULT_UDP_IDLE = 60.0
#: Host connections accepted / datagrams read per readiness wake-up.
PER_WAKEUP = 64
MAX_DATAGRAM = 65535
_LISTEN_BACKLOG = 128
#: After a failed accept (out of file descriptors), the listener rests this long.
ACCEPT_PAUSE = 0.1


class PublishError(OSError):
    """A port could not be published (taken, no such address, no guest address)."""


@dataclass(slots=True, eq=False)
class _Opening:
    """A host connection waiting for the guest to answer our SYN."""

    key: FlowKey
    sock: socket.socket
    listener: _TcpListener


@dataclass(slots=True, eq=False)
class _UdpPeer:
    key: FlowKey
    peer: tuple[str, int]
    deadline: float


class _TcpListener:
    def __init__(self, mapping: PortMapping, sock: socket.socket) -> None:
        self.mapping = mapping
        self.sock = sock
        #: relays (opening or spliced) this listener made, for unpublish(reset=True)
        self.keys: set[FlowKey] = set()


class _UdpSocket:
    def __init__(self, mapping: PortMapping, sock: socket.socket) -> None:
        self.mapping = mapping
        self.sock = sock
        self.peers: dict[tuple[str, int], _UdpPeer] = {}


class PortPublisher:
    """Every published port of one engine, changeable while it runs."""

    def __init__(
        self,
        core: EngineCore,
        *,
        max_relays: int = DEFAULT_MAX_RELAYS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        udp_idle: float = DEFAULT_UDP_IDLE,
    ) -> None:
        self._core = core
        self._max_relays = max_relays
        self._connect_timeout = connect_timeout
        self._udp_idle = udp_idle
        self._listeners: dict[PortMapping, _TcpListener | _UdpSocket] = {}
        self._openings: dict[FlowKey, _Opening] = {}
        self._splices: dict[FlowKey, TcpSplice] = {}
        #: guest-visible UDP peer keys in use (each peer's gateway port)
        self._udp_keys: set[FlowKey] = set()
        #: UDP peers the ingress policy refused lately: their next datagrams
        #: are dropped on that decision (a remote flood is not an audit flood)
        self._denied_peers = RecentDenials()
        self._next_port = EPHEMERAL_FIRST

    # -- the mappings ----------------------------------------------------------------------

    def published(self) -> list[PortMapping]:
        return list(self._listeners)

    @property
    def relays(self) -> int:
        """Inbound TCP relays now: opening plus spliced."""
        return len(self._openings) + len(self._splices)

    def publish(self, mapping: PortMapping) -> PortMapping:
        """Bind and listen now; the bound mapping (``host_port`` 0 resolved).

        Raises :class:`PublishError` and leaves nothing behind if the port is
        taken, the address is not the host's, or the guest has no address.
        """
        if self._guest_target() is None:
            raise PublishError(
                errno.EADDRNOTAVAIL, f"cannot publish {mapping}: the guest has no address"
            )
        if mapping.protocol == "udp" and self._gateway(self._guest_target_version()) is None:
            raise PublishError(
                errno.EADDRNOTAVAIL, f"cannot publish {mapping}: no gateway address"
            )
        family = socket.AF_INET if mapping.host_bind.version == 4 else socket.AF_INET6
        kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(family, kind | socket.SOCK_NONBLOCK)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # [::] means IPv6 only: 0.0.0.0 is its own mapping.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((str(mapping.host_bind), mapping.host_port))
            if kind == socket.SOCK_STREAM:
                sock.listen(_LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise PublishError(
                exc.errno, f"cannot publish {mapping}: {exc.strerror or exc}"
            ) from None
        bound = replace(mapping, host_port=sock.getsockname()[1])
        if bound in self._listeners:  # cannot happen for a port the kernel just gave us
            sock.close()
            raise PublishError(errno.EADDRINUSE, f"cannot publish {bound}: already published")
        if bound.host_bind.is_unspecified or not bound.host_bind.is_loopback:
            _log.warning("published %s beyond the host's loopback", bound)
        entry: _TcpListener | _UdpSocket
        if kind == socket.SOCK_STREAM:
            listener = _TcpListener(bound, sock)
            self._core.readiness.watch(sock.fileno(), IN, lambda _e: self._accept(listener))
            entry = listener
        else:
            udp = _UdpSocket(bound, sock)
            self._core.readiness.watch(sock.fileno(), IN, lambda _e: self._udp_readable(udp))
            entry = udp
        self._listeners[bound] = entry
        _log.info("published %s", bound)
        return bound

    def unpublish(self, mapping: PortMapping, *, reset: bool = False) -> None:
        """Close the listener; established relays stay unless ``reset``."""
        entry = self._listeners.pop(mapping, None)
        if entry is None:
            raise KeyError(f"{mapping} is not published")
        self._core.readiness.forget(entry.sock.fileno())
        entry.sock.close()
        if isinstance(entry, _UdpSocket):
            for peer in entry.peers.values():
                self._udp_keys.discard(peer.key)
                self._core.udp_watchers.pop(peer.key, None)
            entry.peers.clear()
        elif reset:
            with self._core.batch():
                for key in list(entry.keys):
                    self._reset(key)
        _log.info("unpublished %s", mapping)

    def close(self) -> None:
        """Engine teardown: close listeners, reset every host client (the stack resets guests)."""
        for mapping in list(self._listeners):
            entry = self._listeners.pop(mapping)
            self._core.readiness.forget(entry.sock.fileno())
            entry.sock.close()
        for opening in list(self._openings.values()):
            close_with_reset(opening.sock)
        self._openings.clear()
        for splice in list(self._splices.values()):
            splice.abort()

    # -- addresses ---------------------------------------------------------------------------

    def _guest_target_version(self) -> int:
        return 4 if self._core.addressing.ipv4 is not None else 6

    def _guest_target(self) -> IPAddress | None:
        """The guest address published ports reach: IPv4 if it has one, else IPv6 (§9.1)."""
        a = self._core.addressing
        if a.ipv4 is not None:
            return a.ipv4.guest
        if a.ipv6 is not None:
            return a.ipv6.guest
        return None

    def _gateway(self, version: int) -> IPAddress | None:
        a = self._core.addressing
        if version == 4:
            return None if a.ipv4 is None else a.ipv4.gateway
        return None if a.ipv6 is None else a.ipv6.gateway

    def _source_for(
        self, mapping: PortMapping, peer: IPAddress, peer_port: int, guest: IPAddress
    ) -> tuple[IPAddress, int | None]:
        """The address (and port, None: pick one) the guest sees the connection come from.

        Loopback peers, and any peer unless the mapping asks for the real
        source, appear as the gateway. A real source must be of the guest's
        family and off the guest's own subnet (the guest would look for it on
        its link, where only the gateway answers).
        """
        if mapping.real_source and not peer.is_loopback and not peer.is_unspecified:
            a = self._core.addressing
            if peer.version == guest.version == 4 and a.ipv4 is not None:
                subnet = ipaddress.IPv4Network((a.ipv4.guest, a.ipv4.prefix_len), strict=False)
                if peer not in subnet:
                    return peer, peer_port
            elif peer.version == guest.version == 6 and a.ipv6 is not None:
                subnet6 = ipaddress.IPv6Network((a.ipv6.guest, a.ipv6.prefix_len), strict=False)
                if peer not in subnet6 and not peer.is_link_local:
                    return peer, peer_port
        gateway = self._gateway(guest.version)
        assert gateway is not None
        return gateway, None

    def _ephemeral(self, free: Callable[[int], bool]) -> int | None:
        """The next port from 49152 up (wrapping) that ``free`` accepts; None if none is."""
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        port = self._next_port
        for _ in range(span):
            candidate = port
            port = EPHEMERAL_FIRST if port == EPHEMERAL_LAST else port + 1
            if free(candidate):
                self._next_port = port
                return candidate
        return None

    # -- TCP -------------------------------------------------------------------------------

    def _accept(self, listener: _TcpListener) -> None:
        if self._listeners.get(listener.mapping) is not listener:
            return
        for _ in range(PER_WAKEUP):
            try:
                sock, address = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: the client waits in the backlog. The
                # loop is level-triggered and would report the listener again
                # at once, spinning until a descriptor frees up: rest it a while.
                self._core.counters.dropped["published_accept_error"] += 1
                _log.warning("accept on %s failed: %s", listener.mapping, exc)
                self._pause(listener)
                return
            sock.setblocking(False)
            self._admit(listener, sock, address)

    def _pause(self, listener: _TcpListener) -> None:
        readiness = self._core.readiness
        fd = listener.sock.fileno()
        readiness.want(fd, 0)

        def resume() -> None:
            if self._listeners.get(listener.mapping) is listener:
                readiness.want(fd, IN)

        self._core.call_at(trio.current_time() + ACCEPT_PAUSE, resume)

    def _admit(
        self, listener: _TcpListener, sock: socket.socket, address: tuple[object, ...]
    ) -> None:
        core = self._core
        counters = core.counters
        mapping = listener.mapping
        peer = normalize(ipaddress.ip_address(str(address[0])))
        peer_port = int(address[1])  # type: ignore[call-overload]
        if not core.ingress_decision(peer, mapping.guest_port, "tcp"):
            counters.dropped["published_denied"] += 1
            close_with_reset(sock)
            return
        if self.relays >= self._max_relays:
            counters.dropped["published_relay_cap"] += 1
            close_with_reset(sock)
            return
        guest = self._guest_target()
        if guest is None:
            close_with_reset(sock)
            return
        source, source_port = self._source_for(mapping, peer, peer_port, guest)
        stack = core.stack

        def key_for(port: int) -> FlowKey:
            return FlowKey(guest.version, guest.packed, mapping.guest_port, source.packed, port)

        if source_port is None or stack.tcp_in_use(key_for(source_port)):
            source_port = self._ephemeral(lambda p: not stack.tcp_in_use(key_for(p)))
        if source_port is None:
            counters.dropped["published_no_port"] += 1
            close_with_reset(sock)
            return
        key = key_for(source_port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not stack.tcp_connect(key, trio.current_time()):
            counters.dropped["published_table_full"] += 1
            close_with_reset(sock)
            return
        opening = _Opening(key, sock, listener)
        self._openings[key] = opening
        listener.keys.add(key)
        core.tcp_watchers[key] = lambda: self._opening_activity(opening)
        core.call_at(trio.current_time() + self._connect_timeout, lambda: self._timed_out(opening))
        core.flush()  # the SYN leaves in this wake-up (deferred inside a batch)

    def _opening_activity(self, opening: _Opening) -> None:
        key = opening.key
        if self._openings.get(key) is not opening:
            return
        core = self._core
        if core.stack.tcp_established(key):
            del self._openings[key]
            core.counters.connections_opened += 1
            splice = TcpSplice(core, key, opening.sock, self._splice_done)
            self._splices[key] = splice
            core.tcp_watchers[key] = splice.guest_activity
            splice.start()
            return
        if core.stack.tcp_status(key).error is not None:
            # The guest port is closed (RST) or the open broke: the host
            # client is reset, never accepted-then-EOF.
            self._end_opening(opening)
            core.counters.connections_refused += 1
            close_with_reset(opening.sock)

    def _timed_out(self, opening: _Opening) -> None:
        if self._openings.get(opening.key) is not opening:
            return
        self._end_opening(opening)
        self._core.counters.dropped["published_guest_timeout"] += 1
        close_with_reset(opening.sock)
        self._core.tcp_abort(opening.key)

    def _end_opening(self, opening: _Opening) -> None:
        del self._openings[opening.key]
        opening.listener.keys.discard(opening.key)
        self._core.tcp_watchers.pop(opening.key, None)

    def _splice_done(self, key: FlowKey) -> None:
        del self._splices[key]
        self._core.tcp_watchers.pop(key, None)
        for entry in self._listeners.values():
            if isinstance(entry, _TcpListener):
                entry.keys.discard(key)

    def _reset(self, key: FlowKey) -> None:
        opening = self._openings.get(key)
        if opening is not None:
            self._end_opening(opening)
            close_with_reset(opening.sock)
            self._core.tcp_abort(key)
            return
        splice = self._splices.get(key)
        if splice is not None:
            splice.abort()
            self._core.tcp_abort(key)

    # -- UDP -------------------------------------------------------------------------------

    def _udp_readable(self, udp: _UdpSocket) -> None:
        if self._listeners.get(udp.mapping) is not udp:
            return
        core = self._core
        stack = core.stack
        now = trio.current_time()
        for _ in range(PER_WAKEUP):
            try:
                data, address = udp.sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                core.counters.dropped["published_udp_error"] += 1
                continue
            peer_addr = (str(address[0]), int(address[1]))
            peer = udp.peers.get(peer_addr)
            if peer is None:
                peer = self._udp_peer(udp, peer_addr)
                if peer is None:
                    continue
            peer.deadline = now + self._udp_idle
            stack.udp_send(peer.key, data, now)

    def _udp_peer(self, udp: _UdpSocket, address: tuple[str, int]) -> _UdpPeer | None:
        core = self._core
        mapping = udp.mapping
        now = trio.current_time()
        if self._denied_peers.denied((mapping, address), now):
            core.counters.dropped["published_denied"] += 1
            return None
        if not core.ingress_decision(
            normalize(ipaddress.ip_address(address[0])), mapping.guest_port, "udp"
        ):
            self._denied_peers.add((mapping, address), now)
            core.counters.dropped["published_denied"] += 1
            return None
        guest = self._guest_target()
        gateway = None if guest is None else self._gateway(guest.version)
        if guest is None or gateway is None:
            return None

        def key_for(port: int) -> FlowKey:
            return FlowKey(guest.version, guest.packed, mapping.guest_port, gateway.packed, port)

        # Every peer toward this guest port takes a gateway port of its own:
        # when all are taken, say so at once. Scanning all 16384 for each new
        # peer would let a remote sender cycling source ports stall the engine.
        taken = sum(
            len(entry.peers)
            for entry in self._listeners.values()
            if isinstance(entry, _UdpSocket) and entry.mapping.guest_port == mapping.guest_port
        )
        port = (
            None
            if taken >= EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
            else self._ephemeral(lambda p: key_for(p) not in self._udp_keys)
        )
        if port is None:
            core.counters.dropped["published_no_port"] += 1
            return None
        peer = _UdpPeer(key_for(port), address, trio.current_time() + self._udp_idle)
        udp.peers[address] = peer
        self._udp_keys.add(peer.key)
        core.udp_watchers[peer.key] = lambda payload: self._udp_reply(udp, peer, payload)
        core.call_at(peer.deadline, lambda: self._udp_expire(udp, peer))
        return peer

    def _udp_reply(self, udp: _UdpSocket, peer: _UdpPeer, payload: bytes) -> None:
        """The guest answered a mapped peer: send it from the published socket."""
        if peer.key not in self._udp_keys:
            return
        try:
            udp.sock.sendto(payload, peer.peer)
        except OSError:
            self._core.counters.dropped["published_udp_reply_error"] += 1

    def _udp_expire(self, udp: _UdpSocket, peer: _UdpPeer) -> None:
        if udp.peers.get(peer.peer) is not peer:
            return
        if trio.current_time() < peer.deadline:
            self._core.call_at(peer.deadline, lambda: self._udp_expire(udp, peer))
            return
        del udp.peers[peer.peer]
        self._udp_keys.discard(peer.key)
        self._core.udp_watchers.pop(peer.key, None)
