"""Per-connection TCP tunables, fixed for the life of a connection."""

from __future__ import annotations

from dataclasses import dataclass

from trionet.tcp.congestion import CONGESTION_CONTROLS

__all__ = ["MAX_SEGMENT_PAYLOAD", "TcpConfig"]

#: Largest payload of one (GSO) segment: 65535 minus the largest TCP header
#: (60) and an IPv4 header (20), so the IP length field can always hold it.
MAX_SEGMENT_PAYLOAD = 65455


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """What a :class:`~trionet.tcp.connection.TcpConnection` may do and how much memory it may use.

    Sizes are bytes, times are seconds. Defaults suit a relay on a local
    virtual link that must still behave on a lossy real path.
    """

    #: Largest TCP payload our link carries in one packet (MTU minus IP and TCP
    #: headers: 1460 for IPv4 and 1440 for IPv6 at MTU 1500). Advertised in the
    #: MSS option and the upper bound of what we send per wire segment.
    mss: int = 1460
    #: Send MSS assumed when the peer's SYN has no MSS option (RFC 9293
    #: MUST-15): 536 for IPv4, 1220 for IPv6.
    default_peer_mss: int = 536
    #: Payload bytes the caller accepts in one emitted segment when the link
    #: does TCP segmentation offload (a virtio-net GSO frame); ``None`` means
    #: every segment fits the peer's MSS. The link re-segments with
    #: ``gso_size = connection.send_mss``.
    max_segment_payload: int | None = None
    #: Data segments from ``segments_to_send`` carry views of the send buffer
    #: instead of copies. A view stays right only until its bytes are
    #: acknowledged and the buffer reuses the space, so an owner that turns
    #: this on must write every segment out before it feeds the connection
    #: ACKs and then more data (trionet's engine does: each flush delivers
    #: the stack's frames before it lets anyone send). Saves a copy and an
    #: allocation per segment, a 64 KiB one for a super-segment.
    segment_views: bool = False
    send_buffer: int = 256 * 1024
    recv_buffer: int = 256 * 1024
    #: Out-of-order data held for reassembly, in bytes (``None``: as much as
    #: the advertised window, which never exceeds ``recv_buffer``) and in
    #: separate blocks (each costs a little bookkeeping and a linear scan).
    ooo_max_bytes: int | None = None
    ooo_max_blocks: int = 128
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    #: Longest a received segment waits for its ACK (RFC 9293 MUST-40: < 0.5 s).
    delayed_ack: float = 0.04
    #: Nagle's algorithm (RFC 9293 3.7.4). Off: a relay must not hold back
    #: the last small piece of what the other side wrote.
    nagle: bool = False
    #: Idle time before keep-alive probes start; ``None`` (the default, as
    #: MUST-25 requires) sends none.
    keepalive: float | None = None
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9
    #: RFC 6298 retransmission timer bounds. RFC 6298 recommends a 1 s floor;
    #: Linux uses 0.2 s, which a caller on a fast path may prefer.
    rto_initial: float = 1.0
    rto_min: float = 1.0
    rto_max: float = 60.0
    #: Retransmissions of one segment before the connection is reset (R2).
    max_retries: int = 15
    #: SYN / SYN-ACK retransmissions before giving up; 7 makes the SYN give-up
    #: time 255 s with the default timer, above the 3 minutes of MUST-23.
    syn_retries: int = 7
    #: SYN-ACK retransmissions of a passive open before giving up: 5, as
    #: Linux's tcp_synack_retries, gives up 63 s after the first SYN-ACK.
    #: A half-open connection holds a slot and (in trionet) a host
    #: connection, so it must not outlive the kernel's.
    syn_ack_retries: int = 5
    #: Initial congestion window, in segments (RFC 6928).
    initial_cwnd_segments: int = 10
    #: Congestion control: ``"cubic"`` (RFC 9438, as Linux, Windows and
    #: macOS) or ``"reno"`` (RFC 5681 NewReno). Both reduce through PRR
    #: (RFC 6937) and find losses with RACK-TLP (RFC 8985).
    congestion_control: str = "cubic"
    #: TIME-WAIT length (2*MSL); 60 s as Linux, i.e. an MSL of 30 s.
    time_wait: float = 60.0
    #: Reset a connection idle this long in FIN-WAIT-2 (our side finished, the
    #: peer never does). ``None``, as RFC 9293, waits forever; a relay whose
    #: application side is gone may prefer Linux's 60 s for orphans.
    fin_wait_2_timeout: float | None = None
    #: RFC 5961 challenge ACKs allowed per second (token bucket, burst = rate).
    challenge_ack_rate: float = 10.0
    #: ``SendSpaceAvailable`` fires when free send-buffer space rises to this
    #: fraction of ``send_buffer`` after a short ``send()``.
    send_low_water: float = 0.5

    def __post_init__(self) -> None:
        if not 64 <= self.mss <= 65495:
            raise ValueError("mss must be in 64..65495")
        if not 64 <= self.default_peer_mss <= 65495:
            raise ValueError("default_peer_mss must be in 64..65495")
        if self.max_segment_payload is not None and not (
            self.mss <= self.max_segment_payload <= MAX_SEGMENT_PAYLOAD
        ):
            raise ValueError(f"max_segment_payload must be between mss and {MAX_SEGMENT_PAYLOAD}")
        if self.send_buffer < 1 or self.recv_buffer < 1:
            raise ValueError("buffers must be positive")
        if self.recv_buffer > (0xFFFF << 14):
            raise ValueError("recv_buffer exceeds the largest scaled window")
        if not self.window_scaling and self.recv_buffer > 0xFFFF:
            raise ValueError("recv_buffer above 65535 needs window_scaling")
        if (self.ooo_max_bytes is not None and self.ooo_max_bytes < 0) or self.ooo_max_blocks < 0:
            raise ValueError("out-of-order bounds must not be negative")
        if not 0.0 <= self.delayed_ack < 0.5:
            raise ValueError("delayed_ack must be below 0.5 s (RFC 9293 MUST-40)")
        if not 0.0 < self.rto_min <= self.rto_initial <= self.rto_max:
            raise ValueError("need 0 < rto_min <= rto_initial <= rto_max")
        retries = (self.max_retries, self.syn_retries, self.syn_ack_retries)
        if min(retries) < 1 or self.keepalive_probes < 1:
            raise ValueError("retry counts must be at least 1")
        if self.keepalive is not None and self.keepalive <= 0:
            raise ValueError("keepalive must be positive")
        if self.keepalive_interval <= 0:
            raise ValueError("keepalive_interval must be positive")
        if self.initial_cwnd_segments < 1:
            raise ValueError("initial_cwnd_segments must be at least 1")
        if self.congestion_control not in CONGESTION_CONTROLS:
            raise ValueError(f"congestion_control must be one of {', '.join(CONGESTION_CONTROLS)}")
        if self.fin_wait_2_timeout is not None and self.fin_wait_2_timeout <= 0:
            raise ValueError("fin_wait_2_timeout must be positive")
        if self.time_wait < 0:
            raise ValueError("time_wait must not be negative")
        if self.challenge_ack_rate <= 0:
            raise ValueError("challenge_ack_rate must be positive")
        if not 0.0 < self.send_low_water <= 1.0:
            raise ValueError("send_low_water must be in (0, 1]")
