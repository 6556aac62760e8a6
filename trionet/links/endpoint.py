"""The engine's frame endpoint as every link sees it.

Links sit below the engine and may not import it, so they name what they
need of its backend (:class:`trionet.engine.backend.FrameBackend`) here,
once; :class:`trionet.links.pcap.PcapEndpoint` provides the same surface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from trionet.stack.flows import OutFrame

__all__ = ["FrameEndpoint", "FrameSink"]


class FrameSink(Protocol):
    """Takes frames for the guest synchronously, in order."""

    def __call__(self, frames: Sequence[OutFrame], /) -> None: ...


class FrameEndpoint(Protocol):
    """Frames from the guest go in; frames for it come out by sink or queue."""

    def send_batch_nowait(
        self, frames: Iterable[bytes | memoryview], *, checksum_valid: bool = False
    ) -> None: ...

    def attach_sink(self, sink: FrameSink | None) -> None: ...

    async def wait_accepting(self) -> None:
        """Until the engine takes frames again (at once unless a rate limit holds them)."""

    def enable_offload(self, *, tso4: bool, tso6: bool) -> None: ...

    def attach_poller(self, poller: Callable[[], bool] | None) -> None:
        """A non-blocking read of the link: hands over what the guest queued, True if any.

        The engine calls it from :meth:`drain`, between its own wake-ups.
        """

    def drain(self) -> None:
        """Move what is ready now (host sockets, the link's poller) without waiting.

        A link calls it after handing over frames, before it waits again.
        """

    async def receive_batch(self, max_frames: int = 64) -> list[bytes]: ...

    def receive_batch_nowait(self, max_frames: int = 64) -> list[bytes]: ...
