"""trionet: a userspace network engine for sandboxes and microVMs, built on Trio.

The public API is re-exported here; the layers underneath are described in
``docs/architecture.md``.
"""

from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import ConfigError, InterfaceOverrides, MacAddress, NetworkConfig
from trionet.dhcp.config import DhcpConfig
from trionet.guest_env import guest_env_vars, parse_guest_env
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
    "CaError",
    "CertificateAuthority",
    "ConfigError",
    "DhcpConfig",
    "GuestAddressing",
    "HostPattern",
    "HostRoutes",
    "Injection",
    "InterceptCa",
    "InterfaceOverrides",
    "LeafCacheConfig",
    "MacAddress",
    "NetworkConfig",
    "ScopedCa",
    "ScopedVerify",
    "SecretEntry",
    "SecretValue",
    "SecretsConfig",
    "SecretsHandle",
    "TlsConfig",
    "ViolationAction",
    "ViolationKind",
    "__version__",
    "derive_addressing",
    "guest_env_vars",
    "parse_guest_env",
]
