"""Properties of the interceptor against hostile guest messages.

Whatever bytes a guest sends, the interceptor does not raise, and whatever
it answers parses as a DNS response to the guest's id.
"""

from __future__ import annotations

import ipaddress

import dns.message
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dns.test_intercept import interceptor, query
from trionet.dns.intercept import Answer, SendUpstream, Transport

_IC = interceptor()
_NAMES = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}", fullmatch=True)


def _check(data: bytes, transport: Transport, upstream: bytes | None) -> None:
    exchange = _IC.receive_query(
        data,
        destination=ipaddress.ip_address("172.16.0.1"),
        transport=transport,
        now=1.0,
        upstream_id=7,
    )
    event = exchange.next_event()
    if isinstance(event, SendUpstream):
        assert event.query[:2] == b"\x00\x07"
        answer = None if upstream is None else exchange.receive_upstream(upstream, 2.0)
        event = answer if answer is not None else exchange.upstream_failed()
        if isinstance(event, SendUpstream):
            event = exchange.upstream_failed()
    assert isinstance(event, Answer)
    if event.response is not None:
        response = dns.message.from_wire(event.response)
        assert response.id == int.from_bytes(data[:2], "big")
        if transport is Transport.UDP:
            assert len(event.response) <= 65535


@settings(max_examples=300)
@given(st.binary(max_size=600), st.sampled_from(Transport), st.none() | st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(
    data: bytes, transport: Transport, upstream: bytes | None
) -> None:
    _check(data, transport, upstream)


@settings(max_examples=200)
@given(
    _NAMES,
    st.sampled_from(["A", "AAAA", "TXT", "MX", "CNAME"]),
    st.integers(0, 0xFFFF),
    st.binary(max_size=40),
    st.integers(0, 60),
)
def test_mutated_queries_and_upstream_garbage(
    name: str, rdtype: str, qid: int, junk: bytes, cut: int
) -> None:
    data = query(name, rdtype, qid=qid)
    _check(data, Transport.UDP, b"\x00\x07" + junk)
    mutated = bytearray(data)
    if cut < len(mutated):
        mutated[cut] ^= 0xFF
    _check(bytes(mutated), Transport.TCP, None)
