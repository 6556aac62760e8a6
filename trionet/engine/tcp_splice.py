"""A guest TCP connection spliced to its host socket, moved without a task.

The plain relay's fast path. Data moves in the callbacks that notice it:
the engine's flush (the guest sent something, or acknowledged enough to
free send space) and the readiness loop (the host socket became readable
or writable). Each callback moves what it can right away with non-blocking
calls and stops; nothing waits, so a request crosses the engine in the same
wake-up that brought it in.

Back-pressure is end to end, as in :func:`trionet.engine.tcp_relay.relay_streams`:
guest data is consumed from the stack only as far as the host socket took
it (so the guest's window closes behind a slow host), and the host socket is
read only into the guest connection's free send space (so the host's window
closes behind a slow guest). Neither direction copies through a buffer of
its own: the host is offered a view of the receive buffer, and reads land
in the send buffer. Half-close passes through both
ways; a reset on either side resets the other.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable

import trio

from trionet.engine.core import EngineCore
from trionet.engine.readiness import IN, OUT
from trionet.stack.flows import FlowKey
from trionet.stack.interface import TcpStatus

__all__ = ["TcpSplice", "close_with_reset"]

#: The most moved per call in either direction.
CHUNK = 256 * 1024


class TcpSplice:
    """One relayed connection: guest side in the stack, host side a socket."""

    __slots__ = (
        "_core",
        "_fd",
        "_guest_full",
        "_host_eof",
        "_host_full",
        "_host_shut",
        "_key",
        "_loop",
        "_on_done",
        "_sock",
        "closed",
    )

    def __init__(
        self,
        core: EngineCore,
        key: FlowKey,
        sock: socket.socket,
        on_done: Callable[[FlowKey], None],
    ) -> None:
        self._core = core
        self._loop = core.readiness
        self._key = key
        self._sock = sock
        self._fd = sock.fileno()
        self._on_done = on_done
        #: the host socket did not take everything offered: wait until writable
        self._host_full = False
        self._host_shut = False  # FIN passed to the host
        self._host_eof = False  # the host's FIN seen (and passed on to the guest)
        self._guest_full = False  # no send space: the host socket is not read
        self.closed = False

    def start(self) -> None:
        self._loop.watch(self._fd, IN, self._on_ready)
        self.guest_activity()

    # -- guest side (called from the engine's flush) ---------------------------------

    def guest_activity(self) -> None:
        """The guest connection changed: data, send space, FIN or reset."""
        if self.closed:
            return
        status = self._core.stack.tcp_status(self._key)
        if not self._host_full:
            status = self._guest_to_host(status)
            if self.closed:
                return
        elif status.error is not None and not status.at_eof:
            # Reset while the host still had our data to take: it may never
            # take it, so waiting to notice would hold the socket forever.
            self._reset()
            return
        if self._guest_full and status.send_space > 0 and not self._host_eof:
            # The guest's ACKs just made room that the host side was waiting
            # for: read now, in this wake-up. Waiting for the readiness loop
            # to report the socket would cost a scheduler pass and two
            # epoll_ctl calls per window of bulk host->guest data.
            self._guest_full = False
            self._host_to_guest()
            if self.closed:
                return
        else:
            self._guest_full = status.send_space <= 0
        self._update_interest()

    def _guest_to_host(self, status: TcpStatus) -> TcpStatus:
        """Pass on what the guest sent while the host takes it; the last status seen."""
        stack = self._core.stack
        key = self._key
        while True:
            if status.readable:
                if not self._send_host():
                    return status
                status = stack.tcp_status(key)  # a FIN may follow the data
            elif status.at_eof:
                if not self._host_shut:
                    self._host_shut = True
                    with contextlib.suppress(OSError):
                        self._sock.shutdown(socket.SHUT_WR)
                    self._maybe_finish()
                return status
            else:
                if status.error is not None:
                    self._reset()
                return status

    def _send_host(self) -> bool:
        """Offer the host what the guest sent; False if it did not take it all, or broke.

        The bytes are offered as a view of the connection's receive buffer
        and consumed only as far as the host took them: no copy, and what
        the host has not taken keeps the guest's window closed.
        """
        stack = self._core.stack
        data = stack.tcp_peek(self._key, CHUNK)
        offered = len(data)
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._reset()
            return False
        finally:
            data.release()
        if sent:
            stack.tcp_consume(self._key, sent, trio.current_time())
        self._host_full = sent < offered
        return not self._host_full

    # -- host side (called from the readiness loop) ------------------------------------

    def _on_ready(self, events: int) -> None:
        if events & OUT and self._host_full and self._send_host():
            self._guest_to_host(self._core.stack.tcp_status(self._key))
        if not self.closed and events & ~OUT and not self._host_eof:
            self._host_to_guest()
        if not self.closed:
            self._update_interest()

    def _host_to_guest(self) -> None:
        stack = self._core.stack
        key = self._key
        while True:
            # Straight into the connection's send queue: the one copy.
            room = stack.tcp_send_room(key, CHUNK)
            if room is None:
                self._reset()  # reset, or gone: it can no longer send
                return
            want = len(room)
            if not want:
                self._guest_full = True  # parked until guest_activity
                return
            try:
                got = self._sock.recv_into(room)
            except BlockingIOError:
                return
            except OSError:
                self._reset()
                return
            finally:
                room.release()
            if not got:
                self._host_eof = True
                stack.tcp_shutdown(key, trio.current_time())
                self._maybe_finish()
                return
            stack.tcp_send_commit(key, got, trio.current_time())
            if got < want:
                return  # short read: most likely drained; the loop says if not

    def _update_interest(self) -> None:
        if self.closed:
            return
        mask = 0
        if self._host_full:
            mask |= OUT
        if not self._host_eof and not self._guest_full:
            mask |= IN
        self._loop.want(self._fd, mask)

    # -- the end -------------------------------------------------------------------------

    def _maybe_finish(self) -> None:
        """Both FINs passed and nothing left in between: close quietly."""
        if self._host_shut and self._host_eof and not self._host_full:
            self._close()
            self._sock.close()
            # The stack keeps the connection only to finish its shutdown.
            self._core.stack.tcp_release(self._key, trio.current_time())

    def _reset(self) -> None:
        """Either side broke: reset both."""
        self._close()
        close_with_reset(self._sock)
        self._core.tcp_abort(self._key)

    def abort(self) -> None:
        """Engine teardown: reset the host side (the stack resets the guest's)."""
        if not self.closed:
            self._close()
            close_with_reset(self._sock)

    def _close(self) -> None:
        self.closed = True
        self._loop.forget(self._fd)
        self._on_done(self._key)


def close_with_reset(sock: socket.socket) -> None:
    """Close a host socket so its peer sees RST rather than FIN."""
    if sock.fileno() < 0:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
