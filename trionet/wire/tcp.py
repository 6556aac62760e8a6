"""TCP header (RFC 9293 section 3.1) and its options.

This module fixes the *representation* the TCP state machine works with;
parse/emit live beside it. The payload is never part of the header: it is
passed alongside as a memoryview so no bytes are copied on the parse path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["TcpFlags", "TcpHeader", "TcpOptions"]


class TcpFlags(enum.IntFlag):
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The options trionet understands; unknown ones are skipped on parse."""

    mss: int | None = None
    window_scale: int | None = None
    sack_permitted: bool = False
    #: (left edge, right edge) pairs, at most 4 (3 when timestamps are present).
    sack_blocks: tuple[tuple[int, int], ...] = ()
    #: (TSval, TSecr) of RFC 7323.
    timestamp: tuple[int, int] | None = None


NO_OPTIONS = TcpOptions()


@dataclass(frozen=True, slots=True)
class TcpHeader:
    """A TCP header as numbers; ``window`` is the raw, unscaled 16-bit field."""

    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: TcpFlags
    window: int
    urgent: int = 0
    options: TcpOptions = NO_OPTIONS
