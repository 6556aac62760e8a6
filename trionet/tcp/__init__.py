"""The sans-IO TCP state machine (RFC 9293). Time is an argument, never read.

Public surface (see ``docs/tcp.md`` for how the stack drives it):

* :class:`TcpConnection` with :meth:`~TcpConnection.accept`,
  :meth:`~TcpConnection.connect` and :meth:`~TcpConnection.listen`;
* :class:`TcpConfig`, the per-connection tunables;
* the events: :class:`Established`, :class:`Readable`, :class:`PeerFinished`,
  :class:`ConnectionReset`, :class:`Closed`, :class:`SendSpaceAvailable`,
  :class:`UrgentData`;
* :func:`reset_for`, the RST answering a segment that no connection owns;
* :class:`IsnGenerator` (RFC 6528) and the sequence helpers of ``seq``.
"""

from trionet.tcp.config import TcpConfig
from trionet.tcp.connection import Segment, TcpConnection, TcpState, TcpStateError, reset_for
from trionet.tcp.events import (
    Closed,
    ConnectionReset,
    Established,
    PeerFinished,
    Readable,
    ResetReason,
    SendSpaceAvailable,
    TcpEvent,
    UrgentData,
)
from trionet.tcp.isn import IsnGenerator

__all__ = [
    "Closed",
    "ConnectionReset",
    "Established",
    "IsnGenerator",
    "PeerFinished",
    "Readable",
    "ResetReason",
    "Segment",
    "SendSpaceAvailable",
    "TcpConfig",
    "TcpConnection",
    "TcpEvent",
    "TcpState",
    "TcpStateError",
    "UrgentData",
    "reset_for",
]
