"""SIGINT and SIGTERM at every moment of ``trionet run``: prompt, 128+N, nothing left.

Each case starts the real command line, waits until ``trionet run`` reaches
a phase that can be seen from outside (its helper exists, the helper has
unshared its namespace, eth0 exists in it, CMD runs, CMD is about to exit),
sends the signal, and checks that trionet ends within a few seconds with
128+N and that no process, namespace (so no TAP), temporary file or fd of
ours is left. Phases are observed, not guessed from sleeps, so each case
lands where it says on a loaded machine too; a few fixed delays cover the
moments before the helper exists.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.leaks import assert_nothing_left, processes_in, snapshot

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parent.parent
TRIONET = [sys.executable, "-m", "trionet.cli.main", "run"]
#: Generous for a loaded 2-core machine; an idle one ends in about 0.1 s.
PROMPT = 5.0
PHASE_TIMEOUT = 15.0


@dataclass
class Run:
    """One ``trionet run`` under observation."""

    process: subprocess.Popen[bytes]
    helper: int | None = None  # the helper's pid (it becomes CMD)
    helper_start: str | None = None  # its start time, so a reused pid is not mistaken
    netns: str | None = None  # the helper's namespace once it unshared
    #: Held open from then on: a namespace's inode number is reused as soon as
    #: it is freed (other test runs make namespaces all the time), so the
    #: leftover checks compare against this held one, never against the name.
    netns_fd: int | None = None

    def observe(self) -> None:
        if self.helper is None:
            # Not any child: importing trio runs ldconfig (ctypes.util.find_library).
            for child in _children(self.process.pid):
                cmdline = _read(f"/proc/{child}/cmdline")
                netns = _readlink(f"/proc/{child}/ns/net")
                if "nsexec.py" in cmdline or netns not in (None, _readlink("/proc/self/ns/net")):
                    self.helper = child
                    self.helper_start = _start_time(child)
        if self.helper is not None and self.netns is None:
            ns = _readlink(f"/proc/{self.helper}/ns/net")
            if ns is not None and ns != _readlink("/proc/self/ns/net"):
                try:
                    self.netns_fd = os.open(f"/proc/{self.helper}/ns/net", os.O_RDONLY)
                except OSError:
                    return  # the helper just exec'd or ended: seen on the next look
                if _readlink(f"/proc/self/fd/{self.netns_fd}") != ns:
                    os.close(self.netns_fd)
                    self.netns_fd = None
                    return
                self.netns = ns

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _links_in(netns_fd: int) -> list[str]:
    """The interfaces left in the held namespace (the TAP must be gone with its fd)."""
    result = subprocess.run(
        ["nsenter", f"--net=/proc/{os.getpid()}/fd/{netns_fd}", "ip", "-o", "link"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
        pass_fds=(netns_fd,),
    )
    return [line.split(":")[1].strip() for line in result.stdout.splitlines()]


def _has_eth0(run: Run) -> bool:
    if run.helper is None or run.netns is None:
        return False
    try:
        return "eth0:" in Path(f"/proc/{run.helper}/net/dev").read_text()
    except OSError:
        return False


def _execed(command: str) -> Callable[[Run], bool]:
    def check(run: Run) -> bool:
        if run.helper is None:
            return False
        exe = _readlink(f"/proc/{run.helper}/exe")
        return exe is not None and Path(exe).name == command

    return check


def _wait_for(run: Run, phase: Callable[[Run], bool]) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT
    while True:
        run.observe()
        if phase(run):
            return
        assert run.process.poll() is None, "trionet run ended before the phase was reached"
        assert time.monotonic() < deadline, "phase not reached"
        time.sleep(0.0005)


PHASES: dict[str, Callable[[Run], bool]] = {
    "helper started": lambda run: run.helper is not None,
    "namespace made": lambda run: run.netns is not None,
    "eth0 made": _has_eth0,
    "CMD running": _execed("sleep"),
}


def _check_ends(run: Run, signo: int, sent_before_helper: bool, allowed: set[int]) -> None:
    started = time.monotonic()
    try:
        _, stderr = run.process.communicate(timeout=PROMPT)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.communicate()
        pytest.fail(f"trionet run was still running {PROMPT} s after {signo}")
    took = time.monotonic() - started
    status = run.process.returncode
    early = b""
    if sent_before_helper:
        # Before trionet's own code runs, while Python starts and loads it, the
        # signal ends it the default way: killed by it (a shell reports 128+N
        # too), or, for a SIGINT while CPython imports its site module, CPython's
        # own "Fatal Python error" and status 1. No trionet code can run earlier.
        allowed = allowed | {-signo}
        if b"Fatal Python error: init_import_site" in stderr:
            allowed = allowed | {1}
        early = b"Traceback"
    assert status in allowed, (status, stderr.decode(errors="replace"))
    if status > 0 and not (early and early in stderr):
        assert stderr.count(b"\n") <= 1, stderr  # at most trionet's one-line reason
    if run.helper is not None:
        assert _start_time(run.helper) != run.helper_start or run.helper_start is None
    if run.netns_fd is not None:
        assert processes_in(run.netns_fd) == []  # so the namespace will go too
        assert _links_in(run.netns_fd) == ["lo"]  # the TAP went with trionet's fd
    assert took < PROMPT


def _start(command: list[str]) -> Run:
    process = subprocess.Popen(
        [*TRIONET, "--", *command],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return Run(process)


SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.parametrize("signo", SIGNALS, ids=lambda s: signal.Signals(s).name)
@pytest.mark.parametrize("phase", list(PHASES))
def test_signal_at_each_phase_of_startup(signo: int, phase: str) -> None:
    before = snapshot()
    run = _start(["sleep", "60"])
    try:
        _wait_for(run, PHASES[phase])
        run.process.send_signal(signo)
        _check_ends(run, signo, sent_before_helper=False, allowed={128 + signo})
    finally:
        run.close()
    assert_nothing_left(before)


@pytest.mark.parametrize("signo", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_at_fixed_moments_from_launch(signo: int) -> None:
    """Moments no phase marks: while Python starts, imports, parses options, spawns."""
    before = snapshot()
    for delay in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45):  # bounded: 8 runs
        run = _start(["sleep", "60"])
        try:
            time.sleep(delay)
            run.observe()
            helper_seen = run.helper is not None
            run.process.send_signal(signo)
            _check_ends(run, signo, sent_before_helper=not helper_seen, allowed={128 + signo})
        finally:
            run.close()
    assert_nothing_left(before)


@pytest.mark.parametrize("signo", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_while_cmd_exits(signo: int) -> None:
    """CMD ends on its own around the moment the signal arrives.

    Either the signal reached CMD first (128+N), or CMD had already exited
    with its own status (0) and trionet reports that: both are right, and
    either way trionet ends at once and leaves nothing.
    """
    before = snapshot()
    for offset in (-0.02, -0.005, 0.0, 0.002, 0.005, 0.01, 0.02):  # bounded: 7 runs
        run = _start(["sleep", "0.25"])
        try:
            _wait_for(run, _execed("sleep"))
            time.sleep(max(0.0, 0.25 + offset))
            run.observe()
            run.process.send_signal(signo)
            _check_ends(run, signo, sent_before_helper=False, allowed={128 + signo, 0})
        finally:
            run.close()
    assert_nothing_left(before)
