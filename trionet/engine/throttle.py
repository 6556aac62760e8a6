"""Rate limits at the frame boundary: frames wait for their tokens, nothing spins.

A :class:`Throttle` stands in one direction of the
:class:`~trionet.engine.backend.FrameBackend`. A frame whose tokens are
there passes at once; otherwise it and every later frame wait in order, and
one engine timer entry (:meth:`~trionet.engine.core.EngineCore.call_at`)
releases them when the bucket has refilled enough. So a limited guest costs
one timer wake-up per refill, never a polling loop.

Held frames are bounded in number and in bytes: TCP's windows stop the
senders once their data waits here (no ACK comes back until it is
delivered), so only datagram floods and retransmissions reach the bound,
and what is beyond it is dropped and counted like a full NIC ring. The
byte bound matters for TSO super-segments: 4096 of them would be 256 MiB.
Bytes held back are counted in the metrics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import trio

from trionet.engine.metrics import EngineCounters
from trionet.ratelimit.bucket import FrameLimiter

__all__ = ["Throttle"]

F = TypeVar("F")
CallAt = Callable[[float, Callable[[], None]], None]
#: Frames held back per direction before more are dropped.
MAX_HELD_FRAMES = 4096
#: Bytes held back per direction before more are dropped (past the first frame).
MAX_HELD_BYTES = 8 << 20


class Throttle(Generic[F]):
    """One direction's limiter and its queue of frames waiting for tokens."""

    def __init__(
        self,
        limiter: FrameLimiter,
        call_at: CallAt,
        release: Callable[[list[F]], None],
        *,
        counters: EngineCounters,
        direction: str,
        size: Callable[[F], int],
        keep: Callable[[F], F] = lambda frame: frame,
        max_held: int = MAX_HELD_FRAMES,
        max_held_bytes: int = MAX_HELD_BYTES,
    ) -> None:
        self._limiter = limiter
        self._call_at = call_at
        self._release = release
        self._counters = counters
        self._direction = direction
        self._size = size
        #: what a frame becomes when held (it may outlive what it points into)
        self._keep = keep
        self._max_held = max_held
        self._max_held_bytes = max_held_bytes
        self._held: deque[F] = deque()
        #: bytes in ``_held`` now
        self._held_bytes = 0
        self._scheduled = False
        self._drained = trio.Event()
        self._drained.set()

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def admit(self, frames: Sequence[F]) -> list[F]:
        """The frames that may pass now, in order; the rest are held (or dropped when full)."""
        held = self._held
        if held:
            self._hold(frames, 0)
            return []
        now = trio.current_time()
        admit = self._limiter.admit
        size = self._size
        for index, frame in enumerate(frames):
            delay = admit(size(frame), now)
            if delay:
                self._hold(frames, index)
                self._schedule(now + delay)
                return list(frames[:index])
        return list(frames)

    async def wait_drained(self) -> None:
        """Until nothing is held (returns at once if nothing is)."""
        if self._held:
            await self._drained.wait()

    def _hold(self, frames: Sequence[F], start: int) -> None:
        held = self._held
        counters = self._counters
        if not held:
            self._drained = trio.Event()
        for frame in frames[start:]:
            size = self._size(frame)
            if len(held) >= self._max_held or (
                held and self._held_bytes + size > self._max_held_bytes
            ):
                counters.dropped[f"rate_limit_{self._direction}_overflow"] += 1
                continue
            held.append(self._keep(frame))
            self._held_bytes += size
            counters.held_bytes[self._direction] += size
            counters.held_frames[self._direction] += 1

    def _schedule(self, deadline: float) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._call_at(deadline, self._on_time)

    def _on_time(self) -> None:
        self._scheduled = False
        held = self._held
        now = trio.current_time()
        admit = self._limiter.admit
        out: list[F] = []
        while held:
            delay = admit(self._size(held[0]), now)
            if delay:
                self._schedule(now + delay)
                break
            frame = held.popleft()
            self._held_bytes -= self._size(frame)
            out.append(frame)
        if out:
            self._release(out)
        if not held:
            self._drained.set()

    def clear(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._drained.set()
