"""The sender's record of what the peer SACKed (RFC 2018, RFC 6675).

Ranges are disjoint, sorted, merged, and lie above SND.UNA; sequence numbers
are the connection's unwrapped ints. The number of ranges is capped: a hostile
peer could otherwise SACK every other byte and make the scoreboard as long as
the data in flight.
"""

from __future__ import annotations

__all__ = ["Scoreboard"]

MAX_RANGES = 64


class Scoreboard:
    """SACKed ``(start, end)`` ranges and their total size."""

    __slots__ = ("ranges", "sacked")

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        #: Bytes covered by the ranges.
        self.sacked = 0

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def clear(self) -> None:
        self.ranges = []
        self.sacked = 0

    def add(self, left: int, right: int) -> None:
        """Record ``[left, right)``, merging what it overlaps or touches."""
        merged: list[tuple[int, int]] = []
        placed = False
        for s, e in self.ranges:
            if e < left:
                merged.append((s, e))
            elif s > right:
                if not placed:
                    merged.append((left, right))
                    placed = True
                merged.append((s, e))
            else:
                left = min(left, s)
                right = max(right, e)
        if not placed:
            merged.append((left, right))
        del merged[MAX_RANGES:]
        self.ranges = merged
        self.sacked = sum(e - s for s, e in merged)

    def prune(self, una: int) -> None:
        """Forget everything below the new SND.UNA."""
        board = [(max(s, una), e) for s, e in self.ranges if e > una]
        self.ranges = board
        self.sacked = sum(e - s for s, e in board)

    def unsacked_between(self, lo: int, hi: int) -> int:
        """Bytes in ``[lo, hi)`` that the peer has not SACKed."""
        if hi <= lo:
            return 0
        total = hi - lo
        for s, e in self.ranges:
            a = s if s > lo else lo
            b = e if e < hi else hi
            if b > a:
                total -= b - a
        return total

    def skip(self, nxt: int, stop: int) -> tuple[int, int]:
        """Move ``nxt`` past SACKed data; also return where the next SACKed range starts."""
        for s, e in self.ranges:
            if e <= nxt:
                continue
            if s <= nxt:
                nxt = e
                continue
            return nxt, min(s, stop)
        return nxt, stop
