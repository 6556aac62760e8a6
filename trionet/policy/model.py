"""Policy rules and profiles (reference §10.1, §10.6) and their dict form (§19).

A :class:`NetworkPolicy` is an ordered list of :class:`Rule` plus a default
action per direction. It is plain, frozen data: the evaluator
(:mod:`trionet.policy.evaluate`) decides, this module only describes and
validates. Every constructor here validates, so a policy that exists is
well formed; the dict reader names the field path of the first error
(``policy.rules[2].destination.cidr: ...``) so a user editing a large file is
pointed at the line to fix.

Embedders need not write dicts: ``Rule.allow(Group.PUBLIC)``,
``Rule.deny(Domain("evil.example"))``, ``NetworkPolicy.from_profiles(["public",
"host"]).prepend(...)`` build the same objects.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from trionet.config_fields import ConfigError, ConfigReader, parse_field

__all__ = [
    "ANY",
    "PROTOCOLS",
    "Action",
    "AnyDestination",
    "Cidr",
    "Destination",
    "Direction",
    "Domain",
    "DomainSuffix",
    "Group",
    "GroupDestination",
    "NetworkPolicy",
    "PortRange",
    "Protocol",
    "Rule",
    "canonical_domain",
    "domain_or_none",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Protocol = Literal["tcp", "udp", "icmpv4", "icmpv6"]
#: The protocols a rule can name, in their canonical (printing) order.
PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmpv4", "icmpv6")
_ICMP = frozenset({"icmpv4", "icmpv6"})


class Action(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


class Direction(enum.Enum):
    EGRESS = "egress"
    INGRESS = "ingress"
    ANY = "any"


class Group(enum.Enum):
    """Address groups of §10.2; the values are the wire names."""

    PUBLIC = "public"
    PRIVATE = "private"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link_local"
    METADATA = "metadata"
    MULTICAST = "multicast"
    HOST = "host"


# -- domain names ----------------------------------------------------------------

# Underscores are allowed (``_dmarc.example.com``, SRV owners); hyphens not at
# a label's edges. Anything else -- ``:``, ``/``, ``*``, spaces -- means the
# user wrote a URL, a port or a wildcard, which a domain rule cannot mean.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def canonical_domain(name: str) -> str:
    """The canonical form of a domain name: lower case, no leading/trailing dots.

    Raises ValueError for anything that is not a DNS name (empty, a URL, a
    name with a port, a wildcard, a label over 63 characters, ...).
    """
    text = name.strip(".").lower()
    if not text:
        raise ValueError(f"{name!r} is an empty domain name")
    if len(text) > 253:
        raise ValueError(f"{name!r} is longer than 253 characters")
    for label in text.split("."):
        if not _LABEL.match(label):
            raise ValueError(
                f"{name!r} is not a domain name (labels of a-z, 0-9, '_' and '-', 1..63 long)"
            )
    return text


def domain_or_none(name: str) -> str | None:
    """:func:`canonical_domain`, or None for a name no domain rule can match."""
    try:
        return canonical_domain(name)
    except ValueError:
        return None


# -- destinations ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnyDestination:
    """Every address (and, for DNS queries, every name)."""

    def text(self) -> str:
        return "any"

    def to_dict(self) -> Any:
        return "any"


#: The one value of :class:`AnyDestination`.
ANY = AnyDestination()


@dataclass(frozen=True, slots=True)
class Cidr:
    """An address block; ``Cidr("10.0.0.0/8")`` or ``Cidr("192.0.2.7")`` (a /32)."""

    network: IPNetwork

    def __init__(self, network: IPNetwork | str | ipaddress.IPv4Address | ipaddress.IPv6Address):
        if not isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
            # Host bits are dropped (``10.1.2.3/8`` means 10/8), as the
            # reference's parser keeps only the prefix for matching.
            network = ipaddress.ip_network(network, strict=False)
        object.__setattr__(self, "network", network)

    def text(self) -> str:
        return f"cidr:{self.network}"

    def to_dict(self) -> Any:
        return {"cidr": str(self.network)}


@dataclass(frozen=True, slots=True)
class Domain:
    """Exactly one name (canonicalised on construction)."""

    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", canonical_domain(self.name))

    def text(self) -> str:
        return f"domain:{self.name}"

    def to_dict(self) -> Any:
        return {"domain": self.name}


@dataclass(frozen=True, slots=True)
class DomainSuffix:
    """A name and every name under it, label-aligned (not ``evilexample.com``)."""

    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", canonical_domain(self.name))

    def text(self) -> str:
        return f"domain_suffix:{self.name}"

    def to_dict(self) -> Any:
        return {"domain_suffix": self.name}

    def covers(self, name: str) -> bool:
        suffix = self.name
        return name == suffix or (name.endswith(suffix) and name[-len(suffix) - 1] == ".")


@dataclass(frozen=True, slots=True)
class GroupDestination:
    """Every address in one §10.2 group."""

    group: Group

    def text(self) -> str:
        return f"group:{self.group.value}"

    def to_dict(self) -> Any:
        return {"group": self.group.value}


Destination = AnyDestination | Cidr | Domain | DomainSuffix | GroupDestination
DestinationLike = Destination | Group | str


def as_destination(value: DestinationLike) -> Destination:
    """A destination from its builder shorthand.

    A :class:`Group` becomes a group destination; a string is ``"any"``, an
    address or CIDR (a /32 or /128 for a bare address), or else a domain.
    Suffixes must be spelled ``DomainSuffix(...)``: matching a whole tree is
    worth saying out loud.
    """
    if isinstance(value, Group):
        return GroupDestination(value)
    if isinstance(value, str):
        if value == "any":
            return ANY
        try:
            return Cidr(value)
        except ValueError:
            return Domain(value)
    return value


# -- rules -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortRange:
    """Guest-side ports ``start..end`` inclusive."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end <= 65535:
            raise ValueError(f"{self.start}..{self.end} is not a port range within 0..65535")

    def text(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start}-{self.end}"

    def covers(self, other: PortRange) -> bool:
        return self.start <= other.start and other.end <= self.end


PortLike = PortRange | int | tuple[int, int]


def _port_range(value: PortLike) -> PortRange:
    if isinstance(value, PortRange):
        return value
    if isinstance(value, int):
        return PortRange(value, value)
    return PortRange(*value)


@dataclass(frozen=True, slots=True)
class Rule:
    """One ordered rule; the first matching rule decides (§10.3-10.5).

    ``protocols`` and ``ports`` empty mean "any". Ports are the guest-side
    port: the destination port for egress, the listening port for ingress.
    """

    direction: Direction
    destination: Destination
    action: Action
    protocols: frozenset[str] = frozenset()
    ports: tuple[PortRange, ...] = ()

    def __post_init__(self) -> None:
        unknown = self.protocols - set(PROTOCOLS)
        if unknown:
            raise ValueError(f"unknown protocol {sorted(unknown)[0]!r} (one of {PROTOCOLS})")

    # -- builders ------------------------------------------------------------

    @classmethod
    def allow(
        cls,
        destination: DestinationLike,
        *,
        direction: Direction = Direction.EGRESS,
        protocols: Iterable[str] = (),
        ports: Iterable[PortLike] = (),
    ) -> Rule:
        """An allow rule; see :meth:`build`."""
        return cls.build(Action.ALLOW, destination, direction, protocols, ports)

    @classmethod
    def deny(
        cls,
        destination: DestinationLike,
        *,
        direction: Direction = Direction.EGRESS,
        protocols: Iterable[str] = (),
        ports: Iterable[PortLike] = (),
    ) -> Rule:
        """A deny rule; see :meth:`build`."""
        return cls.build(Action.DENY, destination, direction, protocols, ports)

    @classmethod
    def build(
        cls,
        action: Action,
        destination: DestinationLike,
        direction: Direction = Direction.EGRESS,
        protocols: Iterable[str] = (),
        ports: Iterable[PortLike] = (),
    ) -> Rule:
        """The checked builder: destination shorthands (:func:`as_destination`),
        ports as ints or ``(start, end)`` pairs.

        Stricter than the dict form, as the reference's builder is: ICMP only
        in egress rules (ICMP has no ingress path), and no single-label
        suffix such as ``com`` (almost certainly a mistake).
        """
        protos = frozenset(p.lower() for p in protocols)
        dest = as_destination(destination)
        if direction is not Direction.EGRESS and protos & _ICMP:
            raise ValueError("ICMP rules must be egress rules")
        if isinstance(dest, DomainSuffix) and "." not in dest.name:
            raise ValueError(f"the suffix {dest.name!r} is a single label; name a real domain")
        return cls(direction, dest, action, protos, tuple(_port_range(p) for p in ports))

    # -- forms ----------------------------------------------------------------

    def text(self) -> str:
        """One line for humans and audit records: ``allow egress group:public tcp,udp port 53``."""
        parts = [self.action.value, self.direction.value, self.destination.text()]
        if self.protocols:
            parts.append(",".join(p for p in PROTOCOLS if p in self.protocols))
        if self.ports:
            parts.append("port " + ",".join(r.text() for r in self.ports))
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction.value,
            "destination": self.destination.to_dict(),
            "protocols": [p for p in PROTOCOLS if p in self.protocols],
            "ports": [{"start": r.start, "end": r.end} for r in self.ports],
            "action": self.action.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str) -> Rule:
        reader = ConfigReader(data, prefix)
        direction = _enum(reader, "direction", Direction, required=True)
        action = _enum(reader, "action", Action, required=True)
        dest_data = reader.take("destination", object, None)
        if dest_data is None:
            raise ConfigError(reader.path("destination"), "is required")
        destination = _destination_from_dict(dest_data, reader.path("destination"))
        protocols = []
        for i, value in enumerate(reader.take("protocols", list, [])):
            path = f"{reader.path('protocols')}[{i}]"
            # Legacy capitalised spellings ("Tcp") are accepted, as in §19.
            if not isinstance(value, str) or value.lower() not in PROTOCOLS:
                raise ConfigError(path, f"{value!r} is not one of {', '.join(PROTOCOLS)}")
            protocols.append(value.lower())
        ports = []
        for i, value in enumerate(reader.take("ports", list, [])):
            path = f"{reader.path('ports')}[{i}]"
            if not isinstance(value, Mapping):
                raise ConfigError(path, f"{value!r} is not a table with start and end")
            port_reader = ConfigReader(value, path + ".")
            start = port_reader.take("start", int, None)
            end = port_reader.take("end", int, None)
            port_reader.finish()
            if start is None or end is None:
                raise ConfigError(path, "needs both start and end")
            try:
                ports.append(PortRange(start, end))
            except ValueError as exc:
                raise ConfigError(path, str(exc)) from exc
        reader.finish()
        return cls(direction, destination, action, frozenset(protocols), tuple(ports))


def _enum(reader: ConfigReader, key: str, kind: Any, *, required: bool) -> Any:
    value = reader.take(key, str, None)
    if value is None:
        if required:
            raise ConfigError(reader.path(key), "is required")
        return None
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(m.value for m in kind)
        raise ConfigError(reader.path(key), f"{value!r} is not one of {names}") from None


def _destination_from_dict(data: Any, path: str) -> Destination:
    if data == "any":
        return ANY
    if not isinstance(data, Mapping) or len(data) != 1:
        raise ConfigError(
            path,
            f'{data!r} is not "any" or a table with one of cidr, domain, domain_suffix, group',
        )
    ((key, value),) = data.items()
    sub = f"{path}.{key}"
    if key not in ("cidr", "domain", "domain_suffix", "group"):
        raise ConfigError(sub, "unknown destination kind (cidr, domain, domain_suffix, group)")
    if not isinstance(value, str):
        raise ConfigError(sub, f"{value!r} is not a string")
    if key == "cidr":
        return parse_field(sub, Cidr, value)
    if key == "domain":
        return parse_field(sub, Domain, value)
    if key == "domain_suffix":
        return parse_field(sub, DomainSuffix, value)
    try:
        return GroupDestination(Group(value))
    except ValueError:
        names = ", ".join(g.value for g in Group)
        raise ConfigError(sub, f"{value!r} is not one of {names}") from None


# -- shadowing ---------------------------------------------------------------------


def _covers_destination(earlier: Destination, later: Destination) -> bool:
    if isinstance(earlier, AnyDestination):
        return True
    if isinstance(earlier, GroupDestination):
        return earlier == later
    if isinstance(earlier, Cidr) and isinstance(later, Cidr):
        a, b = earlier.network, later.network
        return a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]
    return False  # domains are never considered


def covers(earlier: Rule, later: Rule) -> bool:
    """True when every flow ``later`` matches is matched by ``earlier`` first (§10.1)."""
    if earlier.direction is not Direction.ANY and earlier.direction is not later.direction:
        return False
    if not _covers_destination(earlier.destination, later.destination):
        return False
    if earlier.protocols and (not later.protocols or not later.protocols <= earlier.protocols):
        return False
    if earlier.ports:
        if not later.ports:
            return False
        if not all(any(e.covers(p) for e in earlier.ports) for p in later.ports):
            return False
    return True


# -- the policy --------------------------------------------------------------------

_PROFILES = ("public", "private", "host")


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Ordered rules plus a default per direction; missing defaults deny (fail closed)."""

    default_egress: Action = Action.DENY
    default_ingress: Action = Action.DENY
    rules: tuple[Rule, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))

    # -- presets (§10.6) -------------------------------------------------------

    @classmethod
    def from_profiles(cls, profiles: Iterable[str]) -> NetworkPolicy:
        """Compose ``public``, ``private`` and ``host``: DNS via the gateway, then each group.

        Duplicates are ignored and the order is canonical. No profile at all
        leaves no rules and denies egress. Ingress is allowed either way (it
        only concerns ports the embedder published on purpose).
        """
        chosen = set()
        for name in profiles:
            if name not in _PROFILES:
                raise ValueError(f"unknown profile {name!r} (one of {', '.join(_PROFILES)})")
            chosen.add(name)
        if not chosen:
            return cls(Action.DENY, Action.ALLOW, ())
        rules = [allow_dns()]
        rules += [Rule.allow(Group(name)) for name in _PROFILES if name in chosen]
        return cls(Action.DENY, Action.ALLOW, tuple(rules))

    @classmethod
    def public(cls) -> NetworkPolicy:
        """The default: the public internet plus DNS through the gateway."""
        return cls.from_profiles(["public"])

    @classmethod
    def allow_all(cls) -> NetworkPolicy:
        """``--net all``: both directions allowed, no rules."""
        return cls(Action.ALLOW, Action.ALLOW, ())

    @classmethod
    def deny_all(cls) -> NetworkPolicy:
        """``--net none``: both directions denied, no rules."""
        return cls(Action.DENY, Action.DENY, ())

    def prepend(self, *rules: Rule) -> NetworkPolicy:
        """These rules first, so they outrank the existing ones (e.g. a profile's allows)."""
        return NetworkPolicy(self.default_egress, self.default_ingress, (*rules, *self.rules))

    def append(self, *rules: Rule) -> NetworkPolicy:
        return NetworkPolicy(self.default_egress, self.default_ingress, (*self.rules, *rules))

    def allow_domains(self, *names: str) -> NetworkPolicy:
        return self.prepend(*(Rule.allow(Domain(n)) for n in names))

    def deny_domains(self, *names: str) -> NetworkPolicy:
        return self.prepend(*(Rule.deny(Domain(n)) for n in names))

    def allow_domain_suffixes(self, *names: str) -> NetworkPolicy:
        return self.prepend(*(Rule.allow(DomainSuffix(n)) for n in names))

    def deny_domain_suffixes(self, *names: str) -> NetworkPolicy:
        return self.prepend(*(Rule.deny(DomainSuffix(n)) for n in names))

    # -- checks --------------------------------------------------------------------

    def shadowed(self) -> list[str]:
        """Warnings for rules an earlier rule fully covers (they can never decide)."""
        warnings = []
        for j, later in enumerate(self.rules):
            for i in range(j):
                if covers(self.rules[i], later):
                    warnings.append(
                        f"rules[{j}] ({later.text()}) is shadowed by "
                        f"rules[{i}] ({self.rules[i].text()})"
                    )
                    break
        return warnings

    def has_domain_rules(self) -> bool:
        return any(isinstance(r.destination, Domain | DomainSuffix) for r in self.rules)

    # -- dict form (§19) -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "default_egress": self.default_egress.value,
            "default_ingress": self.default_ingress.value,
            "rules": [rule.to_dict() for rule in self.rules],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "policy.") -> NetworkPolicy:
        """Read the §19 form; missing defaults deny, so ``{}`` denies everything."""
        reader = ConfigReader(data, prefix)
        egress = _enum(reader, "default_egress", Action, required=False) or Action.DENY
        ingress = _enum(reader, "default_ingress", Action, required=False) or Action.DENY
        rules_data: Sequence[Any] = reader.take("rules", list, [])
        reader.finish()
        rules = []
        for i, item in enumerate(rules_data):
            path = f"{prefix}rules[{i}]"
            if not isinstance(item, Mapping):
                raise ConfigError(path, f"{item!r} is not a table")
            rules.append(Rule.from_dict(item, path + "."))
        return cls(egress, ingress, tuple(rules))


def allow_dns() -> Rule:
    """DNS through the gateway: the first rule of every non-empty profile."""
    return Rule.allow(Group.HOST, protocols=("udp", "tcp"), ports=(53,))


def deny_dns() -> Rule:
    return Rule.deny(Group.HOST, protocols=("udp", "tcp"), ports=(53,))
