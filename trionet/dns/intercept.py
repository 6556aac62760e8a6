"""The DNS interceptor's decisions for one guest query (reference §7.3), sans-IO.

Every DNS query a guest sends, over UDP or TCP, to the gateway or to any
other address, is answered by trionet. :class:`DnsInterceptor` holds what is
fixed for a network (the policy evaluator, the pin set, the gateway
addresses, the upstream resolvers); :meth:`DnsInterceptor.receive_query`
turns one raw query into a :class:`DnsExchange`, a small state machine in
the style of h11: ask it for :meth:`~DnsExchange.next_event`, which is
either :class:`SendUpstream` (the shell sends those bytes to that resolver
and waits) or :class:`Answer` (bytes for the guest, or none at all). The
shell reports what happened with :meth:`~DnsExchange.receive_upstream` or
:meth:`~DnsExchange.upstream_failed`. Time is passed in; nothing here waits,
reads a clock or touches a socket.

Only dnspython's message codec is used (``dns.message``, ``dns.rrset`` and
friends): the resolving is trionet's, the upstream I/O the shell's.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset

from trionet.policy.evaluate import Decision, PolicyEvaluator, PolicyVerdict
from trionet.policy.groups import is_rebind_private
from trionet.policy.model import domain_or_none
from trionet.policy.pins import AnswerRecord, PinSet, answer_pins

__all__ = [
    "Answer",
    "DnsExchange",
    "DnsInterceptor",
    "DnsOutcome",
    "SendUpstream",
    "Transport",
    "Upstream",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The size a UDP client without EDNS can take (RFC 1035 4.2.1).
CLASSIC_UDP_SIZE = 512
#: TTL of the host alias's synthesized records (§7.3 step 5).
HOST_ALIAS_TTL = 60
DNS_PORT = 53


class Transport(enum.Enum):
    """How the guest sent its query; DNS policy sees it as the protocol."""

    UDP = "udp"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class Upstream:
    """A resolver trionet forwards to: an address and a port."""

    address: IPAddress
    port: int = DNS_PORT

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendUpstream:
    """Send ``query`` to ``upstream`` over the exchange's transport and wait.

    ``query`` carries ``upstream_id``, not the guest's id: a response whose
    id differs is not the answer to it.
    """

    upstream: Upstream
    query: bytes
    #: True on the guest-chosen resolver path (§7.3 step 6): no failover.
    direct: bool


@dataclass(frozen=True, slots=True)
class DnsOutcome:
    """What the audit record of one query says (the shell adds time and addresses)."""

    name: str
    #: the decision that settled the query: the DNS-query rule, the egress
    #: rule for a guest-chosen resolver, or rebind protection
    decision: Decision
    #: why, beyond the rule: "rebind", "resolver-denied", "host-alias", ...
    reason: str | None = None

    @property
    def verdict(self) -> str:
        return self.decision.verdict.value


@dataclass(frozen=True, slots=True)
class Answer:
    """The exchange is over: send ``response`` to the guest (None: send nothing)."""

    response: bytes | None
    #: the audit facts, or None for a query that never got that far (unparseable, FORMERR)
    outcome: DnsOutcome | None
    #: why nothing or an error was sent, for the drop counters (None: a normal answer)
    problem: str | None = None


Event = SendUpstream | Answer


# -- the interceptor ---------------------------------------------------------------------


class DnsInterceptor:
    """One network's DNS answering rules; makes one :class:`DnsExchange` per query."""

    def __init__(
        self,
        evaluator: PolicyEvaluator,
        pins: PinSet,
        *,
        gateway_ipv4: ipaddress.IPv4Address | None,
        gateway_ipv6: ipaddress.IPv6Address | None,
        gateway_addresses: Iterable[IPAddress] = (),
        host_alias: str,
        upstreams: Sequence[Upstream],
        rebind_protection: bool = True,
    ) -> None:
        self.evaluator = evaluator
        self.pins = pins
        self.gateway_ipv4 = gateway_ipv4
        self.gateway_ipv6 = gateway_ipv6
        #: every address that means "the gateway's resolver" (incl. IPv6 link-local)
        self.gateways = frozenset(
            [*gateway_addresses, *(a for a in (gateway_ipv4, gateway_ipv6) if a is not None)]
        )
        self.host_alias = dns.name.from_text(host_alias)
        self.upstreams = tuple(upstreams)
        self.rebind_protection = rebind_protection

    def receive_query(
        self,
        data: bytes,
        *,
        destination: IPAddress | None,
        transport: Transport,
        now: float,
        upstream_id: int,
        port: int = DNS_PORT,
        judged_as: IPAddress | None = None,
    ) -> DnsExchange:
        """Start answering ``data``, a query the guest sent to ``destination``.

        ``upstream_id`` is the 16-bit id the query gets on its way upstream
        (the shell draws it at random, so an off-path host cannot guess it).
        ``port`` is the one the guest dialled, as the DNS policy sees it: 53,
        or 853 for DNS over TLS (§7.3 step 3). ``judged_as`` is the address
        the egress policy judges a guest-chosen resolver as, when that is
        not ``destination`` itself: the gateway, for one of the host's own
        addresses (the host kernel delivers those locally; the shell knows).
        """
        return DnsExchange(
            self,
            data,
            destination=destination,
            transport=transport,
            now=now,
            upstream_id=upstream_id & 0xFFFF,
            port=port,
            judged_as=judged_as,
        )


class _State(enum.Enum):
    UPSTREAM = "upstream"  # waiting for a resolver's answer
    DONE = "done"


class DnsExchange:
    """One guest query, from its bytes to the guest's response."""

    def __init__(
        self,
        interceptor: DnsInterceptor,
        data: bytes,
        *,
        destination: IPAddress | None,
        transport: Transport,
        now: float,
        upstream_id: int,
        port: int = DNS_PORT,
        judged_as: IPAddress | None = None,
    ) -> None:
        self._ic = interceptor
        self.transport = transport
        self.port = port
        self.judged_as = judged_as
        self.destination = destination
        self.now = now
        self._upstream_id = upstream_id
        self._state = _State.DONE
        self._event: Event
        #: the query as dnspython parsed it; only when something needs it (see _message)
        self._parsed: dns.message.Message | None = None
        self._raw = data
        self._qid = 0
        self._qname = dns.name.root
        self._qtype = 0
        self._qclass = 0
        #: the guest's EDNS payload size, None without EDNS
        self._payload: int | None = None
        self._name = ""
        self._decision: Decision | None = None
        self._candidates: list[Upstream] = []
        self._direct = False
        self._event = self._start()

    @property
    def name(self) -> str:
        """The queried name (no trailing dot), once the query parsed."""
        return self._name

    def next_event(self) -> Event:
        """What the shell must do now: the same event until something is received."""
        return self._event

    # -- the query ----------------------------------------------------------------------

    def _start(self) -> Event:
        ic = self._ic
        peeked = _peek_query(self._raw)
        if peeked is not None:
            self._qid, self._qname, self._qtype, self._qclass, self._payload = peeked
        else:
            try:
                query = dns.message.from_wire(self._raw)
            except Exception:
                # dnspython raises many kinds on hostile bytes; none may escape.
                return Answer(None, None, "dns_unparseable")
            if query.flags & dns.flags.QR:
                # Never answer a response: no reflection off the gateway.
                return Answer(None, None, "dns_not_a_query")
            self._parsed = query
            self._qid = query.id
            self._payload = query.payload if query.edns >= 0 else None
            if len(query.question) != 1:
                return Answer(self._status(dns.rcode.FORMERR), None, "dns_formerr")
            if query.opcode() != dns.opcode.QUERY:
                return Answer(self._status(dns.rcode.NOTIMP), None, "dns_notimp")
            question = query.question[0]
            self._qname, self._qtype = question.name, question.rdtype
            self._qclass = question.rdclass
        self._name = self._qname.to_text(omit_final_dot=True) or "."
        protocol = self.transport.value
        decision = ic.evaluator.dns_query(self._name, protocol, self.port)
        self._decision = decision
        if not decision.allowed:
            return self._finish(self._status(dns.rcode.NXDOMAIN), decision)
        family = _family(self._qtype)
        if (family == 4 and ic.gateway_ipv4 is None) or (family == 6 and ic.gateway_ipv6 is None):
            ic.pins.forget(self._name, family)
            return self._finish(self._status(dns.rcode.NOERROR), decision, "inactive-family")
        if family and self._qname == ic.host_alias:
            return self._finish(self._host_alias(family), decision, "host-alias")
        return self._choose_upstreams(decision)

    def _choose_upstreams(self, decision: Decision) -> Event:
        ic = self._ic
        destination = self.destination
        if destination is None or destination in ic.gateways:
            self._candidates = list(ic.upstreams)
        else:
            # The guest chose its resolver (dig @X): that is an egress flow
            # to X, so it passes the egress policy like any other (§7.3 step 6).
            judged = destination if self.judged_as is None else self.judged_as
            egress = ic.evaluator.egress(judged, DNS_PORT, self.transport.value, self.now)
            if not egress.allowed:
                return self._finish(self._status(dns.rcode.NXDOMAIN), egress, "resolver-denied")
            self._candidates = [Upstream(destination, DNS_PORT)]
            self._direct = True
        return self._next_upstream()

    def _next_upstream(self) -> Event:
        if not self._candidates:
            assert self._decision is not None
            return self._finish(
                self._status(dns.rcode.SERVFAIL), self._decision, "upstream-failed"
            )
        self._state = _State.UPSTREAM
        upstream = self._candidates.pop(0)
        query = self._upstream_id.to_bytes(2, "big") + self._raw[2:]
        return SendUpstream(upstream, query, self._direct)

    # -- the upstream's side --------------------------------------------------------------

    def receive_upstream(self, data: bytes, now: float) -> Answer | None:
        """A resolver's response arrived: the guest's answer, or None if it is not
        the answer to this query (wrong id or question, unparseable) and the
        shell keeps waiting until its per-attempt timeout, then reports
        :meth:`upstream_failed`.
        """
        if self._state is not _State.UPSTREAM:
            raise RuntimeError("no upstream query is outstanding")
        if len(data) < 12 or int.from_bytes(data[:2], "big") != self._upstream_id:
            return None
        # Read the answer as the guest will: with its own id in front. A
        # compression pointer may point into the header, and the name it
        # gives would otherwise change between what is checked and what is
        # sent.
        data = self._raw[:2] + data[2:]
        reply = self._match(data)
        if reply is None:
            return None
        self.now = now
        return self._answer(reply, data)

    def upstream_failed(self) -> Event:
        """The current resolver timed out, refused the connection or closed it."""
        if self._state is not _State.UPSTREAM:
            raise RuntimeError("no upstream query is outstanding")
        self._event = self._next_upstream()
        return self._event

    def _match(self, data: bytes) -> _Reply | None:
        """The rcode and answer records of ``data`` if it answers this query, else None."""
        peeked = _peek_reply(data)
        if peeked is not None:
            flags, qname, qtype, qclass, records = peeked
            if not flags & dns.flags.QR:
                return None
            if qname != self._qname or qtype != self._qtype or qclass != self._qclass:
                return None
            return flags & 0xF, records
        try:
            response = dns.message.from_wire(data)
        except Exception:
            return None
        if not response.flags & dns.flags.QR:
            return None
        if len(response.question) != 1:
            # A resolver may answer FORMERR/NOTIMP/REFUSED without the question.
            if response.rcode() == dns.rcode.NOERROR:
                return None
            return response.rcode(), _records_of(response)
        got = response.question[0]
        if got.name != self._qname or got.rdtype != self._qtype or got.rdclass != self._qclass:
            return None
        return response.rcode(), _records_of(response)

    def _answer(self, reply: _Reply, data: bytes) -> Answer:
        """``data``: the upstream's answer with the guest's id, as read for ``reply``."""
        ic = self._ic
        decision = self._decision
        assert decision is not None
        family = _family(self._qtype)
        rcode, records = reply
        # A resolver the guest chose (dig @X) answers whatever its owner
        # likes: "allowed.example A <any IP>" would make allowed.example's
        # rules (and secrets bound to it) cover that IP. Only the configured
        # resolvers' answers bind names to addresses.
        pinning = family != 0 and not self._direct
        if ic.rebind_protection and self._rebinds(records):
            if pinning:
                ic.pins.forget(self._name, family)
            return self._finish(self._status(dns.rcode.NXDOMAIN), decision, "rebind")
        if pinning:
            self._update_pins(rcode, records, family)
        return self._finish(data, decision)

    def _rebinds(self, records: list[_Record]) -> bool:
        evaluator = self._ic.evaluator
        for _owner, _rdtype, _ttl, value in records:
            # A/AAAA addresses, and SVCB/HTTPS address hints (RFC 9460 7.3:
            # a client may connect to a hint before any A/AAAA arrives).
            if (
                isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address)
                and is_rebind_private(value)
                and not evaluator.admits_private_answer(value, self.now)
            ):
                return True
        return False

    def _update_pins(self, rcode: int, records: list[_Record], family: int) -> None:
        """Bind the queried name to the addresses its CNAME chain reaches (§7.5)."""
        pins = self._ic.pins
        name = self._name
        if rcode != dns.rcode.NOERROR or domain_or_none(name) is None:
            # A name that is not a domain name (a dot or a space inside a
            # label: "x\.app.example" is a child of "example") matches no
            # domain rule when queried (§10.4), and must not match one through
            # a pin either: its text can end in ".app.example".
            pins.forget(name, family)
            return
        answer = [
            AnswerRecord(
                owner.to_text(),
                _PIN_KINDS[rdtype],
                ttl,
                value.to_text() if isinstance(value, dns.name.Name) else str(value),
            )
            for owner, rdtype, ttl, value in records
            if rdtype in _PIN_KINDS
        ]
        addresses, ttl = answer_pins(name, family, answer)
        pins.record(name, family, addresses, ttl, self.now)

    # -- responses trionet writes itself ----------------------------------------------------

    def _message(self) -> dns.message.Message | None:
        """The query as dnspython parses it, for the responses trionet writes itself.

        A query read by :func:`_peek_query` parses (a differential property
        test holds the two readings together); None only if that ever broke.
        """
        if self._parsed is None:
            try:
                self._parsed = dns.message.from_wire(self._raw)
            except Exception:
                return None
        return self._parsed

    def _status(self, rcode: dns.rcode.Rcode) -> bytes | None:
        """A response with no records: id, opcode and RD echoed, RA set, question copied."""
        query = self._message()
        if query is None:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.set_rcode(rcode)
        return response.to_wire()

    def _host_alias(self, family: int) -> bytes | None:
        ic = self._ic
        query = self._message()
        if query is None:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA | dns.flags.AA
        address = ic.gateway_ipv4 if family == 4 else ic.gateway_ipv6
        rdtype = "A" if family == 4 else "AAAA"
        response.answer.append(
            dns.rrset.from_text(self._qname, HOST_ALIAS_TTL, "IN", rdtype, str(address))
        )
        return response.to_wire()

    def _finish(
        self,
        wire: bytes | None,
        decision: Decision,
        reason: str | None = None,
    ) -> Answer:
        self._state = _State.DONE
        if reason == "rebind":
            decision = _REBIND
        outcome = DnsOutcome(self._name, decision, reason)
        event = Answer(None if wire is None else self._fit(wire), outcome)
        self._event = event
        return event

    def _fit(self, wire: bytes) -> bytes | None:
        """Over UDP, a response larger than the guest can take becomes TC=1 (§7.3 step 11)."""
        if self.transport is not Transport.UDP:
            return wire
        payload = self._payload
        limit = CLASSIC_UDP_SIZE if payload is None else max(payload, CLASSIC_UDP_SIZE)
        if len(wire) <= limit:
            return wire
        query = self._message()
        if query is None:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA | dns.flags.TC
        return response.to_wire()


_PIN_KINDS: dict[int, str] = {
    dns.rdatatype.A: "A",
    dns.rdatatype.AAAA: "AAAA",
    dns.rdatatype.CNAME: "CNAME",
}
_ADDRESS_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})
#: Rebind protection, not a rule, turned the answer down (§7.4).
_REBIND = Decision(PolicyVerdict.DENY, None, "rebind_protection")


_HEADER = struct.Struct("!HHHHHH")
_QUESTION_TAIL = struct.Struct("!HH")
#: an OPT record: root owner, TYPE 41, CLASS = payload size, TTL = rcode/version/flags, RDLEN
_OPT = struct.Struct("!BHHIH")
_OPT_TYPE = 41
#: QR and the opcode bits of the header's flags: all zero in a standard query
_NOT_A_STANDARD_QUERY = 0xF800
_OPCODE = 0x7800

_Peeked = tuple[int, dns.name.Name, int, int, int | None]


def _peek_query(raw: bytes) -> _Peeked | None:
    """(id, name, type, class, EDNS payload or None) of a query in the common shape.

    Almost every stub resolver sends a header, one question and at most a
    bare OPT record (EDNS version 0, no options). That shape is read here
    directly, the name by dnspython's own name decoder, at a fraction of a
    full message parse. Anything else is None, and the full parse decides;
    ``tests/dns/test_properties.py`` checks that whatever this accepts, the
    full parse accepts with the same meaning.
    """
    if len(raw) < 17:
        return None
    qid, flags, questions, answers, authority, additional = _HEADER.unpack_from(raw)
    if flags & _NOT_A_STANDARD_QUERY or questions != 1 or answers or authority or additional > 1:
        return None
    try:
        name, used = dns.name.from_wire(raw, 12)
    except Exception:
        return None
    end = 12 + used + 4
    if len(raw) < end:
        return None
    rdtype, rdclass = _QUESTION_TAIL.unpack_from(raw, end - 4)
    if not additional:
        return (qid, name, rdtype, rdclass, None) if len(raw) == end else None
    if len(raw) != end + _OPT.size:
        return None
    owner, kind, payload, ttl, rdlength = _OPT.unpack_from(raw, end)
    if owner or kind != _OPT_TYPE or rdlength or ttl & 0x00FF0000:
        return None
    return qid, name, rdtype, rdclass, payload


#: one answer record: owner, type, TTL, and the address (A, AAAA, or one
#: SVCB/HTTPS address hint), target (CNAME) or None (any other type)
_Record = tuple[dns.name.Name, int, int, IPAddress | dns.name.Name | None]
#: an upstream's answer as far as the interceptor reads it: rcode, answer records
_Reply = tuple[int, list[_Record]]
_SERVICE_BINDINGS = frozenset({dns.rdatatype.SVCB, dns.rdatatype.HTTPS})

# dnspython finds a record's implementation lazily, by (class, type), and
# caches a miss: class ANY has no A, so a message with an "ANY A" record
# caches GenericRdata for (ANY, A) -- and a later lookup of (IN, A) falls
# back to that entry unless IN's own was looked up first. One guest query
# would leave every later A answer unreadable (no .address), in every
# network of the process. Look up IN's implementations of what we read now.
for _rdtype in (*_ADDRESS_TYPES, *_SERVICE_BINDINGS):
    dns.rdata.get_rdata_class(dns.rdataclass.IN, _rdtype)  # type: ignore[no-untyped-call]
_HINTS = (dns.rdtypes.svcbbase.ParamKey.IPV4HINT, dns.rdtypes.svcbbase.ParamKey.IPV6HINT)
_RR = struct.Struct("!HHIH")
_IN = 1


def _records_of(message: dns.message.Message) -> list[_Record]:
    records: list[_Record] = []
    for rrset in message.answer:
        if rrset.rdclass != dns.rdataclass.IN or rrset.deleting is not None:
            # Another class's "A" holds no IPv4 address (dnspython leaves
            # it generic, or reads CHAOS's 16-bit one): nothing to check or
            # pin, and nothing a stub connects to. dnspython files records
            # of class ANY and NONE (an UPDATE's deletions) under IN, marked
            # "deleting", with their rdata left generic.
            continue
        rdtype = rrset.rdtype
        for rdata in rrset:
            value: IPAddress | dns.name.Name | None = None
            if rdtype in _ADDRESS_TYPES:
                value = ipaddress.ip_address(rdata.address)
            elif rdtype == dns.rdatatype.CNAME:
                value = rdata.target
            elif rdtype in _SERVICE_BINDINGS:
                # Each address hint is a record of its own, typed as its
                # SVCB/HTTPS record: rebind protection reads the address,
                # the pin set (A, AAAA and CNAME only) never sees it.
                for key in _HINTS:
                    hint = rdata.params.get(key)
                    for address in () if hint is None else hint.addresses:
                        hinted = ipaddress.ip_address(address)
                        records.append((rrset.name, rdtype, rrset.ttl, hinted))
            records.append((rrset.name, rdtype, rrset.ttl, value))
    return records


def _peek_reply(
    data: bytes,
) -> tuple[int, dns.name.Name, int, int, list[_Record]] | None:
    """(flags, question name, type, class, answer records) of a reply in the common shape.

    The common shape: one question, answers that are A, AAAA or CNAME in
    class IN, no authority section, at most a bare OPT. Names go through
    dnspython's own decoder (compression included). Anything else is None
    and the full parse decides; ``tests/dns/test_properties.py`` checks that
    whatever this accepts, dnspython parses to the same records.
    """
    if len(data) < 17:
        return None
    _id, flags, questions, answers, authority, additional = _HEADER.unpack_from(data)
    if flags & _OPCODE or questions != 1 or authority or additional > 1:
        return None  # (an UPDATE's sections mean something else)
    size = len(data)
    try:
        qname, used = dns.name.from_wire(data, 12)
        at = 12 + used + 4
        if size < at:
            return None
        qtype, qclass = _QUESTION_TAIL.unpack_from(data, at - 4)
        records: list[_Record] = []
        aliased: set[dns.name.Name] = set()
        for _ in range(answers):
            owner, used = dns.name.from_wire(data, at)
            at += used
            if size < at + 10:
                return None
            rdtype, rdclass, ttl, rdlength = _RR.unpack_from(data, at)
            at += 10
            end = at + rdlength
            if rdclass != _IN or size < end:
                return None
            value: IPAddress | dns.name.Name
            if rdtype == dns.rdatatype.A and rdlength == 4:
                value = ipaddress.IPv4Address(data[at:end])
            elif rdtype == dns.rdatatype.AAAA and rdlength == 16:
                value = ipaddress.IPv6Address(data[at:end])
            elif rdtype == dns.rdatatype.CNAME:
                value, used = dns.name.from_wire(data, at)
                if used != rdlength or owner in aliased:
                    # Two CNAMEs for one name: dnspython keeps the last; let it.
                    return None
                aliased.add(owner)
            else:
                return None
            if ttl & 0x80000000:
                ttl = 0  # RFC 2181 8: a TTL with its top bit set means 0 (dnspython agrees)
            records.append((owner, rdtype, ttl, value))
            at = end
    except Exception:
        return None
    if additional:
        if size != at + _OPT.size:
            return None
        owner_byte, kind, _payload, ttl, rdlength = _OPT.unpack_from(data, at)
        # extended rcode and version zero: the rcode is the header's alone
        if owner_byte or kind != _OPT_TYPE or rdlength or ttl & 0xFFFF0000:
            return None
    elif size != at:
        return None
    return flags, qname, qtype, qclass, records


def _family(rdtype: int) -> int:
    """4 for A, 6 for AAAA, 0 for every other type."""
    if rdtype == dns.rdatatype.A:
        return 4
    if rdtype == dns.rdatatype.AAAA:
        return 6
    return 0
