"""Flow identity and the events the stack hands to the engine.

The stack is sans-IO: it never waits and never dials. Whenever a frame from
the guest needs something only the engine can do (open a host socket, relay
a datagram, send a ping), the stack records an event; the engine drains them
after each batch. Events are plain immutable values so they can be logged,
asserted on in tests and replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "EchoRequested",
    "FlowKey",
    "OffloadFrame",
    "OutFrame",
    "StackEvent",
    "TcpActivity",
    "TcpConnectRequested",
    "TcpConnectionGone",
    "UdpReceived",
]


class FlowKey(NamedTuple):
    """A guest flow: (IP version, guest address/port, remote address/port).

    Addresses are packed bytes (4 or 16). "Remote" is the address the guest
    dialled, which may be the gateway itself (meaning the host's loopback).
    A NamedTuple, because it is hashed on every frame and tuples hash fast.
    """

    version: int
    guest_addr: bytes
    guest_port: int
    remote_addr: bytes
    remote_port: int


@dataclass(frozen=True, slots=True)
class OffloadFrame:
    """A frame for a link with virtio-net offloads, kept in parts for writev.

    ``vnet`` is the 10-byte virtio-net header (partial checksum, and for a
    TCP super-segment the GSO type and size); ``head`` holds the Ethernet, IP
    and transport headers; ``payload`` is never copied into ``head``.

    ``payload`` may be a view of a connection's send buffer, right only
    while the frame is being delivered: whoever keeps a frame for later
    keeps :func:`detached` of it instead.
    """

    vnet: bytes
    head: bytes | bytearray
    payload: bytes | memoryview

    def __len__(self) -> int:
        """The Ethernet frame's length, as counted at the backend."""
        return len(self.head) + len(self.payload)


def detached(frame: OutFrame) -> OutFrame:
    """``frame`` with a payload of its own, safe to keep past its delivery (see OffloadFrame)."""
    if isinstance(frame, OffloadFrame) and not isinstance(frame.payload, bytes):
        return OffloadFrame(frame.vnet, frame.head, bytes(frame.payload))
    return frame


#: What the stack hands the link: a whole frame, or one in offload parts.
OutFrame = bytes | OffloadFrame


@dataclass(frozen=True, slots=True)
class TcpConnectRequested:
    """A guest SYN for a new flow: the engine decides, dials, then accepts or refuses."""

    key: FlowKey


@dataclass(frozen=True, slots=True)
class TcpActivity:
    """Something changed on an accepted connection (data, space, FIN, reset).

    Deliberately coarse: waiters re-check the connection's state rather than
    trusting an event's detail, so a lost or merged event cannot wedge them.
    """

    key: FlowKey


@dataclass(frozen=True, slots=True)
class TcpConnectionGone:
    """The connection left the table (closed, reset or timed out)."""

    key: FlowKey
    reason: str


@dataclass(frozen=True, slots=True)
class UdpReceived:
    """A (reassembled) UDP datagram from the guest."""

    key: FlowKey
    payload: bytes


@dataclass(frozen=True, slots=True)
class EchoRequested:
    """A guest ping to a destination other than the gateway (or to it, if asked for)."""

    version: int
    guest_addr: bytes
    remote_addr: bytes
    ident: int
    sequence: int
    payload: bytes
    hop_limit: int


StackEvent = TcpConnectRequested | TcpActivity | TcpConnectionGone | UdpReceived | EchoRequested
