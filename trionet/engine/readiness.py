"""One Trio task that waits on many host sockets at once.

A Trio task per socket and direction costs a scheduler pass (and on this
kind of machine ~10 µs of Python) every time data moves; a relay of small
messages is then bound by task switches, not by the kernel. Instead the
engine keeps its own level-triggered ``epoll`` set of host sockets and
registers *that* descriptor with Trio: one wake-up hands over every socket
that became ready, and their handlers run synchronously inside one engine
batch, which flushes the stack once at its end. Handlers are plain
callbacks; they must not block.

Timeouts are not kept here: the engine's one timer serves them
(:meth:`trionet.engine.core.EngineCore.call_at`).
"""

from __future__ import annotations

import select
from collections.abc import Callable
from contextlib import AbstractContextManager

import trio

__all__ = ["IN", "OUT", "ReadinessLoop"]

IN = select.EPOLLIN
OUT = select.EPOLLOUT
#: Events per wake-up; the rest stay ready for the next pass (level-triggered).
MAX_EVENTS = 256

Handler = Callable[[int], None]


class ReadinessLoop:
    """Level-triggered readiness for host sockets, served by :meth:`run`."""

    def __init__(
        self,
        batch: Callable[[], AbstractContextManager[object]],
        *,
        drain: Callable[[], None] | None = None,
    ) -> None:
        """``batch()`` wraps each wake-up's handlers (the engine's: one flush at its end).

        ``drain()``, if given, replaces a wake-up's single :meth:`service`:
        the engine's, which services this set and the guest's link until
        neither has work (see :meth:`trionet.engine.core.EngineCore.drain`).
        """
        self._epoll = select.epoll()
        self._handlers: dict[int, Handler] = {}
        self._masks: dict[int, int] = {}
        self._batch = batch
        self._drain = drain

    def watch(self, fd: int, mask: int, handler: Handler) -> None:
        """Call ``handler(events)`` while ``fd`` is ready for ``mask``."""
        self._handlers[fd] = handler
        self._masks[fd] = 0
        self.want(fd, mask)

    def want(self, fd: int, mask: int) -> None:
        """Change what ``fd`` is watched for; 0 parks it.

        A parked descriptor is taken out of the set: epoll reports hang-ups
        and errors whatever the mask, and a socket nobody wants to hear from
        must not make the loop spin.
        """
        old = self._masks.get(fd)
        if old is None or old == mask or self._epoll.closed:
            return
        if mask == 0:
            self._epoll.unregister(fd)
        elif old == 0:
            self._epoll.register(fd, mask)
        else:
            self._epoll.modify(fd, mask)
        self._masks[fd] = mask

    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` (call before closing it)."""
        self.want(fd, 0)
        self._masks.pop(fd, None)
        self._handlers.pop(fd, None)

    def service(self) -> bool:
        """Handle whatever is ready now, without waiting; True if anything was."""
        if self._epoll.closed:
            return False
        ready = self._epoll.poll(0, MAX_EVENTS)
        if not ready:
            return False
        with self._batch():
            for fd, events in ready:
                handler = self._handlers.get(fd)
                if handler is not None:
                    handler(events)
        return True

    def close(self) -> None:
        """Close the epoll descriptor of a loop that will never run."""
        self._epoll.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the set until cancelled; closes the epoll descriptor at the end."""
        epoll = self._epoll
        try:
            task_status.started()
            wake = self._drain or self.service
            while True:
                await trio.lowlevel.wait_readable(epoll)
                wake()
        finally:
            trio.lowlevel.notify_closing(epoll)
            epoll.close()
