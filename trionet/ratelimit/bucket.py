"""Token buckets, sans-IO: the time is passed in, the answer is how long to wait.

Semantics of reference §12 (Firecracker's virtio-net limiter): a bucket
starts full and refills continuously at ``size`` tokens per ``refill_time``;
``one_time_burst`` is extra credit spent first and never refilled; a cost
larger than the whole bucket is let through once when the bucket is full,
leaving it in debt, and nothing more passes until the debt is paid off.

:class:`FrameLimiter` joins a direction's bandwidth bucket (one token per
Ethernet byte) and ops bucket (one token per frame): a frame passes only if
both have room, and takes from both.
"""

from __future__ import annotations

from trionet.ratelimit.config import DirectionLimits, TokenBucketConfig

__all__ = ["FrameLimiter", "TokenBucket"]

_SLACK = 1e-3


class TokenBucket:
    __slots__ = ("_budget", "_burst", "_last", "_rate", "size")

    def __init__(
        self, size: int, refill_time: float, one_time_burst: int = 0, *, now: float
    ) -> None:
        if size <= 0 or refill_time <= 0 or one_time_burst < 0:
            raise ValueError("a token bucket needs size > 0, refill_time > 0, burst >= 0")
        self.size = size
        #: tokens per second
        self._rate = size / refill_time
        #: refillable tokens; negative while in debt from an oversized cost
        self._budget = float(size)
        self._burst = one_time_burst
        self._last = now

    @classmethod
    def from_config(cls, config: TokenBucketConfig, now: float) -> TokenBucket:
        return cls(config.size, config.refill_time_ms / 1000, config.one_time_burst, now=now)

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._budget = min(float(self.size), self._budget + elapsed * self._rate)
            self._last = now

    def available(self, now: float) -> float:
        """Tokens that could be spent now (burst included); negative while in debt."""
        self._refill(now)
        return self._budget + self._burst

    def wait(self, cost: int, now: float) -> float:
        """Seconds until ``cost`` tokens can be taken; 0.0 means now."""
        self._refill(now)
        need = min(cost, self.size) - self._burst
        # The slack absorbs float rounding: a caller that slept exactly the
        # time it was told must then pass.
        if self._budget + _SLACK >= need:
            return 0.0
        return (need - self._budget) / self._rate

    def take(self, cost: int, now: float) -> None:
        """Spend ``cost`` tokens (after :meth:`wait` said 0): burst first, then the budget."""
        self._refill(now)
        from_burst = min(self._burst, cost)
        self._burst -= from_burst
        self._budget -= cost - from_burst


class FrameLimiter:
    """One direction's limits: frames pass while both buckets have room."""

    __slots__ = ("_bandwidth", "_ops")

    def __init__(self, limits: DirectionLimits, now: float) -> None:
        self._bandwidth = (
            None if limits.bandwidth is None else TokenBucket.from_config(limits.bandwidth, now)
        )
        self._ops = None if limits.ops is None else TokenBucket.from_config(limits.ops, now)

    def admit(self, size: int, now: float) -> float:
        """0.0 and the frame's tokens taken, or the seconds to wait (nothing taken)."""
        delay = 0.0
        bandwidth, ops = self._bandwidth, self._ops
        if bandwidth is not None:
            delay = bandwidth.wait(size, now)
        if ops is not None:
            delay = max(delay, ops.wait(1, now))
        if delay > 0.0:
            # Never report less than a microsecond: a caller sleeping 0 s
            # would spin on float rounding.
            return max(delay, 1e-6)
        if bandwidth is not None:
            bandwidth.take(size, now)
        if ops is not None:
            ops.take(1, now)
        return 0.0
