"""A guest link over unix datagrams: one Ethernet frame per datagram.

Used by QEMU ``-netdev dgram``, vfkit (``virtio-net,unixSocketPath=``),
krunkit/libkrun unixgram and gvproxy's ``--listen-vfkit``.

A datagram socket has no accept: a server bound to a path learns its peer
from the source address of the first datagram. vfkit makes sure there is
one by sending the 4-byte greeting ``VFKT`` right after connecting (gvproxy
consumes it and replies to its sender); libkrun sends it when asked
(``vfkitMagic``); QEMU never does. So here, as in gvproxy, the peer is the
sender of the first datagram, and an exact ``VFKT`` datagram is a greeting,
never a frame (4 bytes cannot be an Ethernet frame anyway). Once the peer is
known the socket is ``connect()``-ed to it: the kernel then drops datagrams
from anyone else (another local process cannot inject frames) and
``wait_writable`` tracks the peer's queue, so a full queue is waited on, not
polled.

The peer's going away is only visible when a send is refused
(ECONNREFUSED): the link then closes itself, which also ends a pending
:meth:`DgramLink.receive_frames`. A VMM reconnecting needs a new link (a new
bind of the path).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterable
from typing import Final

import trio

from trionet.links.counters import LinkCounters
from trionet.links.framing import ETHERNET_HEADER, MAX_FRAME_SIZE
from trionet.links.unixpath import remove_stale_socket

__all__ = ["VFKIT_MAGIC", "DgramLink"]

VFKIT_MAGIC: Final = b"VFKT"
_PEER_GONE: Final = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ENOTCONN})
#: Socket buffers as gvproxy sizes them: a burst of 64 KB frames must fit.
_SNDBUF: Final = 1 << 20
_RCVBUF: Final = 4 << 20

UnixAddress = str | bytes


class DgramLink:
    """Frames over a unix datagram socket; one task may receive while another sends."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        peer: UnixAddress | None = None,
        require_greeting: bool = False,
    ) -> None:
        """Wrap ``sock`` (AF_UNIX, SOCK_DGRAM), taking ownership of it.

        A connected socket (a socketpair end) has its peer already; a bound
        one learns it from the first datagram, or is told ``peer`` (the
        address the VMM binds, as QEMU's ``local.path``): then it connects as
        soon as that address exists, so it can speak first, and ignores
        anyone else. ``require_greeting`` (vfkit, krunkit) takes as the peer
        only a sender that first sent ``VFKT``; anything before is dropped.
        """
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_DGRAM:
            raise ValueError("DgramLink needs an AF_UNIX SOCK_DGRAM socket")
        sock.setblocking(False)
        for option, size in ((socket.SO_SNDBUF, _SNDBUF), (socket.SO_RCVBUF, _RCVBUF)):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, size)
        self._sock = sock
        self._max = max_frame_size
        self.counters = LinkCounters()
        self.end_reason: str | None = None
        self.greetings = 0
        self._connected = False
        self._peer: UnixAddress | None = None
        self._expected_peer = peer
        self._require_greeting = require_greeting
        try:
            sock.getpeername()
        except OSError:
            self._try_connect()
        else:
            self._connected = True

    @classmethod
    def bind(
        cls,
        path: str | os.PathLike[str],
        *,
        peer: UnixAddress | None = None,
        require_greeting: bool = False,
    ) -> DgramLink:
        """Listen at ``path`` (replacing a stale socket file), as gvproxy ``--listen-vfkit`` does.

        Give ``peer`` (QEMU's ``remote.path``) to be able to send before the
        VMM has; otherwise its first datagram names it.
        """
        path = os.fspath(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            remove_stale_socket(path)
            sock.bind(path)
            return cls(sock, peer=peer, require_greeting=require_greeting)
        except BaseException:
            sock.close()
            raise

    @property
    def peer_known(self) -> bool:
        return self._connected

    def fileno(self) -> int:
        return self._sock.fileno()

    async def receive_frames(self, max_frames: int = 64) -> list[bytes]:
        """Wait for at least one frame and return up to ``max_frames``; [] once closed.

        Greetings, runts (shorter than an Ethernet header) and datagrams
        longer than the maximum frame are consumed and counted, never returned.
        """
        frames: list[bytes] = []
        recvfrom = self._sock.recvfrom
        limit = self._max + 1  # one byte more than allowed reveals an oversized datagram
        while not frames and self.end_reason is None:
            if self._sock.fileno() < 0:
                break
            try:
                await trio.lowlevel.wait_readable(self._sock)
            except trio.ClosedResourceError:
                break
            while len(frames) < max_frames:
                try:
                    data, address = recvfrom(limit)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno not in _PEER_GONE:
                        raise
                    self._end(f"receive failed: {exc.strerror}")
                    break
                if self._require_greeting and not self._connected and data != VFKIT_MAGIC:
                    self.counters.malformed_in += 1  # not introduced by a greeting: a stranger
                    continue
                if not self._accept_sender(address):
                    self.counters.malformed_in += 1
                    continue
                if data == VFKIT_MAGIC:
                    self.greetings += 1
                    continue
                if len(data) > self._max or len(data) < ETHERNET_HEADER:
                    self.counters.malformed_in += 1
                    continue
                frames.append(data)
        self.counters.frames_in += len(frames)
        self.counters.bytes_in += sum(map(len, frames))
        return frames

    async def send_frames(self, frames: Iterable[bytes | bytearray | memoryview]) -> bool:
        """Send each frame as one datagram, waiting while the peer's queue is full.

        Returns False when some frames were dropped (and counted): no peer
        yet (a named one whose socket does not exist yet counts as none), the
        peer is gone (the link then closes), or a frame is too large for a
        datagram.
        """
        all_sent = True
        if not self._connected:
            self._try_connect()
        for frame in frames:
            if self.end_reason is not None or not self._connected:
                self.counters.drops_out += 1
                all_sent = False
                continue
            while True:
                try:
                    self._sock.send(frame)
                except BlockingIOError:
                    try:
                        await trio.lowlevel.wait_writable(self._sock)
                    except trio.ClosedResourceError:
                        self.counters.drops_out += 1
                        all_sent = False
                        break
                    continue
                except OSError as exc:
                    self.counters.drops_out += 1
                    all_sent = False
                    if exc.errno in _PEER_GONE:
                        self._end(f"send failed: {exc.strerror}")
                    elif exc.errno != errno.EMSGSIZE:
                        raise
                    break
                self.counters.frames_out += 1
                self.counters.bytes_out += len(frame)
                break
        return all_sent

    def close(self) -> None:
        """Close the socket, waking a pending receive (which returns []); idempotent."""
        if self.end_reason is None:
            self.end_reason = "closed"
        self._close()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def _accept_sender(self, address: UnixAddress | None) -> bool:
        """Whether a datagram from ``address`` is the peer's, learning the peer if need be."""
        if self._connected:
            # Datagrams queued before connect() narrowed the socket may be anyone's.
            return not address or self._peer is None or address == self._peer
        if not address:
            return False  # an unbound sender cannot be answered (gvproxy refuses it too)
        if self._expected_peer is not None and address != self._expected_peer:
            return False  # with a peer named, nobody else is one
        try:
            self._connect(address)
        except OSError:
            return False  # gone again already
        return True

    def _try_connect(self) -> None:
        """Connect to the named peer if it is there yet (a VMM often starts after us)."""
        if self._connected or self._expected_peer is None or self._sock.fileno() < 0:
            return
        with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
            self._connect(self._expected_peer)

    def _connect(self, address: UnixAddress) -> None:
        self._sock.connect(address)
        self._peer = address
        self._connected = True

    def _end(self, reason: str) -> None:
        self.end_reason = reason
        self._close()

    def _close(self) -> None:
        if self._sock.fileno() < 0:
            return
        with contextlib.suppress(RuntimeError):  # outside trio nobody waits on it
            trio.lowlevel.notify_closing(self._sock)
        self._sock.close()
