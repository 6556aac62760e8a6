"""``trionet run -- CMD``: CMD in its own network namespace, networked by an engine here.

Design (see docs/run.md): this process never changes namespace. It starts
:mod:`trionet.cli.nsexec` as a child, which unshares a network and a mount
namespace (and a user namespace when we are not root), creates the TAP
``eth0`` *inside* it, configures it, bind-mounts resolv.conf and hosts, and
passes the TAP's fd back over a socket. This process attaches that fd to an
engine whose host sockets are therefore in the caller's namespace, says
``go``, and the child execs CMD. Creating the TAP inside the namespace (as
pasta does) rather than moving one in is what makes the unprivileged case
work: a user namespace may make TAPs in its own network namespace but may
not move devices out of the caller's.

The child is spawned with a plain ``Popen`` on the main thread (not
``trio.run_process``, which forks from a worker thread): the parent-death
signal CMD inherits is tied to the thread that forked it, and a worker thread
can retire while CMD still runs.

Teardown: when CMD exits (or a signal aborts the set-up) any process still in
CMD's network namespace is killed, so the namespace, its mount namespace and
its TAP disappear; then the engine shuts down and closes the TAP fd.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trio

from trionet.addressing import GuestAddressing, derive_addressing
from trionet.cli.audit_file import AuditWriter
from trionet.cli.errors import first_leaf
from trionet.cli.guest_setup import hosts_file, ip_commands, resolv_conf
from trionet.cli.logs import log_event
from trionet.cli.options import NetworkChoice
from trionet.cli.signals import SignalFd, block
from trionet.links.endpoint import FrameEndpoint
from trionet.links.pcap import PcapEndpoint, PcapWriter
from trionet.links.tap import TapDevice, TapError
from trionet.links.tap_link import run_tap_link
from trionet.network import open_network
from trionet.services.ports import PublishError

if TYPE_CHECKING:
    # cryptography loads only for a run with TLS interception (see trionet/__init__.py).
    from trionet.tls.certs import CertificateAuthority

__all__ = ["RunError", "RunOptions", "run"]

EXIT_SETUP_FAILED: Final = 125
#: CMD was killed because the engine terminated the sandbox (a secret violation).
EXIT_TERMINATED: Final = 128 + signal.SIGKILL
#: What CMD's TLS libraries are pointed at; the bundle is bind-mounted over it.
CA_BUNDLE_ENV: Final = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
)
FORWARDED: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: The child needs a Python start-up, an unshare and one ip process: well under a second.
SETUP_TIMEOUT: Final = 20.0
_HELPER: Final = Path(__file__).with_name("nsexec.py")

logger = logging.getLogger("trionet.run")


class RunError(Exception):
    """trionet run could not start CMD; the message is one line for the user."""

    def __init__(self, message: str, status: int = EXIT_SETUP_FAILED) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class GuestTrust:
    """What CMD gets so that it trusts trionet's interception CA without extra steps."""

    ca: CertificateAuthority
    #: the system bundle path in CMD's mount namespace, and what is mounted over it
    bundle_path: str | None
    bundle: str

    @classmethod
    def build(cls, ca: CertificateAuthority) -> GuestTrust:
        from trionet.services.tls_files import SYSTEM_BUNDLES, host_trust_ders
        from trionet.tls.certs import dedupe_pem_bundle

        host_roots = dedupe_pem_bundle(host_trust_ders()) or b""
        path = next((p for p in SYSTEM_BUNDLES if os.path.isfile(p)), None)
        return cls(ca, path, (host_roots + ca.cert_pem).decode("ascii"))

    def env(self) -> dict[str, str]:
        if self.bundle_path is None:
            return {}
        return dict.fromkeys(CA_BUNDLE_ENV, self.bundle_path)


@dataclass(frozen=True, slots=True)
class RunOptions:
    network: NetworkChoice
    command: list[str]
    offload: bool = True
    pcap: str | None = None


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name.replace(".", "/")).read_text().strip()
    except OSError:
        return None


def preflight(userns: bool) -> None:
    """Say exactly why this machine cannot run CMD networked, and what to change."""
    uid = os.getuid()
    if not os.path.exists("/dev/net/tun"):
        raise RunError("/dev/net/tun does not exist: load the tun module (modprobe tun)")
    if userns:
        checks = (
            ("user.max_user_namespaces", "0", "15000"),
            ("kernel.unprivileged_userns_clone", "0", "1"),
            ("kernel.apparmor_restrict_unprivileged_userns", "1", "0"),
        )
        for name, blocked, allowed in checks:
            if _read_sysctl(name) == blocked:
                raise RunError(
                    f"unprivileged user namespaces are disabled ({name} = {blocked}): "
                    f"run as root, or allow them with: sysctl -w {name}={allowed}"
                )
        if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
            raise RunError(
                f"/dev/net/tun is not readable and writable by uid {uid}: run as root, "
                "or make it so with: chmod 0666 /dev/net/tun"
            )
    if shutil.which("ip") is None:
        raise RunError("the ip command is not installed: apt-get install iproute2")


def run(options: RunOptions) -> int:
    """Run CMD to completion; return its exit status (128+N if a signal N ended it).

    For the ``trionet run`` process only: it leaves SIGINT, SIGTERM and SIGHUP
    blocked, since the process is about to exit with the returned status.
    """
    userns = os.geteuid() != 0
    preflight(userns)
    choice = options.network
    addressing = derive_addressing(choice.config, choice.slot, choice.routes)
    pcap = None
    if options.pcap is not None:
        try:
            pcap = PcapWriter.create(options.pcap)
        except OSError as exc:
            raise RunError(f"cannot write {options.pcap}: {exc.strerror}", 2) from exc
    trust = None
    if choice.config.tls.enabled:
        from trionet.services.tls_files import load_or_create_ca
        from trionet.tls.certs import CaError

        try:
            trust = GuestTrust.build(load_or_create_ca(choice.config.tls))
        except CaError as exc:
            if pcap is not None:
                pcap.close()
            raise RunError(f"the TLS interception CA: {exc}", 2) from exc
    audit = None
    if choice.audit is not None:
        try:
            audit = AuditWriter(choice.audit)
        except OSError as exc:
            if pcap is not None:
                pcap.close()
            raise RunError(f"cannot write {choice.audit}: {exc.strerror}", 2) from exc
    # Blocked until this process exits, deliberately never unblocked: a signal
    # that arrives after CMD's end (while trionet tears down, or while Python
    # exits) must not kill trionet and replace CMD's status with its own.
    block(FORWARDED)
    try:
        return trio.run(
            functools.partial(_run, trust=trust), options, addressing, userns, pcap, audit
        )
    except BaseExceptionGroup as group:
        error = first_leaf(group, RunError)
        if error is None:
            raise
        raise error from None
    finally:
        if pcap is not None:
            pcap.close()
        if audit is not None:
            audit.close()


def _spawn(
    child_sock: socket.socket,
    addressing: GuestAddressing,
    options: RunOptions,
    userns: bool,
    *,
    trust: GuestTrust | None,
    bundle_file: str | None,
) -> subprocess.Popen[bytes]:
    files = {
        "/etc/resolv.conf": resolv_conf(addressing),
        "/etc/hosts": hosts_file(addressing),
    }
    copies = {}
    env = dict(os.environ)
    if trust is not None and trust.bundle_path is not None and bundle_file is not None:
        copies[trust.bundle_path] = bundle_file
        env.update(trust.env())
    # The placeholders, never the values: CMD is the guest.
    env.update(options.network.config.secrets.env_vars())
    spec = {
        "sock": child_sock.fileno(),
        "userns": userns,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "vnet": options.offload,
        "ip": ip_commands(addressing),
        "files": files,
        "copies": copies,
        "ppid": os.getpid(),
    }
    argv = [sys.executable, "-I", "-S", str(_HELPER), json.dumps(spec), "--", *options.command]
    return subprocess.Popen(argv, pass_fds=(child_sock.fileno(),), env=env)


async def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(sock, 512, 1)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
            continue
        return message, fds


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def _wait_exit(child: subprocess.Popen[bytes]) -> int:
    pidfd = os.pidfd_open(child.pid)
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        trio.lowlevel.notify_closing(pidfd)
        os.close(pidfd)
    return _exit_status(child.wait())


def _netns_id(pid: int) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _kill_namespace(netns: tuple[int, int]) -> int:
    """SIGKILL every process left in CMD's network namespace (daemons CMD started)."""
    killed = 0
    for _ in range(10):  # bounded: a fork bomb racing us is killed over a few rounds
        found = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _netns_id(int(entry)) == netns:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)
                    found += 1
        killed += found
        if not found:
            break
    return killed


class _Supervisor:
    """The parent's state machine: set-up, then forwarding signals until CMD exits."""

    def __init__(
        self,
        child: subprocess.Popen[bytes],
        options: RunOptions,
        pcap: PcapWriter | None,
        audit: AuditWriter | None,
        trust: GuestTrust | None,
    ) -> None:
        self.child = child
        self.trust = trust
        self.options = options
        self.pcap = pcap
        self.audit = audit
        self.execed = False
        self.status: int | None = None
        self.netns: tuple[int, int] | None = None
        #: Held open so the namespace's identity cannot be reused (and its
        #: processes mistaken) until the last leftover check is done.
        self.netns_fd: int | None = None
        #: When the end began (CMD exited, or a signal aborted the set-up), and
        #: how long closing the TAP took: a slow end shows where its time went.
        self.ending_since: float | None = None
        self.tap_close_seconds = 0.0

    async def watch_signals(self, sigfd: SignalFd, setup_scope: trio.CancelScope) -> None:
        while True:
            info = await sigfd.receive()
            name = signal.Signals(info.signo).name
            if not self.execed:
                log_event(logger, logging.INFO, "run.abort", signal=name)
                self.ending_since = time.monotonic()
                self.status = 128 + info.signo
                setup_scope.cancel()
                return
            if info.from_terminal:
                # The terminal signalled CMD's process group, CMD included.
                log_event(logger, logging.DEBUG, "signal.from_terminal", signal=name)
                continue
            log_event(logger, logging.INFO, "signal.forward", signal=name, sender=info.pid)
            with contextlib.suppress(ProcessLookupError):
                self.child.send_signal(info.signo)

    async def supervise(self, sock: socket.socket, addressing: GuestAddressing) -> int:
        try:
            with trio.fail_after(SETUP_TIMEOUT):
                message, fds = await _receive(sock)
        except trio.TooSlowError:
            raise RunError("the namespace helper did not finish set-up in time") from None
        if not fds:
            reason = message.decode(errors="replace").removeprefix("error ")
            raise RunError(_explain(reason or "the namespace helper exited during set-up"))
        try:
            self.netns_fd = os.open(f"/proc/{self.child.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise RunError(f"cannot open the namespace helper's netns: {exc.strerror}") from exc
        st = os.fstat(self.netns_fd)
        self.netns = (st.st_dev, st.st_ino)
        try:
            tap = TapDevice.attach(fds[0], offload=self.options.offload, uso=False)
        except (OSError, TapError) as exc:
            os.close(fds[0])
            raise RunError(f"cannot use the namespace's TAP: {exc}") from exc
        try:
            return await self._run_engine(sock, tap, self.pcap, addressing)
        finally:
            # The kernel unregisters the TAP here, under its global network
            # lock: on a machine busy making and deleting namespaces this is
            # the one step of the end that can wait (logged in run.teardown).
            started = time.monotonic()
            tap.close()
            self.tap_close_seconds = time.monotonic() - started

    async def _run_engine(
        self,
        sock: socket.socket,
        tap: TapDevice,
        pcap: PcapWriter | None,
        addressing: GuestAddressing,
    ) -> int:
        choice = self.options.network
        try:
            return await self._run_network(sock, tap, pcap, addressing, choice)
        except PublishError as exc:
            raise RunError(str(exc)) from None

    async def _run_network(
        self,
        sock: socket.socket,
        tap: TapDevice,
        pcap: PcapWriter | None,
        addressing: GuestAddressing,
        choice: NetworkChoice,
    ) -> int:
        terminated: list[str] = []
        status: int | None = None
        ca = None if self.trust is None else self.trust.ca
        async with open_network(choice.config, choice.slot, routes=choice.routes, ca=ca) as net:
            # A block-and-terminate violation cancels the network's scope,
            # this block included; CMD is killed below, with the namespace.
            net.termination_handle().set_hook(terminated.append)
            if self.audit is not None:
                net.on_audit(self.audit)
            backend = net.take_backend()
            endpoint: FrameEndpoint = backend if pcap is None else PcapEndpoint(backend, pcap)
            async with trio.open_nursery() as nursery:
                await nursery.start(run_tap_link, endpoint, tap)
                sock.send(b"go")
                message, fds = await _receive(sock)
                for fd in fds:
                    os.close(fd)
                if message:
                    raise _exec_error(message, self.options.command[0])
                self.execed = True
                log_event(
                    logger,
                    logging.INFO,
                    "run.start",
                    pid=self.child.pid,
                    command=self.options.command[0],
                    userns=os.geteuid() != 0,
                    offloads=tap.offloads,
                    ipv4=addressing.ipv4 is not None,
                    ipv6=addressing.ipv6 is not None,
                )
                status = await _wait_exit(self.child)
                self.ending_since = time.monotonic()
                nursery.cancel_scope.cancel()
            if self.netns is not None:
                killed = _kill_namespace(self.netns)
                if killed:
                    log_event(logger, logging.INFO, "run.killed_leftovers", processes=killed)
            log_event(
                logger,
                logging.INFO,
                "run.end",
                status=status,
                **net.metrics_handle().snapshot(),
                tap_malformed_in=tap.counters.malformed_in,
                tap_drops_out=tap.counters.drops_out,
            )
        if terminated:
            # CMD and everything in its namespace are killed by _run's clean-up.
            log_event(logger, logging.ERROR, "run.terminated", reason=terminated[0])
            raise RunError(f"the sandbox was terminated: {terminated[0]}", EXIT_TERMINATED)
        assert status is not None
        return status


def _exec_error(message: bytes, command: str) -> RunError:
    _, err, text = message.decode(errors="replace").split(" ", 2)
    status = 127 if int(err) == errno.ENOENT else 126
    return RunError(f"cannot run {command!r}: {text}", status)


def _explain(reason: str) -> str:
    if "user namespace" in reason and ("not permitted" in reason or "denied" in reason):
        return (
            f"{reason}: this system does not let unprivileged users create user "
            "namespaces; run as root, or allow them (sysctl user.max_user_namespaces, "
            "kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)"
        )
    return reason


async def _run(
    options: RunOptions,
    addressing: GuestAddressing,
    userns: bool,
    pcap: PcapWriter | None,
    audit: AuditWriter | None,
    *,
    trust: GuestTrust | None,
) -> int:
    with SignalFd(FORWARDED) as sigfd, _bundle_file(trust) as bundle_file:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with parent_sock:
            parent_sock.setblocking(False)
            try:
                child = _spawn(
                    child_sock, addressing, options, userns, trust=trust, bundle_file=bundle_file
                )
            finally:
                child_sock.close()
            supervisor = _Supervisor(child, options, pcap, audit, trust)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(supervisor.watch_signals, sigfd, nursery.cancel_scope)
                    supervisor.status = await supervisor.supervise(parent_sock, addressing)
                    nursery.cancel_scope.cancel()
            finally:
                _reap(child, supervisor.netns)
                if supervisor.netns_fd is not None:
                    os.close(supervisor.netns_fd)
                if supervisor.ending_since is not None:
                    log_event(
                        logger,
                        logging.INFO,
                        "run.teardown",
                        ms=round((time.monotonic() - supervisor.ending_since) * 1000),
                        tap_close_ms=round(supervisor.tap_close_seconds * 1000),
                    )
            assert supervisor.status is not None  # set by CMD's exit or by an aborting signal
            return supervisor.status


@contextlib.contextmanager
def _bundle_file(trust: GuestTrust | None) -> Iterator[str | None]:
    """The CA bundle in a private temporary file, for the helper to copy; removed after."""
    if trust is None or trust.bundle_path is None:
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="trionet-ca-bundle-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(trust.bundle)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _reap(child: subprocess.Popen[bytes], netns: tuple[int, int] | None) -> None:
    """Make sure the helper or CMD is gone and waited for, whatever happened.

    A signal may abort the set-up after the helper made its namespace but
    before it reported it: the namespace is then opened from the helper
    itself (before it is killed) and held open until the scan is done, so
    that whatever the helper started there dies too, and the namespace's
    identity cannot pass to another one meanwhile (the kernel reuses a freed
    namespace's inode number at once).
    """
    held: int | None = None
    if netns is None and child.poll() is None:
        with contextlib.suppress(OSError):
            held = os.open(f"/proc/{child.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if held is not None:
            st = os.fstat(held)
            if (st.st_dev, st.st_ino) != _netns_id(os.getpid()):
                netns = (st.st_dev, st.st_ino)
    try:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            child.wait()
        if netns is not None:
            _kill_namespace(netns)
    finally:
        if held is not None:
            os.close(held)
