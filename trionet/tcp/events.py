"""Events the connection reports to its owner, drained with ``next_event()``.

They are edge-triggered: each says that something changed, and the owner then
looks at the connection (``read()``, ``send_space``) for the details. That
keeps one event per transition instead of one per segment on the hot path.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Closed",
    "ConnectionReset",
    "Established",
    "PeerFinished",
    "Readable",
    "ResetReason",
    "SendSpaceAvailable",
    "TcpEvent",
    "UrgentData",
]


class ResetReason(enum.Enum):
    """Why a connection ended abnormally (RFC 9293 MUST-12: the owner is told)."""

    #: The peer sent an acceptable RST while the connection was synchronized.
    RESET_BY_PEER = "reset by peer"
    #: Our SYN was answered with a RST (active open refused).
    REFUSED = "connection refused"
    #: Retransmissions, zero-window probes or keep-alives went unanswered.
    TIMEOUT = "timed out"


@dataclass(frozen=True, slots=True)
class Established:
    """The three-way handshake completed."""


@dataclass(frozen=True, slots=True)
class Readable:
    """Received bytes became available where there were none; call ``read()``."""


@dataclass(frozen=True, slots=True)
class PeerFinished:
    """The peer sent FIN: no bytes follow those already readable."""


@dataclass(frozen=True, slots=True)
class ConnectionReset:
    """The connection was torn down abnormally; a ``Closed`` follows."""

    reason: ResetReason


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection reached CLOSED; it emits nothing more and has no timers."""


@dataclass(frozen=True, slots=True)
class SendSpaceAvailable:
    """After a short or buffer-filling ``send()``, the buffer drained below low-water."""


@dataclass(frozen=True, slots=True)
class UrgentData:
    """The peer marked urgent data; ``urgent_bytes`` says how far it reaches.

    The bytes themselves stay in the normal stream, in order.
    """


TcpEvent = (
    Established
    | Readable
    | PeerFinished
    | ConnectionReset
    | Closed
    | SendSpaceAvailable
    | UrgentData
)
