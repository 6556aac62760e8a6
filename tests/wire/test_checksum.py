"""The fast checksum against a word-by-word RFC 1071 reference written for tests only."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from trionet.wire.checksum import (
    combine_sums,
    internet_checksum,
    ones_sum,
    pseudo_header_v4,
    pseudo_header_v6,
)


def reference_sum(data: bytes, initial: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    total = initial
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@given(st.binary(max_size=2000), st.integers(0, 0xFFFF))
def test_sum_matches_reference(data: bytes, initial: int) -> None:
    ours = ones_sum(data, initial)
    ref = reference_sum(data, initial)
    # 0 and 0xFFFF are the two zeros of one's complement; only all-zero input
    # may give 0, and then both agree.
    assert ours == ref or {ours, ref} == {0, 0xFFFF}
    assert internet_checksum(data, initial) == (~ours & 0xFFFF)


@given(st.binary(max_size=2000))
def test_sum_of_nonzero_data_is_never_zero(data: bytes) -> None:
    if any(data):
        assert ones_sum(data) != 0


@given(st.binary(max_size=600).map(lambda b: b[: len(b) & ~1]), st.binary(max_size=600))
def test_combining_pieces_equals_summing_the_join(head: bytes, tail: bytes) -> None:
    joined = ones_sum(head + tail)
    combined = combine_sums(ones_sum(head), ones_sum(tail))
    assert joined == combined or (not any(head + tail) and {joined, combined} <= {0, 0xFFFF})


@given(st.binary(max_size=1500))
def test_message_with_its_checksum_verifies(data: bytes) -> None:
    message = data + struct.pack("!H", internet_checksum(data + b"\0" * (len(data) % 2)))
    padded = data + b"\0" * (len(data) % 2)
    assert internet_checksum(padded + message[len(data) :]) == 0


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: these words sum to 0xddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert internet_checksum(data) == 0x220D


@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
)
def test_pseudo_header_v4(src: bytes, dst: bytes, proto: int, length: int) -> None:
    wire = src + dst + struct.pack("!BBH", 0, proto, length)
    ours, ref = pseudo_header_v4(src, dst, proto, length), reference_sum(wire)
    assert ours == ref or {ours, ref} == {0, 0xFFFF}


@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
    st.integers(0, 255),
    st.integers(0, 0xFFFFFFFF),
)
def test_pseudo_header_v6(src: bytes, dst: bytes, nh: int, length: int) -> None:
    wire = src + dst + struct.pack("!I3xB", length, nh)
    ours, ref = pseudo_header_v6(src, dst, nh, length), reference_sum(wire)
    assert ours == ref or {ours, ref} == {0, 0xFFFF}
