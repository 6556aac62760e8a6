"""Capture every frame between a link and the engine, in classic pcap format.

The capture sits at the link/engine boundary, wrapping the engine's frame
endpoint: :class:`PcapEndpoint` records each batch and passes it on. Without
``--pcap`` nothing is wrapped, so the uncaptured path costs nothing.

What is recorded is what crossed the boundary: with TAP offloads on, TCP
super-frames (up to ~64 KB, one record each) and checksums the guest left
partial, exactly as ``tcpdump -i`` shows them on an interface with TSO. Use
``--no-offload`` for MTU-sized frames with complete checksums.

Records are buffered and written with ordinary blocking writes to a local
file (a few hundred bytes to 64 KB at a time); :meth:`PcapWriter.close`
flushes.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import BinaryIO, Final

from trionet.links.endpoint import FrameEndpoint, FrameSink
from trionet.stack.flows import OffloadFrame, OutFrame

__all__ = ["LINKTYPE_ETHERNET", "PcapEndpoint", "PcapWriter"]

LINKTYPE_ETHERNET: Final = 1
#: Large enough for a 64 KB super-frame (tcpdump's own default snaplen).
SNAPLEN: Final = 262144
_FILE_HEADER: Final = struct.Struct("<IHHiIII")
_RECORD_HEADER: Final = struct.Struct("<IIII")
_MAGIC_MICROSECONDS: Final = 0xA1B2C3D4


class PcapWriter:
    """Writes a pcap file: one global header, then (record header, frame) pairs."""

    def __init__(self, file: BinaryIO, *, clock: Callable[[], float] = time.time) -> None:
        self._file = file
        self._clock = clock
        self.records = 0
        file.write(_FILE_HEADER.pack(_MAGIC_MICROSECONDS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))

    @classmethod
    def create(cls, path: str) -> PcapWriter:
        return cls(open(path, "wb"))

    def write_frames(
        self, frames: Iterable[bytes | bytearray | memoryview | OffloadFrame]
    ) -> None:
        """Record ``frames`` with one timestamp (they crossed the boundary together)."""
        now = self._clock()
        seconds = int(now)
        micros = int((now - seconds) * 1_000_000)
        write = self._file.write
        pack = _RECORD_HEADER.pack
        count = 0
        for frame in frames:
            if isinstance(frame, OffloadFrame):
                size = len(frame.head) + len(frame.payload)
                parts: tuple[bytes | bytearray | memoryview, ...] = (frame.head, frame.payload)
            else:
                size = len(frame)
                parts = (frame,)
            captured = min(size, SNAPLEN)
            write(pack(seconds, micros, captured, size))
            remaining = captured
            for part in parts:
                chunk = part[:remaining]
                write(chunk)
                remaining -= len(chunk)
            count += 1
        self.records += count

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class PcapEndpoint:
    """An endpoint that records both directions into ``writer``, then delegates."""

    def __init__(self, endpoint: FrameEndpoint, writer: PcapWriter) -> None:
        self._endpoint = endpoint
        self._writer = writer

    def send_batch_nowait(
        self, frames: Iterable[bytes | memoryview], *, checksum_valid: bool = False
    ) -> None:
        frames = list(frames)
        self._writer.write_frames(frames)
        self._endpoint.send_batch_nowait(frames, checksum_valid=checksum_valid)

    async def wait_accepting(self) -> None:
        await self._endpoint.wait_accepting()

    def attach_sink(self, sink: FrameSink | None) -> None:
        if sink is None:
            self._endpoint.attach_sink(None)
            return
        write_frames = self._writer.write_frames

        def recording_sink(frames: Sequence[OutFrame]) -> None:
            write_frames(frames)
            sink(frames)

        self._endpoint.attach_sink(recording_sink)

    def enable_offload(self, *, tso4: bool, tso6: bool) -> None:
        self._endpoint.enable_offload(tso4=tso4, tso6=tso6)

    def attach_poller(self, poller: Callable[[], bool] | None) -> None:
        self._endpoint.attach_poller(poller)

    def drain(self) -> None:
        self._endpoint.drain()

    async def receive_batch(self, max_frames: int = 64) -> list[bytes]:
        frames = await self._endpoint.receive_batch(max_frames)
        self._writer.write_frames(frames)
        return frames

    def receive_batch_nowait(self, max_frames: int = 64) -> list[bytes]:
        frames = self._endpoint.receive_batch_nowait(max_frames)
        self._writer.write_frames(frames)
        return frames
