"""Guest UDP fragments: reassembled whole, in any order, within memory and time bounds."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tests.stack.guest import (
    GUEST4,
    GUEST6,
    REMOTE4,
    REMOTE6,
    ipv4_fragment,
    ipv6_packet,
    make_stack,
    udp_datagram_v4,
    udp_datagram_v6,
)
from trionet.stack.flows import FlowKey, UdpReceived
from trionet.stack.interface import Stack
from trionet.stack.reassembly import Reassembler
from trionet.wire.ipv4 import PROTO_TCP, PROTO_UDP, Ipv4Header
from trionet.wire.ipv6 import Ipv6Fragment, Ipv6Header

NOW = 10.0
PAYLOAD = bytes(i % 239 for i in range(3000))


def v4_fragments(
    datagram: bytes, step: int = 1480, ident: int = 77, protocol: int = PROTO_UDP
) -> list[bytes]:
    frames = []
    for offset in range(0, len(datagram), step):
        piece = datagram[offset : offset + step]
        more = offset + step < len(datagram)
        header = Ipv4Header(GUEST4, REMOTE4, protocol, len(piece), 64, ident, False, more, offset)
        frames.append(ipv4_fragment(header, piece))
    return frames


def v6_fragments(datagram: bytes, step: int = 1448, ident: int = 77) -> list[bytes]:
    frames = []
    for offset in range(0, len(datagram), step):
        piece = datagram[offset : offset + step]
        more = offset + step < len(datagram)
        header = Ipv6Header(
            GUEST6, REMOTE6, PROTO_UDP, len(piece), 64, fragment=Ipv6Fragment(ident, offset, more)
        )
        frames.append(ipv6_packet(header, piece))
    return frames


def datagram(version: int, payload: bytes = PAYLOAD) -> bytes:
    if version == 4:
        return udp_datagram_v4(5000, 53, payload, GUEST4, REMOTE4)
    return udp_datagram_v6(5000, 53, payload, GUEST6, REMOTE6)


def fragments(version: int, data: bytes, **kw: int) -> list[bytes]:
    return v4_fragments(data, **kw) if version == 4 else v6_fragments(data, **kw)


def expected(version: int, payload: bytes = PAYLOAD) -> UdpReceived:
    if version == 4:
        return UdpReceived(FlowKey(4, GUEST4, 5000, REMOTE4, 53), payload)
    return UdpReceived(FlowKey(6, GUEST6, 5000, REMOTE6, 53), payload)


def feed(stack: Stack, frames: list[bytes], now: float = NOW) -> None:
    for frame in frames:
        stack.receive_frame(frame, now)


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("order", ["in order", "reversed", "shuffled"])
def test_fragments_are_reassembled_in_any_order(version: int, order: str) -> None:
    stack = make_stack()
    payload = bytes(random.Random(version).randbytes(20000))
    frames = fragments(version, datagram(version, payload), step=1232)
    if order == "reversed":
        frames.reverse()
    elif order == "shuffled":
        random.Random(1).shuffle(frames)
    feed(stack, frames[:-1])
    assert not stack.take_events()
    feed(stack, frames[-1:])
    assert stack.take_events() == [expected(version, payload)]
    assert not stack.drops
    assert len(stack._reassembly) == 0 and stack._reassembly.bytes_held == 0


@pytest.mark.parametrize("version", [4, 6])
def test_exact_duplicates_are_harmless(version: int) -> None:
    stack = make_stack()
    frames = fragments(version, datagram(version))
    feed(stack, [frames[0], frames[0], frames[1], frames[1], frames[2]])
    assert stack.take_events() == [expected(version)]
    assert not stack.drops


@pytest.mark.parametrize("version", [4, 6])
def test_overlapping_fragment_drops_the_datagram(version: int) -> None:
    stack = make_stack()
    data = datagram(version)
    good = fragments(version, data, step=1480 if version == 4 else 1448)
    overlap = fragments(version, data[:2016], step=1008)[1]  # bytes 1008..2016
    feed(stack, [good[0], overlap, good[1], good[2]])
    assert not stack.take_events()
    assert stack.drops["fragment_overlap"] == 1
    # The rest of the datagram starts a new partial that never completes.
    stack.poll(NOW + 31)
    assert stack.drops["fragment_timeout"] == 1


@pytest.mark.parametrize("version", [4, 6])
def test_incomplete_datagram_times_out(version: int) -> None:
    stack = make_stack()
    frames = fragments(version, datagram(version))
    feed(stack, frames[:2])
    deadline = stack.next_deadline()
    assert deadline == NOW + 30
    stack.poll(deadline - 0.001)
    assert stack.drops["fragment_timeout"] == 0
    stack.poll(deadline)
    assert stack.drops["fragment_timeout"] == 1
    assert stack.next_deadline() is None
    feed(stack, frames[2:], now=deadline + 1)
    assert not stack.take_events()


def test_fragmented_tcp_is_not_reassembled() -> None:
    stack = make_stack()
    feed(stack, v4_fragments(bytes(3000), protocol=PROTO_TCP))
    assert stack.drops["unsupported_fragment"] == 3
    assert len(stack._reassembly) == 0


def test_inconsistent_last_fragments_drop_the_datagram() -> None:
    drops: Counter[str] = Counter()
    r = Reassembler(drops)
    key = (4, GUEST4, REMOTE4, 1, PROTO_UDP)
    assert r.add(key, 0, True, bytes(8), NOW) is None
    assert r.add(key, 16, False, bytes(8), NOW) is None
    assert r.add(key, 32, False, bytes(8), NOW) is None  # a second, different end
    assert drops["fragment_invalid"] == 1 and len(r) == 0


@pytest.mark.parametrize(
    ("offset", "more", "size"),
    [(0, True, 7), (65528, False, 8), (8, True, 12)],
)
def test_invalid_fragments_are_dropped(offset: int, more: bool, size: int) -> None:
    drops: Counter[str] = Counter()
    r = Reassembler(drops)
    assert r.add((4, GUEST4, REMOTE4, 1, PROTO_UDP), offset, more, bytes(size), NOW) is None
    assert drops["fragment_invalid"] == 1 and r.bytes_held == 0


def test_datagram_count_is_bounded() -> None:
    drops: Counter[str] = Counter()
    r = Reassembler(drops, max_datagrams=4)
    for ident in range(10):
        r.add((4, GUEST4, REMOTE4, ident, PROTO_UDP), 0, True, bytes(8), NOW)
    assert len(r) == 4 and drops["fragment_limit"] == 6


def test_bytes_held_are_bounded() -> None:
    drops: Counter[str] = Counter()
    r = Reassembler(drops, max_bytes=10_000)
    for ident in range(20):
        r.add((4, GUEST4, REMOTE4, ident, PROTO_UDP), 0, True, bytes(1480), NOW)
    assert r.bytes_held <= 10_000
    assert drops["fragment_limit"] > 0


def test_empty_fragments_cannot_pile_up() -> None:
    # Zero-length fragments add no bytes, so a byte bound alone never stops
    # them; Linux discards the queue on one (ip_frag_queue: end == offset).
    drops: Counter[str] = Counter()
    r = Reassembler(drops)
    key = (4, GUEST4, REMOTE4, 1, PROTO_UDP)
    r.add(key, 0, True, bytes(8), NOW)
    for i in range(1000):
        r.add(key, 8 * (i % 100 + 1), True, b"", NOW)
    assert sum(len(p.pieces) for p in r._partials.values()) <= 1
    assert drops["fragment_invalid"] >= 1


def test_memory_of_tiny_fragments_is_charged() -> None:
    # 8-byte fragments cost far more than 8 bytes each to hold; the bound
    # must count what they really cost, not just their payload.
    import tracemalloc

    max_bytes = 64 * 1024
    drops: Counter[str] = Counter()
    r = Reassembler(drops, max_bytes=max_bytes)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for ident in range(4):
            key = (4, GUEST4, REMOTE4, ident, PROTO_UDP)
            for offset in range(0, 65528, 16):  # every other 8-byte slot: never completes
                r.add(key, offset, True, b"\x01" * 8, NOW)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert drops["fragment_limit"] > 0
    assert held < 2 * max_bytes, held


def test_a_deadline_at_time_zero_is_still_a_deadline() -> None:
    # The clock is the caller's: trio's starts anywhere, a test's at zero.
    stack = make_stack()
    feed(stack, v4_fragments(datagram(4))[:1], now=-30.0)
    assert stack.next_deadline() == 0.0


@pytest.mark.parametrize("version", [4, 6])
def test_reassembled_checksum_is_verified_even_when_the_link_vouches(version: int) -> None:
    # checksum_valid is the link's word about one frame (virtio-net
    # DATA_VALID/NEEDS_CSUM); no NIC checksums a datagram across fragments,
    # so a reassembled one must always be verified.
    stack = make_stack()
    data = bytearray(datagram(version))
    data[-1] ^= 0xFF
    for frame in fragments(version, bytes(data)):
        stack.receive_frame(frame, NOW, checksum_valid=True)
    assert not stack.take_events()
    assert stack.drops["malformed"] == 1
