"""Policy decisions per second: a 100-rule policy beside the allow-all baseline.

The evaluator runs once per new flow (a SYN, a UDP flow, a ping) and once per
DNS query, inside the engine's flush, so its cost is per-connection latency.
The 100-rule policy mixes what real policies hold: CIDR denies and allows
with port and protocol filters, group rules, exact and suffix domain rules
(matched through a populated pin set), then the public profile at the end.
Each case cycles through the same 64 flows: public addresses that fall
through to the last rules (the common, expensive case), private ones caught
early, pinned names, IPv6 and IPv4-mapped addresses.

    python -m benchmarks.bench_policy
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import partial

from benchmarks.timing import best_rate
from trionet.policy import (
    Action,
    Domain,
    DomainSuffix,
    Gateways,
    Group,
    NetworkPolicy,
    PinSet,
    PolicyEvaluator,
    Rule,
)

ip = ipaddress.ip_address
GATEWAYS = Gateways(ipaddress.IPv4Address("172.16.0.1"), (ipaddress.IPv6Address("fd42::1"),))


def hundred_rules() -> NetworkPolicy:
    rules: list[Rule] = []
    for i in range(30):  # blocks of the private space, some service ports
        rules.append(Rule.deny(f"10.{i}.0.0/16", protocols=["tcp"], ports=[22, (6000, 6100)]))
    for i in range(20):
        rules.append(Rule.allow(f"192.168.{i}.0/24", protocols=["tcp", "udp"], ports=[443]))
    for i in range(20):
        rules.append(Rule.deny(Domain(f"blocked{i}.example")))
    for i in range(10):
        rules.append(Rule.allow(DomainSuffix(f"svc{i}.example"), ports=[443]))
    for i in range(10):
        rules.append(Rule.deny(f"2001:db8:{i}::/48"))
    rules += [
        Rule.deny(Group.METADATA),
        Rule.deny(Group.LINK_LOCAL),
        Rule.allow(Group.HOST, protocols=["udp", "tcp"], ports=[53]),
        Rule.deny(Group.LOOPBACK),
        Rule.deny(Group.MULTICAST),
        Rule.deny(Group.PRIVATE),
        Rule.deny("198.18.0.0/15"),
        Rule.deny("100.64.0.0/10", protocols=["udp"]),
        Rule.allow("any", protocols=["icmpv4", "icmpv6"]),
        Rule.allow(Group.PUBLIC),
    ]
    assert len(rules) == 100
    return NetworkPolicy(Action.DENY, Action.ALLOW, tuple(rules))


def flows() -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, str]]:
    out: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int, str]] = []
    for i in range(64):
        kind = i % 8
        if kind in (0, 1, 2):  # public: walks to the end
            out.append((ip(f"93.184.{i}.{i + 1}"), 443, "tcp"))
        elif kind == 3:
            out.append((ip(f"10.{i % 30}.1.1"), 22, "tcp"))  # caught by an early deny
        elif kind == 4:
            out.append((ip(f"203.0.113.{i}"), 443, "tcp"))  # pinned to a svc name
        elif kind == 5:
            out.append((ip(f"2606:4700::{i:x}"), 443, "tcp"))
        elif kind == 6:
            out.append((ip(f"::ffff:192.168.{i % 20}.9"), 443, "udp"))
        else:
            out.append((ip("169.254.169.254"), 80, "tcp"))
    return out


#: five loops of each: the policy cases are many and each loop is long
_rate = partial(best_rate, repeats=5)


def run() -> dict[str, float]:
    pins = PinSet()
    for i in range(64):
        pins.record(f"www.svc{i % 10}.example", 4, [ip(f"203.0.113.{i}")], 300, 0.0)
        pins.record(f"blocked{i % 20}.example", 4, [ip(f"198.51.100.{i}")], 300, 0.0)
    big = PolicyEvaluator(hundred_rules(), GATEWAYS, pins)
    baseline = PolicyEvaluator(NetworkPolicy.allow_all(), GATEWAYS, pins)
    public = PolicyEvaluator(NetworkPolicy.public(), GATEWAYS, pins)
    cases = flows()
    names = [f"host{i}.svc{i % 10}.example" for i in range(32)] + [
        f"www{i}.example.org" for i in range(32)
    ]

    def cycle(fn: Callable[[int], object]) -> Callable[[], object]:
        counter = [0]

        def step() -> object:
            counter[0] = (counter[0] + 1) & 63
            return fn(counter[0])

        return step

    def egress(ev: PolicyEvaluator, deferred: bool = False) -> Callable[[int], object]:
        def decide(i: int) -> object:
            address, port, protocol = cases[i]
            return ev.egress(address, port, protocol, 1.0, deferred=deferred)

        return decide

    n = 20000
    metrics = {
        "egress_allow_all_decisions_per_s": _rate(cycle(egress(baseline)), n),
        "egress_public_profile_decisions_per_s": _rate(cycle(egress(public)), n),
        "egress_100_rules_decisions_per_s": _rate(cycle(egress(big)), n),
        "egress_100_rules_deferred_decisions_per_s": _rate(cycle(egress(big, True)), n),
        "dns_query_100_rules_decisions_per_s": _rate(
            cycle(lambda i: big.dns_query(names[i], "udp", 53)), n
        ),
        "dns_query_allow_all_decisions_per_s": _rate(
            cycle(lambda i: baseline.dns_query(names[i], "udp", 53)), n
        ),
    }
    metrics["egress_100_rules_us_per_decision"] = 1e6 / metrics["egress_100_rules_decisions_per_s"]
    width = max(map(len, metrics))
    for name, value in metrics.items():
        print(f"  {name:<{width}}  {value:>12,.1f}")
    return metrics


if __name__ == "__main__":
    run()
