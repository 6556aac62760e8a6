"""Congestion control: how far the window falls on a loss and how it grows again.

:class:`~trionet.tcp.connection.TcpConnection` owns one controller, chosen by
``TcpConfig.congestion_control``, and asks it three things:

- ``reduce(window)`` on a congestion event (fast recovery starts, or a
  tail loss probe repaired a loss): the new ssthresh. PRR
  (:mod:`trionet.tcp.recovery`) then paces the send rate down to it.
- ``timeout(window)`` on the first retransmission timeout of a loss:
  the new ssthresh (cwnd itself falls to one segment, as RFC 5681 says).
- ``grow(cwnd, acked, now, srtt, limited)`` on each ACK of new data in
  congestion avoidance (cwnd at or above ssthresh, outside recovery): the
  new cwnd. Slow start stays in the connection: it is the same for both.
- ``restart(now)`` when the sender, in congestion avoidance, starts sending
  again with nothing in flight: an idle period ended.

``window`` is the flight size at the event, the window the sender was
really using (RFC 5681 equation (4), RFC 9438 section 4.6): a cwnd that grew
while the receiver's window limited the flight says nothing about the path.

Two controllers: :class:`NewReno` (RFC 5681 additive increase, halving) and
:class:`Cubic` (RFC 9438, the default, as in Linux, Windows and macOS).
Time is the caller's ``now``; the arithmetic is a few float operations per
ACK, and none at all on the slow-start path of a loss-free transfer.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ALPHA_CUBIC",
    "BETA_CUBIC",
    "CONGESTION_CONTROLS",
    "C",
    "Cubic",
    "NewReno",
    "new_controller",
]

#: RFC 9438 section 4.1.1: the cubic scaling constant (SHOULD be 0.4), in
#: segments per second cubed.
C = 0.4
#: RFC 9438 section 4.6: the multiplicative decrease factor (SHOULD be 0.7).
BETA_CUBIC = 0.7
#: RFC 9438 section 4.3: the additive increase that makes CUBIC's average
#: window equal Reno's under the same loss rate, 3 (1 - beta) / (1 + beta).
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)
#: The names ``TcpConfig.congestion_control`` accepts.
CONGESTION_CONTROLS = ("cubic", "reno")


class NewReno:
    """RFC 5681 congestion avoidance: one segment per window of ACKed data; halve on loss."""

    __slots__ = ("acc", "mss")

    name: ClassVar[str] = "reno"

    def __init__(self, mss: int) -> None:
        self.mss = mss
        #: bytes ACKed since cwnd last grew (RFC 5681 equation (3) with byte counting)
        self.acc = 0

    def reduce(self, window: int) -> int:
        """RFC 5681 equation (4): ssthresh = max(FlightSize / 2, 2 SMSS)."""
        return max(window // 2, 2 * self.mss)

    def timeout(self, window: int) -> int:
        """The same ssthresh; the byte count starts afresh with cwnd at one segment."""
        self.acc = 0
        return max(window // 2, 2 * self.mss)

    def grow(self, cwnd: int, acked: int, now: float, srtt: float | None, limited: bool) -> int:
        """One SMSS per cwnd of ACKed bytes (appropriate byte counting, RFC 3465).

        Only while cwnd limits the sender (as Linux's Reno): otherwise an
        application-limited flow would grow it without bound.
        """
        del now, srtt
        if not limited:
            return cwnd
        acc = self.acc + acked
        if acc >= cwnd:
            self.acc = acc - cwnd
            return cwnd + self.mss
        self.acc = acc
        return cwnd

    def restart(self, now: float) -> None:
        """Reno's growth counts ACKs, not time: an idle period changes nothing."""
        del now


class Cubic:
    """RFC 9438 CUBIC: the window follows W_cubic(t) = C (t - K)^3 + W_max after a loss.

    Windows inside are in segments (floats), as the RFC writes them; the
    connection's cwnd stays in bytes. An *epoch* is one congestion avoidance
    stage: it starts at the first ACK after a reduction (``epoch_start`` is
    ``None`` until then), where K is computed from W_max and the cwnd the
    stage starts with (section 4.2).

    HyStart++ (RFC 9406, which section 4.10 recommends for slow start) is
    not implemented: slow start is RFC 5681's, as the connection's.
    Spurious-loss undo (section 4.9, a MAY) is not implemented either.
    """

    __slots__ = (
        "acc",
        "cwnd_epoch",
        "cwnd_prior",
        "epoch_start",
        "fast_convergence",
        "k",
        "last",
        "mss",
        "w_est",
        "w_max",
    )

    name: ClassVar[str] = "cubic"

    def __init__(self, mss: int, *, fast_convergence: bool = True) -> None:
        self.mss = mss
        self.fast_convergence = fast_convergence
        #: window (segments) just before the last reduction: the plateau
        #: the cubic curve returns to (0 before any loss)
        self.w_max = 0.0
        #: window (segments) at the last congestion event (section 4.3's cwnd_prior)
        self.cwnd_prior = 0.0
        #: when the current congestion avoidance stage began; None: not yet
        self.epoch_start: float | None = None
        self.cwnd_epoch = 0.0
        self.k = 0.0
        #: the Reno-friendly estimate (section 4.3), segments
        self.w_est = 0.0
        #: fractional bytes of growth carried to the next ACK
        self.acc = 0.0
        #: ``now`` of the previous ``grow``: limited periods are cut out of t
        self.last = 0.0

    # -- the curve (section 4.2) ----------------------------------------------------

    @staticmethod
    def k_for(w_max: float, cwnd_epoch: float) -> float:
        """K = cubic_root((W_max - cwnd_epoch) / C): seconds until the curve is back at W_max."""
        if w_max <= cwnd_epoch:
            return 0.0
        return float(((w_max - cwnd_epoch) / C) ** (1 / 3))

    def w_cubic(self, t: float) -> float:
        """W_cubic(t) = C (t - K)^3 + W_max, in segments (Figure 1)."""
        d = t - self.k
        return C * d * d * d + self.w_max

    # -- congestion events (sections 4.6 to 4.8) -----------------------------------------

    def _event(self, window: int) -> int:
        segs = window / self.mss
        if self.fast_convergence and segs < self.w_max:
            # Section 4.7: the plateau fell since the last event (a new flow
            # takes a share): release more bandwidth by aiming lower.
            self.w_max = segs * (1 + BETA_CUBIC) / 2
        else:
            self.w_max = segs
        self.cwnd_prior = segs
        self.epoch_start = None
        self.acc = 0.0
        # Section 4.6: ssthresh = flight_size * beta_cubic, at least 2 SMSS.
        return max(int(window * BETA_CUBIC), 2 * self.mss)

    def reduce(self, window: int) -> int:
        """Section 4.6 multiplicative decrease, with section 4.7 fast convergence."""
        return self._event(window)

    def timeout(self, window: int) -> int:
        """Section 4.8: ssthresh by beta_cubic; the next stage starts with K = 0.

        W_max of that stage is its starting cwnd (set in ``grow``: w_max 0
        makes K 0 there), so the window grows from where slow start left it,
        slowly at first, then convexly.
        """
        ssthresh = self._event(window)
        self.w_max = 0.0
        return ssthresh

    def restart(self, now: float) -> None:
        """The sender resumes with nothing in flight: the idle period since the last ACK ended.

        Section 5.8: t MUST NOT include it, or W_cubic(t) would be far above
        cwnd by now and cwnd would grow by half per round trip (the target's
        cap). The epoch moves later by the pause, so the curve keeps its
        shape, as Linux's CA_EVENT_TX_START does.
        """
        epoch = self.epoch_start
        if epoch is not None:
            epoch += now - self.last
            self.epoch_start = epoch if epoch < now else now
            self.last = now

    # -- congestion avoidance (sections 4.2 to 4.5) ----------------------------------

    def _start_epoch(self, cwnd: float, now: float) -> None:
        self.epoch_start = now
        self.cwnd_epoch = cwnd
        # No loss since a higher window, or the first stage after a timeout:
        # the curve starts at its plateau (K = 0) and probes convexly from there.
        self.w_max = max(self.w_max, cwnd)
        self.k = self.k_for(self.w_max, cwnd)
        # Section 4.3: W_est starts at cwnd_epoch.
        self.w_est = cwnd

    def grow(self, cwnd: int, acked: int, now: float, srtt: float | None, limited: bool) -> int:
        """The cwnd after ``acked`` new bytes in congestion avoidance.

        ``limited``: the flight filled cwnd, so the window, not the
        application or the receiver, limited the sender. Otherwise cwnd does
        not grow and the time does not count toward t (section 5.8), so an
        idle or receiver-limited period does not make W_cubic jump.
        """
        mss = self.mss
        segs = cwnd / mss
        epoch = self.epoch_start
        if epoch is None:
            self._start_epoch(segs, now)
            epoch = now
        elif not limited:
            self.epoch_start = epoch + now - self.last
            self.last = now
            return cwnd
        self.last = now
        if not limited:
            return cwnd
        t = now - epoch
        # Section 4.3: the Reno-friendly estimate grows by alpha per window
        # of ACKed segments; alpha becomes 1 once W_est is back at cwnd_prior.
        alpha = 1.0 if self.w_est >= self.cwnd_prior else ALPHA_CUBIC
        self.w_est += alpha * (acked / mss) / segs
        if self.w_cubic(t) < self.w_est:
            # Reno-friendly region: cwnd is W_est.
            est = int(self.w_est * mss)
            return est if est > cwnd else cwnd
        # Concave (below W_max) and convex (above) regions: aim at where the
        # curve will be one RTT from now, at most 1.5 cwnd, and close the gap
        # by (target - cwnd) / cwnd per ACKed segment.
        rtt = srtt if srtt is not None else 0.0
        target = self.w_cubic(t + rtt)
        if target < segs:
            target = segs
        elif target > 1.5 * segs:
            target = 1.5 * segs
        acc = self.acc + (target - segs) / segs * acked
        inc = int(acc)
        self.acc = acc - inc
        return cwnd + inc


def new_controller(name: str, mss: int) -> NewReno | Cubic:
    """The controller ``TcpConfig.congestion_control`` names."""
    if name == "cubic":
        return Cubic(mss)
    if name == "reno":
        return NewReno(mss)
    raise ValueError(f"unknown congestion control {name!r}")
