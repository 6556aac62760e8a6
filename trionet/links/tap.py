"""A Linux TAP device as a frame link, with virtio-net offloads when the kernel has them.

Why offloads matter: with ``IFF_VNET_HDR`` and ``TUNSETOFFLOAD`` the guest's
kernel hands us TCP/UDP super-frames of up to ~64 KB with checksums left
partial, and accepts the same from us, so Python moves a few large frames
instead of many small ones and never checksums payload. See
``trionet.wire.virtio_net`` for the header.

``TUNSETOFFLOAD`` only governs what the kernel may *send us* (it sets the TAP
netdev's "hardware" features). Frames we write may use GSO and partial
checksums whenever the vnet header is on, whatever was negotiated.

Header size: 10 bytes. The 12-byte form only adds ``num_buffers``, which a TAP
never fills in (on reads the kernel skips those two bytes without writing
them, so they would be garbage), so it would cost two bytes per frame for
nothing.

The fd is non-blocking and drained in bursts on readiness: one
``wait_readable`` per burst, never one task switch per frame.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import trio

from trionet.links.counters import LinkCounters
from trionet.wire import virtio_net
from trionet.wire.virtio_net import VirtioNetHeader

__all__ = [
    "MAX_READ",
    "TapDevice",
    "TapError",
    "TapOffloads",
]

TUNSETIFF: Final = 0x400454CA
TUNGETIFF: Final = 0x800454D2
TUNGETFEATURES: Final = 0x800454CF
TUNSETOFFLOAD: Final = 0x400454D0
TUNSETVNETHDRSZ: Final = 0x400454D8
TUNGETVNETHDRSZ: Final = 0x800454D7
TUNSETVNETLE: Final = 0x400454DC

IFF_TAP: Final = 0x0002
IFF_NO_PI: Final = 0x1000
IFF_VNET_HDR: Final = 0x4000

TUN_F_CSUM: Final = 0x01
TUN_F_TSO4: Final = 0x02
TUN_F_TSO6: Final = 0x04
TUN_F_USO4: Final = 0x20
TUN_F_USO6: Final = 0x40

IFNAMSIZ: Final = 16
_IFREQ = struct.Struct("16sH22x")

#: Largest read: a 64 KB GSO frame plus Ethernet and vnet headers, with room to spare.
#: A shorter buffer would silently truncate frames.
MAX_READ: Final = 65536 + 1024

#: Offload sets to try, richest first; the kernel refuses bits it does not know.
_OFFLOAD_LADDER: Final = (
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6,
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
    TUN_F_CSUM,
    0,
)

_USO: Final = TUN_F_USO4 | TUN_F_USO6

# Write failures that mean "this frame cannot go now", as a NIC would drop it:
# a full queue, no buffer memory, or an interface that is down.
_DROP_ERRNOS: Final = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO})


class TapError(OSError):
    """The TAP could not be set up; the message says which step failed."""


@dataclass(frozen=True, slots=True)
class TapOffloads:
    """What the kernel agreed to hand us: partial checksums, TCP and UDP super-frames."""

    csum: bool = False
    tso4: bool = False
    tso6: bool = False
    uso: bool = False

    @classmethod
    def from_bits(cls, bits: int) -> TapOffloads:
        return cls(
            csum=bool(bits & TUN_F_CSUM),
            tso4=bool(bits & TUN_F_TSO4),
            tso6=bool(bits & TUN_F_TSO6),
            uso=bool(bits & TUN_F_USO4) and bool(bits & TUN_F_USO6),
        )


NO_OFFLOADS: Final = TapOffloads()


class TapDevice:
    """One TAP queue: reads and writes whole frames, prefixed by a vnet header when on."""

    def __init__(self, fd: int, name: str, vnet_hdr_size: int, offloads: TapOffloads) -> None:
        """Wrap a configured fd; use :meth:`open` or :meth:`attach` rather than this."""
        self._fd = fd
        self._name = name
        self._vnet_hdr_size = vnet_hdr_size
        self._offloads = offloads
        self.counters = LinkCounters()

    # -- construction --------------------------------------------------------

    @classmethod
    def open(cls, name: str, *, offload: bool = True, uso: bool = True) -> TapDevice:
        """Create (or attach to) the TAP ``name`` in the calling thread's network namespace.

        With ``offload`` the richest offload set the kernel accepts is
        negotiated; if even the vnet header is refused the device falls back
        to plain frames. ``uso=False`` leaves USO out: under USO a guest's
        UDP_SEGMENT sends arrive as one UDP_L4 super-frame that the reader
        must cut into datagrams itself. An empty ``name`` lets the kernel
        pick ``tapN``.
        """
        if len(name.encode()) >= IFNAMSIZ:
            raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes")
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise TapError(exc.errno, f"cannot open /dev/net/tun: {exc.strerror}") from exc
        try:
            want_vnet = offload and bool(_features(fd) & IFF_VNET_HDR)
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if want_vnet else 0)
            try:
                actual = _set_iff(fd, name, flags)
            except OSError as exc:
                if not want_vnet or exc.errno != errno.EINVAL:
                    raise TapError(
                        exc.errno, f"TUNSETIFF {name!r} failed: {exc.strerror}"
                    ) from exc
                # A kernel or an existing persistent TAP without vnet header support.
                actual = _set_iff(fd, name, IFF_TAP | IFF_NO_PI)
                want_vnet = False
            return cls._configure(fd, actual, vnet=want_vnet, offload=offload, uso=uso)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def attach(cls, fd: int, *, offload: bool = True, uso: bool = True) -> TapDevice:
        """Take ownership of an already-configured TAP fd (from a parent, a VMM, a test).

        Its name and flags are read back with ``TUNGETIFF``. If it was opened
        with ``IFF_VNET_HDR`` the header size is set to 10 and offloads are
        negotiated again (there is no ioctl to read them back). The fd is made
        non-blocking; it is closed by :meth:`close`. If attaching fails the
        fd stays the caller's.
        """
        buf = fcntl.ioctl(fd, TUNGETIFF, _IFREQ.pack(b"", 0))
        raw_name, flags = _IFREQ.unpack(buf)
        if not flags & IFF_TAP:
            raise TapError(errno.EINVAL, "fd is a TUN (layer 3) device, not a TAP")
        if not flags & IFF_NO_PI:
            raise TapError(errno.EINVAL, "TAP fd carries packet-info headers (no IFF_NO_PI)")
        os.set_blocking(fd, False)
        name = raw_name.rstrip(b"\0").decode()
        return cls._configure(fd, name, vnet=bool(flags & IFF_VNET_HDR), offload=offload, uso=uso)

    @classmethod
    def _configure(cls, fd: int, name: str, *, vnet: bool, offload: bool, uso: bool) -> TapDevice:
        if not vnet:
            return cls(fd, name, 0, NO_OFFLOADS)
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", virtio_net.HEADER_SIZE))
        try:
            fcntl.ioctl(fd, TUNSETVNETLE, struct.pack("i", 1))
        except OSError as exc:
            # Kernels without the ioctl are little-endian-native hosts anyway.
            if exc.errno not in (errno.EINVAL, errno.ENOTTY):
                raise
        bits = 0
        ladder = _OFFLOAD_LADDER if uso else tuple(c for c in _OFFLOAD_LADDER if not c & _USO)
        for candidate in ladder if offload else (0,):
            try:
                fcntl.ioctl(fd, TUNSETOFFLOAD, candidate)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                continue
            bits = candidate
            break
        return cls(fd, name, virtio_net.HEADER_SIZE, TapOffloads.from_bits(bits))

    # -- properties ----------------------------------------------------------

    @property
    def name(self) -> str:
        """The interface name when the device was opened (a later rename is not seen)."""
        return self._name

    @property
    def vnet_hdr_size(self) -> int:
        """Bytes of virtio-net header before each frame: 10, or 0 for plain frames."""
        return self._vnet_hdr_size

    @property
    def offloads(self) -> TapOffloads:
        return self._offloads

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        if self._fd < 0:
            raise trio.ClosedResourceError("TAP device is closed")
        return self._fd

    # -- frames --------------------------------------------------------------

    def read_batch(self, max_frames: int = 64) -> list[bytes]:
        """Read up to ``max_frames`` ready frames without blocking; [] when none is ready.

        Each item is one raw read, vnet header included when there is one;
        :meth:`split` separates them. Bounded so one busy guest cannot starve
        the rest of the engine.
        """
        fd = self.fileno()
        frames: list[bytes] = []
        read = os.read
        total = 0
        try:
            while len(frames) < max_frames:
                data = read(fd, MAX_READ)
                frames.append(data)
                total += len(data)
        except BlockingIOError:
            pass
        except OSError:
            # Deliver what was read; the error (say, the device was deleted) recurs next call.
            if not frames:
                raise
        self.counters.frames_in += len(frames)
        self.counters.bytes_in += total - len(frames) * self._vnet_hdr_size
        return frames

    def split(self, raw: bytes) -> tuple[VirtioNetHeader | None, memoryview]:
        """Split one read into its vnet header (None without one) and the Ethernet frame.

        Raises :class:`~trionet.wire.errors.ParseError` for a malformed header
        or one pointing outside the frame.
        """
        if self._vnet_hdr_size == 0:
            return None, memoryview(raw)
        header, frame = virtio_net.split(raw, self._vnet_hdr_size)
        header.check_frame(len(frame))
        return header, frame

    def write(self, parts: Sequence[bytes | bytearray | memoryview]) -> bool:
        """Write one frame given as parts (vnet header first when on), unjoined.

        Returns False, counting a drop, when the kernel cannot take it now: the
        TAP's queue is full (EAGAIN), out of buffers, or the interface is down.
        A TAP is a NIC and the guest's TCP retransmits, so dropping is the
        honest behaviour; blocking the engine on one guest's queue is not.
        Other errors (such as EINVAL for a header the kernel rejects) are bugs
        in the caller and propagate.
        """
        try:
            written = os.writev(self.fileno(), parts)
        except OSError as exc:
            if exc.errno in _DROP_ERRNOS:
                self.counters.drops_out += 1
                return False
            raise
        self.counters.frames_out += 1
        self.counters.bytes_out += written - self._vnet_hdr_size
        return True

    async def wait_readable(self) -> None:
        """Sleep until a frame can be read; raises trio.ClosedResourceError if closed meanwhile."""
        await trio.lowlevel.wait_readable(self.fileno())

    async def wait_writable(self) -> None:
        """Sleep until the TAP queue has room (for callers that prefer waiting to dropping)."""
        await trio.lowlevel.wait_writable(self.fileno())

    def close(self) -> None:
        """Close the fd (a non-persistent TAP then disappears); safe to call twice.

        Tasks blocked in :meth:`wait_readable` are woken with
        ``trio.ClosedResourceError`` instead of waiting on a dead, or worse a
        reused, fd number.
        """
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        # Outside trio.run nobody can be waiting on it, and trio says so with RuntimeError.
        with contextlib.suppress(RuntimeError):
            trio.lowlevel.notify_closing(fd)
        os.close(fd)

    def __enter__(self) -> TapDevice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<TapDevice {self._name!r} fd={self._fd} vnet_hdr={self._vnet_hdr_size} "
            f"{self._offloads}>"
        )


def _features(fd: int) -> int:
    try:
        buf = fcntl.ioctl(fd, TUNGETFEATURES, struct.pack("I", 0))
    except OSError:
        return 0
    return int(struct.unpack("I", buf)[0])


def _set_iff(fd: int, name: str, flags: int) -> str:
    buf = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
    raw_name: bytes = _IFREQ.unpack(buf)[0]
    return raw_name.rstrip(b"\0").decode()
