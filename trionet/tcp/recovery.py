"""The sender's loss detection and recovery: RACK-TLP (RFC 8985) and PRR (RFC 6937).

:class:`~trionet.tcp.connection.TcpConnection` owns one :class:`Recovery` and
tells it three things: what it transmitted (``on_transmit``), what the peer
acknowledged or SACKed (``acked``, ``sacked``), and when to look for losses
(``detect_losses``). In return it learns which segments are lost (``first_lost``,
``lost_bytes``), when its timer must fire (``timer``: the RACK reordering
timer or the tail loss probe), and during recovery how much it may send
(``prr_cwnd``). The RTO stays in the connection as the last resort.

The record is a list of *transmissions*: one per segment (or TSO
super-segment) emitted, for data not yet acknowledged or SACKed, in sequence
order, each with the time it was last sent. RACK needs exactly that: a
segment is lost once a segment sent *after* it was delivered and a
reordering window has passed (time-based, so a lost retransmission or a
lost tail is found like any other loss, without counting duplicate ACKs).
SACKed and acknowledged records leave the list, so it holds only what is
still in doubt; a SACK edge inside a record splits it (as Linux fragments an
skb), so a retransmission never resends SACKed bytes. Splits fall only on
whole segments from the record's start (a record is whole segments and at
most one short last one), as Linux's ``tcp_match_skb_to_sack``: a peer that
SACKs scattered bytes cannot cut the record into more pieces than there
are segments in flight.

Everything here is plain integer and float arithmetic on the caller's
``now``; the per-ACK work on the loss-free path is one bisect and a pop of
the acknowledged records.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from operator import attrgetter

__all__ = ["DUP_THRESH", "WC_DEL_ACK", "Recovery", "Transmission"]

#: RFC 8985 section 7.2: the worst-case delayed-ACK time a probe of a single
#: outstanding segment allows for.
WC_DEL_ACK = 0.2
#: RFC 8985 section 6.2 (DupThresh): this many SACKed segments make the
#: reordering window zero, as three duplicate ACKs start fast retransmit.
DUP_THRESH = 3
#: RFC 8985 section 6.2: a D-SACK widens the reordering window for this many
#: recoveries.
_REO_PERSIST = 16
_PTO_NO_RTT = 1.0
_PTO_SLACK = 0.002
_END = attrgetter("end")


class Transmission:
    """One transmitted range ``[start, end)`` (FIN included) not yet delivered."""

    __slots__ = ("end", "lost", "retransmitted", "start", "xmit")

    def __init__(self, start: int, end: int, xmit: float, retransmitted: bool = False) -> None:
        self.start = start
        self.end = end
        #: when it was last sent
        self.xmit = xmit
        self.retransmitted = retransmitted
        #: marked lost and not yet sent again
        self.lost = False

    def __repr__(self) -> str:
        flags = ("L" if self.lost else "") + ("R" if self.retransmitted else "")
        return f"<{self.start}-{self.end} @{self.xmit:.3f} {flags}>"


class Recovery:
    """RACK-TLP loss detection and PRR for one connection's sending side."""

    __slots__ = (
        "dsack_round",
        "fack",
        "high",
        "in_recovery",
        "lost_bytes",
        "lost_queue",
        "min_rtt",
        "mss",
        "probe_from",
        "prr_delivered",
        "prr_out",
        "rack_end",
        "rack_rtt",
        "rack_xmit",
        "recover",
        "recover_fs",
        "reo_wnd_mult",
        "reo_wnd_persist",
        "reordering_seen",
        "retransmitted_high",
        "segs",
        "spare",
        "timer",
        "timer_is_probe",
        "tlp_end",
        "tlp_retransmitted",
    )

    def __init__(self, iss: int, mss: int) -> None:
        #: the sender's MSS: records are cut into whole segments of it
        self.mss = mss
        #: undelivered transmissions, in sequence order
        self.segs: list[Transmission] = []
        #: an original, fully delivered record kept for reuse
        self.spare: Transmission | None = None
        #: the end of the highest transmission recorded (SND.MAX once data flowed)
        self.high = iss + 1
        #: no transmission at or above this was ever resent
        self.retransmitted_high = 0
        #: transmissions marked lost, oldest first (entries no longer lost are skipped)
        self.lost_queue: deque[Transmission] = deque()
        #: bytes marked lost and not yet retransmitted: out of the pipe
        self.lost_bytes = 0
        # RACK (RFC 8985 section 6.1): the most recently sent delivered segment.
        self.rack_xmit = -1.0
        self.rack_end = 0
        self.rack_rtt = 0.0
        self.min_rtt = float("inf")
        #: highest end of a delivered segment; one delivered below it was reordered
        self.fack = 0
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = 0
        self.dsack_round: int | None = None
        #: RACK reordering timer or tail loss probe deadline (``timer_is_probe``)
        self.timer: float | None = None
        self.timer_is_probe = False
        #: the last send of new data or ACK of new data: the probe counts from it.
        #: The timer is not moved on each (that would cost a heap push per
        #: exchange); when it fires early it is put back (``probe_due``).
        self.probe_from = 0.0
        # TLP (section 7): the probe's SND.NXT, and whether it was a retransmission.
        self.tlp_end: int | None = None
        self.tlp_retransmitted = False
        # Fast recovery with PRR (RFC 6937 section 3).
        self.in_recovery = False
        #: SND.MAX when recovery started (RFC 6582 "recover"): its ACK ends recovery
        self.recover = iss
        self.recover_fs = 1
        self.prr_delivered = 0
        self.prr_out = 0

    def clear(self) -> None:
        """Forget every transmission (the connection closed)."""
        self.segs = []
        self.lost_queue.clear()
        self.lost_bytes = 0
        self.timer = None

    # -- what the connection sent -------------------------------------------------------

    def on_transmit(self, start: int, end: int, now: float) -> None:
        """``[start, end)`` went out at ``now``: new data, or a resend of recorded ranges."""
        high = self.high
        if start < high:
            segs = self.segs
            i = bisect_right(segs, start, key=_END)
            n = len(segs)
            while i < n:
                seg = segs[i]
                if seg.start >= end:
                    break
                seg.xmit = now
                seg.retransmitted = True
                self.retransmitted_high = max(self.retransmitted_high, seg.end)
                if seg.lost:
                    seg.lost = False
                    self.lost_bytes -= seg.end - seg.start
                i += 1
            if end <= high:
                return
            start = high
        self.probe_from = now
        segs = self.segs
        if segs:
            last = segs[-1]
            if (
                last.xmit == now
                and last.end == start
                and not last.retransmitted
                and not (last.end - last.start) % self.mss
            ):
                # One burst, one record: segments sent at the same instant
                # cannot be told apart by RACK's clock anyway (a SACK edge
                # inside splits it again). Not after a short segment: the
                # record's segments must lie on whole MSS from its start.
                last.end = end
                self.high = end
                return
        spare = self.spare
        if spare is None:
            segs.append(Transmission(start, end, now))
        else:
            # Reuse the record the last full ACK freed: one allocation less
            # per request/response exchange.
            self.spare = None
            spare.start = start
            spare.end = end
            spare.xmit = now
            spare.retransmitted = spare.lost = False
            segs.append(spare)
        self.high = end

    def first_lost(self) -> Transmission | None:
        """The oldest transmission still marked lost, or ``None``."""
        queue = self.lost_queue
        while queue:
            seg = queue[0]
            if seg.lost:
                return seg
            queue.popleft()
        return None

    def split(self, seg: Transmission, at: int) -> None:
        """Cut ``seg`` at ``at`` (strictly inside it), so part of it can be sent alone."""
        segs = self.segs
        i = bisect_right(segs, seg.start, key=_END)
        tail = Transmission(at, seg.end, seg.xmit, seg.retransmitted)
        seg.end = at
        segs.insert(i + 1, tail)
        if seg.lost:
            tail.lost = True
            self.lost_queue.append(tail)

    # -- what the peer delivered --------------------------------------------------------

    def _delivered(self, seg: Transmission, now: float) -> None:
        """RFC 8985 section 6.2 steps 2 and 3 for one newly delivered transmission."""
        rtt = now - seg.xmit
        if seg.lost:
            seg.lost = False
            self.lost_bytes -= seg.end - seg.start
        if seg.retransmitted and rtt < self.min_rtt:
            # Delivered sooner than any round trip: the original, not the
            # resend, arrived. No RTT to learn, nothing sent after it.
            return
        self.rack_rtt = rtt
        if not seg.retransmitted and rtt < self.min_rtt:
            self.min_rtt = rtt  # an unambiguous sample: min_RTT learns from it too
        if seg.xmit > self.rack_xmit or (seg.xmit == self.rack_xmit and seg.end > self.rack_end):
            self.rack_xmit = seg.xmit
            self.rack_end = seg.end
        if seg.end < self.fack:
            if not seg.retransmitted:
                self.reordering_seen = True
        else:
            self.fack = seg.end

    def acked(self, ack: int, now: float) -> None:
        """SND.UNA advanced to ``ack``: the transmissions below it were delivered."""
        segs = self.segs
        if not segs:
            return
        last = segs[-1]
        self.probe_from = now
        if last.end <= ack and not self.lost_bytes and segs[0].start >= self.retransmitted_high:
            # Everything acknowledged, all originals (request/response, the
            # end of a burst): the newest tells RACK all (RFC 8985 6.2 steps
            # 2 and 3 for an original, inlined: this is every exchange).
            xmit = last.xmit
            rtt = now - xmit
            self.rack_rtt = rtt
            self.min_rtt = min(self.min_rtt, rtt)
            if xmit > self.rack_xmit or (xmit == self.rack_xmit and last.end > self.rack_end):
                self.rack_xmit = xmit
                self.rack_end = last.end
            # Step 3: the oldest tells whether any was overtaken (a later
            # segment SACKed before it: reordering, none being resent).
            if segs[0].end < self.fack:
                self.reordering_seen = True
            if last.end > self.fack:  # noqa: PLR1730 (max() costs a call per exchange)
                self.fack = last.end
            segs.clear()
            self.spare = last
            return
        k = bisect_right(segs, ack, key=_END)
        if k:
            if self.lost_bytes or segs[0].start < self.retransmitted_high:
                for i in range(k):
                    self._delivered(segs[i], now)
            else:
                # Originals only (the usual case): the newest tells RACK all,
                # the oldest whether one was overtaken (step 3).
                if segs[0].end < self.fack:
                    self.reordering_seen = True
                self._delivered(segs[k - 1], now)
            del segs[:k]
        if segs:
            first = segs[0]
            if first.start < ack:
                if first.lost:
                    self.lost_bytes -= ack - first.start
                first.start = ack

    def sacked(self, left: int, right: int, now: float) -> None:
        """The peer SACKed ``[left, right)``: the whole segments inside it were delivered.

        An edge inside a record cuts it on the segment grid: the SACKed part
        rounds down to whole segments, the part left of it up (a segment
        only partly SACKed stays undelivered, as in Linux).
        """
        segs = self.segs
        i = bisect_right(segs, left, key=_END)
        if i == len(segs) or segs[i].start >= right:
            return
        mss = self.mss
        seg = segs[i]
        if seg.start < left:
            at = seg.start - (seg.start - left) // mss * mss  # rounded up
            i += 1
            if at < seg.end:
                if at >= right:
                    return  # inside one record, and no whole segment of it
                self.split(seg, at)
        j = i
        n = len(segs)
        while j < n and segs[j].end <= right:
            self._delivered(segs[j], now)
            j += 1
        if j < n and segs[j].start < right:
            seg = segs[j]
            at = seg.start + (right - seg.start) // mss * mss  # rounded down
            if at > seg.start:
                self.split(seg, at)
                self._delivered(seg, now)
                j += 1
        del segs[i:j]

    def dsack(self, snd_una: int, snd_max: int) -> None:
        """A D-SACK arrived: a retransmission was spurious, so widen the reordering window."""
        if self.dsack_round is not None and snd_una < self.dsack_round:
            return  # at most one increase per round trip (RFC 8985 section 6.2 step 4)
        self.dsack_round = snd_max
        self.reo_wnd_mult += 1
        self.reo_wnd_persist = _REO_PERSIST

    # -- RACK loss detection ------------------------------------------------------------

    def reo_wnd(self, srtt: float | None, sacked_segments: int) -> float:
        """RFC 8985 section 6.2 step 4: how long a segment may be overtaken before it is lost."""
        if not self.reordering_seen and (self.in_recovery or sacked_segments >= DUP_THRESH):
            return 0.0
        if self.min_rtt == float("inf"):
            return 0.0
        wnd = self.reo_wnd_mult * self.min_rtt / 4
        return wnd if srtt is None or wnd < srtt else srtt

    def detect_losses(self, now: float, srtt: float | None, sacked_segments: int) -> None:
        """RFC 8985 section 6.2 step 5: mark lost what a later-sent delivered segment overtook.

        Arms the reordering timer for the segments whose window has not
        passed yet. The walk stops at the first original transmission sent
        after RACK's segment: everything to its right was sent later still.
        """
        rack_xmit = self.rack_xmit
        if rack_xmit < 0:
            return
        rack_end = self.rack_end
        limit = self.rack_rtt + self.reo_wnd(srtt, sacked_segments)
        wait = 0.0
        for seg in self.segs:
            if seg.lost:
                continue
            xmit = seg.xmit
            if xmit > rack_xmit or (xmit == rack_xmit and seg.end > rack_end):
                if not seg.retransmitted:
                    break
                continue
            remaining = xmit + limit - now
            if remaining <= 0:
                seg.lost = True
                self.lost_bytes += seg.end - seg.start
                self.lost_queue.append(seg)
            elif remaining > wait:
                wait = remaining
        if wait > 0:
            self.timer = now + wait
            self.timer_is_probe = False
        elif not self.timer_is_probe:
            self.timer = None

    def mark_lost(self, seg: Transmission) -> None:
        """Mark one transmission lost by another rule (NewReno, a tail probe)."""
        if not seg.lost:
            seg.lost = True
            self.lost_bytes += seg.end - seg.start
            self.lost_queue.append(seg)

    def mark_first_lost(self, mss: int) -> None:
        """NewReno without SACK (RFC 6582): the segment at SND.UNA is lost."""
        if self.segs:
            first = self.segs[0]
            if first.end - first.start > mss:
                self.split(first, first.start + mss)
            self.mark_lost(first)

    # -- tail loss probe ------------------------------------------------------------------

    @staticmethod
    def pto(srtt: float | None, one_segment: bool) -> float:
        """RFC 8985 section 7.2: 2 SRTT, plus the worst delayed ACK for a single segment."""
        pto = _PTO_NO_RTT if srtt is None else 2 * srtt
        # Linux adds TCP_TIMEOUT_MIN (2 ms) so a near-zero SRTT on a local
        # link does not probe at once.
        return pto + (WC_DEL_ACK if one_segment else _PTO_SLACK)

    def arm_probe(self, now: float, srtt: float | None, one_segment: bool, rto_at: float) -> None:
        """RFC 8985 section 7.2: probe a PTO after the last send or ACK.

        Never later than the RTO would fire: then the probe goes out in the
        RTO's place (TLP_calc_PTO), as Linux does, and the RTO restarts.
        """
        self.probe_from = now
        at = now + self.pto(srtt, one_segment)
        self.timer = at if at < rto_at else rto_at
        self.timer_is_probe = True

    def probe_due(self, now: float, srtt: float | None, one_segment: bool, rto_at: float) -> bool:
        """The probe timer fired: True if a probe is due, else it is put back for later."""
        at = self.probe_from + self.pto(srtt, one_segment)
        at = min(at, rto_at)
        if at <= now:
            return True
        self.timer = at
        self.timer_is_probe = True
        return False

    # -- fast recovery with PRR -------------------------------------------------------

    def start_recovery(self, flight: int, snd_max: int) -> None:
        """RFC 6937 section 3: initialisation at the start of recovery."""
        self.in_recovery = True
        if self.timer_is_probe:
            self.timer = None  # no tail loss probes during recovery (RFC 8985 7.2)
        self.recover = snd_max
        self.recover_fs = flight if flight > 0 else 1
        self.prr_delivered = 0
        self.prr_out = 0

    def end_recovery(self) -> None:
        self.in_recovery = False
        if self.reo_wnd_persist:
            self.reo_wnd_persist -= 1
            if not self.reo_wnd_persist:
                self.reo_wnd_mult = 1

    def prr_cwnd(
        self, delivered: int, pipe: int, ssthresh: int, mss: int, *, safe_ack: bool
    ) -> int:
        """RFC 6937 section 3 on each ACK in recovery: the window for what may go out now.

        Proportional while the pipe is above ssthresh (sending in step with
        what the network delivers). Below it, conservative reduction bound
        (send what was delivered), plus one segment of slow start only on a
        "safe" ACK, one that advanced SND.UNA and showed no new loss
        (draft-ietf-tcpm-prr-rfc6937bis; Linux since 6.0).
        """
        self.prr_delivered += delivered
        if pipe > ssthresh:
            sndcnt = -(-self.prr_delivered * ssthresh // self.recover_fs) - self.prr_out
        else:
            room = self.prr_delivered - self.prr_out
            limit = room if room > delivered else delivered
            if safe_ack:
                limit += mss
            sndcnt = ssthresh - pipe
            sndcnt = min(sndcnt, limit)
        return pipe + (sndcnt if sndcnt > 0 else 0)

    def abandon(self) -> None:
        """The retransmission timer fired: go-back-N takes over (RFC 8985 section 6.3)."""
        for seg in self.lost_queue:
            seg.lost = False
        self.lost_queue.clear()
        self.lost_bytes = 0
        self.tlp_end = None
        self.timer = None
        if self.in_recovery:
            self.end_recovery()
