"""Transcript tests of the data path: windows, ACK policy, timers, loss recovery, options."""

from __future__ import annotations

import dataclasses

import pytest

from tests.tcp_script import (
    LOCAL_PORT,
    OUR_ISS,
    PEER_ISS,
    PEER_PORT,
    PLAIN,
    Script,
    accepted,
    established,
    syn,
)
from tests.tcp_sim import LinkParams, Simulation, make_pair
from trionet.tcp import (
    Closed,
    ConnectionReset,
    Readable,
    ResetReason,
    SendSpaceAvailable,
    TcpConfig,
    TcpConnection,
    TcpState,
    UrgentData,
)
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions

F = TcpFlags
S = TcpState
MSS = PLAIN.mss


def seqs(segments: list[tuple[object, bytes]]) -> list[tuple[int, int]]:
    return [(h.seq, len(p)) for h, p in segments]  # type: ignore[attr-defined]


# -- receiving --------------------------------------------------------------


def interactive(s: Script) -> None:
    """Make the exchange interactive: the peer's byte is answered within the ACK delay.

    Linux's pingpong mode: from then on ACKs wait to ride on the answers
    instead of going out at once (quick-ACK).
    """
    s.feed(F.ACK | F.PSH, b"?")
    s.conn.read()
    s.conn.send(b"!")
    s.raw()
    s.feed(F.ACK, ack=(s.ack + 1))
    s.ack += 1
    s.events()


def test_first_data_is_acked_at_once_quick_ack() -> None:
    # Linux's tcp_event_data_recv: the first data of a connection (and data
    # after an idle period) puts the receiver in quick-ACK mode.
    s = established()
    s.feed(F.ACK | F.PSH, b"hello")
    assert s.out() == ["[.] seq 5001 ack 1006 win 65530 len 0"]
    # 16 segments at most (TCP_MAX_QUICKACKS), then the usual delayed ACK.
    for _ in range(15):
        s.feed(F.ACK | F.PSH, b"x")
        assert len(s.out()) == 1
    s.feed(F.ACK | F.PSH, b"x")
    assert s.out() == []
    s.tick(0.04)
    assert len(s.out()) == 1
    # An idle period longer than the RTO (1 s) re-enters it.
    s.now = 5.0
    s.feed(F.ACK | F.PSH, b"again")
    assert s.out() == [f"[.] seq 5001 ack {PEER_ISS + 1 + 5 + 16 + 5} win 65509 len 0"]


def test_in_order_data_is_readable_and_delayed_ack_fires_at_40ms() -> None:
    s = established()
    interactive(s)
    s.feed(F.ACK | F.PSH, b"hello")
    assert s.events() == [Readable()]
    assert s.out() == []  # a single small segment waits for the delayed ACK
    assert s.conn.next_deadline() == pytest.approx(0.04)
    s.tick(0.039)
    assert s.out() == []
    s.tick(0.04)
    assert s.out() == ["[.] seq 5002 ack 1007 win 65530 len 0"]
    assert s.conn.read() == b"hello"
    assert s.conn.readable_bytes == 0


def test_a_read_that_drains_a_short_segment_acks_at_once() -> None:
    # Linux's tcp_cleanup_rbuf: once the delayed ACK gave up on an answer
    # (pingpong left), reading a short segment that empties the queue sends
    # the ACK now rather than at the timer.
    s = established()
    interactive(s)
    s.feed(F.ACK | F.PSH, b"one")
    s.tick(0.04)
    s.raw()  # the delayed ACK fired: not interactive any more
    s.feed(F.ACK | F.PSH, b"two")
    assert s.conn.read() == b"onetwo"
    assert s.out() == ["[.] seq 5002 ack 1008 win 65535 len 0"]


def test_every_second_full_segment_is_acked_at_once() -> None:
    s = established()
    interactive(s)
    s.feed(F.ACK, b"a" * MSS)
    assert s.out() == []
    s.feed(F.ACK, b"b" * MSS)
    assert s.out() == [f"[.] seq 5002 ack {PEER_ISS + 2 + 2 * MSS} win {65535 - 2 * MSS} len 0"]
    assert s.conn.next_deadline() is None


def test_readable_is_edge_triggered() -> None:
    s = established()
    s.feed(F.ACK, b"one")
    s.feed(F.ACK, b"two")
    assert s.events() == [Readable()]
    assert s.conn.read(4) == b"onet"
    assert s.conn.read() == b"wo"
    s.feed(F.ACK, b"three")
    assert s.events() == [Readable()]


def test_segment_left_of_window_is_acked_not_delivered() -> None:
    s = established()
    s.feed(F.ACK, b"fresh")
    s.raw()
    s.feed(F.ACK, b"fresh", seq=PEER_ISS + 1)  # an old duplicate
    assert s.conn.read() == b"fresh"
    assert s.out() == ["[.] seq 5001 ack 1006 win 65535 len 0"]
    assert s.conn.stats["out_of_window"] == 1


def test_overlapping_segment_is_trimmed_on_the_left() -> None:
    s = established()
    s.feed(F.ACK, b"abcdef")
    s.feed(F.ACK, b"defghi", seq=PEER_ISS + 1 + 3)
    assert s.conn.read() == b"abcdefghi"


def test_segment_right_of_window_is_dropped_and_acked() -> None:
    s = established()
    s.feed(F.ACK, b"x", seq=PEER_ISS + 1 + 70_000)
    assert s.conn.readable_bytes == 0
    assert s.out() == ["[.] seq 5001 ack 1001 win 65535 len 0"]
    assert s.conn.stats["out_of_window"] == 1


def test_data_past_the_right_edge_is_trimmed() -> None:
    cfg = dataclasses.replace(PLAIN, recv_buffer=1000)
    s = established(cfg)
    s.feed(F.ACK, b"z" * 1500)
    assert s.conn.readable_bytes == 1000
    assert s.conn.stats["data_beyond_window"] == 1
    assert s.out() == ["[.] seq 5001 ack 2001 win 0 len 0"]


def test_out_of_order_data_is_reassembled_and_acked_immediately() -> None:
    s = established(dataclasses.replace(PLAIN, sack=True), sack=True)
    base = PEER_ISS + 1
    s.feed(F.ACK, b"CCC", seq=base + 6)
    assert s.out() == [f"[.] seq 5001 ack {base} win 65535 len 0 sack {base + 6}-{base + 9}"]
    s.feed(F.ACK, b"BBB", seq=base + 3)
    assert s.out() == [f"[.] seq 5001 ack {base} win 65535 len 0 sack {base + 3}-{base + 9}"]
    s.feed(F.ACK, b"EEE", seq=base + 12)
    # The newest block first, then the others (RFC 2018 section 4).
    blocks = f"{base + 12}-{base + 15},{base + 3}-{base + 9}"
    assert s.out() == [f"[.] seq 5001 ack {base} win 65535 len 0 sack {blocks}"]
    s.feed(F.ACK, b"AAA", seq=base)
    assert s.conn.read() == b"AAABBBCCC"
    assert s.out() == [f"[.] seq 5001 ack {base + 9} win 65535 len 0 sack {base + 12}-{base + 15}"]
    s.feed(F.ACK, b"DDD", seq=base + 9)
    assert s.conn.read() == b"DDDEEE"
    assert s.conn.memory_in_use == 0


def test_overlapping_out_of_order_segments_merge() -> None:
    s = established()
    base = PEER_ISS + 1
    s.feed(F.ACK, b"cdef", seq=base + 2)
    s.feed(F.ACK, b"efgh", seq=base + 4)
    s.feed(F.ACK, b"bc", seq=base + 1)
    s.feed(F.ACK, b"hij", seq=base + 7)
    s.feed(F.ACK, b"de", seq=base + 3)  # entirely held already
    assert s.conn.stats["duplicate_data"] == 1
    s.feed(F.ACK, b"a", seq=base)
    assert s.conn.read() == b"abcdefghij"


def test_out_of_order_memory_is_bounded() -> None:
    cfg = dataclasses.replace(PLAIN, ooo_max_bytes=3000, ooo_max_blocks=4)
    s = established(cfg)
    base = PEER_ISS + 1
    for i in range(10):
        s.feed(F.ACK, b"q" * 500, seq=base + 1000 + 1000 * i)
    assert s.conn.memory_in_use <= 3000
    assert s.conn.stats["ooo_dropped_memory"] == 6
    s.feed(F.ACK, b"r" * 1000, seq=base)
    assert s.conn.read() == b"r" * 1000 + b"q" * 500


def test_zero_receive_window_still_takes_ack_rst_and_fin() -> None:
    cfg = dataclasses.replace(PLAIN, recv_buffer=100)
    s = established(cfg)
    s.conn.send(b"out")
    s.raw()
    s.feed(F.ACK, b"w" * 100)
    s.tick(0.04)
    assert s.out() == ["[.] seq 5004 ack 1101 win 0 len 0"]
    # Data at RCV.NXT cannot be taken, but its ACK is processed (MUST-66).
    s.feed(F.ACK, b"more", ack=OUR_ISS + 4, advance=False)
    assert s.conn.unacked_bytes == 0
    assert s.out() == ["[.] seq 5004 ack 1101 win 0 len 0"]
    s.feed(F.FIN | F.ACK, ack=OUR_ISS + 4)
    assert s.conn.state is S.CLOSE_WAIT


def test_reading_reopens_a_closed_window_at_once() -> None:
    cfg = dataclasses.replace(PLAIN, recv_buffer=4000)
    s = established(cfg)
    s.feed(F.ACK, b"w" * 4000)
    assert s.out() == ["[.] seq 5001 ack 5001 win 0 len 0"]
    s.conn.read(100)  # less than an MSS freed: silly window avoidance stays quiet
    assert s.out() == []
    s.conn.read()
    assert s.out() == ["[.] seq 5001 ack 5001 win 4000 len 0"]


def test_reading_at_the_unscaled_ceiling_sends_no_window_update() -> None:
    # Unscaled (the peer offered no scaling) a 256 KiB buffer is advertised as 65535 at most:
    # reading a byte cannot open the window further, so it owes no pure ACK;
    # the delayed ACK (or the answer) carries the acknowledgement.
    cfg = dataclasses.replace(PLAIN, window_scaling=True, recv_buffer=256 * 1024)
    s = established(cfg)
    interactive(s)
    s.feed(F.ACK | F.PSH, b"q")
    assert s.out() == []
    assert s.conn.read() == b"q"
    assert s.out() == []
    s.tick(0.04)
    assert s.out() == ["[.] seq 5002 ack 1003 win 65535 len 0"]
    # A window really closed below half the ceiling still reopens at once.
    for _ in range(4):
        s.feed(F.ACK, b"w" * 60_000)
        s.out()
    assert s.conn.readable_bytes == 240_000
    assert s.conn.read() == b"w" * 240_000
    assert s.out() == ["[.] seq 5002 ack 241003 win 65535 len 0"]


def test_receiver_sws_avoidance_keeps_the_right_edge() -> None:
    cfg = dataclasses.replace(PLAIN, recv_buffer=10_000)
    s = established(cfg)
    s.feed(F.ACK, b"a" * 3000)
    assert s.out() == ["[.] seq 5001 ack 4001 win 7000 len 0"]
    s.conn.read(1000)  # 1000 bytes freed < MSS: the window is not reopened by it
    s.feed(F.ACK, b"b" * 3000)
    assert s.out() == ["[.] seq 5001 ack 7001 win 4000 len 0"]
    s.conn.read(2000)  # 3000 freed in total >= MSS: now the edge moves
    s.feed(F.ACK, b"c" * 3000)
    assert s.out() == ["[.] seq 5001 ack 10001 win 4000 len 0"]


# -- sending ------------------------------------------------------------------


def test_send_is_segmented_to_the_peer_mss() -> None:
    s = established(mss=536)
    s.conn.send(b"m" * 1200)
    assert s.out() == [
        "[.] seq 5001 ack 1001 win 65535 len 536",
        "[.] seq 5537 ack 1001 win 65535 len 536",
        "[P.] seq 6073 ack 1001 win 65535 len 128",
    ]


def test_missing_mss_option_means_default_send_mss() -> None:
    s = established(mss=None)
    assert s.conn.send_mss == 536
    v6 = established(dataclasses.replace(PLAIN, default_peer_mss=1220), mss=None)
    assert v6.conn.send_mss == 1220


def test_mss_is_clamped_to_our_link() -> None:
    s = established(dataclasses.replace(PLAIN, mss=1000), mss=9000)
    assert s.conn.send_mss == 1000


def test_super_segments_for_segmentation_offload() -> None:
    cfg = dataclasses.replace(
        PLAIN, max_segment_payload=65000, initial_cwnd_segments=100, send_buffer=200_000
    )
    s = established(cfg, mss=1460)
    s.window = 65535
    s.conn.send(b"g" * 100_000)
    out = s.raw()
    # A multiple of the peer's MSS, so the link's segmentation yields full
    # segments; the 1295 bytes left in the window wait (sender SWS avoidance).
    assert [len(p) for _, p in out] == [44 * 1460]
    assert s.conn.send_mss == 1460


def test_send_back_pressure_and_send_space_available() -> None:
    cfg = dataclasses.replace(PLAIN, send_buffer=10_000)
    s = established(cfg)
    assert s.conn.send(b"x" * 25_000) == 10_000
    assert s.conn.send_space == 0
    assert s.conn.send(b"y") == 0
    out = s.raw()
    sent = sum(len(p) for _, p in out)
    s.feed(F.ACK, ack=OUR_ISS + 1 + 4000)
    assert s.events() == []  # 4000 free is below the 50 % low-water mark
    s.feed(F.ACK, ack=OUR_ISS + 1 + sent)
    assert s.events() == [SendSpaceAvailable()]
    assert s.conn.send_space == 10_000 - (10_000 - sent)


def test_sender_sws_avoidance_waits_for_a_useful_window() -> None:
    s = established()
    s.feed(F.ACK, window=1500)
    s.conn.send(b"p" * 3000)
    # The 40 bytes the window has left after a full segment are not worth sending.
    assert s.out() == ["[.] seq 5001 ack 1001 win 65535 len 1460"]
    s.feed(F.ACK, ack=OUR_ISS + 1 + 1460, window=1500)
    assert s.out() == ["[.] seq 6461 ack 1001 win 65535 len 1460"]
    # The rest fits entirely: a short segment is fine when it ends the data.
    s.feed(F.ACK, ack=OUR_ISS + 1 + 2920, window=1500)
    assert s.out() == ["[P.] seq 7921 ack 1001 win 65535 len 80"]


def test_nagle_when_enabled_holds_small_segments_while_data_is_unacked() -> None:
    s = established(dataclasses.replace(PLAIN, nagle=True))
    s.conn.send(b"a")
    assert s.out() == ["[P.] seq 5001 ack 1001 win 65535 len 1"]
    s.conn.send(b"b")
    assert s.out() == []
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.out() == ["[P.] seq 5002 ack 1001 win 65535 len 1"]


def test_nagle_off_by_default_sends_small_writes_at_once() -> None:
    s = established()
    s.conn.send(b"a")
    s.conn.segments_to_send(0.0)
    s.conn.send(b"b")
    assert s.out() == ["[P.] seq 5002 ack 1001 win 65535 len 1"]


# -- retransmission -------------------------------------------------------------


def test_rto_backoff_and_retry_limit_end_in_reset() -> None:
    cfg = dataclasses.replace(PLAIN, max_retries=4)
    s = established(cfg)
    s.conn.send(b"lost")
    assert s.out() == ["[P.] seq 5001 ack 1001 win 65535 len 4"]
    times = []
    while s.conn.state is S.ESTABLISHED:
        deadline = s.conn.next_deadline()
        assert deadline is not None
        times.append(deadline)
        s.tick(deadline)
        out = s.out()
        if s.conn.state is S.ESTABLISHED:
            assert out == ["[P.] seq 5001 ack 1001 win 65535 len 4"]
        else:
            assert out == ["[R.] seq 5005 ack 1001 win 0 len 0"]
    # 1 s initial RTO, doubled each time (RFC 6298 5.5).
    assert times == [1.0, 3.0, 7.0, 15.0, 31.0]
    assert s.events() == [ConnectionReset(ResetReason.TIMEOUT), Closed()]
    assert s.conn.next_deadline() is None


def test_rto_is_capped_at_rto_max() -> None:
    cfg = dataclasses.replace(PLAIN, rto_max=4.0, max_retries=6)
    s = established(cfg)
    s.conn.send(b"lost")
    s.raw()
    times = []
    while s.conn.state is S.ESTABLISHED:
        deadline = s.conn.next_deadline()
        assert deadline is not None
        times.append(deadline)
        s.tick(deadline)
        s.raw()
    assert times == [1.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0]


def test_syn_retransmission_and_give_up() -> None:
    cfg = dataclasses.replace(PLAIN, syn_retries=3)
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=cfg, now=0.0)
    s = Script(conn, seq=PEER_ISS)
    assert s.out() == ["[S] seq 5000 ack 0 win 65535 len 0"]
    for at in (1.0, 3.0, 7.0):
        assert conn.next_deadline() == at
        s.tick(at)
        assert s.out() == ["[S] seq 5000 ack 0 win 65535 len 0"]
    s.tick(15.0)
    assert conn.state is S.CLOSED
    assert s.out() == []  # nothing to reset: the peer never answered
    assert s.events() == [ConnectionReset(ResetReason.TIMEOUT), Closed()]


def test_syn_ack_retransmission() -> None:
    s = accepted()
    s.tick(1.0)
    assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]
    assert s.conn.next_deadline() == 3.0


def test_rto_is_three_seconds_after_a_lost_syn_or_syn_ack() -> None:
    # RFC 6298 5.7: the timer expired awaiting the ACK of a SYN (or
    # SYN-ACK) and no RTT could be measured (Karn): when data transmission
    # begins, an RTO below 3 s MUST be re-initialized to 3 s (as Linux's
    # TCP_TIMEOUT_FALLBACK), so a path slower than the 1 s guess does not
    # draw a spurious timeout on every first flight.
    s = accepted()
    s.tick(1.0)
    assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]
    s.now = 1.1
    s.feed(F.ACK)
    assert s.conn.state is S.ESTABLISHED and s.conn.srtt is None
    assert s.conn.rto == 3.0
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    c = Script(conn, seq=PEER_ISS)
    c.raw()
    c.tick(1.0)
    assert len(c.raw()) == 1  # the SYN again; the RTO doubled to 2 s
    c.now = 1.1
    conn.receive_segment(
        TcpHeader(PEER_PORT, LOCAL_PORT, PEER_ISS, OUR_ISS + 1, F.SYN | F.ACK, 65535),
        b"",
        c.now,
    )
    assert conn.state is S.ESTABLISHED and conn.srtt is None
    assert conn.rto == 3.0
    # Measured, the handshake's round trip sets it as usual.
    assert established(rtt=0.1).conn.rto == 1.0


def test_rtt_measurement_sets_rto() -> None:
    # The SYN-ACK's round trip is the first sample (as Linux measures it).
    s = established(rtt=0.3)
    assert s.conn.srtt == pytest.approx(0.3)
    # RTO = SRTT + 4 * RTTVAR = 0.3 + 4 * 0.15 = 0.9, floored at rto_min = 1 s.
    assert s.conn.rto == pytest.approx(1.0)
    fast = established(dataclasses.replace(PLAIN, rto_min=0.2), rtt=0.1)
    assert fast.conn.rto == pytest.approx(0.3)
    # A data sample moves it by RFC 6298's gains.
    fast.conn.send(b"t")
    fast.raw()
    fast.now = 0.3
    fast.feed(F.ACK, ack=OUR_ISS + 2)
    assert fast.conn.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)


def test_karn_no_rtt_sample_from_retransmitted_segment() -> None:
    s = established(dataclasses.replace(PLAIN, sack=True), rtt=0.3, sack=True)
    s.conn.send(b"k")
    s.raw()
    s.tick(s.conn.next_deadline() or 0.0)  # the tail loss probe resends it
    assert len(s.raw()) == 1
    s.tick(s.conn.next_deadline() or 0.0)  # then the RTO
    assert len(s.raw()) == 1
    rto = s.conn.rto
    s.now += 0.1
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.srtt == pytest.approx(0.3)  # no sample from the resent segment
    assert s.conn.rto == pytest.approx(rto)  # the backed-off value is kept
    # No SYN-ACK sample after a resent SYN-ACK either.
    t = accepted()
    t.tick(1.0)
    t.raw()
    t.now = 1.1
    t.feed(F.ACK)
    assert t.conn.srtt is None


def test_zero_window_probes_back_off_and_never_give_up_while_answered() -> None:
    cfg = dataclasses.replace(PLAIN, max_retries=3)
    s = established(cfg)
    s.window = 0
    s.feed(F.ACK)
    s.conn.send(b"blocked")
    assert s.out() == []
    probe = "[.] seq 5000 ack 1001 win 65535 len 0"  # SND.UNA - 1: elicits an ACK
    intervals = []
    last = s.now
    for _ in range(8):  # more probes than max_retries: answered probes never time out
        deadline = s.conn.next_deadline()
        assert deadline is not None
        intervals.append(deadline - last)
        last = deadline
        s.tick(deadline)
        assert s.out() == [probe]
        s.feed(F.ACK)  # still zero
    assert s.conn.state is S.ESTABLISHED
    assert intervals[:4] == [1.0, 2.0, 4.0, 8.0]
    s.window = 1000
    s.feed(F.ACK)
    assert s.out() == ["[P.] seq 5001 ack 1001 win 65535 len 7"]


def test_unanswered_zero_window_probes_time_out() -> None:
    cfg = dataclasses.replace(PLAIN, max_retries=2)
    s = established(cfg)
    s.window = 0
    s.feed(F.ACK)
    s.conn.send(b"blocked")
    s.raw()
    while s.conn.state is S.ESTABLISHED:
        deadline = s.conn.next_deadline()
        assert deadline is not None
        s.tick(deadline)
        s.raw()
    assert s.events()[-2:] == [ConnectionReset(ResetReason.TIMEOUT), Closed()]


def _ten_segments(config: TcpConfig, **syn_kwargs: object) -> Script:
    s = established(dataclasses.replace(config, initial_cwnd_segments=10), **syn_kwargs)
    s.conn.send(b"".join(bytes([65 + i]) * MSS for i in range(10)))
    assert len(s.raw()) == 10
    return s


def _sack(*blocks: tuple[int, int]) -> TcpOptions:
    base = OUR_ISS + 1
    return TcpOptions(sack_blocks=tuple((base + a * MSS, base + b * MSS) for a, b in blocks))


def test_sack_retransmits_exactly_the_holes() -> None:
    cfg = dataclasses.replace(PLAIN, sack=True)
    s = _ten_segments(cfg, sack=True, rtt=0.1)
    base = OUR_ISS + 1
    # Segments 1 and 4 (0-based) are lost; the peer SACKs what arrived, one
    # round trip (100 ms) later.
    s.now = 0.2
    s.feed(F.ACK, ack=base + MSS)
    s.feed(F.ACK, ack=base + MSS, options=_sack((2, 3)))
    s.feed(F.ACK, ack=base + MSS, options=_sack((2, 4)))
    # Reordering or loss? RACK waits a quarter of the RTT (RFC 8985 6.2).
    assert s.out() == []
    assert s.conn.next_deadline() == pytest.approx(0.225)
    # A third SACKed segment (DupThresh) closes the window: both holes were
    # sent before a delivered segment, so both are lost; PRR lets one go now.
    s.feed(F.ACK, ack=base + MSS, options=_sack((5, 6), (2, 4)))
    out = s.raw()
    assert seqs(out) == [(base + MSS, MSS)]  # fast retransmit of the first hole
    assert out[0][1] == b"B" * MSS
    s.feed(F.ACK, ack=base + MSS, options=_sack((5, 7), (2, 4)))
    s.feed(F.ACK, ack=base + MSS, options=_sack((5, 8), (2, 4)))
    out = s.raw()
    assert seqs(out) == [(base + 4 * MSS, MSS)]  # the second hole, and nothing else
    assert out[0][1] == b"E" * MSS
    s.feed(F.ACK, ack=base + MSS, options=_sack((5, 10), (2, 4)))
    s.feed(F.ACK, ack=base + 4 * MSS, options=_sack((5, 10)))
    s.feed(F.ACK, ack=base + 10 * MSS)
    assert s.raw() == []
    assert s.conn.unacked_bytes == 0
    assert s.conn.stats["segment_retransmitted"] == 2


def test_newreno_without_sack_retransmits_on_three_dupacks_and_partial_acks() -> None:
    s = _ten_segments(PLAIN)
    base = OUR_ISS + 1
    s.feed(F.ACK, ack=base + MSS)
    for _ in range(3):
        s.feed(F.ACK, ack=base + MSS)
    out = s.raw()
    assert seqs(out)[0] == (base + MSS, MSS)
    # A partial ACK (up to the second loss) retransmits the next hole at once (RFC 6582).
    s.feed(F.ACK, ack=base + 4 * MSS)
    out = s.raw()
    assert seqs(out)[0] == (base + 4 * MSS, MSS)
    s.feed(F.ACK, ack=base + 10 * MSS)
    assert s.conn.unacked_bytes == 0


def test_fin_is_retransmitted_by_the_timer() -> None:
    s = established()
    s.conn.close()
    assert s.out() == ["[F.] seq 5001 ack 1001 win 65535 len 0"]
    s.tick(1.0)
    assert s.out() == ["[F.] seq 5001 ack 1001 win 65535 len 0"]
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.FIN_WAIT_2
    assert s.conn.next_deadline() is None


# -- options ----------------------------------------------------------------------


def test_window_scaling_with_large_buffers() -> None:
    big = 4 * 1024 * 1024
    cfg = TcpConfig(recv_buffer=big, send_buffer=big, timestamps=False, initial_cwnd_segments=200)
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=cfg, now=0.0)
    ((our_syn, _),) = conn.segments_to_send(0.0)
    assert our_syn.options.window_scale == 7  # 4 MiB >> 7 = 32768 fits 16 bits
    assert our_syn.window == 65535  # the SYN's own window is never scaled
    s = Script(conn, seq=PEER_ISS, ack=OUR_ISS + 1)
    s.feed(
        F.SYN | F.ACK, ack=OUR_ISS + 1, options=TcpOptions(mss=1460, window_scale=9), window=500
    )
    (ack,) = s.raw()
    assert ack[0].window == big >> 7
    # The peer's window field 500 with its shift 9 allows 256000 bytes.
    s.feed(F.ACK, window=500)
    conn.send(b"s" * 1_000_000)
    sent = sum(len(p) for _, p in s.raw())
    # Full segments up to the 256000-byte window (the 500-byte tail waits: SWS).
    assert sent == (500 << 9) // 1460 * 1460


def test_no_window_scaling_unless_both_offer() -> None:
    cfg = TcpConfig(timestamps=False, recv_buffer=65535)
    s = established(cfg, ws=None)
    s.feed(F.ACK, b"x")
    s.tick(1.0)
    (ack,) = s.raw()
    assert ack[0].window == 65534


def test_syn_ack_echoes_only_offered_options() -> None:
    conn = TcpConnection.accept(syn(mss=1400), iss=OUR_ISS, config=TcpConfig(), now=0.0)
    ((synack, _),) = conn.segments_to_send(0.0)
    o = synack.options
    assert (o.window_scale, o.sack_permitted, o.timestamp) == (None, False, None)
    conn2 = TcpConnection.accept(
        syn(ws=7, sack=True, ts=(12345, 0)), iss=OUR_ISS, config=TcpConfig(), now=0.0
    )
    ((synack2, _),) = conn2.segments_to_send(0.0)
    o2 = synack2.options
    assert o2.window_scale == 3 and o2.sack_permitted and o2.timestamp is not None
    assert o2.timestamp[1] == 12345
    assert conn2.send_mss == 1460 - 12  # timestamps take 12 bytes of every segment


def test_timestamps_echo_and_rtt() -> None:
    cfg = TcpConfig(window_scaling=False, recv_buffer=65535, sack=False)
    s = established(cfg, ts=(100, 0))
    s.tsval = 101
    s.conn.send(b"x")
    ((hdr, _),) = s.raw()
    assert hdr.options.timestamp is not None
    tsval, tsecr = hdr.options.timestamp
    assert tsecr == 100  # TS.Recent from the SYN (the handshake ACK carried none)
    srtt = s.conn.srtt  # the SYN-ACK's (zero) round trip
    assert srtt is not None
    s.now = 0.25
    s.feed(F.ACK, ack=OUR_ISS + 2, options=TcpOptions(timestamp=(102, tsval)))
    assert s.conn.srtt == pytest.approx(0.875 * srtt + 0.125 * 0.25, abs=0.002)


def test_paws_drops_old_duplicates() -> None:
    cfg = TcpConfig(window_scaling=False, recv_buffer=65535, sack=False)
    s = established(cfg, ts=(1000, 0))
    s.feed(F.ACK, b"new", options=TcpOptions(timestamp=(2000, 0)))
    s.raw()
    s.feed(F.ACK, b"old", options=TcpOptions(timestamp=(1500, 0)))
    assert s.conn.read() == b"new"
    assert s.conn.stats["paws_rejected"] == 1
    (ack,) = s.raw()
    assert ack[0].options.timestamp is not None and ack[0].options.timestamp[1] == 2000
    # Wrap-around: 0x00000010 is newer than 0xFFFFFFF0.
    s2 = established(cfg, ts=(0xFFFF_FFF0, 0))
    s2.feed(F.ACK, b"ok", options=TcpOptions(timestamp=(0x10, 0)))
    assert s2.conn.read() == b"ok"


def test_sack_blocks_fit_with_timestamps() -> None:
    cfg = TcpConfig(window_scaling=False, recv_buffer=65535)
    s = established(cfg, ts=(1, 0), sack=True)
    base = PEER_ISS + 1
    for i in range(5):
        s.feed(F.ACK, b"o", seq=base + 10 * (i + 1), options=TcpOptions(timestamp=(2, 0)))
    (ack,) = s.raw()
    assert len(ack[0].options.sack_blocks) == 3  # 3 blocks + timestamps = 40 option bytes


def test_sequence_numbers_wrap_around() -> None:
    cfg = dataclasses.replace(PLAIN, time_wait=1.0)
    a = TcpConnection.connect(1, 2, iss=0xFFFF_FF00, config=cfg, now=0.0)
    ((syn_seg, _),) = a.segments_to_send(0.0)
    b = TcpConnection.accept(syn_seg, iss=0xFFFF_FFF0, config=cfg, now=0.0)
    data = bytes(range(256)) * 40
    sim = Simulation(a, b, a_data=data, b_data=data[::-1])
    sim.run(until=100)
    assert bytes(sim.b.received) == data and bytes(sim.a.received) == data[::-1]
    assert a.state is S.CLOSED and b.state is S.CLOSED


def test_keepalive_probes_then_times_out() -> None:
    cfg = dataclasses.replace(PLAIN, keepalive=10.0, keepalive_interval=2.0, keepalive_probes=3)
    s = established(cfg)
    assert s.conn.next_deadline() == 10.0
    s.tick(10.0)
    assert s.out() == ["[.] seq 5000 ack 1001 win 65535 len 0"]
    s.feed(F.ACK)  # answered: idle timer restarts
    assert s.conn.next_deadline() == 20.0
    for at in (20.0, 22.0, 24.0):
        s.tick(at)
        assert s.out() == ["[.] seq 5000 ack 1001 win 65535 len 0"]
    s.tick(26.0)
    assert s.conn.state is S.CLOSED
    assert s.events()[-2:] == [ConnectionReset(ResetReason.TIMEOUT), Closed()]


def test_keepalive_off_by_default() -> None:
    s = established()
    assert s.conn.next_deadline() is None


def test_bulk_transfer_with_large_buffers_over_a_long_fat_link() -> None:
    big = 2 * 1024 * 1024
    cfg = TcpConfig(recv_buffer=big, send_buffer=big, time_wait=1.0, rto_min=0.2)
    a, b = make_pair(cfg)
    data = bytes(range(256)) * 8192  # 2 MiB
    link = LinkParams(delay=0.05, rate=50e6)
    sim = Simulation(a, b, a_data=data, a_to_b=link, b_to_a=link)
    sim.run_until(lambda: len(sim.b.received) == len(data), until=60)
    assert bytes(sim.b.received) == data
    # 2 MiB at 50 MB/s with 100 ms RTT: scaling lets the window exceed 64 KiB,
    # so this takes about a second instead of the 3+ s a 64 KiB window needs.
    assert sim.now < 2.5
    assert PEER_PORT and PEER_ISS and LOCAL_PORT


# -- more RFC 9293 requirements ---------------------------------------------------


def test_urgent_data_is_signalled_and_stays_inline() -> None:
    s = established()
    s.feed(F.ACK, b"normal")
    s.events()
    s.conn.receive_segment(
        dataclasses.replace(
            _peer_header(s, F.ACK | F.URG | F.PSH), urgent=3
        ),  # urgent data "URG", pointer to the octet after it
        b"URGtail",
        0.0,
    )
    s.seq += 7
    assert s.events() == [UrgentData()]
    assert s.conn.urgent_bytes == 6 + 3  # everything up to the end of the urgent data
    assert s.conn.read(6) == b"normal"
    assert s.conn.urgent_bytes == 3
    assert s.conn.read() == b"URGtail"
    assert s.conn.urgent_bytes == 0


def test_sending_urgent_data_sets_the_pointer() -> None:
    s = established()
    s.conn.send(b"ab")
    s.conn.send(b"!", urgent=True)
    ((hdr, payload),) = s.raw()
    assert hdr.flags & F.URG and hdr.urgent == 3 and payload == b"ab!"


def test_urgent_pointer_of_a_long_urgent_sequence() -> None:
    s = established(dataclasses.replace(PLAIN, send_buffer=200_000), mss=1460)
    s.window = 65535
    s.feed(F.ACK)
    s.conn.send(b"u" * 100_000, urgent=True)
    out = s.raw()
    assert all(h.flags & F.URG for h, _ in out)
    assert out[0][0].urgent == 0xFFFF  # capped: the end is more than 64 KiB ahead


def test_congestion_window_slow_start_avoidance_and_timeout() -> None:
    # NewReno's numbers (RFC 5681); CUBIC's are in test_tcp_congestion.py.
    cfg = dataclasses.replace(
        PLAIN, send_buffer=1_000_000, recv_buffer=65535, congestion_control="reno"
    )
    s = established(cfg)
    s.conn.send(b"c" * 900_000)
    assert s.conn.cwnd == 10 * MSS
    out = s.raw()
    assert len(out) == 10  # initial window: 10 segments
    s.feed(F.ACK, ack=OUR_ISS + 1 + 2 * MSS)
    assert s.conn.cwnd == 12 * MSS  # slow start: +bytes acked
    una = OUR_ISS + 1 + 2 * MSS
    s.raw()
    s.tick(s.conn.next_deadline() or 0.0)  # timeout
    assert s.conn.cwnd == MSS  # RFC 5681: loss window of one segment
    (rtx,) = s.raw()
    assert rtx[0].seq == una
    # ssthresh is now half the flight; grow to it, then congestion avoidance.
    acked = una
    while s.conn.cwnd < 6 * MSS:
        acked += MSS
        s.now += 0.01
        s.feed(F.ACK, ack=acked)
        s.raw()
    before = s.conn.cwnd
    for _ in range(before // MSS):
        acked += MSS
        s.feed(F.ACK, ack=acked)
        s.raw()
    assert s.conn.cwnd == before + MSS  # about one MSS per window of data


def test_default_syn_give_up_exceeds_three_minutes() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=TcpConfig(), now=0.0)
    now = 0.0
    conn.segments_to_send(now)
    while conn.state is S.SYN_SENT:
        deadline = conn.next_deadline()
        assert deadline is not None
        now = deadline
        conn.handle_timers(now)
        conn.segments_to_send(now)
    assert now >= 180.0  # MUST-23


def test_delayed_ack_must_stay_below_half_a_second() -> None:
    with pytest.raises(ValueError):
        TcpConfig(delayed_ack=0.5)


def test_shrinking_peer_window_is_tolerated() -> None:
    s = established()
    s.conn.send(b"w" * 5000)
    s.raw()
    # The peer moves its right edge to the left of data already sent (MUST-34).
    s.feed(F.ACK, ack=OUR_ISS + 1 + 1000, window=100)
    assert s.out() == []  # nothing new beyond the shrunken window
    s.tick(s.conn.next_deadline() or 0.0)
    out = s.raw()
    assert seqs(out) == [(OUR_ISS + 1 + 1000, 100)]  # retransmission within the window
    s.feed(F.ACK, ack=OUR_ISS + 1 + 5000, window=65535)
    assert s.conn.unacked_bytes == 0


def test_acks_are_aggregated_over_a_burst() -> None:
    s = established()
    for _ in range(6):
        s.feed(F.ACK, b"b" * MSS)
    # The owner drains a burst of frames before collecting output (MUST-58/59):
    # one ACK covers all six segments.
    assert s.out() == [f"[.] seq 5001 ack {PEER_ISS + 1 + 6 * MSS} win {65535 - 6 * MSS} len 0"]


def test_rst_and_urg_processed_with_zero_window() -> None:
    cfg = dataclasses.replace(PLAIN, recv_buffer=100)
    s = established(cfg)
    s.feed(F.ACK, b"w" * 100)
    s.raw()
    s.conn.receive_segment(dataclasses.replace(_peer_header(s, F.ACK | F.URG), urgent=5), b"", 0.0)
    assert UrgentData() in s.events()
    s.feed(F.RST)
    assert s.conn.state is S.CLOSED


def _peer_header(s: Script, flags: TcpFlags) -> TcpHeader:
    return TcpHeader(PEER_PORT, LOCAL_PORT, s.seq, s.ack, flags, s.window)


def test_timeout_resend_skips_sacked_data() -> None:
    cfg = dataclasses.replace(PLAIN, sack=True)
    s = _ten_segments(cfg, sack=True, rtt=0.1)
    base = OUR_ISS + 1
    # Segments 0 and 5 are missing, the rest is SACKed: RACK resends both
    # holes, and those resends are lost too, with nothing sent after them
    # to reveal it: only the RTO can.
    s.now = 0.2
    s.feed(F.ACK, ack=base, options=_sack((1, 5)))
    s.feed(F.ACK, ack=base, options=_sack((6, 10), (1, 5)))
    assert sorted(seqs(s.raw())) == [(base, MSS), (base + 5 * MSS, MSS)]
    s.tick(s.conn.next_deadline() or 0.0)
    assert s.conn.stats["rto_retransmit"] == 1
    assert seqs(s.raw()) == [(base, MSS)]  # loss window: one segment
    s.feed(F.ACK, ack=base + 5 * MSS, options=_sack((6, 10)))
    # The go-back-N resend jumps over what the peer holds: only segment 5.
    assert seqs(s.raw()) == [(base + 5 * MSS, MSS)]
    s.feed(F.ACK, ack=base + 10 * MSS)
    assert s.raw() == []
    assert s.conn.unacked_bytes == 0


def test_timeout_resends_the_left_edge_even_if_it_was_sacked() -> None:
    # RFC 2018 section 8: after a timeout the sender MUST resend the segment
    # at the left edge of the window, SACKed or not. A cumulative ACK that
    # stops at SACKed data means the receiver reneged (discarded what it
    # SACKed), so, as Linux's tcp_timeout_mark_lost, the timeout forgets
    # the scoreboard at once instead of skipping what the peer no longer has.
    cfg = dataclasses.replace(PLAIN, sack=True)
    s = _ten_segments(cfg, sack=True, rtt=0.1)
    base = OUR_ISS + 1
    s.now = 0.2
    s.feed(F.ACK, ack=base, options=_sack((1, 10)))
    assert seqs(s.raw()) == [(base, MSS)]  # RACK: segment 0 is lost
    s.feed(F.ACK, ack=base + MSS)  # segment 0 arrives; 1-9 were reneged
    s.raw()
    s.tick(s.conn.next_deadline() or 0.0)
    assert s.conn.stats["rto_retransmit"] == 1
    assert seqs(s.raw()) == [(base + MSS, MSS)]
    s.feed(F.ACK, ack=base + 2 * MSS)
    assert seqs(s.raw()) == [(base + 2 * MSS, MSS), (base + 3 * MSS, MSS)]


def test_limited_transmit_sends_new_data_on_early_duplicate_acks() -> None:
    s = established(dataclasses.replace(PLAIN, initial_cwnd_segments=2))
    s.conn.send(b"L" * 5 * MSS)
    assert len(s.raw()) == 2
    s.feed(F.ACK)  # first duplicate ACK
    assert seqs(s.raw()) == [(OUR_ISS + 1 + 2 * MSS, MSS)]
    s.feed(F.ACK)  # second
    assert seqs(s.raw()) == [(OUR_ISS + 1 + 3 * MSS, MSS)]


@pytest.mark.parametrize(
    "bad",
    [
        {"mss": 10},
        {"max_segment_payload": 100},
        {"recv_buffer": 100_000, "window_scaling": False},
        {"rto_min": 2.0, "rto_initial": 1.0},
        {"max_retries": 0},
        {"keepalive": 0.0},
        {"send_low_water": 0.0},
        {"ooo_max_bytes": -1},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TcpConfig(**bad)  # type: ignore[arg-type]


def test_window_shrunk_to_zero_under_flight_does_not_time_out_while_answered() -> None:
    s = established(dataclasses.replace(PLAIN, max_retries=3, rto_max=4.0))
    s.conn.send(b"z" * 3000)
    s.raw()
    s.feed(F.ACK, window=0)  # the peer shrinks its window to zero
    for _ in range(10):  # far more resends than max_retries
        deadline = s.conn.next_deadline()
        assert deadline is not None
        s.tick(deadline)
        assert s.raw()
        s.feed(F.ACK, window=0)  # ...but keeps answering
    assert s.conn.state is S.ESTABLISHED
    s.feed(F.ACK, window=65535)
    s.raw()
    s.feed(F.ACK, ack=OUR_ISS + 3001)
    assert s.conn.unacked_bytes == 0


def test_peek_and_consume_keep_unconsumed_bytes_and_the_window_closed() -> None:
    cfg = dataclasses.replace(PLAIN, recv_buffer=4000)
    s = established(cfg)
    s.feed(F.ACK, b"0123456789" * 400)
    assert s.out() == ["[.] seq 5001 ack 5001 win 0 len 0"]
    assert s.conn.peek(5) == b"01234"
    assert s.conn.peek() == b"0123456789" * 400
    s.conn.consume(5)  # a host socket took only five bytes
    assert s.out() == []
    assert s.conn.read(5) == b"56789"
    s.conn.consume(3990)
    assert s.conn.readable_bytes == 0
    assert s.out() == ["[.] seq 5001 ack 5001 win 4000 len 0"]


def test_stream_status_matches_the_properties() -> None:
    s = established()

    def check() -> None:
        c = s.conn
        assert c.stream_status() == (c.readable_bytes, c.at_eof, c.send_space)

    check()
    s.feed(F.ACK | F.PSH, b"data")
    check()
    s.conn.send(b"x" * 100)
    check()
    s.feed(F.FIN | F.ACK)
    check()
    s.conn.read()
    check()
    assert s.conn.at_eof
    s.conn.close()
    check()
    assert s.conn.send_space == 0
