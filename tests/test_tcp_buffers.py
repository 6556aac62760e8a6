"""The reassembly queue and the SACK scoreboard against simple models."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.tcp.byte_ring import ByteRing
from trionet.tcp.reassembly import Reassembly
from trionet.tcp.scoreboard import MAX_RANGES, Scoreboard

STREAM = bytes(range(256)) * 8  # 2048 bytes
BASE = 0xFFFF_FF00  # crosses 2**32 in wire terms; internally just a big int

_pieces = st.lists(st.tuples(st.integers(1, 2047), st.integers(1, 300)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(pieces=_pieces)
def test_reassembly_delivers_the_stream_whatever_the_arrival_order(
    pieces: list[tuple[int, int]],
) -> None:
    q = Reassembly(max_bytes=10**6, max_blocks=10**6)
    for off, n in pieces:
        q.insert(BASE + off, STREAM[off : off + n])
        # Blocks stay sorted, disjoint and non-touching, and hold the right bytes.
        prev_end = -1
        for start, data in q.blocks:
            assert start > prev_end
            assert bytes(data) == STREAM[start - BASE : start - BASE + len(data)]
            prev_end = start + len(data)
        assert q.size == sum(len(d) for _, d in q.blocks)
    out = ByteRing(len(STREAM))
    out.append(STREAM[:1])
    nxt = q.drain_into(out, BASE + 1)
    assert out.copy(0, len(out)) == STREAM[: nxt - BASE]
    covered = {0}
    for off, n in pieces:
        covered.update(range(off, min(off + n, len(STREAM))))
    expected_end = 0
    while expected_end in covered:
        expected_end += 1
    assert nxt - BASE == expected_end


def test_reassembly_bounds() -> None:
    q = Reassembly(max_bytes=100, max_blocks=2)
    assert q.insert(10, b"a" * 60) is None
    assert q.insert(100, b"b" * 30) is None
    assert q.insert(200, b"c") == "ooo_dropped_memory"  # a third block
    assert q.insert(70, b"x" * 20) == "ooo_dropped_memory"  # 110 bytes > 100
    assert q.insert(20, b"a" * 10) == "duplicate_data"
    assert q.size == 90


def test_sack_blocks_newest_first_and_limited() -> None:
    q = Reassembly(max_bytes=1000, max_blocks=10)
    for start in (10, 30, 50, 70, 90):
        q.insert(start, b"z" * 5)
    q.insert(30, b"z" * 7)  # the newest segment extends the second block
    assert q.sack_blocks(3) == ((30, 37), (90, 95), (70, 75))


@settings(max_examples=300, deadline=None)
@given(ranges=st.lists(st.tuples(st.integers(0, 500), st.integers(1, 60)), max_size=30))
def test_scoreboard_matches_a_set_model(ranges: list[tuple[int, int]]) -> None:
    board = Scoreboard()
    model: set[int] = set()
    for left, n in ranges:
        board.add(left, left + n)
        model.update(range(left, left + n))
    assert board.sacked == len(model) or len(board.ranges) == MAX_RANGES
    if len(board.ranges) < MAX_RANGES:
        assert {i for s, e in board.ranges for i in range(s, e)} == model
        assert board.unsacked_between(0, 600) == 600 - len(model)
        nxt, stop = board.skip(0, 600)
        assert nxt not in model
        assert stop == 600 or (stop in model and stop - 1 not in model and stop > nxt)
    board.prune(250)
    assert all(s >= 250 for s, _ in board.ranges)
