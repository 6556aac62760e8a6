"""The DNS interceptor's decisions as transcripts: query in, events out.

These use the real policy core (evaluator, pin set, rebind set), so a
transcript states what a guest sees under a real policy.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
import subprocess
import sys

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from trionet.dns.intercept import (
    Answer,
    DnsExchange,
    DnsInterceptor,
    SendUpstream,
    Transport,
    Upstream,
)
from trionet.policy.evaluate import PolicyEvaluator
from trionet.policy.groups import Gateways
from trionet.policy.model import NetworkPolicy
from trionet.policy.pins import PinSet

GW4 = ipaddress.IPv4Address("172.16.0.1")
GW6 = ipaddress.IPv6Address("fd42:6d73:62::1")
GW6_LL = ipaddress.IPv6Address("fe80::1")
UP1 = Upstream(ipaddress.ip_address("127.0.0.53"), 5300)
UP2 = Upstream(ipaddress.ip_address("::1"), 5301)
NOW = 100.0


def interceptor(
    policy: NetworkPolicy | None = None,
    *,
    v4: bool = True,
    v6: bool = True,
    upstreams: tuple[Upstream, ...] = (UP1, UP2),
    rebind: bool = True,
) -> DnsInterceptor:
    policy = NetworkPolicy.from_profiles(["public"]) if policy is None else policy
    gateways = Gateways(GW4 if v4 else None, (GW6, GW6_LL) if v6 else ())
    pins = PinSet()
    return DnsInterceptor(
        PolicyEvaluator(policy, gateways, pins),
        pins,
        gateway_ipv4=GW4 if v4 else None,
        gateway_ipv6=GW6 if v6 else None,
        gateway_addresses=[GW6_LL] if v6 else [],
        host_alias="host.trionet.internal",
        upstreams=upstreams,
        rebind_protection=rebind,
    )


def query(name: str, rdtype: str = "A", *, qid: int = 0x1234, edns: int | None = None) -> bytes:
    message = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 0)
    message.id = qid
    return message.to_wire()


def ask(
    ic: DnsInterceptor,
    data: bytes,
    *,
    to: str = str(GW4),
    transport: Transport = Transport.UDP,
) -> DnsExchange:
    return ic.receive_query(
        data,
        destination=ipaddress.ip_address(to),
        transport=transport,
        now=NOW,
        upstream_id=0xBEEF,
    )


def upstream_reply(sent: bytes, *records: str, rcode: int = dns.rcode.NOERROR) -> bytes:
    """The resolver's response to ``sent``: records as 'owner ttl TYPE data'."""
    request = dns.message.from_wire(sent)
    response = dns.message.make_response(request)
    response.set_rcode(dns.rcode.Rcode(rcode))
    for text in records:
        owner, ttl, rdtype, data = text.split()
        response.answer.append(dns.rrset.from_text(owner, int(ttl), "IN", rdtype, data))
    return response.to_wire()


def parsed(answer: Answer) -> dns.message.Message:
    assert answer.response is not None
    return dns.message.from_wire(answer.response)


def answered(exchange: DnsExchange) -> Answer:
    event = exchange.next_event()
    assert isinstance(event, Answer), event
    return event


def forwarded(exchange: DnsExchange) -> SendUpstream:
    event = exchange.next_event()
    assert isinstance(event, SendUpstream), event
    return event


# -- answered locally ---------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x12\x34" + b"\xff" * 30, b"garbage" * 3])
def test_unparseable_gets_no_response(data: bytes) -> None:
    answer = answered(ask(interceptor(), data))
    assert answer.response is None and answer.outcome is None
    assert answer.problem == "dns_unparseable"


def test_a_response_from_the_guest_is_never_answered() -> None:
    message = dns.message.from_wire(query("example.com"))
    message.flags |= dns.flags.QR
    answer = answered(ask(interceptor(), message.to_wire()))
    assert answer.response is None


@pytest.mark.parametrize("count", [0, 2])
def test_formerr_unless_exactly_one_question(count: int) -> None:
    message = dns.message.make_query("example.com", "A")
    message.id = 77
    if count == 0:
        message.question = []
    else:
        message.question.append(dns.message.make_query("example.org", "A").question[0])
    answer = answered(ask(interceptor(), message.to_wire()))
    response = parsed(answer)
    assert response.rcode() == dns.rcode.FORMERR
    assert response.id == 77 and response.flags & dns.flags.QR and response.flags & dns.flags.RA
    assert response.flags & dns.flags.RD
    assert len(response.question) == count and not response.answer


def test_denied_name_is_nxdomain_on_record() -> None:
    policy = NetworkPolicy.from_dict(
        {
            "rules": [
                {
                    "direction": "egress",
                    "destination": {"domain": "blocked.test"},
                    "action": "deny",
                },
                {"direction": "egress", "destination": "any", "action": "allow"},
            ]
        },
        "policy",
    )
    answer = answered(ask(interceptor(policy), query("Blocked.Test.", qid=9)))
    response = parsed(answer)
    assert response.rcode() == dns.rcode.NXDOMAIN and response.id == 9
    assert str(response.question[0].name) == "Blocked.Test."
    assert answer.outcome is not None
    assert answer.outcome.verdict == "deny" and answer.outcome.decision.rule_index == 0
    assert answer.outcome.name == "Blocked.Test"


def test_default_deny_policy_denies_every_query() -> None:
    answer = answered(ask(interceptor(NetworkPolicy.deny_all()), query("example.com")))
    assert parsed(answer).rcode() == dns.rcode.NXDOMAIN
    assert answer.outcome is not None and answer.outcome.decision.rule_text == "default"


def test_inactive_family_is_empty_noerror_and_forgets_the_pin() -> None:
    ic = interceptor(v6=False)
    ic.pins.record("example.com", 6, [ipaddress.ip_address("2001:db8::5")], 300, NOW)
    answer = answered(ask(ic, query("example.com", "AAAA")))
    response = parsed(answer)
    assert response.rcode() == dns.rcode.NOERROR and not response.answer
    assert not ic.pins.names_for(ipaddress.ip_address("2001:db8::5"), NOW)
    # A is still forwarded.
    forwarded(ask(ic, query("example.com", "A")))


@pytest.mark.parametrize(("rdtype", "address"), [("A", str(GW4)), ("AAAA", str(GW6))])
def test_host_alias_is_answered_locally(rdtype: str, address: str) -> None:
    answer = answered(ask(interceptor(), query("HOST.trionet.internal", rdtype, qid=5)))
    response = parsed(answer)
    assert response.id == 5 and response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA and response.flags & dns.flags.RA
    (rrset,) = response.answer
    assert rrset.ttl == 60 and [r.to_text() for r in rrset] == [address]


def test_other_types_for_the_host_alias_go_upstream() -> None:
    forwarded(ask(interceptor(), query("host.trionet.internal", "MX")))


# -- forwarded --------------------------------------------------------------------------------


def test_forwarded_query_carries_a_fresh_id_and_the_answer_the_guests() -> None:
    ic = interceptor()
    data = query("example.com", qid=0x4242)
    exchange = ask(ic, data)
    send = forwarded(exchange)
    assert send.upstream == UP1 and not send.direct
    assert send.query[:2] == b"\xbe\xef" and send.query[2:] == data[2:]
    reply = upstream_reply(send.query, "example.com. 300 A 93.184.215.14")
    # Not ours: another id, or another question.
    assert exchange.receive_upstream(b"\x00\x01" + reply[2:], NOW) is None
    other = upstream_reply(query("example.org", qid=0xBEEF), "example.org. 1 A 1.2.3.4")
    assert exchange.receive_upstream(other, NOW) is None
    assert exchange.receive_upstream(b"\xbe\xef junk", NOW) is None
    answer = exchange.receive_upstream(reply, NOW + 1)
    assert answer is not None and answer.response is not None
    assert answer.response[:2] == b"\x42\x42" and answer.response[2:] == reply[2:]
    assert answer.outcome is not None and answer.outcome.verdict == "allow"
    assert answer.outcome.decision.rule_index == 0  # allow_dns
    assert ic.pins.names_for(ipaddress.ip_address("93.184.215.14"), NOW + 2) == {"example.com"}
    assert not ic.pins.names_for(ipaddress.ip_address("93.184.215.14"), NOW + 302)


def test_pins_follow_the_cname_chain_and_ignore_unrelated_records() -> None:
    ic = interceptor()
    exchange = ask(ic, query("www.example.com"))
    send = forwarded(exchange)
    reply = upstream_reply(
        send.query,
        "www.example.com. 300 CNAME edge.cdn.test.",
        "edge.cdn.test. 0 CNAME a.cdn.test.",
        "a.cdn.test. 60 A 198.51.100.7",
        "evil.test. 600 A 198.51.100.8",
    )
    ic_answer = exchange.receive_upstream(reply, NOW)
    assert ic_answer is not None and parsed(ic_answer).rcode() == dns.rcode.NOERROR
    ip7, ip8 = ipaddress.ip_address("198.51.100.7"), ipaddress.ip_address("198.51.100.8")
    assert ic.pins.names_for(ip7, NOW + 0.5) == {"www.example.com"}
    assert not ic.pins.names_for(ip7, NOW + 1.5)  # the 0 s CNAME, floored to 1 s
    assert not ic.pins.names_for(ip8, NOW)


def test_nxdomain_from_upstream_forgets_the_pin() -> None:
    ic = interceptor()
    ip = ipaddress.ip_address("93.184.215.14")
    ic.pins.record("example.com", 4, [ip], 300, NOW)
    exchange = ask(ic, query("example.com"))
    send = forwarded(exchange)
    answer = exchange.receive_upstream(upstream_reply(send.query, rcode=dns.rcode.NXDOMAIN), NOW)
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NXDOMAIN
    assert not ic.pins.names_for(ip, NOW)


def test_failover_in_order_then_servfail() -> None:
    exchange = ask(interceptor(), query("example.com", qid=3))
    assert forwarded(exchange).upstream == UP1
    second = exchange.upstream_failed()
    assert isinstance(second, SendUpstream) and second.upstream == UP2
    last = exchange.upstream_failed()
    assert isinstance(last, Answer)
    response = parsed(last)
    assert response.rcode() == dns.rcode.SERVFAIL and response.id == 3
    assert last.outcome is not None and last.outcome.reason == "upstream-failed"


def test_any_response_is_final_even_servfail() -> None:
    exchange = ask(interceptor(), query("example.com"))
    send = forwarded(exchange)
    answer = exchange.receive_upstream(upstream_reply(send.query, rcode=dns.rcode.REFUSED), NOW)
    assert answer is not None and parsed(answer).rcode() == dns.rcode.REFUSED


def test_no_upstreams_at_all_is_servfail() -> None:
    answer = answered(ask(interceptor(upstreams=()), query("example.com")))
    assert parsed(answer).rcode() == dns.rcode.SERVFAIL


# -- rebind protection ---------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["10.1.2.3", "127.0.0.1", "169.254.169.254", "192.168.1.1"])
def test_private_answer_is_nxdomain(address: str) -> None:
    ic = interceptor()
    exchange = ask(ic, query("rebind.example"))
    send = forwarded(exchange)
    reply = upstream_reply(
        send.query, "rebind.example. 60 A 93.184.215.14", f"rebind.example. 60 A {address}"
    )
    answer = exchange.receive_upstream(reply, NOW)
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NXDOMAIN
    assert answer.outcome is not None
    assert answer.outcome.verdict == "deny" and answer.outcome.reason == "rebind"
    assert not ic.pins.names_for(ipaddress.ip_address(address), NOW)


def test_private_answer_admitted_by_an_explicit_private_rule() -> None:
    ic = interceptor(NetworkPolicy.from_profiles(["public", "private"]))
    exchange = ask(ic, query("intranet.example"))
    send = forwarded(exchange)
    answer = exchange.receive_upstream(
        upstream_reply(send.query, "intranet.example. 60 A 10.1.2.3"), NOW
    )
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NOERROR
    # ... but loopback still is not.
    exchange = ask(ic, query("loop.example"))
    send = forwarded(exchange)
    answer = exchange.receive_upstream(
        upstream_reply(send.query, "loop.example. 60 A 127.0.0.1"), NOW
    )
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NXDOMAIN


def test_rebind_protection_off_passes_private_answers() -> None:
    exchange = ask(interceptor(rebind=False), query("rebind.example"))
    send = forwarded(exchange)
    answer = exchange.receive_upstream(
        upstream_reply(send.query, "rebind.example. 60 A 10.0.0.1"), NOW
    )
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NOERROR


# -- the guest's own choice of resolver --------------------------------------------------


@pytest.mark.parametrize("gateway", [str(GW4), str(GW6), str(GW6_LL)])
def test_queries_to_any_gateway_address_use_the_configured_upstreams(gateway: str) -> None:
    send = forwarded(ask(interceptor(), query("example.com"), to=gateway))
    assert send.upstream == UP1 and not send.direct


def test_direct_resolver_is_asked_once_without_failover() -> None:
    exchange = ask(interceptor(), query("example.com"), to="203.0.113.53", transport=Transport.TCP)
    send = forwarded(exchange)
    assert send.upstream == Upstream(ipaddress.ip_address("203.0.113.53"), 53) and send.direct
    last = exchange.upstream_failed()
    assert isinstance(last, Answer) and parsed(last).rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("resolver", ["10.0.0.53", "169.254.169.254", "192.168.0.1"])
def test_direct_resolver_the_policy_denies_is_nxdomain(resolver: str) -> None:
    answer = answered(ask(interceptor(), query("example.com"), to=resolver))
    assert parsed(answer).rcode() == dns.rcode.NXDOMAIN
    assert answer.outcome is not None
    assert answer.outcome.verdict == "deny" and answer.outcome.reason == "resolver-denied"


# -- truncation ---------------------------------------------------------------------------


def _big_reply(sent: bytes) -> bytes:
    records = [f"big.example. 60 TXT {'x' * 200}{i}" for i in range(10)]
    request = dns.message.from_wire(sent)
    response = dns.message.make_response(request)
    for text in records:
        owner, ttl, rdtype, data = text.split()
        response.answer.append(dns.rrset.from_text(owner, int(ttl), "IN", rdtype, data))
    return response.to_wire(max_size=65535)


@pytest.mark.parametrize(("edns", "truncated"), [(None, True), (1232, True), (4096, False)])
def test_udp_answer_over_the_guests_size_is_tc(edns: int | None, truncated: bool) -> None:
    exchange = ask(interceptor(), query("big.example", "TXT", edns=edns, qid=11))
    reply = _big_reply(forwarded(exchange).query)
    assert 1232 < len(reply) < 4096
    answer = exchange.receive_upstream(reply, NOW)
    assert answer is not None
    response = parsed(answer)
    assert response.id == 11
    assert bool(response.flags & dns.flags.TC) is truncated
    if truncated:
        assert not response.answer and len(response.question) == 1
        assert answer.response is not None and len(answer.response) <= 512


def test_tcp_answers_are_never_truncated() -> None:
    exchange = ask(interceptor(), query("big.example", "TXT"), transport=Transport.TCP)
    answer = exchange.receive_upstream(_big_reply(forwarded(exchange).query), NOW)
    assert answer is not None and not parsed(answer).flags & dns.flags.TC


@pytest.mark.parametrize("edns", [None, 1232])
def test_trailing_junk_after_a_query_is_unparseable(edns: int | None) -> None:
    answer = answered(ask(interceptor(), query("example.com", edns=edns) + b"\x00"))
    assert answer.response is None and answer.problem == "dns_unparseable"


# -- answers the guest can influence ---------------------------------------------------------


def _allowlist() -> NetworkPolicy:
    """DNS to any resolver, TCP only to one allowed name: a common allowlist."""
    return NetworkPolicy.from_dict(
        {
            "default_egress": "deny",
            "rules": [
                {
                    "direction": "egress",
                    "destination": "any",
                    "protocols": ["udp", "tcp"],
                    "ports": [{"start": 53, "end": 53}],
                    "action": "allow",
                },
                {
                    "direction": "egress",
                    "destination": {"domain": "allowed.test"},
                    "protocols": ["tcp"],
                    "action": "allow",
                },
            ],
        },
        "policy",
    )


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
def test_a_guest_chosen_resolver_cannot_pin_a_name(transport: Transport) -> None:
    # dig @attacker allowed.test: the attacker's resolver may answer anything,
    # so its answer must not make allowed.test's rule cover the attacker's IP.
    ic = interceptor(_allowlist())
    attacker = ipaddress.ip_address("6.6.6.6")
    exchange = ask(ic, query("allowed.test"), to="6.6.6.53", transport=transport)
    send = forwarded(exchange)
    assert send.direct
    answer = exchange.receive_upstream(
        upstream_reply(send.query, "allowed.test. 300 A 6.6.6.6"), NOW
    )
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NOERROR  # guest gets it
    assert not ic.pins.names_for(attacker, NOW + 1)
    assert not ic.evaluator.egress(attacker, 443, "tcp", NOW + 1).allowed
    # The configured resolvers' answer still pins.
    exchange = ask(ic, query("allowed.test"), transport=transport)
    send = forwarded(exchange)
    assert not send.direct
    exchange.receive_upstream(upstream_reply(send.query, "allowed.test. 300 A 93.184.215.14"), NOW)
    assert ic.evaluator.egress(ipaddress.ip_address("93.184.215.14"), 443, "tcp", NOW + 1).allowed


def _https_reply(sent: bytes, rdtype: str, data: str) -> bytes:
    request = dns.message.from_wire(sent)
    response = dns.message.make_response(request)
    owner = request.question[0].name
    response.answer.append(dns.rrset.from_text(owner, 60, "IN", rdtype, data))
    return response.to_wire()


@pytest.mark.parametrize("rdtype", ["HTTPS", "SVCB"])
@pytest.mark.parametrize(
    "hint",
    [
        "ipv4hint=127.0.0.1",
        "ipv4hint=93.184.215.14,10.0.0.5",
        "ipv6hint=::1",
        "ipv6hint=::ffff:169.254.169.254",
        "ipv6hint=64:ff9b::a00:5",
    ],
)
def test_address_hints_in_service_bindings_are_rebind_checked(rdtype: str, hint: str) -> None:
    # RFC 9460 7.3: clients may connect to the hints before (or instead of)
    # the A/AAAA answer, so a private hint rebinds as a private A record does.
    ic = interceptor()
    exchange = ask(ic, query("rebind.example", rdtype))
    send = forwarded(exchange)
    reply = _https_reply(send.query, rdtype, f"1 . alpn=h2 {hint}")
    answer = exchange.receive_upstream(reply, NOW)
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NXDOMAIN
    assert answer.outcome is not None and answer.outcome.reason == "rebind"


def test_public_address_hints_pass() -> None:
    ic = interceptor()
    exchange = ask(ic, query("ok.example", "HTTPS"))
    send = forwarded(exchange)
    reply = _https_reply(send.query, "HTTPS", "1 . alpn=h2 ipv4hint=93.184.215.14")
    answer = exchange.receive_upstream(reply, NOW)
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NOERROR
    assert answer.response is not None and answer.response[2:] == reply[2:]


@pytest.mark.parametrize("rdclass", ["HS", "CLASS77", "NONE"])
def test_records_of_other_classes_are_passed_on_not_read(rdclass: str) -> None:
    # An A record of another class has no IPv4 address in it (or one no
    # stub reads): the answer is still an answer, and binds nothing.
    ic = interceptor()
    exchange = ask(ic, query("odd.example"))
    send = forwarded(exchange)
    request = dns.message.from_wire(send.query)
    response = dns.message.make_response(request)
    response.answer.append(dns.rrset.from_text("odd.example.", 60, rdclass, "A", r"\# 4 0a000001"))
    response.answer.append(dns.rrset.from_text("odd.example.", 60, "IN", "A", "93.184.215.14"))
    reply = response.to_wire()
    answer = exchange.receive_upstream(reply, NOW)
    assert answer is not None and answer.response is not None
    assert answer.response[2:] == reply[2:]
    assert ic.pins.names_for(ipaddress.ip_address("93.184.215.14"), NOW) == {"odd.example"}
    assert not ic.pins.names_for(ipaddress.ip_address("10.0.0.1"), NOW)


def test_a_name_with_a_dot_inside_a_label_pins_nothing() -> None:
    # Labels ["x.app", "example"] are a child of "example", not of
    # "app.example", though their text "x\.app.example" ends in ".app.example".
    policy = NetworkPolicy.from_dict(
        {
            "default_egress": "allow",
            "rules": [
                {
                    "direction": "egress",
                    "destination": {"domain_suffix": "app.example"},
                    "protocols": ["tcp"],
                    "action": "allow",
                },
                {
                    "direction": "egress",
                    "destination": "any",
                    "protocols": ["tcp"],
                    "action": "deny",
                },
            ],
        },
        "policy",
    )
    ic = interceptor(policy)
    name = dns.name.Name((b"x.app", b"example", b""))
    message = dns.message.make_query(name, "A")
    exchange = ask(ic, message.to_wire())
    send = forwarded(exchange)
    reply = dns.message.make_response(dns.message.from_wire(send.query))
    reply.answer.append(dns.rrset.from_text(name, 300, "IN", "A", "93.184.215.14"))
    answer = exchange.receive_upstream(reply.to_wire(), NOW)
    assert answer is not None and parsed(answer).rcode() == dns.rcode.NOERROR
    ip = ipaddress.ip_address("93.184.215.14")
    assert not ic.evaluator.egress(ip, 443, "tcp", NOW + 1).allowed


_POISON = r"""
import struct, dns.message, dns.rdata, dns.rdataclass, dns.rdatatype
from tests.dns.test_intercept import interceptor, ask, forwarded, NOW

def name(text):
    return b"".join(bytes([len(l)]) + l.encode() for l in text.split(".")) + b"\x00"

def message(qid, flags, question, answers=(), authority=(), additional=()):
    head = struct.pack("!HHHHHH", qid, flags, 1, len(answers), len(authority), len(additional))
    return head + question + b"".join(answers) + b"".join(authority) + b"".join(additional)

def rr(owner, rdtype, rdclass, rdata):
    return name(owner) + struct.pack("!HHIH", rdtype, rdclass, 60, len(rdata)) + rdata

question = name("example.com") + struct.pack("!HH", 1, 1)
ic = interceptor()
# The guest's first query carries records of class ANY, types A and HTTPS.
ask(ic, message(1, 0x0100, question, additional=[
    rr("x", 1, 255, bytes(4)), rr("x", 65, 255, bytes(4))]))
for rdtype, record in [
    (1, rr("example.com", 1, 1, bytes([10, 0, 0, 5]))),
    (65, rr("example.com", 65, 1, b"\x00\x01\x00" + b"\x00\x04\x00\x04" + bytes([127, 0, 0, 1]))),
]:
    q = name("example.com") + struct.pack("!HH", rdtype, 1)
    exchange = ask(ic, message(2, 0x0100, q))
    send = forwarded(exchange)
    qid = int.from_bytes(send.query[:2], "big")
    # an authority section: the full parse reads this answer, not the direct read
    reply = message(qid, 0x8180, q, answers=[record],
                    authority=[rr("example.com", 2, 1, name("ns.example.com"))])
    answer = exchange.receive_upstream(reply, NOW)
    print(dns.message.from_wire(answer.response).rcode())
"""


def test_a_guest_cannot_break_the_record_parser_for_everyone() -> None:
    # dnspython caches "no implementation" for class ANY's A, and then hands
    # that to class IN too if IN's was not looked up yet: one guest message
    # would make every later A answer unreadable, in every network of the
    # process. Run in a fresh interpreter, where nothing has looked IN up.
    root = pathlib.Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", _POISON],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "3"]  # both rebinding answers: NXDOMAIN


def test_dns_over_tls_queries_are_judged_on_port_853() -> None:
    # §7.3 step 3: the DNS policy sees port 853 for DoT, so a policy can
    # refuse DNS over TLS while plain DNS over TCP resolves.
    policy = NetworkPolicy.from_dict(
        {
            "default_egress": "deny",
            "rules": [
                {
                    "direction": "egress",
                    "destination": "any",
                    "protocols": ["tcp"],
                    "ports": [{"start": 853, "end": 853}],
                    "action": "deny",
                },
                {"direction": "egress", "destination": "any", "action": "allow"},
            ],
        },
        "policy",
    )
    ic = interceptor(policy)
    plain = ic.receive_query(
        query("example.com"), destination=None, transport=Transport.TCP, now=NOW, upstream_id=1
    )
    forwarded(plain)
    dot = ic.receive_query(
        query("example.com"),
        destination=None,
        transport=Transport.TCP,
        now=NOW,
        upstream_id=1,
        port=853,
    )
    answer = answered(dot)
    assert parsed(answer).rcode() == dns.rcode.NXDOMAIN
    assert answer.outcome is not None and answer.outcome.decision.rule_index == 0


def test_a_resolver_judged_as_the_gateway_meets_the_hosts_rules() -> None:
    # The shell says 198.18.0.99 is one of the host's own addresses: the
    # egress policy judges it as the gateway, and the query still goes there.
    no_host = NetworkPolicy.from_dict(
        {
            "default_egress": "deny",
            "rules": [
                {
                    "direction": "egress",
                    "destination": {"domain_suffix": "test"},
                    "action": "allow",
                },
                {"direction": "egress", "destination": {"group": "public"}, "action": "allow"},
            ],
        },
        "policy",
    )
    for policy, allowed in [(no_host, False), (NetworkPolicy.from_profiles(["public"]), True)]:
        exchange = interceptor(policy).receive_query(
            query("x.test"),
            destination=ipaddress.ip_address("198.18.0.99"),
            transport=Transport.UDP,
            now=NOW,
            upstream_id=1,
            judged_as=GW4,
        )
        event = exchange.next_event()
        if allowed:  # allow_dns: the host group on port 53
            assert isinstance(event, SendUpstream) and event.direct
            assert event.upstream == Upstream(ipaddress.ip_address("198.18.0.99"))
        else:
            assert isinstance(event, Answer) and parsed(event).rcode() == dns.rcode.NXDOMAIN
            assert event.outcome is not None and event.outcome.reason == "resolver-denied"
