"""Development sessions: ``nox -s lint tests`` is what CI runs.

Sessions install the project into their own virtualenvs, so a fresh machine
needs nothing but Python and nox. Tests that need system tools (iproute2,
curl, iperf3, ...) install them with apt when run as root and missing; in CI
(TRIONET_REQUIRE_REAL=1) a test whose tool is still missing fails.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

# Debian packages the real-guest tests drive: (command to look for, package).
SYSTEM_TOOLS = [
    ("ip", "iproute2"),
    # The TCP conformance scripts' Linux target sets Reno per namespace.
    ("sysctl", "procps"),
    ("curl", "curl"),
    ("ping", "iputils-ping"),
    # Independent implementations of the stream and datagram link framings.
    ("passt", "passt"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    # The test VM's initramfs (tests/support/qemu_guest.py).
    ("busybox", "busybox-static"),
    ("cpio", "cpio"),
    # Reads trionet run --pcap captures back (tests/test_cli_run.py).
    ("tcpdump", "tcpdump"),
    # The rootless trionet run test: a user nobody, a private mount namespace.
    ("setpriv", "util-linux"),
    ("unshare", "util-linux"),
    # Server and client through published ports (tests/test_cli_ports.py).
    ("iperf3", "iperf3"),
    # Stock DHCP clients and an independent RA parser for the guests that
    # configure themselves (tests/dhcp/test_real_guests.py).
    ("dhclient", "isc-dhcp-client"),
    ("rdisc6", "ndisc6"),
    # The TLS interception tests' guests: openssl s_client (tests/services/).
    ("openssl", "openssl"),
    # DNS interception: the tests' resolvers, and dig in the guests
    # (tests/test_dns_run.py, benchmarks/bench_dns.py).
    ("dnsmasq", "dnsmasq-base"),
    ("dig", "dnsutils"),
]
# What `nox -s bench` compares trionet with (pasta comes with passt, above).
BENCH_TOOLS = [
    ("slirp4netns", "slirp4netns"),
    ("taskset", "util-linux"),
    ("ss", "iproute2"),
    # bench_tls's client loop computes its rates with bc; mitmdump itself
    # goes in a venv of its own (see benchmarks/bench_tls.py).
    ("bc", "bc"),
    # benchmarks/rr_budget.py: the per-round-trip budget's counters and syscall counts.
    ("perf", "linux-perf"),
    ("strace", "strace"),
]
# Where the test VM's kernel is unpacked when /boot has none; kept in step with
# tests/support/qemu_guest.py. Unpacked, not installed: installing a kernel
# package builds an initramfs, which takes minutes.
GUEST_KERNEL_DIR = "/var/cache/trionet-tests/guest-kernel"


def _has_guest_kernel(prefix: str) -> bool:
    for vmlinuz in glob.glob(f"{prefix}/boot/vmlinuz-*"):
        version = vmlinuz.rsplit("/vmlinuz-", 1)[1]
        if glob.glob(f"{prefix}/*lib/modules/{version}/kernel/drivers/net/virtio_net.ko"):
            return True
    return False


def _install_guest_kernel(session: nox.Session) -> None:
    if _has_guest_kernel("") or _has_guest_kernel(GUEST_KERNEL_DIR):
        return
    if os.geteuid() != 0:
        session.warn("not root: cannot unpack a guest kernel; the VM test will skip")
        return
    session.run("sh", "-c", _UNPACK_KERNEL, "sh", GUEST_KERNEL_DIR, external=True)


_UNPACK_KERNEL = """
set -e
# The package lists may never have been fetched on a fresh machine.
apt-get update -qq
pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
tmp=$(mktemp -d)
cd "$tmp"
apt-get download -qq "$pkg"
mkdir -p "$1"
dpkg-deb -x "$tmp"/*.deb "$1"
rm -rf "$tmp"
"""


def _install_system_tools(session: nox.Session, extra: tuple[tuple[str, str], ...] = ()) -> None:
    tools = [*SYSTEM_TOOLS, *extra]
    missing = sorted({pkg for cmd, pkg in tools if shutil.which(cmd) is None})
    if not missing:
        return
    if os.geteuid() != 0:
        session.warn(f"not root: cannot install {missing}; tests needing them will skip")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run(
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        *missing,
        external=True,
        env=env,
    )


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, real-guest tests included (they need root)."""
    _install_system_tools(session)
    _install_guest_kernel(session)
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, and the import-layering contract."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")


@nox.session
def fuzz(session: nox.Session) -> None:
    """Hypothesis fuzz targets over every parser, for a bounded time each."""
    session.install("-e", ".[test]")
    seconds = session.posargs[0] if session.posargs else "20"
    session.run("python", "-m", "fuzz", "--seconds", seconds)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; results land in benchmarks/results/."""
    _install_system_tools(session, tuple(BENCH_TOOLS))
    session.install("-e", ".[test,bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
