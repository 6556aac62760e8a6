"""Where one round trip and one connection go: the real pinned path, measured from outside.

    python -m benchmarks.rr_budget [SECONDS]     # root; perf, strace, py-spy

For slirp4netns and trionet (pinned to CPU 0, MTU 1500, offloads), runs the
1-byte request/response (``rr``) and connect+echo+close (``crr``) probes of
benchmarks/tcp_probe.py three times each, every time with one observer on the
stack's process, so that the observers never disturb each other:

- ``perf stat`` (software counters: task-clock, context switches, migrations;
  this machine's VM exposes no cycle counter) -> the stack's CPU µs and
  context switches per round trip / connection;
- ``strace -c -f`` -> syscalls per round trip / connection (strace slows the
  process; only its counts are used, never its times);
- ``py-spy record`` -> an SVG flame graph in benchmarks/results/flame_*.svg,
  then again as raw stacks (budget_raw_*.txt) for the split by layer.

The split of the stack's user time by layer (:func:`layer_split`) counts
py-spy's samples of Python frames, each given to the innermost trionet or
Trio frame's layer. Samples whose innermost frame is a syscall line are left
out: py-spy counts a thread that is runnable but waiting for the shared CPU
as busy, so those lines would carry the other processes' time.

Writes benchmarks/results/rr_budget.json. docs/performance.md's budget is
built from it. ``python -m benchmarks.rr_budget --split RAW USER_US``
re-splits a saved raw profile.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.peer_lab import PROBE, Case, Lab, open_lab, spawn
from benchmarks.peer_profile import find_py_spy

RESULTS = Path(__file__).parent / "results"
#: Lines whose samples are a syscall in progress (or a wait for the CPU after it).
SYSCALL_LINES = (
    "trio/_core/_io_epoll.py:243",  # epoll_wait
    "trionet/engine/readiness.py:76",  # epoll.poll(0)
    "trionet/links/tap.py:244",  # read
    "trionet/links/tap.py:280",  # writev
    "trionet/engine/tcp_splice.py:121",  # send
    "trionet/engine/tcp_splice.py:168",  # recv
    "trionet/engine/tcp_relay.py:149",  # connect
)
LAYERS = (
    ("trio/", "Trio scheduler + I/O manager"),
    ("trionet/wire/", "stack: wire codecs"),
    ("trionet/tcp/", "stack: TCP machine"),
    ("trionet/stack/", "stack: IP dispatch, TCP table"),
    ("trionet/engine/tcp_splice", "splice + readiness"),
    ("trionet/engine/readiness", "splice + readiness"),
    ("trionet/links/", "link: TAP glue"),
    ("trionet/engine/", "engine glue"),
    ("trionet/network", "engine glue"),
    ("trionet/", "policy, services, other trionet"),
)
LIMITS = {"rr": 2_000_000, "crr": 500_000}


def _probe(lab: Lab, workload: str, seconds: float) -> dict[str, Any]:
    argv = lab.client_argv(
        [
            sys.executable,
            PROBE,
            workload,
            lab.target,
            str(lab.echo_port),
            str(seconds),
            str(LIMITS[workload]),
        ]
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    record: dict[str, Any] = json.loads(result.stdout)
    return record


def _cpu_ticks(pid: int) -> tuple[int, int]:
    # utime and stime, in clock ticks: fields 14 and 15 of /proc/PID/stat.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def _cpu0() -> list[int]:
    # user nice system idle iowait irq softirq steal, in ticks, of CPU 0 (where all runs).
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu0 "):
            return [int(v) for v in line.split()[1:9]]
    raise RuntimeError("no cpu0 in /proc/stat")


def _observed(lab: Lab, workload: str, seconds: float, observer: list[str]) -> dict[str, Any]:
    watcher = spawn(observer, stderr=subprocess.PIPE)
    time.sleep(0.5)  # let it attach
    assert lab.stack_pid is not None
    before = _cpu_ticks(lab.stack_pid)
    cpu0_before = _cpu0()
    try:
        probe = _probe(lab, workload, seconds)
        after = _cpu_ticks(lab.stack_pid)
        cpu0 = [b - a for a, b in zip(cpu0_before, _cpu0(), strict=True)]
        hz = os.sysconf("SC_CLK_TCK")
        # Everything on CPU 0 during the probe (the probe's own start-up included).
        probe["cpu0_busy_s"] = (sum(cpu0) - cpu0[3] - cpu0[4]) / hz
        probe["cpu0_idle_s"] = (cpu0[3] + cpu0[4]) / hz
        probe["cpu0_softirq_s"] = cpu0[6] / hz
        probe["user_s"] = (after[0] - before[0]) / hz
        probe["sys_s"] = (after[1] - before[1]) / hz
    finally:
        time.sleep(0.2)
        watcher.send_signal(2)  # SIGINT: perf and strace print their summary
        try:
            _, err = watcher.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            watcher.kill()
            _, err = watcher.communicate()
    return {"probe": probe, "stderr": err.decode(errors="replace")}


_PERF_LINE = re.compile(r"^\s*([\d.,]+)\s+(?:msec\s+)?([\w-]+)")


def _perf_counts(text: str) -> dict[str, float]:
    counts = {}
    for line in text.splitlines():
        match = _PERF_LINE.match(line)
        if match:
            counts[match[2]] = float(match[1].replace(",", ""))
    return counts


def _strace_counts(text: str) -> dict[str, int]:
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(parts) >= 5 and parts[0][0].isdigit() and not parts[-1].startswith("total"):
            calls = int(parts[3])
            counts[parts[-1]] = calls
            if len(parts) == 6:
                counts[parts[-1] + " (errors)"] = int(parts[4])
    return counts


def layer_split(raw: str, user_us: float) -> dict[str, float]:
    """Spread ``user_us`` over the layers in proportion to py-spy's raw samples."""
    counts: dict[str, int] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        places = [f.rsplit("(", 1)[1].rstrip(")") for f in stack.split(";") if "(" in f]
        if not places or places[-1] in SYSCALL_LINES or places[-1].startswith("socket.py"):
            continue
        layer = "stdlib, no trionet caller"
        for place in reversed(places):
            found = next((name for prefix, name in LAYERS if place.startswith(prefix)), None)
            if found is not None:
                layer = found
                break
        counts[layer] = counts.get(layer, 0) + int(count)
    total = sum(counts.values())
    if not total:
        return {}
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return {name: user_us * count / total for name, count in ranked} | {"samples": total}


def measure(stack: str, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    py_spy = find_py_spy()
    with open_lab(Case(stack, 1500, offload=True, pinned=True)) as lab:
        assert lab.stack_pid is not None
        pid = str(lab.stack_pid)
        for workload in ("rr", "crr"):
            entry: dict[str, Any] = {}
            plain = _observed(
                lab,
                workload,
                seconds,
                ["perf", "stat", "-e", "task-clock,context-switches,cpu-migrations", "-p", pid],
            )
            probe = plain["probe"]
            counts = _perf_counts(plain["stderr"])
            n = probe["count"] + (100 if workload == "rr" else 0)
            entry["probe"] = probe
            entry["perf"] = counts
            entry["per_op"] = {
                "stack_cpu_us": counts.get("task-clock", 0) * 1000 / n,
                "context_switches": counts.get("context-switches", 0) / n,
                "cpu_migrations": counts.get("cpu-migrations", 0) / n,
                "user_us": probe["user_s"] * 1e6 / n,
                "sys_us": probe["sys_s"] * 1e6 / n,
                "cpu0_busy_us": probe["cpu0_busy_s"] * 1e6 / n,
                "cpu0_idle_us": probe["cpu0_idle_s"] * 1e6 / n,
                "cpu0_softirq_us": probe["cpu0_softirq_s"] * 1e6 / n,
            }
            traced = _observed(lab, workload, seconds, ["strace", "-c", "-f", "-p", pid])
            n_traced = traced["probe"]["count"] + (100 if workload == "rr" else 0)
            calls = _strace_counts(traced["stderr"])
            entry["strace_ops"] = n_traced
            entry["syscalls_per_op"] = {k: v / n_traced for k, v in calls.items()}
            if py_spy is not None and stack == "trionet":
                svg = RESULTS / f"flame_{workload}.svg"
                flame = _observed(
                    lab,
                    workload,
                    seconds,
                    [
                        py_spy,
                        "record",
                        "--pid",
                        pid,
                        "--rate",
                        "250",
                        "--format",
                        "flamegraph",
                        "--output",
                        str(svg),
                        "--nonblocking",
                    ],
                )
                entry["flame"] = {"svg": svg.name, "probe": flame["probe"]}
                raw = RESULTS / f"budget_raw_{workload}.txt"
                raw_argv = [py_spy, "record", "--pid", pid, "--rate", "250", "--format", "raw"]
                _observed(
                    lab,
                    workload,
                    seconds,
                    [*raw_argv, "--output", str(raw), "--nonblocking"],
                )
                if raw.exists():
                    entry["user_split_us"] = layer_split(
                        raw.read_text(), entry["per_op"]["user_us"]
                    )
            result[workload] = entry
    return result


def main() -> None:
    if sys.argv[1:2] == ["--split"]:
        split = layer_split(Path(sys.argv[2]).read_text(), float(sys.argv[3]))
        print("\n".join(f"{value:8.1f}  {name}" for name, value in split.items()))
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    report = {stack: measure(stack, seconds) for stack in ("slirp4netns", "trionet")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rr_budget.json").write_text(json.dumps(report, indent=2) + "\n")
    for stack, workloads in report.items():
        for workload, entry in workloads.items():
            per_op = entry["per_op"]
            top = sorted(entry["syscalls_per_op"].items(), key=lambda kv: -kv[1])[:8]
            print(
                f"{stack:<12} {workload:<4} {entry['probe']} cpu/op={per_op['stack_cpu_us']:.1f}us"
                f" user={per_op['user_us']:.1f}us sys={per_op['sys_us']:.1f}us"
                f" cpu0 busy={per_op['cpu0_busy_us']:.1f}us idle={per_op['cpu0_idle_us']:.1f}us"
                f" cs/op={per_op['context_switches']:.2f} mig/op={per_op['cpu_migrations']:.3f}"
            )
            print("     syscalls/op:", ", ".join(f"{k}={v:.2f}" for k, v in top))
            split = entry.get("user_split_us", {})
            print("     user µs/op:", ", ".join(f"{k}={v:.1f}" for k, v in split.items()))


if __name__ == "__main__":
    main()
