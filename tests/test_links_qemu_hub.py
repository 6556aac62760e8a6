"""StreamLink and DgramLink against QEMU's own ``-netdev stream`` and ``-netdev dgram``.

No guest is booted: ``-machine none`` with both netdevs on one hub makes QEMU
relay every frame from one backend to the other, so a frame we send on the
stream link must come out of the datagram link byte for byte, and back. QEMU
connects to our stream listener as it would to ``trionet serve
--qemu-stream``, and trades datagrams with our bound socket as with
``--unixgram``. (QEMU pauses its network queues while the VM is stopped, so
no ``-S``.)
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.support.real import need_tool
from trionet.links.dgram import DgramLink
from trionet.links.stream import StreamLink, open_unix_stream_listener

QEMU = "qemu-system-x86_64"


def _require_qemu() -> str:
    return need_tool(QEMU, "qemu-system-x86")


def _frame(size: int, fill: int) -> bytes:
    return (
        b"\x02\x00\x00\x00\x00\x02"
        + b"\x02\x00\x00\x00\x00\x01"
        + b"\x08\x00"
        + bytes([fill]) * (size - 14)
    )


def test_qemu_relays_between_stream_and_dgram_links(socket_dir: Path) -> None:
    qemu = _require_qemu()
    stream_path, ours, theirs = socket_dir / "s.sock", socket_dir / "t.sock", socket_dir / "q.sock"
    argv = [
        qemu,
        "-nodefaults",
        "-display",
        "none",
        "-machine",
        "none",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-netdev",
        f"stream,id=s,server=off,addr.type=unix,addr.path={stream_path}",
        "-netdev",
        f"dgram,id=d,local.type=unix,local.path={theirs},remote.type=unix,remote.path={ours}",
        "-netdev",
        "hubport,id=p1,hubid=0,netdev=s",
        "-netdev",
        "hubport,id=p2,hubid=0,netdev=d",
    ]
    to_dgram = [_frame(60, 1), _frame(65 * 1024, 2), _frame(1514, 3)]
    to_stream = [_frame(64, 4), _frame(65 * 1024, 5)]

    async def main() -> None:
        listener = await open_unix_stream_listener(stream_path)
        dgram = DgramLink.bind(ours, peer=str(theirs))
        assert not dgram.peer_known  # QEMU is not running yet
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: trio.run_process(argv, check=False, capture_stderr=True))
            with trio.fail_after(10):
                stream = StreamLink(await listener.accept())
                # QEMU binds its datagram socket during start-up; until then sends are refused.
                await _wait_for_path(theirs)
                await trio.sleep(0.2)

                assert await stream.send_frames(to_dgram)
                got: list[bytes] = []
                while len(got) < len(to_dgram):
                    got += await dgram.receive_frames()
                assert got == to_dgram

                assert await dgram.send_frames(to_stream)
                got = []
                while len(got) < len(to_stream):
                    got += await stream.receive_frames()
                assert got == to_stream
            assert stream.counters.malformed_in == dgram.counters.malformed_in == 0
            nursery.cancel_scope.cancel()  # stops QEMU
        await stream.aclose()
        dgram.close()
        await listener.aclose()

    trio.run(main)


async def _wait_for_path(path: Path) -> None:
    while not path.exists():
        await trio.sleep(0.02)
