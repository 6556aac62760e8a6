"""Attach the engine's frame endpoint to a VMM's socket link for one session.

A socket link (:class:`~trionet.links.stream.StreamLink`,
:class:`~trionet.links.dgram.DgramLink`) can make its sender wait (a stream
applies back-pressure; a datagram peer's queue fills), so unlike a TAP it
cannot be a synchronous sink. The engine's frames for the guest therefore go
through the endpoint's bounded queue (full = dropped and counted, as a NIC
would), and two tasks move frames: guest -> engine, one synchronous batch
hand-over per socket read; engine -> guest, one socket write per queue drain.

The session ends when the link does (peer gone, framing lost, closed) or the
engine stops; either way both tasks end and the function returns the link's
``end_reason``. Nothing a peer sends can raise out of here: malformed input
is dropped and counted by the link, oversized frames by the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import trio

from trionet.links.counters import LinkCounters
from trionet.links.endpoint import FrameEndpoint

__all__ = ["FrameLink", "discard_queued", "run_vmm_link"]

BATCH_FRAMES = 64


class FrameLink(Protocol):
    """A VMM's socket link: StreamLink and DgramLink both fit."""

    counters: LinkCounters
    end_reason: str | None

    async def receive_frames(self) -> list[bytes]: ...

    async def send_frames(self, frames: Iterable[bytes | bytearray | memoryview]) -> bool: ...

    async def aclose(self) -> None: ...


def discard_queued(endpoint: FrameEndpoint) -> int:
    """Drop frames queued for a previous guest (a VMM reconnecting must not get them)."""
    dropped = 0
    while batch := endpoint.receive_batch_nowait(4096):
        dropped += len(batch)
    return dropped


async def run_vmm_link(
    endpoint: FrameEndpoint,
    link: FrameLink,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> str:
    """Move frames between ``link`` and ``endpoint`` until either ends; return why."""
    engine_stopped = False

    async def to_guest(cancel_scope: trio.CancelScope) -> None:
        nonlocal engine_stopped
        try:
            while True:
                frames = await endpoint.receive_batch(BATCH_FRAMES)
                await link.send_frames(frames)
                if link.end_reason is not None:
                    break
        except (trio.EndOfChannel, trio.ClosedResourceError):
            engine_stopped = True
        cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(to_guest, nursery.cancel_scope)
            task_status.started()
            while frames := await link.receive_frames():
                await endpoint.wait_accepting()
                try:
                    endpoint.send_batch_nowait(frames)
                except trio.ClosedResourceError:
                    engine_stopped = True
                    break
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await link.aclose()
    if engine_stopped:
        return "engine stopped"
    return link.end_reason or "closed"
