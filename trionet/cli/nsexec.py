"""The child side of ``trionet run``: enter new namespaces, make eth0, hand it over, exec CMD.

``trionet run`` starts this file as a script (``python -I nsexec.py SPEC --
CMD...``), never imports it: it must start fast and do nothing between
``unshare`` and ``exec`` that could touch the caller's namespaces, so it uses
the standard library only. The parent never changes namespace itself; that is
what keeps the engine's host sockets in the caller's network namespace and
lets the parent stay an ordinary single-threaded Trio program.

Steps, each reported to the parent over the SOCK_SEQPACKET socket named in
SPEC (``error <text>`` on failure, then exit 125):

1. ``unshare(CLONE_NEWNET | CLONE_NEWNS)``, plus ``CLONE_NEWUSER`` with the
   caller's uid and gid mapped to root when the caller is not root (the
   network namespace is then owned by the user namespace, so creating a TAP
   and configuring it needs no privilege outside it).
2. Mount propagation private, so the bind mounts below never leak out.
3. Create the TAP ``eth0`` inside the new namespace, and configure it with
   ``ip -batch`` exactly as a guest init would.
4. Bind-mount the generated resolv.conf and hosts over /etc's, and with TLS
   interception the CA bundle over the system one. They are written to a
   tmpfs mounted for the purpose in this mount namespace and detached at once
   (the bind mounts keep it alive), never to a shared directory: a SIGKILL at
   any moment leaves no file behind.
5. Send the TAP fd to the parent (SCM_RIGHTS) and wait for ``go``: the engine
   is attached before CMD sends its first packet.
6. exec CMD. The socket is close-on-exec, so the parent sees EOF when the
   exec worked, or ``exec <errno> <text>`` when it did not.

The parent may SIGKILL this process at any step (a signal aborting the
set-up). Everything made here lives in the new namespaces, which die with
their last process; the one other process, ``ip``, dies with this one
(parent-death signal), so nothing outlives an abort.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
EXIT_SETUP_FAILED = 125
SCRATCH = "/tmp"

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """A step failed; the message is the one-line reason the parent prints."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _write_file(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_namespaces(userns: bool, uid: int, gid: int) -> None:
    flags = CLONE_NEWNET | CLONE_NEWNS | (CLONE_NEWUSER if userns else 0)
    _check(_libc.unshare(flags), "unshare" + (" (user namespace)" if userns else ""))
    if userns:
        try:
            # setgroups must be denied before an unprivileged gid_map write.
            _write_file("/proc/self/setgroups", "deny")
            _write_file("/proc/self/uid_map", f"0 {uid} 1")
            _write_file("/proc/self/gid_map", f"0 {gid} 1")
        except OSError as exc:
            raise SetupError(f"mapping uid/gid into the user namespace: {exc.strerror}") from exc
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")


def _create_tap(vnet: bool) -> int:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise SetupError(f"cannot open /dev/net/tun: {exc.strerror}") from exc
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", b"eth0", flags))
    except OSError as exc:
        os.close(fd)
        raise SetupError(f"creating the TAP eth0 (TUNSETIFF): {exc.strerror}") from exc
    return fd


def _die_with_parent() -> None:
    """SIGKILL this process when the process that started it dies."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")


def _configure(commands: list[str]) -> None:
    try:
        result = subprocess.run(
            ["ip", "-batch", "-"],
            input="\n".join(commands) + "\n",
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            # A SIGKILLed helper takes ip with it (single-threaded here, so safe).
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError as exc:
        raise SetupError("the ip command (iproute2) is not installed") from exc
    if result.returncode != 0:
        detail = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise SetupError(f"configuring eth0 with ip: {detail}")


def _bind_files(files: dict[str, str], copies: dict[str, str]) -> None:
    """Mount the given texts, and copies of the given files, over their targets."""
    contents = {target: text.encode() for target, text in files.items()}
    for target, source_path in copies.items():
        # Too big for the spec's argv (the CA bundle): the parent wrote it to a
        # file, read here before the scratch tmpfs below may cover its directory.
        try:
            with open(source_path, "rb") as f:
                contents[target] = f.read()
        except OSError as exc:
            raise SetupError(f"reading {source_path}: {exc.strerror}") from exc
    # A dangling /etc/resolv.conf symlink has nothing to mount over.
    targets = [(target, data) for target, data in contents.items() if os.path.exists(target)]
    if not targets:
        return
    # Any directory will do: the tmpfs covers it only in this mount namespace,
    # and only until the detach below.
    scratch = SCRATCH.encode()
    _check(
        _libc.mount(b"trionet", scratch, b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, b"size=64m"),
        "mounting a scratch tmpfs",
    )
    try:
        for index, (target, data) in enumerate(targets):
            source = f"{SCRATCH}/{index}"
            with open(source, "wb") as f:
                f.write(data)
            os.chmod(source, 0o644)
            _check(
                _libc.mount(source.encode(), target.encode(), None, MS_BIND, None),
                f"bind-mounting {target}",
            )
    finally:
        _libc.umount2(scratch, MNT_DETACH)


def _receive_go(sock: socket.socket) -> None:
    if sock.recv(16) != b"go":
        raise SystemExit(EXIT_SETUP_FAILED)  # the parent gave up (or died)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    command = argv[3:]
    # The parent blocks these to read them from a signalfd; CMD starts clean.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL)
    sock = socket.socket(fileno=spec["sock"])
    os.set_inheritable(sock.fileno(), False)
    try:
        # First: if trionet dies, nobody relays this namespace's traffic (nor
        # tears it down). Then check it did not die before the line above.
        _die_with_parent()
        if os.getppid() != spec["ppid"]:
            return EXIT_SETUP_FAILED
        _enter_namespaces(spec["userns"], spec["uid"], spec["gid"])
        _die_with_parent()  # again: a credential change may clear it (prctl(2))
        tap = _create_tap(spec["vnet"])
        _configure(spec["ip"])
        _bind_files(spec["files"], spec.get("copies", {}))
        socket.send_fds(sock, [b"tap"], [tap])
        os.close(tap)
    except SetupError as exc:
        with contextlib.suppress(OSError):
            sock.send(f"error {exc}".encode())
        return EXIT_SETUP_FAILED
    _receive_go(sock)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        with contextlib.suppress(OSError):
            sock.send(f"exec {exc.errno} {exc.strerror}".encode())
        return 127 if isinstance(exc, FileNotFoundError) else 126
    return EXIT_SETUP_FAILED  # not reached: execvp returns only by raising


if __name__ == "__main__":
    sys.exit(main(sys.argv))
