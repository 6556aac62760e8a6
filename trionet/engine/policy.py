"""The one decision point every new flow passes through.

Each new guest flow (a TCP SYN, the first datagram of a UDP flow, a ping) is
described as a :class:`NewFlow` and handed to the policy before anything is
dialled. The policy issue replaces :func:`allow_all` with ordered rules over
groups, CIDRs, domains and ports; the engine does not change when it does.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FlowPolicy", "NewFlow", "Verdict", "allow_all"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class NewFlow:
    """A flow as the guest asked for it, classified before any relaying."""

    protocol: str  # "tcp", "udp", "icmp"
    guest: IPAddress
    guest_port: int
    destination: IPAddress
    destination_port: int
    #: True when the guest dialled the gateway, i.e. the host itself.
    to_host: bool


FlowPolicy = Callable[[NewFlow], Verdict]


def allow_all(flow: NewFlow) -> Verdict:
    """The policy until rules exist: every flow may proceed."""
    return Verdict.ALLOW
