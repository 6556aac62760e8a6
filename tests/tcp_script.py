"""A scripted peer for transcript-style TCP tests.

The test plays the remote endpoint by hand: it builds each segment the peer
would send, feeds it to the machine, and compares what comes out, formatted
like tcpdump (``[S.] seq 5000 ack 1001 win 65535 len 0``), against the
expected transcript.
"""

from __future__ import annotations

from trionet.tcp import TcpConfig, TcpConnection, TcpEvent, TcpState
from trionet.tcp.connection import Segment
from trionet.wire.tcp import NO_OPTIONS, TcpFlags, TcpHeader, TcpOptions

MASK = 0xFFFF_FFFF
LOCAL_PORT = 80
PEER_PORT = 40000
PEER_ISS = 1000
OUR_ISS = 5000

#: A configuration without timestamps or scaling, so transcripts stay short.
PLAIN = TcpConfig(
    window_scaling=False,
    timestamps=False,
    sack=False,
    recv_buffer=65535,
    send_buffer=65535,
    time_wait=60.0,
    delayed_ack=0.04,
)


def flag_text(flags: TcpFlags) -> str:
    text = ""
    for bit, ch in (
        (TcpFlags.SYN, "S"),
        (TcpFlags.FIN, "F"),
        (TcpFlags.RST, "R"),
        (TcpFlags.PSH, "P"),
    ):
        if flags & bit:
            text += ch
    if flags & TcpFlags.ACK:
        text += "."
    return f"[{text}]"


def fmt(segment: Segment) -> str:
    header, payload = segment
    line = (
        f"{flag_text(header.flags)} seq {header.seq} ack {header.ack}"
        f" win {header.window} len {len(payload)}"
    )
    if header.options.sack_blocks:
        line += " sack " + ",".join(f"{a}-{b}" for a, b in header.options.sack_blocks)
    return line


class Script:
    """The remote end of one connection, driven by the test."""

    def __init__(self, conn: TcpConnection, *, seq: int, ack: int = 0, now: float = 0.0) -> None:
        self.conn = conn
        #: The peer's SND.NXT and RCV.NXT as wire numbers.
        self.seq = seq & MASK
        self.ack = ack & MASK
        self.now = now
        self.window = 65535
        self.tsval: int | None = None

    def feed(
        self,
        flags: TcpFlags,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        options: TcpOptions | None = None,
        advance: bool = True,
    ) -> None:
        """Deliver one segment from the peer; by default it continues the peer's sequence."""
        use_seq = self.seq if seq is None else seq & MASK
        if options is None:
            options = (
                TcpOptions(timestamp=(self.tsval, 0)) if self.tsval is not None else NO_OPTIONS
            )
        header = TcpHeader(
            PEER_PORT,
            LOCAL_PORT,
            use_seq,
            (self.ack if ack is None else ack) & MASK,
            flags,
            self.window if window is None else window,
            0,
            options,
        )
        self.conn.receive_segment(header, payload, self.now)
        if advance and seq is None:
            n = (
                len(payload)
                + (1 if flags & TcpFlags.SYN else 0)
                + (1 if flags & TcpFlags.FIN else 0)
            )
            self.seq = (self.seq + n) & MASK

    def out(self) -> list[str]:
        return [fmt(s) for s in self.conn.segments_to_send(self.now)]

    def raw(self) -> list[Segment]:
        return self.conn.segments_to_send(self.now)

    def tick(self, to: float) -> None:
        """Advance the clock to ``to`` and run the timers due."""
        self.now = to
        deadline = self.conn.next_deadline()
        if deadline is not None and deadline <= to:
            self.conn.handle_timers(to)

    def events(self) -> list[TcpEvent]:
        result = []
        while (ev := self.conn.next_event()) is not None:
            result.append(ev)
        return result


def syn(
    *,
    seq: int = PEER_ISS,
    mss: int | None = 1460,
    ws: int | None = None,
    sack: bool = False,
    ts: tuple[int, int] | None = None,
    window: int = 65535,
) -> TcpHeader:
    return TcpHeader(
        PEER_PORT,
        LOCAL_PORT,
        seq,
        0,
        TcpFlags.SYN,
        window,
        0,
        TcpOptions(mss=mss, window_scale=ws, sack_permitted=sack, timestamp=ts),
    )


def accepted(config: TcpConfig = PLAIN, **syn_kwargs: object) -> Script:
    """A connection in SYN-RECEIVED whose SYN-ACK has been taken out."""
    conn = TcpConnection.accept(syn(**syn_kwargs), iss=OUR_ISS, config=config, now=0.0)  # type: ignore[arg-type]
    script = Script(conn, seq=PEER_ISS + 1, ack=OUR_ISS + 1)
    script.raw()
    return script


def established(config: TcpConfig = PLAIN, *, rtt: float = 0.0, **syn_kwargs: object) -> Script:
    """An ESTABLISHED connection (passive side) with its events drained.

    The handshake ACK arrives ``rtt`` after the SYN-ACK (the clock is left
    there): it is the connection's first RTT sample.
    """
    script = accepted(config, **syn_kwargs)
    script.now = rtt
    script.feed(TcpFlags.ACK)
    assert script.conn.state is TcpState.ESTABLISHED
    script.events()
    return script
