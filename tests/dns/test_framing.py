"""DNS-over-TCP framing: whole messages out of a stream cut anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.dns.framing import MAX_MESSAGE, TcpFramer, frame


def test_pipelined_messages_in_one_read_and_a_zero_length_one() -> None:
    framer = TcpFramer()
    assert framer.feed(frame(b"one") + frame(b"") + frame(b"three") + b"\x00") == [
        b"one",
        b"",
        b"three",
    ]
    assert framer.pending == 1
    assert framer.feed(b"\x02ab") == [b"ab"]
    assert framer.pending == 0


def test_a_message_too_long_to_frame() -> None:
    with pytest.raises(ValueError, match="at most"):
        frame(bytes(MAX_MESSAGE + 1))


@given(
    st.lists(st.binary(max_size=300), max_size=8),
    st.lists(st.integers(min_value=1, max_value=50), max_size=40),
)
def test_any_cutting_of_the_stream_yields_the_same_messages(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(m) for m in messages)
    framer = TcpFramer()
    out: list[bytes] = []
    position = 0
    for size in cuts:
        out += framer.feed(stream[position : position + size])
        position += size
    out += framer.feed(stream[position:])
    assert out == messages
    assert framer.pending == 0
