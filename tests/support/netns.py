"""Network namespaces as test guests, configured exactly as a guest init would.

The topology every real-guest test uses: a *host* namespace that plays the
machine trionet runs on (its loopback holds the test's servers; the engine's
sockets and the TAP's fd are created there) and a *guest* namespace whose only
interface, ``eth0``, is the TAP. Nothing touches the machine's real
interfaces, and everything is removed afterwards, even after a crash (stale
namespaces of dead test processes are swept on the next run).

Namespaces are named ``tnt-<pid>-<n><role>`` (``tnt-4242-3g``): short enough
for interface-like limits, unique per process, and the pid lets a later run
recognise leftovers of a process that died.

Switching namespaces: :func:`in_netns` moves only the *calling thread*
(setns(2) on /proc/thread-self), and back on exit. Whatever is created while
inside keeps that namespace for life: sockets, TAP devices (created in the
thread's namespace), and children forked by this thread. So ``with
in_netns(host): trio.run(main)`` runs a whole engine in the host namespace.
Threads that trio starts do *not* inherit it: ``trio.to_thread``,
getaddrinfo for non-numeric names, and notably ``trio.run_process`` /
``trio.lowlevel.open_process``, which spawn from a worker thread. Under trio,
start programs with :meth:`Netns.start` / :meth:`Netns.arun` (``ip netns
exec``) and use numeric addresses.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import itertools
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from trionet.guest_env import GuestNetConfig, parse_guest_env

__all__ = [
    "NETNS_DIR",
    "Netns",
    "configure_guest",
    "create_netns",
    "delete_netns",
    "in_netns",
    "move_link",
    "sweep_stale_netns",
]

NETNS_DIR = Path("/run/netns")
NAME_PREFIX = "tnt-"
_NAME = re.compile(rf"^{NAME_PREFIX}(\d+)-\d+[a-z]*$")
_CLONE_NEWNET = 0x40000000
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass(frozen=True, slots=True)
class Netns:
    """A named network namespace (a bind mount under /run/netns)."""

    name: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n NAME ARGS...``; raise CalledProcessError (with stderr) on failure."""
        return _run(["ip", "-n", self.name, *args], check=check, timeout=10.0)

    def ip_batch(self, commands: Iterable[str]) -> None:
        """Run many ``ip`` commands in one process (``ip -batch``), stopping at the first error."""
        _run(["ip", "-n", self.name, "-batch", "-"], input="\n".join(commands) + "\n")

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 10.0,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a program inside the namespace and wait for it (text output captured)."""
        return _run(self.exec_argv(argv), check=check, timeout=timeout, input=input)

    async def arun(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 10.0,
        check: bool = True,
        stdin: bytes = b"",
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a program inside the namespace under trio; killed if ``timeout`` passes.

        On timeout trio.TooSlowError is raised after the process was killed.
        """
        with trio.fail_after(timeout):
            result: subprocess.CompletedProcess[bytes] = await trio.run_process(
                self.exec_argv(argv),
                stdin=stdin,
                capture_stdout=True,
                capture_stderr=True,
                check=check,
            )
        return result

    async def start(
        self, nursery: trio.Nursery, argv: Sequence[str], **kwargs: Any
    ) -> trio.Process:
        """Start a long-running program in ``nursery``; it is killed when the nursery is cancelled.

        Extra arguments go to ``trio.run_process`` (``check`` defaults to False,
        since such a program usually ends by being killed).
        """
        kwargs.setdefault("check", False)
        process: trio.Process = await nursery.start(
            partial(trio.run_process, self.exec_argv(argv), **kwargs)
        )
        return process

    def enter(self) -> contextlib.AbstractContextManager[None]:
        return in_netns(self)


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 10.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, argv, result.stdout, result.stderr)
    return result


def create_netns(role: str = "") -> Netns:
    """Create a uniquely named namespace with loopback up; the caller must delete it."""
    ns = Netns(f"{NAME_PREFIX}{os.getpid()}-{next(_counter)}{role}")
    _run(["ip", "netns", "add", ns.name])
    try:
        ns.ip("link", "set", "lo", "up")
    except BaseException:
        delete_netns(ns)
        raise
    return ns


def delete_netns(ns: Netns) -> None:
    """Remove the namespace; devices in it vanish with it (a TAP's fd then reads EBADFD)."""
    _run(["ip", "netns", "delete", ns.name], check=False)


def sweep_stale_netns() -> list[str]:
    """Delete test namespaces whose creating process is gone; return their names."""
    swept = []
    for entry in NETNS_DIR.glob(f"{NAME_PREFIX}*") if NETNS_DIR.is_dir() else ():
        match = _NAME.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        delete_netns(Netns(entry.name))
        swept.append(entry.name)
    return swept


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def in_netns(ns: Netns | str) -> Iterator[None]:
    """Move the calling thread into ``ns`` for the block, and back afterwards.

    Only this thread moves; other threads and the process's children started
    from other threads are unaffected.
    """
    path = ns.path if isinstance(ns, Netns) else NETNS_DIR / ns
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(original)


def move_link(src: Netns, ifname: str, dst: Netns, new_name: str = "eth0") -> None:
    """Move interface ``ifname`` from ``src`` into ``dst`` and rename it there, in one step.

    A TAP keeps working through the move: its fd is tied to the device, not to
    a namespace.
    """
    src.ip("link", "set", "dev", ifname, "netns", dst.name, "name", new_name)


def configure_guest(guest: Netns, config: GuestNetConfig | Mapping[str, str]) -> GuestNetConfig:
    """Configure the guest's interface from its ``MSB_NET*`` variables, as a guest init does.

    Loopback up, MAC, MTU, the addresses (IPv6 without duplicate address
    detection, so it is usable at once), link up, default routes via the
    gateways. Accepts the parsed config or the raw variables.
    """
    if not isinstance(config, GuestNetConfig):
        config = parse_guest_env(config)
    dev = config.iface
    commands = [
        "link set dev lo up",
        f"link set dev {dev} address {config.mac} mtu {config.mtu}",
    ]
    for family in (config.ipv4, config.ipv6):
        if family is None:
            continue
        nodad = " nodad" if isinstance(family.interface, ipaddress.IPv6Interface) else ""
        commands.append(f"address add {family.interface} dev {dev}{nodad}")
    commands.append(f"link set dev {dev} up")
    for family in (config.ipv4, config.ipv6):
        if family is not None:
            commands.append(f"route add default via {family.gateway} dev {dev}")
    guest.ip_batch(commands)
    return config


def env_mapping(env: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
    return dict(env.items() if isinstance(env, Mapping) else env)
