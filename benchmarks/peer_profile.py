"""Where the trionet engine spends its time during bulk transfers: py-spy's view.

py-spy samples the runner process from outside (no instrumentation, so the
profile is of the engine as benchmarked) while iperf3 runs in one direction.
The collapsed stacks are reduced to the functions with the most samples on
top of the stack ("self") and anywhere in it ("total"), the view an
optimiser starts from. Without py-spy, the profile is skipped and says so.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.peer_lab import Case, open_lab, spawn
from benchmarks.peer_workloads import iperf3

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
# A raw frame is "function (path/to/file.py:line)"; the line is dropped so a
# function's samples add up whichever line they were on.
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


# Frames at the bottom of every sample; listing them as "total" hides the rest.
_ALWAYS_ON_STACK = (
    "_run_module_as_main",
    "_run_code",
    "<module>",
    "main (",
    "run (",
    "unrolled_run",
)


def find_py_spy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def top_functions(raw: str, limit: int = 15) -> dict[str, object]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        count = int(match["count"])
        frames = [_name(frame) for frame in match["stack"].split(";")]
        frames = [frame for frame in frames if frame]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not frame.startswith(_ALWAYS_ON_STACK):
                total[frame] += count
    return {
        "samples": samples,
        "self": [(name, count / samples) for name, count in own.most_common(limit)],
        "total": [(name, count / samples) for name, count in total.most_common(limit)],
    }


def _name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return ""  # the process and thread entries py-spy puts first
    path = match["file"]
    for marker in ("/trionet/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def profile_bulk(seconds: float, out_dir: Path) -> dict[str, object]:
    """Profile trionet (MTU 1500, offloads, pinned) during iperf3 each way."""
    py_spy = find_py_spy()
    if py_spy is None:
        return {"skipped": "py-spy not installed (pip install py-spy, or the bench extra)"}
    result: dict[str, object] = {}
    with open_lab(Case("trionet", 1500, offload=True, pinned=True)) as lab:
        assert lab.stack_pid is not None
        for direction, reverse in (("guest_to_host", False), ("host_to_guest", True)):
            raw_path = out_dir / f"profile_{direction}.txt"
            recorder = spawn(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(lab.stack_pid),
                    "--rate",
                    "200",
                    "--duration",
                    str(int(seconds) + 1),
                    "--format",
                    "raw",
                    "--output",
                    str(raw_path),
                    "--nonblocking",
                ]
            )
            try:
                throughput = iperf3(lab, reverse=reverse, seconds=seconds, repeats=1)
                recorder.wait(seconds + 15)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
            entry: dict[str, object] = {"iperf3": throughput}
            if raw_path.exists():
                entry.update(top_functions(raw_path.read_text()))
            else:
                entry["error"] = f"py-spy wrote nothing (exit {recorder.returncode})"
            result[direction] = entry
    return result
