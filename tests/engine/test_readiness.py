"""The readiness loop on its own: handlers, parking, and the wake-up through Trio."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator

import trio

from trionet.engine.readiness import IN, OUT, ReadinessLoop


def _then(after: Callable[[], object]) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A batch that calls ``after`` at its end, as the engine's flushes."""

    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        yield
        after()

    return batch


async def test_ready_sockets_call_their_handlers_then_one_flush() -> None:
    calls: list[tuple[str, int]] = []
    flushes = []
    loop = ReadinessLoop(_then(lambda: flushes.append(len(calls))))
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    with a, b, c, d:
        loop.watch(a.fileno(), IN, lambda events: calls.append(("a", events)))
        loop.watch(c.fileno(), IN, lambda events: calls.append(("c", events)))
        b.send(b"x")
        d.send(b"y")
        loop.service()
        assert sorted(name for name, _ in calls) == ["a", "c"]
        assert flushes == [2], "one flush after every ready handler ran"
        # Level-triggered: unread data keeps reporting; parked, it does not.
        loop.want(a.fileno(), 0)
        calls.clear()
        loop.service()
        assert calls == [("c", IN)]


async def test_a_parked_socket_that_hung_up_does_not_spin() -> None:
    calls: list[int] = []
    loop = ReadinessLoop(_then(lambda: None))
    a, b = socket.socketpair()
    with a:
        loop.watch(a.fileno(), OUT, calls.append)
        b.close()  # a now reports HUP whatever it is watched for
        loop.service()
        assert calls and calls[0] & OUT
        loop.want(a.fileno(), 0)
        calls.clear()
        for _ in range(3):
            loop.service()
        assert calls == []
        loop.forget(a.fileno())


async def test_the_task_wakes_for_a_ready_socket_and_closes_its_epoll() -> None:
    a, b = socket.socketpair()
    fds_before = len(os.listdir("/proc/self/fd"))
    woke = trio.Event()
    loop = ReadinessLoop(_then(woke.set))

    def drain(events: int) -> None:
        a.recv(1)

    with a, b:
        async with trio.open_nursery() as nursery:
            await nursery.start(loop.run)
            loop.watch(a.fileno(), IN, drain)
            b.send(b"x")
            with trio.fail_after(5):
                await woke.wait()
            nursery.cancel_scope.cancel()
        loop.want(a.fileno(), OUT)  # after the end: ignored, not an error
        assert len(os.listdir("/proc/self/fd")) == fds_before
