"""Published ports: trionet -p beside slirp4netns add_hostfwd and pasta -t, in one run.

    python -m benchmarks ports          # needs root, iperf3, slirp4netns, pasta

The guest namespace runs iperf3 -s and the echo probe; the clients run in
the host namespace and dial 127.0.0.1 on ports each stack forwards to the
guest (trionet's ``--publish``, slirp4netns's API ``add_hostfwd``, pasta's
``-t``); the veth row dials the guest directly (the kernel ceiling). For
each: iperf3 host->guest and guest->host, and the host->guest connection
rate (connect, 1-byte echo, close). trionet's own guest-initiated figures
are measured in the same run, for the 0.8x comparison. MTU 1500, pinned to
CPU 0. Writes benchmarks/results/ports.json and ports.md.

Durations: TRIONET_BENCH_PORTS_S (iperf3 seconds, default 3), x REPEATS.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.peer_lab import Case, open_lab
from benchmarks.peer_workloads import connection_rate, iperf3

HERE = Path(__file__).parent
RESULTS = HERE / "results"
SECONDS = float(os.environ.get("TRIONET_BENCH_PORTS_S", "3"))
PROBE_S = 1.0
REPEATS = int(os.environ.get("TRIONET_BENCH_PORTS_REPEATS", "3"))
TOOLS = ["ip", "taskset", "iperf3", "slirp4netns", "pasta", "ss", "sysctl"]


def cases() -> list[Case]:
    return [
        Case("veth", 1500, publish=True),
        Case("slirp4netns", 1500, publish=True),
        Case("pasta", 1500, publish=True),
        Case("trionet", 1500, publish=True),
        # trionet's guest-initiated figures, the reference for the 0.8x target
        Case("trionet", 1500),
    ]


def run_case(case: Case) -> dict[str, Any]:
    record: dict[str, Any] = {"label": case.label, "publish": case.publish}
    record["load_before"] = os.getloadavg()[0]
    start = time.monotonic()
    try:
        with open_lab(case) as lab:
            forward = iperf3(lab, reverse=False, seconds=SECONDS, repeats=REPEATS)
            backward = iperf3(lab, reverse=True, seconds=SECONDS, repeats=REPEATS)
            # The client sends without -R: host->guest when published, else guest->host.
            record["h2g"], record["g2h"] = (
                (forward, backward) if case.publish else (backward, forward)
            )
            record["crr"] = connection_rate(lab, seconds=PROBE_S, repeats=REPEATS)
        if lab.stats_path is not None:
            shutil.rmtree(lab.stats_path.parent, ignore_errors=True)
    except Exception as exc:
        record["error"] = "".join(traceback.format_exception_only(exc)).strip()
    record["elapsed_s"] = time.monotonic() - start
    record["load_after"] = os.getloadavg()[0]
    return record


def _median(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key, {}).get("median")
    return None if value is None else float(value)


def verdicts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_label = {r["label"]: r for r in records}
    published = by_label.get("trionet -p", {})
    own = by_label.get("trionet", {})
    slirp = by_label.get("slirp4netns -p", {})
    out = []
    for key in ("h2g", "g2h"):
        mine = _median(published, key)
        for target, other, factor in (
            (f"published {key} >= 0.8x trionet guest-initiated", _median(own, key), 0.8),
            (f"published {key} >= 2x slirp4netns add_hostfwd", _median(slirp, key), 2.0),
        ):
            ratio = None if mine is None or not other else mine / other
            out.append(
                {"target": target, "value": ratio, "met": ratio is not None and ratio >= factor}
            )
    mine = _median(published, "crr")
    other = _median(slirp, "crr")
    ratio = None if mine is None or not other else mine / other
    out.append(
        {
            "target": "host->guest connection rate >= 1.0x slirp4netns",
            "value": ratio,
            "met": ratio is not None and ratio >= 1.0,
        }
    )
    return out


def table(records: list[dict[str, Any]]) -> str:
    lines = [
        "| stack | host->guest Gbit/s | guest->host Gbit/s | host->guest conn/s | load |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        cells = []
        for key, fmt in (("h2g", "{:.2f}"), ("g2h", "{:.2f}"), ("crr", "{:.0f}")):
            entry = r.get(key, {})
            if "median" in entry:
                low, mid, high = (fmt.format(entry[k]) for k in ("min", "median", "max"))
                cells.append(f"{mid} ({low}..{high})")
            else:
                cells.append(
                    "failed: " + "; ".join(entry.get("errors", [r.get("error", "?")]))[:80]
                )
        load = f"{r['load_before']:.1f}->{r['load_after']:.1f}"
        lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {load} |")
    return "\n".join(lines)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def run() -> dict[str, float]:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        print(f"   skipped: needs root and {', '.join(missing) or 'nothing else'}")
        return {}
    records = []
    for case in cases():
        record = run_case(case)
        records.append(record)
        print(
            f"   {record['label']:<16} h2g={_median(record, 'h2g')} g2h={_median(record, 'g2h')}"
            f" crr={_median(record, 'crr')} {record.get('error', '')}",
            flush=True,
        )
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": {
            "iperf3_s": SECONDS,
            "probe_s": PROBE_S,
            "repeats": REPEATS,
            "mtu": 1500,
            "pinned": "CPU 0",
        },
        "cases": records,
        "verdicts": verdicts(records),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ports.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    lines = [
        f"| {v['target']} | {_ratio(v['value'])} | {'met' if v['met'] else 'NOT met'} |"
        for v in report["verdicts"]
    ]
    text = (
        f"Run {report['date']}: iperf3 {SECONDS:g} s x{REPEATS}, connection rate {PROBE_S:g} s"
        f" x{REPEATS}, MTU 1500, everything on CPU 0; median (min..max).\n\n"
        f"{table(records)}\n\n| target | ratio | |\n|---|---|---|\n" + "\n".join(lines) + "\n"
    )
    (RESULTS / "ports.md").write_text(text)
    print(text)
    flat: dict[str, float] = {}
    for r in records:
        for key in ("h2g", "g2h", "crr"):
            value = _median(r, key)
            if value is not None:
                flat[f"{r['label']}.{key}"] = value
    return flat


if __name__ == "__main__":
    run()
