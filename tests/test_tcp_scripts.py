"""Kernel-style TCP conformance scripts, run against trionet and against Linux.

Every script in ``tests/tcpscript/scripts`` runs twice: against trionet's
stack (in-process, mock time) and against the Linux kernel (a real socket
in a throwaway namespace, the script's peer on a TUN device, real time).
A script Linux passes and trionet fails is a finding; where trionet differs
on purpose (it is a relay), the script says so with ``[linux]`` /
``[trionet]`` steps and a comment. See ``tests/tcpscript/format.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tcpscript.format import parse_script
from tests.tcpscript.linux_target import run_on_linux
from tests.tcpscript.runner import run_script
from tests.tcpscript.trionet_target import TrionetTarget

SCRIPTS = sorted((Path(__file__).parent / "tcpscript" / "scripts").glob("*.pkt"))


def test_there_are_enough_scripts() -> None:
    assert len(SCRIPTS) >= 40


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_on_trionet(path: Path) -> None:
    run_script(parse_script(path), TrionetTarget(), "trionet")


@pytest.mark.root
@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_on_linux(path: Path) -> None:
    # Real time on a shared machine: one retry absorbs a scheduling hiccup
    # (a late timer), never a wrong segment twice in a row.
    for attempt in range(2):
        result = run_on_linux(path, f"tcpscript-{os.getpid()}-{attempt}")
        if result.get("ok"):
            return
    pytest.fail(str(result.get("error")))
