"""Out-of-order received data, held until the hole before it fills.

Blocks are disjoint and merged as they touch, so their count stays small and
each maps to one SACK block (RFC 2018). Sequence numbers are the connection's
unwrapped ints. The owner enforces the bounds it passes in; the queue reports
why it refused something instead of counting it itself.
"""

from __future__ import annotations

from trionet.tcp.byte_ring import ByteRing
from trionet.tcp.seq import SEQ_MASK

__all__ = ["Reassembly"]

_Payload = bytes | bytearray | memoryview


class Reassembly:
    """Disjoint blocks ``(start, data)`` of received data above RCV.NXT."""

    __slots__ = ("_last", "blocks", "max_blocks", "max_bytes", "size")

    def __init__(self, max_bytes: int, max_blocks: int) -> None:
        self.blocks: list[tuple[int, bytearray]] = []
        #: Payload bytes held.
        self.size = 0
        self.max_bytes = max_bytes
        self.max_blocks = max_blocks
        self._last = 0

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def clear(self) -> None:
        self.blocks.clear()
        self.size = 0

    def insert(self, seq: int, payload: _Payload) -> str | None:
        """Hold ``payload`` at ``seq``; return why it was (partly) refused, or ``None``."""
        end = seq + len(payload)
        blocks = self.blocks
        limit = self.max_bytes
        self._last = seq
        i = 0
        nblocks = len(blocks)
        while i < nblocks and blocks[i][0] + len(blocks[i][1]) < seq:
            i += 1
        if i == nblocks or blocks[i][0] > end:
            if nblocks >= self.max_blocks or self.size + len(payload) > limit:
                return "ooo_dropped_memory"
            blocks.insert(i, (seq, bytearray(payload)))
            self.size += len(payload)
            return None
        start, data = blocks[i]
        block_end = start + len(data)
        if start <= seq and end <= block_end:
            return "duplicate_data"
        added = 0
        if seq < start:
            head = memoryview(payload)[: start - seq]
            if self.size + len(head) > limit:
                return "ooo_dropped_memory"
            data[0:0] = head
            added += len(head)
            start = seq
        if end > block_end:
            tail = memoryview(payload)[block_end - seq :]
            if self.size + added + len(tail) > limit:
                blocks[i] = (start, data)
                self.size += added
                return "ooo_dropped_memory"
            data += tail
            added += len(tail)
            block_end = end
        # Swallow the following blocks the grown block now reaches.
        j = i + 1
        while j < len(blocks) and blocks[j][0] <= block_end:
            s2, d2 = blocks[j]
            e2 = s2 + len(d2)
            if e2 > block_end:
                data += memoryview(d2)[block_end - s2 :]
                added += e2 - block_end
                block_end = e2
            added -= len(d2)
            del blocks[j]
        blocks[i] = (start, data)
        self.size += added
        return None

    def drain_into(self, buffer: ByteRing, rcv_nxt: int) -> int:
        """Append what now continues the stream at ``rcv_nxt``; return the new RCV.NXT."""
        blocks = self.blocks
        while blocks and blocks[0][0] <= rcv_nxt:
            start, data = blocks.pop(0)
            self.size -= len(data)
            end = start + len(data)
            if end > rcv_nxt:
                buffer.append(memoryview(data)[rcv_nxt - start :])
                rcv_nxt = end
        return rcv_nxt

    def sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """Wire SACK blocks: the one holding the newest segment first, then the highest."""
        first: tuple[int, int] | None = None
        others: list[tuple[int, int]] = []
        last = self._last
        for start, data in reversed(self.blocks):
            rng = (start & SEQ_MASK, (start + len(data)) & SEQ_MASK)
            if first is None and start <= last < start + len(data):
                first = rng
            else:
                others.append(rng)
        result = ([first] if first is not None else []) + others
        return tuple(result[:limit])
