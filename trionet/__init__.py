"""trionet: a userspace network engine for sandboxes and microVMs, built on Trio.

The public API is re-exported here; the layers underneath are described in
``docs/architecture.md``.
"""

from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import ConfigError, InterfaceOverrides, MacAddress, NetworkConfig
from trionet.dhcp.config import DhcpConfig
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
from trionet.ports.config import PortMapping
from trionet.ratelimit.config import DirectionLimits, RateLimiterConfig, TokenBucketConfig
from trionet.secrets.config import (
    Injection,
    SecretEntry,
    SecretsConfig,
    SecretValue,
    ViolationAction,
    ViolationKind,
)
from trionet.secrets.handle import SecretsHandle
from trionet.tls.certs import CaError, CertificateAuthority
from trionet.tls.config import InterceptCa, LeafCacheConfig, ScopedCa, ScopedVerify, TlsConfig
from trionet.tls.patterns import HostPattern

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "Action",
    "AnyDestination",
    "AuditRecord",
    "CaError",
    "CertificateAuthority",
    "Cidr",
    "ConfigError",
    "Decision",
    "Destination",
    "DhcpConfig",
    "Direction",
    "DirectionLimits",
    "DnsConfig",
    "Domain",
    "DomainSuffix",
    "Gateways",
    "Group",
    "GroupDestination",
    "GuestAddressing",
    "HostPattern",
    "HostRoutes",
    "Injection",
    "InterceptCa",
    "InterfaceOverrides",
    "LeafCacheConfig",
    "MacAddress",
    "Nameserver",
    "NetworkConfig",
    "NetworkPolicy",
    "PinSet",
    "PolicyEvaluator",
    "PolicyVerdict",
    "PortMapping",
    "PortRange",
    "RateLimiterConfig",
    "Rule",
    "ScopedCa",
    "ScopedVerify",
    "SecretEntry",
    "SecretValue",
    "SecretsConfig",
    "SecretsHandle",
    "TlsConfig",
    "TokenBucketConfig",
    "ViolationAction",
    "ViolationKind",
    "__version__",
    "canonical_domain",
    "derive_addressing",
    "guest_env_vars",
    "parse_guest_env",
]
