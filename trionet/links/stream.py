"""A guest link over a byte stream: QEMU ``-netdev stream``, passt and libkrun unixstream.

Each frame travels after its 4-byte big-endian length (see
:mod:`trionet.links.framing`, which does the decoding without I/O). This
module only moves bytes between a ``trio.abc.Stream`` and that decoder.

A session ends when the peer closes, the stream breaks, or the peer sends an
impossible length (framing is lost, so the connection is dropped and
counted). Every ending looks the same to the caller: :meth:`receive_frames`
returns ``[]`` and :attr:`end_reason` says why. None of them raises, because
for a server (``trionet serve``) a VMM going away or misbehaving is an
event, not a crash.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

import trio

from trionet.links.counters import LinkCounters
from trionet.links.framing import (
    MAX_FRAME_SIZE,
    FramingError,
    StreamFrameDecoder,
    encode_frames,
)
from trionet.links.unixpath import remove_stale_socket

__all__ = ["StreamLink", "open_unix_stream_listener"]

#: One receive_some asks for this much: two maximum frames, so a burst of
#: small frames is one wake-up and a 64 KB frame rarely needs two.
RECEIVE_SIZE = 2 * MAX_FRAME_SIZE


class StreamLink:
    """Frames over a stream; one task may receive while another sends."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_frame_size: int = MAX_FRAME_SIZE,
        receive_size: int = RECEIVE_SIZE,
    ) -> None:
        self.stream = stream
        self.counters = LinkCounters()
        #: None while the session is live; then "eof", "eof inside a frame", a framing
        #: error, "receive failed: ..." or "send failed: ...".
        self.end_reason: str | None = None
        self._decoder = StreamFrameDecoder(max_frame_size)
        self._receive_size = receive_size

    async def receive_frames(self) -> list[bytes]:
        """Wait for at least one frame and return all that are complete; [] once ended."""
        while self.end_reason is None:
            if self._decoder.error is not None:
                self.counters.malformed_in += 1
                await self._end(self._decoder.error.reason)
                break
            try:
                data = await self.stream.receive_some(self._receive_size)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._end(f"receive failed: {exc!r}")
                break
            if not data:
                if self._decoder.pending:
                    self.counters.malformed_in += 1
                    await self._end("eof inside a frame")
                else:
                    await self._end("eof")
                break
            runts = self._decoder.runts
            try:
                frames = self._decoder.feed(data)
            except FramingError as exc:
                self.counters.malformed_in += 1
                await self._end(exc.reason)
                break
            self.counters.malformed_in += self._decoder.runts - runts
            if frames:
                self.counters.frames_in += len(frames)
                self.counters.bytes_in += sum(map(len, frames))
                return frames
        return []

    async def send_frames(self, frames: Iterable[bytes | bytearray | memoryview]) -> bool:
        """Send ``frames`` in one write; waits while the peer is slow (back-pressure).

        Returns False, counting the frames as dropped, when the session has
        ended or ends now because the peer is gone.
        """
        frames = list(frames)
        if not frames:
            return True
        if self.end_reason is None:
            try:
                await self.stream.send_all(encode_frames(frames))
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._end(f"send failed: {exc!r}")
            else:
                self.counters.frames_out += len(frames)
                self.counters.bytes_out += sum(map(len, frames))
                return True
        self.counters.drops_out += len(frames)
        return False

    async def aclose(self) -> None:
        if self.end_reason is None:
            self.end_reason = "closed"
        await self.stream.aclose()

    async def _end(self, reason: str) -> None:
        self.end_reason = reason
        await trio.aclose_forcefully(self.stream)


async def open_unix_stream_listener(path: str | os.PathLike[str]) -> trio.SocketListener:
    """Listen on a unix stream socket at ``path`` (replacing a stale socket file).

    QEMU ``-netdev stream,server=off,addr.type=unix,addr.path=PATH`` and
    passt-style clients connect here; wrap each accepted stream in a
    :class:`StreamLink`.
    """
    path = os.fspath(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        remove_stale_socket(path)
        await sock.bind(path)
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)
