"""Boot a real Linux VM under QEMU whose eth0 is a trionet frame link.

The guest is Debian's kernel (package ``linux-image-amd64``) with a tiny
initramfs built here: busybox-static, the virtio-net modules, and an init
that configures eth0 from the ``MSB_NET*`` variables exactly like a guest
init would, runs one shell script, prints its exit status and powers off.
The variables travel on the kernel command line: the kernel hands every
``key=value`` it does not know to init as an environment variable (so values
must not contain spaces, which guest variables never do).

The VM's network is whatever ``-netdev`` the caller gives (``stream`` to a
:class:`~trionet.links.stream.StreamLink` listener, ``dgram``, ``tap``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GUEST_KERNEL_DIR",
    "STOCK_INIT",
    "GuestKernel",
    "build_initramfs",
    "find_guest_kernel",
    "qemu_argv",
    "start_serve_for_qemu",
]

#: Where ``nox -s tests`` unpacks Debian's kernel package when /boot has none
#: (unpacked, not installed: installing would build an initramfs for minutes).
GUEST_KERNEL_DIR = Path("/var/cache/trionet-tests/guest-kernel")

#: Modules virtio-net needs in Debian's kernel, in load order.
_MODULES = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
]

#: Printed by init just before powering off, followed by the script's exit status.
EXIT_MARKER = "TRIONET-GUEST-EXIT"

_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in /modules/*.ko; do insmod "$m"; done
field() { echo "$1" | tr ',' '\n' | sed -n "s/^$2=//p"; }
dev=$(field "$MSB_NET" iface)
ip link set lo up
ip link set "$dev" address "$(field "$MSB_NET" mac)" mtu "$(field "$MSB_NET" mtu)"
# busybox ip has no "nodad": switch duplicate address detection off instead.
echo 0 > "/proc/sys/net/ipv6/conf/$dev/accept_dad"
for v in "$MSB_NET_IPV4" "$MSB_NET_IPV6"; do
    [ -n "$v" ] && ip addr add "$(field "$v" addr)" dev "$dev"
done
ip link set "$dev" up
[ -n "$MSB_NET_IPV4" ] && ip route add default via "$(field "$MSB_NET_IPV4" gw)" dev "$dev"
[ -n "$MSB_NET_IPV6" ] && ip -6 route add default via "$(field "$MSB_NET_IPV6" gw)" dev "$dev"
sh /script
echo "EXIT_MARKER $?"
poweroff -f
""".replace("EXIT_MARKER", EXIT_MARKER)


#: A stock guest's init: eth0 from DHCP (busybox udhcpc) and SLAAC, nothing from
#: trionet (no MSB_NET* variables, no addresses known in advance). udhcpc's
#: lease script is UDHCPC_SCRIPT, what a distribution's default.script does.
STOCK_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /etc
for m in /modules/*.ko; do insmod "$m"; done
ip link set lo up
echo 2 > /proc/sys/net/ipv6/conf/eth0/accept_ra
ip link set eth0 up
udhcpc -i eth0 -s /udhcpc.script -q -n -t 10 -T 1
# SLAAC: wait (10 s at most) for a usable global address from the advertisement.
i=0
while [ $i -lt 50 ]; do
    ip -6 addr show dev eth0 | grep "scope global" | grep -qv tentative && break
    sleep 0.2
    i=$((i + 1))
done
sh /script
echo "EXIT_MARKER $?"
poweroff -f
""".replace("EXIT_MARKER", EXIT_MARKER)

UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ;;
    bound|renew)
        ip addr add "$ip/$mask" dev "$interface"
        [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
        for r in $router; do ip route add default via "$r" dev "$interface"; done
        {
            [ -n "$search" ] && echo "search $search"
            for d in $dns; do echo "nameserver $d"; done
        } > /etc/resolv.conf
        ;;
esac
exit 0
"""


@dataclass(frozen=True, slots=True)
class GuestKernel:
    vmlinuz: Path
    modules: Path  # /lib/modules/<version>


def find_guest_kernel() -> GuestKernel | None:
    """The newest kernel with virtio-net modules, installed or unpacked; None if there is none."""
    for prefix in (Path("/"), GUEST_KERNEL_DIR):
        for vmlinuz in sorted((prefix / "boot").glob("vmlinuz-*"), reverse=True):
            version = vmlinuz.name.removeprefix("vmlinuz-")
            for modules in (
                prefix / "lib/modules" / version,
                prefix / "usr/lib/modules" / version,
            ):
                if all((modules / "kernel" / m).exists() for m in _MODULES):
                    return GuestKernel(vmlinuz, modules)
    return None


def build_initramfs(kernel: GuestKernel, script: str, dest: Path, *, stock: bool = False) -> Path:
    """Write ``dest`` (a newc cpio archive) holding busybox, the modules, init and ``script``.

    ``stock`` makes init a stock guest's (:data:`STOCK_INIT`: DHCP and SLAAC)
    instead of one that reads the ``MSB_NET*`` variables.
    """
    busybox = shutil.which("busybox")
    if busybox is None:
        raise FileNotFoundError("busybox-static is not installed")
    with open(busybox, "rb") as binary:
        if b"ld-linux" in binary.read(1 << 16):
            raise RuntimeError(f"{busybox} is dynamically linked; install busybox-static")
    root = dest.with_suffix(".root")
    for sub in ("bin", "proc", "sys", "dev", "modules", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for i, module in enumerate(_MODULES):
        shutil.copy(
            kernel.modules / "kernel" / module, root / "modules" / f"{i:02d}-{Path(module).name}"
        )
    (root / "init").write_text(STOCK_INIT if stock else _INIT)
    (root / "init").chmod(0o755)
    if stock:
        (root / "udhcpc.script").write_text(UDHCPC_SCRIPT)
        (root / "udhcpc.script").chmod(0o755)
    (root / "script").write_text(script)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with dest.open("wb") as out:
        subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            input="\n".join(files).encode(),
            stdout=out,
            cwd=root,
            check=True,
        )
    shutil.rmtree(root)
    return dest


def qemu_argv(
    kernel: GuestKernel,
    initramfs: Path,
    netdev: str,
    env: Mapping[str, str],
    *,
    mac: str,
    memory: str = "256M",
) -> list[str]:
    """A QEMU command line booting the guest with one virtio-net NIC on ``netdev``.

    ``netdev`` is a ``-netdev`` value whose id must be ``n0``. TCG by default:
    on this project's machines /dev/kvm exists but nested KVM hangs at boot,
    while TCG boots to the script's end in about 5 s (idle 2-core machine).
    ``TRIONET_QEMU_ACCEL=kvm`` overrides.
    """
    accel = os.environ.get("TRIONET_QEMU_ACCEL", "tcg")
    append: Sequence[str] = [
        "console=ttyS0",
        "quiet",
        "panic=-1",
        *(f"{k}={v}" for k, v in env.items()),
    ]
    return [
        "qemu-system-x86_64",
        "-accel",
        accel,
        "-m",
        memory,
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        str(kernel.vmlinuz),
        "-initrd",
        str(initramfs),
        "-append",
        " ".join(append),
        "-netdev",
        netdev,
        "-device",
        f"virtio-net-pci,netdev=n0,mac={mac},romfile=",
    ]


def start_serve_for_qemu(
    sock: Path, env_file: Path
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``trionet serve --qemu-stream SOCK`` (both families, host reachable), once it is ready.

    Returns the process and the guest variables it printed. The caller ends
    the process (QEMU quitting ends the session, and serve then exits).
    """
    serve = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trionet.cli.main",
            "serve",
            "--net",
            "public,host",  # the tests' pages are on the host
            "--qemu-stream",
            str(sock),
            "--ipv4",
            "--ipv6",
            "--print-env",
            str(env_file),
        ],
        cwd=Path(__file__).resolve().parent.parent.parent,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while not env_file.exists():
        if serve.poll() is not None or time.monotonic() > deadline:
            serve.kill()
            raise AssertionError(f"trionet serve did not start: {serve.communicate()[1]}")
        time.sleep(0.02)
    env: dict[str, str] = json.loads(env_file.read_text())
    return serve, env
