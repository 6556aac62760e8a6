"""Recent denials: a datagram flow the policy refused stays refused for a moment.

A guest (or a host peer of a published UDP port) can send a denied flow
thousands of datagrams a second. Asking the policy again for each would put
each on record, and an audit file would grow with the sender's rate. So a
denial stands for ``seconds`` without another decision: one record per
denied flow and second. The memo is bounded, oldest out first, so a sender
cycling through endless flows costs a decision each, never memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["DENIAL_MEMO_SECONDS", "DENIAL_MEMO_SIZE", "RecentDenials"]

DENIAL_MEMO_SECONDS = 1.0
DENIAL_MEMO_SIZE = 1024


class RecentDenials:
    def __init__(self, seconds: float = DENIAL_MEMO_SECONDS, size: int = DENIAL_MEMO_SIZE) -> None:
        self._seconds = seconds
        self._size = size
        #: flow -> until when its denial stands
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def denied(self, flow: Hashable, now: float) -> bool:
        """Whether ``flow`` was denied less than ``seconds`` ago."""
        until = self._until.get(flow)
        if until is None:
            return False
        if now < until:
            return True
        del self._until[flow]
        return False

    def add(self, flow: Hashable, now: float) -> None:
        """``flow`` was just denied."""
        self._until[flow] = now + self._seconds
        self._until.move_to_end(flow)
        if len(self._until) > self._size:
            self._until.popitem(last=False)
