"""Attach a guest frame endpoint to a TAP device.

One task waits for the TAP to become readable, drains every ready frame, and
hands them to the endpoint in one synchronous call; the replies that batch
provokes are written before the call returns, through a sink the endpoint
calls directly. Frames the engine produces later (data arriving from host
sockets, timers) go through the same sink. So there is no task switch or
channel hop per frame in either direction. The link also gives the engine a
non-blocking read of the TAP, which it runs before any of its tasks waits
again (``EngineCore.drain``): what the guest sent meanwhile is taken without
a trip through Trio's scheduler.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import trio

from trionet.links.endpoint import FrameEndpoint
from trionet.links.tap import TapDevice
from trionet.stack.flows import OffloadFrame, OutFrame
from trionet.wire import ParseError
from trionet.wire.ethernet import ETHERTYPE_IPV4, ETHERTYPE_IPV6, parse_ethernet
from trionet.wire.frames import build_ipv4_frame, build_ipv6_frame
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.ipv6 import parse_ipv6
from trionet.wire.udp import parse_udp
from trionet.wire.virtio_net import GsoType, VirtioNetHeader

__all__ = ["run_tap_link", "split_udp_super_frame"]

#: Frames drained per wake-up before the engine gets to run other tasks.
BATCH_FRAMES = 64
#: Refused frames kept for a retry when the link stops, and how long it tries.
REFUSED_KEPT = 256
TEARDOWN_RETRY_SECONDS = 1.0


def _checksum_valid(header: VirtioNetHeader | None) -> bool:
    # NEEDS_CSUM: the guest left the checksum for "hardware" (us) and the data
    # never left its memory; DATA_VALID: already verified. Either way there is
    # nothing to verify, and a partial checksum would fail verification.
    return header is not None and (header.needs_csum or header.data_valid)


async def run_tap_link(
    endpoint: FrameEndpoint,
    tap: TapDevice,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Move frames between ``tap`` and ``endpoint`` until cancelled or either is closed."""
    # An all-zero vnet header says "complete frame, no offload" (any size).
    plain_header = bytes(tap.vnet_hdr_size)

    # The stack writes 10-byte virtio-net headers; a 12-byte TAP header adds
    # num_buffers, which the TAP ignores on write.
    pad = bytes(tap.vnet_hdr_size - 10) if tap.vnet_hdr_size > 10 else b""

    # Frames the TAP refused (its queue was full). In normal operation that is
    # a lossy NIC and TCP retransmits; but the last frames an engine sends,
    # the RSTs of its teardown, have no retransmission behind them, so the
    # most recent refusals are kept and retried when the link stops.
    refused: deque[Sequence[bytes | bytearray | memoryview]] = deque(maxlen=REFUSED_KEPT)

    def write_frames(frames: Sequence[OutFrame]) -> None:
        write = tap.write
        for frame in frames:
            parts: Sequence[bytes | bytearray | memoryview]
            if isinstance(frame, OffloadFrame):
                parts = (frame.vnet + pad, frame.head, frame.payload)
            elif plain_header:
                parts = (plain_header, frame)
            else:
                parts = (frame,)
            if not write(parts):
                # Kept past this call: a payload view of a send buffer would
                # not stay right (see OffloadFrame).
                refused.append([bytes(part) for part in parts])

    endpoint.attach_sink(write_frames)
    offloads = tap.offloads
    if tap.vnet_hdr_size and offloads.csum and (offloads.tso4 or offloads.tso6):
        endpoint.enable_offload(tso4=offloads.tso4, tso6=offloads.tso6)
    task_status.started()
    try:
        await _pump_in(endpoint, tap)
    except trio.ClosedResourceError:
        pass  # the engine (or the TAP) shut down under us: nothing more to move
    finally:
        endpoint.attach_sink(None)
        with trio.move_on_after(TEARDOWN_RETRY_SECONDS, shield=True):
            while refused and not tap.closed:
                await tap.wait_writable()
                if tap.write(refused[0]):
                    refused.popleft()


async def _pump_in(endpoint: FrameEndpoint, tap: TapDevice) -> None:
    def poll() -> bool:
        # From another task's drain: a failing TAP is this task's to report,
        # on its own next read, not a reason to break the engine's loop.
        # (Only the read is guarded: an error in handing frames over is a bug
        # to see, whichever task met it.)
        if tap.closed:
            return False
        try:
            raws = tap.read_batch(BATCH_FRAMES)
        except (OSError, trio.ClosedResourceError):
            return False
        _hand_over(endpoint, tap, raws)
        return bool(raws)

    # The engine also reads the TAP between its wake-ups (EngineCore.drain):
    # on a shared CPU the guest has often answered inside our own write.
    endpoint.attach_poller(poll)
    try:
        while True:
            await endpoint.wait_accepting()  # a rate limit stops the reading, not a queue
            await tap.wait_readable()
            _hand_over(endpoint, tap, tap.read_batch(BATCH_FRAMES))
            endpoint.drain()
    finally:
        endpoint.attach_poller(None)


def _hand_over(endpoint: FrameEndpoint, tap: TapDevice, raws: list[bytes]) -> None:
    """Give the endpoint one read batch, in arrival order."""
    # Runs of frames that share the same checksum status go over together.
    run: list[memoryview] = []
    run_valid = False
    for raw in raws:
        try:
            header, frame = tap.split(raw)
        except ParseError:
            tap.counters.malformed_in += 1
            continue
        valid = _checksum_valid(header)
        if run and valid != run_valid:
            endpoint.send_batch_nowait(run, checksum_valid=run_valid)
            run = []
        run_valid = valid
        if header is not None and header.gso is GsoType.UDP_L4:
            try:
                run.extend(split_udp_super_frame(frame, header.gso_size))
            except ParseError:
                tap.counters.malformed_in += 1
            continue
        run.append(frame)
    if run:
        endpoint.send_batch_nowait(run, checksum_valid=run_valid)


def split_udp_super_frame(frame: memoryview, gso_size: int) -> list[memoryview]:
    """Cut a USO super-frame into the datagrams the guest sent.

    With UDP segmentation offload a guest hands over many datagrams of
    ``gso_size`` bytes (the last may be shorter) under one set of headers;
    each is its own datagram to the receiver, so each becomes its own frame.
    The transport checksum is left partial: the caller marks these frames
    checksum-valid, as the guest's NEEDS_CSUM said.
    """
    eth, packet = parse_ethernet(frame)
    if gso_size <= 0:
        raise ParseError("udp gso: gso_size 0")
    if eth.ethertype == ETHERTYPE_IPV4:
        ip4, body = parse_ipv4(packet)
        src, dst = ip4.src, ip4.dst
    elif eth.ethertype == ETHERTYPE_IPV6:
        ip6, body = parse_ipv6(packet)
        src, dst = ip6.src, ip6.dst
    else:
        raise ParseError("udp gso: not IP")
    udp, payload = parse_udp(body, None)
    frames: list[memoryview] = []
    for offset in range(0, len(payload), gso_size):
        chunk = payload[offset : offset + gso_size]
        if eth.ethertype == ETHERTYPE_IPV4:
            head = build_ipv4_frame(
                eth.src, eth.dst, src, dst, udp, payload=chunk, partial_checksum=True
            )
        else:
            head = build_ipv6_frame(
                eth.src, eth.dst, src, dst, udp, payload=chunk, partial_checksum=True
            )
        head += chunk
        frames.append(memoryview(head))
    return frames
