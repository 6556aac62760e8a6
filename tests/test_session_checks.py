"""The suite's own guards: CI cannot go quietly green, and a changed machine fails the run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.real import real_parts_required
from tests.support.session_checks import differences, machine_state

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("environment", "required"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"CI": "YES"}, True),
        ({"CI": "false"}, False),
        ({"CI": ""}, False),
        ({"TRIONET_REQUIRE_REAL": "1"}, True),
        ({"TRIONET_REQUIRE_REAL": "1", "CI": "false"}, True),
        ({"TRIONET_REQUIRE_REAL": "0"}, False),
    ],
)
def test_ci_is_recognised_whatever_it_is_set_to(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], required: bool
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TRIONET_REQUIRE_REAL", raising=False)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert real_parts_required() is required


def test_an_unchanged_machine_shows_no_difference() -> None:
    state = machine_state()
    assert differences(state, machine_state()) == []


def test_each_kind_of_change_is_named() -> None:
    before = machine_state()
    after = dataclasses.replace(
        before,
        tun=(0o666, 0, 0),
        sysctls={**before.sysctls, "net.ipv4.ip_forward": "changed"},
        files={**before.files, "/etc/hosts": "other"},
        dirs={**before.dirs, "/usr/local/bin": before.dirs["/usr/local/bin"] | {"leaked"}},
        interfaces=before.interfaces | {"tnt9"},
        own_netns=frozenset({f"tnt-{os.getpid()}-1g"}),
        own_temp=frozenset({f"trionet-{os.getpid()}-x"}),
    )
    found = "\n".join(differences(before, after))
    assert "/dev/net/tun (mode, uid, gid) was" in found and "is (0666, 0, 0)" in found
    assert "sysctl net.ipv4.ip_forward was" in found
    assert "/etc/hosts changed" in found
    assert "new in /usr/local/bin: ['leaked']" in found
    assert "new interfaces in the root namespace: ['tnt9']" in found
    assert f"namespaces of this run: ['tnt-{os.getpid()}-1g']" in found
    assert f"temporary files of this run in /tmp: ['trionet-{os.getpid()}-x']" in found


_SUITE = """
import pytest

def test_runs():
    pass

def test_cannot_run_here():
    pytest.skip("needs a thing this machine lacks")
"""


def _inner_run(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(_SUITE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TRIONET_REQUIRE_REAL")}
    env.update(environment, PYTHONPATH=str(ROOT))
    plugins = ["-p", "no:cacheprovider", "-p", "tests.support.session_checks"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugins, "-c", os.devnull, "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_skip_fails_the_run_when_real_parts_are_required(tmp_path: Path) -> None:
    result = _inner_run(tmp_path, TRIONET_REQUIRE_REAL="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped, and not on ALLOWED_SKIPS" in result.stdout
    assert "test_inner.py::test_cannot_run_here: needs a thing this machine lacks" in result.stdout


def test_a_skip_is_only_reported_on_a_developers_machine(tmp_path: Path) -> None:
    result = _inner_run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
