"""When and what the gateway advertises as the guest's IPv6 router (RFC 4861 6.2).

The advertisement carries the slot's /64 as an on-link, autonomous prefix
(so the guest may form SLAAC addresses in it, RFC 4862), the link MTU, and
the gateway as DNS server (RDNSS) with the search domains (DNSSL, RFC
8106). The M and O flags say whether DHCPv6 also hands out the slot's ::2
and DNS settings.

Timing, sans-IO: nothing is sent until the guest speaks IPv6 (its first
IPv6 frame: duplicate address detection, an MLD report or a solicitation;
:meth:`RouterAdvertiser.link_up`), since a guest that is not there yet, or
runs without IPv6, has no use for it. Then three initial advertisements 4 s
apart (RFC 4861's MAX_INITIAL_RTR_ADVERTISEMENTS, at less than its 16 s
limit), then one every ``ra_interval`` seconds. A router solicitation is
answered at once, but not more than once a second: a guest soliciting in a
loop gets no more advertisements than that.
"""

from __future__ import annotations

from collections import Counter

from trionet.dhcp.config import DhcpConfig
from trionet.wire.icmpv6 import RA_MANAGED, RA_OTHER, NdpPrefixInfo, RouterAdvertisement

__all__ = ["RouterAdvertiser"]

INITIAL_ADVERTISEMENTS = 3
INITIAL_INTERVAL = 4.0
MIN_SOLICITED_INTERVAL = 1.0
#: radvd's defaults: a day valid, four hours preferred; renewed by every RA.
PREFIX_VALID_LIFETIME = 86400
PREFIX_PREFERRED_LIFETIME = 14400


class RouterAdvertiser:
    """Builds the gateway's advertisement and keeps its schedule."""

    def __init__(
        self,
        config: DhcpConfig,
        *,
        prefix: bytes,
        gateway: bytes,
        gateway_mac: bytes,
        mtu: int,
        drops: Counter[str],
    ) -> None:
        self._interval = float(config.ra_interval)
        self._drops = drops
        #: RFC 8106 5.1: lifetimes of at least three times the advertisement interval.
        lifetime = 3 * config.ra_interval
        flags = (RA_MANAGED if config.ra_managed else 0) | (RA_OTHER if config.ra_other else 0)
        self.advertisement = RouterAdvertisement(
            cur_hop_limit=64,
            flags=flags,
            router_lifetime=lifetime,
            source_lladdr=gateway_mac,
            mtu=mtu,
            prefixes=(
                NdpPrefixInfo(
                    prefix[:8] + bytes(8),
                    64,
                    on_link=True,
                    autonomous=True,
                    valid_lifetime=max(PREFIX_VALID_LIFETIME, lifetime),
                    preferred_lifetime=max(PREFIX_PREFERRED_LIFETIME, lifetime),
                ),
            ),
            dns_servers=(gateway,),
            dns_lifetime=lifetime,
            search_domains=config.search_domains,
            dnssl_lifetime=lifetime if config.search_domains else 0,
        )
        self._next: float | None = None
        self._initial_left = INITIAL_ADVERTISEMENTS
        self._last_solicited = float("-inf")
        #: advertisements sent (both kinds)
        self.sent = 0

    def link_up(self, now: float) -> None:
        """The guest sent its first IPv6 frame: start the unsolicited advertisements."""
        if self._next is None:
            self._next = now

    def next_deadline(self) -> float | None:
        return self._next

    def due(self, now: float) -> bool:
        """Whether an unsolicited advertisement is due at ``now`` (and schedule the next)."""
        if self._next is None or now < self._next:
            return False
        if self._initial_left > 1:
            self._initial_left -= 1
            self._next = now + INITIAL_INTERVAL
        else:
            self._initial_left = 0
            self._next = now + self._interval
        self.sent += 1
        return True

    def solicited(self, now: float) -> bool:
        """Whether to answer a router solicitation received at ``now``."""
        if now - self._last_solicited < MIN_SOLICITED_INTERVAL:
            self._drops["ra_rate_limited"] += 1
            return False
        self._last_solicited = now
        self.sent += 1
        return True
