"""The ``dhcp`` section: how guests without an agent configure themselves.

A guest learns its network one of two ways: an init or agent reads the
``MSB_NET*`` variables (:mod:`trionet.guest_env`), or a stock OS asks with
DHCPv4, router solicitations and DHCPv6. The section is on by default so
that both work out of the box; an embedder whose guests always use the
variables turns it off (``enabled = false``) and the gateway then answers
none of these protocols, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trionet.config_fields import ConfigError, ConfigReader, check_hostname
from trionet.wire.domain_names import encode_names

__all__ = ["DEFAULT_LEASE_TIME", "DEFAULT_RA_INTERVAL", "DhcpConfig"]

DEFAULT_LEASE_TIME = 3600
DEFAULT_RA_INTERVAL = 600
#: Short leases are for tests; a lease shorter than this makes clients spin.
MIN_LEASE_TIME = 10
#: 0xFFFFFFFF means "infinite" in DHCP; a lease is always finite here.
MAX_LEASE_TIME = 0xFFFFFFFE
#: RFC 4861 6.2.1: MaxRtrAdvInterval is 4..1800 seconds.
MIN_RA_INTERVAL = 4
MAX_RA_INTERVAL = 1800
MAX_SEARCH_DOMAINS = 16
#: The search list as it travels (uncompressed labels). The stack sends router
#: advertisements and DHCPv6 replies unfragmented, and a guest on a 1280-byte
#: link must still get them whole: with this list, the largest of either stays
#: under 1280 bytes (a 71-character domain is 73 bytes).
MAX_SEARCH_LIST_BYTES = 512


@dataclass(frozen=True, slots=True)
class DhcpConfig:
    """DHCPv4, router advertisement and DHCPv6 settings (see docs/configuration.md)."""

    enabled: bool = True
    #: domain search list (DHCPv4 option 119 and 15, DHCPv6 option 24, RA DNSSL)
    search_domains: tuple[str, ...] = ()
    #: seconds a DHCPv4/DHCPv6 lease lasts; clients renew at half of it
    lease_time: int = DEFAULT_LEASE_TIME
    #: the guest's own host name (DHCPv4 option 12), if it should get one
    hostname: str | None = None
    #: send router advertisements (SLAAC, RDNSS, DNSSL); DHCPv6 answers regardless
    router_advertisements: bool = True
    #: seconds between unsolicited router advertisements
    ra_interval: int = DEFAULT_RA_INTERVAL
    #: the RA's M flag: addresses from DHCPv6 (the slot's ::2) as well as SLAAC
    ra_managed: bool = True
    #: the RA's O flag: other configuration (DNS) from DHCPv6 as well
    ra_other: bool = True
    #: answer DHCPv6 (stateful and stateless)
    dhcpv6: bool = True

    def __post_init__(self) -> None:
        if len(self.search_domains) > MAX_SEARCH_DOMAINS:
            raise ConfigError(
                "dhcp.search_domains",
                f"{len(self.search_domains)} domains; at most {MAX_SEARCH_DOMAINS}",
            )
        for i, domain in enumerate(self.search_domains):
            check_hostname(f"dhcp.search_domains[{i}]", domain)
        encoded = len(encode_names(self.search_domains))
        if encoded > MAX_SEARCH_LIST_BYTES:
            raise ConfigError(
                "dhcp.search_domains",
                f"{encoded} bytes as sent; at most {MAX_SEARCH_LIST_BYTES}, so that router"
                " advertisements and DHCPv6 replies fit a 1280-byte link",
            )
        if not MIN_LEASE_TIME <= self.lease_time <= MAX_LEASE_TIME:
            raise ConfigError(
                "dhcp.lease_time",
                f"{self.lease_time} is outside {MIN_LEASE_TIME}..{MAX_LEASE_TIME} seconds",
            )
        if self.hostname is not None:
            check_hostname("dhcp.hostname", self.hostname)
        if not MIN_RA_INTERVAL <= self.ra_interval <= MAX_RA_INTERVAL:
            raise ConfigError(
                "dhcp.ra_interval",
                f"{self.ra_interval} is outside {MIN_RA_INTERVAL}..{MAX_RA_INTERVAL} seconds",
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "dhcp.") -> DhcpConfig:
        reader = ConfigReader(data, prefix)
        default = cls()
        enabled = reader.take("enabled", bool, default.enabled)
        domains = reader.take("search_domains", Sequence, [])
        lease_time = reader.take("lease_time", int, default.lease_time)
        hostname = reader.take("hostname", str, None)
        ras = reader.take("router_advertisements", bool, default.router_advertisements)
        ra_interval = reader.take("ra_interval", int, default.ra_interval)
        managed = reader.take("ra_managed", bool, default.ra_managed)
        other = reader.take("ra_other", bool, default.ra_other)
        dhcpv6 = reader.take("dhcpv6", bool, default.dhcpv6)
        reader.finish()
        for i, domain in enumerate(domains):
            if not isinstance(domain, str):
                path = reader.path(f"search_domains[{i}]")
                raise ConfigError(path, f"{domain!r} is not a string")
        return cls(
            enabled=enabled,
            search_domains=tuple(domains),
            lease_time=lease_time,
            hostname=hostname,
            router_advertisements=ras,
            ra_interval=ra_interval,
            ra_managed=managed,
            ra_other=other,
            dhcpv6=dhcpv6,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "search_domains": list(self.search_domains),
            "lease_time": self.lease_time,
            "router_advertisements": self.router_advertisements,
            "ra_interval": self.ra_interval,
            "ra_managed": self.ra_managed,
            "ra_other": self.ra_other,
            "dhcpv6": self.dhcpv6,
        }
        if self.hostname is not None:
            out["hostname"] = self.hostname
        return out
