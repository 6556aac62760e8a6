"""The small parsers of the CONNECT and plain-HTTP inspection (§4.4)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.http.connect import check_connect_metadata, host_header, may_be_connect, parse_connect
from trionet.secrets.config import SecretsConfig
from trionet.secrets.plan import SecretViolationError, metadata_plan


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


def test_a_placeholder_anywhere_in_a_connect_request_is_a_violation() -> None:
    """Untrusted metadata (§11.2): raw, percent-encoded, or inside Basic credentials
    (curl --proxy-user u:$MSB_KEY), as the request scan of §11.4."""
    config = SecretsConfig.from_dict(
        {"secrets": [{"env_var": "KEY", "value": "REAL", "allowed_hosts": ["a.example"]}]}
    )
    plan = metadata_plan(config, "a.example")
    basic = base64.b64encode(b"u:$MSB_KEY").decode()
    head = "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
    check_connect_metadata(plan, (head + "\r\n").encode())
    for line in (
        "X: %24MSB_KEY",
        f"Proxy-Authorization: Basic {basic}",
        f"authorization:basic {basic}",
    ):
        with pytest.raises(SecretViolationError):
            check_connect_metadata(plan, f"{head}{line}\r\n\r\n".encode())
