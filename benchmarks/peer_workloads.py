"""The workloads, each run from the guest namespace against a lab's servers.

Each function returns a plain dict (JSON-ready) with the samples it took, or
``{"error": ...}`` when the stack failed the workload (a stall, a refused
connection): a failed row is reported, never dropped or retried silently.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.peer_lab import PROBE, Lab


def summarize(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
    }


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of ``pid`` in MiB, from /proc/PID/smaps_rollup.

    RSS counts every resident page the process maps, shared library pages
    (libpython, libssl, libcrypto) included, which hundreds of engines on one
    host share; PSS divides each shared page among its sharers; USS is what
    the process alone holds, what one more engine costs.
    """
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            values[parts[0].rstrip(":")] = int(parts[1])
    return {
        "rss_mib": values["Rss"] / 1024,
        "pss_mib": values["Pss"] / 1024,
        "uss_mib": (values["Private_Clean"] + values["Private_Dirty"]) / 1024,
    }


def iperf3(lab: Lab, *, reverse: bool, seconds: float, repeats: int) -> dict[str, object]:
    """Bulk TCP, client->server (server->client with ``reverse``); Gbit/s at the receiver.

    The client is the guest, or the host in published-port mode. With a
    userspace stack, also its CPU seconds per GB (10^9 bytes) received
    (``cpu_s_per_gb``): the stack's CPU time over the run, whole, divided by
    the bytes iperf3 moved.
    """
    samples: list[float] = []
    cpu_per_gb: list[float] = []
    errors: list[str] = []
    argv = lab.client_argv(
        [
            "iperf3",
            "-c",
            lab.target,
            "-p",
            str(lab.iperf_port),
            "-t",
            str(seconds),
            "-J",
            "--connect-timeout",
            "3000",
        ]
        + (["-R"] if reverse else [])
    )
    for _ in range(repeats):
        cpu_before = None if lab.stack_pid is None else cpu_seconds(lab.stack_pid)
        try:
            result = _run(argv, timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            errors.append("iperf3 timed out (stall)")
            continue
        try:
            report = json.loads(result.stdout)
            if "error" in report:
                errors.append(str(report["error"]))
                continue
            bits = report["end"]["sum_received"]["bits_per_second"]
            moved = report["end"]["sum_received"]["bytes"]
        except (ValueError, KeyError) as exc:
            errors.append(f"unreadable iperf3 output ({exc!r}): {result.stderr[-200:]}")
            continue
        samples.append(bits / 1e9)
        if cpu_before is not None and lab.stack_pid is not None and moved:
            cpu_per_gb.append((cpu_seconds(lab.stack_pid) - cpu_before) / (moved / 1e9))
    record = _result(samples, errors, "gbit_per_s")
    if cpu_per_gb:
        record["cpu_s_per_gb"] = summarize(cpu_per_gb)
    return record


def rr_latency(lab: Lab, *, seconds: float, repeats: int) -> dict[str, object]:
    """1-byte TCP request/response over one connection: median round trip in µs."""
    argv = lab.client_argv(
        [sys.executable, PROBE, "rr", lab.target, str(lab.echo_port), str(seconds), "200000"]
    )
    return _probe(argv, "median_us", "us", seconds, repeats)


def connection_rate(lab: Lab, *, seconds: float, repeats: int) -> dict[str, object]:
    """Sequential connect + 1-byte echo + close, per second."""
    argv = lab.client_argv(
        [sys.executable, PROBE, "crr", lab.target, str(lab.echo_port), str(seconds), "50000"]
    )
    return _probe(argv, "per_s", "per_s", seconds, repeats)


def _probe(
    argv: list[str], key: str, unit: str, seconds: float, repeats: int
) -> dict[str, object]:
    samples: list[float] = []
    errors: list[str] = []
    for _ in range(repeats):
        try:
            result = _run(argv, timeout=seconds + 20)
        except subprocess.TimeoutExpired:
            errors.append("probe timed out")
            continue
        if result.returncode != 0:
            errors.append(result.stderr.strip()[-300:] or f"exit {result.returncode}")
            continue
        samples.append(float(json.loads(result.stdout)[key]))
    return _result(samples, errors, unit)


def _result(samples: list[float], errors: list[str], unit: str) -> dict[str, object]:
    result: dict[str, object] = {"unit": unit, "samples": samples}
    if samples:
        result.update(summarize(samples))
    if errors:
        result["errors"] = errors
    return result
