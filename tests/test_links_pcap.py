"""The pcap writer and the capturing endpoint, read back by scapy (an independent reader)."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import trio
from scapy.utils import rdpcap

from trionet.links.pcap import SNAPLEN, PcapEndpoint, PcapWriter
from trionet.stack.flows import OffloadFrame, OutFrame

FRAME_A = bytes(range(60))
FRAME_B = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + b"z" * 28


def test_header_and_records_read_back(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    writer = PcapWriter(path.open("wb"), clock=lambda: 1700000000.25)
    offload = OffloadFrame(
        vnet=bytes(10), head=bytearray(b"H" * 54), payload=memoryview(b"P" * 3000)
    )
    writer.write_frames([FRAME_A, memoryview(FRAME_B), offload])
    writer.close()
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == [FRAME_A, FRAME_B, b"H" * 54 + b"P" * 3000]
    assert float(packets[0].time) == 1700000000.25
    raw = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", raw[:24])
    assert (magic, major, minor, snaplen, linktype) == (0xA1B2C3D4, 2, 4, SNAPLEN, 1)


def test_frames_beyond_snaplen_are_truncated_with_their_length_kept() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer, clock=lambda: 0.0)
    big = OffloadFrame(vnet=bytes(10), head=b"h" * 100, payload=b"p" * SNAPLEN)
    writer.write_frames([big])
    captured, original = struct.unpack("<II", buffer.getvalue()[24 + 8 : 24 + 16])
    assert (captured, original) == (SNAPLEN, SNAPLEN + 100)
    assert len(buffer.getvalue()) == 24 + 16 + SNAPLEN


class FakeEndpoint:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.sink: object = None
        self.queue = [FRAME_B]

    def send_batch_nowait(
        self, frames: Iterable[bytes | memoryview], *, checksum_valid: bool = False
    ) -> None:
        self.sent.extend(bytes(f) for f in frames)

    def attach_sink(self, sink: object) -> None:
        self.sink = sink

    def enable_offload(self, *, tso4: bool, tso6: bool) -> None:
        pass

    async def receive_batch(self, max_frames: int = 64) -> list[bytes]:
        await trio.lowlevel.checkpoint()
        return self.receive_batch_nowait(max_frames)

    def receive_batch_nowait(self, max_frames: int = 64) -> list[bytes]:
        batch, self.queue = self.queue[:max_frames], self.queue[max_frames:]
        return batch


def test_endpoint_records_both_directions_and_delegates(tmp_path: Path) -> None:
    path = tmp_path / "both.pcap"
    writer = PcapWriter.create(str(path))
    inner = FakeEndpoint()
    endpoint = PcapEndpoint(inner, writer)
    endpoint.send_batch_nowait(iter([FRAME_A]))  # guest -> engine (a one-shot iterable)
    delivered: list[OutFrame] = []

    def sink(frames: Sequence[OutFrame]) -> None:
        delivered.extend(frames)

    endpoint.attach_sink(sink)
    assert callable(inner.sink)
    inner.sink([FRAME_B])  # engine -> guest through the sink
    assert trio.run(endpoint.receive_batch, 8) == [FRAME_B]  # and through the queue
    endpoint.attach_sink(None)
    assert inner.sink is None
    writer.close()
    assert inner.sent == [FRAME_A]
    assert delivered == [FRAME_B]
    assert [bytes(p) for p in rdpcap(str(path))] == [FRAME_A, FRAME_B, FRAME_B]
