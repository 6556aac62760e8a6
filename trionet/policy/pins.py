"""The DNS pin set (reference §7.5): which names this sandbox resolved to which IPs.

A domain rule can only be checked against an IP if something ties the two
together. The pin set is that tie, and it is deliberately narrow: an IP is
bound to a name only if *this* sandbox asked the interceptor for that name
and got that IP back, and only for the answer's TTL. A guest cannot make
``allowed.example`` cover an arbitrary IP by connecting to it directly.

Keys are (canonical name, family) with family 4 or 6; A and AAAA entries are
independent. Each record replaces the entry for its key. Time is passed in
(seconds on the engine's clock); expired entries are ignored on lookup and
evicted lazily. The set is bounded in entries (``max_entries``) and in the
addresses they hold together (``max_addresses``: one answer can carry
thousands): past either the entries closest to expiry are evicted first,
and counted, so a guest resolving endlessly many (or endlessly large)
names cannot grow the engine's memory without bound.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from trionet.policy.groups import IPAddress, normalize

__all__ = ["MIN_TTL", "AnswerRecord", "PinSet", "answer_pins"]

#: Every TTL that binds an IP is at least this long, so a 0-TTL answer still
#: lets the connection that asked for it through.
MIN_TTL = 1.0
DEFAULT_MAX_ENTRIES = 65536
#: Addresses all entries hold together. A 64 KiB answer over TCP holds some
#: 4000 A records: entries alone would bound memory only at ~10^8 addresses.
DEFAULT_MAX_ADDRESSES = 262144

_Key = tuple[str, int]


class PinSet:
    """(name, family) -> addresses until an expiry; plus the reverse index by IP."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_addresses: int = DEFAULT_MAX_ADDRESSES
    ) -> None:
        self.max_entries = max_entries
        self.max_addresses = max_addresses
        #: addresses held by all entries together
        self._addresses = 0
        self._entries: dict[_Key, tuple[frozenset[IPAddress], float]] = {}
        self._by_ip: dict[IPAddress, set[_Key]] = {}
        #: (expiry, key) pairs, possibly stale; the lazy eviction order
        self._expiries: list[tuple[float, _Key]] = []
        #: entries dropped because the set was full (not by expiry)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def record(
        self, name: str, family: int, addresses: Iterable[IPAddress], ttl: float, now: float
    ) -> None:
        """Bind ``addresses`` to ``name`` for ``ttl`` seconds (at least 1), replacing the entry.

        No addresses means the name no longer resolves for this family: the
        entry is forgotten.
        """
        key = (_key_name(name), family)
        self._remove(key)
        ips = frozenset(normalize(ip) for ip in addresses)
        if not ips:
            return
        if len(ips) > self.max_addresses:
            ips = frozenset(sorted(ips, key=_address_order)[: self.max_addresses])
        self.expire(now)
        expiry = now + max(ttl, MIN_TTL)
        while self._entries and (
            len(self._entries) >= self.max_entries
            or self._addresses + len(ips) > self.max_addresses
        ):
            self._evict_soonest()
        self._entries[key] = (ips, expiry)
        self._addresses += len(ips)
        for ip in ips:
            self._by_ip.setdefault(ip, set()).add(key)
        heapq.heappush(self._expiries, (expiry, key))
        if len(self._expiries) > 2 * len(self._entries) + 1024:
            # Replaced entries leave stale heap items behind; a guest
            # re-resolving one long-TTL name must not grow the heap forever.
            self._expiries = [(e[1], k) for k, e in self._entries.items()]
            heapq.heapify(self._expiries)

    def forget(self, name: str, family: int) -> None:
        self._remove((_key_name(name), family))

    def names_for(self, ip: IPAddress, now: float) -> frozenset[str]:
        """The names bound to ``ip`` right now (IPv4-mapped addresses as their IPv4)."""
        keys = self._by_ip.get(normalize(ip))
        if not keys:
            return frozenset()
        entries = self._entries
        return frozenset(key[0] for key in keys if entries[key][1] > now)

    def expire(self, now: float) -> None:
        """Drop every entry whose TTL ran out by ``now``."""
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            expiry, key = heapq.heappop(expiries)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == expiry:
                self._remove(key)

    def _evict_soonest(self) -> None:
        expiries = self._expiries
        while expiries:
            expiry, key = heapq.heappop(expiries)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == expiry:
                self._remove(key)
                self.evicted += 1
                return

    def _remove(self, key: _Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._addresses -= len(entry[0])
        for ip in entry[0]:
            keys = self._by_ip.get(ip)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_ip[ip]


def _address_order(ip: IPAddress) -> tuple[int, int]:
    return ip.version, int(ip)


def _key_name(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """One record of a DNS answer, as much of it as the pin set needs.

    ``kind`` is ``"A"``, ``"AAAA"`` or ``"CNAME"``; ``data`` the address text
    or the CNAME target. The DNS interceptor builds these from its parsed
    message, so this module needs no DNS codec.
    """

    owner: str
    kind: str
    ttl: int
    data: str


def answer_pins(
    name: str, family: int, records: Iterable[AnswerRecord]
) -> tuple[frozenset[IPAddress], float]:
    """What a NOERROR answer to an A (family 4) or AAAA (6) query for ``name`` pins.

    The eligible owners are the queried name plus CNAME targets reachable
    from it through CNAMEs owned by already-eligible names (to a fixed
    point: unrelated records in the answer cannot smuggle in a binding).
    Returns the addresses the eligible owners hold and the minimum TTL of the
    CNAME and address records used, each floored to 1 s. No addresses means
    the caller forgets the entry.
    """
    recs = [AnswerRecord(_key_name(r.owner), r.kind.upper(), r.ttl, r.data) for r in records]
    # The fixed point, walked as a graph (owner -> CNAME records) so a long
    # chain listed backwards costs one pass, not one pass per link: a hostile
    # resolver's 64 KiB answer holds thousands of CNAMEs.
    cnames: dict[str, list[AnswerRecord]] = {}
    for r in recs:
        if r.kind == "CNAME":
            cnames.setdefault(r.owner, []).append(r)
    start = _key_name(name)
    eligible = {start}
    used_ttls: list[float] = []
    pending = [start]
    while pending:
        for r in cnames.pop(pending.pop(), ()):
            used_ttls.append(max(r.ttl, MIN_TTL))
            target = _key_name(r.data)
            if target not in eligible:
                eligible.add(target)
                pending.append(target)
    wanted = "A" if family == 4 else "AAAA"
    addresses: set[IPAddress] = set()
    for r in recs:
        if r.kind == wanted and r.owner in eligible:
            try:
                ip = ipaddress.ip_address(r.data)
            except ValueError:
                continue
            addresses.add(normalize(ip))
            used_ttls.append(max(r.ttl, MIN_TTL))
    if not addresses:
        return frozenset(), MIN_TTL
    return frozenset(addresses), min(used_ttls)
