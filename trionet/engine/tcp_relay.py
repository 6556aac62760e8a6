"""Guest TCP flows: decide, dial the host first, then relay.

The guest gets its SYN-ACK only after the host-side connect succeeded. A
refused connect becomes a RST and an unreachable or timed-out one an ICMP
unreachable, so the guest's client fails at once and a dual-stack client
falls back to the other family instead of hanging on a connection that was
"established" to nowhere.

Everything up to the SYN-ACK happens without a task: the decision runs
inside the engine's flush, the dial is a non-blocking connect watched by the
engine's :class:`~trionet.engine.readiness.ReadinessLoop`. Then a plain
relay splices the two sides in place (:mod:`trionet.engine.tcp_splice`),
while a flow handler (services: TLS interception, tests) gets the guest
connection as a Trio stream and the host socket as a ``trio.SocketStream``
in a task of its own.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable

import trio

from trionet.engine.core import EngineCore, IPAddress
from trionet.engine.guest_stream import GuestTcpStream
from trionet.engine.policy import NewFlow
from trionet.engine.readiness import OUT
from trionet.engine.tcp_splice import CHUNK, TcpSplice, close_with_reset
from trionet.stack.flows import FlowKey
from trionet.stack.interface import RefuseReason

__all__ = ["SPLICE", "FlowHandler", "HandlerChooser", "TcpRelay", "relay_streams"]

DEFAULT_CONNECT_TIMEOUT = 10.0


class _SpliceRest:
    """The type of :data:`SPLICE`."""

    def __repr__(self) -> str:
        return "SPLICE"


#: What a flow handler returns to have the rest of its flow relayed by the
#: plain splice: it looked at the first bytes (and passed them on), found
#: nothing to do, and gives the connection back to the fast path.
SPLICE = _SpliceRest()

#: What runs once a guest connection and its host connection both exist.
FlowHandler = Callable[[GuestTcpStream, trio.SocketStream], Awaitable[object]]
#: Picks the handler for a new flow (a service claims its ports); None: splice it.
HandlerChooser = Callable[[NewFlow], FlowHandler | None]

_log = logging.getLogger("trionet.engine")
_UNREACHABLE_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL}


#: A dial to the host's loopback that fails with one of these tries the other
#: family's loopback (§4.3): a guest that reached the host alias over IPv6
#: still gets a server bound only to 127.0.0.1, and the other way round.
_FALLBACK_ERRNOS = {errno.ECONNREFUSED, errno.EADDRNOTAVAIL, errno.ENETUNREACH}


class _Dial:
    """A host connect in progress for a parked guest SYN."""

    __slots__ = ("fallback", "handler", "key", "port", "sock")

    def __init__(
        self,
        key: FlowKey,
        sock: socket.socket,
        handler: FlowHandler | None,
        port: int,
        fallback: IPAddress | None,
    ) -> None:
        self.key = key
        self.sock = sock
        self.handler = handler
        self.port = port
        #: the address to dial instead if this dial is refused (the host's other loopback)
        self.fallback = fallback


class TcpRelay:
    """Handles TcpConnectRequested events for one engine: the TCP decision point."""

    def __init__(
        self,
        core: EngineCore,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        handler: FlowHandler | None = None,
        choose_handler: HandlerChooser | None = None,
    ) -> None:
        self._core = core
        self._choose_handler = choose_handler
        self._loop = core.readiness
        self._connect_timeout = connect_timeout
        self._handler = handler
        self._dials: dict[FlowKey, _Dial] = {}
        self._splices: dict[FlowKey, TcpSplice] = {}
        self._handled = 0  # flows whose host socket a handler task holds
        core.on_tcp_connect = self.open_flow
        core.on_tcp_activity = self.on_activity

    @property
    def held(self) -> int:
        """Host TCP sockets held now: dials, spliced flows, flows a handler holds."""
        return len(self._dials) + len(self._splices) + self._handled

    # -- new flows -----------------------------------------------------------------------

    def open_flow(self, key: FlowKey) -> None:
        core = self._core
        flow = core.describe(key, "tcp")
        if not core.allows(flow):
            # A reset, as the reference does: the client fails at once with
            # "connection refused" instead of waiting out a timeout.
            core.tcp_refuse(key, RefuseReason.REFUSED)
            return
        stale = self._splices.get(key)
        if stale is not None:
            stale.abort()  # the guest reused the 4-tuple of a flow we still held
        handler = self._handler
        if self._choose_handler is not None:
            handler = self._choose_handler(flow) or handler
        target = core.host_target(flow)
        fallback = core.other_loopback(target) if flow.to_host else None
        self._dial(key, handler, target, flow.destination_port, fallback)

    def _dial(
        self,
        key: FlowKey,
        handler: FlowHandler | None,
        target: IPAddress,
        port: int,
        fallback: IPAddress | None,
    ) -> None:
        core = self._core
        sock = core.open_host_socket(target, socket.SOCK_STREAM)
        if sock is None:
            core.tcp_refuse(key, RefuseReason.REFUSED)
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err: int | None = sock.connect_ex((str(target), port))
        if err == errno.EINPROGRESS:
            # On loopback the handshake has usually finished inside
            # connect(): answer the guest in this same wake-up.
            err = _dial_outcome(sock)
        dial = _Dial(key, sock, handler, port, fallback)
        if err is None:
            self._dials[key] = dial
            self._loop.watch(sock.fileno(), OUT, lambda _events: self._dialled(dial))
            deadline = trio.current_time() + self._connect_timeout
            core.call_at(deadline, lambda: self._dial_timed_out(dial))
        else:
            self._dial_ended(dial, err)

    def _dialled(self, dial: _Dial) -> None:
        err = _dial_outcome(dial.sock)
        if err is None:
            return  # not connected yet: a stale readiness report
        self._end_dial(dial)
        self._dial_ended(dial, err)

    def _dial_ended(self, dial: _Dial, err: int) -> None:
        if err in _FALLBACK_ERRNOS and dial.fallback is not None:
            dial.sock.close()
            self._dial(dial.key, dial.handler, dial.fallback, dial.port, None)
            return
        self._connected(dial.key, dial.sock, err, dial.handler)

    def _connected(
        self, key: FlowKey, sock: socket.socket, err: int, handler: FlowHandler | None
    ) -> None:
        """The dial ended (``err`` 0: connected): answer the guest's SYN."""
        if err:
            sock.close()
            self._core.tcp_refuse(key, _refusal(err))
            return
        core = self._core
        if not core.tcp_accept(key):
            sock.close()  # the guest gave up while we dialled
            return
        if handler is None:
            splice = TcpSplice(core, key, sock, self._splice_done)
            self._splices[key] = splice
            splice.start()
        else:
            self._handled += 1
            core.start_flow_task(self._run_handler, handler, key, sock)

    def _dial_timed_out(self, dial: _Dial) -> None:
        if self._dials.get(dial.key) is dial:
            self._end_dial(dial)
            dial.sock.close()
            self._core.tcp_refuse(dial.key, RefuseReason.UNREACHABLE)

    def _end_dial(self, dial: _Dial) -> None:
        del self._dials[dial.key]
        self._loop.forget(dial.sock.fileno())

    # -- established flows --------------------------------------------------------------

    def _splice_done(self, key: FlowKey) -> None:
        del self._splices[key]

    def on_activity(self, key: FlowKey) -> None:
        splice = self._splices.get(key)
        if splice is not None:
            splice.guest_activity()

    async def _run_handler(self, handler: FlowHandler, key: FlowKey, sock: socket.socket) -> None:
        guest = GuestTcpStream(self._core, key)
        host = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        splice_rest = False
        try:
            splice_rest = await handler(guest, host) is SPLICE
        except Exception:
            # A bug in one service must cost its flow (reset below), not
            # every flow of the sandbox: the policy gets the same treatment.
            _log.exception("the flow handler raised; resetting %s", key)
            self._core.counters.dropped["flow_handler_error"] += 1
        finally:
            self._handled -= 1
            if splice_rest:
                # The same socket object, which trio no longer waits on.
                splice = TcpSplice(self._core, key, sock, self._splice_done)
                self._splices[key] = splice
                splice.start()
            else:
                # Whatever the handler left open is torn down hard: on
                # cancellation (engine exit) the guest must see a reset.
                guest.abort()
                close_with_reset(host.socket)  # type: ignore[arg-type]

    def close(self) -> None:
        """Engine teardown: reset every host connection (the stack resets the guests')."""
        for dial in list(self._dials.values()):
            self._end_dial(dial)
            dial.sock.close()
        for splice in list(self._splices.values()):
            splice.abort()


def _dial_outcome(sock: socket.socket) -> int | None:
    """0 once a non-blocking connect succeeded, its errno if it failed, None while pending."""
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        return err
    try:
        sock.getpeername()
    except OSError:
        return None
    return 0


def _refusal(err: int) -> RefuseReason:
    if err in _UNREACHABLE_ERRNOS or err == errno.ETIMEDOUT:
        return RefuseReason.UNREACHABLE
    return RefuseReason.REFUSED


async def relay_streams(guest: GuestTcpStream, host: trio.SocketStream) -> None:
    """Copy both ways with half-close; a reset on either side resets the other.

    The stream form of the splice, for handlers that relay after doing
    something else first. Back-pressure is end to end: a pump reads only
    after its previous chunk was accepted by the other side, so a slow
    reader stops the TCP window of the fast writer instead of growing a
    buffer.
    """
    broken = False

    async def pump(source: trio.abc.ReceiveStream, sink: trio.abc.HalfCloseableStream) -> None:
        nonlocal broken
        try:
            while data := await source.receive_some(CHUNK):
                await sink.send_all(data)
            await sink.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            broken = True
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, guest, host)
        nursery.start_soon(pump, host, guest)
    if broken:
        guest.abort()
        close_with_reset(host.socket)  # type: ignore[arg-type]
    else:
        await guest.aclose()
        await host.aclose()
