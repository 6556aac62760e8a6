"""trionet: a userspace network engine for sandboxes and microVMs, built on Trio.

The public API is re-exported here; the layers underneath are described in
``docs/architecture.md``.
"""

from trionet.addressing import GuestAddressing, HostRoutes, derive_addressing
from trionet.config import ConfigError, InterfaceOverrides, MacAddress, NetworkConfig
from trionet.dhcp.config import DhcpConfig
from trionet.guest_env import guest_env_vars, parse_guest_env
from trionet.ports.config import PortMapping
from trionet.ratelimit.config import DirectionLimits, RateLimiterConfig, TokenBucketConfig

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DhcpConfig",
    "DirectionLimits",
    "GuestAddressing",
    "HostRoutes",
    "InterfaceOverrides",
    "MacAddress",
    "NetworkConfig",
    "PortMapping",
    "RateLimiterConfig",
    "TokenBucketConfig",
    "__version__",
    "derive_addressing",
    "guest_env_vars",
    "parse_guest_env",
]
