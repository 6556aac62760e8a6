"""The ``dns`` configuration section (reference §7.2, §19).

``nameservers`` entries are written as the user would type them: ``IP``,
``IP:PORT``, a bare IPv6 address, ``[IPv6]:PORT``, ``HOST`` or ``HOST:PORT``
(port 53 by default). An IPv6 literal with a port must be bracketed: an
unbracketed string that parses as an IPv6 address is a bare address on
port 53. Host names are kept as names here; the shell resolves them once
when the forwarder starts (this module does no I/O).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trionet.config_fields import ConfigError, ConfigReader, parse_field

__all__ = ["DEFAULT_QUERY_TIMEOUT_MS", "DnsConfig", "Nameserver"]

DEFAULT_QUERY_TIMEOUT_MS = 5000
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class Nameserver:
    """One upstream resolver: an address or a host name, and a port."""

    host: str
    port: int = 53

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an address, or None when it is a name to resolve."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @classmethod
    def parse(cls, text: str) -> Nameserver:
        """Parse the §7.2 grammar; raise ValueError naming what is wrong."""
        entry = text.strip()
        if not entry:
            raise ValueError("an empty nameserver")
        if any(c.isspace() for c in entry):
            raise ValueError(f"{text!r} contains whitespace")
        if entry.startswith("["):
            host, sep, rest = entry[1:].partition("]")
            if not sep or not rest.startswith(":"):
                raise ValueError(f"{text!r} is not [IPv6]:PORT")
            try:
                address = ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
            return cls(str(address), _port(rest[1:], text))
        try:
            return cls(str(ipaddress.ip_address(entry)))  # IPv4 or a bare IPv6
        except ValueError:
            pass
        host, sep, port_text = entry.rpartition(":") if ":" in entry else (entry, "", "")
        port = _port(port_text, text) if sep else 53
        try:
            return cls(str(ipaddress.IPv4Address(host)), port)
        except ValueError:
            pass
        name = host.rstrip(".").lower()
        if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in name.split(".")):
            raise ValueError(f"{text!r} is not IP, IP:PORT, [IPv6]:PORT, HOST or HOST:PORT")
        return cls(name, port)

    def __str__(self) -> str:
        """The ``HOST:PORT`` form the dict holds (IPv6 bracketed)."""
        address = self.address
        if address is not None and address.version == 6:
            return f"[{address}]:{self.port}"
        return f"{self.host}:{self.port}"


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{entry!r}: {text!r} is not a port in 1..65535")
    return int(text)


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """How guest DNS is intercepted and where it is forwarded."""

    #: private or reserved answers become NXDOMAIN unless a rule admits them (§7.4)
    rebind_protection: bool = True
    #: upstreams in order; empty means the host's resolv.conf
    nameservers: tuple[Nameserver, ...] = ()
    #: per attempt, per upstream
    query_timeout_ms: int = DEFAULT_QUERY_TIMEOUT_MS

    def __post_init__(self) -> None:
        object.__setattr__(self, "nameservers", tuple(self.nameservers))
        if not 1 <= self.query_timeout_ms <= 3_600_000:
            raise ConfigError(
                "dns.query_timeout_ms", f"{self.query_timeout_ms} is outside 1..3600000"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "dns.") -> DnsConfig:
        reader = ConfigReader(data, prefix)
        rebind = reader.take("rebind_protection", bool, True)
        entries: Sequence[Any] = reader.take("nameservers", list, [])
        timeout = reader.take("query_timeout_ms", int, DEFAULT_QUERY_TIMEOUT_MS)
        reader.finish()
        nameservers = []
        for i, entry in enumerate(entries):
            path = f"{prefix}nameservers[{i}]"
            if not isinstance(entry, str):
                raise ConfigError(path, f"{entry!r} is not a string")
            nameservers.append(parse_field(path, Nameserver.parse, entry))
        if not 1 <= timeout <= 3_600_000:
            raise ConfigError(reader.path("query_timeout_ms"), f"{timeout} is outside 1..3600000")
        return cls(rebind, tuple(nameservers), timeout)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rebind_protection": self.rebind_protection,
            "nameservers": [str(n) for n in self.nameservers],
            "query_timeout_ms": self.query_timeout_ms,
        }
