"""IP fragment reassembly with bounded memory and time.

Only UDP is reassembled (TCP segments are never fragmented by a sane guest,
which sets DF and does path-MTU discovery). A hostile guest can send endless
first fragments, so everything is bounded: datagrams in flight, bytes per
datagram, total bytes, and age. Overlapping fragments drop the whole datagram
(RFC 5722 requires it for IPv6; for IPv4 it closes the same evasion trick).

The byte bound charges each held fragment a fixed overhead on top of its
data, as Linux charges an skb's truesize: otherwise a flood of 8-byte
fragments would hold many times the bound in Python objects. Empty
fragments discard the datagram (as Linux does), since they would cost memory
while adding no bytes. Finding a fragment's neighbours is a bisection, so a
datagram cut into thousands of pieces costs O(log n) per fragment, not O(n).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Reassembler"]

MAX_DATAGRAM = 65535
DEFAULT_MAX_DATAGRAMS = 64
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
#: What holding one fragment costs beyond its data: the bytes object's header,
#: two list slots and the offset's int (about 90 bytes on CPython), rounded up.
PIECE_OVERHEAD = 128

FragmentKey = tuple[int, bytes, bytes, int, int]  # version, src, dst, ident, protocol


@dataclass(slots=True)
class _Partial:
    expires: float
    #: fragment offsets, sorted, and the data at each (parallel lists)
    starts: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    total: int | None = None
    #: data bytes held (the datagram is whole when this reaches ``total``)
    size: int = 0
    #: what this partial counts against the byte bound
    charged: int = 0


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
        if end > MAX_DATAGRAM or end == offset or (more and len(data) % 8):
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
        # Held pieces never overlap, so only the neighbours can overlap this one.
        starts, pieces = partial.starts, partial.pieces
        index = bisect_right(starts, offset)
        if index and starts[index - 1] + len(pieces[index - 1]) > offset:
            if starts[index - 1] == offset and pieces[index - 1] == data:
                return self._complete(key, partial)  # an exact duplicate is harmless
            self._drops["fragment_overlap"] += 1
            self._discard(key)
            return None
        if index < len(starts) and starts[index] < end:
            self._drops["fragment_overlap"] += 1
            self._discard(key)
            return None
        cost = len(data) + PIECE_OVERHEAD
        if self._bytes + cost > self._max_bytes:
            self._drops["fragment_limit"] += 1
            self._discard(key)
            return None
        starts.insert(index, offset)
        pieces.insert(index, bytes(data))
        partial.size += len(data)
        partial.charged += cost
        self._bytes += cost
        return self._complete(key, partial)

    def _complete(self, key: FragmentKey, partial: _Partial) -> bytes | None:
        if partial.total is None or partial.size != partial.total:
            return None
        # No overlaps and the sizes add up, so the pieces tile [0, total).
        del self._partials[key]
        self._bytes -= partial.charged
        return b"".join(partial.pieces)

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
            self._bytes -= partial.charged
