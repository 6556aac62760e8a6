"""Glue for the differential tests: scapy is the independent implementation.

scapy is imported only by tests (pyproject says so). Helpers here convert
between scapy's text addresses and trionet's packed bytes and check a
checksum the way a receiver would: recompute it and compare.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)

from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Packet  # noqa: E402


def mac(packed: bytes) -> str:
    return packed.hex(":")


def ip4(packed: bytes) -> str:
    return str(ipaddress.IPv4Address(packed))


def ip6(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def packed_mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def packed_ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def assert_checksum_valid(frame: bytes, layer: Any, field: str = "chksum") -> None:
    """scapy recomputes ``layer``'s checksum from scratch; it must equal what is on the wire."""
    packet: Packet = Ether(frame)
    on_wire = packet[layer].getfieldval(field)
    packet[layer].setfieldval(field, None)
    rebuilt = Ether(bytes(packet))
    assert rebuilt[layer].getfieldval(field) == on_wire, f"{layer.__name__} checksum wrong"
