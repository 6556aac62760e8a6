"""trionet beside slirp4netns, pasta and a kernel veth pair, on the same workloads.

    python -m benchmarks peers          # needs root, iperf3, slirp4netns, pasta

For each stack, MTU (1500, 65520), and pinning (everything on CPU 0 with
``taskset -c 0``, then unpinned): iperf3 guest->host and host->guest, 1-byte
TCP request/response latency over one connection, and the sequential
connect+echo+close rate. trionet runs with and without TAP offloads. Then
trionet's RSS with 1,000 and 10,000 idle guest connections, a py-spy profile
of the engine during bulk transfers, and the sans-IO codec figures of
bench_wire. The topology is in benchmarks/peer_lab.py.

The whole run is bounded (``BUDGET_S``): cases that would start after the
budget is spent are reported as skipped, never silently dropped. Durations:
iperf3 runs ``PINNED_S`` seconds pinned (the target figures) and ``UNPINNED_S``
unpinned, each three times, so that everything fits in 15 minutes on a
2-CPU machine. Environment overrides: TRIONET_BENCH_PINNED_S,
TRIONET_BENCH_UNPINNED_S, TRIONET_BENCH_BUDGET_S.

Writes benchmarks/results/peers.json (everything), peers.md (the table and
verdicts), peers.png (the chart) and profile_*.txt (py-spy's raw stacks).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import peer_report
from benchmarks.peer_lab import Case, open_lab
from benchmarks.peer_memory import idle_connections
from benchmarks.peer_profile import profile_bulk
from benchmarks.peer_workloads import connection_rate, iperf3, memory, rr_latency

HERE = Path(__file__).parent
RESULTS = HERE / "results"
MTUS = [1500, 65520]
REPEATS = 3
PINNED_S = float(os.environ.get("TRIONET_BENCH_PINNED_S", "5"))
UNPINNED_S = float(os.environ.get("TRIONET_BENCH_UNPINNED_S", "2"))
PROBE_S = 1.0  # each RR and connection-rate run
IDLE_SETTLE_S = 1.0  # after start-up, before the idle memory is read
# 12 minutes leaves room in nox's 15 for the venv, bench_wire and the skipped-case slack.
BUDGET_S = float(os.environ.get("TRIONET_BENCH_BUDGET_S", str(12 * 60)))
TOOLS = ["ip", "taskset", "iperf3", "slirp4netns", "pasta", "ss", "sysctl"]


def cases(pinned: bool) -> list[Case]:
    result = []
    for mtu in MTUS:
        result += [
            Case("veth", mtu, pinned=pinned),
            Case("slirp4netns", mtu, pinned=pinned),
            Case("pasta", mtu, pinned=pinned),
            Case("trionet", mtu, offload=True, pinned=pinned),
            Case("trionet", mtu, offload=False, pinned=pinned),
        ]
    return result


def run_case(case: Case, seconds: float, *, bulk: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stack": case.stack,
        "label": case.label,
        "mtu": case.mtu,
        "offload": case.offload,
        "pinned": case.pinned,
        "relay": case.relay,
        "iperf3_seconds": seconds if bulk else 0,
        "load_before": os.getloadavg()[0],
    }
    start = time.monotonic()
    try:
        with open_lab(case) as lab:
            if lab.stack_pid is not None:
                # One sandbox, no traffic yet: what an idle engine costs.
                time.sleep(IDLE_SETTLE_S)
                idle = memory(lab.stack_pid)
                for key, value in idle.items():
                    record[f"idle_{key}"] = {"median": value, "min": value, "max": value}
            if bulk:
                record["g2h"] = iperf3(lab, reverse=False, seconds=seconds, repeats=REPEATS)
                record["h2g"] = iperf3(lab, reverse=True, seconds=seconds, repeats=REPEATS)
                for key in ("g2h", "h2g"):
                    if "cpu_s_per_gb" in record[key]:
                        record[f"{key}_cpu"] = record[key]["cpu_s_per_gb"]
            record["rr"] = rr_latency(lab, seconds=PROBE_S, repeats=REPEATS)
            record["crr"] = connection_rate(lab, seconds=PROBE_S, repeats=REPEATS)
        if lab.stats_path is not None:
            with contextlib.suppress(OSError, ValueError):
                record["trionet_counters"] = json.loads(lab.stats_path.read_text())
            shutil.rmtree(lab.stats_path.parent, ignore_errors=True)
    except Exception as exc:  # a stack that cannot even start is a failed row
        record["error"] = "".join(traceback.format_exception_only(exc)).strip()
    record["elapsed_s"] = time.monotonic() - start
    record["load_after"] = os.getloadavg()[0]
    return record


def _progress(record: dict[str, Any]) -> None:
    parts = [f"{record['label']:<18} MTU {record['mtu']:<5}"]
    parts.append("pinned  " if record["pinned"] else "unpinned")
    for key in ("g2h", "h2g", "rr", "crr"):
        value = record.get(key, {}).get("median")
        parts.append(f"{key}={'-' if value is None else f'{value:.3g}'}")
    if "error" in record:
        parts.append(f"ERROR {record['error']}")
    print("   " + " ".join(parts) + f"  ({record['elapsed_s']:.0f} s)", flush=True)


def core_figures() -> dict[str, Any]:
    """Figures without the peers: codecs, TCP machine, and the engine by layer (bench_*.json)."""
    figures: dict[str, Any] = {}
    for name in ("bench_wire", "bench_tcp", "bench_engine"):
        path = RESULTS / f"{name}.json"
        if path.exists():
            record = json.loads(path.read_text())
            figures[name] = {"date": record.get("date"), "metrics": record.get("metrics")}
        elif (HERE / f"{name}.py").exists():
            import importlib

            module = importlib.import_module(f"benchmarks.{name}")
            figures[name] = {"date": "this run", "metrics": module.run()}
    return figures


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(
            os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        )
    except (OSError, ValueError):
        pass
    for tool, argv in (
        ("slirp4netns", ["slirp4netns", "--version"]),
        ("iperf3", ["iperf3", "--version"]),
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        info[tool] = result.stdout.splitlines()[0] if result.stdout else "?"
    dpkg = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "passt"],
        capture_output=True,
        text=True,
        check=False,
    )
    info["pasta"] = f"passt {dpkg.stdout.strip() or '?'}"
    return info


def run() -> dict[str, float]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        print(f"   skipped: needs root and {', '.join(missing) or 'nothing else'}")
        return {}
    # SIGTERM (a CI timeout) must unwind through the labs' finally blocks so
    # namespaces are deleted; children die with us anyway (PR_SET_PDEATHSIG).
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _run() -> dict[str, float]:
    started = time.monotonic()
    deadline = started + BUDGET_S
    report: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "pinned_iperf3_s": PINNED_S,
            "unpinned_iperf3_s": UNPINNED_S,
            "probe_s": PROBE_S,
            "repeats": REPEATS,
            "budget_s": BUDGET_S,
        },
        "cases": [],
    }
    skipped: list[str] = []

    def run_all(pinned: bool, seconds: float) -> None:
        for case in cases(pinned):
            # A case takes about 6 iperf3 runs plus the probes and setup.
            if time.monotonic() + 6 * seconds + 10 > deadline:
                skipped.append(f"{case.label} MTU {case.mtu} {'pinned' if pinned else 'unpinned'}")
                continue
            record = run_case(case, seconds)
            report["cases"].append(record)
            _progress(record)

    print("   pinned to CPU 0:", flush=True)
    run_all(True, PINNED_S)
    # What a relay written in plain Python costs here, with no stack at all:
    # the floor for trionet's RR and connection rate (see relay_floor.py).
    for relay in ("selectors", "trio"):
        floor = Case("veth", 1500, pinned=True, relay=relay)
        if time.monotonic() + 20 > deadline:
            skipped.append(floor.label)
            continue
        record = run_case(floor, 0, bulk=False)
        report["cases"].append(record)
        _progress(record)
    report["memory"] = {}
    for count in (1000, 10000):
        try:
            report["memory"][str(count)] = idle_connections(count)
        except Exception as exc:
            report["memory"][str(count)] = {"error": repr(exc)}
        print(f"   idle connections {count}: {_memory_line(report['memory'][str(count)])}")
    try:
        report["profile"] = profile_bulk(min(PINNED_S, 4.0), RESULTS)
    except Exception as exc:
        report["profile"] = {"error": repr(exc)}
    print("   unpinned:", flush=True)
    run_all(False, UNPINNED_S)
    report["core"] = core_figures()
    report["skipped"] = skipped
    report["elapsed_s"] = time.monotonic() - started
    report["verdicts"] = peer_report.verdicts(report["cases"], report["memory"])
    _write(report)
    return _flat(report)


def _memory_line(result: dict[str, Any]) -> str:
    if "bytes_per_connection" not in result:
        return f"failed: {result.get('error')}"
    return (
        f"{result['held']} held by {result['engines']} engine(s),"
        f" {result['bytes_per_connection'] / 1024:.1f} KiB RSS each"
    )


def _write(report: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    table = peer_report.table(report["cases"], MTUS)
    floor = peer_report.floor_table(report["cases"])
    verdicts = peer_report.verdict_lines(report["verdicts"])
    chart_problem = peer_report.chart(report["cases"], MTUS, RESULTS / "peers.png")
    profile = _profile_text(report.get("profile", {}))
    skipped = "\n".join(f"- skipped (time budget): {name}" for name in report["skipped"])
    text = (
        f"Run {report['date']} on {report['machine']}\n"
        f"iperf3 {PINNED_S:g} s pinned / {UNPINNED_S:g} s unpinned, x{REPEATS};"
        f" RR and connection rate {PROBE_S:g} s x{REPEATS}; median (min..max).\n\n"
        f"{table}\n\nTargets (issues 7 and 17, pinned, MTU 1500):\n{verdicts}\n"
        f"\nRelays in plain Python over a veth (no stack), pinned, MTU 1500:\n\n{floor}\n"
        + (f"\n{skipped}\n" if skipped else "")
        + f"\nIdle connections: 1000: {_memory_line(report['memory'].get('1000', {}))};"
        f" 10000: {_memory_line(report['memory'].get('10000', {}))}\n"
        f"\n{_core_text(report['core'])}\n"
        f"\n{profile}\n" + (f"\nchart skipped: {chart_problem}\n" if chart_problem else "")
    )
    (RESULTS / "peers.md").write_text(text)
    print()
    print(text)
    print(f"   total {report['elapsed_s']:.0f} s")


def _core_text(core: dict[str, Any]) -> str:
    lines = ["The sans-IO core alone (no I/O; from the bench_* module results):"]
    for name, record in core.items():
        metrics = record.get("metrics") or {}
        lines.append(f"  {name} ({record.get('date')}):")
        lines += [f"    {key}: {value:,.1f}" for key, value in sorted(metrics.items())]
    return "\n".join(lines)


def _profile_text(profile: dict[str, Any]) -> str:
    if "error" in profile or "skipped" in profile:
        return f"profile: {profile.get('error') or profile.get('skipped')}"
    lines = []
    for direction, entry in profile.items():
        speed = entry.get("iperf3", {}).get("median")
        shown = "failed" if speed is None else f"{speed:.2f} Gbit/s under py-spy"
        lines.append(f"py-spy, trionet {direction} (MTU 1500, offloads, pinned; {shown}):")
        lines.append(f"  {entry.get('samples', 0)} samples; self time:")
        for name, share in entry.get("self", [])[:12]:
            lines.append(f"    {share * 100:5.1f}%  {name}")
        lines.append("  inclusive:")
        for name, share in entry.get("total", [])[:12]:
            lines.append(f"    {share * 100:5.1f}%  {name}")
    return "\n".join(lines)


def _flat(report: dict[str, Any]) -> dict[str, float]:
    """The headline numbers, flat, for benchmarks/results/bench_peers.json."""
    flat: dict[str, float] = {}
    for case in report["cases"]:
        prefix = f"{'pinned' if case['pinned'] else 'unpinned'}.mtu{case['mtu']}.{case['label']}"
        for key in ("g2h", "h2g", "rr", "crr"):
            value = case.get(key, {}).get("median")
            if value is not None:
                flat[f"{prefix}.{key}"] = value
    for count, result in report["memory"].items():
        if "bytes_per_connection" in result:
            flat[f"idle_{count}.bytes_per_connection"] = result["bytes_per_connection"]
    for verdict in report["verdicts"]:
        if verdict["value"] is not None:
            flat[f"target: {verdict['target']}"] = verdict["value"]
    return flat


if __name__ == "__main__":
    run()
