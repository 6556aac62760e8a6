"""Per-link frame counters, shared by every transport.

"in" is what the link delivered to the engine (frames the guest sent), "out"
what the engine handed the link for the guest. Plain ints in a mutable
dataclass: they are bumped on the hot path, so no locking and no properties.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LinkCounters"]


@dataclass(slots=True)
class LinkCounters:
    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    #: Frames for the guest dropped because its queue was full or it had gone away.
    drops_out: int = 0
    #: Input the link discarded: bad lengths, runt frames, strangers' datagrams.
    malformed_in: int = 0
