"""Length-prefixed frame decoding for stream links, without I/O.

QEMU's ``-netdev stream``, passt's and libkrun's unixstream protocol all send
each Ethernet frame after its length as a 4-byte big-endian number. A stream
has no boundaries of its own, so a reader must reassemble frames from reads
of any size; this class does that and nothing else, so it can be fuzzed
without sockets.

What a hostile peer can send, and what happens:

* a length above ``max_frame_size``: :class:`FramingError`. The connection
  must be dropped, because nothing after an impossible length can be trusted
  to be a length again (framing is lost), and buffering it would let the
  peer make us allocate up to 4 GiB.
* a length below an Ethernet header (0 to 13): the frame is skipped and
  counted in ``runts``. Framing is intact, so the connection survives.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

__all__ = [
    "ETHERNET_HEADER",
    "MAX_FRAME_SIZE",
    "FramingError",
    "StreamFrameDecoder",
    "encode_frames",
]

#: QEMU's NET_BUFSIZE (64 KiB + 4 KiB): no peer sends or accepts a larger frame.
MAX_FRAME_SIZE: Final = 65536 + 4096
ETHERNET_HEADER: Final = 14
_LENGTH = struct.Struct(">I")


class FramingError(Exception):
    """The peer sent a length no frame can have; the stream's framing is lost."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StreamFrameDecoder:
    """Feed it bytes as they arrive; it returns the frames they complete."""

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        if not ETHERNET_HEADER <= max_frame_size <= 0xFFFFFFFF:
            raise ValueError(f"max_frame_size {max_frame_size} is not a possible frame size")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._error: FramingError | None = None
        #: Frames skipped for being shorter than an Ethernet header.
        self.runts = 0

    @property
    def error(self) -> FramingError | None:
        """Set once framing is lost; every later :meth:`feed` raises it."""
        return self._error

    @property
    def pending(self) -> int:
        """Bytes held for a frame (or length) not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume ``data``; return every frame completed, in order.

        Raises FramingError on an impossible length, and again on every later
        call: once framing is lost the decoder stays broken. Frames completed
        before the bad length in the same call are still returned (the error
        then comes from the next call, and :attr:`error` is already set).
        """
        if self._error is not None:
            raise self._error
        buffered = bool(self._buf)
        if buffered:
            self._buf += data
            view = memoryview(self._buf)
        else:
            # Nothing buffered: slice frames straight out of the caller's data.
            view = memoryview(data).cast("B")
        frames: list[bytes] = []
        offset = 0
        end = len(view)
        try:
            while end - offset >= 4:
                (length,) = _LENGTH.unpack_from(view, offset)
                if length > self.max_frame_size:
                    self._error = FramingError(
                        f"frame length {length} exceeds the maximum {self.max_frame_size}"
                    )
                    if frames:
                        break
                    raise self._error
                if end - offset - 4 < length:
                    break
                start = offset + 4
                offset = start + length
                if length < ETHERNET_HEADER:
                    self.runts += 1
                    continue
                frames.append(bytes(view[start:offset]))
        finally:
            if self._error is None and not buffered and offset < end:
                self._buf += view[offset:]
            view.release()
            if self._error is not None:
                self._buf = bytearray()
            elif buffered:
                del self._buf[:offset]
        return frames


def encode_frames(frames: Iterable[bytes | bytearray | memoryview]) -> bytes:
    """Length-prefix and join ``frames`` into one buffer, ready for a single send."""
    parts: list[bytes | bytearray | memoryview] = []
    for frame in frames:
        length = len(frame)
        if length > 0xFFFFFFFF:
            raise ValueError(f"a {length}-byte frame cannot be length-prefixed")
        parts.append(_LENGTH.pack(length))
        parts.append(frame)
    return b"".join(parts)
