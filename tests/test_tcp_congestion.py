"""CUBIC (RFC 9438) and NewReno congestion control, with the RFC's own numbers.

The controllers are pure arithmetic on windows and the caller's time, so
each rule is checked directly: K, W_cubic(t), the Reno-friendly W_est,
fast convergence, the multiplicative decrease, the stage after a timeout,
and the application-limited rule. The last tests drive a connection.
"""

from __future__ import annotations

import dataclasses
import heapq

import pytest

from tests.tcp_script import OUR_ISS, PLAIN, Script, established
from trionet.tcp import TcpConfig
from trionet.tcp.congestion import ALPHA_CUBIC, BETA_CUBIC, C, Cubic, NewReno, new_controller
from trionet.wire.tcp import TcpFlags as F

MSS = 1000  # round numbers: windows in segments are bytes / 1000


def test_constants_are_rfc_9438s() -> None:
    assert C == 0.4  # section 4.1.1 (SHOULD)
    assert BETA_CUBIC == 0.7  # section 4.6 (SHOULD)
    # Section 4.3: alpha_cubic = 3 (1 - beta) / (1 + beta) = 0.9 / 1.7.
    assert pytest.approx(0.9 / 1.7) == ALPHA_CUBIC
    assert pytest.approx(0.5294117647) == ALPHA_CUBIC


def test_k_is_the_cube_root_of_the_gap_over_c() -> None:
    # Section 4.2: K = cubic_root((W_max - cwnd_epoch) / C).
    # W_max 100, cwnd_epoch 70 (a beta 0.7 reduction): K = 75^(1/3) s.
    assert Cubic.k_for(100.0, 70.0) == pytest.approx(4.217163326508746)
    # W_max 10, cwnd_epoch 7.6: (2.4 / 0.4)^(1/3) = 6^(1/3).
    assert Cubic.k_for(10.0, 7.6) == pytest.approx(1.8171205928321397)
    # Already at (or above) W_max: the curve starts at its plateau.
    assert Cubic.k_for(70.0, 70.0) == 0.0
    assert Cubic.k_for(50.0, 70.0) == 0.0


def _after_loss(window_segments: int) -> tuple[Cubic, int]:
    """A controller that just reduced from ``window_segments``; returns it and ssthresh."""
    cc = Cubic(MSS)
    ssthresh = cc.reduce(window_segments * MSS)
    return cc, ssthresh


def test_multiplicative_decrease_is_beta_cubic_of_the_flight() -> None:
    cc, ssthresh = _after_loss(100)
    assert ssthresh == 70 * MSS  # section 4.6: flight_size * beta_cubic
    assert cc.w_max == 100.0
    assert cc.cwnd_prior == 100.0
    # Never below 2 SMSS.
    assert Cubic(MSS).reduce(2 * MSS) == 2 * MSS
    assert Cubic(MSS).reduce(1 * MSS) == 2 * MSS


def test_w_cubic_follows_figure_1() -> None:
    cc, ssthresh = _after_loss(100)
    cc.grow(ssthresh, MSS, 5.0, 0.1, True)  # the stage starts at t = 5 s
    assert cc.epoch_start == 5.0
    assert cc.cwnd_epoch == 70.0
    k = cc.k
    assert k == pytest.approx(75 ** (1 / 3))
    assert cc.w_cubic(0.0) == pytest.approx(70.0)  # W_cubic(0) = cwnd_epoch
    assert cc.w_cubic(k) == pytest.approx(100.0)  # back at W_max after K
    assert cc.w_cubic(k + 1) == pytest.approx(100.4)  # C (1 s)^3 above it
    assert cc.w_cubic(k + 2) == pytest.approx(103.2)
    assert cc.w_cubic(1.0) == pytest.approx(0.4 * (1 - k) ** 3 + 100)
    assert cc.w_cubic(1.0) == pytest.approx(86.6808, abs=1e-4)


def test_concave_growth_closes_the_gap_to_the_target_one_rtt_ahead() -> None:
    cc, ssthresh = _after_loss(100)
    cwnd = ssthresh
    # Half a second into the stage, RTT 0.1 s: target = W_cubic(0.6).
    cc.grow(cwnd, 0, 0.0, 0.1, True)
    target = cc.w_cubic(0.6)
    assert target == pytest.approx(0.4 * (0.6 - cc.k) ** 3 + 100)
    assert target == pytest.approx(81.0694, abs=1e-4)
    # Section 4.4: cwnd += (target - cwnd) / cwnd per ACKed segment:
    # (81.0694 - 70) / 70 segments = 158 bytes for the first.
    grown = cc.grow(cwnd, MSS, 0.5, 0.1, True)
    assert grown == 70 * MSS + 158
    assert cc.w_cubic(0.5) > cc.w_est  # the cubic region, not the Reno-friendly one
    # A window of ACKs at the same instant closes most of the gap (the
    # increments shrink as cwnd nears the target; time moving on raises it).
    for _ in range(69):
        grown = cc.grow(grown, MSS, 0.5, 0.1, True)
    assert 76 * MSS < grown < 78 * MSS


def test_target_is_capped_at_one_and_a_half_cwnd() -> None:
    cc, ssthresh = _after_loss(100)
    cc.grow(ssthresh, 0, 0.0, 0.1, True)
    # Far past K the curve is far above: one ACKed segment grows cwnd by at
    # most (1.5 cwnd - cwnd) / cwnd segments = half a segment.
    assert cc.w_cubic(30.0) > 1.5 * 70
    assert cc.grow(70 * MSS, MSS, 30.0, 0.1, True) == 70 * MSS + MSS // 2


def test_reno_friendly_region_sets_cwnd_to_w_est() -> None:
    # Section 4.3: W_est starts at cwnd_epoch and grows by alpha_cubic per
    # window of ACKed segments. Right after the reduction W_cubic is still
    # at cwnd_epoch (t ~ 0), so W_est leads and cwnd follows it.
    cc, ssthresh = _after_loss(10)
    assert ssthresh == 7 * MSS
    cwnd = cc.grow(ssthresh, MSS, 0.0, 0.1, True)
    assert cc.w_est == pytest.approx(7 + ALPHA_CUBIC / 7)
    assert cc.w_cubic(0.0) < cc.w_est
    assert cwnd == int((7 + ALPHA_CUBIC / 7) * MSS)
    assert cwnd == 7075


def test_alpha_becomes_one_once_w_est_reaches_cwnd_prior() -> None:
    cc, ssthresh = _after_loss(10)
    cc.grow(ssthresh, 0, 0.0, 0.1, True)
    cc.w_est = 10.0  # back at cwnd_prior
    cc.grow(10 * MSS, MSS, 0.0, 0.1, True)
    assert cc.w_est == pytest.approx(10.0 + 1.0 / 10)


def test_fast_convergence_lowers_w_max_when_the_plateau_fell() -> None:
    cc, _ = _after_loss(100)
    # The next loss comes at 80 segments, below W_max 100: another flow
    # took a share. Section 4.7: W_max = cwnd (1 + beta) / 2 = 68.
    assert cc.reduce(80 * MSS) == 56 * MSS
    assert cc.w_max == pytest.approx(68.0)
    assert cc.cwnd_prior == 80.0
    # Above the old W_max: W_max is the window itself.
    assert cc.reduce(120 * MSS) == 84 * MSS
    assert cc.w_max == 120.0
    # Without fast convergence W_max is always the window.
    plain = Cubic(MSS, fast_convergence=False)
    plain.reduce(100 * MSS)
    plain.reduce(80 * MSS)
    assert plain.w_max == 80.0


def test_after_a_timeout_k_is_zero_and_w_max_is_the_stage_start() -> None:
    cc = Cubic(MSS)
    cc.reduce(100 * MSS)
    ssthresh = cc.timeout(40 * MSS)
    assert ssthresh == 28 * MSS  # section 4.8: ssthresh by beta_cubic too
    # Slow start (the connection's) brings cwnd back to 28; the stage
    # begins there with K = 0, W_max = 28 and W_est = 28.
    cc.grow(28 * MSS, 0, 3.0, 0.1, True)
    assert cc.k == 0.0
    assert cc.w_max == 28.0
    assert cc.w_est == 28.0
    assert cc.w_cubic(1.0) == pytest.approx(28.4)


def test_limited_periods_do_not_count_toward_t() -> None:
    cc, ssthresh = _after_loss(100)
    cc.grow(ssthresh, MSS, 1.0, 0.1, True)
    assert cc.epoch_start == 1.0
    # Ten seconds in which the application (or the receiver) held the
    # flight below cwnd: no growth, and the epoch moves with the clock.
    for i in range(1, 11):
        assert cc.grow(ssthresh, MSS, 1.0 + i, 0.1, False) == ssthresh
    assert cc.epoch_start == 11.0
    w_est = cc.w_est
    cc.grow(ssthresh, MSS, 11.0, 0.1, True)
    assert cc.w_est > w_est


def test_new_reno_halves_and_adds_one_segment_per_window() -> None:
    cc = NewReno(MSS)
    assert cc.reduce(100 * MSS) == 50 * MSS
    assert cc.timeout(3 * MSS) == 2 * MSS
    cwnd = 10 * MSS
    for _ in range(9):
        cwnd = cc.grow(cwnd, MSS, 0.0, None, True)
    assert cwnd == 10 * MSS
    assert cc.grow(cwnd, MSS, 0.0, None, True) == 11 * MSS


def test_controller_names() -> None:
    assert isinstance(new_controller("cubic", MSS), Cubic)
    assert isinstance(new_controller("reno", MSS), NewReno)
    assert TcpConfig().congestion_control == "cubic"
    with pytest.raises(ValueError, match="congestion_control"):
        TcpConfig(congestion_control="bbr")


def test_connection_timeout_uses_beta_cubic_then_grows_reno_friendly() -> None:
    mss = PLAIN.mss
    cfg = dataclasses.replace(PLAIN, send_buffer=1_000_000, recv_buffer=65535)
    s = established(cfg)
    s.conn.send(b"c" * 900_000)
    assert len(s.raw()) == 10
    s.feed(F.ACK, ack=OUR_ISS + 1 + 2 * mss)
    s.raw()
    flight = 12 * mss  # cwnd 12 after slow start's +2: 12 segments unacknowledged
    s.tick(s.conn.next_deadline() or 0.0)  # timeout
    assert s.conn.cwnd == mss
    assert s.conn.ssthresh == int(flight * BETA_CUBIC)
    s.raw()
    acked = OUR_ISS + 1 + 2 * mss
    while s.conn.cwnd < s.conn.ssthresh:
        acked += mss
        s.now += 0.01
        s.feed(F.ACK, ack=acked)
        s.raw()
    before = s.conn.cwnd
    for _ in range(before // mss):
        acked += mss
        s.feed(F.ACK, ack=acked)
        s.raw()
    # The first stage after a timeout: K = 0, and with the clock still the
    # Reno-friendly estimate leads: about alpha_cubic segments per window.
    grown = s.conn.cwnd - before
    assert grown == pytest.approx(ALPHA_CUBIC * mss, abs=mss * 0.1)


def test_an_idle_period_does_not_count_toward_t() -> None:
    # Section 5.8: t MUST NOT include idle periods, or W_cubic(t) is far
    # above cwnd when the sender starts again and cwnd jumps by half per
    # round trip (the target's cap). The controller moves its epoch when
    # the sender resumes with nothing in flight (Linux's CA_EVENT_TX_START).
    cc, ssthresh = _after_loss(100)
    cc.grow(ssthresh, MSS, 1.0, 0.1, True)
    cc.grow(ssthresh, MSS, 2.0, 0.1, True)
    cc.restart(32.0)  # 30 s without an ACK, then new data
    assert cc.epoch_start == 31.0
    assert cc.restart(32.0) is None and cc.epoch_start == 31.0  # once per period
    NewReno(MSS).restart(32.0)  # nothing to move


def _clocked_transfer(s: Script, nbytes: int, start: float, rtt: float) -> int:
    """``nbytes`` go out ACK-clocked: each segment is acknowledged ``rtt`` after it left.

    Returns how many segments the first burst had.
    """
    s.now = start
    s.conn.send(b"x" * nbytes)
    pending: list[tuple[float, int]] = []

    def collect() -> None:
        for header, payload in s.raw():
            if payload:
                heapq.heappush(pending, (s.now + rtt, header.seq + len(payload)))

    collect()
    first = len(pending)
    while pending:
        s.now, ack = heapq.heappop(pending)
        s.feed(F.ACK, ack=ack)
        collect()
    return first


def test_connection_cwnd_does_not_jump_after_an_idle_period() -> None:
    mss = PLAIN.mss
    rtt = 0.01
    s = established(dataclasses.replace(PLAIN, send_buffer=1_000_000), rtt=rtt)
    s.now = 1.0
    s.conn.send(b"x" * 10 * mss)
    s.raw()
    s.tick(s.conn.next_deadline() or 0.0)  # a timeout: congestion avoidance from here
    s.raw()
    s.feed(F.ACK, ack=OUR_ISS + 1 + 10 * mss)
    _clocked_transfer(s, 100 * mss, s.now + 0.001, rtt)
    assert s.conn.cwnd > s.conn.ssthresh
    before = s.conn.cwnd
    _clocked_transfer(s, 60 * mss, s.now + 0.001, rtt)
    busy = s.conn.cwnd - before
    before = s.conn.cwnd
    _clocked_transfer(s, 60 * mss, s.now + 30.0, rtt)
    # The same transfer after 30 s of silence grows cwnd as much as without
    # the pause (it grew 14 segments instead of 2, the 1.5 cwnd cap).
    assert s.conn.cwnd - before <= busy + mss


@pytest.mark.parametrize("cc", ["cubic", "reno"])
def test_cwnd_grows_only_while_it_limits_the_sender(cc: str) -> None:
    # An application-limited flow (one small answer at a time) never uses
    # more than a segment of its window: cwnd must not grow from its ACKs,
    # in slow start (Linux's tcp_is_cwnd_limited: cwnd below twice the
    # flight) nor in congestion avoidance (RFC 9438 5.8; Linux's Reno too),
    # or a flow that later turns bulk would burst a window the path never
    # carried. Before, 300 exchanges raised cwnd by 300 segments, and
    # without bound in NewReno's congestion avoidance.
    mss = PLAIN.mss
    s = established(dataclasses.replace(PLAIN, congestion_control=cc), rtt=0.01)

    def exchanges() -> None:
        for _ in range(300):
            s.now += 0.05
            s.conn.send(b"r" * 1000)
            ((header, payload),) = s.raw()
            s.now += 0.01
            s.feed(F.ACK, ack=header.seq + len(payload))
            s.raw()

    exchanges()  # slow start
    assert s.conn.cwnd == PLAIN.initial_cwnd_segments * mss
    s.conn.send(b"x" * 10 * mss)
    s.raw()
    s.tick(s.conn.next_deadline() or 0.0)  # a timeout, then congestion avoidance
    s.raw()
    s.feed(F.ACK, ack=OUR_ISS + 1 + 300_000 + 10 * mss)
    cwnd = s.conn.cwnd
    assert cwnd >= s.conn.ssthresh
    exchanges()
    assert s.conn.cwnd == cwnd


def test_slow_start_stops_at_ssthresh() -> None:
    # A stretch ACK in slow start (byte counting) takes cwnd up to ssthresh
    # and no further, as Linux's tcp_slow_start: after a timeout of 20
    # segments (ssthresh 14) the ACK of all 20 left cwnd at 21.
    mss = PLAIN.mss
    s = established(dataclasses.replace(PLAIN, initial_cwnd_segments=20), rtt=0.01)
    s.now = 1.0
    s.conn.send(b"x" * 20 * mss)
    assert len(s.raw()) == 20
    s.tick(s.conn.next_deadline() or 0.0)
    assert s.conn.ssthresh == 14 * mss and s.conn.cwnd == mss
    s.raw()
    s.feed(F.ACK, ack=OUR_ISS + 1 + 20 * mss)  # only the first was lost
    assert s.conn.cwnd == 14 * mss


def test_cwnd_restarts_after_an_idle_longer_than_the_rto() -> None:
    # RFC 5681 4.1: a sender that has not sent for longer than the RTO
    # SHOULD restart from no more than the initial window, as Linux does by
    # default (tcp_slow_start_after_idle: halved per RTO of silence, down to
    # the initial window; ssthresh keeps 3/4 of the old cwnd, so slow start
    # soon brings it back). Before, the whole old window went out at once
    # into a path whose state nobody had probed for a minute.
    mss = PLAIN.mss
    rtt = 0.01
    cfg = dataclasses.replace(PLAIN, send_buffer=1_000_000, window_scaling=True)
    s = established(cfg, rtt=rtt, ws=4)
    _clocked_transfer(s, 300 * mss, 1.0, rtt)
    cwnd = s.conn.cwnd
    assert cwnd >= 40 * mss
    # A pause shorter than the RTO (1 s) changes nothing.
    assert _clocked_transfer(s, 600 * mss, s.now + 0.5, rtt) == cwnd // mss
    cwnd = s.conn.cwnd
    assert _clocked_transfer(s, 600 * mss, s.now + 60.0, rtt) == PLAIN.initial_cwnd_segments
    assert s.conn.ssthresh >= cwnd * 3 // 4
