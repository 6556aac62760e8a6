"""The ``tls`` configuration section (§8.1, §19)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trionet.config_fields import ConfigError, ConfigReader, parse_field
from trionet.tls.patterns import HostPattern

__all__ = ["InterceptCa", "LeafCacheConfig", "ScopedCa", "ScopedVerify", "TlsConfig"]


@dataclass(frozen=True, slots=True)
class ScopedCa:
    """Extra upstream roots trusted only for hosts matching ``pattern``."""

    pattern: HostPattern
    path: str


@dataclass(frozen=True, slots=True)
class ScopedVerify:
    """Upstream verification on or off for hosts matching ``pattern``."""

    pattern: HostPattern
    verify: bool


@dataclass(frozen=True, slots=True)
class InterceptCa:
    """Where the interception CA lives; both unset means "generate under $TRIONET_HOME"."""

    cert_path: str | None = None
    key_path: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_path is None) != (self.key_path is None):
            raise ConfigError("tls.intercept_ca", "set both cert_path and key_path, or neither")


@dataclass(frozen=True, slots=True)
class LeafCacheConfig:
    capacity: int = 1000
    validity_hours: int = 24

    def __post_init__(self) -> None:
        if not 0 <= self.capacity <= 1_000_000:
            raise ConfigError("tls.cache.capacity", f"{self.capacity} is outside 0..1000000")
        if not 1 <= self.validity_hours <= 24 * 365:
            raise ConfigError(
                "tls.cache.validity_hours", f"{self.validity_hours} is outside 1..8760"
            )


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS interception settings; off unless ``enabled``."""

    enabled: bool = False
    intercepted_ports: tuple[int, ...] = (443,)
    bypass: tuple[HostPattern, ...] = ()
    verify_upstream: bool = True
    block_quic_on_intercept: bool = True
    upstream_ca_cert: tuple[str, ...] = ()
    scoped_upstream_ca_cert: tuple[ScopedCa, ...] = ()
    scoped_verify_upstream: tuple[ScopedVerify, ...] = ()
    intercept_ca: InterceptCa = field(default_factory=InterceptCa)
    cache: LeafCacheConfig = field(default_factory=LeafCacheConfig)

    def __post_init__(self) -> None:
        for i, port in enumerate(self.intercepted_ports):
            if not 1 <= port <= 65535:
                raise ConfigError(f"tls.intercepted_ports[{i}]", f"{port} is outside 1..65535")

    def bypassed(self, sni: str) -> bool:
        return any(p.matches(sni) for p in self.bypass)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "tls.") -> TlsConfig:
        r = ConfigReader(data, prefix)
        enabled = r.take("enabled", bool, False)
        ports = r.take("intercepted_ports", Sequence, [443])
        bypass = r.take("bypass", Sequence, [])
        verify = r.take("verify_upstream", bool, True)
        block_quic = r.take("block_quic_on_intercept", bool, True)
        cas = r.take("upstream_ca_cert", Sequence, [])
        scoped_cas = r.take("scoped_upstream_ca_cert", Sequence, [])
        scoped_verify = r.take("scoped_verify_upstream", Sequence, [])
        ca = r.take("intercept_ca", Mapping, None)
        alias = r.take("ca", Mapping, None)
        cache = r.take("cache", Mapping, {})
        r.finish()
        if ca is not None and alias is not None:
            raise ConfigError(prefix + "ca", "give intercept_ca or its alias ca, not both")
        if ca is None:
            ca = alias
        return cls(
            enabled=enabled,
            intercepted_ports=tuple(
                _int(f"{prefix}intercepted_ports[{i}]", p) for i, p in enumerate(ports)
            ),
            bypass=tuple(_pattern(f"{prefix}bypass[{i}]", p) for i, p in enumerate(bypass)),
            verify_upstream=verify,
            block_quic_on_intercept=block_quic,
            upstream_ca_cert=tuple(
                _str(f"{prefix}upstream_ca_cert[{i}]", p) for i, p in enumerate(cas)
            ),
            scoped_upstream_ca_cert=tuple(
                _scoped_ca(f"{prefix}scoped_upstream_ca_cert[{i}].", e)
                for i, e in enumerate(scoped_cas)
            ),
            scoped_verify_upstream=tuple(
                _scoped_verify(f"{prefix}scoped_verify_upstream[{i}].", e)
                for i, e in enumerate(scoped_verify)
            ),
            intercept_ca=InterceptCa()
            if ca is None
            else _intercept_ca(prefix + "intercept_ca.", ca),
            cache=_cache(prefix + "cache.", cache),
        )

    def to_dict(self) -> dict[str, Any]:
        ca: dict[str, Any] = {}
        if self.intercept_ca.cert_path is not None:
            ca = {"cert_path": self.intercept_ca.cert_path, "key_path": self.intercept_ca.key_path}
        return {
            "enabled": self.enabled,
            "intercepted_ports": list(self.intercepted_ports),
            "bypass": [p.text() for p in self.bypass],
            "verify_upstream": self.verify_upstream,
            "block_quic_on_intercept": self.block_quic_on_intercept,
            "upstream_ca_cert": list(self.upstream_ca_cert),
            "scoped_upstream_ca_cert": [
                {"pattern": s.pattern.text(), "path": s.path} for s in self.scoped_upstream_ca_cert
            ],
            "scoped_verify_upstream": [
                {"pattern": s.pattern.text(), "verify": s.verify}
                for s in self.scoped_verify_upstream
            ],
            "intercept_ca": ca,
            "cache": {
                "capacity": self.cache.capacity,
                "validity_hours": self.cache.validity_hours,
            },
        }


def _int(path: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(path, f"{value!r} is not an integer")
    return value


def _str(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"{value!r} is not a non-empty string")
    return value


def _pattern(path: str, value: Any) -> HostPattern:
    return parse_field(path, HostPattern.parse, _str(path, value))


def _scoped(prefix: str, data: Any, key: str, kind: type) -> tuple[HostPattern, Any]:
    """A ``{pattern, <key>}`` table, the shape both scoped upstream lists share."""
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip("."), f"{data!r} is not a table")
    r = ConfigReader(data, prefix)
    pattern = r.take("pattern", str, None)
    value = r.take(key, kind, None)
    r.finish()
    if pattern is None or value is None:
        raise ConfigError(prefix.rstrip("."), f"needs both pattern and {key}")
    return _pattern(prefix + "pattern", pattern), value


def _scoped_ca(prefix: str, data: Any) -> ScopedCa:
    pattern, path = _scoped(prefix, data, "path", str)
    return ScopedCa(pattern, _str(prefix + "path", path))


def _scoped_verify(prefix: str, data: Any) -> ScopedVerify:
    pattern, verify = _scoped(prefix, data, "verify", bool)
    return ScopedVerify(pattern, verify)


def _intercept_ca(prefix: str, data: Mapping[str, Any]) -> InterceptCa:
    r = ConfigReader(data, prefix)
    cert = r.take("cert_path", str, None)
    key = r.take("key_path", str, None)
    r.finish()
    return InterceptCa(cert, key)


def _cache(prefix: str, data: Mapping[str, Any]) -> LeafCacheConfig:
    r = ConfigReader(data, prefix)
    capacity = r.take("capacity", int, 1000)
    hours = r.take("validity_hours", int, 24)
    r.finish()
    return LeafCacheConfig(capacity, hours)
