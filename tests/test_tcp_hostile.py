"""Hostile input: arbitrary segments never raise, never break the memory bound,
and never make the machine emit a header the wire could not carry."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tcp_script import LOCAL_PORT, OUR_ISS, PEER_ISS, PEER_PORT, PLAIN, Script, established
from tests.tcp_sim import check_wire
from trionet.tcp import TcpConfig, TcpConnection, TcpState
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions

_u32 = st.integers(0, 2**32 - 1)


def _near(center: int) -> st.SearchStrategy[int]:
    return st.one_of(
        _u32, st.integers(center - 70_000, center + 70_000).map(lambda v: v & 0xFFFF_FFFF)
    )


_options = st.builds(
    TcpOptions,
    mss=st.one_of(st.none(), st.integers(0, 0xFFFF)),
    window_scale=st.one_of(st.none(), st.integers(0, 255)),
    sack_permitted=st.booleans(),
    sack_blocks=st.lists(st.tuples(_near(OUR_ISS), _near(OUR_ISS)), max_size=4).map(tuple),
    timestamp=st.one_of(st.none(), st.tuples(_u32, _u32)),
)

_segment = st.tuples(
    st.integers(0, 0xFF).map(TcpFlags),
    _near(PEER_ISS + 1),
    _near(OUR_ISS + 1),
    st.integers(0, 0xFFFF),
    _options,
    st.binary(max_size=3000),
    st.floats(0.0, 5.0),
)

_configs = st.sampled_from(
    [
        PLAIN,
        TcpConfig(recv_buffer=4096, send_buffer=4096, ooo_max_bytes=2048, ooo_max_blocks=4),
        TcpConfig(),
    ]
)

_starts = st.sampled_from(["established", "syn_received", "syn_sent", "listen", "fin_wait"])


def _start(kind: str, config: TcpConfig) -> TcpConnection:
    if kind == "listen":
        return TcpConnection.listen(LOCAL_PORT, iss=OUR_ISS, config=config)
    if kind == "syn_sent":
        conn = TcpConnection.connect(LOCAL_PORT, PEER_PORT, iss=OUR_ISS, config=config, now=0.0)
        conn.segments_to_send(0.0)
        return conn
    if kind == "syn_received":
        hdr = TcpHeader(PEER_PORT, LOCAL_PORT, PEER_ISS, 0, TcpFlags.SYN, 65535)
        return TcpConnection.accept(hdr, iss=OUR_ISS, config=config, now=0.0)
    s: Script = established(config)
    s.conn.send(b"queued data " * 500)
    if kind == "fin_wait":
        s.conn.close()
    s.conn.segments_to_send(0.0)
    return s.conn


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=_starts, config=_configs, segments=st.lists(_segment, max_size=30))
def test_arbitrary_segments_never_raise(
    kind: str,
    config: TcpConfig,
    segments: list[tuple[TcpFlags, int, int, int, TcpOptions, bytes, float]],
) -> None:
    conn = _start(kind, config)
    now = 0.0
    for flags, seq, ack, window, options, payload, dt in segments:
        now += dt
        header = TcpHeader(PEER_PORT, LOCAL_PORT, seq, ack, flags, window, 0, options)
        conn.receive_segment(header, payload, now)
        deadline = conn.next_deadline()
        if deadline is not None and deadline <= now:
            conn.handle_timers(now)
        limit = config.max_segment_payload or conn.send_mss
        for out_header, out_payload in conn.segments_to_send(now):
            check_wire(out_header, len(out_payload), limit)
        while conn.next_event() is not None:
            pass
        conn.read(1000)
        assert conn.memory_in_use <= conn.memory_limit
        assert isinstance(conn.state, TcpState)
    # Whatever happened, the timers still drive the machine to a sane end.
    for _ in range(200):
        deadline = conn.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        conn.handle_timers(now)
        conn.segments_to_send(now)
    assert conn.next_deadline() is None or conn.state is TcpState.ESTABLISHED


def test_huge_window_scale_is_clamped_to_14() -> None:
    s = established(dataclasses.replace(PLAIN, window_scaling=True, recv_buffer=300_000), ws=200)
    s.feed(TcpFlags.ACK, window=0xFFFF)
    s.conn.send(b"x" * 10)
    assert s.raw()  # the window is 0xFFFF << 14, not an overflowed shift


def test_tiny_peer_mss_is_floored() -> None:
    s = established(mss=0)
    assert s.conn.send_mss >= 64


def test_reset_answers_to_a_flood_are_capped_between_drains() -> None:
    s = established()
    s.conn.abort()
    s.raw()
    for i in range(100):
        s.feed(TcpFlags.ACK, b"x", ack=i)
    assert len(s.raw()) == 16
    assert s.conn.stats["reset_rate_limited"] == 84


def test_sub_segment_sacks_cannot_fragment_the_retransmission_record() -> None:
    # A guest that SACKs every other byte of the data in flight (the Linux
    # "SACK slowness" attack, CVE-2019-11478) must not split the sender's
    # record of transmissions into one entry per byte: that would cost
    # memory per byte in flight and make every ACK walk the whole list.
    # As Linux's tcp_match_skb_to_sack, SACK edges cut records only at
    # whole segments, so the record stays at most about one entry per MSS.
    cfg = dataclasses.replace(PLAIN, sack=True)
    s = established(cfg, sack=True, rtt=0.01)
    una = OUR_ISS + 1
    s.now = 1.0
    s.conn.send(bytes(40_000))
    flight = sum(len(p) for _, p in s.raw())
    assert flight >= 10 * s.conn.send_mss
    for k in range(0, flight // 2 - 8, 4):
        s.now += 0.0001
        blocks = tuple((una + 1 + 2 * (k + j), una + 2 + 2 * (k + j)) for j in range(4))
        s.feed(TcpFlags.ACK, ack=una, options=TcpOptions(sack_blocks=blocks))
        s.raw()
    assert len(s.conn._rec.segs) <= 2 * (flight // s.conn.send_mss + 1)
