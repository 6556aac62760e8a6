"""The small parsers of the CONNECT and plain-HTTP inspection (§4.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.http.connect import host_header, may_be_connect, parse_connect


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"CONNECT api.example.com:443 HTTP/1.1", ("api.example.com", 443)),
        (b"connect API.Example.COM.:8443 HTTP/1.0", ("api.example.com", 8443)),
        (b"CONNECT [2001:db8::1]:443 HTTP/1.1", ("2001:db8::1", 443)),
        (b"CONNECT 2001:db8::1:443 HTTP/1.1", None),  # unbracketed IPv6
        (b"CONNECT a.example HTTP/1.1", None),  # no port
        (b"CONNECT a.example:99999 HTTP/1.1", None),
        (b"CONNECT a.example:443 HTTP/2.0 x", None),
        (b"CONNECT a.example:443 FTP/1.1", None),
        (b"CONNECT [nothost]:443 HTTP/1.1", None),
    ],
)
def testparse_connect(line: bytes, expected: tuple[str, int] | None) -> None:
    assert parse_connect(line + b"\r\nHost: x\r\n\r\n") == expected


def testmay_be_connect() -> None:
    assert may_be_connect(b"CON")
    assert may_be_connect(b"connect x")
    assert not may_be_connect(b"CONNX")
    assert not may_be_connect(b"GET / HTTP/1.1")


def testhost_header() -> None:
    assert host_header(b"GET / HTTP/1.1\r\nHost: A.example:80\r\n\r\n") == "a.example"
    assert host_header(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") is None
    assert host_header(b"GET / HTTP/1.1\r\n\r\n") is None


@given(st.binary(max_size=300))
def test_parsers_take_any_bytes(data: bytes) -> None:
    parse_connect(data)
    may_be_connect(data)
    host_header(data)
