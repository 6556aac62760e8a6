"""What a test may leave behind: fds, namespaces, TAP devices, child processes.

Take a :func:`snapshot` before, another after, and :func:`assert_nothing_left`
names whatever is new. The engine (issue 5: "no task or file descriptor
outlives the block") and ``trionet run`` (issue 6: "nothing left behind")
both promise this.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "assert_nothing_left", "processes_in", "snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    #: (fd, what it points to): an fd number reused for something else counts as new.
    fds: frozenset[tuple[int, str]]
    netns: frozenset[str]
    tun_devices: frozenset[str]
    children: frozenset[int]


def snapshot() -> Snapshot:
    """The process's open fds, named namespaces, TUN/TAP devices here, live child processes."""
    return Snapshot(
        fds=frozenset(_open_fds()),
        netns=frozenset(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else frozenset(),
        tun_devices=frozenset(_tun_devices()),
        children=frozenset(_children()),
    )


def assert_nothing_left(before: Snapshot) -> None:
    after = snapshot()
    left = {
        "fds": dict(sorted(after.fds - before.fds)),
        "netns": sorted(name for name in after.netns - before.netns if _ours(name)),
        "tun_devices": sorted(after.tun_devices - before.tun_devices),
        "children": sorted(after.children - before.children),
    }
    assert not any(left.values()), f"left behind: {left}"


def _ours(netns: str) -> bool:
    """A test namespace of this process (tests/support/netns.py names carry the pid).

    Several test runs (of this branch or others, named their own way) may
    share a machine; their namespaces come and go in /run/netns, and are not
    this process's leaks.
    """
    return netns.startswith(f"tnt-{os.getpid()}-")


def _open_fds() -> list[tuple[int, str]]:
    # listdir's own directory fd is gone by the time its target is read: skipped.
    return [
        (int(fd), target) for fd in os.listdir("/proc/self/fd") if (target := _fd_target(int(fd)))
    ]


def _fd_target(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def _tun_devices() -> list[str]:
    out = subprocess.run(
        ["ip", "-j", "-d", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [
        link["ifname"]
        for link in json.loads(out)
        if link.get("linkinfo", {}).get("info_kind") == "tun"
    ]


def _children() -> list[int]:
    me = str(os.getpid())
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[1] the parent; zombies count: nobody reaped them.
        if fields[1] == me:
            pids.append(int(stat.parent.name))
    return pids


def processes_in(netns_fd: int) -> list[int]:
    """The processes in the network namespace ``netns_fd`` holds open.

    By a held fd, never by the ``net:[inode]`` name: a freed namespace's inode
    number is reused at once by the next namespace made anywhere on the
    machine (other test runs make them all the time).
    """
    held = os.fstat(netns_fd)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino):
                found.append(int(entry))
    return found
