"""IP fragment reassembly with bounded memory and time.

Only UDP is reassembled (TCP segments are never fragmented by a sane guest,
which sets DF and does path-MTU discovery). A hostile guest can send endless
first fragments, so everything is bounded: datagrams in flight, bytes per
datagram, total bytes, and age. Overlapping fragments drop the whole datagram
(RFC 5722 requires it for IPv6; for IPv4 it closes the same evasion trick).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Reassembler"]

MAX_DATAGRAM = 65535
DEFAULT_MAX_DATAGRAMS = 64
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0

FragmentKey = tuple[int, bytes, bytes, int, int]  # version, src, dst, ident, protocol


@dataclass(slots=True)
class _Partial:
    expires: float
    #: (offset, bytes), kept sorted by offset
    pieces: list[tuple[int, bytes]] = field(default_factory=list)
    total: int | None = None
    size: int = 0


class Reassembler:
    """Collects fragments; hands back a datagram's payload once it is whole."""

    def __init__(
        self,
        drops: Counter[str],
        *,
        max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._drops = drops
        self._max_datagrams = max_datagrams
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._partials: dict[FragmentKey, _Partial] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._partials)

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def add(
        self, key: FragmentKey, offset: int, more: bool, data: bytes | memoryview, now: float
    ) -> bytes | None:
        """Add one fragment; return the whole payload when this one completes it."""
        self.expire(now)
        end = offset + len(data)
        if end > MAX_DATAGRAM or (more and len(data) % 8):
            self._drops["fragment_invalid"] += 1
            self._discard(key)
            return None
        partial = self._partials.get(key)
        if partial is None:
            if len(self._partials) >= self._max_datagrams:
                self._drops["fragment_limit"] += 1
                return None
            partial = self._partials[key] = _Partial(expires=now + self._timeout)
        if not more:
            if partial.total is not None and partial.total != end:
                self._drops["fragment_invalid"] += 1
                self._discard(key)
                return None
            partial.total = end
        if partial.total is not None and end > partial.total:
            self._drops["fragment_invalid"] += 1
            self._discard(key)
            return None
        pieces = partial.pieces
        for other_offset, other in pieces:
            other_end = other_offset + len(other)
            if offset < other_end and other_offset < end:
                if other_offset == offset and bytes(data) == other:
                    return None  # an exact duplicate is harmless
                self._drops["fragment_overlap"] += 1
                self._discard(key)
                return None
        if self._bytes + len(data) > self._max_bytes:
            self._drops["fragment_limit"] += 1
            self._discard(key)
            return None
        pieces.append((offset, bytes(data)))
        pieces.sort(key=lambda piece: piece[0])
        partial.size += len(data)
        self._bytes += len(data)
        if partial.total is None or partial.size != partial.total:
            return None
        # No overlaps and the sizes add up, so the pieces tile [0, total).
        del self._partials[key]
        self._bytes -= partial.size
        return b"".join(piece for _, piece in pieces)

    def expire(self, now: float) -> None:
        expired = [key for key, p in self._partials.items() if p.expires <= now]
        for key in expired:
            self._drops["fragment_timeout"] += 1
            self._discard(key)

    def next_deadline(self) -> float | None:
        if not self._partials:
            return None
        return min(p.expires for p in self._partials.values())

    def _discard(self, key: FragmentKey) -> None:
        partial = self._partials.pop(key, None)
        if partial is not None:
            self._bytes -= partial.size
