"""Signals with their sender, read from a signalfd under Trio.

``trionet run`` must forward SIGINT and SIGTERM to CMD, but a Ctrl-C typed in
a terminal already reaches CMD: the terminal signals its whole foreground
process group, which CMD shares with trionet. Forwarding that one too would
deliver it twice (a REPL would see two interrupts). Telling the two apart
needs the sender, which only ``siginfo`` carries (``si_code`` is SI_KERNEL
for terminal-generated signals); Python's handlers do not see it, a signalfd
does. sudo relays signals by the same rule.

The signals must be blocked in every thread before any thread starts, or the
kernel may deliver one to a thread that does not block it: call
:func:`block` before ``trio.run``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import trio

__all__ = ["SI_KERNEL", "SignalFd", "SignalInfo", "block"]

SI_KERNEL: Final = 0x80
SFD_NONBLOCK: Final = 0o4000
SFD_CLOEXEC: Final = 0o2000000
#: struct signalfd_siginfo: ssi_signo, ssi_errno, ssi_code, ssi_pid, then padding to 128.
_SIGINFO = struct.Struct("=IiiI112x")

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class SignalInfo:
    signo: int
    code: int
    pid: int

    @property
    def from_terminal(self) -> bool:
        """Sent by the kernel (a terminal's Ctrl-C), not by kill(2) from a process."""
        return self.code == SI_KERNEL


def block(signals: Iterable[int]) -> None:
    """Block ``signals`` in the calling thread (and in every thread it starts later)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signals))


class SignalFd:
    """A non-blocking signalfd for blocked signals; close it when done."""

    def __init__(self, signals: Iterable[int]) -> None:
        mask = bytearray(128)  # sigset_t as the kernel lays it out: bit signo-1
        for signo in signals:
            mask[(signo - 1) // 8] |= 1 << ((signo - 1) % 8)
        buffer = ctypes.create_string_buffer(bytes(mask), 128)
        fd = _libc.signalfd(-1, buffer, SFD_NONBLOCK | SFD_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"signalfd: {os.strerror(err)}")
        self._fd: int = fd

    async def receive(self) -> SignalInfo:
        """Wait for the next signal."""
        while True:
            try:
                data = os.read(self._fd, _SIGINFO.size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._fd)
                continue
            signo, _errno, code, pid = _SIGINFO.unpack(data)
            return SignalInfo(signo, code, pid)

    def close(self) -> None:
        if self._fd >= 0:
            trio.lowlevel.notify_closing(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SignalFd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
