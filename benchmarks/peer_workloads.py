"""The workloads, each run from the guest namespace against a lab's servers.

Each function returns a plain dict (JSON-ready) with the samples it took, or
``{"error": ...}`` when the stack failed the workload (a stall, a refused
connection): a failed row is reported, never dropped or retried silently.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from benchmarks.peer_lab import PROBE, Lab


def summarize(samples: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
    }


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def iperf3(lab: Lab, *, reverse: bool, seconds: float, repeats: int) -> dict[str, object]:
    """Bulk TCP, client->server (server->client with ``reverse``); Gbit/s at the receiver.

    The client is the guest, or the host in published-port mode.
    """
    samples: list[float] = []
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
        except (ValueError, KeyError) as exc:
            errors.append(f"unreadable iperf3 output ({exc!r}): {result.stderr[-200:]}")
            continue
        samples.append(bits / 1e9)
    return _result(samples, errors, "gbit_per_s")


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
