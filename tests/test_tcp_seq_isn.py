"""Sequence arithmetic with wrap-around, and RFC 6528 initial sequence numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.tcp import IsnGenerator
from trionet.tcp.seq import SEQ_MASK, seq_add, seq_diff, seq_ge, seq_gt, seq_le, seq_lt, unwrap

_u32 = st.integers(0, SEQ_MASK)


def test_comparisons_across_the_wrap() -> None:
    assert seq_lt(0xFFFF_FFF0, 0x10)
    assert seq_gt(0x10, 0xFFFF_FFF0)
    assert seq_le(5, 5) and seq_ge(5, 5)
    assert seq_add(0xFFFF_FFFF, 2) == 1
    assert seq_diff(1, 0xFFFF_FFFF) == 2
    assert seq_diff(0xFFFF_FFFF, 1) == -2


@given(a=_u32, n=st.integers(-(2**31), 2**31 - 1))
def test_diff_inverts_add(a: int, n: int) -> None:
    assert seq_diff(seq_add(a, n), a) == n


@given(ref=st.integers(0, 2**40), delta=st.integers(-(2**31), 2**31 - 1))
def test_unwrap_recovers_nearby_values(ref: int, delta: int) -> None:
    value = ref + delta
    assert unwrap(value & SEQ_MASK, ref) == value


def test_isn_is_keyed_per_four_tuple_and_driven_by_a_4us_clock() -> None:
    gen = IsnGenerator(b"k" * 32)
    local, remote = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    a = gen.isn(local, 80, remote, 40000, 100.0)
    b = gen.isn(local, 80, remote, 40001, 100.0)
    assert a != b
    # Same tuple one second later: exactly 250 000 ticks further (mod 2**32).
    assert seq_diff(gen.isn(local, 80, remote, 40000, 101.0), a) == 250_000
    other = IsnGenerator(b"z" * 32)
    assert other.isn(local, 80, remote, 40000, 100.0) != a
    assert 0 <= a <= SEQ_MASK


def test_isn_secret_must_be_long_enough() -> None:
    with pytest.raises(ValueError):
        IsnGenerator(b"short")
