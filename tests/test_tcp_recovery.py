"""Loss detection and recovery: RACK-TLP (RFC 8985) and PRR (RFC 6937).

First the :class:`~trionet.tcp.recovery.Recovery` record on its own, then
transcripts through the connection: the scripted peer plays a network that
loses chosen segments, and the test checks *when* the repair starts.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.tcp_script import OUR_ISS, PLAIN, Script, established
from trionet.tcp.recovery import WC_DEL_ACK, Recovery
from trionet.wire.tcp import TcpFlags, TcpOptions

F = TcpFlags
MSS = PLAIN.mss
BASE = OUR_ISS + 1
SACK_CFG = dataclasses.replace(PLAIN, sack=True)


def ranges(rec: Recovery) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in rec.segs]


# -- the record ---------------------------------------------------------------------


def test_a_burst_is_one_record_and_resends_refresh_it() -> None:
    rec = Recovery(0, mss=100)
    rec.on_transmit(1, 101, 1.0)
    rec.on_transmit(101, 201, 1.0)  # same instant: same record
    rec.on_transmit(201, 301, 2.0)
    assert ranges(rec) == [(1, 201), (201, 301)]
    rec.on_transmit(1, 101, 3.0)  # a resend of part of the first
    assert [(s.xmit, s.retransmitted) for s in rec.segs] == [(3.0, True), (2.0, False)]
    assert rec.high == 301


def test_sack_splits_records_and_ack_trims_them() -> None:
    rec = Recovery(0, mss=100)
    rec.on_transmit(1, 401, 1.0)
    rec.sacked(101, 201, 1.5)
    assert ranges(rec) == [(1, 101), (201, 401)]
    assert (rec.rack_xmit, rec.rack_end, rec.rack_rtt) == (1.0, 201, 0.5)
    rec.acked(51, 1.6)
    assert ranges(rec) == [(51, 101), (201, 401)]
    rec.acked(401, 1.7)
    assert rec.segs == []


def test_rack_marks_lost_what_a_later_send_overtook_after_the_reordering_window() -> None:
    rec = Recovery(0, mss=100)
    rec.min_rtt = 0.1
    rec.on_transmit(1, 101, 1.0)
    rec.on_transmit(101, 201, 1.01)
    rec.sacked(101, 201, 1.11)  # RACK.rtt 0.1, sent 10 ms after the first
    rec.detect_losses(1.11, 0.1, 1)
    # Not yet: 1.0 + 0.1 + min_rtt / 4 = 1.125.
    assert rec.lost_bytes == 0 and rec.timer == pytest.approx(1.125)
    rec.detect_losses(1.125, 0.1, 1)
    assert rec.lost_bytes == 100 and rec.first_lost() is rec.segs[0]
    # The resend takes it out of the lost count and refreshes its time.
    rec.on_transmit(1, 101, 1.2)
    assert rec.lost_bytes == 0 and rec.first_lost() is None


def test_dupthresh_sacked_segments_close_the_reordering_window() -> None:
    rec = Recovery(0, mss=100)
    rec.min_rtt = 0.1
    for i in range(5):
        rec.on_transmit(1 + 100 * i, 101 + 100 * i, 1.0 + i * 0.001)
    rec.sacked(101, 401, 1.11)
    rec.detect_losses(1.11, 0.1, 3)
    assert rec.lost_bytes == 100  # no waiting once three segments are SACKed
    # The segment sent after RACK's (the fifth) is not judged yet.
    assert ranges(rec) == [(1, 101), (401, 501)]


def test_reordering_seen_keeps_the_window_open_and_dsack_widens_it() -> None:
    rec = Recovery(0, mss=100)
    rec.min_rtt = 0.08
    rec.on_transmit(1, 101, 1.0)
    rec.on_transmit(101, 201, 1.001)
    rec.sacked(101, 201, 1.1)
    rec.acked(101, 1.101)  # the first arrived after all: reordering
    assert rec.reordering_seen
    assert rec.reo_wnd(0.1, 3) == pytest.approx(0.02)
    rec.dsack(101, 201)
    assert rec.reo_wnd(0.1, 3) == pytest.approx(0.04)
    rec.dsack(150, 201)  # same round: once
    assert rec.reo_wnd(0.1, 3) == pytest.approx(0.04)
    assert rec.reo_wnd(0.03, 3) == pytest.approx(0.03)  # never more than SRTT


def test_a_lost_retransmission_is_found_again() -> None:
    rec = Recovery(0, mss=100)
    rec.min_rtt = 0.1
    rec.on_transmit(1, 101, 1.0)
    rec.on_transmit(101, 201, 1.01)
    rec.sacked(101, 201, 1.12)
    rec.detect_losses(1.2, 0.1, 1)
    rec.on_transmit(1, 101, 1.2)  # the resend, lost again
    rec.on_transmit(201, 301, 1.21)
    rec.sacked(201, 301, 1.31)
    rec.detect_losses(1.4, 0.1, 1)
    assert rec.lost_bytes == 100


def test_prr_sends_in_proportion_then_slow_starts_to_ssthresh() -> None:
    # RFC 6937 section 3: RecoverFS 20 segments, ssthresh 10.
    rec = Recovery(0, mss=100)
    rec.start_recovery(20 * MSS, 21 * MSS)
    # Pipe above ssthresh: one segment delivered allows half a segment.
    assert rec.prr_cwnd(MSS, 15 * MSS, 10 * MSS, MSS, safe_ack=True) == 15 * MSS + MSS // 2
    rec.prr_out += MSS
    assert rec.prr_cwnd(MSS, 15 * MSS, 10 * MSS, MSS, safe_ack=True) == 15 * MSS
    # Pipe below ssthresh: what was delivered and not yet sent (3 - 1
    # segments); one more (slow start) only on a safe ACK (RFC 6937bis).
    assert rec.prr_cwnd(MSS, 4 * MSS, 10 * MSS, MSS, safe_ack=False) == 4 * MSS + 2 * MSS
    rec.prr_out += 4 * MSS
    assert rec.prr_cwnd(MSS, 4 * MSS, 10 * MSS, MSS, safe_ack=False) == 4 * MSS + MSS
    assert rec.prr_cwnd(MSS, 4 * MSS, 10 * MSS, MSS, safe_ack=True) == 4 * MSS + 2 * MSS


def test_probe_is_two_srtt_plus_the_delayed_ack_for_one_segment() -> None:
    rec = Recovery(0, mss=100)
    rec.arm_probe(10.0, 0.05, False, 11.0)
    assert rec.timer == pytest.approx(10.102) and rec.timer_is_probe
    rec.timer = None
    rec.arm_probe(10.0, 0.05, True, 11.0)
    assert rec.timer == pytest.approx(10.1 + WC_DEL_ACK)
    rec.timer = None
    rec.arm_probe(10.0, 0.05, False, 10.05)  # the RTO comes first: probe in its place
    assert rec.timer == pytest.approx(10.05)


def test_a_timeout_abandons_the_lost_marks() -> None:
    rec = Recovery(0, mss=100)
    rec.on_transmit(1, 101, 1.0)
    rec.mark_first_lost(MSS)
    rec.start_recovery(100, 101)
    rec.abandon()
    assert rec.lost_bytes == 0 and rec.first_lost() is None and not rec.in_recovery


# -- through the connection --------------------------------------------------------


def _sack(*blocks: tuple[int, int]) -> TcpOptions:
    return TcpOptions(sack_blocks=tuple((BASE + a * MSS, BASE + b * MSS) for a, b in blocks))


def _with_rtt(rtt: float = 0.1) -> Script:
    """ESTABLISHED with SACK, the handshake's round trip measured (SRTT = ``rtt``, RTO 1 s)."""
    s = established(SACK_CFG, sack=True, rtt=rtt)
    assert s.conn.srtt == pytest.approx(rtt)
    return s


def _four_segments(s: Script, at: float) -> int:
    """Send four full segments at ``at``; return the first one's sequence number."""
    s.now = at
    first = BASE
    s.conn.send(b"".join(bytes([65 + i]) * MSS for i in range(4)))
    assert [len(p) for _, p in s.raw()] == [MSS] * 4
    return first


def test_tail_loss_probe_then_recovery_two_round_trips_after_the_send() -> None:
    # All four segments of a tail are lost and the peer says nothing. The RTO
    # is 1 s; a tail loss probe goes out 2 SRTT (200 ms) after the send and
    # resends the last segment; its SACK shows the first three lost.
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    assert s.conn.next_deadline() == pytest.approx(1.202)  # + Linux's 2 ms slack
    s.tick(1.202)
    ((probe, payload),) = s.raw()
    assert (probe.seq, payload) == (first + 3 * MSS, b"D" * MSS)
    assert s.conn.stats["tlp_probe"] == 1
    # The probe's SACK, a little over an RTT later (a resend SACKed sooner
    # than min_RTT could be the original's: RACK ignores it).
    s.now = 1.31
    s.feed(F.ACK, ack=first, options=TcpOptions(sack_blocks=((first + 3 * MSS, first + 4 * MSS),)))
    out = s.raw()
    # Recovery starts at 1.31 s, 3 RTT after the send, not at the RTO (2.0 s).
    assert out and out[0][0].seq == first and out[0][1] == b"A" * MSS
    assert s.conn.stats["fast_retransmit"] == 1
    assert "rto_retransmit" not in s.conn.stats


def test_three_of_four_lost_and_the_last_sacked_recovers_after_a_quarter_rtt() -> None:
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    s.now = 1.1  # the fourth arrived; the peer SACKs it
    s.feed(F.ACK, ack=first, options=TcpOptions(sack_blocks=((first + 3 * MSS, first + 4 * MSS),)))
    assert s.raw() == []  # reordering, or loss? RACK waits min_RTT / 4
    assert s.conn.next_deadline() == pytest.approx(1.125)
    s.tick(1.125)
    out = s.raw()
    assert [h.seq for h, _ in out][:1] == [first]
    assert s.conn.stats["fast_retransmit"] == 1
    assert "rto_retransmit" not in s.conn.stats and "tlp_probe" not in s.conn.stats


def test_a_probe_that_repairs_the_only_loss_still_halves_cwnd() -> None:
    # RFC 8985 7.4: the probe (a resend of the last segment) is acknowledged
    # with no D-SACK, so the original was lost: respond as a recovery would.
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    s.now = 1.1
    s.feed(F.ACK, ack=first + 3 * MSS)  # the first three arrived, the last did not
    cwnd = s.conn.cwnd
    s.raw()
    out: list[tuple[object, bytes]] = []
    while not out:  # the timer set at the send is put back by the ACK
        s.tick(s.conn.next_deadline() or 0.0)
        out = s.raw()  # type: ignore[assignment]
    # One segment in flight: PTO = 2 SRTT + WCDelAckT from the ACK.
    assert s.now == pytest.approx(1.1 + 0.2 + 0.2)
    ((probe, _),) = out
    assert probe.seq == first + 3 * MSS  # type: ignore[attr-defined]
    s.now += 0.1
    s.feed(F.ACK, ack=first + 4 * MSS)
    assert s.conn.stats["tlp_recovery"] == 1
    # The response of a fast recovery: CUBIC's beta 0.7 of the window in use
    # (RFC 9438 section 4.6; Reno's would halve it).
    assert s.conn.cwnd == int(cwnd * 0.7)


def test_a_probe_answered_with_dsack_keeps_cwnd() -> None:
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    s.tick(1.202)
    s.raw()
    cwnd = s.conn.cwnd
    # Everything had arrived; only the ACK was late. The probe is a duplicate.
    s.now = 1.3
    dsack = TcpOptions(sack_blocks=((first + 3 * MSS, first + 4 * MSS),))
    s.feed(F.ACK, ack=first + 4 * MSS, options=dsack)
    assert "tlp_recovery" not in s.conn.stats
    assert s.conn.cwnd >= cwnd


def test_a_first_block_inside_the_second_is_a_dsack() -> None:
    # RFC 2883 section 4: the first block reports a duplicate when the ACK
    # covers it, or when the second block contains it (a duplicate above a
    # hole). Here the first segment is missing and the fourth came twice.
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    s.now = 1.1
    blocks = ((first + 3 * MSS, first + 4 * MSS), (first + MSS, first + 4 * MSS))
    s.feed(F.ACK, ack=first, options=TcpOptions(sack_blocks=blocks))
    assert s.conn.stats["dsack_block"] == 1
    # A D-SACK is only ever the first block: the same pair the other way
    # round is two plain SACK blocks.
    s.feed(F.ACK, ack=first, options=TcpOptions(sack_blocks=(blocks[1], blocks[0])))
    assert s.conn.stats["dsack_block"] == 1


@pytest.mark.parametrize(("cc", "low", "high"), [("reno", 7, 10), ("cubic", 10, 13)])
def test_prr_paces_recovery_by_what_is_delivered(cc: str, low: int, high: int) -> None:
    # 20 segments in flight, two lost. While the pipe stays above ssthresh
    # (half the flight for Reno, 0.7 of it for CUBIC), each SACKed segment
    # lets that fraction of a segment out (ssthresh / RecoverFS), spread
    # over the round trip, not in a burst.
    s = established(dataclasses.replace(SACK_CFG, congestion_control=cc), sack=True, rtt=0.1)
    first = BASE
    s.now = 1.0
    s.conn.send(bytes(60 * MSS))
    assert len(s.raw()) == 10
    s.now = 1.1
    s.feed(F.ACK, ack=first + 10 * MSS)  # slow start: cwnd 20
    assert len(s.raw()) == 20
    lo = first + 10 * MSS
    released = []
    for k in range(2, 20):  # segments 0 and 1 of the flight were lost
        s.now = 1.2 + 0.001 * k
        sack = TcpOptions(sack_blocks=((lo + 2 * MSS, lo + (k + 1) * MSS),))
        s.feed(F.ACK, ack=lo, options=sack)
        out = len(s.raw())
        if s.conn.stats.get("fast_retransmit"):
            released.append(out)
    assert s.conn.stats["fast_retransmit"] == 1
    assert max(released) <= 2
    # Recovery began at the third SACK (RACK with DupThresh): 16 segments
    # delivered since, about 8 (Reno) or 11 (CUBIC) sent (RFC 6937
    # section 3), not 16.
    assert len(released) == 16
    assert low <= sum(released) <= high


def test_sack_edges_cut_records_only_at_whole_segments() -> None:
    # Linux's tcp_match_skb_to_sack: a SACK covering part of a segment does
    # not split it; the edges round to whole segments from the record's start
    # (the SACKed part down, the un-SACKed part up), so a peer cannot cut the
    # record into pieces smaller than a segment.
    rec = Recovery(0, mss=100)
    rec.on_transmit(1, 451, 1.0)  # segments 1-101, 101-201, 201-301, 301-401, 401-451
    rec.sacked(150, 160, 1.1)  # inside one segment: nothing
    assert ranges(rec) == [(1, 451)]
    rec.sacked(150, 320, 1.1)  # only 201-301 is whole
    assert ranges(rec) == [(1, 201), (301, 451)]
    rec.sacked(401, 451, 1.1)  # the short last segment
    assert ranges(rec) == [(1, 201), (301, 401)]


def test_a_short_last_segment_ends_its_record() -> None:
    # Two bursts at the same instant share a record only when the first
    # ended on a whole segment: otherwise the second's segments would not
    # lie on the record's segment grid and their SACKs could not cut it.
    rec = Recovery(0, mss=100)
    rec.on_transmit(1, 71, 1.0)
    rec.on_transmit(71, 271, 1.0)
    rec.on_transmit(271, 371, 1.0)
    assert ranges(rec) == [(1, 71), (71, 371)]
    rec.sacked(71, 271, 1.1)
    assert ranges(rec) == [(1, 71), (271, 371)]


@pytest.mark.parametrize("fin", [False, True])
def test_a_retransmitted_probe_is_exactly_the_last_segment(fin: bool) -> None:
    # RFC 8985 7.3: the probe retransmits the highest-sequence segment sent,
    # the last segment of the burst (a short one, or the one carrying the
    # FIN), not the last MSS bytes: those would overlap the segment before,
    # which the peer holds already, and its D-SACK of them would hide the
    # repaired loss from the congestion response (section 7.4).
    s = _with_rtt(0.1)
    s.now = 1.0
    s.conn.send(b"A" * MSS + b"B" * MSS + b"C" * 100)
    if fin:
        s.conn.close()
    sent = s.raw()
    assert [len(p) for _, p in sent] == [MSS, MSS, 100]
    # The ACKs of the first two are lost too: the probe timer fires first.
    s.tick(s.conn.next_deadline() or 0.0)
    ((probe, payload),) = s.raw()
    assert (probe.seq, bytes(payload)) == (BASE + 2 * MSS, b"C" * 100)  # type: ignore[attr-defined]
    assert bool(probe.flags & F.FIN) == fin  # type: ignore[attr-defined]
    s.now += 0.1
    s.feed(F.ACK, ack=BASE + 2 * MSS + 100 + fin)
    assert s.conn.stats["tlp_recovery"] == 1


def test_a_hole_filled_by_its_original_is_reordering() -> None:
    # RFC 8985 6.2 step 3: a segment delivered below RACK.fack that was
    # never resent was reordered, not lost. The classic case: the peer
    # SACKs the later segments, then the first arrives and one cumulative
    # ACK covers everything. From then on (step 4) the reordering window
    # stays open even with DupThresh segments SACKed: a hole is given
    # min_RTT / 4 before it counts as lost, instead of none.
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    s.now = 1.1
    s.feed(F.ACK, ack=first, options=TcpOptions(sack_blocks=((first + MSS, first + 3 * MSS),)))
    assert s.raw() == []
    s.now = 1.11
    s.feed(F.ACK, ack=first + 4 * MSS)  # the first arrives late: reordering
    assert s.raw() == []
    _four_segments(s, 2.0)
    second = first + 4 * MSS
    s.now = 2.1
    s.feed(F.ACK, ack=second, options=TcpOptions(sack_blocks=((second + MSS, second + 4 * MSS),)))
    assert s.raw() == []  # three SACKed, but reordering was seen: wait
    assert s.conn.next_deadline() == pytest.approx(2.125)
    s.tick(2.125)
    assert [h.seq for h, _ in s.raw()] == [second]


def test_a_lost_resend_found_by_the_reordering_timer_goes_out_at_once() -> None:
    # In recovery, the reordering timer marks a resend lost (a segment sent
    # with it was SACKed a reordering window ago). Nothing else is in
    # flight, so no ACK will come: the cwnd PRR set on the last ACK must
    # let the repair go now (as Linux's tcp_rack_reo_timeout), not be
    # recomputed from nothing delivered down to nothing, which left the
    # connection waiting for the RTO (0.9 s here).
    s = _with_rtt(0.1)
    first = _four_segments(s, 1.0)
    s.now = 1.1  # reordering seen: the window stays open in recovery
    s.feed(F.ACK, ack=first, options=TcpOptions(sack_blocks=((first + MSS, first + 3 * MSS),)))
    s.now = 1.11
    s.feed(F.ACK, ack=first + 4 * MSS)
    s.raw()
    b = first + 4 * MSS

    def sack(*blocks: tuple[int, int]) -> TcpOptions:
        return TcpOptions(sack_blocks=tuple((b + x * MSS, b + y * MSS) for x, y in blocks))

    def sent() -> list[int]:
        return [(h.seq - b) // MSS for h, _ in s.raw()]

    s.now = 2.0
    s.conn.send(b"".join(bytes([65 + i]) * MSS for i in range(6)))
    assert sent() == [0, 1, 2, 3, 4, 5]
    s.now = 2.1  # segments 0 and 2 are lost
    s.feed(F.ACK, ack=b, options=sack((3, 6), (1, 2)))
    s.conn.send(b"G" * MSS)
    s.tick(2.125)
    assert sent() == [0]  # recovery: the fast retransmit
    s.now = 2.225
    s.feed(F.ACK, ack=b + 2 * MSS, options=sack((3, 6)))
    assert sent() == [2, 6]  # the second hole and the new segment
    s.now = 2.325  # the new one arrived, the resend of 2 did not
    s.feed(F.ACK, ack=b + 2 * MSS, options=sack((6, 7), (3, 6)))
    assert sent() == []
    assert s.conn.next_deadline() == pytest.approx(2.35)
    s.tick(2.35)
    assert sent() == [2]
