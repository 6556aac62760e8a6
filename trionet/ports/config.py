"""The ``ports`` section: which host ports reach which guest ports.

One :class:`PortMapping` per published port (reference §9, §19): a host
listener on ``host_bind:host_port`` whose connections (TCP) or datagrams
(UDP) the engine carries to ``guest_port`` on the guest. The same type is
what :meth:`trionet.Network.publish` takes and returns at run time, where
``host_port`` 0 asks for a free port.

:func:`parse_publish` reads the shell's ``-p/--publish`` syntax, the one
docker and pasta use: ``[ADDR:]HOST:GUEST[/udp]``, IPv6 addresses in
brackets (``[::1]:8080:80``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from trionet.config_fields import ConfigError, ConfigReader, parse_field

__all__ = ["PortMapping", "parse_publish", "ports_from_dict", "ports_to_dict"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Protocol = Literal["tcp", "udp"]
DEFAULT_HOST_BIND = ipaddress.IPv4Address("127.0.0.1")
#: Legacy spellings of the protocol (§19) and what they mean.
_PROTOCOLS: dict[str, Protocol] = {"tcp": "tcp", "udp": "udp", "Tcp": "tcp", "Udp": "udp"}


@dataclass(frozen=True, slots=True)
class PortMapping:
    """``host_bind:host_port`` on the host reaches ``guest_port`` on the guest.

    ``real_source``: a TCP client that is not on the host's loopback
    reaches the guest from its own address (the guest's replies still go
    through the gateway, its default route), so guest servers log and
    limit real clients. Off by default: peers then appear as the gateway,
    as with slirp4netns and pasta; see docs/ports.md for why.
    """

    host_port: int
    guest_port: int
    protocol: Protocol = "tcp"
    host_bind: IPAddress = DEFAULT_HOST_BIND
    real_source: bool = False

    def __post_init__(self) -> None:
        _check_ports("", self.host_port, self.guest_port)
        if self.protocol not in ("tcp", "udp"):
            raise ConfigError("protocol", f"{self.protocol!r} is not 'tcp' or 'udp'")
        if not isinstance(self.host_bind, ipaddress.IPv4Address | ipaddress.IPv6Address):
            raise ConfigError("host_bind", f"{self.host_bind!r} is not an IP address")

    def __str__(self) -> str:
        bind = f"[{self.host_bind}]" if self.host_bind.version == 6 else str(self.host_bind)
        return f"{bind}:{self.host_port}->{self.guest_port}/{self.protocol}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str) -> PortMapping:
        reader = ConfigReader(data, prefix)
        host_port = reader.take("host_port", int, None)
        guest_port = reader.take("guest_port", int, None)
        protocol = reader.take("protocol", str, "tcp")
        host_bind = reader.take("host_bind", str, str(DEFAULT_HOST_BIND))
        real_source = reader.take("real_source", bool, False)
        reader.finish()
        if host_port is None:
            raise ConfigError(prefix + "host_port", "is required")
        if guest_port is None:
            raise ConfigError(prefix + "guest_port", "is required")
        if protocol not in _PROTOCOLS:
            raise ConfigError(prefix + "protocol", f"{protocol!r} is not 'tcp' or 'udp'")
        bind = parse_field(prefix + "host_bind", ipaddress.ip_address, host_bind)
        _check_ports(prefix, host_port, guest_port)
        return cls(host_port, guest_port, _PROTOCOLS[protocol], bind, real_source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host_port": self.host_port,
            "guest_port": self.guest_port,
            "protocol": self.protocol,
            "host_bind": str(self.host_bind),
            "real_source": self.real_source,
        }


def ports_from_dict(data: Sequence[Any], prefix: str = "ports") -> tuple[PortMapping, ...]:
    """The ``ports`` list; each error names its entry (``ports[2].guest_port``)."""
    mappings = []
    for index, entry in enumerate(data):
        path = f"{prefix}[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(path, f"{entry!r} is not a table")
        mappings.append(PortMapping.from_dict(entry, path + "."))
    seen: dict[tuple[object, ...], int] = {}
    for index, mapping in enumerate(mappings):
        if mapping.host_port == 0:
            continue
        where = (mapping.host_bind, mapping.host_port, mapping.protocol)
        if where in seen:
            raise ConfigError(
                f"{prefix}[{index}].host_port",
                f"{mapping.host_bind} port {mapping.host_port}/{mapping.protocol}"
                f" is already published by {prefix}[{seen[where]}]",
            )
        seen[where] = index
    return tuple(mappings)


def ports_to_dict(ports: Sequence[PortMapping]) -> list[dict[str, Any]]:
    return [mapping.to_dict() for mapping in ports]


def parse_publish(text: str, *, real_source: bool = False) -> PortMapping:
    """``[ADDR:]HOST:GUEST[/udp|/tcp]`` (docker/pasta ``-p``); raises ValueError.

    IPv6 addresses go in brackets: ``[::1]:8080:80``. Without an address the
    bind is 127.0.0.1, as in the config file (docker's 0.0.0.0 would publish
    the sandbox to the whole network by default).
    """
    spec, _, proto = text.partition("/")
    protocol = _PROTOCOLS.get(proto.lower() if proto else "tcp")
    if protocol is None:
        raise ValueError(f"{text!r}: the protocol after '/' must be tcp or udp")
    bind: IPAddress = DEFAULT_HOST_BIND
    if spec.startswith("["):
        address, sep, rest = spec[1:].partition("]:")
        if not sep:
            raise ValueError(f"{text!r}: an IPv6 address needs the form [ADDR]:HOST:GUEST")
        bind = _address(text, address)
        ports = rest.split(":")
    else:
        parts = spec.split(":")
        if len(parts) == 3:
            bind = _address(text, parts[0])
            ports = parts[1:]
        else:
            ports = parts
    if len(ports) != 2:
        raise ValueError(f"{text!r} is not [ADDR:]HOST:GUEST[/udp]")
    host_port, guest_port = (_port(text, p) for p in ports)
    try:
        return PortMapping(host_port, guest_port, protocol, bind, real_source)
    except ConfigError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def _check_ports(prefix: str, host_port: int, guest_port: int) -> None:
    if not 0 <= host_port <= 65535:
        raise ConfigError(prefix + "host_port", f"{host_port} is outside 0..65535")
    if not 1 <= guest_port <= 65535:
        raise ConfigError(prefix + "guest_port", f"{guest_port} is outside 1..65535")


def _address(text: str, address: str) -> IPAddress:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{text!r}: {address!r} is not an IP address") from None


def _port(text: str, port: str) -> int:
    if not port.isdigit():
        raise ValueError(f"{text!r}: {port!r} is not a port number")
    return int(port)
