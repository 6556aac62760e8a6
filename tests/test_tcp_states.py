"""Transcript tests: every RFC 9293 state transition, and RST in every state.

Each test reads as "segment in -> segments out": the scripted peer feeds a
segment, and the machine's answer is compared in tcpdump form.
"""

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
    fmt,
    syn,
)
from tests.tcp_sim import Simulation
from trionet.tcp import (
    Closed,
    ConnectionReset,
    Established,
    PeerFinished,
    Readable,
    ResetReason,
    TcpConnection,
    TcpState,
    TcpStateError,
    reset_for,
)
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions

F = TcpFlags
S = TcpState


# -- opening ----------------------------------------------------------------


def test_accept_answers_syn_ack_then_ack_establishes() -> None:
    conn = TcpConnection.accept(syn(), iss=OUR_ISS, config=PLAIN, now=0.0)
    assert conn.state is S.SYN_RECEIVED
    s = Script(conn, seq=PEER_ISS + 1, ack=OUR_ISS + 1)
    (synack,) = s.raw()
    assert fmt(synack) == "[S.] seq 5000 ack 1001 win 65535 len 0"
    assert synack[0].options.mss == PLAIN.mss
    s.feed(F.ACK)
    assert conn.state is S.ESTABLISHED
    assert s.events() == [Established()]
    assert s.out() == []


def test_accept_refuses_non_syn() -> None:
    bad = TcpHeader(PEER_PORT, LOCAL_PORT, 1, 1, F.SYN | F.ACK, 100)
    with pytest.raises(ValueError):
        TcpConnection.accept(bad, iss=1, config=PLAIN, now=0.0)


def test_active_open_syn_sent_to_established() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    s = Script(conn, seq=PEER_ISS)
    assert conn.state is S.SYN_SENT
    assert s.out() == ["[S] seq 5000 ack 0 win 65535 len 0"]
    s.feed(F.SYN | F.ACK, ack=OUR_ISS + 1, options=syn().options)
    assert conn.state is S.ESTABLISHED
    assert s.events() == [Established()]
    assert s.out() == ["[.] seq 5001 ack 1001 win 65535 len 0"]


def test_syn_sent_bad_ack_draws_reset_and_stays() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    s = Script(conn, seq=PEER_ISS)
    s.raw()
    s.feed(F.SYN | F.ACK, ack=OUR_ISS + 77)
    assert s.out() == [f"[R] seq {OUR_ISS + 77} ack 0 win 0 len 0"]
    assert conn.state is S.SYN_SENT
    assert conn.stats["bad_ack_syn_sent"] == 1


def test_simultaneous_open() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    s = Script(conn, seq=PEER_ISS)
    s.raw()
    # The peer's own SYN crosses ours (RFC 9293 figure 8).
    s.feed(F.SYN, options=syn().options)
    assert conn.state is S.SYN_RECEIVED
    assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]
    # The peer's SYN-ACK for our SYN completes the handshake.
    s.feed(F.SYN | F.ACK, seq=PEER_ISS, ack=OUR_ISS + 1, advance=False)
    assert conn.state is S.ESTABLISHED
    assert s.events() == [Established()]
    assert s.out() == []


def test_simultaneous_open_two_machines() -> None:
    a = TcpConnection.connect(1111, 2222, iss=100, config=PLAIN, now=0.0)
    b = TcpConnection.connect(2222, 1111, iss=900, config=PLAIN, now=0.0)
    sim = Simulation(a, b, a_data=b"from a", b_data=b"from b")
    sim.run(until=300.0)
    assert bytes(sim.b.received) == b"from a"
    assert bytes(sim.a.received) == b"from b"
    assert a.state is S.CLOSED and b.state is S.CLOSED
    assert not sim.a.resets and not sim.b.resets


def test_listen_syn_to_syn_received_and_back_on_reset() -> None:
    conn = TcpConnection.listen(LOCAL_PORT, iss=OUR_ISS, config=PLAIN)
    assert conn.state is S.LISTEN
    s = Script(conn, seq=PEER_ISS)
    s.feed(F.ACK, ack=123)
    assert s.out() == ["[R] seq 123 ack 0 win 0 len 0"]
    s.feed(F.RST)
    assert s.out() == []
    conn.receive_segment(syn(), b"", 0.0)
    assert conn.state is S.SYN_RECEIVED
    assert conn.remote_port == PEER_PORT
    assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]
    s.seq = PEER_ISS + 1
    s.feed(F.RST)
    assert conn.state is S.LISTEN
    conn.receive_segment(syn(seq=7000), b"", 1.0)
    assert conn.state is S.SYN_RECEIVED


def test_listen_close_goes_closed() -> None:
    conn = TcpConnection.listen(LOCAL_PORT, iss=OUR_ISS, config=PLAIN)
    conn.close()
    assert conn.state is S.CLOSED
    assert conn.next_event() == Closed()


def test_syn_sent_close_goes_closed() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    conn.close()
    assert conn.state is S.CLOSED
    assert conn.next_deadline() is None


def test_duplicate_syn_in_syn_received_resends_syn_ack() -> None:
    s = accepted()
    s.conn.receive_segment(syn(), b"", 0.5)
    assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]


def test_syn_received_bad_ack_draws_reset() -> None:
    s = accepted()
    s.feed(F.ACK, ack=OUR_ISS + 50)
    assert s.out() == [f"[R] seq {OUR_ISS + 50} ack 0 win 0 len 0"]
    assert s.conn.state is S.SYN_RECEIVED


def test_close_in_syn_received_sends_fin_after_establishing() -> None:
    s = accepted()
    s.conn.close()
    assert s.out() == []
    s.feed(F.ACK)
    assert s.conn.state is S.FIN_WAIT_1
    assert s.out() == ["[F.] seq 5001 ack 1001 win 65535 len 0"]


def test_data_queued_before_established_goes_after() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    assert conn.send(b"early") == 5
    s = Script(conn, seq=PEER_ISS)
    assert s.out() == ["[S] seq 5000 ack 0 win 65535 len 0"]
    s.feed(F.SYN | F.ACK, ack=OUR_ISS + 1, options=syn().options)
    assert s.out() == ["[P.] seq 5001 ack 1001 win 65535 len 5"]


# -- closing ------------------------------------------------------------------


def test_active_close_fin_wait_1_2_time_wait_closed() -> None:
    s = established()
    s.conn.close()
    assert s.conn.state is S.FIN_WAIT_1
    assert s.out() == ["[F.] seq 5001 ack 1001 win 65535 len 0"]
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.FIN_WAIT_2
    s.feed(F.FIN | F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.TIME_WAIT
    assert s.out() == ["[.] seq 5002 ack 1002 win 65535 len 0"]
    assert s.events() == [PeerFinished()]
    assert s.conn.next_deadline() == pytest.approx(60.0)
    # A retransmitted FIN in TIME-WAIT is acknowledged and restarts 2 MSL.
    s.tick(30.0)
    s.feed(F.FIN | F.ACK, seq=PEER_ISS + 1, ack=OUR_ISS + 2, advance=False)
    assert s.out() == ["[.] seq 5002 ack 1002 win 65535 len 0"]
    assert s.conn.next_deadline() == pytest.approx(90.0)
    s.tick(89.9)
    assert s.conn.state is S.TIME_WAIT
    s.tick(90.0)
    assert s.conn.state is S.CLOSED
    assert s.events() == [Closed()]
    assert s.conn.next_deadline() is None


def test_fin_wait_1_to_closing_to_time_wait() -> None:
    s = established()
    s.conn.close()
    s.out()
    s.feed(F.FIN | F.ACK)  # the peer's FIN crosses ours: it does not ack our FIN
    assert s.conn.state is S.CLOSING
    assert s.out() == ["[.] seq 5002 ack 1002 win 65535 len 0"]
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.TIME_WAIT


def test_fin_wait_1_fin_ack_goes_straight_to_time_wait() -> None:
    s = established()
    s.conn.close()
    s.out()
    s.feed(F.FIN | F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.TIME_WAIT


def test_passive_close_close_wait_last_ack_closed() -> None:
    s = established()
    s.feed(F.FIN | F.ACK)
    assert s.conn.state is S.CLOSE_WAIT
    assert s.out() == ["[.] seq 5001 ack 1002 win 65535 len 0"]
    assert s.events() == [PeerFinished()]
    # Half-close: we may still send after the peer's FIN.
    assert s.conn.send(b"late reply") == 10
    assert s.out() == ["[P.] seq 5001 ack 1002 win 65535 len 10"]
    s.conn.close()
    assert s.conn.state is S.LAST_ACK
    assert s.out() == ["[F.] seq 5011 ack 1002 win 65535 len 0"]
    s.feed(F.ACK, ack=OUR_ISS + 12)
    assert s.conn.state is S.CLOSED
    assert s.events() == [Closed()]
    assert s.conn.next_deadline() is None


def test_half_close_we_keep_receiving_after_our_fin() -> None:
    s = established()
    s.conn.close()
    s.out()
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.FIN_WAIT_2
    s.feed(F.ACK | F.PSH, b"still talking", ack=OUR_ISS + 2)
    assert s.conn.read() == b"still talking"
    with pytest.raises(TcpStateError):
        s.conn.send(b"x")


def test_simultaneous_close_two_machines() -> None:
    cfg = PLAIN
    a = TcpConnection.connect(1111, 2222, iss=100, config=cfg, now=0.0)
    ((syn_seg, _),) = a.segments_to_send(0.0)
    b = TcpConnection.accept(syn_seg, iss=900, config=cfg, now=0.0)
    sim = Simulation(a, b)
    sim.a.close_when_done = sim.b.close_when_done = False
    sim.run_until(lambda: a.state is S.ESTABLISHED and b.state is S.ESTABLISHED)
    a.close()
    b.close()
    states: list[tuple[S, S]] = []
    sim.run_until(lambda: states.append((a.state, b.state)) or False, until=sim.now + 0.02)
    assert (S.CLOSING, S.CLOSING) in states
    sim.run(until=sim.now + 200)
    assert a.state is S.CLOSED and b.state is S.CLOSED


def test_fin_waits_for_queued_data() -> None:
    s = established()
    s.window = 1000
    s.feed(F.ACK)  # peer's window shrinks to 1000 bytes
    s.conn.send(b"d" * 2500)
    s.conn.close()
    assert s.out() == ["[.] seq 5001 ack 1001 win 65535 len 1000"]
    s.feed(F.ACK, ack=OUR_ISS + 1001)
    assert s.out() == ["[.] seq 6001 ack 1001 win 65535 len 1000"]
    s.feed(F.ACK, ack=OUR_ISS + 2001)
    # The FIN rides on the last data segment, never before it.
    assert s.out() == ["[FP.] seq 7001 ack 1001 win 65535 len 500"]


def test_peer_fin_before_missing_data_is_held_until_data_arrives() -> None:
    s = established()
    s.feed(F.FIN | F.ACK, seq=PEER_ISS + 1 + 5, advance=False)
    assert s.conn.state is S.ESTABLISHED
    assert s.events() == []
    s.feed(F.ACK, b"hello")
    assert s.conn.state is S.CLOSE_WAIT
    assert s.events() == [Readable(), PeerFinished()]
    assert s.conn.read() == b"hello"
    assert s.conn.at_eof
    assert s.out() == ["[.] seq 5001 ack 1007 win 65535 len 0"]


# -- resets ---------------------------------------------------------------------


def _in_state(state: S) -> Script:
    """A scripted connection brought into ``state``."""
    if state is S.LISTEN:
        conn = TcpConnection.listen(LOCAL_PORT, iss=OUR_ISS, config=PLAIN)
        return Script(conn, seq=PEER_ISS)
    if state is S.SYN_SENT:
        conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
        s = Script(conn, seq=PEER_ISS, ack=OUR_ISS + 1)
        s.raw()
        return s
    if state is S.SYN_RECEIVED:
        return accepted()
    s = established()
    if state is S.ESTABLISHED:
        return s
    if state is S.CLOSE_WAIT:
        s.feed(F.FIN | F.ACK)
    elif state is S.LAST_ACK:
        s.feed(F.FIN | F.ACK)
        s.conn.close()
    elif state is S.FIN_WAIT_1:
        s.conn.close()
    elif state is S.FIN_WAIT_2:
        s.conn.close()
        s.out()
        s.feed(F.ACK, ack=OUR_ISS + 2)
    elif state is S.CLOSING:
        s.conn.close()
        s.out()
        s.feed(F.FIN | F.ACK)
    elif state is S.TIME_WAIT:
        s.conn.close()
        s.out()
        s.feed(F.FIN | F.ACK, ack=OUR_ISS + 2)
    elif state is S.CLOSED:
        s.conn.abort()
    s.raw()
    s.events()
    assert s.conn.state is state
    return s


SYNCHRONIZED = [
    S.ESTABLISHED,
    S.FIN_WAIT_1,
    S.FIN_WAIT_2,
    S.CLOSE_WAIT,
    S.CLOSING,
    S.LAST_ACK,
    S.TIME_WAIT,
]


@pytest.mark.parametrize("state", [*SYNCHRONIZED, S.SYN_RECEIVED])
def test_exact_rst_closes(state: S) -> None:
    s = _in_state(state)
    s.feed(F.RST)
    assert s.conn.state is S.CLOSED
    assert s.out() == []
    events = s.events()
    if state is S.TIME_WAIT:
        assert events == [Closed()]
    else:
        assert events == [ConnectionReset(ResetReason.RESET_BY_PEER), Closed()]
    assert s.conn.next_deadline() is None


@pytest.mark.parametrize("state", [*SYNCHRONIZED, S.SYN_RECEIVED])
def test_in_window_rst_draws_challenge_ack(state: S) -> None:
    s = _in_state(state)
    s.feed(F.RST, seq=s.seq + 100)
    assert s.conn.state is state
    out = s.raw()
    assert len(out) == 1 and out[0][0].flags & F.ACK and not out[0][0].flags & F.RST
    assert s.conn.stats["rst_challenged"] == 1


@pytest.mark.parametrize("state", [*SYNCHRONIZED, S.SYN_RECEIVED])
def test_out_of_window_rst_is_dropped(state: S) -> None:
    s = _in_state(state)
    s.feed(F.RST, seq=s.seq + 10_000_000)
    s.feed(F.RST, seq=s.seq - 10)
    assert s.conn.state is state
    assert s.out() == []
    assert s.conn.stats["rst_out_of_window"] == 2


def test_rst_in_listen_is_ignored() -> None:
    s = _in_state(S.LISTEN)
    s.feed(F.RST)
    assert s.conn.state is S.LISTEN
    assert s.out() == []


def test_rst_in_syn_sent_needs_acceptable_ack() -> None:
    s = _in_state(S.SYN_SENT)
    s.feed(F.RST)  # no ACK: cannot be validated, dropped
    assert s.conn.state is S.SYN_SENT
    s.feed(F.RST | F.ACK, ack=OUR_ISS + 1)
    assert s.conn.state is S.CLOSED
    assert s.events() == [ConnectionReset(ResetReason.REFUSED), Closed()]
    assert s.out() == []


def test_rst_from_listen_born_syn_received_returns_to_listen() -> None:
    conn = TcpConnection.listen(LOCAL_PORT, iss=OUR_ISS, config=PLAIN)
    conn.receive_segment(syn(), b"", 0.0)
    s = Script(conn, seq=PEER_ISS + 1)
    s.raw()
    s.feed(F.RST)
    assert conn.state is S.LISTEN
    assert s.events() == []


def test_closed_connection_answers_with_reset() -> None:
    s = _in_state(S.CLOSED)
    s.feed(F.ACK, b"data", ack=777)
    assert s.out() == ["[R] seq 777 ack 0 win 0 len 0"]
    s.feed(F.RST)
    assert s.out() == []


def test_abort_sends_rst_and_closes() -> None:
    s = established()
    s.conn.send(b"unsent")
    s.conn.abort()
    assert s.out() == ["[R.] seq 5001 ack 1001 win 0 len 0"]
    assert s.events() == [Closed()]
    assert s.conn.next_deadline() is None
    assert s.conn.memory_in_use == 0


def test_reset_for_unowned_segments() -> None:
    with_ack = TcpHeader(PEER_PORT, LOCAL_PORT, 10, 4242, F.ACK, 100)
    rst = reset_for(with_ack, 0)
    assert rst is not None
    assert (rst.flags, rst.seq, rst.src_port, rst.dst_port) == (F.RST, 4242, LOCAL_PORT, PEER_PORT)
    bare_syn = TcpHeader(PEER_PORT, LOCAL_PORT, 0xFFFF_FFFF, 0, F.SYN, 100)
    rst = reset_for(bare_syn, 0)
    assert rst is not None
    assert (rst.flags, rst.seq, rst.ack) == (F.RST | F.ACK, 0, 0)  # ack wraps
    data_fin = TcpHeader(PEER_PORT, LOCAL_PORT, 100, 0, F.FIN, 100)
    rst = reset_for(data_fin, 10)
    assert rst is not None and rst.ack == 111
    assert reset_for(TcpHeader(PEER_PORT, LOCAL_PORT, 1, 1, F.RST, 0), 0) is None


# -- RFC 5961 -----------------------------------------------------------------


def test_syn_in_established_draws_challenge_ack() -> None:
    s = established()
    s.conn.receive_segment(syn(seq=PEER_ISS + 10), b"", 0.0)
    assert s.conn.state is S.ESTABLISHED
    assert s.out() == ["[.] seq 5001 ack 1001 win 65535 len 0"]
    assert s.conn.stats["syn_challenged"] == 1


def test_challenge_acks_are_rate_limited() -> None:
    s = established()
    for i in range(25):
        s.feed(F.RST, seq=s.seq + 10 + i)
        s.raw()
    assert s.conn.stats["challenge_ack_sent"] == 10
    assert s.conn.stats["challenge_ack_rate_limited"] == 15
    s.now = 1.0  # the bucket refills at the configured rate
    s.feed(F.RST, seq=s.seq + 10)
    assert len(s.raw()) == 1


def test_ack_of_unsent_data_is_challenged_and_ignored() -> None:
    s = established()
    s.feed(F.ACK | F.PSH, b"abc", ack=OUR_ISS + 1000)
    assert s.conn.readable_bytes == 0
    assert s.conn.stats["ack_of_unsent"] == 1
    assert s.out() == ["[.] seq 5001 ack 1001 win 65535 len 0"]


def test_blind_data_with_too_old_ack_is_rejected() -> None:
    s = established()
    # MAX.SND.WND is 65535; an ACK further behind SND.UNA than that is blind injection.
    s.feed(F.ACK | F.PSH, b"evil", ack=OUR_ISS + 1 - 70_000)
    assert s.conn.readable_bytes == 0
    assert s.conn.stats["ack_too_old"] == 1


def test_segment_without_ack_is_dropped() -> None:
    s = established()
    s.feed(F.PSH, b"noack")
    assert s.conn.readable_bytes == 0
    assert s.conn.stats["no_ack"] == 1


def test_wrong_ports_are_dropped() -> None:
    s = established()
    hdr = TcpHeader(PEER_PORT + 1, LOCAL_PORT, s.seq, s.ack, F.ACK | F.RST, 100)
    s.conn.receive_segment(hdr, b"", 0.0)
    assert s.conn.state is S.ESTABLISHED
    assert s.conn.stats["wrong_port"] == 1


def test_syn_received_gives_up_after_syn_retries() -> None:
    s = accepted(dataclasses.replace(PLAIN, syn_ack_retries=2))
    for at in (1.0, 3.0):
        s.tick(at)
        assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]
    s.tick(7.0)
    assert s.conn.state is S.CLOSED
    assert s.events() == [ConnectionReset(ResetReason.TIMEOUT), Closed()]
    assert s.out() == ["[R.] seq 5001 ack 1001 win 0 len 0"]


@pytest.mark.parametrize("state", [S.LISTEN, S.SYN_SENT, S.SYN_RECEIVED, *SYNCHRONIZED, S.CLOSED])
def test_abort_in_every_state(state: S) -> None:
    s = _in_state(state)
    s.conn.abort()
    assert s.conn.state is S.CLOSED
    out = s.out()
    sends_rst = state in (S.SYN_RECEIVED, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT)
    assert [h.flags & F.RST for h, _ in s.raw()] == []
    assert len(out) == (1 if sends_rst else 0)
    if sends_rst:
        assert out[0].startswith("[R.]")
    assert s.events() == ([] if state is S.CLOSED else [Closed()])
    assert s.conn.next_deadline() is None


def test_close_is_idempotent_and_send_after_close_is_refused() -> None:
    s = established()
    s.conn.close()
    s.conn.close()
    assert s.out() == ["[F.] seq 5001 ack 1001 win 65535 len 0"]
    assert s.conn.send_space == 0
    with pytest.raises(TcpStateError):
        s.conn.send(b"late")


def test_rst_after_simultaneous_open_is_a_refusal() -> None:
    conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=PLAIN, now=0.0)
    s = Script(conn, seq=PEER_ISS)
    s.raw()
    s.feed(F.SYN, options=syn().options)
    s.raw()
    s.events()
    s.feed(F.RST)
    assert s.events() == [ConnectionReset(ResetReason.REFUSED), Closed()]


def test_fin_wait_2_timeout_when_configured() -> None:
    s = established(dataclasses.replace(PLAIN, fin_wait_2_timeout=30.0))
    s.conn.close()
    s.out()
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.state is S.FIN_WAIT_2
    assert s.conn.next_deadline() == 30.0
    s.tick(20.0)
    s.feed(F.ACK | F.PSH, b"still here", ack=OUR_ISS + 2)  # activity restarts it
    s.tick(20.04)  # the delayed ACK for that data
    assert s.out() == ["[.] seq 5002 ack 1011 win 65525 len 0"]
    assert s.conn.next_deadline() == 50.0
    s.tick(50.0)
    assert s.conn.state is S.CLOSED
    assert s.events()[-2:] == [ConnectionReset(ResetReason.TIMEOUT), Closed()]
    assert s.out() == ["[R.] seq 5002 ack 1011 win 0 len 0"]


def test_fin_wait_2_waits_forever_by_default() -> None:
    s = established()
    s.conn.close()
    s.out()
    s.feed(F.ACK, ack=OUR_ISS + 2)
    assert s.conn.next_deadline() is None


# -- RFC 9293 3.10.7.4 with RFC 7323 4.3: a rejected segment changes nothing ---

_TS_CFG = dataclasses.replace(PLAIN, timestamps=True)
_HUGE_TSVAL = 0x7000_0000


def _ts_established() -> Script:
    s = established(_TS_CFG, ts=(1000, 0))
    s.tsval = 1001
    return s


def _then_normal_data_is_accepted(s: Script) -> None:
    s.raw()
    s.tsval = 1002
    s.feed(F.ACK | F.PSH, b"data")
    assert s.conn.stats.get("paws_rejected", 0) == 0
    assert s.conn.read() == b"data"
    s.tick(1.0)
    (ack,) = s.raw()
    assert ack[0].ack == PEER_ISS + 1 + 4
    assert ack[0].options.timestamp is not None and ack[0].options.timestamp[1] == 1002


def test_unacceptable_ack_with_huge_tsval_does_not_move_ts_recent() -> None:
    s = _ts_established()
    s.tsval = _HUGE_TSVAL
    s.feed(F.ACK, ack=OUR_ISS + 1000, advance=False)
    assert s.conn.stats["ack_of_unsent"] == 1
    (challenge,) = s.raw()
    # The challenge ACK still echoes the old TS.Recent.
    assert challenge[0].options.timestamp is not None
    assert challenge[0].options.timestamp[1] == 1000
    _then_normal_data_is_accepted(s)


def test_in_window_rst_with_huge_tsval_does_not_move_ts_recent() -> None:
    s = _ts_established()
    s.tsval = _HUGE_TSVAL
    s.feed(F.RST, seq=s.seq + 10, advance=False)
    assert s.conn.stats["rst_challenged"] == 1
    assert s.conn.state is S.ESTABLISHED
    _then_normal_data_is_accepted(s)


def test_in_window_syn_with_huge_tsval_does_not_move_ts_recent() -> None:
    s = _ts_established()
    s.tsval = _HUGE_TSVAL
    # At RCV.NXT, so SEG.SEQ <= Last.ACK.sent: the old code took its TSval.
    s.feed(F.SYN, seq=s.seq, ack=0, advance=False)
    assert s.conn.stats["syn_challenged"] == 1
    _then_normal_data_is_accepted(s)


def test_too_old_ack_with_huge_tsval_does_not_move_ts_recent() -> None:
    s = _ts_established()
    s.tsval = _HUGE_TSVAL
    s.feed(F.ACK | F.PSH, b"evil", ack=OUR_ISS + 1 - 70_000)
    assert s.conn.stats["ack_too_old"] == 1
    s.seq = (s.seq - 4) & 0xFFFF_FFFF
    _then_normal_data_is_accepted(s)


def test_rejected_segments_leave_window_sack_and_timers_alone() -> None:
    cfg = dataclasses.replace(PLAIN, sack=True, keepalive=100.0)
    s = established(cfg, sack=True)
    s.conn.send(b"x" * 3000)
    s.raw()
    ka_before = s.conn.next_deadline()
    s.now = 5.0
    # ACK beyond SND.NXT, with a zero window, a SACK block and a FIN: all ignored.
    blocks = ((OUR_ISS + 1 + 1000) & 0xFFFF_FFFF, (OUR_ISS + 1 + 2000) & 0xFFFF_FFFF)
    s.feed(
        F.ACK | F.FIN,
        ack=OUR_ISS + 100_000,
        window=0,
        options=TcpOptions(sack_blocks=(blocks,)),
        advance=False,
    )
    assert s.conn.state is S.ESTABLISHED
    assert not s.conn._sacked.ranges
    assert s.conn._snd_wnd == 65535
    assert s.conn._last_ack_time == 0.0
    assert s.conn.next_deadline() == ka_before


def test_syn_received_gives_up_when_linux_does_by_default() -> None:
    # tcp_synack_retries = 5 from a 1 s RTO: SYN-ACKs at 0, 1, 3, 7, 15, 31 s,
    # give-up at 63 s. A half-open connection holds a slot and a host
    # connection; it must not outlive the kernel's (was 255 s).
    s = accepted()
    for at in (1.0, 3.0, 7.0, 15.0, 31.0):
        s.tick(at)
        assert s.out() == ["[S.] seq 5000 ack 1001 win 65535 len 0"]
    s.tick(62.9)
    assert s.conn.state is S.SYN_RECEIVED
    s.tick(63.0)
    assert s.conn.state is S.CLOSED
    assert s.events() == [ConnectionReset(ResetReason.TIMEOUT), Closed()]
