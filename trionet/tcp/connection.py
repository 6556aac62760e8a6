"""One TCP connection as a sans-IO state machine (RFC 9293 and companions).

The owner drives it with four kinds of calls and nothing else:

* ``receive_segment(header, payload, now)`` for every segment of this
  connection that arrived (the stack has demultiplexed on the 4-tuple and
  checked the checksum);
* application calls: ``send``, ``read``, ``close``, ``abort``;
* ``handle_timers(now)`` once ``now`` has reached ``next_deadline()``;
* after any of those, ``segments_to_send(now)`` to collect what to transmit,
  and ``next_event()`` until it returns ``None``.

It never reads a clock, never sleeps, never builds IP headers. Everything a
hostile peer can put in a segment is handled per RFC and tallied in
``stats`` rather than raised: the only exceptions are for misuse by the owner
(documented on each method).

Internally every sequence number is *unwrapped*: SND.UNA, RCV.NXT and friends
are Python ints that start at the ISN and grow without bound, so all window
arithmetic is plain integer comparison; wire values are converted with
:func:`~trionet.tcp.seq.unwrap` on the way in and ``& SEQ_MASK`` on the way
out. Segments of the send buffer are copied exactly once, into the payload
handed to the owner.
"""

from __future__ import annotations

import enum
from collections import deque

from trionet.tcp.byte_ring import ByteRing
from trionet.tcp.config import TcpConfig
from trionet.tcp.congestion import new_controller
from trionet.tcp.events import (
    Closed,
    ConnectionReset,
    Established,
    PeerFinished,
    Readable,
    ResetReason,
    SendSpaceAvailable,
    TcpEvent,
    UrgentData,
)
from trionet.tcp.reassembly import Reassembly
from trionet.tcp.recovery import Recovery
from trionet.tcp.scoreboard import Scoreboard
from trionet.tcp.seq import SEQ_MASK, seq_diff, unwrap
from trionet.wire.tcp import (
    NO_OPTIONS,
    TcpFlags,
    TcpHeader,
    TcpOptions,
    make_tcp_header,
    make_tcp_options,
)

__all__ = ["Segment", "TcpConnection", "TcpState", "TcpStateError", "reset_for"]

#: A segment to transmit: the header and its payload (possibly empty).
Segment = tuple[TcpHeader, bytes | memoryview]

_ACK = TcpFlags.ACK
_SYN = TcpFlags.SYN
_FIN = TcpFlags.FIN
_RST = TcpFlags.RST
_PSH = TcpFlags.PSH
_ACK_PSH = TcpFlags.ACK | TcpFlags.PSH
_SYN_ACK = TcpFlags.SYN | TcpFlags.ACK
_RST_ACK = TcpFlags.RST | TcpFlags.ACK
_FIN_ACK = TcpFlags.FIN | TcpFlags.ACK
_FIN_PSH_ACK = TcpFlags.FIN | TcpFlags.PSH | TcpFlags.ACK
# Received flags are tested as plain ints: IntFlag's own operators cost a few
# microseconds per segment, which on this path is most of the budget.
_I_FIN = int(TcpFlags.FIN)
_I_SYN = int(TcpFlags.SYN)
_I_RST = int(TcpFlags.RST)
_I_ACK = int(TcpFlags.ACK)
_I_URG = int(TcpFlags.URG)
_EMPTY = b""
#: RFC 7323 section 5.5: a TS.Recent older than 24 days is no basis for PAWS.
_PAWS_IDLE = 24 * 86400.0
#: Clock granularity G of RFC 6298 (the timestamp clock ticks in ms).
_CLOCK_G = 0.001
#: RFC 6298 5.7: the RTO when data transfer begins after a lost SYN or SYN-ACK.
_RTO_FALLBACK = 3.0
_MIN_PEER_MSS = 64
#: Answers (RSTs) queued between two ``segments_to_send`` calls, at most.
_MAX_CONTROL = 16
# Hot-path checks below read Scoreboard.ranges and Reassembly.blocks rather
# than going through their Python-level __bool__.
#: Events are immutable values: those without fields are built once (a frozen
#: dataclass costs a Python-level __init__ each time; every connection raises
#: Established, PeerFinished and Closed once, and Readable once per burst).
_READABLE = Readable()
_ESTABLISHED_EVENT = Established()
_PEER_FINISHED = PeerFinished()
_CLOSED_EVENT = Closed()
_SEND_SPACE = SendSpaceAvailable()


class TcpState(enum.Enum):
    """The eleven states of RFC 9293 figure 5."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"

    # Members are singletons: identity hashing keeps the per-segment state-set
    # lookups in C instead of Enum's Python-level __hash__.
    __hash__ = object.__hash__


_CLOSED = TcpState.CLOSED
_LISTEN = TcpState.LISTEN
_SYN_SENT = TcpState.SYN_SENT
_SYN_RECEIVED = TcpState.SYN_RECEIVED
_ESTABLISHED = TcpState.ESTABLISHED
_FIN_WAIT_1 = TcpState.FIN_WAIT_1
_FIN_WAIT_2 = TcpState.FIN_WAIT_2
_CLOSE_WAIT = TcpState.CLOSE_WAIT
_CLOSING = TcpState.CLOSING
_LAST_ACK = TcpState.LAST_ACK
_TIME_WAIT = TcpState.TIME_WAIT

#: States in which data we queued may still go out.
_SENDING = frozenset({_ESTABLISHED, _CLOSE_WAIT, _FIN_WAIT_1, _CLOSING, _LAST_ACK})
#: States in which the peer's data is still accepted.
_RECEIVING = frozenset({_ESTABLISHED, _FIN_WAIT_1, _FIN_WAIT_2})
#: States in which ``send()`` may queue data.
_MAY_SEND = frozenset({_SYN_SENT, _SYN_RECEIVED, _ESTABLISHED, _CLOSE_WAIT})


class TcpStateError(Exception):
    """The owner asked for something the connection's state forbids (e.g. send after close)."""


def reset_for(header: TcpHeader, payload_len: int) -> TcpHeader | None:
    """The RST answering a segment that no connection owns (RFC 9293 3.5.2, case 1).

    The stack calls this for a segment whose 4-tuple matches nothing. It
    returns ``None`` for an incoming RST, which must never be answered.
    """
    flags = int(header.flags)
    if flags & _I_RST:
        return None
    if flags & _I_ACK:
        return TcpHeader(header.dst_port, header.src_port, header.ack, 0, _RST, 0)
    seg_len = payload_len + (1 if flags & _I_SYN else 0) + (1 if flags & _I_FIN else 0)
    ack = (header.seq + seg_len) & SEQ_MASK
    return TcpHeader(header.dst_port, header.src_port, 0, ack, _RST_ACK, 0)


def _our_window_shift(config: TcpConfig) -> int:
    """The smallest shift that lets the whole receive buffer be advertised."""
    if not config.window_scaling:
        return 0
    # The smallest s with ceil(recv_buffer / 2**s) <= 0xFFFF, in closed form
    # (once per connection, where a loop costs a dozen passes for 256 KiB).
    # TcpConfig caps recv_buffer at 0xFFFF << 14, so this is at most 14.
    return ((config.recv_buffer - 1) // 0xFFFF).bit_length()


class TcpConnection:
    """One endpoint; build it with :meth:`accept`, :meth:`connect` or :meth:`listen`."""

    __slots__ = (
        "_ack_now",
        "_active_open",
        "_cc",
        "_challenge_time",
        "_challenge_tokens",
        "_control",
        "_cwnd",
        "_delack_deadline",
        "_dsack",
        "_dupacks",
        "_events",
        "_fin_queued",
        "_fin_seq",
        "_fin_wait_2_timeout",
        "_finwait2_deadline",
        "_from_listen",
        "_irs",
        "_iss",
        "_ka_probes",
        "_keepalive_deadline",
        "_last_ack_sent",
        "_last_ack_time",
        "_last_data_time",
        "_last_send",
        "_max_snd_wnd",
        "_ooo",
        "_ooo_fin",
        "_peer_finished",
        "_peer_mss",
        "_persist_backoff",
        "_persist_deadline",
        "_pingpong",
        "_probes",
        "_pushed",
        "_quick",
        "_rcv_adv",
        "_rcv_mss",
        "_rcv_nxt",
        "_rcv_unacked",
        "_rcv_up",
        "_rcv_wscale",
        "_rcvbuf",
        "_rec",
        "_retries",
        "_rto",
        "_rto_deadline",
        "_rtt_seq",
        "_rtt_time",
        "_rttvar",
        "_sack_ok",
        "_sacked",
        "_seg_cap",
        "_send_blocked",
        "_send_mss",
        "_send_one",
        "_snd_buf_seq",
        "_snd_max",
        "_snd_nxt",
        "_snd_una",
        "_snd_up",
        "_snd_wl1",
        "_snd_wl2",
        "_snd_wnd",
        "_snd_wscale",
        "_sndbuf",
        "_srtt",
        "_ssthresh",
        "_state",
        "_syn_pending",
        "_timewait_deadline",
        "_ts_offset",
        "_ts_ok",
        "_ts_opts",
        "_ts_recent",
        "_ts_recent_time",
        "_ws_ok",
        "config",
        "local_port",
        "remote_port",
        "stats",
    )

    # -- construction -------------------------------------------------------

    def __init__(self, local_port: int, remote_port: int, *, iss: int, config: TcpConfig) -> None:
        """Low-level constructor leaving the connection CLOSED; use the class methods."""
        self.config = config
        self.local_port = local_port
        self.remote_port = remote_port
        #: Segments dropped or specially answered, by reason (hostile input tally).
        self.stats: dict[str, int] = {}
        self._events: deque[TcpEvent] = deque()
        self._control: list[Segment] = []
        self._from_listen = False
        self._active_open = False
        self._reset_fields(iss & SEQ_MASK)

    def _reset_fields(self, iss: int) -> None:
        cfg = self.config
        self._state = _CLOSED
        self._iss = iss
        self._irs = 0
        self._snd_una = iss
        self._snd_nxt = iss
        self._snd_max = iss
        self._snd_wnd = 0
        self._snd_wl1 = 0
        self._snd_wl2 = iss
        self._max_snd_wnd = 0
        self._sndbuf = ByteRing(cfg.send_buffer)
        self._snd_buf_seq = iss + 1
        self._fin_queued = False
        self._fin_seq: int | None = None
        self._peer_mss = cfg.default_peer_mss
        self._send_mss = min(cfg.default_peer_mss, cfg.mss)
        self._seg_cap = self._send_mss
        self._snd_wscale = 0
        self._rcv_wscale = 0
        self._ws_ok = False
        self._ts_ok = False
        self._sack_ok = False
        self._ts_recent: int | None = None
        self._ts_recent_time = 0.0
        self._ts_offset = (iss * 0x9E3779B1) & SEQ_MASK
        self._ts_opts = NO_OPTIONS
        self._last_ack_sent = 0
        self._rcv_nxt = 0
        self._rcv_adv = 0
        self._rcvbuf = ByteRing(cfg.recv_buffer)
        self._rcv_unacked = 0
        self._rcv_up = 0
        self._snd_up = 0
        self._rcv_mss = min(cfg.mss, 536)
        self._ooo = Reassembly(
            cfg.recv_buffer if cfg.ooo_max_bytes is None else cfg.ooo_max_bytes,
            cfg.ooo_max_blocks,
        )
        self._ooo_fin: int | None = None
        #: a duplicate received since the last ACK: reported first (RFC 2883 D-SACK)
        self._dsack: tuple[int, int] | None = None
        self._peer_finished = False
        self._ack_now = False
        self._delack_deadline: float | None = None
        # Quick-ACK mode, modelled on Linux (see docs/tcp.md "When we ACK").
        #: segments still to be ACKed at once (tcp_incr_quickack's icsk_ack.quick)
        self._quick = 0
        #: interactive: we answered within the delayed-ACK time, so ACKs wait
        #: to ride on the answer (Linux's pingpong mode)
        self._pingpong = False
        #: the last segment received was short (Linux's ICSK_ACK_PUSHED)
        self._pushed = False
        #: when in-order data last arrived; None before the first
        self._last_data_time: float | None = None
        #: when data (new or resent) last went out: the idle restart's clock
        self._last_send = 0.0
        self._cwnd = self._initial_window
        self._ssthresh = 1 << 30
        #: the congestion controller (CUBIC or NewReno): the decrease on a
        #: loss and the growth in congestion avoidance
        self._cc = new_controller(cfg.congestion_control, self._send_mss)
        self._dupacks = 0
        #: loss detection and recovery (RACK-TLP, PRR): the sender's collaborator
        self._rec = Recovery(iss, self._send_mss)
        #: the next segment goes out whatever the window (fast retransmit, probe)
        self._send_one = False
        self._sacked = Scoreboard()
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = cfg.rto_initial
        self._rtt_seq: int | None = None
        self._rtt_time = 0.0
        self._rto_deadline: float | None = None
        self._retries = 0
        self._persist_deadline: float | None = None
        self._persist_backoff = 0
        self._probes = 0
        self._keepalive_deadline: float | None = None
        self._ka_probes = 0
        self._last_ack_time = 0.0
        self._timewait_deadline: float | None = None
        self._finwait2_deadline: float | None = None
        self._fin_wait_2_timeout = cfg.fin_wait_2_timeout
        self._syn_pending = False
        self._challenge_tokens = cfg.challenge_ack_rate
        self._challenge_time = 0.0
        self._send_blocked = False

    @classmethod
    def accept(
        cls,
        syn: TcpHeader,
        *,
        iss: int,
        config: TcpConfig,
        now: float,
    ) -> TcpConnection:
        """Passive open answering the received ``syn``: the result is in SYN-RECEIVED.

        This is how trionet terminates a guest's connection: the stack calls it
        only once the host-side dial succeeded, and the first
        ``segments_to_send`` yields the SYN-ACK. Data carried on the SYN is not
        accepted (the peer retransmits it). Raises ``ValueError`` if ``syn`` is
        not a bare SYN (SYN set; ACK and RST clear): the stack must check that
        before dialing.
        """
        flags = int(syn.flags)
        if not flags & _I_SYN or flags & (_I_ACK | _I_RST):
            raise ValueError("accept() needs a segment with SYN set and ACK, RST clear")
        conn = cls(syn.dst_port, syn.src_port, iss=iss, config=config)
        conn._open_from_syn(syn, now)
        conn._arm_keepalive(now)
        return conn

    @classmethod
    def connect(
        cls,
        local_port: int,
        remote_port: int,
        *,
        iss: int,
        config: TcpConfig,
        now: float,
    ) -> TcpConnection:
        """Active open: the result is in SYN-SENT and its first output is the SYN."""
        conn = cls(local_port, remote_port, iss=iss, config=config)
        conn._state = _SYN_SENT
        conn._active_open = True
        conn._rcv_wscale = _our_window_shift(config)
        conn._snd_nxt = conn._snd_max = conn._iss + 1
        conn._syn_pending = True
        conn._arm_keepalive(now)
        return conn

    @classmethod
    def listen(cls, local_port: int, *, iss: int, config: TcpConfig) -> TcpConnection:
        """A LISTEN endpoint (RFC 9293 passive OPEN) that becomes the connection of the first SYN.

        trionet itself uses :meth:`accept`; this exists for completeness. A SYN
        later reset by its sender returns the endpoint to LISTEN.
        """
        conn = cls(local_port, 0, iss=iss, config=config)
        conn._state = _LISTEN
        conn._from_listen = True
        return conn

    def _open_from_syn(self, syn: TcpHeader, now: float) -> None:
        self.remote_port = syn.src_port
        self._state = _SYN_RECEIVED
        self._rcv_wscale = _our_window_shift(self.config)
        self._learn_syn(syn, now)
        self._snd_wnd = syn.window
        self._max_snd_wnd = syn.window
        self._snd_nxt = self._snd_max = self._iss + 1
        self._syn_pending = True

    def _learn_syn(self, syn: TcpHeader, now: float) -> None:
        """Record the peer's ISN and negotiate options from its SYN or SYN-ACK."""
        cfg = self.config
        opts = syn.options
        self._irs = syn.seq
        self._rcv_nxt = syn.seq + 1
        self._last_ack_sent = self._rcv_nxt
        peer_mss = opts.mss if opts.mss is not None else cfg.default_peer_mss
        self._peer_mss = max(_MIN_PEER_MSS, peer_mss)
        self._ws_ok = cfg.window_scaling and opts.window_scale is not None
        if self._ws_ok and opts.window_scale is not None:
            self._snd_wscale = min(opts.window_scale, 14)
        else:
            self._snd_wscale = 0
            self._rcv_wscale = 0
        if cfg.timestamps and opts.timestamp is not None:
            self._ts_ok = True
            self._ts_recent = opts.timestamp[0]
            self._ts_recent_time = now
        self._sack_ok = cfg.sack and opts.sack_permitted
        self._snd_wl1 = self._irs
        # What our SYN or SYN-ACK advertises (the window of a SYN is never scaled).
        self._rcv_adv = self._rcv_nxt + min(cfg.recv_buffer, 0xFFFF)
        self._set_send_mss()
        self._cwnd = self._initial_window
        self._cc.mss = self._rec.mss = self._send_mss

    @property
    def _initial_window(self) -> int:
        """IW (RFC 6928): where cwnd starts, and the floor of a restart after idle."""
        return self.config.initial_cwnd_segments * self._send_mss

    def _set_send_mss(self) -> None:
        # RFC 9293 3.7.1 (MUST-16) and RFC 6691: the MSS counts payload only, so
        # the timestamp option carried on every segment comes out of it.
        mss = min(self._peer_mss, self.config.mss) - (12 if self._ts_ok else 0)
        self._send_mss = max(mss, 1)
        cap = self.config.max_segment_payload
        self._seg_cap = self._send_mss if cap is None else cap - cap % self._send_mss

    # -- public state -------------------------------------------------------

    @property
    def state(self) -> TcpState:
        return self._state

    @property
    def send_mss(self) -> int:
        """Payload bytes per wire segment toward the peer (the GSO ``gso_size``)."""
        return self._send_mss

    @property
    def readable_bytes(self) -> int:
        return len(self._rcvbuf)

    @property
    def ack_pending(self) -> bool:
        """An ACK is owed now: ``segments_to_send`` has something to emit."""
        return self._ack_now

    @property
    def urgent_bytes(self) -> int:
        """Readable bytes up to the peer's urgent pointer (MUST-33); 0 if none pending."""
        pending = self._rcv_up - (self._rcv_nxt - len(self._rcvbuf))
        return pending if pending > 0 else 0

    @property
    def at_eof(self) -> bool:
        """The peer finished and every byte it sent has been read."""
        return self._peer_finished and not self._rcvbuf

    @property
    def send_space(self) -> int:
        """Bytes ``send()`` would take now (0 once sending is no longer allowed)."""
        if self._state not in _MAY_SEND or self._fin_queued:
            return 0
        space = self.config.send_buffer - len(self._sndbuf)
        return space if space > 0 else 0

    def stream_status(self) -> tuple[int, bool, int]:
        """``(readable_bytes, at_eof, send_space)`` in one call, for a stream's status."""
        buffered = len(self._rcvbuf)
        if self._state not in _MAY_SEND or self._fin_queued:
            return buffered, self._peer_finished and not buffered, 0
        space = self.config.send_buffer - len(self._sndbuf)
        return buffered, self._peer_finished and not buffered, space if space > 0 else 0

    @property
    def unacked_bytes(self) -> int:
        """Bytes queued by ``send()`` that the peer has not acknowledged yet."""
        return len(self._sndbuf)

    @property
    def memory_in_use(self) -> int:
        """Payload bytes held by this connection (send, receive and reassembly buffers)."""
        # Counted from the blocks, not from the queue's running total, so the
        # bound checks in tests do not trust the bookkeeping they check.
        held = sum(len(data) for _, data in self._ooo.blocks)
        return len(self._sndbuf) + len(self._rcvbuf) + held

    @property
    def memory_limit(self) -> int:
        """Upper bound of :attr:`memory_in_use`.

        Out-of-order data is only taken inside the advertised window, and the
        window plus the unread bytes never exceed the receive buffer, except
        for less than ``2**shift`` bytes of rounding in the scaled window field.
        """
        cfg = self.config
        return cfg.send_buffer + cfg.recv_buffer + (1 << self._rcv_wscale)

    @property
    def rto(self) -> float:
        """The current retransmission timeout (RFC 6298), backoff included."""
        return self._rto

    @property
    def srtt(self) -> float | None:
        return self._srtt

    @property
    def cwnd(self) -> int:
        return self._cwnd

    @property
    def ssthresh(self) -> int:
        """The slow-start threshold: the window recovery converges to, 2**30 before any loss."""
        return self._ssthresh

    def next_event(self) -> TcpEvent | None:
        """The oldest unreported event, or ``None``."""
        return self._events.popleft() if self._events else None

    @property
    def has_events(self) -> bool:
        """``next_event`` has something to return."""
        return bool(self._events)

    def next_deadline(self) -> float | None:
        """When ``handle_timers`` must next be called, or ``None`` if no timer is armed."""
        # Unrolled: this runs after every service pass, and a tuple to loop
        # over costs more than the comparisons.
        best = self._rto_deadline
        d = self._delack_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._persist_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._keepalive_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._timewait_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._finwait2_deadline
        if d is not None and (best is None or d < best):
            best = d
        d = self._rec.timer
        if d is not None and (best is None or d < best):
            best = d
        return best

    def time_out_fin_wait_2(self, seconds: float, now: float) -> None:
        """From now on, give up on a peer that stays in FIN-WAIT-2 for ``seconds``.

        For an owner that let go of the connection (Linux's orphans): while
        an application still holds it, a half-closed peer may stay silent
        as long as it likes (RFC 9293 sets no limit), so the owner turns this
        on only when it lets go. Arms at once if already in FIN-WAIT-2.
        """
        if seconds <= 0:
            raise ValueError("the FIN-WAIT-2 timeout must be positive")
        self._fin_wait_2_timeout = seconds
        if self._state is _FIN_WAIT_2 and self._finwait2_deadline is None:
            self._finwait2_deadline = now + seconds

    def _count(self, reason: str) -> None:
        self.stats[reason] = self.stats.get(reason, 0) + 1

    # -- application calls --------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview, *, urgent: bool = False) -> int:
        """Queue as much of ``data`` as the send buffer takes; return how much.

        A short count, or a send that fills the buffer, is back-pressure:
        ``SendSpaceAvailable`` follows once the peer has acknowledged enough.
        With ``urgent`` the bytes taken are marked urgent data (the urgent
        pointer moves to their end). Raises ``TcpStateError`` after
        ``close()`` or outside SYN-SENT, SYN-RECEIVED, ESTABLISHED and
        CLOSE-WAIT.
        """
        room = self._room_to_send()
        n = len(data)
        if n >= room:
            # A full buffer arms SendSpaceAvailable too, not just a short
            # count: an owner that sends exactly what fits must also learn
            # when there is room again.
            n = max(room, 0)
            self._send_blocked = True
        if n:
            self._sndbuf.append(data[:n] if n < len(data) else data)
            if urgent:
                self._snd_up = self._snd_buf_seq + len(self._sndbuf)
        return n

    def send_room(self, max_bytes: int) -> memoryview:
        """Send-buffer space for up to ``max_bytes``, to fill in place; then :meth:`send_commit`.

        :meth:`send` without its copy: an owner reading a socket reads
        straight into the queue (``recv_into``). The view is contiguous, so
        it may be shorter than the space there is; empty when the buffer is
        full. Raises ``TcpStateError`` where :meth:`send` would.
        """
        room = self._room_to_send()
        return self._sndbuf.reserve(min(max_bytes, room) if room > 0 else 0)

    def _room_to_send(self) -> int:
        """Free send-buffer bytes (negative if over); TcpStateError where sending has ended."""
        if self._state not in _MAY_SEND or self._fin_queued:
            raise TcpStateError(f"cannot send in {self._state.value} after close or reset")
        return self.config.send_buffer - len(self._sndbuf)

    def send_commit(self, n: int) -> None:
        """Queue the first ``n`` bytes written into the last :meth:`send_room` view."""
        self._sndbuf.commit(n)
        if len(self._sndbuf) >= self.config.send_buffer:
            self._send_blocked = True  # as a send() that fills the buffer

    def read(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` received bytes (all if negative); ``b""`` if none."""
        buf = self._rcvbuf
        if not buf:
            return _EMPTY
        n = len(buf) if max_bytes < 0 or max_bytes >= len(buf) else max_bytes
        data = buf.copy(0, n)
        buf.drop(n)
        if self._state in _RECEIVING:
            self._maybe_window_update()
        return data

    def peek(self, max_bytes: int = -1) -> bytes:
        """A copy of up to ``max_bytes`` received bytes, left in the buffer.

        With :meth:`consume` this lets a relay offer data to a non-blocking
        host socket and drop only what it took: unconsumed bytes keep the
        receive window closed, which is the back-pressure the peer should see.
        """
        buf = self._rcvbuf
        return buf.copy(0, len(buf) if max_bytes < 0 or max_bytes >= len(buf) else max_bytes)

    def peek_view(self, max_bytes: int) -> memoryview:
        """:meth:`peek` without its copy: a view of up to ``max_bytes`` received bytes.

        Contiguous, so it may be shorter than what is buffered. Right only
        until the next :meth:`consume` or received segment: offer it to a
        socket, drop the view, then :meth:`consume` what the socket took.
        """
        return self._rcvbuf.front(max_bytes)

    def consume(self, n: int) -> None:
        """Drop the first ``n`` received bytes (after :meth:`peek`); may reopen the window."""
        if n <= 0:
            return
        self._rcvbuf.drop(n)
        if self._state in _RECEIVING:
            self._maybe_window_update()

    def close(self) -> None:
        """Send FIN after everything queued (RFC 9293 CLOSE). Idempotent.

        In LISTEN or SYN-SENT the connection simply goes to CLOSED.
        """
        st = self._state
        if st in (_LISTEN, _SYN_SENT):
            self._enter_closed()
            return
        if self._fin_queued or st not in (_SYN_RECEIVED, _ESTABLISHED, _CLOSE_WAIT):
            return
        self._fin_queued = True
        if st is _ESTABLISHED:
            self._state = _FIN_WAIT_1
        elif st is _CLOSE_WAIT:
            self._state = _LAST_ACK
        # In SYN-RECEIVED the FIN waits for ESTABLISHED (RFC 9293 3.10.4).

    def _queue_reset(self) -> None:
        """Queue the RST|ACK that ends a synchronized connection (ABORT, give-up)."""
        reset = TcpHeader(
            self.local_port,
            self.remote_port,
            self._snd_max & SEQ_MASK,
            self._rcv_nxt & SEQ_MASK,
            _RST_ACK,
            0,
        )
        self._control.append((reset, _EMPTY))

    def abort(self) -> None:
        """Reset the connection (RFC 9293 ABORT): a RST goes out if synchronized."""
        st = self._state
        if st in (_SYN_RECEIVED, _ESTABLISHED, _FIN_WAIT_1, _FIN_WAIT_2, _CLOSE_WAIT):
            self._queue_reset()
        if st is not _CLOSED:
            self._sndbuf.clear()
            self._rcvbuf.clear()
            self._enter_closed()

    # -- segment arrival ------------------------------------------------------

    def receive_segment(
        self, header: TcpHeader, payload: bytes | bytearray | memoryview, now: float
    ) -> None:
        """Process one arriving segment (RFC 9293 3.10.7). Never raises for bad input."""
        st = self._state
        if st is _CLOSED:
            self._count("segment_while_closed")
            rst = reset_for(header, len(payload))
            if rst is not None:
                self._push_control(rst)
            return
        if header.dst_port != self.local_port or (
            st is not _LISTEN and header.src_port != self.remote_port
        ):
            self._count("wrong_port")
            return
        if st is _LISTEN:
            self._on_listen(header, now)
        elif st is _SYN_SENT:
            self._on_syn_sent(header, payload, now)
        else:
            self._on_synchronized(header, payload, now)

    def _push_control(self, header: TcpHeader) -> None:
        """Queue a RST answering a segment; a flood between two drains is capped."""
        if len(self._control) < _MAX_CONTROL:
            self._control.append((header, _EMPTY))
        else:
            self._count("reset_rate_limited")

    def _queue_rst(self, seq: int) -> None:
        self._push_control(
            TcpHeader(self.local_port, self.remote_port, seq & SEQ_MASK, 0, _RST, 0)
        )

    def _on_listen(self, header: TcpHeader, now: float) -> None:
        flags = int(header.flags)
        if flags & _I_RST:
            self._count("rst_in_listen")
            return
        if flags & _I_ACK:
            self._count("ack_in_listen")
            self._push_control(TcpHeader(self.local_port, header.src_port, header.ack, 0, _RST, 0))
            return
        if not flags & _I_SYN:
            self._count("no_syn_in_listen")
            return
        self._open_from_syn(header, now)
        self._arm_keepalive(now)

    def _on_syn_sent(
        self, header: TcpHeader, payload: bytes | bytearray | memoryview, now: float
    ) -> None:
        flags = int(header.flags)
        ack_ok = False
        ack = 0
        if flags & _I_ACK:
            ack = unwrap(header.ack, self._iss)
            if ack <= self._iss or ack > self._snd_max:
                self._count("bad_ack_syn_sent")
                if not flags & _I_RST:
                    self._queue_rst(header.ack)
                return
            ack_ok = True
        if flags & _I_RST:
            if ack_ok:
                self._events.append(ConnectionReset(ResetReason.REFUSED))
                self._enter_closed()
            else:
                self._count("rst_without_ack_syn_sent")
            return
        if not flags & _I_SYN:
            self._count("no_syn_syn_sent")
            return
        self._learn_syn(header, now)
        self._last_recv(now)
        if ack_ok:
            self._snd_una = ack
            self._snd_wnd = header.window
            self._max_snd_wnd = header.window
            self._snd_wl1 = self._irs
            self._snd_wl2 = ack
            self._rto_deadline = None
            self._retries = 0
            if self._rtt_seq is not None:
                self._rtt_sample(now - self._rtt_time)
                self._rtt_seq = None
            self._become_established()
            self._ack_now = True
            fin = bool(flags & _I_FIN)
            if payload or fin:
                self._receive_text(self._rcv_nxt, payload, fin, now)
        else:
            # Simultaneous open (RFC 9293 figure 8): answer with SYN-ACK.
            self._state = _SYN_RECEIVED
            self._snd_wnd = header.window
            self._max_snd_wnd = header.window
            self._syn_pending = True
            self._retries = 0
            self._rto = self.config.rto_initial
            self._rto_deadline = None

    def _become_established(self) -> None:
        if self._srtt is None:
            # The handshake gave no RTT sample: its SYN or SYN-ACK was
            # resent (Karn). RFC 6298 5.7: the RTO MUST be re-initialized to
            # 3 s when data transmission begins (Linux's
            # TCP_TIMEOUT_FALLBACK), not stay at the 1 s guess.
            cfg = self.config
            self._rto = min(max(_RTO_FALLBACK, cfg.rto_min), cfg.rto_max)
        self._state = _ESTABLISHED
        self._events.append(_ESTABLISHED_EVENT)
        if self._fin_queued:
            self._state = _FIN_WAIT_1

    def _on_synchronized(
        self, header: TcpHeader, payload: bytes | bytearray | memoryview, now: float
    ) -> None:
        flags = int(header.flags)
        st = self._state
        rcv_nxt = self._rcv_nxt
        # unwrap() inlined: this runs for every segment.
        d = (header.seq - rcv_nxt) & SEQ_MASK
        seq = rcv_nxt + d - (0x1_0000_0000 if d >= 0x8000_0000 else 0)
        plen = len(payload)

        if st is _SYN_RECEIVED and flags & _I_SYN and not flags & _I_RST and seq == self._irs:
            if not flags & _I_ACK:
                # Our SYN-ACK was lost and the peer repeats its SYN.
                self._count("duplicate_syn")
                self._syn_pending = True
                return
            if header.ack == (self._iss + 1) & SEQ_MASK:
                # Simultaneous open: the peer's SYN-ACK answers our SYN. Its SYN
                # is the one we already hold, so only its ACK is news (the RFC
                # 5961 4.2 exception Linux makes too).
                flags &= ~_I_SYN
                seq += 1

        ts = header.options.timestamp if self._ts_ok else None
        if (
            ts is not None
            and not flags & _I_RST
            and self._ts_recent is not None
            and seq_diff(ts[0], self._ts_recent) < 0
        ):
            if now - self._ts_recent_time > _PAWS_IDLE:
                self._ts_recent = None
            else:
                # RFC 7323 5.3 (PAWS): an old duplicate; acknowledge and drop.
                self._count("paws_rejected")
                self._ack_now = True
                return

        # RFC 9293 3.10.7.4 first: is the segment in the receive window?
        wnd = self._rcv_adv - rcv_nxt
        if wnd < 0:  # noqa: PLR1730 (min() costs a call per segment)
            wnd = 0
        seg_len = plen + (1 if flags & _I_SYN else 0) + (1 if flags & _I_FIN else 0)
        if seg_len == 0:
            # The right edge itself is accepted (as Linux does): a peer that
            # filled our window sends its pure ACKs with SEG.SEQ exactly there,
            # and rejecting them would turn each into a duplicate ACK back.
            ok = rcv_nxt <= seq <= rcv_nxt + wnd
        elif wnd == 0:
            # MUST-66: with the window closed, ACK, RST and FIN at RCV.NXT still count.
            ok = seq == rcv_nxt
        else:
            last = seq + seg_len - 1
            ok = rcv_nxt <= seq < rcv_nxt + wnd or rcv_nxt <= last < rcv_nxt + wnd
        if not ok:
            if flags & _I_RST:
                self._count("rst_out_of_window")
                return
            self._count("out_of_window")
            if plen and seq < rcv_nxt and self._sack_ok:
                # Already received: report the duplicate (RFC 2883 D-SACK),
                # which tells the sender its resend was spurious.
                end = seq + plen
                self._dsack = (seq, end if end < rcv_nxt else rcv_nxt)
            if st is _TIME_WAIT and flags & _I_FIN:
                self._timewait_deadline = now + self.config.time_wait
            self._ack_now = True
            return

        if flags & _I_RST:
            if seq == rcv_nxt:
                self._on_reset()
            else:
                # RFC 5961 3.2: in window but not exact; make the sender prove itself.
                self._count("rst_challenged")
                self._challenge_ack(now)
            return

        if flags & _I_SYN:
            if st is _SYN_RECEIVED and self._from_listen:
                self._count("syn_in_syn_received")
                self._reset_to_listen()
                return
            # RFC 5961 4.2: any SYN in a synchronized state draws a challenge ACK.
            self._count("syn_challenged")
            self._challenge_ack(now)
            return

        if not flags & _I_ACK:
            self._count("no_ack")
            return

        # Nothing above this line changed the connection beyond owing an ACK:
        # a segment dropped for its ACK field below must not either (RFC 9293
        # 3.10.7.4; RFC 7323 4.3 takes TS.Recent only from a segment that is
        # accepted, as Linux's tcp_ack does after its SND.NXT check).
        una = self._snd_una
        d = (header.ack - una) & SEQ_MASK
        ack = una + d - (0x1_0000_0000 if d >= 0x8000_0000 else 0)
        if st is _SYN_RECEIVED:
            if self._snd_una < ack <= self._snd_max:
                self._snd_una = self._iss + 1
                self._snd_wnd = header.window << self._snd_wscale
                self._max_snd_wnd = self._snd_wnd
                self._snd_wl1 = seq
                self._snd_wl2 = ack
                self._rto_deadline = None
                self._retries = 0
                self._rto = self.config.rto_initial
                if self._rtt_seq is not None:
                    # The SYN-ACK's round trip (Linux's tcp_synack_rtt_meas):
                    # without it a passive open's first flight has no SRTT,
                    # so no tail loss probe and a 1 s RTO.
                    self._rtt_sample(now - self._rtt_time)
                    self._rtt_seq = None
                self._become_established()
                st = self._state
            else:
                self._count("bad_ack_syn_received")
                self._queue_rst(header.ack)
                return

        # RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if ack > self._snd_max:
            self._count("ack_of_unsent")
            self._challenge_ack(now)
            return
        if ack < self._snd_una - self._max_snd_wnd:
            self._count("ack_too_old")
            self._challenge_ack(now)
            return

        # The segment is acceptable: only now may it move TS.Recent and the
        # idle timers.
        if (
            ts is not None
            and seq <= self._last_ack_sent
            and (self._ts_recent is None or seq_diff(ts[0], self._ts_recent) >= 0)
        ):
            self._ts_recent = ts[0]
            self._ts_recent_time = now
        self._ka_probes = 0
        self._last_ack_time = now
        if self._keepalive_deadline is not None:
            self._keepalive_deadline = now + (self.config.keepalive or 0.0)
        if self._finwait2_deadline is not None:
            self._finwait2_deadline = now + (self._fin_wait_2_timeout or 0.0)

        self._process_ack(header, seq, ack, plen, now)
        if self._state is _CLOSED:
            return

        if flags & _I_URG and self._state in _RECEIVING:
            self._receive_urgent(seq + header.urgent)
        fin = bool(flags & _I_FIN)
        if plen or fin:
            self._receive_text(seq, payload, fin, now)

    def _receive_urgent(self, up: int) -> None:
        """RFC 9293 3.8.5: RCV.UP <- max(RCV.UP, SEG.UP); tell the owner if it is news.

        Urgent bytes stay in the stream (as with SO_OOBINLINE): a relay passes
        them on in order and only needs to know where the urgent data ends.
        """
        if up > self._rcv_up:
            read_pos = self._rcv_nxt - len(self._rcvbuf)
            was_pending = self._rcv_up > read_pos
            self._rcv_up = up
            if not was_pending:
                self._events.append(UrgentData())

    def _reset_to_listen(self) -> None:
        port = self.local_port
        self._reset_fields(self._iss)
        self.remote_port = 0
        self.local_port = port
        self._state = _LISTEN

    def _on_reset(self) -> None:
        st = self._state
        if st is _SYN_RECEIVED and self._from_listen:
            self._count("reset_to_listen")
            self._reset_to_listen()
            return
        if st is not _TIME_WAIT:
            reason = ResetReason.RESET_BY_PEER
            if st is _SYN_RECEIVED and self._active_open:
                # Our SYN crossed the peer's, then the peer refused after all.
                reason = ResetReason.REFUSED
            self._events.append(ConnectionReset(reason))
            self._rcvbuf.clear()
        self._sndbuf.clear()
        self._enter_closed()

    def _challenge_ack(self, now: float) -> None:
        rate = self.config.challenge_ack_rate
        tokens = self._challenge_tokens + (now - self._challenge_time) * rate
        self._challenge_time = now
        tokens = min(tokens, rate)
        if tokens >= 1.0:
            self._challenge_tokens = tokens - 1.0
            self._count("challenge_ack_sent")
            self._ack_now = True
        else:
            self._challenge_tokens = tokens
            self._count("challenge_ack_rate_limited")

    def _last_recv(self, now: float) -> None:
        self._ka_probes = 0
        self._last_ack_time = now
        if self.config.keepalive is not None and self._keepalive_deadline is not None:
            self._keepalive_deadline = now + self.config.keepalive

    def _arm_keepalive(self, now: float) -> None:
        if self.config.keepalive is not None:
            self._keepalive_deadline = now + self.config.keepalive

    # -- acknowledgements and congestion control ------------------------------

    def _process_ack(self, header: TcpHeader, seq: int, ack: int, plen: int, now: float) -> None:
        """An acceptable ACK: SND.UNA, the SACK record, loss detection, the windows.

        The order is RFC 8985's: record what was delivered (cumulative ACK
        and SACK), then look for losses, then let PRR (RFC 6937) set what
        recovery may send; the congestion window grows only outside recovery.
        """
        opts = header.options
        una = self._snd_una
        mss = self._send_mss
        rec = self._rec
        sacked_before = self._sacked.sacked
        dsack = False
        if self._sack_ok and opts.sack_blocks:
            dsack = self._update_scoreboard(opts.sack_blocks, ack, now)
        window = header.window << self._snd_wscale
        self._probes = 0
        acked = 0

        if ack > una:
            data_end = self._snd_buf_seq + len(self._sndbuf)
            cut = (ack if ack < data_end else data_end) - self._snd_buf_seq
            if cut > 0:
                self._sndbuf.drop(cut)
                self._snd_buf_seq += cut
            acked = ack - una
            self._snd_una = ack
            if ack > self._snd_nxt:  # noqa: PLR1730 (min() costs a call per ACK)
                self._snd_nxt = ack
            if self._sacked.ranges:
                self._sacked.prune(ack)
            segs = rec.segs
            if segs:
                if segs[-1].end <= ack and not sacked_before and not rec.lost_bytes:
                    # All delivered, nothing SACKed: RACK learns nothing here
                    # that a later SACK (of later sends) would not teach it.
                    # (Had the peer SACKed later segments, this ACK could be
                    # the hole filled by its original: reordering, which
                    # rec.acked must see, RFC 8985 6.2 step 3.)
                    rec.spare = segs[-1]
                    segs.clear()
                else:
                    rec.acked(ack, now)
            # RTT sample (RFC 7323 section 4 with timestamps, else Karn's timed segment).
            ts = opts.timestamp
            if self._ts_ok and ts is not None and ts[1] != 0:
                delta = (self._ts_now(now) - ts[1]) & SEQ_MASK
                if delta < 0x8000_0000:
                    self._rtt_sample(delta / 1000.0)
            elif self._rtt_seq is not None and ack >= self._rtt_seq:
                self._rtt_sample(now - self._rtt_time)
                self._rtt_seq = None
            self._retries = 0
            self._dupacks = 0
            if rec.tlp_end is not None and ack >= rec.tlp_end:
                self._end_probe_episode(dsack)
            if rec.in_recovery:
                if ack >= rec.recover:
                    # RFC 6937: recovery ends with cwnd at ssthresh.
                    rec.end_recovery()
                    self._cwnd = self._ssthresh
                    self._send_one = False
                elif not self._sack_ok:
                    # RFC 6582 partial acknowledgement: the next hole is lost too.
                    rec.mark_first_lost(mss)
            elif self._cwnd < self._ssthresh:
                # Slow start, while cwnd is below twice the flight before
                # this ACK (Linux's tcp_is_cwnd_limited: an application- or
                # receiver-limited flow must not grow a window it never
                # uses), by the bytes ACKed (at most 64 segments), up to
                # ssthresh (Linux's tcp_slow_start).
                if 2 * (self._snd_max - una) > self._cwnd:
                    cwnd = self._cwnd + (acked if acked < 64 * mss else 64 * mss)
                    self._cwnd = cwnd if cwnd < self._ssthresh else self._ssthresh
            else:
                # Congestion avoidance: the controller's curve. The window
                # limited the sender if the flight before this ACK filled it
                # to within a segment (else an application- or
                # receiver-limited flow would grow a cwnd it never uses).
                self._cwnd = self._cc.grow(
                    self._cwnd, acked, now, self._srtt, self._snd_max - una + mss > self._cwnd
                )
            if self._snd_max > ack:
                self._rto_deadline = now + self._rto
            else:
                self._rto_deadline = None
            fin_seq = self._fin_seq
            if fin_seq is not None and ack > fin_seq:
                st = self._state
                if st is _FIN_WAIT_1:
                    self._state = _FIN_WAIT_2
                    if self._fin_wait_2_timeout is not None:
                        self._finwait2_deadline = now + self._fin_wait_2_timeout
                elif st is _CLOSING:
                    self._enter_time_wait(now)
                elif st is _LAST_ACK:
                    self._enter_closed()
                    return
            if self._send_blocked and (
                self.config.send_buffer - len(self._sndbuf)
                >= self.config.send_buffer * self.config.send_low_water
            ):
                self._send_blocked = False
                self._events.append(_SEND_SPACE)
        elif (
            ack == una
            and plen == 0
            and self._snd_max > una
            and not int(header.flags) & (_I_SYN | _I_FIN)
            and (window == self._snd_wnd or opts.sack_blocks)
        ):
            self._dupacks += 1
            if not self._sack_ok:
                # RFC 6937: without SACK each duplicate ACK stands for one
                # delivered segment; three start NewReno's fast retransmit.
                acked = mss
                if self._dupacks >= 3 and not rec.in_recovery and una >= rec.recover:
                    rec.mark_first_lost(mss)
        elif not rec.lost_bytes and not opts.sack_blocks:
            # Neither new nor duplicate: data riding on an old ACK (the
            # receive path). Loss detection has nothing new to go on.
            if self._snd_wl1 < seq or (self._snd_wl1 == seq and self._snd_wl2 <= ack):
                self._update_window(window, seq, ack)
            return

        if rec.lost_bytes or rec.in_recovery or self._sacked.ranges:
            # Something is (or may be) missing: RACK, then PRR. Skipped on
            # the loss-free path, which is every ACK of a clean transfer.
            lost_before = rec.lost_bytes
            if self._sack_ok:
                self._detect_losses(now)
            if rec.in_recovery or rec.lost_bytes:
                if not rec.in_recovery:
                    self._enter_recovery()
                delivered = acked + self._sacked.sacked - sacked_before
                safe = ack > una and rec.lost_bytes <= lost_before
                self._cwnd = rec.prr_cwnd(
                    delivered, self._pipe(), self._ssthresh, mss, safe_ack=safe
                )

        if self._snd_wl1 < seq or (self._snd_wl1 == seq and self._snd_wl2 <= ack):
            # _update_window inlined: once per ACK.
            self._snd_wnd = window
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            self._max_snd_wnd = max(self._max_snd_wnd, window)
            if window:
                self._persist_deadline = None

    def _update_window(self, window: int, seq: int, ack: int) -> None:
        """RFC 9293 3.10.7.4: SND.WND from a segment newer than the last update."""
        self._snd_wnd = window
        self._snd_wl1 = seq
        self._snd_wl2 = ack
        self._max_snd_wnd = max(self._max_snd_wnd, window)
        if window:
            self._persist_deadline = None

    def _detect_losses(self, now: float) -> None:
        """RACK (RFC 8985 section 6.2), except while a timeout's go-back-N resend runs."""
        if self._snd_nxt < self._snd_max:
            return  # after an RTO everything unSACKed is being resent anyway
        self._rec.detect_losses(now, self._srtt, self._sacked.sacked // self._send_mss)

    def _enter_recovery(self) -> None:
        """Losses were found: the controller lowers ssthresh, PRR paces the repair (RFC 6937)."""
        una = self._snd_una
        flight = self._snd_max - una
        rec = self._rec
        if una >= rec.recover:
            self._ssthresh = self._cc.reduce(flight)
            self._count("fast_retransmit")
        else:
            # Losses of data sent before the last reduction ended (a lost
            # retransmission, say): repair them without halving again, at
            # most one reduction per window (RFC 6675 section 5, RFC 5681).
            self._ssthresh = max(self._ssthresh, self._cwnd)
        rec.start_recovery(flight, self._snd_max)
        # RFC 6937 / Linux: the first retransmission goes out even when PRR
        # would send nothing yet (the fast retransmit).
        self._send_one = True

    def _end_probe_episode(self, dsack: bool) -> None:
        """RFC 8985 section 7.4: the ACK covers the tail loss probe.

        If the probe was a retransmission and no D-SACK says the original
        arrived too, the probe repaired a loss: respond as a fast recovery
        would (unless recovery already did).
        """
        rec = self._rec
        if rec.tlp_retransmitted and not dsack and not rec.in_recovery:
            self._count("tlp_recovery")
            window = max(self._snd_max - self._snd_una, self._cwnd)
            self._ssthresh = self._cc.reduce(window)
            self._cwnd = self._ssthresh
        rec.tlp_end = None

    def _update_scoreboard(
        self, blocks: tuple[tuple[int, int], ...], ack: int, now: float
    ) -> bool:
        """Record SACK blocks; True if the first was a D-SACK.

        RFC 2883 section 4: only the first block can report a duplicate, and
        it does when the segment's ACK covers it or when the second block
        contains it (a duplicate above a hole). A resend was then spurious,
        which RACK answers with a wider reordering window.
        """
        una = self._snd_una
        high = self._snd_max
        rec = self._rec
        dsack = False
        for i, (left_w, right_w) in enumerate(blocks):
            left = unwrap(left_w, una)
            right = unwrap(right_w, una)
            if i == 0 and (right <= ack or _inside_second(left, right, blocks, una)):
                self._count("dsack_block")
                dsack = True
                rec.dsack(una, high)
                continue
            if right <= ack:
                self._count("sack_block_invalid")  # RFC 2018: never below the ACK
                continue
            left = max(left, una)
            if right > high or right <= left:
                self._count("sack_block_invalid")
                continue
            self._sacked.add(left, right)
            rec.sacked(left, right, now)
        return dsack

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 section 2 estimator; a fresh sample also clears the backoff."""
        if r < 0:
            return
        rec = self._rec
        if r < rec.min_rtt:  # noqa: PLR1730 (min() costs a call per ACK)
            rec.min_rtt = r
        if self._srtt is None:
            self._srtt = r
            self._rttvar = r / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - r)
            self._srtt = 0.875 * self._srtt + 0.125 * r
        spread = 4 * self._rttvar
        rto = self._srtt + (spread if spread > _CLOCK_G else _CLOCK_G)
        cfg = self.config
        # min(max(rto, rto_min), rto_max) without the two calls: once per ACK.
        if rto < cfg.rto_min:
            rto = cfg.rto_min
        elif rto > cfg.rto_max:
            rto = cfg.rto_max
        self._rto = rto

    def _ts_now(self, now: float) -> int:
        return (int(now * 1000) + self._ts_offset) & SEQ_MASK

    # -- receiving data ---------------------------------------------------------

    def _receive_text(
        self, seq: int, payload: bytes | bytearray | memoryview, fin: bool, now: float
    ) -> None:
        st = self._state
        if st not in _RECEIVING:
            # CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer already finished.
            if st is _TIME_WAIT and fin:
                self._timewait_deadline = now + self.config.time_wait
            self._count("data_after_fin")
            self._ack_now = True
            return
        rcv_nxt = self._rcv_nxt
        plen = len(payload)
        end = seq + plen
        if seq < rcv_nxt:
            if end <= rcv_nxt:
                if fin and end < rcv_nxt:
                    fin = False
                if plen:
                    self._count("duplicate_data")
                    self._dsack = (seq, end)
                payload = _EMPTY
                self._ack_now = True
                seq = end
            else:
                self._dsack = (seq, rcv_nxt)
                self._ack_now = True
                payload = memoryview(payload)[rcv_nxt - seq :]
                seq = rcv_nxt
        edge = self._rcv_adv
        if end > edge:
            self._count("data_beyond_window")
            keep = edge - seq
            payload = memoryview(payload)[: keep if keep > 0 else 0]
            end = seq + len(payload)
            fin = False
            self._ack_now = True
        if seq == rcv_nxt:
            n = len(payload)
            if n:
                if not self._rcv_unacked:
                    # The first segment our last ACK did not cover (checked
                    # once per ACK, not per segment of a burst).
                    last = self._last_data_time
                    if last is None or now - last > self._rto:
                        # The first data, or data after an idle period longer
                        # than the RTO: ACK the next segments at once, as
                        # Linux's tcp_event_data_recv does (tcp_incr_quickack).
                        self._enter_quickack()
                    self._last_data_time = now
                self._pushed = n < self._rcv_mss
                was_empty = not self._rcvbuf
                self._rcvbuf.append(payload)
                self._rcv_nxt = end
                if n > self._rcv_mss:
                    self._rcv_mss = min(n, self.config.mss)
                if self._ooo.blocks:
                    self._rcv_nxt = self._ooo.drain_into(self._rcvbuf, end)
                    self._ack_now = True
                if was_empty:
                    self._events.append(_READABLE)
                self._rcv_unacked += n
                if (
                    self._rcv_unacked >= 2 * self._rcv_mss
                    or (self._quick and not self._pingpong)
                    or self.config.delayed_ack <= 0
                ):
                    self._ack_now = True
                elif self._delack_deadline is None:
                    self._delack_deadline = now + self.config.delayed_ack
            if fin and self._rcv_nxt == end:
                self._ooo_fin = end
            if self._ooo_fin is not None and self._ooo_fin == self._rcv_nxt:
                self._on_fin(now)
        else:
            if payload:
                refused = self._ooo.insert(seq, payload)
                if refused is not None:
                    self._count(refused)
            if fin:
                self._ooo_fin = end
            self._ack_now = True

    def _enter_quickack(self) -> None:
        """Linux's tcp_incr_quickack: half the window's worth of segments, 2..16."""
        quick = self.config.recv_buffer // (2 * self._rcv_mss)
        quick = 2 if quick < 2 else 16 if quick > 16 else quick
        self._quick = max(self._quick, quick)

    def _on_fin(self, now: float) -> None:
        self._ooo_fin = None
        self._ooo.clear()
        self._rcv_nxt += 1
        self._ack_now = True
        self._peer_finished = True
        self._events.append(_PEER_FINISHED)
        st = self._state
        if st is _ESTABLISHED:
            self._state = _CLOSE_WAIT
        elif st is _FIN_WAIT_1:
            self._state = _CLOSING
        elif st is _FIN_WAIT_2:
            self._enter_time_wait(now)

    # -- receive window ---------------------------------------------------------

    def _window_field(self) -> int:
        """The window field for a segment sent now; moves the advertised right edge.

        The edge moves per receiver SWS avoidance (RFC 9293 3.8.6.2.2): only
        by at least min(RCV.BUFF / 2, MSS), or when the buffer is empty.
        """
        recv_buffer = self.config.recv_buffer
        rcv_nxt = self._rcv_nxt
        rcv_adv = self._rcv_adv
        free = recv_buffer - len(self._rcvbuf)
        new_edge = rcv_nxt + (free if free > 0 else 0)
        if new_edge > rcv_adv:
            half, mss = recv_buffer // 2, self.config.mss
            if new_edge - rcv_adv >= (half if half < mss else mss) or free == recv_buffer:
                rcv_adv = new_edge
        wnd = rcv_adv - rcv_nxt
        if wnd <= 0:
            self._rcv_adv = rcv_adv
            return 0
        shift = self._rcv_wscale
        # Round up so the edge the peer computes never lies left of one we promised.
        field = (wnd + (1 << shift) - 1) >> shift
        if field > 0xFFFF:  # noqa: PLR1730 (min() costs a call per segment)
            field = 0xFFFF
        self._rcv_adv = rcv_nxt + (field << shift)
        return field

    def _maybe_window_update(self) -> None:
        """After a read, reopen a closed or nearly closed window without waiting for data.

        Measured against the largest window the field can carry: without
        window scaling a buffer over 64 KiB can never be advertised whole, and
        a window already at that ceiling has nothing to announce (otherwise
        every read, however small, would cost a pure ACK).
        """
        cfg = self.config
        ceiling = min(0xFFFF << self._rcv_wscale, cfg.recv_buffer)
        advertised = self._rcv_adv - self._rcv_nxt
        free = min(cfg.recv_buffer - len(self._rcvbuf), ceiling)
        threshold = min(cfg.recv_buffer // 2, cfg.mss)
        if advertised < ceiling // 2 and free - advertised >= threshold:
            self._ack_now = True
        elif self._delack_deadline is not None and (
            self._rcv_unacked > self._rcv_mss
            or (self._pushed and not self._pingpong and not self._rcvbuf)
        ):
            # Linux's tcp_cleanup_rbuf: a read that leaves more than a full
            # segment unacknowledged, or that drains the queue after a short
            # segment of non-interactive traffic, ACKs at once rather than
            # leave the peer waiting out the delayed-ACK timer.
            self._ack_now = True

    # -- timers -------------------------------------------------------------------

    def handle_timers(self, now: float) -> None:
        """Run every timer whose deadline is at or before ``now``."""
        if self._timewait_deadline is not None and self._timewait_deadline <= now:
            self._timewait_deadline = None
            self._enter_closed()
            return
        if self._delack_deadline is not None and self._delack_deadline <= now:
            self._delack_deadline = None
            self._ack_now = True
            # The ACK waited in vain for an answer to ride on (Linux's
            # tcp_delack_timer_handler leaves pingpong mode).
            self._pingpong = False
        rec = self._rec
        if rec.timer is not None and rec.timer <= now:
            # Before the RTO: a probe due with it goes out in its place.
            rec.timer = None
            if rec.timer_is_probe:
                self._on_probe_timer(now)
            else:
                self._on_reorder_timer(now)
        if self._rto_deadline is not None and self._rto_deadline <= now:
            self._on_rto(now)
            if self._state is _CLOSED:
                return
        if self._persist_deadline is not None and self._persist_deadline <= now:
            self._on_persist(now)
            if self._state is _CLOSED:
                return
        if self._keepalive_deadline is not None and self._keepalive_deadline <= now:
            self._on_keepalive(now)
            if self._state is _CLOSED:
                return
        if self._finwait2_deadline is not None and self._finwait2_deadline <= now:
            self._count("fin_wait_2_timeout")
            self._time_out()

    def _on_rto(self, now: float) -> None:
        cfg = self.config
        self._retries += 1
        st = self._state
        if st in (_SYN_SENT, _SYN_RECEIVED):
            limit = cfg.syn_retries if st is _SYN_SENT else cfg.syn_ack_retries
            if self._retries > limit:
                self._time_out()
                return
            self._syn_pending = True
        else:
            if self._snd_wnd == 0 and now - self._last_ack_time <= self._rto:
                # The peer shrank its window to zero under data in flight and
                # answered the previous resend: these resends are window
                # probes, which must not time the connection out (MUST-37).
                self._retries -= 1
            elif self._retries > cfg.max_retries:
                self._time_out()
                return
            mss = self._send_mss
            if self._retries == 1:
                self._ssthresh = self._cc.timeout(self._snd_max - self._snd_una)
            self._cwnd = mss
            self._rec.abandon()
            self._rec.recover = self._snd_max
            self._send_one = False
            self._dupacks = 0
            # Keep what the peer SACKed so the go-back-N resend skips it (as
            # Linux does), unless the peer reneged (RFC 2018 section 8): its
            # cumulative ACK stops at SACKed data (Linux's is_reneg in
            # tcp_timeout_mark_lost), or this is a second timeout. Then the
            # scoreboard goes, and the resend starts at the left edge, which
            # it MUST (RFC 2018 section 8) and otherwise would skip.
            ranges = self._sacked.ranges
            if self._retries > 1 or (ranges and ranges[0][0] <= self._snd_una):
                self._sacked.clear()
            self._snd_nxt = self._snd_una
            self._rtt_seq = None
            self._count("rto_retransmit")
        self._rto = min(self._rto * 2, cfg.rto_max)
        self._rto_deadline = now + self._rto

    def _on_reorder_timer(self, now: float) -> None:
        """RFC 8985 section 6.3: the reordering window of an overtaken segment passed."""
        rec = self._rec
        if self._state not in _SENDING:
            return
        self._detect_losses(now)
        if rec.lost_bytes and not rec.in_recovery:
            self._enter_recovery()
            self._cwnd = rec.prr_cwnd(
                0, self._pipe(), self._ssthresh, self._send_mss, safe_ack=False
            )
        # Already in recovery, cwnd stays what PRR set on the last ACK (as
        # Linux's tcp_rack_reo_timeout): what was just marked lost left the
        # pipe, so that room resends it. Recomputed here with nothing
        # delivered, PRR could allow nothing, and with nothing else in
        # flight no ACK would come to allow more: the repair would wait for
        # the RTO.

    def _on_probe_timer(self, now: float) -> None:
        """RFC 8985 section 7.3: send a tail loss probe.

        New data if the peer's window takes it, else the last segment again;
        either way one segment goes out whatever cwnd says, and only one
        probe is outstanding at a time. The RTO restarts from the probe.
        """
        rec = self._rec
        if self._state not in _SENDING or self._snd_max == self._snd_una or rec.in_recovery:
            return
        rto_at = self._rto_deadline
        one = self._snd_max - self._snd_una <= self._send_mss
        if not rec.probe_due(now, self._srtt, one, now + self._rto if rto_at is None else rto_at):
            return  # sends or ACKs since it was armed moved it later
        data_end = self._snd_buf_seq + len(self._sndbuf)
        nxt = self._snd_nxt
        if nxt < data_end and nxt < self._snd_una + self._snd_wnd:
            rec.tlp_retransmitted = False
        elif rec.segs:
            last = rec.segs[-1]
            # The record's last segment: its whole segments from the start,
            # then the rest (a short one, FIN included), as Linux's
            # tcp_send_loss_probe cuts (pcount - 1) * mss off the skb.
            payload = (last.end if last.end < data_end else data_end) - last.start
            at = last.start + (payload - 1) // self._send_mss * self._send_mss
            if at > last.start:
                rec.split(last, at)
                last = rec.segs[-1]
            rec.mark_lost(last)
            rec.tlp_retransmitted = True
        else:
            return
        self._count("tlp_probe")
        self._send_one = True  # _emit_data sends it and records TLP.end_seq
        self._rto_deadline = now + self._rto

    def _on_persist(self, now: float) -> None:
        self._probes += 1
        if self._probes > self.config.max_retries:
            self._time_out()
            return
        self._count("window_probe")
        self._control.append((self._probe_segment(now), _EMPTY))
        # The backoff keeps growing while the window stays shut, answered or
        # not (SHLD-30); only unanswered probes count toward the give-up.
        if self._persist_backoff < 16:
            self._persist_backoff += 1
        interval = min(self._rto * (1 << self._persist_backoff), self.config.rto_max)
        self._persist_deadline = now + interval

    def _on_keepalive(self, now: float) -> None:
        cfg = self.config
        st = self._state
        if st not in (_ESTABLISHED, _CLOSE_WAIT) or self._snd_max != self._snd_una:
            self._keepalive_deadline = now + (cfg.keepalive or cfg.keepalive_interval)
            return
        if self._ka_probes >= cfg.keepalive_probes:
            self._time_out()
            return
        self._ka_probes += 1
        self._count("keepalive_probe")
        self._control.append((self._probe_segment(now), _EMPTY))
        self._keepalive_deadline = now + cfg.keepalive_interval

    def _probe_segment(self, now: float) -> TcpHeader:
        # SEG.SEQ = SND.UNA - 1 is outside the peer's window, which makes it
        # answer with an ACK carrying its current window (as Linux probes).
        return self._header(self._snd_una - 1, _ACK, now, self._window_field(), sack=False)

    def _time_out(self) -> None:
        self._count("timeout")
        if self._state not in (_SYN_SENT,):
            self._queue_reset()
        self._events.append(ConnectionReset(ResetReason.TIMEOUT))
        self._sndbuf.clear()
        self._enter_closed()

    def _enter_time_wait(self, now: float) -> None:
        self._state = _TIME_WAIT
        self._finwait2_deadline = None
        self._rto_deadline = None
        self._persist_deadline = None
        self._keepalive_deadline = None
        self._timewait_deadline = now + self.config.time_wait

    def _enter_closed(self) -> None:
        self._state = _CLOSED
        self._rto_deadline = None
        self._delack_deadline = None
        self._persist_deadline = None
        self._keepalive_deadline = None
        self._timewait_deadline = None
        self._finwait2_deadline = None
        self._ack_now = False
        self._syn_pending = False
        self._ooo.clear()
        self._sacked.clear()
        self._rec.clear()
        self._events.append(_CLOSED_EVENT)

    # -- output -------------------------------------------------------------------

    def _header(
        self,
        seq: int,
        flags: TcpFlags,
        now: float,
        window: int,
        *,
        sack: bool,
        urgent: int = 0,
    ) -> TcpHeader:
        """A non-SYN header; ``window`` is the field from ``_window_field()``."""
        with_sack = sack and self._sack_ok and (self._ooo.blocks or self._dsack is not None)
        if self._ts_ok:
            stamp = (self._ts_now(now), self._ts_recent or 0)
            if with_sack:
                opts = TcpOptions(sack_blocks=self._sack_blocks(3), timestamp=stamp)
            else:
                # Segments of one burst share a timestamp: reuse its options.
                opts = self._ts_opts
                if opts.timestamp != stamp:
                    opts = self._ts_opts = make_tcp_options(None, None, False, (), stamp)
        elif with_sack:
            opts = TcpOptions(sack_blocks=self._sack_blocks(4))
        else:
            opts = NO_OPTIONS
        return make_tcp_header(
            self.local_port,
            self.remote_port,
            seq & SEQ_MASK,
            self._rcv_nxt & SEQ_MASK,
            flags,
            window,
            urgent,
            opts,
        )

    def _sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """The SACK option: a D-SACK block first if a duplicate arrived, then the queue's."""
        dsack = self._dsack
        if dsack is None:
            return self._ooo.sack_blocks(limit)
        return ((dsack[0] & SEQ_MASK, dsack[1] & SEQ_MASK), *self._ooo.sack_blocks(limit - 1))

    def _syn_segment(self, now: float) -> Segment:
        # Built with the positional constructors (see trionet.wire._construct):
        # once per connection, but a frozen dataclass's __init__ costs as much
        # as the rest of the SYN-ACK.
        cfg = self.config
        if self._state is _SYN_SENT:
            opts = make_tcp_options(
                cfg.mss,
                self._rcv_wscale if cfg.window_scaling else None,
                cfg.sack,
                (),
                (self._ts_now(now), 0) if cfg.timestamps else None,
            )
            ack, flags = 0, _SYN
        else:
            opts = make_tcp_options(
                cfg.mss,
                self._rcv_wscale if self._ws_ok else None,
                self._sack_ok,
                (),
                (self._ts_now(now), self._ts_recent or 0) if self._ts_ok else None,
            )
            ack, flags = self._rcv_nxt & SEQ_MASK, _SYN_ACK
        window = cfg.recv_buffer if cfg.recv_buffer < 0xFFFF else 0xFFFF
        hdr = make_tcp_header(
            self.local_port, self.remote_port, self._iss, ack, flags, window, 0, opts
        )
        return hdr, _EMPTY

    def segments_to_send(self, now: float) -> list[Segment]:
        """Everything to transmit now, in order. Call after every input or timer."""
        out = self._control
        self._control = []
        st = self._state
        if st is _CLOSED or st is _LISTEN:
            return out
        if st is _SYN_SENT or st is _SYN_RECEIVED:
            if self._syn_pending:
                self._syn_pending = False
                out.append(self._syn_segment(now))
                if self._rto_deadline is None:
                    self._rto_deadline = now + self._rto
                if self._retries == 0 and self._rtt_seq is None:
                    self._rtt_seq = self._iss + 1
                    self._rtt_time = now
                elif self._retries:
                    self._rtt_seq = None
            elif self._ack_now and st is _SYN_RECEIVED:
                self._ack_now = False
                out.append(self._syn_segment(now))
            return out
        # Nothing received changes while we emit, so one window serves the burst.
        window = self._window_field()
        sent = self._emit_data(now, out, window) if st in _SENDING else False
        if self._ack_now and (not sent or self._ooo.blocks):
            # SND.MAX, not SND.NXT: after a timeout SND.NXT moves back, and an
            # ACK numbered below the peer's RCV.NXT would be dropped.
            out.append((self._header(self._snd_max, _ACK, now, window, sack=True), _EMPTY))
            sent = True
        if sent:
            self._dsack = None
            if self._quick and self._rcv_nxt > self._last_ack_sent:
                self._quick -= 1
            self._ack_now = False
            self._delack_deadline = None
            self._rcv_unacked = 0
            self._last_ack_sent = self._rcv_nxt
        rec = self._rec
        if (
            rec.timer is None
            and self._snd_max > self._snd_una
            and self._sack_ok
            and rec.tlp_end is None
            and not rec.in_recovery
            and self._snd_una >= rec.recover  # nor after an RTO (Linux's CA_Loss)
            and not rec.lost_bytes
            and self._snd_nxt == self._snd_max
            and self._state in _SENDING
        ):
            # RFC 8985 7.2: a tail loss probe 2 SRTT after the last send or
            # ACK, so a lost tail costs about two round trips, not an RTO.
            rto_at = self._rto_deadline
            rec.arm_probe(
                now,
                self._srtt,
                self._snd_max - self._snd_una <= self._send_mss,
                now + self._rto if rto_at is None else rto_at,
            )
        # The persist timer: armed while queued data waits on a closed window
        # with nothing in flight to draw the ACK that would reopen it.
        if (
            self._state in _SENDING
            and self._snd_max == self._snd_una
            and (
                self._snd_buf_seq + len(self._sndbuf) > self._snd_nxt
                or (self._fin_queued and self._fin_seq is None)
            )
            and self._snd_una + self._snd_wnd <= self._snd_nxt
        ):
            if self._persist_deadline is None:
                self._persist_deadline = now + self._rto
        else:
            self._persist_deadline = None
            self._persist_backoff = 0
            self._probes = 0
        return out

    def _pipe(self) -> int:
        """RFC 6675 estimate of bytes in the network: sent, not SACKed, not deemed lost."""
        if self._snd_nxt < self._snd_max and self._sacked:
            # Resending after a timeout: only what lies below SND.NXT is out.
            pipe = self._sacked.unsacked_between(self._snd_una, self._snd_nxt)
        else:
            pipe = self._snd_nxt - self._snd_una - self._sacked.sacked - self._rec.lost_bytes
        return pipe if pipe > 0 else 0

    def _emit_data(self, now: float, out: list[Segment], window: int) -> bool:
        sent = False
        rec = self._rec
        data_end = self._snd_buf_seq + len(self._sndbuf)
        nxt = self._snd_nxt
        if not rec.lost_queue and (nxt > data_end or (nxt == data_end and not self._fin_queued)):
            return False  # everything queued is out, FIN included: the usual case
        if self._snd_una == self._snd_max and (
            self._cwnd >= self._ssthresh or now - self._last_send > self._rto
        ):
            self._resume_after_idle(now)  # (not called on a request/response's usual path)
        cap = self._seg_cap
        mss = self._send_mss
        while True:
            if rec.in_recovery or self._sacked.ranges or rec.lost_bytes:
                room = self._cwnd - self._pipe()
            else:
                room = self._cwnd - (self._snd_nxt - self._snd_una)
            if 0 < self._dupacks < 3 and not rec.in_recovery:
                # Limited transmit (RFC 3042): up to two new segments beyond
                # cwnd on the first duplicate ACKs, so a small window can still
                # collect the three duplicates that trigger fast retransmit.
                room += self._dupacks * mss
            if rec.lost_queue and (lost := rec.first_lost()) is not None:
                # What RACK (or NewReno, or a tail probe) deemed lost goes first.
                size = lost.end - lost.start
                if room <= 0 and not self._send_one:
                    break
                # PRR counts bytes; a segment goes once it allows any (Linux
                # counts whole segments, rounding the same way).
                room = room if room > mss else mss
                if size > cap or (size > room > 0 and not self._send_one):
                    # Send what fits (in whole segments) and keep the rest lost.
                    part = cap if size > cap else max(room - room % mss, mss)
                    if part < size:
                        rec.split(lost, lost.start + part)
                self._count("segment_retransmitted")
                self._transmit(
                    lost.start, lost.end, data_end, now, out, window=window, retransmit=True
                )
                sent = True
                if self._send_one:
                    self._send_one = False
                    if not rec.in_recovery:
                        self._probe_sent(now)
                continue
            nxt = self._snd_nxt
            stop = data_end
            if nxt < self._snd_max and self._sacked.ranges:
                nxt, stop = self._sacked.skip(nxt, data_end)
                self._snd_nxt = nxt
            if nxt < data_end:
                retransmit = nxt < self._snd_max
                wnd_room = self._snd_una + self._snd_wnd - nxt
                if self._send_one and not rec.in_recovery:
                    room = mss  # a tail loss probe of new data
                n = min(stop - nxt, cap, wnd_room, room)
                if n <= 0:
                    if not (retransmit and nxt == self._snd_una and wnd_room <= 0):
                        break
                    # The peer shrank its window under data in flight: the
                    # timeout's resend of the first segment doubles as a
                    # window probe (MAY-7 allows data past the window; Linux
                    # does the same).
                    n = min(stop - nxt, mss)
                if (
                    n < mss
                    and n < data_end - nxt
                    and not retransmit
                    and not self._send_one
                    and nxt > self._snd_una
                    and (self.config.nagle or n < self._max_snd_wnd // 2)
                ):
                    # Sender SWS avoidance (RFC 9293 3.8.6.2.1): with data in
                    # flight, wait for a full segment or half the largest window.
                    break
                if self.config.nagle and n < mss and nxt > self._snd_una and not self._send_one:
                    break
                if retransmit:
                    self._count("segment_retransmitted")
                self._transmit(
                    nxt, nxt + n, data_end, now, out, window=window, retransmit=retransmit
                )
                sent = True
                if self._send_one:
                    self._send_one = False
                    if not rec.in_recovery:
                        self._probe_sent(now)
                        break
                if self._snd_nxt >= data_end and not self._fin_queued and not rec.in_recovery:
                    break  # all queued data is out: the next pass would find just that
                continue
            if (
                self._fin_queued
                and nxt == data_end
                and (nxt < self._snd_una + self._snd_wnd or self._fin_seq is not None)
            ):
                # A first FIN takes sequence space: like data, it waits for
                # the peer's window (the persist timer probes meanwhile).
                self._transmit(
                    nxt,
                    nxt,
                    data_end,
                    now,
                    out,
                    window=window,
                    retransmit=self._fin_seq is not None,
                )
                sent = True
            break
        if sent:
            self._last_send = now
        if self._snd_max > rec.high:
            rec.on_transmit(rec.high, self._snd_max, now)
            last = self._last_data_time
            if last is not None and now - last < self.config.delayed_ack:
                # An answer within the delayed-ACK time: interactive traffic,
                # whose ACKs should wait to ride on the answers (Linux's
                # tcp_event_data_sent enters pingpong mode).
                self._pingpong = True
        return sent

    def _resume_after_idle(self, now: float) -> None:
        """Data goes out with nothing in flight: the sender was idle since its last send.

        RFC 9438 5.8 keeps the pause out of CUBIC's clock. RFC 5681 4.1: after
        more than an RTO without sending, the path's state is unknown, and
        the sender SHOULD restart from no more than the initial window. As
        Linux's tcp_cwnd_restart: cwnd halves per RTO of silence, down to
        the initial window, and ssthresh keeps 3/4 of the old cwnd so slow
        start soon brings it back.
        """
        cwnd = self._cwnd
        if cwnd >= self._ssthresh:
            self._cc.restart(now)
        idle = now - self._last_send
        rto = self._rto
        restart = self._initial_window
        if idle <= rto or cwnd <= restart:
            return
        self._ssthresh = max(self._ssthresh, cwnd * 3 // 4)
        while idle > rto and cwnd > restart:
            idle -= rto
            cwnd >>= 1
        self._cwnd = cwnd if cwnd > restart else restart
        self._count("cwnd_restart")

    def _probe_sent(self, now: float) -> None:
        """A tail loss probe is out: one at a time, and the RTO restarts from it (RFC 8985 7.3)."""
        self._rec.tlp_end = self._snd_max
        self._rto_deadline = now + self._rto

    def _transmit(
        self,
        start: int,
        end: int,
        data_end: int,
        now: float,
        out: list[Segment],
        *,
        window: int,
        retransmit: bool,
    ) -> int:
        """Emit [start, end) of the stream (plus FIN at ``data_end`` if closing).

        Returns the sequence number after the segment (FIN included).
        """
        fin = False
        if end >= data_end:
            end = data_end
            fin = self._fin_queued
        base = self._snd_buf_seq
        sndbuf = self._sndbuf
        payload = (
            sndbuf.view(start - base, end - base)
            if self.config.segment_views
            else sndbuf.copy(start - base, end - base)
        )
        if fin:
            flags = _FIN_PSH_ACK if end > start else _FIN_ACK
            self._fin_seq = data_end
        else:
            flags = _ACK_PSH if end == data_end and end > start else _ACK
        urgent = 0
        if self._snd_up > start:
            # The pointer names the first octet after the urgent data (MUST-62);
            # beyond 16 bits it is capped, as the rest is not in this segment.
            flags |= TcpFlags.URG
            urgent = min(self._snd_up - start, 0xFFFF)
        out.append((self._header(start, flags, now, window, sack=False, urgent=urgent), payload))
        seq_end = end + 1 if fin else end
        if start == self._snd_nxt:
            # New data, or the go-back-N resend after a timeout; a repair of
            # a lost segment below SND.NXT leaves SND.NXT alone.
            self._snd_nxt = seq_end
        rec = self._rec
        if retransmit:
            rec.on_transmit(start, seq_end, now)
        # (New data is recorded once per burst, at the end of _emit_data.)
        if rec.in_recovery:
            rec.prr_out += seq_end - start
        if seq_end > self._snd_max:
            if self._rtt_seq is None and not retransmit:
                self._rtt_seq = seq_end
                self._rtt_time = now
            self._snd_max = seq_end
        if retransmit:
            self._rtt_seq = None
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rto
        return seq_end

    def __repr__(self) -> str:
        return (
            f"<TcpConnection {self.local_port}->{self.remote_port} {self._state.value}"
            f" una={self._snd_una} nxt={self._snd_nxt} rcv_nxt={self._rcv_nxt}>"
        )


def _inside_second(left: int, right: int, blocks: tuple[tuple[int, int], ...], una: int) -> bool:
    """Does the second SACK block contain ``left..right`` (RFC 2883's second D-SACK form)?"""
    if len(blocks) < 2 or right <= left:
        return False
    outer_left, outer_right = blocks[1]
    return unwrap(outer_left, una) <= left and right <= unwrap(outer_right, una)
