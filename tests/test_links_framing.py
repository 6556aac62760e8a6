"""The stream framing decoder: any chunking gives the same frames; hostile lengths are handled."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.links.framing import (
    MAX_FRAME_SIZE,
    FramingError,
    StreamFrameDecoder,
    encode_frames,
)


def test_one_frame_and_split_length() -> None:
    decoder = StreamFrameDecoder()
    wire = encode_frames([b"E" * 60])
    assert decoder.feed(wire[:2]) == []
    assert decoder.feed(wire[2:5]) == []
    assert decoder.pending == 5
    assert decoder.feed(wire[5:]) == [b"E" * 60]
    assert decoder.pending == 0


def test_many_frames_in_one_feed_and_trailing_partial() -> None:
    frames = [bytes([i]) * (14 + i) for i in range(10)]
    wire = encode_frames(frames)
    decoder = StreamFrameDecoder()
    assert decoder.feed(wire + b"\x00\x00") == frames
    assert decoder.pending == 2


def test_runts_skipped_and_counted_framing_kept() -> None:
    decoder = StreamFrameDecoder()
    wire = struct.pack(">I", 0) + struct.pack(">I", 13) + b"x" * 13 + encode_frames([b"y" * 14])
    assert decoder.feed(wire) == [b"y" * 14]
    assert decoder.runts == 2


def test_oversized_length_breaks_framing_for_good() -> None:
    decoder = StreamFrameDecoder(max_frame_size=1000)
    assert decoder.feed(encode_frames([b"a" * 1000])) == [b"a" * 1000]
    # Frames before a bad length in the same chunk still come out; the error follows.
    assert decoder.feed(encode_frames([b"c" * 20]) + struct.pack(">I", 1001)) == [b"c" * 20]
    assert decoder.error is not None
    with pytest.raises(FramingError, match="1001 exceeds"):
        decoder.feed(b"")
    assert decoder.pending == 0
    with pytest.raises(FramingError):
        decoder.feed(encode_frames([b"b" * 20]))


def test_max_frame_size_bounds() -> None:
    assert StreamFrameDecoder().max_frame_size == MAX_FRAME_SIZE == 69632
    with pytest.raises(ValueError):
        StreamFrameDecoder(13)


frame_lists = st.lists(st.binary(min_size=14, max_size=300), max_size=12)


@given(frame_lists, st.lists(st.integers(1, 400), min_size=1, max_size=40))
def test_any_chunking_yields_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    wire = encode_frames(frames)
    decoder = StreamFrameDecoder()
    out: list[bytes] = []
    offset, i = 0, 0
    while offset < len(wire):
        size = cuts[i % len(cuts)]
        out += decoder.feed(memoryview(wire)[offset : offset + size])
        offset += size
        i += 1
    assert out == frames
    assert decoder.pending == 0


def reference_decode(data: bytes, max_size: int) -> tuple[list[bytes], int, bool]:
    """A deliberately naive decoder: (frames, leftover bytes, framing lost)."""
    frames, offset = [], 0
    while len(data) - offset >= 4:
        length = int.from_bytes(data[offset : offset + 4], "big")
        if length > max_size:
            return frames, 0, True
        if len(data) - offset - 4 < length:
            break
        if length >= 14:
            frames.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return frames, len(data) - offset, False


@given(st.binary(max_size=600), st.integers(14, 400), st.integers(1, 64))
def test_arbitrary_bytes_match_the_reference(data: bytes, max_size: int, chunk: int) -> None:
    expected, leftover, lost = reference_decode(data, max_size)
    decoder = StreamFrameDecoder(max_frame_size=max_size)
    frames: list[bytes] = []
    try:
        for offset in range(0, len(data), chunk):
            frames += decoder.feed(data[offset : offset + chunk])
    except FramingError as exc:
        assert lost, exc.reason
        assert decoder.error is exc
        # Every frame before the bad length was still delivered.
        assert frames == expected
        return
    assert not lost
    assert frames == expected
    assert decoder.pending == leftover
