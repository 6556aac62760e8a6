"""Session-level checks: the suite leaves the machine as it found it, and CI skips nothing.

A pytest plugin (registered by tests/conftest.py). At session start it
records the machine state the tests could change; at session end it compares,
and fails the run (exit status 1) naming every difference. Separately, when
real parts are required (CI, see :mod:`tests.support.real`), it fails the run
for every skipped test that is not on :data:`ALLOWED_SKIPS`.

Other test runs may share the machine, so only what this run could have done
is attributed to it: namespaces and temporary files carry this process's pid
in their names, interfaces in the root namespace are only counted under the
prefixes this suite uses, and global state (the TUN device's mode, sysctls,
/etc files, mounts over them) is compared before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.real import real_parts_required

__all__ = [
    "ALLOWED_SKIPS",
    "MachineState",
    "differences",
    "machine_state",
    "own_temp_prefix",
    "unexpected_skips",
]

#: Skips CI accepts: test node id -> (the reason its skip gives, why that is acceptable).
#: Empty: every test in this suite can run on a CI machine, so every skip there is a bug.
ALLOWED_SKIPS: Mapping[str, tuple[str, str]] = {}

TUN = Path("/dev/net/tun")
#: Every sysctl a test (or trionet under test) reads or could be tempted to set.
SYSCTLS = (
    "kernel.apparmor_restrict_unprivileged_userns",
    "kernel.unprivileged_userns_clone",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.ip_forward",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
    "net.ipv6.conf.all.disable_ipv6",
    "net.ipv6.conf.all.forwarding",
    "user.max_user_namespaces",
)
#: Files trionet run bind-mounts over in its own mount namespace: a leak shows here.
WATCHED_FILES = ("/etc/hosts", "/etc/resolv.conf")
#: Where an install outside the venvs and tool caches would land.
WATCHED_DIRS = ("/usr/local/bin", "/usr/local/lib", "/etc/apt/sources.list.d")
#: Names the suite gives interfaces (tests/support/netns.py, tests/engine/test_flows.py).
INTERFACE_PREFIXES = ("tn",)
NETNS_DIR = Path("/run/netns")


def own_temp_prefix() -> str:
    """Prefix for files a test makes outside pytest's tmp_path: the check finds leftovers."""
    return f"trionet-{os.getpid()}-"


@dataclass(frozen=True, slots=True)
class MachineState:
    tun: tuple[int, int, int] | None  # mode, uid, gid
    sysctls: Mapping[str, str]
    files: Mapping[str, str]  # path -> sha256, or "" if absent
    dirs: Mapping[str, frozenset[str]]
    mounts: frozenset[str]  # mount points over watched files and under /dev/net
    interfaces: frozenset[str]  # root namespace, suite prefixes only
    own_netns: frozenset[str]
    own_temp: frozenset[str]


def machine_state() -> MachineState:
    return MachineState(
        tun=_tun(),
        sysctls={name: value for name in SYSCTLS if (value := _sysctl(name)) is not None},
        files={path: _digest(path) for path in WATCHED_FILES},
        dirs={path: _listing(path) for path in WATCHED_DIRS},
        mounts=frozenset(_mounts()),
        interfaces=frozenset(_interfaces()),
        own_netns=frozenset(_own_netns()),
        own_temp=frozenset(p.name for p in Path("/tmp").glob(own_temp_prefix() + "*")),
    )


def differences(before: MachineState, after: MachineState) -> list[str]:
    """Each change between the two states, one line each (empty: nothing changed)."""
    found = []
    if before.tun != after.tun:
        was, now = _tun_text(before.tun), _tun_text(after.tun)
        found.append(f"/dev/net/tun (mode, uid, gid) was {was}, is {now}")
    for name in sorted(set(before.sysctls) | set(after.sysctls)):
        if before.sysctls.get(name) != after.sysctls.get(name):
            found.append(
                f"sysctl {name} was {before.sysctls.get(name)!r}, is {after.sysctls.get(name)!r}"
            )
    found += [f"{path} changed" for path, old in before.files.items() if after.files[path] != old]
    for path in before.dirs:
        added = sorted(after.dirs[path] - before.dirs[path])
        if added:
            found.append(f"new in {path}: {added}")
    found += _new("mounts", before.mounts, after.mounts)
    found += _new("interfaces in the root namespace", before.interfaces, after.interfaces)
    # This run's namespaces and files: any left at the end is a leak, whenever made.
    found += _new("namespaces of this run", frozenset(), after.own_netns)
    found += _new("temporary files of this run in /tmp", frozenset(), after.own_temp)
    return found


def unexpected_skips(reports: Iterable[pytest.TestReport]) -> list[str]:
    """Skipped tests whose node id and reason are not on :data:`ALLOWED_SKIPS`."""
    found = []
    for report in reports:
        reason = _skip_reason(report)
        allowed = ALLOWED_SKIPS.get(report.nodeid)
        if allowed is None or allowed[0] not in reason:
            found.append(f"{report.nodeid}: {reason}")
    return found


_BEFORE = pytest.StashKey[MachineState]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_BEFORE] = machine_state()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    problems = []
    before = session.stash.get(_BEFORE, None)
    if before is not None:
        changes = differences(before, machine_state())
        problems += [f"the suite changed the machine: {change}" for change in changes]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if real_parts_required() and reporter is not None:
        reports = reporter.stats.get("skipped", [])
        skipped = [r for r in reports if isinstance(r, pytest.TestReport)]
        problems += [
            f"skipped, and not on ALLOWED_SKIPS (tests/support/session_checks.py): {line}"
            for line in unexpected_skips(skipped)
        ]
    if not problems:
        return
    for line in problems:
        if reporter is not None:
            reporter.write_line(f"FAILED {line}", red=True, bold=True)
        else:
            print(f"FAILED {line}")
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _new(what: str, before: frozenset[str], after: frozenset[str]) -> list[str]:
    added = sorted(after - before)
    return [f"new {what}: {added}"] if added else []


def _tun() -> tuple[int, int, int] | None:
    try:
        st = TUN.stat()
    except OSError:
        return None
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


def _tun_text(tun: tuple[int, int, int] | None) -> str:
    return "absent" if tun is None else f"({tun[0]:04o}, {tun[1]}, {tun[2]})"


def _sysctl(name: str) -> str | None:
    try:
        return " ".join(Path("/proc/sys", name.replace(".", "/")).read_text().split())
    except OSError:
        return None


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def _listing(path: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(path))
    except OSError:
        return frozenset()


def _mounts() -> list[str]:
    watched = (*WATCHED_FILES, "/dev/net")
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(watched):
                points.append(line.split()[0] + " " + point)
    return points


def _interfaces() -> list[str]:
    try:
        out = subprocess.run(
            ["ip", "-j", "link", "show"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = [link["ifname"] for link in json.loads(out)]
    return [name for name in names if name.startswith(INTERFACE_PREFIXES)]


def _own_netns() -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return []
    return [name for name in names if name.startswith(f"tnt-{os.getpid()}-")]
