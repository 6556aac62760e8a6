"""The guest's frame endpoint: what a VMM or a link attaches to.

Frames from the guest are processed synchronously inside ``send``/
``send_batch``: parsing, the TCP machines and the replies they provoke all
happen before the call returns, with no task switch or channel hop per
frame. Replies go either straight to an attached *sink* (a link that can
write without waiting, such as a TAP file descriptor, flushes the whole batch
at once) or into a bounded queue that ``receive``/``receive_batch`` drain (a
VMM polling for frames). A full queue drops, like a NIC whose ring is full:
TCP retransmits, and the drop is counted, but the engine never blocks on a
slow guest.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import trio

from trionet.engine.metrics import EngineCounters
from trionet.engine.throttle import CallAt, Throttle
from trionet.ratelimit.bucket import FrameLimiter
from trionet.ratelimit.config import RateLimiterConfig
from trionet.stack.flows import OffloadFrame, OutFrame, detached

__all__ = ["FrameBackend", "FrameSink"]

DEFAULT_QUEUE_FRAMES = 4096

FrameSink = Callable[[Sequence[OutFrame]], None]


class _Ingest(Protocol):
    def __call__(self, frames: Iterable[bytes | memoryview], checksum_valid: bool) -> None: ...


class FrameBackend:
    """One guest NIC's worth of frames, both directions."""

    def __init__(
        self,
        ingest: _Ingest,
        counters: EngineCounters,
        enable_tso: Callable[[bool, bool], None],
        *,
        drain: Callable[[], None] = lambda: None,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        max_frame: int = 65550,
    ) -> None:
        self._ingest = ingest
        self._counters = counters
        self._queue: deque[bytes] = deque()
        self._queue_frames = queue_frames
        self._max_frame = max_frame
        self._wakeup = trio.Event()
        self._sink: FrameSink | None = None
        self._enable_tso = enable_tso
        self._drain = drain
        self._poller: Callable[[], bool] | None = None
        self._closed = False
        #: rate limits (§12), when configured: guest -> engine, engine -> guest
        self._egress: Throttle[tuple[bytes | memoryview, bool]] | None = None
        self._ingress: Throttle[OutFrame] | None = None

    def limit(self, config: RateLimiterConfig | None, call_at: CallAt) -> None:
        """Apply token buckets at this boundary; ``call_at`` is the engine's timer.

        Egress counts the Ethernet frames the guest sends, ingress those it
        receives (bandwidth tokens: bytes; ops tokens: frames). Buckets
        start full.
        """
        self._egress = self._ingress = None
        if config is None:
            return
        now = trio.current_time()
        counters = self._counters
        if config.egress is not None:
            self._egress = Throttle(
                FrameLimiter(config.egress, now),
                call_at,
                self._release_egress,
                counters=counters,
                direction="egress",
                size=lambda item: len(item[0]),
            )
        if config.ingress is not None:
            self._ingress = Throttle(
                FrameLimiter(config.ingress, now),
                call_at,
                self._deliver,
                counters=counters,
                direction="ingress",
                size=len,
                keep=detached,
            )

    def attach_poller(self, poller: Callable[[], bool] | None) -> None:
        """A link's non-blocking read (see :meth:`drain`); None detaches it."""
        self._poller = poller

    def poll_link(self) -> bool:
        """Run the link's poller, unless a rate limit is holding the guest's frames."""
        poller = self._poller
        if poller is None or self._closed or (self._egress is not None and self._egress.holding):
            return False
        return poller()

    def drain(self) -> None:
        """Move what is ready now, host sockets and the link alike (the engine's drain)."""
        self._drain()

    async def wait_accepting(self) -> None:
        """Until the engine takes the guest's frames again (at once unless a rate limit holds).

        A link calls this before reading more from the guest, so a rate
        limit stops the reading instead of filling a queue.
        """
        if self._egress is not None:
            await self._egress.wait_drained()

    def _release_egress(self, items: list[tuple[bytes | memoryview, bool]]) -> None:
        if self._closed:
            return
        run: list[bytes | memoryview] = []
        run_valid = False
        for frame, valid in items:
            if run and valid != run_valid:
                self._ingest(run, run_valid)
                run = []
            run_valid = valid
            run.append(frame)
        if run:
            self._ingest(run, run_valid)

    # -- guest -> engine ----------------------------------------------------

    async def send(self, frame: bytes | memoryview, *, checksum_valid: bool = False) -> None:
        """Hand the engine one frame the guest sent."""
        await self.send_batch((frame,), checksum_valid=checksum_valid)

    async def send_batch(
        self, frames: Iterable[bytes | memoryview], *, checksum_valid: bool = False
    ) -> None:
        """Hand the engine every frame the guest sent since the last call.

        ``checksum_valid`` says the link already validated (or will fill in)
        transport checksums, as virtio-net offload does; otherwise they are
        verified and bad frames dropped.
        """
        self.send_batch_nowait(frames, checksum_valid=checksum_valid)
        await trio.lowlevel.checkpoint()

    def send_batch_nowait(
        self, frames: Iterable[bytes | memoryview], *, checksum_valid: bool = False
    ) -> None:
        """Synchronous form of :meth:`send_batch`, for links that drain an fd."""
        if self._closed:
            raise trio.ClosedResourceError("the network engine has stopped")
        counters = self._counters
        accepted: list[bytes | memoryview] = []
        for frame in frames:
            size = len(frame)
            if size > self._max_frame:
                counters.dropped["oversized_frame"] += 1
                continue
            counters.tx_bytes += size
            counters.tx_frames += 1
            accepted.append(frame)
        egress = self._egress
        if egress is not None and accepted:
            passed = egress.admit([(frame, checksum_valid) for frame in accepted])
            accepted = [frame for frame, _ in passed]
        if accepted:
            self._ingest(accepted, checksum_valid)

    # -- engine -> guest ----------------------------------------------------

    def attach_sink(self, sink: FrameSink | None) -> None:
        """Deliver frames for the guest by calling ``sink`` synchronously.

        A link whose writes never wait (a TAP fd) attaches a sink so that the
        frames a batch provokes are written before the batch call returns.
        Queued frames are flushed into the sink first, preserving order.
        """
        self._sink = sink
        if sink is not None and self._queue:
            pending: list[OutFrame] = list(self._queue)
            self._queue.clear()
            sink(pending)

    def enable_offload(self, *, tso4: bool, tso6: bool) -> None:
        """The attached sink accepts virtio-net TCP super-segments (see OffloadFrame).

        Only a link that writes :class:`~trionet.stack.flows.OffloadFrame`
        parts with their virtio-net header may call this.
        """
        self._enable_tso(tso4, tso6)

    def deliver(self, frames: Sequence[OutFrame]) -> None:
        """Called by the engine with frames for the guest, in order."""
        if not frames or self._closed:
            return
        ingress = self._ingress
        if ingress is not None:
            frames = ingress.admit(frames)
            if not frames:
                return
        self._deliver(frames)

    def _deliver(self, frames: Sequence[OutFrame]) -> None:
        if self._closed:
            return
        counters = self._counters
        if self._sink is None:
            room = self._queue_frames - len(self._queue)
            if room < len(frames):
                counters.dropped["guest_queue_full"] += len(frames) - max(room, 0)
                frames = frames[: max(room, 0)]
        for frame in frames:
            counters.rx_bytes += len(frame)
        counters.rx_frames += len(frames)
        if self._sink is not None:
            self._sink(frames)
            return
        self._queue.extend(
            bytes(f.head) + bytes(f.payload) if isinstance(f, OffloadFrame) else f for f in frames
        )
        self._wakeup.set()

    async def receive(self) -> bytes:
        """The next frame for the guest (waits until there is one)."""
        return (await self.receive_batch(1))[0]

    async def receive_batch(self, max_frames: int = 64) -> list[bytes]:
        """Between 1 and ``max_frames`` frames for the guest, waiting for the first."""
        while True:
            # Cancellation is taken before the frames leave the queue, never
            # after: a receiver cancelled mid-call must not lose them.
            await trio.lowlevel.checkpoint_if_cancelled()
            batch = self.receive_batch_nowait(max_frames)
            if batch:
                await trio.lowlevel.cancel_shielded_checkpoint()
                return batch
            if self._closed:
                raise trio.EndOfChannel("the network engine has stopped")
            self._wakeup = trio.Event()
            await self._wakeup.wait()

    def receive_batch_nowait(self, max_frames: int = 64) -> list[bytes]:
        """Up to ``max_frames`` queued frames, possibly none."""
        queue = self._queue
        count = min(max_frames, len(queue))
        return [queue.popleft() for _ in range(count)]

    def close(self) -> None:
        """End both directions; waiting receivers see EndOfChannel once drained."""
        self._closed = True
        self._sink = None
        self._wakeup.set()
        for throttle in (self._egress, self._ingress):
            if throttle is not None:
                throttle.clear()
