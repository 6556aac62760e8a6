"""The ClientHello peek: real hellos, every prefix, any record split, hostile bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tls.hellos import client_hello, handshake_message, reframe
from trionet.tls.clienthello import (
    MAX_HELLO_BYTES,
    PeekStatus,
    canonical_sni,
    peek_client_hello,
)

HELLO = client_hello("API.Example.com.", ["h2", "http/1.1"])


def test_real_hello_gives_canonical_sni_and_alpn() -> None:
    result = peek_client_hello(HELLO)
    assert result.status is PeekStatus.COMPLETE
    assert result.hello is not None
    assert result.hello.sni == "api.example.com"
    assert result.hello.alpn == ("h2", "http/1.1")
    assert result.hello.length == len(HELLO)


def test_hello_without_sni_is_complete_with_none() -> None:
    result = peek_client_hello(client_hello(None))
    assert result.status is PeekStatus.COMPLETE
    assert result.hello is not None and result.hello.sni is None and result.hello.alpn == ()


def test_every_strict_prefix_needs_more() -> None:
    for n in range(len(HELLO)):
        assert peek_client_hello(HELLO[:n]).status is PeekStatus.NEED_MORE, n


def test_first_byte_decides_not_tls() -> None:
    assert peek_client_hello(b"GET / HTTP/1.1\r\n").status is PeekStatus.NOT_TLS
    assert peek_client_hello(b"S").status is PeekStatus.NOT_TLS
    assert peek_client_hello(b"").status is PeekStatus.NEED_MORE


def test_bytes_after_the_hello_are_not_counted() -> None:
    result = peek_client_hello(HELLO + b"\x14\x03\x03\x00\x01\x01")
    assert result.hello is not None and result.hello.length == len(HELLO)


def test_non_hello_handshake_is_malformed() -> None:
    body = b"\x02\x00\x00\x04abcd"
    assert peek_client_hello(b"\x16\x03\x03\x00\x08" + body).status is PeekStatus.MALFORMED


def test_alert_record_inside_the_hello_is_malformed() -> None:
    message = handshake_message(HELLO)
    first = reframe(message[:10], [])
    broken = first + b"\x15\x03\x03\x00\x02\x02\x28"
    assert peek_client_hello(broken).status is PeekStatus.MALFORMED


def test_oversized_hello_is_malformed_not_buffered() -> None:
    declared = b"\x01" + (MAX_HELLO_BYTES + 10).to_bytes(3, "big")
    assert peek_client_hello(b"\x16\x03\x01\x00\x04" + declared).status is PeekStatus.MALFORMED


def test_length_overrun_inside_the_hello_is_malformed() -> None:
    message = bytearray(handshake_message(HELLO))
    message[4 + 34] = 200  # session id length beyond the message
    assert peek_client_hello(reframe(bytes(message), [])).status is PeekStatus.MALFORMED


def test_canonical_sni() -> None:
    assert canonical_sni("A.B.") == "a.b"
    assert canonical_sni("a.b") == "a.b"


@settings(max_examples=200, deadline=None)
@given(
    name=st.from_regex(r"\A[a-z][a-z0-9]{0,19}(\.[a-z][a-z0-9]{0,19}){0,3}\Z"),
    cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=12),
    segment=st.integers(min_value=1, max_value=700),
)
def test_split_over_records_and_segments(name: str, cuts: list[int], segment: int) -> None:
    """Any record fragmentation, fed in any segment size, gives the same answer."""
    records = reframe(handshake_message(client_hello(name, ["http/1.1"])), cuts)
    buffer = bytearray()
    result = None
    for start in range(0, len(records), segment):
        buffer += records[start : start + segment]
        result = peek_client_hello(buffer)
        if len(buffer) < len(records):
            assert result.status is PeekStatus.NEED_MORE
    assert result is not None and result.status is PeekStatus.COMPLETE
    assert result.hello is not None
    assert result.hello.sni == name and result.hello.alpn == ("http/1.1",)
    assert result.hello.length == len(records)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    result = peek_client_hello(data)
    assert result.status in PeekStatus


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_hello_never_raises(data: st.DataObject) -> None:
    buf = bytearray(HELLO)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    result = peek_client_hello(bytes(buf))
    if result.status is PeekStatus.COMPLETE:
        assert result.hello is not None and result.hello.length <= len(buf)
