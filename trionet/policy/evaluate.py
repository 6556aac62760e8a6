"""Deciding flows, DNS queries and DNS answers against a policy (§10.3-10.5, §7.4, §10.7).

:class:`PolicyEvaluator` holds a tenant policy, the sandbox's gateways, the
pin set and, for multi-tenant deployments, a platform policy that every
flow must pass as well (tenant rules can narrow it, never widen it). Each
question returns a :class:`Decision` naming the rule that decided it, which
is what goes on record.

The rules are compiled once into tuples so that a decision is one pass of
integer and set tests: it runs on every new flow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from trionet.policy.groups import Gateways, IPAddress, classify, normalize
from trionet.policy.model import (
    PROTOCOLS,
    Action,
    AnyDestination,
    Cidr,
    Direction,
    Domain,
    DomainSuffix,
    Group,
    GroupDestination,
    NetworkPolicy,
    domain_or_none,
)
from trionet.policy.pins import PinSet

__all__ = ["Decision", "PolicyEvaluator", "PolicyVerdict"]


class PolicyVerdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    #: SYN time, domain rules in play and no hostname yet: decide on the SNI
    #: (or, without a peek, on the pin set) before dialling.
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict and the rule that made it (``rule_index`` None and ``"default"`` if none)."""

    verdict: PolicyVerdict
    rule_index: int | None
    rule_text: str
    #: the name that made a domain rule match (from the pin set, the SNI or the query)
    matched_name: str | None = None
    #: "tenant", or "platform" when the multi-tenant floor decided
    layer: str = "tenant"

    @property
    def allowed(self) -> bool:
        return self.verdict is PolicyVerdict.ALLOW


_ANY, _CIDR, _GROUP, _DOMAIN, _SUFFIX = range(5)
_CACHE_ONLY, _SNI, _DEFERRED = range(3)


def _compile(policy: NetworkPolicy) -> tuple[tuple[Any, ...], ...]:
    """Per rule: (index, text, allow?, egress?, ingress?, protocols, ports, kind, data...)."""
    compiled = []
    for i, rule in enumerate(policy.rules):
        dest = rule.destination
        data: tuple[Any, ...]
        if isinstance(dest, AnyDestination):
            data = (_ANY, None, 0, 0)
        elif isinstance(dest, Cidr):
            net = dest.network
            data = (_CIDR, net.version, int(net.network_address), int(net.netmask))
        elif isinstance(dest, GroupDestination):
            data = (_GROUP, dest.group, 0, 0)
        elif isinstance(dest, Domain):
            data = (_DOMAIN, dest.name, 0, 0)
        else:
            assert isinstance(dest, DomainSuffix)
            data = (_SUFFIX, dest.name, 0, 0)
        compiled.append(
            (
                i,
                rule.text(),
                rule.action is Action.ALLOW,
                rule.direction is not Direction.INGRESS,
                rule.direction is not Direction.EGRESS,
                rule.protocols or None,
                tuple((r.start, r.end) for r in rule.ports) or None,
                *data,
            )
        )
    return tuple(compiled)


def _name_matches(kind: int, rule_name: str, name: str) -> bool:
    if kind == _DOMAIN:
        return name == rule_name
    return name == rule_name or (name.endswith(rule_name) and name[-len(rule_name) - 1] == ".")


def _port_ok(ports: tuple[tuple[int, int], ...] | None, port: int | None) -> bool:
    if ports is None:
        return True
    if port is None:
        return False
    # A plain loop, not any() over a generator: this runs per rule of every
    # decision, and the generator costs three times as much.
    for start, end in ports:  # noqa: SIM110
        if start <= port <= end:
            return True
    return False


class _Flow:
    """One flow's facts, with the group and the pinned names worked out on first use."""

    __slots__ = ("_group", "_names", "evaluator", "ip", "now", "value", "version")

    def __init__(self, evaluator: PolicyEvaluator, ip: IPAddress, now: float) -> None:
        ip = normalize(ip)
        self.evaluator = evaluator
        self.ip = ip
        self.value = int(ip)
        self.version = ip.version
        self.now = now
        self._group: Group | bool | None = False
        self._names: frozenset[str] | None = None

    @property
    def group(self) -> Group | None:
        if self._group is False:
            self._group = classify(self.ip, self.evaluator.gateways)
        return self._group  # type: ignore[return-value]

    @property
    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = self.evaluator.pins.names_for(self.ip, self.now)
        return self._names

    def bound_name(self, kind: int, rule_name: str) -> str | None:
        for name in sorted(self.names):
            if _name_matches(kind, rule_name, name):
                return name
        return None

    def address_matches(self, kind: int, a: Any, b: int, c: int) -> bool:
        if kind == _ANY:
            return True
        if kind == _CIDR:
            return a == self.version and self.value & c == b
        return kind == _GROUP and self.group is a


class PolicyEvaluator:
    """Answers the policy questions of one sandbox (sans-IO: time is passed in)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        gateways: Gateways,
        pins: PinSet,
        platform: NetworkPolicy | None = None,
    ) -> None:
        self.policy = policy
        self.gateways = gateways
        self.pins = pins
        self.platform = platform
        self._rules = _compile(policy)
        self._platform_rules = None if platform is None else _compile(platform)
        # Egress walks, pre-filtered per protocol: the walk then tests only
        # ports and destinations (this runs once per new flow).
        self._egress = _by_protocol(self._rules)
        self._platform_egress = (
            None if self._platform_rules is None else _by_protocol(self._platform_rules)
        )
        #: whether a peek at the hostname could change any tenant decision
        self.has_domain_rules = policy.has_domain_rules()

    # -- egress (§10.3) --------------------------------------------------------

    def egress(
        self,
        ip: IPAddress,
        port: int | None,
        protocol: str,
        now: float,
        *,
        sni: str | None = None,
        deferred: bool = False,
    ) -> Decision:
        """Decide a new outbound flow to ``ip:port`` (``port`` None for ICMP).

        ``sni`` is the hostname a peek found; ``deferred`` says it is SYN time
        and a peek may follow, so a domain rule returns DEFER instead of
        guessing. Without either, domain rules match through the pin set
        only. The platform policy (multi-tenant) is always asked on the pin
        set alone, and must allow too.
        """
        flow = _Flow(self, ip, now)
        floor = self._floor(flow, port, protocol)
        if floor is not None and floor.verdict is PolicyVerdict.DENY:
            return Decision(
                floor.verdict, floor.rule_index, floor.rule_text, floor.matched_name, "platform"
            )
        mode = _SNI if sni is not None else _DEFERRED if deferred else _CACHE_ONLY
        # (an SNI that is no domain name is one no domain rule can name)
        sni_name = None if sni is None else domain_or_none(sni)
        return self._walk(
            _rules_for(self._egress, self._rules, protocol),
            self.policy.default_egress,
            flow,
            port=port,
            mode=mode,
            sni=sni_name,
        )

    def _floor(self, flow: _Flow, port: int | None, protocol: str) -> Decision | None:
        """The platform policy's word on an egress flow (on the pin set alone); None if none."""
        if self._platform_egress is None:
            return None
        assert self.platform is not None
        return self._walk(
            _rules_for(self._platform_egress, self._platform_rules, protocol),
            self.platform.default_egress,
            flow,
            port=port,
            mode=_CACHE_ONLY,
            sni=None,
        )

    def _walk(
        self,
        rules: tuple[tuple[Any, ...], ...],
        default: Action,
        flow: _Flow,
        *,
        port: int | None,
        mode: int,
        sni: str | None,
    ) -> Decision:
        """First match among egress ``rules`` already filtered for the flow's protocol.

        In deferred mode a deny domain rule cannot be settled yet: the walk
        carries on to see whether anything after it could still allow the
        flow. If what decides it then is a deny (a later rule or the
        default), the flow is denied now whatever its hostname; otherwise the
        first such deny rule defers it. One pass, no recursion: a blocklist
        of thousands of domains costs a loop, not a stack frame per rule.
        """
        value, version = flow.value, flow.version
        deferred: Decision | None = None
        for rule in rules:
            index, text, allow, _egress, _ingress, _protocols, ports, kind, a, b, c = rule
            if ports is not None and not _port_ok(ports, port):
                continue
            decision: Decision | None = None
            if kind == _CIDR:
                if a == version and value & c == b:
                    decision = _decision(allow, index, text, None)
            elif kind == _GROUP:
                if flow.group is a:
                    decision = _decision(allow, index, text, None)
            elif kind == _ANY:
                decision = _decision(allow, index, text, None)
            # A domain rule: how it matches depends on what we know of the hostname.
            elif mode == _CACHE_ONLY:
                bound = flow.bound_name(kind, a)
                if bound is not None:
                    decision = _decision(allow, index, text, bound)
            elif mode == _SNI:
                if sni is None or not _name_matches(kind, a, sni):
                    continue
                if not allow:
                    # Deny on the SNI alone: dialling the IP directly must
                    # not dodge a domain block.
                    decision = _decision(False, index, text, sni)
                # Allow only if this sandbox resolved that name to this IP:
                # a spoofed SNI on an unrelated IP gets nothing.
                elif flow.bound_name(kind, a) is not None:
                    decision = _decision(True, index, text, sni)
            elif allow:
                bound = flow.bound_name(kind, a)
                if bound is not None:
                    decision = Decision(PolicyVerdict.DEFER, index, text, bound)
            elif deferred is None:
                deferred = Decision(PolicyVerdict.DEFER, index, text, None)
            if decision is not None:
                return _settle(deferred, decision)
        return _settle(deferred, _default(default))

    # -- DNS queries (§10.4) ------------------------------------------------------

    def dns_query(self, name: str, protocol: str, port: int) -> Decision:
        """May the guest resolve ``name`` (over ``protocol`` to ``port``, 53 or 853)?

        Domain rules match the name directly and ignore their protocol and
        port filters; ``any`` and ``group: host`` rules (the gateway resolver)
        match when their filters accept the transport; nothing else matches.
        A name that is not a valid domain can only match the latter two.
        """
        canonical = domain_or_none(name)
        for index, text, allow, egress, _ingress, protocols, ports, kind, a, _b, _c in self._rules:
            if not egress:
                continue
            if kind >= _DOMAIN:
                if canonical is not None and _name_matches(kind, a, canonical):
                    return _decision(allow, index, text, canonical)
                continue
            if kind == _CIDR or (kind == _GROUP and a is not Group.HOST):
                continue
            if protocols is not None and protocol not in protocols:
                continue
            if _port_ok(ports, port):
                return _decision(allow, index, text, canonical)
        decision = _default(self.policy.default_egress)
        return Decision(decision.verdict, None, decision.rule_text, canonical)

    # -- ingress (§10.5) -------------------------------------------------------------

    def ingress(self, peer_ip: IPAddress, guest_port: int, protocol: str, now: float) -> Decision:
        """May ``peer_ip`` reach the guest's published ``guest_port``?"""
        flow = _Flow(self, peer_ip, now)
        for index, text, allow, _egress, ingress, protocols, ports, kind, a, b, c in self._rules:
            if not ingress:
                continue
            if protocols is not None and protocol not in protocols:
                continue
            if not _port_ok(ports, guest_port):
                continue
            if kind < _DOMAIN:
                if flow.address_matches(kind, a, b, c):
                    return _decision(allow, index, text, None)
                continue
            bound = flow.bound_name(kind, a)
            if bound is not None:
                return _decision(allow, index, text, bound)
        return _default(self.policy.default_ingress)

    # -- DNS answers (§7.4) --------------------------------------------------------------

    def admits_private_answer(self, ip: IPAddress, now: float) -> bool:
        """Keep a rebind-private DNS answer? Only if explicitly allowed for TCP or UDP.

        Both must hold for one protocol: the platform floor (if any) allows
        the address, and the tenant's first matching *explicit* rule -- an
        egress/any rule on a CIDR or group, with no port filter -- allows it.
        Defaults, ``any`` and port-scoped rules never admit: a policy must
        name a private range to get answers in it.
        """
        flow = _Flow(self, ip, now)
        for protocol in ("tcp", "udp"):
            floor = self._floor(flow, None, protocol)
            if floor is not None and floor.verdict is not PolicyVerdict.ALLOW:
                continue
            for _i, _t, allow, egress, _in, protocols, ports, kind, a, b, c in self._rules:
                if not egress or ports is not None or kind not in (_CIDR, _GROUP):
                    continue
                if protocols is not None and protocol not in protocols:
                    continue
                if flow.address_matches(kind, a, b, c):
                    if allow:
                        return True
                    break
        return False


_Compiled = tuple[tuple[Any, ...], ...]


def _egress_for(rules: _Compiled, protocol: str) -> _Compiled:
    """The egress rules (r[3]) whose protocol filter (r[5]) admits ``protocol``."""
    return tuple(r for r in rules if r[3] and (r[5] is None or protocol in r[5]))


def _by_protocol(rules: _Compiled) -> dict[str, _Compiled]:
    return {protocol: _egress_for(rules, protocol) for protocol in PROTOCOLS}


def _rules_for(table: dict[str, _Compiled], rules: _Compiled | None, protocol: str) -> _Compiled:
    found = table.get(protocol)
    if found is not None:
        return found
    assert rules is not None
    return _egress_for(rules, protocol)


def _settle(deferred: Decision | None, decision: Decision) -> Decision:
    """What a deferred walk returns: a deny stands; anything else waits on the hostname."""
    if deferred is None or decision.verdict is PolicyVerdict.DENY:
        return decision
    return deferred


def _decision(allow: bool, index: int, text: str, name: str | None) -> Decision:
    return Decision(PolicyVerdict.ALLOW if allow else PolicyVerdict.DENY, index, text, name)


_ALLOW_DEFAULT = Decision(PolicyVerdict.ALLOW, None, "default")
_DENY_DEFAULT = Decision(PolicyVerdict.DENY, None, "default")


def _default(action: Action) -> Decision:
    return _ALLOW_DEFAULT if action is Action.ALLOW else _DENY_DEFAULT
