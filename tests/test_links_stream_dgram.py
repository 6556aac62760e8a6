"""Stream and datagram links against a frame-level peer over real unix sockets."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import pytest
import trio

from trionet.links.dgram import VFKIT_MAGIC, DgramLink
from trionet.links.framing import encode_frames
from trionet.links.stream import StreamLink, open_unix_stream_listener


def frame(n: int, fill: int = 0xAB) -> bytes:
    return bytes([fill]) * n


BIG = 65 * 1024


# -- stream ------------------------------------------------------------------


async def _stream_pair() -> tuple[StreamLink, trio.SocketStream]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return StreamLink(trio.SocketStream(trio.socket.from_stdlib_socket(a))), trio.SocketStream(
        trio.socket.from_stdlib_socket(b)
    )


def test_stream_framing_both_ways_and_big_frame() -> None:
    async def main() -> None:
        link, peer = await _stream_pair()
        frames = [frame(60, 1), frame(BIG, 2), frame(1514, 3)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peer.send_all, encode_frames(frames))
            got: list[bytes] = []
            while len(got) < 3:
                got += await link.receive_frames()
        assert got == frames
        assert link.counters.frames_in == 3 and link.counters.bytes_in == sum(map(len, frames))

        out = [frame(100, 7), frame(BIG, 8)]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.send_frames, out)
            wire = b""
            expected = encode_frames(out)
            while len(wire) < len(expected):
                wire += await peer.receive_some()
        assert wire == expected
        assert link.counters.frames_out == 2
        await link.aclose()
        await peer.aclose()

    trio.run(main)


def test_stream_partial_reads_byte_by_byte() -> None:
    async def main() -> None:
        link, peer = await _stream_pair()
        wire = encode_frames([frame(20, 1), frame(3000, 2)])

        async def dribble() -> None:
            for i in range(len(wire)):
                await peer.send_all(wire[i : i + 1])
                if i % 500 == 0:
                    await trio.sleep(0.001)

        got: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dribble)
            while len(got) < 2:
                got += await link.receive_frames()
        assert got == [frame(20, 1), frame(3000, 2)]
        await link.aclose()
        await peer.aclose()

    trio.run(main)


def test_stream_malformed_length_drops_connection() -> None:
    async def main() -> None:
        link, peer = await _stream_pair()
        await peer.send_all(encode_frames([frame(60)]) + struct.pack(">I", 0x7FFFFFFF) + b"junk")
        assert await link.receive_frames() == [frame(60)]
        assert await link.receive_frames() == []
        assert link.end_reason is not None and "exceeds" in link.end_reason
        assert link.counters.malformed_in == 1
        # The connection really is gone: the peer sees EOF.
        assert await peer.receive_some() == b""
        assert not await link.send_frames([frame(60)])
        assert link.counters.drops_out == 1
        await peer.aclose()

    trio.run(main)


def test_stream_runt_counted_connection_kept() -> None:
    async def main() -> None:
        link, peer = await _stream_pair()
        await peer.send_all(struct.pack(">I", 0) + encode_frames([frame(5), frame(40)]))
        assert await link.receive_frames() == [frame(40)]
        assert link.end_reason is None and link.counters.malformed_in == 2
        await link.aclose()
        await peer.aclose()

    trio.run(main)


def test_stream_peer_disconnect_clean_and_mid_frame() -> None:
    async def main() -> None:
        link, peer = await _stream_pair()
        await peer.send_all(encode_frames([frame(30)]))
        await peer.aclose()
        assert await link.receive_frames() == [frame(30)]
        assert await link.receive_frames() == []
        assert link.end_reason == "eof"

        link, peer = await _stream_pair()
        await peer.send_all(encode_frames([frame(30)])[:20])
        await peer.aclose()
        assert await link.receive_frames() == []
        assert link.end_reason == "eof inside a frame" and link.counters.malformed_in == 1

        link, peer = await _stream_pair()
        await peer.aclose()
        # Writing to a vanished peer ends the session instead of raising.
        ok = True
        for _ in range(3):
            ok = ok and await link.send_frames([frame(60)])
        assert not ok and link.end_reason is not None
        assert link.counters.drops_out >= 1

    trio.run(main)


def test_stream_listener_at_path(socket_dir: Path) -> None:
    path = socket_dir / "qemu.sock"
    path.touch()
    with pytest.raises(FileExistsError):
        trio.run(open_unix_stream_listener, path)
    path.unlink()

    async def main() -> None:
        listener = await open_unix_stream_listener(path)
        # A stale socket file from an earlier run is replaced.
        listener2 = await open_unix_stream_listener(path)
        await listener.aclose()
        client = await trio.open_unix_socket(str(path))
        link = StreamLink(await listener2.accept())
        await client.send_all(encode_frames([frame(64, 9)]))
        assert await link.receive_frames() == [frame(64, 9)]
        await client.aclose()
        await link.aclose()
        await listener2.aclose()

    trio.run(main)


# -- datagram ----------------------------------------------------------------


def test_dgram_socketpair_frames_both_ways_and_big_frame() -> None:
    async def main() -> None:
        a, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        link = DgramLink(a)
        assert link.peer_known
        for f in (frame(60, 1), frame(BIG, 2)):
            peer.send(f)
        peer.send(VFKIT_MAGIC)  # libkrun may greet even on a connected socket
        peer.send(frame(1514, 3))
        got: list[bytes] = []
        while len(got) < 3:
            got += await link.receive_frames()
        assert got == [frame(60, 1), frame(BIG, 2), frame(1514, 3)]
        assert link.greetings == 1
        assert await link.send_frames([frame(70, 4), frame(BIG, 5)])
        assert peer.recv(BIG + 10) == frame(70, 4)
        assert peer.recv(BIG + 10) == frame(BIG, 5)
        link.close()
        peer.close()

    trio.run(main)


def test_dgram_vfkit_greeting_learns_peer(socket_dir: Path) -> None:
    server_path = str(socket_dir / "gv.sock")

    async def main() -> None:
        link = DgramLink.bind(server_path)
        assert not link.peer_known
        # Nothing to send to yet: dropped, not an error.
        assert not await link.send_frames([frame(60)])
        vm = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        vm.bind(str(socket_dir / "vm.sock"))
        vm.connect(server_path)
        vm.send(VFKIT_MAGIC)
        vm.send(frame(42, 1))
        assert await link.receive_frames() == [frame(42, 1)]
        assert link.peer_known and link.greetings == 1
        assert await link.send_frames([frame(61, 2)])
        assert vm.recv(100) == frame(61, 2)

        # Once connected to the VM, the kernel refuses anyone else's datagrams.
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stranger.bind(str(socket_dir / "x.sock"))
        with pytest.raises(PermissionError):
            stranger.sendto(frame(60), server_path)
        stranger.close()

        # Oversized and runt datagrams are dropped and counted, not fatal.
        vm.send(frame(link_max() + 1))
        vm.send(frame(13))
        vm.send(frame(14, 5))
        assert await link.receive_frames() == [frame(14, 5)]
        assert link.counters.malformed_in == 2

        # The VM going away is seen on the next send; a pending receive then ends.
        vm.close()
        async with trio.open_nursery() as nursery:

            async def receiver() -> None:
                assert await link.receive_frames() == []

            nursery.start_soon(receiver)
            await trio.sleep(0.01)
            assert not await link.send_frames([frame(60)])
        assert link.end_reason is not None and "refused" in link.end_reason.lower()
        assert link.counters.drops_out == 2

    trio.run(main)


def link_max() -> int:
    from trionet.links.framing import MAX_FRAME_SIZE

    return MAX_FRAME_SIZE


def test_dgram_qemu_style_peer_given_and_unbound_sender_ignored(socket_dir: Path) -> None:
    server_path, vm_path = str(socket_dir / "t.sock"), str(socket_dir / "q.sock")

    async def main() -> None:
        vm = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        vm.bind(vm_path)
        link = DgramLink.bind(server_path, peer=vm_path)
        # The link can speak first, as with QEMU's remote= address.
        assert await link.send_frames([frame(60, 3)])
        assert vm.recv(100) == frame(60, 3)
        vm.sendto(frame(50, 4), server_path)
        assert await link.receive_frames() == [frame(50, 4)]
        link.close()
        vm.close()

        # Without a bound address a sender cannot be answered; its datagrams are dropped.
        link = DgramLink.bind(server_path)
        anon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        anon.sendto(frame(60, 5), server_path)
        named = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        named.bind(str(socket_dir / "n.sock"))
        named.sendto(frame(60, 6), server_path)
        assert await link.receive_frames() == [frame(60, 6)]
        assert link.counters.malformed_in == 1
        link.close()
        link.close()
        assert await link.receive_frames() == []
        anon.close()
        named.close()

    trio.run(main)


def test_dgram_rejects_wrong_socket_type() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s, pytest.raises(ValueError):
        DgramLink(s)
    assert os.path.exists("/dev/null")


def test_dgram_named_peer_that_starts_later(socket_dir: Path) -> None:
    server_path, vm_path = str(socket_dir / "t.sock"), str(socket_dir / "q.sock")

    async def main() -> None:
        link = DgramLink.bind(server_path, peer=vm_path)
        assert not link.peer_known
        assert not await link.send_frames([frame(60, 1)])  # the VMM is not there yet
        assert link.counters.drops_out == 1
        # Someone else writing first is not taken for the named peer.
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stranger.bind(str(socket_dir / "x.sock"))
        stranger.sendto(frame(60, 2), server_path)
        vm = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        vm.bind(vm_path)
        vm.sendto(frame(60, 3), server_path)
        assert await link.receive_frames() == [frame(60, 3)]
        assert link.peer_known and link.counters.malformed_in == 1
        assert await link.send_frames([frame(60, 4)])
        assert vm.recv(100) == frame(60, 4)
        link.close()
        vm.close()
        stranger.close()

    trio.run(main)


def test_dgram_first_sender_already_gone_is_dropped_not_fatal(socket_dir: Path) -> None:
    server_path, ghost_path = str(socket_dir / "t.sock"), str(socket_dir / "ghost.sock")

    async def main() -> None:
        link = DgramLink.bind(server_path)
        ghost = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ghost.bind(ghost_path)
        ghost.sendto(frame(60, 1), server_path)
        ghost.close()
        os.unlink(ghost_path)
        with trio.move_on_after(0.2):
            await link.receive_frames()
        assert link.counters.malformed_in == 1 and not link.peer_known
        # The next VMM to come along is still welcome.
        vm = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        vm.bind(str(socket_dir / "vm.sock"))
        vm.sendto(VFKIT_MAGIC, server_path)
        vm.sendto(frame(60, 2), server_path)
        assert await link.receive_frames() == [frame(60, 2)]
        link.close()
        vm.close()

    trio.run(main)
