"""The ``rate_limiter`` section (reference §12, §19).

``{"egress": {"bandwidth": TB, "ops": TB}, "ingress": {...}}`` with
``TB = {"size", "refill_time_ms", "one_time_burst" = 0}``: bandwidth tokens
are Ethernet frame bytes, ops tokens are frames. Egress limits what the
guest sends, ingress what it receives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trionet.config_fields import ConfigError, ConfigReader

__all__ = ["DirectionLimits", "RateLimiterConfig", "TokenBucketConfig"]


@dataclass(frozen=True, slots=True)
class TokenBucketConfig:
    """``size`` tokens, refilled continuously over ``refill_time_ms``; plus a one-time burst."""

    size: int
    refill_time_ms: int
    one_time_burst: int = 0

    def __post_init__(self) -> None:
        _check_bucket("", self.size, self.refill_time_ms, self.one_time_burst)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str) -> TokenBucketConfig:
        reader = ConfigReader(data, prefix)
        size = reader.take("size", int, None)
        refill = reader.take("refill_time_ms", int, None)
        burst = reader.take("one_time_burst", int, 0)
        reader.finish()
        if size is None:
            raise ConfigError(prefix + "size", "is required")
        if refill is None:
            raise ConfigError(prefix + "refill_time_ms", "is required")
        _check_bucket(prefix, size, refill, burst)
        return cls(size, refill, burst)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "refill_time_ms": self.refill_time_ms,
            "one_time_burst": self.one_time_burst,
        }


def _check_bucket(prefix: str, size: int, refill_time_ms: int, burst: int) -> None:
    if size <= 0:
        raise ConfigError(prefix + "size", f"{size} must be above 0")
    if refill_time_ms <= 0:
        raise ConfigError(prefix + "refill_time_ms", f"{refill_time_ms} must be at least 1 (ms)")
    if burst < 0:
        raise ConfigError(prefix + "one_time_burst", f"{burst} must not be negative")


@dataclass(frozen=True, slots=True)
class DirectionLimits:
    """One direction's buckets; at least one of them."""

    bandwidth: TokenBucketConfig | None = None
    ops: TokenBucketConfig | None = None

    def __post_init__(self) -> None:
        if self.bandwidth is None and self.ops is None:
            raise ConfigError("bandwidth", "a direction needs a bandwidth or an ops bucket")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str) -> DirectionLimits:
        reader = ConfigReader(data, prefix)
        bandwidth = reader.take("bandwidth", Mapping, None)
        ops = reader.take("ops", Mapping, None)
        reader.finish()
        if bandwidth is None and ops is None:
            raise ConfigError(
                prefix + "bandwidth", "a direction needs a bandwidth or an ops bucket"
            )
        return cls(
            None
            if bandwidth is None
            else TokenBucketConfig.from_dict(bandwidth, prefix + "bandwidth."),
            None if ops is None else TokenBucketConfig.from_dict(ops, prefix + "ops."),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bandwidth is not None:
            out["bandwidth"] = self.bandwidth.to_dict()
        if self.ops is not None:
            out["ops"] = self.ops.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class RateLimiterConfig:
    """Limits on what the guest sends (egress) and receives (ingress); at least one."""

    egress: DirectionLimits | None = None
    ingress: DirectionLimits | None = None

    def __post_init__(self) -> None:
        if self.egress is None and self.ingress is None:
            raise ConfigError("rate_limiter", "needs an egress or an ingress limit")

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], prefix: str = "rate_limiter."
    ) -> RateLimiterConfig:
        reader = ConfigReader(data, prefix)
        egress = reader.take("egress", Mapping, None)
        ingress = reader.take("ingress", Mapping, None)
        reader.finish()
        if egress is None and ingress is None:
            raise ConfigError(prefix.rstrip("."), "needs an egress or an ingress limit")
        # Ingress is checked first, as the reference does.
        ingress_limits = (
            None if ingress is None else DirectionLimits.from_dict(ingress, prefix + "ingress.")
        )
        egress_limits = (
            None if egress is None else DirectionLimits.from_dict(egress, prefix + "egress.")
        )
        return cls(egress_limits, ingress_limits)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.egress is not None:
            out["egress"] = self.egress.to_dict()
        if self.ingress is not None:
            out["ingress"] = self.ingress.to_dict()
        return out
