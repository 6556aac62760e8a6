"""The side-by-side topology: a "host" namespace, a "guest" namespace, and one stack between.

Every stack under test is set up the same way: the servers listen on the host
namespace's loopback (0.0.0.0, so the kernel veth ceiling reaches them too),
the guest namespace has one interface, and nothing is routed to the machine's
real network. What differs is what carries the guest's frames:

- ``veth``: a kernel veth pair, host end 10.0.2.2 (no userspace hop: the ceiling);
- ``slirp4netns``: ``slirp4netns --configure --mtu=N --netns-type=path NS tap0``, run
  in the host namespace; it maps its gateway 10.0.2.2 to the host's loopback;
- ``pasta``: ``pasta --config-net -f --netns NS -T none -U none -t none -u none``,
  run in the host namespace. pasta copies the host's address and default
  route into the guest, so the host namespace gets a veth pair (both ends
  stay inside it) carrying 10.0.2.15/24 and a default route via 10.0.2.2;
  pasta's default ``map-gw`` then sends the guest's connections to 10.0.2.2
  to the host's loopback, which is what the workloads dial;
- ``trionet``: ``benchmarks/trionet_runner.py`` in its own process; its gateway
  (172.16.0.1 for slot 0) stands for the host's loopback.

Every process is started with a parent-death signal and every namespace is
deleted in ``finally`` blocks, so nothing outlives the driver, even if it is
killed (stale namespaces of dead drivers are swept at the next start).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.netns import Netns, create_netns, delete_netns, sweep_stale_netns
from trionet.addressing import HostRoutes, derive_addressing
from trionet.config import InterfaceOverrides, NetworkConfig

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROBE = str(HERE / "tcp_probe.py")
RELAY = str(HERE / "relay_floor.py")
IPERF_PORT = 5201
ECHO_PORT = 5300
HOLD_PORT = 5400
RELAY_PORT = 5301
#: Published-port mode: the host ports each stack forwards to the guest's servers.
PUBLISHED_IPERF_PORT = 15201
PUBLISHED_ECHO_PORT = 15300
PIN = ["taskset", "-c", "0"]

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec; survives the execs of
    # `ip netns exec` and `taskset`, so the real program gets it.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True, slots=True)
class Case:
    """One stack configuration: the unit a row of the table compares."""

    stack: str  # veth | slirp4netns | pasta | trionet
    mtu: int
    offload: bool = True  # trionet only: TAP virtio-net offloads
    pinned: bool = True
    relay: str | None = None  # veth only: put benchmarks/relay_floor.py (trio|selectors) between
    #: Published-port mode: servers in the guest, clients on the host's
    #: loopback through each stack's port forwarding (trionet -p, slirp4netns
    #: add_hostfwd, pasta -t); veth dials the guest directly (the ceiling).
    publish: bool = False

    @property
    def label(self) -> str:
        if self.publish:
            name = (
                "trionet-nooffload" if self.stack == "trionet" and not self.offload else self.stack
            )
            return f"{name} -p"
        if self.stack == "trionet" and not self.offload:
            return "trionet-nooffload"
        if self.relay is not None:
            return f"{self.stack}+{self.relay}-relay"
        return self.stack


@dataclass
class Lab:
    """A running topology: where the guest dials, and the processes to stop."""

    case: Case
    host: Netns
    guest: Netns
    target: str
    echo_port: int = ECHO_PORT  # where the RR and connection-rate probes dial
    iperf_port: int = IPERF_PORT  # where iperf3 dials
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stack_pid: int | None = None  # the userspace stack's process, if any
    stats_path: Path | None = None  # trionet: where the runner writes its counters at exit

    def prefix(self) -> list[str]:
        return PIN if self.case.pinned else []

    def guest_argv(self, argv: Sequence[str]) -> list[str]:
        return self.guest.exec_argv([*self.prefix(), *argv])

    def host_argv(self, argv: Sequence[str]) -> list[str]:
        return self.host.exec_argv([*self.prefix(), *argv])

    def client_argv(self, argv: Sequence[str]) -> list[str]:
        """Where the workloads' clients run: the guest, or the host for published ports."""
        return self.host_argv(argv) if self.case.publish else self.guest_argv(argv)

    def server_ns(self) -> Netns:
        return self.guest if self.case.publish else self.host

    def spawn(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = spawn(argv, **kwargs)
        self.processes.append(process)
        return process


def spawn(argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    # preexec_fn is unsafe with threads; the driver starts none.
    return subprocess.Popen(list(argv), preexec_fn=_die_with_parent, **kwargs)  # noqa: PLW1509


def stop(process: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def wait_for_line(process: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> bytes:
    """Read stdout lines until one starts with ``prefix``; raise on EOF or timeout."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    fd = process.stdout.fileno()
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {prefix!r} from {process.args!r} in {timeout} s")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            raise RuntimeError(f"{process.args!r} exited before {prefix!r}")
        buffer += chunk
        for line in buffer.splitlines():
            if line.startswith(prefix):
                return line


def trionet_gateway(mtu: int) -> str:
    config = NetworkConfig(interface=InterfaceOverrides(mtu=mtu))
    addressing = derive_addressing(config, 0, HostRoutes(ipv4=True, ipv6=False))
    assert addressing.ipv4 is not None
    return str(addressing.ipv4.gateway)


def runner_argv(
    host: Netns,
    guest: Netns,
    *,
    mtu: int,
    offload: bool,
    max_connections: int | None = None,
    tap_name: str = "tnb0",
) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.trionet_runner",
        "--host-ns",
        host.name,
        "--guest-ns",
        guest.name,
        "--mtu",
        str(mtu),
        "--tap-name",
        tap_name,
    ]
    if not offload:
        argv.append("--no-offload")
    if max_connections is not None:
        argv += ["--max-connections", str(max_connections)]
    return argv


def start_trionet(
    lab_processes: list[subprocess.Popen[bytes]], argv: list[str]
) -> subprocess.Popen[bytes]:
    """Start a runner (argv already wrapped for its namespace) and wait for READY."""
    process = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO)
    lab_processes.append(process)
    wait_for_line(process, b"READY", 20)
    return process


def _wait_link(ns: Netns, ifname: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ns.ip("-o", "-4", "addr", "show", "dev", ifname, check=False)
        if result.returncode == 0 and "inet " in result.stdout:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{ifname} never came up in {ns.name}")


def _tune_namespace(ns: Netns) -> None:
    # The connection-rate loop leaves one TIME_WAIT socket per connection on
    # whichever side closes first; give both namespaces room for a few runs.
    ns.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65000"])
    ns.run(["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])


def _setup_veth(lab: Lab) -> None:
    mtu = str(lab.case.mtu)
    lab.host.ip("link", "add", "vh", "mtu", mtu, "type", "veth", "peer", "name", "vg")
    lab.host.ip("link", "set", "vg", "netns", lab.guest.name, "name", "eth0")
    lab.host.ip_batch(["address add 10.0.2.2/24 dev vh", "link set vh up"])
    lab.guest.ip_batch(
        [
            f"link set eth0 mtu {mtu}",
            "address add 10.0.2.15/24 dev eth0",
            "link set eth0 up",
            "route add default via 10.0.2.2",
        ]
    )
    lab.target = "10.0.2.15" if lab.case.publish else "10.0.2.2"


def _setup_slirp(lab: Lab) -> None:
    # --exit-fd: slirp4netns quits when our end of this pipe closes (driver death).
    exit_read, exit_write = os.pipe()
    ready_read, ready_write = os.pipe()
    api = Path(tempfile.mkdtemp(prefix="trionet-bench-slirp-")) / "api.sock"
    try:
        argv = lab.host_argv(
            [
                "slirp4netns",
                "--configure",
                f"--mtu={lab.case.mtu}",
                f"--ready-fd={ready_write}",
                f"--exit-fd={exit_read}",
                f"--api-socket={api}",
                "--netns-type=path",
                str(lab.guest.path),
                "tap0",
            ]
        )
        process = spawn(argv, pass_fds=(exit_read, ready_write))
        lab.processes.append(process)
        lab.stack_pid = process.pid
        os.close(ready_write)
        ready_write = -1
        ready, _, _ = select.select([ready_read], [], [], 10)
        if not ready or not os.read(ready_read, 1):
            raise RuntimeError("slirp4netns did not become ready")
        _keep_open.append(exit_write)
        exit_write = -1
    finally:
        for fd in (exit_read, ready_read, ready_write, exit_write):
            if fd >= 0:
                os.close(fd)
    lab.target = "10.0.2.2"
    if lab.case.publish:
        for host_port, guest_port in _forwards():
            _slirp_hostfwd(api, host_port, guest_port)
        lab.target = "127.0.0.1"


def _forwards() -> list[tuple[int, int]]:
    return [(PUBLISHED_IPERF_PORT, IPERF_PORT), (PUBLISHED_ECHO_PORT, ECHO_PORT)]


def _slirp_hostfwd(api: Path, host_port: int, guest_port: int) -> None:
    """slirp4netns's run-time port forwarding (its API socket's add_hostfwd)."""
    request = {
        "execute": "add_hostfwd",
        "arguments": {
            "proto": "tcp",
            "host_addr": "127.0.0.1",
            "host_port": host_port,
            "guest_port": guest_port,
        },
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(api))
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = json.loads(sock.recv(65536) or b"{}")
    if "return" not in reply:
        raise RuntimeError(f"slirp4netns add_hostfwd failed: {reply}")


# Write ends of slirp4netns exit pipes: closed when the lab closes.
_keep_open: list[int] = []


def _setup_pasta(lab: Lab) -> None:
    # pasta derives the guest's address and gateway from the host's default
    # route; give the host namespace one that leads nowhere real.
    lab.host.ip("link", "add", "tnp0", "type", "veth", "peer", "name", "tnp1")
    lab.host.ip_batch(
        [
            "address add 10.0.2.15/24 dev tnp0",
            "link set tnp0 up",
            "link set tnp1 up",
            "route add default via 10.0.2.2 dev tnp0",
        ]
    )
    argv = lab.host_argv(
        [
            "pasta",
            "--config-net",
            "-f",
            "-q",
            "--runas",
            "0",
            "-4",
            "-m",
            str(lab.case.mtu),
            "-T",
            "none",
            "-U",
            "none",
            *(
                [arg for h, g in _forwards() for arg in ("-t", f"{h}:{g}")]
                if lab.case.publish
                else ["-t", "none"]
            ),
            "-u",
            "none",
            "--netns",
            str(lab.guest.path),
        ]
    )
    process = lab.spawn(argv)
    lab.stack_pid = process.pid
    _wait_link(lab.guest, "tnp0")
    lab.target = "127.0.0.1" if lab.case.publish else "10.0.2.2"


def _setup_trionet(lab: Lab) -> None:
    lab.stats_path = Path(tempfile.mkdtemp(prefix="trionet-bench-")) / "stats.json"
    argv = runner_argv(lab.host, lab.guest, mtu=lab.case.mtu, offload=lab.case.offload)
    if lab.case.publish:
        argv += [arg for h, g in _forwards() for arg in ("--publish", f"{h}:{g}")]
    argv = lab.host_argv([*argv, "--stats", str(lab.stats_path)])
    process = start_trionet(lab.processes, argv)
    lab.stack_pid = process.pid
    lab.target = "127.0.0.1" if lab.case.publish else trionet_gateway(lab.case.mtu)


_SETUP = {
    "veth": _setup_veth,
    "slirp4netns": _setup_slirp,
    "pasta": _setup_pasta,
    "trionet": _setup_trionet,
}


@contextlib.contextmanager
def open_lab(case: Case) -> Iterator[Lab]:
    """Build the topology for ``case`` with its servers running; tear it all down after."""
    sweep_stale_netns()
    host = create_netns("bh")
    guest: Netns | None = None
    lab: Lab | None = None
    keep_from = len(_keep_open)
    try:
        guest = create_netns("bg")
        lab = Lab(case, host, guest, target="")
        _tune_namespace(host)
        _tune_namespace(guest)
        _SETUP[case.stack](lab)
        if case.publish:
            _start_guest_servers(lab)
            yield lab
            return
        echo = lab.spawn(
            lab.host_argv([sys.executable, PROBE, "serve", str(ECHO_PORT)]),
            stdout=subprocess.PIPE,
        )
        wait_for_line(echo, b"LISTENING", 10)
        if case.relay is not None:
            relay = lab.spawn(
                lab.host_argv(
                    [sys.executable, RELAY, case.relay, str(RELAY_PORT), str(ECHO_PORT)]
                ),
                stdout=subprocess.PIPE,
            )
            wait_for_line(relay, b"LISTENING", 10)
            lab.echo_port = RELAY_PORT
        lab.spawn(lab.host_argv(["iperf3", "-s", "-p", str(IPERF_PORT)]))
        _wait_listening(host, IPERF_PORT)
        yield lab
    finally:
        if lab is not None:
            for process in reversed(lab.processes):
                stop(process)
        while len(_keep_open) > keep_from:
            os.close(_keep_open.pop())
        if guest is not None:
            delete_netns(guest)
        delete_netns(host)


def _start_guest_servers(lab: Lab) -> None:
    """Published-port mode: the echo and iperf3 servers run in the guest."""
    echo = lab.spawn(
        lab.guest_argv([sys.executable, PROBE, "serve", str(ECHO_PORT)]), stdout=subprocess.PIPE
    )
    wait_for_line(echo, b"LISTENING", 10)
    lab.spawn(lab.guest_argv(["iperf3", "-s", "-p", str(IPERF_PORT)]))
    _wait_listening(lab.guest, IPERF_PORT)
    if lab.case.stack != "veth":
        lab.echo_port, lab.iperf_port = PUBLISHED_ECHO_PORT, PUBLISHED_IPERF_PORT


def _wait_listening(ns: Netns, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ns.run(["ss", "-Hltn", f"sport = :{port}"], check=False)
        if result.stdout.strip():
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} in {ns.name}")
