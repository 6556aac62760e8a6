"""DNS over TCP's framing (RFC 1035 4.2.2, RFC 7766): a 2-byte length before each message.

Sans-IO: feed whatever bytes arrived, take the whole messages out. The
buffer never holds more than one unfinished message (at most 2 + 65535
bytes), so a guest cannot grow it without bound.
"""

from __future__ import annotations

__all__ = ["MAX_MESSAGE", "TcpFramer", "frame"]

MAX_MESSAGE = 0xFFFF


def frame(message: bytes) -> bytes:
    """``message`` with its length prefix; ValueError if it cannot be framed."""
    if len(message) > MAX_MESSAGE:
        raise ValueError(f"a DNS message over TCP is at most {MAX_MESSAGE} bytes")
    return len(message).to_bytes(2, "big") + message


class TcpFramer:
    """Splits a byte stream into DNS messages (zero-length ones included)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data``; return every message it completed, in order (pipelining)."""
        buffer = self._buffer
        buffer += data
        messages: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= 2:
            length = int.from_bytes(buffer[start : start + 2], "big")
            if end - start - 2 < length:
                break
            messages.append(bytes(buffer[start + 2 : start + 2 + length]))
            start += 2 + length
        if start:
            del buffer[:start]
        return messages

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message held (0 between messages)."""
        return len(self._buffer)
