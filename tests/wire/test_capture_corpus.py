"""The corpus capture script works against this machine's kernel (root only).

It re-captures into a temporary directory: the committed corpus stays as it
is, and a broken capture script (or a builder the kernel stops accepting)
shows up here rather than the next time someone regenerates the corpus.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.wire.test_corpus import missing_kinds


@pytest.mark.root
def test_capture_corpus_from_the_kernel(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzz.capture_corpus", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    names = sorted(path.name for path in tmp_path.glob("*.bin"))
    assert missing_kinds(names) == [], out
    assert not [name for name in names if "unparsed" in name]
    namespaces = subprocess.run(
        ["ip", "netns", "list"], check=True, capture_output=True, text=True
    ).stdout
    assert f"trionet-cap-{proc.pid}" not in namespaces, "the capture left its namespace behind"
