"""Two machines back to back over a hostile simulated link (hypothesis chooses the link).

Whatever the loss, duplication, reordering, delay, buffer sizes, MSS and
options: every byte arrives intact and in order both ways, both ends reach
CLOSED, no timer stays armed, and memory never exceeds the configured bound.
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tcp_sim import LinkParams, Simulation
from trionet.tcp import TcpConfig, TcpConnection, TcpState

_link = st.builds(
    LinkParams,
    delay=st.floats(0.0001, 0.05),
    rate=st.sampled_from([0.0, 1e6, 100e6]),
    loss=st.floats(0.0, 0.15),
    duplicate=st.floats(0.0, 0.1),
    reorder=st.floats(0.0, 0.3),
    reorder_delay=st.floats(0.0, 0.1),
)


@st.composite
def _config(draw: st.DrawFn) -> TcpConfig:
    buf = draw(st.sampled_from([1024, 3000, 16384, 65535, 300_000]))
    ws = draw(st.booleans()) or buf > 0xFFFF
    mss = draw(st.sampled_from([536, 1460, 8960]))
    tso = draw(st.sampled_from([None, 4 * mss, 65000 if mss < 65000 else None]))
    return TcpConfig(
        mss=mss,
        max_segment_payload=tso,
        send_buffer=draw(st.sampled_from([1000, 8192, 65536, 300_000])),
        recv_buffer=buf,
        ooo_max_bytes=draw(st.sampled_from([0, 4000, None])),
        ooo_max_blocks=draw(st.sampled_from([1, 8, 128])),
        window_scaling=ws,
        timestamps=draw(st.booleans()),
        sack=draw(st.booleans()),
        delayed_ack=draw(st.sampled_from([0.0, 0.04, 0.2])),
        nagle=draw(st.booleans()),
        rto_min=0.2,
        rto_initial=1.0,
        # TIME-WAIT must outlast the peer's FIN retransmissions (that is what
        # 2*MSL is for); a short one turns a lost last ACK into a reset.
        time_wait=240.0,
        # Give up on a handshake only after far more losses than the link makes.
        syn_retries=10,
    )


@settings(
    # Raise for a soak run: TRIONET_TCP_SIM_EXAMPLES=2000 pytest tests/test_tcp_sim.py
    max_examples=int(os.environ.get("TRIONET_TCP_SIM_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    a_len=st.integers(0, 120_000),
    b_len=st.integers(0, 120_000),
    a_to_b=_link,
    b_to_a=_link,
    config_a=_config(),
    config_b=_config(),
    iss_a=st.integers(0, 2**32 - 1),
    iss_b=st.integers(0, 2**32 - 1),
    opening=st.sampled_from(["accept", "listen", "simultaneous"]),
)
def test_bytes_arrive_intact_both_ways_and_both_ends_close(
    *,
    seed: int,
    a_len: int,
    b_len: int,
    a_to_b: LinkParams,
    b_to_a: LinkParams,
    config_a: TcpConfig,
    config_b: TcpConfig,
    iss_a: int,
    iss_b: int,
    opening: str,
) -> None:
    rng = random.Random(seed)
    a_data = rng.randbytes(a_len)
    b_data = rng.randbytes(b_len)
    a = TcpConnection.connect(40000, 80, iss=iss_a, config=config_a, now=0.0)
    if opening == "accept":
        # trionet's way: the stack hands the guest's SYN to accept().
        ((syn, _),) = a.segments_to_send(0.0)
        b = TcpConnection.accept(syn, iss=iss_b, config=config_b, now=0.0)
    elif opening == "listen":
        b = TcpConnection.listen(80, iss=iss_b, config=config_b)
    else:
        b = TcpConnection.connect(80, 40000, iss=iss_b, config=config_b, now=0.0)
    sim = Simulation(a, b, a_data=a_data, b_data=b_data, a_to_b=a_to_b, b_to_a=b_to_a, seed=seed)
    sim.run(until=5000.0)
    assert not sim.a.resets and not sim.b.resets, (sim.a.resets, sim.b.resets, sim.now)
    assert bytes(sim.b.received) == a_data
    assert bytes(sim.a.received) == b_data
    assert a.state is TcpState.CLOSED and b.state is TcpState.CLOSED
    assert sim.a.closed and sim.b.closed
    assert a.next_deadline() is None and b.next_deadline() is None
    assert sim.a.max_memory <= a.memory_limit and sim.b.max_memory <= b.memory_limit
