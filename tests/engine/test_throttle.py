"""Rate limits at the frame boundary, under Trio's mock clock: no real waiting."""

from __future__ import annotations

import trio
import trio.testing

from trionet.engine import throttle
from trionet.engine.backend import FrameBackend
from trionet.engine.metrics import EngineCounters
from trionet.ratelimit.bucket import FrameLimiter
from trionet.ratelimit.config import DirectionLimits, RateLimiterConfig, TokenBucketConfig
from trionet.stack.flows import OffloadFrame

FRAME = b"x" * 1000


def _limited(
    limits: RateLimiterConfig,
) -> tuple[FrameBackend, EngineCounters, list[tuple[float, object]], list[bytes]]:
    counters = EngineCounters()
    ingested: list[bytes] = []
    backend = FrameBackend(
        lambda frames, valid: ingested.extend(bytes(f) for f in frames),
        counters,
        lambda v4, v6: None,
    )
    timers: list[tuple[float, object]] = []
    backend.limit(limits, lambda deadline, callback: timers.append((deadline, callback)))
    return backend, counters, timers, ingested


def _jump_to(deadline: float) -> None:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock)
    clock.jump(max(0.0, deadline - trio.current_time()))


def _run(test: object) -> None:
    trio.run(test, clock=trio.testing.MockClock())  # type: ignore[arg-type]


def test_ingress_holds_frames_until_the_timer_releases_them_in_order() -> None:
    async def main() -> None:
        bucket = TokenBucketConfig(size=3000, refill_time_ms=1000)
        backend, counters, timers, _ = _limited(
            RateLimiterConfig(ingress=DirectionLimits(bandwidth=bucket))
        )
        frames = [bytes([i]) * 1000 for i in range(6)]
        backend.deliver(frames)
        assert backend.receive_batch_nowait(10) == frames[:3]  # the full bucket's worth
        assert counters.held_bytes["ingress"] == 3000 and counters.held_frames["ingress"] == 3
        assert counters.rx_bytes == 3000  # held frames are not delivered yet
        # Later frames queue behind held ones, whatever the bucket says.
        backend.deliver([b"z" * 10])
        assert backend.receive_batch_nowait(10) == []
        assert len(timers) == 1, "one timer entry, however many frames wait"
        assert timers[0][0] == trio.current_time() + 1 / 3  # 1000 tokens at 3000/s
        released: list[bytes] = []
        while timers:
            assert len(timers) == 1
            deadline, callback = timers.pop()
            _jump_to(deadline)
            callback()  # type: ignore[operator]
            released += backend.receive_batch_nowait(10)
        assert released == [*frames[3:], b"z" * 10]
        # 3010 bytes beyond the first bucket, at 3000 bytes/s.
        assert abs(trio.current_time() - 3010 / 3000) < 1e-3
        assert counters.rx_bytes == 6010

    _run(main)


def test_egress_holds_guest_frames_and_the_link_waits() -> None:
    async def main() -> None:
        ops = TokenBucketConfig(size=2, refill_time_ms=100)
        backend, counters, timers, ingested = _limited(
            RateLimiterConfig(egress=DirectionLimits(ops=ops))
        )
        backend.send_batch_nowait([FRAME, FRAME, FRAME, FRAME])
        assert len(ingested) == 2
        assert counters.held_frames["egress"] == 2
        waited = []

        async def link() -> None:
            await backend.wait_accepting()
            waited.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(link)
            await trio.testing.wait_all_tasks_blocked()
            assert waited == []  # the link does not read while frames are held
            deadline = 0.0
            while timers:  # a frame's worth of ops every 50 ms: two rounds
                deadline, callback = timers.pop()
                _jump_to(deadline)
                callback()  # type: ignore[operator]
                await trio.testing.wait_all_tasks_blocked()
        assert len(ingested) == 4 and waited == [deadline]
        assert abs(deadline - 0.1) < 1e-3

    _run(main)


def test_held_frames_are_bounded_in_bytes_too() -> None:
    # TSO super-segments are up to 64 KiB each: bounded by count alone, one
    # direction could hold 4096 of them, 256 MiB, for a guest that keeps many
    # connections downloading under an ingress limit.
    async def main() -> None:
        bucket = TokenBucketConfig(size=1000, refill_time_ms=1000)
        backend, counters, _, _ = _limited(
            RateLimiterConfig(ingress=DirectionLimits(bandwidth=bucket))
        )
        big = b"x" * 65000
        backend.deliver([big] * 1000)
        held = counters.held_bytes["ingress"]
        assert 0 < held <= throttle.MAX_HELD_BYTES
        assert counters.dropped["rate_limit_ingress_overflow"] == 1000 - held // 65000 - 1

    _run(main)


def test_a_frame_larger_than_the_byte_bound_is_still_held_alone() -> None:
    async def main() -> None:
        counters = EngineCounters()
        released: list[bytes] = []
        limiter = FrameLimiter(
            DirectionLimits(bandwidth=TokenBucketConfig(size=10, refill_time_ms=1000)), 0.0
        )
        t = throttle.Throttle(
            limiter,
            lambda deadline, callback: None,
            released.extend,
            counters=counters,
            direction="ingress",
            size=len,
            max_held_bytes=100,
        )
        assert t.admit([b"a" * 10, b"b" * 500, b"c"]) == [b"a" * 10]
        assert t.holding and counters.held_bytes["ingress"] == 500
        assert counters.dropped["rate_limit_ingress_overflow"] == 1

    _run(main)


def test_a_held_frame_keeps_its_own_payload_not_a_view_of_a_send_buffer() -> None:
    # The stack's super-segments may carry views of a connection's send
    # buffer, right only while they are delivered; a frame the limiter holds
    # must not see that buffer reused meanwhile.
    async def main() -> None:
        bucket = TokenBucketConfig(size=1000, refill_time_ms=1000)
        backend, _, timers, _ = _limited(
            RateLimiterConfig(ingress=DirectionLimits(bandwidth=bucket))
        )
        ring = bytearray(b"a" * 2000)
        frames = [
            OffloadFrame(b"\0" * 10, b"h" * 10, memoryview(ring)[:990]),
            OffloadFrame(b"\0" * 10, b"h" * 10, memoryview(ring)[1000:1990]),
        ]
        backend.deliver(frames)  # the first passes, the second is held
        ring[:] = b"b" * 2000  # the buffer is reused for newer data
        while timers:
            deadline, callback = timers.pop()
            _jump_to(deadline)
            callback()  # type: ignore[operator]
        out = backend.receive_batch_nowait(10)
        assert out[1] == b"h" * 10 + b"a" * 990

    _run(main)
