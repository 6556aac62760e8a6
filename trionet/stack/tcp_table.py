"""The table of guest TCP connections, and the SYNs waiting for a decision.

A guest SYN for a new flow is parked in ``pending`` while the engine asks the
policy and dials the host; only then does :meth:`TcpTable.accept` create the
connection (answering SYN-ACK) or :meth:`TcpTable.refuse` answer RST or ICMP
unreachable. Retransmitted SYNs for a parked flow are absorbed.

TIME-WAIT: when the host closes first, our side lingers in TIME-WAIT for
2*MSL. Once the stream has released such a connection, it neither counts
against ``max_connections`` (the oldest is evicted when the table is full)
nor blocks the guest from reusing its port: a SYN beyond the old
connection's sequence space reopens it (RFC 6191, as Linux does).

Half-open connections: trionet dials the host before its SYN-ACK, so a guest
that never completes the handshake (a SYN flood, a scanner, a guest that died)
holds a slot *and* a host connection. They give up after 5 SYN-ACK
retransmissions (63 s, Linux's tcp_synack_retries), and when the table is
full a new SYN evicts the oldest half-open connection instead of being
refused, so real connections keep getting through a flood. Parked SYNs are
not evicted: each has a host dial in flight, and evicting them would let a
flood start dials without bound (they end within the connect timeout and
then become evictable or refused). An evicted entry goes silently, as
Linux drops a request socket: a real guest's late ACK draws the RST of a
segment without a connection.

Timers: each connection has at most one deadline; a heap of (deadline, key)
with lazy deletion finds the earliest without scanning every connection, so
10,000 idle connections cost nothing per frame. A stale entry lingers until
its time passes, and a deadline can move once per segment (a FIN repeated
into TIME-WAIT restarts a 60 s timer each time), so the heap is rebuilt from
the live deadlines whenever stale entries outnumber them: amortised O(1),
and the heap stays proportional to the table instead of to the frame rate.
"""

from __future__ import annotations

import enum
import heapq
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from trionet.stack.flows import (
    FlowKey,
    OffloadFrame,
    OutFrame,
    StackEvent,
    TcpActivity,
    TcpConnectionGone,
    TcpConnectRequested,
)
from trionet.stack.output import GuestOutput
from trionet.tcp.config import TcpConfig
from trionet.tcp.connection import TcpConnection, TcpState, TcpStateError, reset_for
from trionet.tcp.events import Closed, ConnectionReset
from trionet.tcp.isn import IsnGenerator
from trionet.tcp.seq import seq_diff
from trionet.wire.frames import build_ipv6_frame, build_tcp_ipv4_frame
from trionet.wire.icmpv4 import (
    CODE_ADMIN_PROHIBITED,
    CODE_HOST_UNREACHABLE,
    Icmpv4DestUnreachable,
)
from trionet.wire.icmpv6 import Icmpv6DestUnreachable
from trionet.wire.ipv4 import PROTO_TCP
from trionet.wire.tcp import TcpFlags, TcpHeader
from trionet.wire.virtio_net import VirtioNetHeader

if TYPE_CHECKING:
    from trionet.stack.interface import StackParams

__all__ = ["RefuseReason", "TcpStatus", "TcpTable"]

#: Payload of one TCP super-segment: IP lengths are 16-bit, and headers
#: (IPv4 20, TCP up to 60) must fit beside it.
TSO_MAX_PAYLOAD = 65535 - 20 - 60
_L4_OFFSET = {4: 14 + 20, 6: 14 + 40}
#: Send and receive buffers of a connection opened while the table holds
#: fewer than LARGE_BUFFER_CONNECTIONS (TcpConfig's default, 256 KiB, for the
#: rest). A bulk transfer crosses the engine in cycles of one buffer's worth
#: (read the host, send, take the guest's ACKs), each with a fixed cost in
#: Python; 1 MiB cycles moved host->guest 14 % and guest->host 12 % faster
#: than 256 KiB ones in the published-port benchmark. Linux and gVisor size
#: per-socket buffers at a few MiB; the count bounds what a guest that stops
#: reading can make the engine hold: 16 x 3 MiB (send, receive and
#: out-of-order data) at most, beyond the default-sized connections.
LARGE_BUFFER = 1024 * 1024
LARGE_BUFFER_CONNECTIONS = 16
_ICMPV6_ADMIN_PROHIBITED = 1
_ICMPV6_ADDRESS_UNREACHABLE = 3
#: Stale heap entries tolerated before a rebuild, beyond two per connection.
_TIMER_SLACK = 64
#: Finished connections remembered for their streams, per allowed connection.
_GONE_PER_CONNECTION = 4
#: FIN-WAIT-2 limit for a released connection (Linux's tcp_fin_timeout).
_ORPHAN_FIN_WAIT_2 = 60.0
# Plain ints: TcpFlags' own & and | run in Python (enum.Flag), several calls each.
_SYN = int(TcpFlags.SYN)
_ACK = int(TcpFlags.ACK)
_RST = int(TcpFlags.RST)
_FIN = int(TcpFlags.FIN)
_CLOSED = TcpState.CLOSED
_TIME_WAIT = TcpState.TIME_WAIT
_SYN_RECEIVED = TcpState.SYN_RECEIVED
_OPENING = frozenset({TcpState.SYN_SENT, TcpState.SYN_RECEIVED})


class RefuseReason(enum.Enum):
    """How the engine turns down a parked SYN."""

    #: The host refused the connect: RST, so the guest fails at once.
    REFUSED = "refused"
    #: Unreachable or timed out: ICMP unreachable, so the guest can fall back.
    UNREACHABLE = "unreachable"
    #: Policy said no: ICMP administratively prohibited.
    PROHIBITED = "prohibited"


class TcpStatus:
    """A connection's state as a stream sees it: a snapshot, not to be modified.

    A plain ``__slots__`` class rather than a frozen dataclass: a stream asks
    for one or two per exchange, and a frozen dataclass costs about four
    times as much to build.
    """

    __slots__ = ("at_eof", "error", "readable", "send_space")

    def __init__(self, readable: int, at_eof: bool, send_space: int, error: str | None) -> None:
        self.readable = readable
        #: the peer finished (FIN) and everything before it has been read
        self.at_eof = at_eof
        self.send_space = send_space
        #: why the connection can no longer carry data, or None while it can
        self.error = error

    def __repr__(self) -> str:
        return (
            f"TcpStatus(readable={self.readable}, at_eof={self.at_eof},"
            f" send_space={self.send_space}, error={self.error!r})"
        )


class _Entry:
    __slots__ = ("activity", "conn", "deadline", "error", "half_open", "orphan", "peer_end")

    def __init__(self, key: FlowKey, conn: TcpConnection) -> None:
        self.conn = conn
        #: the connection's TcpActivity event, built once (events are immutable values)
        self.activity = TcpActivity(key)
        self.deadline: float | None = None
        #: why the connection was reset, once it was
        self.error: str | None = None
        #: the application closed its side; data still arriving resets it
        self.orphan = False
        #: in TIME-WAIT, the end of the guest's sequence space (past its FIN)
        self.peer_end: int | None = None
        #: still in SYN-RECEIVED: listed in TcpTable._half_open
        self.half_open = False


class TcpTable:
    def __init__(
        self,
        params: StackParams,
        frames: list[OutFrame],
        events: list[StackEvent],
        drops: Counter[str],
    ) -> None:
        self._params = params
        self._frames = frames
        self._out = GuestOutput(params, frames)
        self._events = events
        self._drops = drops
        self._connections: dict[FlowKey, _Entry] = {}
        self._pending: dict[FlowKey, TcpHeader] = {}
        #: connections that ended while a stream still refers to them: key -> (graceful, reason)
        self._gone: dict[FlowKey, tuple[bool, str]] = {}
        self._timers: list[tuple[float, FlowKey]] = []
        self._dirty: dict[FlowKey, _Entry] = {}
        #: released connections in TIME-WAIT, oldest first: they yield their slot
        self._time_wait: dict[FlowKey, None] = {}
        #: accepted connections still in SYN-RECEIVED, oldest first: evicted
        #: before a new SYN is refused
        self._half_open: dict[FlowKey, None] = {}
        self._isn = IsnGenerator(params.isn_secret)
        # The guest link is a local virtual wire: Linux's 200 ms RTO floor
        # suits it better than RFC 6298's conservative 1 s (a SHOULD). A guest
        # that never finishes a half-closed connection is given up on once
        # the relay let go of it (release), not before.
        # Segments may be views of the send buffers: the stack's frames are
        # taken (and the engine writes them) before any ACK-then-send can
        # reuse the space; see TcpConfig.segment_views and EngineCore.flush.
        self._config_v4 = TcpConfig(
            mss=params.mtu - 40, default_peer_mss=536, rto_min=0.2, segment_views=True
        )
        self._config_v6 = TcpConfig(
            mss=params.mtu - 60, default_peer_mss=1220, rto_min=0.2, segment_views=True
        )
        self._large_v4 = _with_large_buffers(self._config_v4)
        self._large_v6 = _with_large_buffers(self._config_v6)
        self._tso = {4: False, 6: False}

    def enable_tso(self, *, ipv4: bool, ipv6: bool) -> None:
        """The link segments TCP for us: send super-segments with partial checksums.

        Affects connections accepted from now on (links attach before the
        guest's first frame, so in practice all of them).
        """
        self._tso = {4: ipv4, 6: ipv6}
        # With a jumbo MTU one segment is already as large as a super-segment
        # may be; the partial checksum alone is then what offload buys.
        if ipv4 and self._config_v4.mss < TSO_MAX_PAYLOAD:
            self._config_v4 = replace(self._config_v4, max_segment_payload=TSO_MAX_PAYLOAD)
        if ipv6 and self._config_v6.mss < TSO_MAX_PAYLOAD:
            self._config_v6 = replace(self._config_v6, max_segment_payload=TSO_MAX_PAYLOAD)
        self._large_v4 = _with_large_buffers(self._config_v4)
        self._large_v6 = _with_large_buffers(self._config_v6)

    def _config_for(self, version: int) -> TcpConfig:
        """The configuration of a connection opened now (see LARGE_BUFFER)."""
        if len(self._connections) < LARGE_BUFFER_CONNECTIONS:
            return self._large_v4 if version == 4 else self._large_v6
        return self._config_v4 if version == 4 else self._config_v6

    def __len__(self) -> int:
        return len(self._connections)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def finished_count(self) -> int:
        """Ended connections whose outcome is kept for a stream not yet closed."""
        return len(self._gone)

    # -- segments from the guest -------------------------------------------------------

    def segment_in(self, key: FlowKey, header: TcpHeader, payload: memoryview, now: float) -> None:
        entry = self._connections.get(key)
        flags = int(header.flags)
        if entry is not None:
            if not (key in self._time_wait and self._reopens(entry, header)):
                entry.conn.receive_segment(header, payload, now)
                # Serviced once per batch (see flush_batch): a burst of
                # segments then costs one pass and, typically, one ACK.
                self._dirty[key] = entry
                if entry.peer_end is None and entry.conn.state is _TIME_WAIT:
                    # What took us into TIME-WAIT was the guest's last segment.
                    fin = 1 if flags & _FIN else 0
                    entry.peer_end = header.seq + len(payload) + fin
                return
            self._retire(key)
        if flags & _RST:
            return  # never answer a RST (RFC 9293 3.10.7.1)
        if flags & _SYN and not flags & _ACK:
            if key in self._pending:
                return  # a retransmitted SYN while we dial
            if not self._make_room():
                self._reset_for(key, header, len(payload))
                return
            self._gone.pop(key, None)
            self._pending[key] = header
            self._events.append(TcpConnectRequested(key))
            return
        self._drops["tcp_no_connection"] += 1
        self._reset_for(key, header, len(payload))

    def flush_batch(self, now: float) -> None:
        """Service every connection that received segments since the last call."""
        dirty = self._dirty
        while dirty:
            key, entry = dirty.popitem()
            if self._connections.get(key) is entry:
                self._service(key, entry, now)

    @staticmethod
    def _reopens(entry: _Entry, header: TcpHeader) -> bool:
        """A new SYN beyond the TIME-WAIT connection's sequence space (RFC 6191)."""
        flags = int(header.flags)
        if not flags & _SYN or flags & (_ACK | _RST) or entry.peer_end is None:
            return False
        return seq_diff(header.seq, entry.peer_end) > 0

    def _make_room(self) -> bool:
        """Room in the table for one more connection; False (counted) if there is none.

        Live connections and parked SYNs count against ``max_connections``;
        when they fill it the oldest half-open connection goes (so a guest
        SYN flood blocks neither real guest connections nor published
        ports). Released TIME-WAIT connections only hold a slot until it
        is wanted.
        """
        limit = self._params.max_connections
        if (
            len(self._connections) - len(self._time_wait) + len(self._pending) >= limit
            and not self._evict_half_open()
        ):
            self._drops["limit"] += 1
            return False
        if len(self._connections) + len(self._pending) >= limit:
            self._retire(next(iter(self._time_wait)))
        return True

    def _evict_half_open(self) -> bool:
        """Make room for a new SYN at the expense of the oldest SYN-RECEIVED connection.

        Its host connection goes too: the stream resets it on the
        TcpConnectionGone. False if there is none to evict.
        """
        half_open = self._half_open
        while half_open:
            key = next(iter(half_open))
            entry = self._connections[key]
            if entry.conn.state is not _SYN_RECEIVED:
                # Established in this batch, not yet serviced: not half-open.
                entry.half_open = False
                del half_open[key]
                continue
            reason = "half-open connection evicted"
            self._drops["half_open_evicted"] += 1
            self._remember_gone(key, (False, reason))
            self._forget(key)
            self._events.append(TcpConnectionGone(key, reason))
            return True
        return False

    def _retire(self, key: FlowKey) -> None:
        """Drop a released TIME-WAIT connection early, to make room or reuse its key."""
        self._forget(key)
        self._events.append(TcpConnectionGone(key, "connection closed"))

    # -- the engine's decisions -------------------------------------------------------

    def accept(self, key: FlowKey, now: float) -> bool:
        """Create the connection for a parked SYN; False if the guest gave up."""
        syn = self._pending.pop(key, None)
        if syn is None:
            return False
        iss = self._isn.isn(key.remote_addr, key.remote_port, key.guest_addr, key.guest_port, now)
        config = self._config_for(key.version)
        entry = _Entry(key, TcpConnection.accept(syn, iss=iss, config=config, now=now))
        self._connections[key] = entry
        entry.half_open = True
        self._half_open[key] = None
        self._service(key, entry, now)
        return True

    def connect(self, key: FlowKey, now: float) -> bool:
        """Active open toward the guest: a SYN from ``key``'s remote end to its guest end.

        For published ports: the host side accepted a connection, and the
        guest is asked for one from the gateway (or the host peer's own
        address) and a port the engine picked. The guest's SYN-ACK, RST or
        silence then shows in :meth:`status` and :meth:`established`; a RST
        ends the connection with the error ``"connection refused"``. False
        if ``key`` is already in use (the engine picks another port).
        Counted against ``max_connections`` like any connection, so a
        flood of host clients cannot grow the table past its bound.
        """
        if key in self._connections or key in self._pending:
            return False
        if not self._make_room():
            return False
        self._gone.pop(key, None)
        iss = self._isn.isn(key.remote_addr, key.remote_port, key.guest_addr, key.guest_port, now)
        config = self._config_for(key.version)
        conn = TcpConnection.connect(
            key.remote_port, key.guest_port, iss=iss, config=config, now=now
        )
        entry = _Entry(key, conn)
        self._connections[key] = entry
        self._service(key, entry, now)
        return True

    def in_use(self, key: FlowKey) -> bool:
        """A connection (in any state, TIME-WAIT included) or a parked SYN holds ``key``."""
        return key in self._connections or key in self._pending

    def established(self, key: FlowKey) -> bool:
        """The handshake of ``key``'s connection has completed (False while opening or gone)."""
        entry = self._connections.get(key)
        return entry is not None and entry.conn.state not in _OPENING

    def refuse(self, key: FlowKey, now: float, reason: RefuseReason) -> None:
        syn = self._pending.pop(key, None)
        if syn is None:
            return
        if reason is RefuseReason.REFUSED:
            self._reset_for(key, syn, 0)
        else:
            self._unreachable(key, syn, reason)

    # -- the stream's calls ------------------------------------------------------------

    def status(self, key: FlowKey) -> TcpStatus:
        entry = self._connections.get(key)
        if entry is None:
            graceful, reason = self._gone.get(key, (False, "connection closed"))
            return TcpStatus(0, graceful, 0, reason)
        readable, at_eof, send_space = entry.conn.stream_status()
        return TcpStatus(readable, at_eof, send_space, entry.error)

    def read(self, key: FlowKey, max_bytes: int, now: float) -> bytes:
        entry = self._connections.get(key)
        if entry is None:
            return b""
        conn = entry.conn
        data = conn.read(max_bytes)
        # A read only ever owes a window update; everything else it could
        # emit was already emitted when it was queued, or waits in the batch.
        if conn.ack_pending or key in self._dirty:
            self._service(key, entry, now)
        return data

    def peek(self, key: FlowKey, max_bytes: int) -> memoryview:
        """A view of received bytes to offer a socket (TcpConnection.peek_view); then consume."""
        entry = self._connections.get(key)
        return memoryview(b"") if entry is None else entry.conn.peek_view(max_bytes)

    def consume(self, key: FlowKey, n: int, now: float) -> None:
        entry = self._connections.get(key)
        if entry is None:
            return
        conn = entry.conn
        conn.consume(n)
        # As read(): only a window update may be owed.
        if conn.ack_pending or key in self._dirty:
            self._service(key, entry, now)

    def send(self, key: FlowKey, data: memoryview, now: float) -> int:
        entry = self._connections.get(key)
        if entry is None:
            return 0
        try:
            taken = entry.conn.send(data)
        except TcpStateError:
            return 0  # shut down or reset: the stream sees it in status()
        self._service(key, entry, now)
        return taken

    def send_room(self, key: FlowKey, max_bytes: int) -> memoryview | None:
        """Space to fill in place (see TcpConnection.send_room); None if it cannot send."""
        entry = self._connections.get(key)
        if entry is None:
            return None
        try:
            return entry.conn.send_room(max_bytes)
        except TcpStateError:
            return None

    def send_commit(self, key: FlowKey, n: int, now: float) -> None:
        entry = self._connections.get(key)
        if entry is not None:
            entry.conn.send_commit(n)
            self._service(key, entry, now)

    def shutdown(self, key: FlowKey, now: float) -> None:
        entry = self._connections.get(key)
        if entry is not None:
            entry.conn.close()
            self._service(key, entry, now)

    def abort(self, key: FlowKey, now: float) -> bool:
        """Reset the connection; True if there was one to reset."""
        self._gone.pop(key, None)
        entry = self._connections.get(key)
        if entry is None:
            return False
        entry.conn.abort()
        entry.orphan = True
        self._service(key, entry, now)
        self._forget(key)
        return True

    def release(self, key: FlowKey, now: float) -> None:
        """The stream is closed: keep the connection only to finish its shutdown."""
        self._gone.pop(key, None)
        entry = self._connections.get(key)
        if entry is not None:
            entry.orphan = True
            # Only now may a silent half-closed guest be given up on, as
            # Linux does for orphans: while the relay holds the connection
            # the guest may still mean to send.
            entry.conn.time_out_fin_wait_2(_ORPHAN_FIN_WAIT_2, now)
            self._service(key, entry, now)

    def abort_all(self, now: float) -> None:
        for key in list(self._connections):
            self.abort(key, now)
        for key, syn in list(self._pending.items()):
            del self._pending[key]
            self._reset_for(key, syn, 0)
        self._gone.clear()

    # -- timers -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, key = timers[0]
            entry = self._connections.get(key)
            if entry is not None and entry.deadline == deadline:
                return deadline
            heapq.heappop(timers)  # stale: rescheduled or gone
        return None

    def poll(self, now: float) -> None:
        # self._timers is re-read each time: _service may rebuild the heap.
        while self._timers and self._timers[0][0] <= now:
            deadline, key = heapq.heappop(self._timers)
            entry = self._connections.get(key)
            if entry is None or entry.deadline != deadline:
                continue
            entry.deadline = None
            entry.conn.handle_timers(now)
            self._service(key, entry, now)

    # -- internals ----------------------------------------------------------------------

    def _service(self, key: FlowKey, entry: _Entry, now: float) -> None:
        """Emit what the connection wants to send, surface its events, re-arm its timer."""
        conn = entry.conn
        orphan_data = entry.orphan and conn.readable_bytes and conn.state is not _CLOSED
        if orphan_data:
            # Data for a socket its owner closed: reset, as a kernel does
            # (RFC 9293 3.10.7.4 leaves it to the implementation; RFC 1122
            # 4.2.2.13 recommends it), so the sender learns it went nowhere.
            # Before any output: the RST answers the data, no ACK first.
            conn.abort()
        segments = conn.segments_to_send(now)
        if segments:
            mss = conn.send_mss
            for header, payload in segments:
                self._emit(key, header, payload, mss)
        activity = conn.has_events
        closed_reason: tuple[bool, str] | None = None
        if activity:
            while (event := conn.next_event()) is not None:
                if isinstance(event, ConnectionReset):
                    entry.error = event.reason.value
                    closed_reason = (False, event.reason.value)
                elif isinstance(event, Closed) and closed_reason is None:
                    closed_reason = (True, "connection closed")
        if orphan_data:
            closed_reason = (False, "reset: data after close")
        state = conn.state
        if entry.half_open and state is not _SYN_RECEIVED:
            entry.half_open = False
            del self._half_open[key]
        if closed_reason is not None or state is _CLOSED:
            if not entry.orphan:
                self._remember_gone(key, closed_reason or (True, "connection closed"))
            self._forget(key)
            self._events.append(TcpConnectionGone(key, (closed_reason or (True, ""))[1]))
            return
        if activity and not entry.orphan:
            self._events.append(entry.activity)
        if entry.orphan and state is _TIME_WAIT:
            self._time_wait.setdefault(key)
        deadline = conn.next_deadline()
        if deadline != entry.deadline:
            entry.deadline = deadline
            if deadline is not None:
                timers = self._timers
                heapq.heappush(timers, (deadline, key))
                if len(timers) > 2 * len(self._connections) + _TIMER_SLACK:
                    self._compact_timers()

    def _compact_timers(self) -> None:
        """Rebuild the heap from the live deadlines, dropping stale entries."""
        self._timers = [
            (entry.deadline, key)
            for key, entry in self._connections.items()
            if entry.deadline is not None
        ]
        heapq.heapify(self._timers)

    def _remember_gone(self, key: FlowKey, outcome: tuple[bool, str]) -> None:
        """Keep how a connection ended until its stream lets go (release or abort).

        Bounded, oldest first out: a stream that never lets go (or a guest
        churning through connections faster than streams close) must not
        grow the table forever. An evicted stream just sees a plain
        "connection closed" error instead of its connection's exact outcome.
        """
        gone = self._gone
        gone.pop(key, None)
        gone[key] = outcome
        if len(gone) > _GONE_PER_CONNECTION * self._params.max_connections:
            del gone[next(iter(gone))]

    def _forget(self, key: FlowKey) -> None:
        self._time_wait.pop(key, None)
        self._half_open.pop(key, None)
        entry = self._connections.pop(key, None)
        if entry is not None:
            entry.deadline = None

    def _emit(
        self, key: FlowKey, header: TcpHeader, payload: bytes | memoryview, mss: int = 0
    ) -> None:
        if not (payload and self._tso[key.version]):
            if key.version == 4:
                self._out.tcp_ipv4(key.remote_addr, header, payload)
            else:
                self._out.ipv6(key.remote_addr, key.guest_addr, header, payload)
            return
        # The guest's kernel finishes the checksum and, for a super-segment,
        # cuts it into MSS-sized segments: Python never touches the payload.
        params = self._params
        build = build_tcp_ipv4_frame if key.version == 4 else build_ipv6_frame
        head = build(
            params.gateway_mac,
            params.guest_mac,
            key.remote_addr,
            key.guest_addr,
            header,
            payload=payload,
            partial_checksum=True,
        )
        l4 = _L4_OFFSET[key.version]
        if len(payload) > mss > 0:
            vnet = VirtioNetHeader.tcp_gso(
                ipv6=key.version == 6, l4_offset=l4, headers_len=len(head), mss=mss
            )
        else:
            vnet = VirtioNetHeader.partial_csum(l4, 16)
        self._frames.append(OffloadFrame(vnet.to_bytes(), head, payload))

    def _reset_for(self, key: FlowKey, header: TcpHeader, payload_len: int) -> None:
        """The RST RFC 9293 3.10.7.1 prescribes for a segment with no connection."""
        reply = reset_for(header, payload_len)
        if reply is not None:
            self._emit(key, reply, b"")

    def _unreachable(self, key: FlowKey, syn: TcpHeader, reason: RefuseReason) -> None:
        params = self._params
        prohibited = reason is RefuseReason.PROHIBITED
        # The guest's SYN without options: the IP header and the first 8
        # bytes are what the guest's kernel needs to match the error.
        segment = TcpHeader(syn.src_port, syn.dst_port, syn.seq, syn.ack, syn.flags, syn.window)
        offending = GuestOutput.guest_datagram(key, PROTO_TCP, segment, b"")
        # We are the router giving up on the destination: the error is ours
        # (RFC 1812 4.3.2.4).
        if key.version == 4:
            code = CODE_ADMIN_PROHIBITED if prohibited else CODE_HOST_UNREACHABLE
            src = params.gateway_ipv4 or key.remote_addr
            self._out.icmpv4_error(src, Icmpv4DestUnreachable(code), offending)
        else:
            code6 = _ICMPV6_ADMIN_PROHIBITED if prohibited else _ICMPV6_ADDRESS_UNREACHABLE
            src6 = params.gateway_ipv6 or key.remote_addr
            self._out.icmpv6_error(src6, Icmpv6DestUnreachable(code6), offending)


def _with_large_buffers(config: TcpConfig) -> TcpConfig:
    return replace(config, send_buffer=LARGE_BUFFER, recv_buffer=LARGE_BUFFER)
