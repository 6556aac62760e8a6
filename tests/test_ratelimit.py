"""Token-bucket arithmetic (reference §12) under a mock clock: time is a number we pass in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionet.ratelimit.bucket import FrameLimiter, TokenBucket
from trionet.ratelimit.config import DirectionLimits, TokenBucketConfig


def test_starts_full_and_refills_continuously() -> None:
    bucket = TokenBucket(1000, 1.0, now=0.0)
    assert bucket.wait(1000, 0.0) == 0.0
    bucket.take(1000, 0.0)
    assert bucket.wait(100, 0.0) == pytest.approx(0.1)
    assert bucket.wait(100, 0.05) == pytest.approx(0.05)
    assert bucket.wait(100, 0.1) == 0.0
    # Refill stops at the bucket's size.
    assert bucket.available(100.0) == pytest.approx(1000)


def test_one_time_burst_is_spent_first_and_never_refilled() -> None:
    bucket = TokenBucket(100, 1.0, 500, now=0.0)
    assert bucket.available(0.0) == 600
    bucket.take(500, 0.0)
    assert bucket.available(0.0) == 100  # the burst went, the budget is untouched
    bucket.take(100, 0.0)
    assert bucket.available(10.0) == pytest.approx(100)  # refill restores the size only


def test_an_oversized_cost_passes_once_then_the_debt_is_paid() -> None:
    bucket = TokenBucket(1000, 1.0, now=0.0)
    assert bucket.wait(3000, 0.0) == 0.0, "a full bucket lets one oversized frame through"
    bucket.take(3000, 0.0)
    assert bucket.available(0.0) == -2000
    # The next frame waits for the debt plus its own cost.
    assert bucket.wait(1, 0.0) == pytest.approx(2.001)
    assert bucket.wait(3000, 0.0) == pytest.approx(3.0)
    assert bucket.wait(3000, 3.0) == 0.0


def test_frame_limiter_needs_both_buckets_and_takes_from_both() -> None:
    limits = DirectionLimits(
        bandwidth=TokenBucketConfig(10_000, 1000), ops=TokenBucketConfig(2, 1000)
    )
    limiter = FrameLimiter(limits, now=0.0)
    assert limiter.admit(1500, 0.0) == 0.0
    assert limiter.admit(1500, 0.0) == 0.0
    # Bandwidth has room for 7000 more, but the ops bucket is empty.
    delay = limiter.admit(100, 0.0)
    assert delay == pytest.approx(0.5)
    assert limiter.admit(100, 0.5) == 0.0
    # A refused frame took nothing from either bucket.
    bandwidth_only = FrameLimiter(DirectionLimits(bandwidth=TokenBucketConfig(1000, 1000)), 0.0)
    assert bandwidth_only.admit(800, 0.0) == 0.0
    assert bandwidth_only.admit(800, 0.0) == pytest.approx(0.6)
    assert bandwidth_only.admit(200, 0.0) == 0.0


@given(
    size=st.integers(1_000, 1_000_000),
    refill_ms=st.integers(1, 5_000),
    frames=st.lists(st.integers(60, 65550), min_size=1, max_size=300),
)
def test_throughput_never_exceeds_rate_plus_one_bucket(
    size: int, refill_ms: int, frames: list[int]
) -> None:
    """Driven as the engine drives it: a frame waits exactly as long as told, then passes."""
    limiter = FrameLimiter(DirectionLimits(bandwidth=TokenBucketConfig(size, refill_ms)), 0.0)
    now = 0.0
    sent = 0
    for frame in frames:
        delay = limiter.admit(frame, now)
        if delay:
            now += delay
            assert limiter.admit(frame, now) == 0.0
        sent += frame
    rate = size / (refill_ms / 1000)
    # What left by `now` is bounded by the initial bucket, the refill, and
    # one oversized frame of debt.
    assert sent <= size + rate * now + max(frames) + 1e-6 * rate + 1
