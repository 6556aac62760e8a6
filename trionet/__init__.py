"""trionet: a userspace network engine for sandboxes and microVMs, built on Trio.

Everything an embedder touches is importable from here; the layers underneath
are described in ``docs/architecture.md``. A typical embedder::

    async with trionet.open_network(trionet.NetworkConfig(), slot) as net:
        backend = net.take_backend()  # frames to and from the guest's NIC
        env = net.guest_env_vars()  # MSB_NET* variables for the guest's init

The imports are plain except one: the TLS interception CA's types
(:class:`CertificateAuthority`, :class:`CaError`) load ``cryptography``, about
9 MiB resident per process, which an engine without TLS never needs and a host
running hundreds of engines would pay hundreds of times. They resolve on first
use through the module's ``__getattr__``; mypy and IDEs see them through the
``TYPE_CHECKING`` import.

Each feature adds its imports and one ``__all__`` line per name; keeping both
sorted (ruff enforces it) lets branches that add features merge without
touching each other's lines.
"""

import importlib
from typing import TYPE_CHECKING

# First of trionet's imports (isort keeps it first): refuses to go on if a
# compiled module of the optional mypyc build would shadow an edited source.
from trionet import _compiled  # noqa: F401
from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import ConfigError, InterfaceOverrides, MacAddress, NetworkConfig
from trionet.dhcp.config import DhcpConfig
from trionet.dns.config import DnsConfig, Nameserver
from trionet.engine.audit import AuditCallback
from trionet.engine.backend import FrameBackend, FrameSink
from trionet.engine.guest_stream import GuestTcpStream
from trionet.engine.metrics import MetricsHandle
from trionet.engine.policy import FlowPolicy, NewFlow, Verdict, allow_all
from trionet.engine.tcp_relay import FlowHandler
from trionet.engine.termination import TerminationHandle
from trionet.guest_env import GuestNetConfig, guest_env_vars, parse_guest_env
from trionet.network import Network, open_network
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
from trionet.tls.config import InterceptCa, LeafCacheConfig, ScopedCa, ScopedVerify, TlsConfig
from trionet.tls.patterns import HostPattern

if TYPE_CHECKING:
    from trionet.tls.certs import CaError, CertificateAuthority

__version__ = "0.1.0"

#: Public names whose module loads only when one of them is first used.
_LAZY = {"CaError": "trionet.tls.certs", "CertificateAuthority": "trionet.tls.certs"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trionet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


# One name a line, sorted (ruff RUF022): features add lines without touching others'.
__all__ = [
    "ANY",
    "Action",
    "AnyDestination",
    "AuditCallback",
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
    "FlowHandler",
    "FlowPolicy",
    "FrameBackend",
    "FrameSink",
    "Gateways",
    "Group",
    "GroupDestination",
    "GuestAddressing",
    "GuestNetConfig",
    "GuestTcpStream",
    "HostPattern",
    "HostRoutes",
    "Injection",
    "InterceptCa",
    "InterfaceOverrides",
    "LeafCacheConfig",
    "MacAddress",
    "MetricsHandle",
    "Nameserver",
    "Network",
    "NetworkConfig",
    "NetworkPolicy",
    "NewFlow",
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
    "TerminationHandle",
    "TlsConfig",
    "TokenBucketConfig",
    "Verdict",
    "ViolationAction",
    "ViolationKind",
    "__version__",
    "allow_all",
    "canonical_domain",
    "derive_addressing",
    "guest_env_vars",
    "open_network",
    "parse_guest_env",
]
