"""A byte queue for a connection's send and receive buffers.

The send buffer holds what the peer has not acknowledged yet, the receive
buffer what the application has not read. A ``bytearray`` extended at the
back and trimmed at the front (on every ACK, on every read) looks free but
is not: CPython cannot move the live bytes back
to the start of the block, so trimming more than half, or growing after a
trim, allocates a new block and copies everything still queued. In a bulk
transfer that is a block of up to the whole buffer per cycle, and glibc
serves such blocks from the top of the heap and returns them with ``brk``
on free: one run of a published-port transfer made 1,327 ``brk`` calls in
2 s, each paying for fresh zeroed pages.

So the queue is a ring in one ``bytearray`` that never changes size once
grown: data is copied in, consumption moves an index, reads and segments
copy out. It starts small and doubles up to its limit (the connection's
buffer size), so a connection that only ever moved a little holds a little,
and one that moved bulk data keeps what it grew to (no more than its
buffer, the bound it already had).
"""

from __future__ import annotations

__all__ = ["ByteRing"]

#: The first ring's size; doubled as needed up to the limit.
INITIAL_CAPACITY = 4096

_EMPTY = b""


class ByteRing:
    """A FIFO of bytes: append at the back, drop from the front, copy out anywhere.

    It holds ``limit`` bytes without growing past it; more (which its users
    never queue) still fits, in a ring sized to what is held.
    """

    __slots__ = ("_head", "_len", "_limit", "_view")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        # The ring is a bytearray used only through this view: assigning a
        # bytes or memoryview to a bytearray slice first copies it into a
        # temporary bytearray (CPython copies directly only from another
        # bytearray), one more allocation and copy per append than a view's
        # slice assignment.
        self._view = memoryview(bytearray())
        self._head = 0  # index in the ring of the oldest byte
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    @property
    def capacity(self) -> int:
        """Bytes the ring holds room for now (memory it keeps)."""
        return len(self._view)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a copy of ``data``."""
        n = len(data)
        if not n:
            return
        size = self._len + n
        ring = self._view
        capacity = len(ring)
        if size > capacity:
            ring = self._grow(size)
            capacity = len(ring)
        tail = self._head + self._len
        if tail >= capacity:
            tail -= capacity
        first = capacity - tail
        if n <= first:
            ring[tail : tail + n] = data
        else:
            view = memoryview(data)
            ring[tail:] = view[:first]
            ring[: n - first] = view[first:]
        self._len = size

    def reserve(self, n: int) -> memoryview:
        """Room for up to ``n`` more bytes at the back, as one contiguous view.

        Shorter than ``n`` where the free space wraps around (call again
        after :meth:`commit`). Fill it (a ``recv_into``, say), then
        :meth:`commit` what was written, before anything else touches the
        ring: the one copy from a socket straight into the queue.
        """
        size = self._len + n
        view = self._view
        if size > len(view):
            view = self._grow(size)
        capacity = len(view)
        tail = self._head + self._len
        if tail >= capacity:
            tail -= capacity
            end = self._head  # free space runs up to the oldest byte
        else:
            end = capacity
        return view[tail : min(end, tail + n)]

    def commit(self, n: int) -> None:
        """``n`` bytes written into the last :meth:`reserve`'s view are queued."""
        self._len += n

    def _grow(self, size: int) -> memoryview:
        capacity = max(len(self._view), INITIAL_CAPACITY)
        while capacity < size:
            capacity *= 2
        capacity = max(min(capacity, self._limit), size)
        view = memoryview(bytearray(capacity))
        if self._len:
            view[: self._len] = self.copy(0, self._len)
        self._view = view
        self._head = 0
        return view

    def drop(self, n: int) -> None:
        """Forget the first ``n`` bytes; ``n`` must not exceed the length."""
        self._len -= n
        if not self._len:
            self._head = 0
            return
        head = self._head + n
        capacity = len(self._view)
        self._head = head - capacity if head >= capacity else head

    def clear(self) -> None:
        """Empty the queue and give back its memory."""
        self._view = memoryview(bytearray())
        self._head = 0
        self._len = 0

    def front(self, n: int) -> memoryview:
        """Up to ``n`` of the oldest bytes, as one view of the ring (no copy).

        Shorter than ``n`` where they wrap around. Right until the ring is
        dropped from and appended to: look, then :meth:`drop` what was used.
        """
        view = self._view
        head = self._head
        end = head + min(n, self._len)
        return view[head : min(end, len(view))]

    def copy(self, start: int, end: int) -> bytes:
        """A copy of bytes ``start:end`` of the queue (0 = the oldest byte)."""
        piece = self.view(start, end)
        return piece if isinstance(piece, bytes) else bytes(piece)

    def view(self, start: int, end: int) -> bytes | memoryview:
        """Bytes ``start:end`` without a copy where they are contiguous in the ring.

        The view shows the ring itself: it stays right only until those
        bytes are dropped and the space is written again, so the caller must
        be done with it before it drops and appends (see
        ``TcpConfig.segment_views``). Bytes that wrap around are copied.
        """
        if end <= start:
            return _EMPTY
        view = self._view
        capacity = len(view)
        a = self._head + start
        if a >= capacity:
            a -= capacity
        b = a + (end - start)
        if b <= capacity:
            return view[a:b]
        return _EMPTY.join((view[a:], view[: b - capacity]))
