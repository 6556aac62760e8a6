"""trionet: a userspace network engine for sandboxes and microVMs, built on Trio.

The public API is re-exported here; the layers underneath are described in
``docs/architecture.md``.
"""

from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import ConfigError, InterfaceOverrides, MacAddress, NetworkConfig
from trionet.dns.config import DnsConfig, Nameserver
from trionet.guest_env import guest_env_vars, parse_guest_env
from trionet.policy import (
    ANY,
    Action,
    AnyDestination,
    AuditRecord,
    Cidr,
    Decision,
    Destination,
    Direction,
    Domain,
    DomainSuffix,
    Gateways,
    Group,
    GroupDestination,
    NetworkPolicy,
    PinSet,
    PolicyEvaluator,
    PolicyVerdict,
    PortRange,
    Rule,
    canonical_domain,
)

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "Action",
    "AnyDestination",
    "AuditRecord",
    "Cidr",
    "ConfigError",
    "Decision",
    "Destination",
    "Direction",
    "DnsConfig",
    "Domain",
    "DomainSuffix",
    "Gateways",
    "Group",
    "GroupDestination",
    "GuestAddressing",
    "HostRoutes",
    "InterfaceOverrides",
    "MacAddress",
    "Nameserver",
    "NetworkConfig",
    "NetworkPolicy",
    "PinSet",
    "PolicyEvaluator",
    "PolicyVerdict",
    "PortRange",
    "Rule",
    "__version__",
    "canonical_domain",
    "derive_addressing",
    "guest_env_vars",
    "parse_guest_env",
]
