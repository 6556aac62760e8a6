"""Properties of the interceptor against hostile guest messages.

Whatever bytes a guest sends, the interceptor does not raise, and whatever
it answers parses as a DNS response to the guest's id.
"""

from __future__ import annotations

import ipaddress

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rdatatype
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dns.test_intercept import interceptor, query
from trionet.dns.intercept import (
    Answer,
    SendUpstream,
    Transport,
    _peek_query,
    _peek_reply,
    _records_of,
)

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


_ANSWER_DATA = {
    "A": "93.184.215.14",
    "AAAA": "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    "CNAME": "a.example.",
    "HTTPS": "1 . alpn=h2 ipv4hint=93.184.215.14 ipv6hint=2606::1",
    "TXT": "hi",
}


@settings(max_examples=400)
@given(
    st.sampled_from(["A", "AAAA", "HTTPS", "ANY"]),
    st.lists(
        st.tuples(
            st.sampled_from(sorted(_ANSWER_DATA)),
            st.sampled_from(["IN", "HS", "CLASS9", "NONE", "ANY"]),
        ),
        max_size=4,
    ),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
)
def test_mutated_upstream_answers_never_raise(
    qtype: str, records: list[tuple[str, str]], flips: list[tuple[int, int]]
) -> None:
    # The resolver's side is hostile too (a guest may name its own): a
    # well-formed answer with records of any class, then a few bytes changed.
    data = query("q.example", qtype)
    exchange = _IC.receive_query(
        data,
        destination=ipaddress.ip_address("172.16.0.1"),
        transport=Transport.UDP,
        now=1.0,
        upstream_id=7,
    )
    send = exchange.next_event()
    assert isinstance(send, SendUpstream)
    response = dns.message.make_response(dns.message.from_wire(send.query))
    for rdtype, rdclass in records:
        try:  # CNAME and TXT mean the same in every class
            rrset = dns.rrset.from_text("q.example.", 60, rdclass, rdtype, _ANSWER_DATA[rdtype])
        except dns.exception.SyntaxError:  # A, AAAA, HTTPS outside IN: opaque bytes
            rrset = dns.rrset.from_text("q.example.", 60, rdclass, rdtype, r"\# 4 0a000001")
        response.answer.append(rrset)
    wire = bytearray(response.to_wire())
    for at, value in flips:
        if 2 <= at < len(wire):
            wire[at] = value
    answer = exchange.receive_upstream(bytes(wire), 2.0)  # must not raise
    if answer is not None and answer.response is not None:
        assert dns.message.from_wire(answer.response).id == int.from_bytes(data[:2], "big")


# -- the direct read of a common query against dnspython's full parse --------------------------


def _same_reading(data: bytes) -> bool:
    """Whatever _peek_query accepts, dnspython parses to the same query."""
    peeked = _peek_query(data)
    if peeked is None:
        return False
    message = dns.message.from_wire(data)  # must not raise
    assert not message.flags & dns.flags.QR
    assert message.opcode() == dns.opcode.QUERY and len(message.question) == 1
    question = message.question[0]
    payload = message.payload if message.edns >= 0 else None
    assert peeked == (message.id, question.name, question.rdtype, question.rdclass, payload)
    assert peeked[1].labels == question.name.labels  # the exact bytes, not just equal names
    return True


@st.composite
def _queries(draw: st.DrawFn) -> bytes:
    message = dns.message.make_query(
        draw(_NAMES),
        draw(st.sampled_from(["A", "AAAA", "TXT", "ANY", "OPT", "TYPE65000"])),
        use_edns=draw(st.sampled_from([False, 0, 1])),
        payload=draw(st.integers(0, 0xFFFF)),
        want_dnssec=draw(st.booleans()),
    )
    message.id = draw(st.integers(0, 0xFFFF))
    message.flags = draw(st.integers(0, 0xFFFF)) & ~0x000F  # rcode bits belong to EDNS too
    data = bytearray(message.to_wire())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, 2))
    if cut == 1:
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif cut == 2:
        data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@settings(max_examples=1500)
@given(_queries())
def test_the_direct_read_agrees_with_dnspython(data: bytes) -> None:
    _same_reading(data)


@given(st.binary(max_size=64))
def test_the_direct_read_agrees_on_any_bytes(data: bytes) -> None:
    _same_reading(data)


def test_the_direct_read_takes_the_common_shapes() -> None:
    for edns in (None, 1232):
        assert _same_reading(query("example.com", "AAAA", edns=edns))
    with_cookie = dns.message.make_query(
        "example.com", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]
    )
    assert _peek_query(with_cookie.to_wire()) is None  # options: the full parse reads them


# -- the direct read of a common reply against dnspython's full parse --------------------------


def _grouped(records: list[tuple[object, int, int, object]]) -> dict[object, object]:
    """Records by (owner, type): their values and least TTL, as dnspython's rrsets hold them."""
    groups: dict[tuple[object, int], tuple[set[object], int]] = {}
    for owner, rdtype, ttl, value in records:
        values, least = groups.get((owner, rdtype), (set(), ttl))
        values.add(value)
        groups[owner, rdtype] = (values, min(least, ttl))
    return {key: (frozenset(v), t) for key, (v, t) in groups.items()}


def _same_reply(data: bytes) -> bool:
    peeked = _peek_reply(data)
    if peeked is None:
        return False
    message = dns.message.from_wire(data)  # must not raise
    flags, qname, qtype, qclass, records = peeked
    assert flags == message.flags
    assert message.rcode() == flags & 0xF
    question = message.question[0]
    assert (qname, qtype, qclass) == (question.name, question.rdtype, question.rdclass)
    assert _grouped(records) == _grouped(_records_of(message))
    return True


@st.composite
def _replies(draw: st.DrawFn) -> bytes:
    name = draw(_NAMES)
    request = dns.message.make_query(
        name, draw(st.sampled_from(["A", "AAAA"])), use_edns=draw(st.sampled_from([False, 0]))
    )
    response = dns.message.make_response(request)
    owners = [f"{name}.", f"x.{name}.", "cdn.test."]
    for _ in range(draw(st.integers(0, 5))):
        owner = draw(st.sampled_from(owners))
        kind = draw(st.sampled_from(["A", "AAAA", "CNAME", "TXT"]))
        data = {
            "A": draw(st.sampled_from(["10.0.0.1", "11.0.0.1", "127.0.0.1"])),
            "AAAA": draw(st.sampled_from(["::1", "2001:db8::1", "fd00::1"])),
            "CNAME": draw(st.sampled_from(owners)),
            "TXT": '"hello"',
        }[kind]
        ttl = draw(st.sampled_from([0, 1, 60, 2**31 - 1, 2**31, 2**32 - 1]))
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", kind, data))
    wire = bytearray(response.to_wire())
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(wire) - 1))
        wire[at] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, 2))
    if cut == 1:
        del wire[draw(st.integers(0, len(wire) - 1)) :]
    elif cut == 2:
        wire += draw(st.binary(min_size=1, max_size=8))
    return bytes(wire)


@settings(max_examples=1500)
@given(_replies())
def test_the_direct_reply_read_agrees_with_dnspython(data: bytes) -> None:
    _same_reply(data)


@given(st.binary(max_size=96))
def test_the_direct_reply_read_agrees_on_any_bytes(data: bytes) -> None:
    _same_reply(data)
