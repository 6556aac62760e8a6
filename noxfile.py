"""Development sessions: ``nox -s lint tests tests_compiled`` is what CI runs.

Sessions install the project into their own virtualenvs, so a fresh machine
needs nothing but Python and nox. Tests that need system tools (iproute2,
curl, iperf3, ...) install them with apt when run as root and missing; in CI
(TRIONET_REQUIRE_REAL=1) a test whose tool is still missing fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests", "tests_compiled"]
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
    _apt_install(session, sorted({pkg for cmd, pkg in tools if shutil.which(cmd) is None}))


def _apt_install(session: nox.Session, missing: list[str]) -> None:
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
    """The test suite, real-guest tests included (they need root), on pure Python."""
    _install_system_tools(session)
    _install_guest_kernel(session)
    session.install("-e", ".[test]")
    # Pure Python is the reference: fail rather than test extension modules a
    # compiled build left in the checkout (tests/support/compiled.py).
    session.run("pytest", *session.posargs, env={"TRIONET_EXPECT_COMPILED": "0"})


# The optional compiled build (setup.py, TRIONET_COMPILE=1): what it needs on the
# machine, and the tests that exercise the layers it compiles.
COMPILE_TOOLS = (("gcc", "gcc"),)
COMPILED_LAYER_TESTS = (
    "tests/test_compiled_build.py",
    "tests/wire",
    "tests/stack",
    "tests/dhcp",
    *sorted(glob.glob("tests/test_tcp_*.py")),
    "tests/engine/test_tcp_splice.py",
)
# What a copy of the checkout for a build leaves out: caches, venvs, builds.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".nox", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "_build_info.py",
)  # fmt: skip


def _install_compiler(session: nox.Session) -> None:
    """gcc and the running Python's C headers, which the compiled build needs."""
    _install_system_tools(session, COMPILE_TOOLS)
    include = session.run(
        "python", "-c", "import sysconfig; print(sysconfig.get_paths()['include'])", silent=True
    )
    if include and not (Path(str(include).strip()) / "Python.h").exists():
        _apt_install(session, ["python3-dev"])  # a Debian python3's headers


def _build_compiled_wheel(session: nox.Session, source: Path) -> Path:
    """The compiled wheel of ``source``, built as a user builds it (pip, PEP 517)."""
    wheelhouse = Path(session.create_tmp()) / "wheelhouse"
    shutil.rmtree(wheelhouse, ignore_errors=True)
    session.run(
        "pip", "wheel", "--no-deps", "-w", str(wheelhouse), str(source),
        env={"TRIONET_COMPILE": "1"},
    )  # fmt: skip
    (wheel,) = wheelhouse.glob("*.whl")
    if wheel.name.endswith("-none-any.whl"):
        session.error(f"{wheel.name} is a pure wheel: nothing was compiled")
    return wheel


@nox.session
def tests_compiled(session: nox.Session) -> None:
    """The layers' tests against the mypyc-compiled build of a copy of the checkout.

    The compiled wheel is built from a copy (so the checkout itself stays pure)
    and unpacked over it, which makes the copy an in-place compiled build; the
    tests there fail unless every module the build recorded really loads from
    its extension module (TRIONET_EXPECT_COMPILED=1, tests/support/compiled.py).
    """
    _install_system_tools(session)
    _install_compiler(session)
    session.install("-e", ".[test]")
    copy = Path(session.create_tmp()) / "compiled"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(".", copy, ignore=_NOT_SOURCE)
    wheel = _build_compiled_wheel(session, copy)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(copy)
    with session.chdir(copy):
        # (tests/conftest.py builds Hypothesis's Unicode tables up front.)
        session.run(
            "pytest",
            *(session.posargs or COMPILED_LAYER_TESTS),
            env={"TRIONET_EXPECT_COMPILED": "1"},
        )


@nox.session
def wheels(session: nox.Session) -> None:
    """The compiled wheel for the running Python, in dist/ (pure wheel: pip wheel .)."""
    _install_compiler(session)
    Path("dist").mkdir(exist_ok=True)
    wheel = Path(shutil.copy(_build_compiled_wheel(session, Path(".")), "dist"))
    # Installed, run outside the checkout, it must import compiled and pass its guard.
    session.install(str(wheel))
    session.install("--force-reinstall", "--no-deps", str(wheel))
    check = (
        "import trionet, trionet.tcp.connection as m; "
        "assert m.__file__.endswith(('.so', '.pyd')), m.__file__; print(m.__file__)"
    )
    with session.chdir(session.create_tmp()):
        session.run("python", "-c", check)


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
