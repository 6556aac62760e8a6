"""A guest TCP connection as a :class:`trio.abc.HalfCloseableStream`.

The rest of trionet never sees segments: proxying, TLS (``trio.SSLStream``
wraps this directly) and published ports all talk to the guest through this
class, exactly as they would talk to a host socket. Underneath, every call is
a synchronous operation on the sans-IO stack followed by a flush of the frames
it produced; only waiting for data or buffer space yields to Trio.
"""

from __future__ import annotations

import operator
from typing import Protocol

import trio

from trionet.stack.flows import FlowKey
from trionet.stack.interface import TcpStatus

__all__ = ["GuestTcpStream"]

DEFAULT_RECEIVE_SIZE = 65536


class _Conn(Protocol):
    """What the stream needs from the engine (implemented by EngineCore)."""

    def tcp_status(self, key: FlowKey) -> TcpStatus: ...
    def tcp_read(self, key: FlowKey, max_bytes: int) -> bytes: ...
    def tcp_send(self, key: FlowKey, data: memoryview) -> int: ...
    def tcp_shutdown(self, key: FlowKey) -> None: ...
    def tcp_abort(self, key: FlowKey) -> None: ...
    def tcp_release(self, key: FlowKey) -> None: ...
    async def tcp_wait(self, key: FlowKey) -> None: ...
    def tcp_wake(self, key: FlowKey) -> None: ...


class _ConflictDetector:
    """Raise BusyResourceError when two tasks use one direction at once."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(self._message)
        self._held = True

    def __exit__(self, *exc_info: object) -> None:
        self._held = False


class GuestTcpStream(trio.abc.HalfCloseableStream):
    """One accepted (or actively opened) guest connection."""

    def __init__(self, conn: _Conn, key: FlowKey) -> None:
        self._conn = conn
        self.key = key
        self._closed = False
        self._eof_sent = False
        self._send_conflict = _ConflictDetector("another task is already sending")
        self._receive_conflict = _ConflictDetector("another task is already receiving")

    def _check_open(self) -> TcpStatus:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")
        return self._conn.tcp_status(self.key)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_conflict:
            status = self._check_open()
            if self._eof_sent:
                raise trio.ClosedResourceError("send_eof() was already called")
            view = memoryview(data).cast("B")
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                if status.error is not None:
                    raise trio.BrokenResourceError(status.error)
                if view:
                    taken = self._conn.tcp_send(self.key, view)
                    view = view[taken:]
                if not view:
                    break
                await self._conn.tcp_wait(self.key)
                status = self._check_open()
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_conflict:
            status = self._check_open()
            while status.send_space == 0 and status.error is None and not self._eof_sent:
                await self._conn.tcp_wait(self.key)
                status = self._check_open()
            await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        with self._send_conflict:
            status = self._check_open()
            await trio.lowlevel.checkpoint()
            if self._eof_sent:
                return
            self._eof_sent = True
            if status.error is None:
                self._conn.tcp_shutdown(self.key)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        else:
            max_bytes = operator.index(max_bytes)  # TypeError for 1.5, like a socket
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        with self._receive_conflict:
            status = self._check_open()
            await trio.lowlevel.checkpoint_if_cancelled()
            while True:
                if status.readable:
                    data = self._conn.tcp_read(self.key, max_bytes)
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return data
                if status.at_eof:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return b""
                if status.error is not None:
                    raise trio.BrokenResourceError(status.error)
                await self._conn.tcp_wait(self.key)
                status = self._check_open()

    def abort(self) -> None:
        """Reset the connection (RST to the guest) and close the stream."""
        if not self._closed:
            self._closed = True
            self._conn.tcp_abort(self.key)
            self._conn.tcp_wake(self.key)

    async def aclose(self) -> None:
        """Close like a kernel socket: FIN, or RST when unread data is thrown away."""
        if not self._closed:
            self._closed = True
            status = self._conn.tcp_status(self.key)
            if status.error is None and status.readable:
                self._conn.tcp_abort(self.key)
            else:
                if status.error is None and not self._eof_sent:
                    self._conn.tcp_shutdown(self.key)
                # Always: a finished connection's record is kept for this
                # stream until it lets go of it.
                self._conn.tcp_release(self.key)
            # Tasks blocked in another call must notice the close.
            self._conn.tcp_wake(self.key)
        await trio.lowlevel.checkpoint()
