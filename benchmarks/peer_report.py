"""The side-by-side table (Markdown), the target verdicts and the chart.

A row is one workload at one MTU and pinning; columns are the stacks, each
"median (min..max)" over the repeats, then trionet's ratio to each peer in the
same run. For latency a ratio below 1 is better; for the rest, above 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STACKS = ["veth", "slirp4netns", "pasta", "trionet", "trionet-nooffload"]
WORKLOADS = [
    ("g2h", "guest->host Gbit/s"),
    ("h2g", "host->guest Gbit/s"),
    ("rr", "1-byte RR µs"),
    ("crr", "connect+echo+close /s"),
    ("g2h_cpu", "stack CPU s per GB guest->host"),
    ("h2g_cpu", "stack CPU s per GB host->guest"),
    ("idle_rss_mib", "idle stack RSS MiB"),
    ("idle_pss_mib", "idle stack PSS MiB"),
    ("idle_uss_mib", "idle stack USS MiB"),
]
RATIOS = [
    ("trionet", "slirp4netns"),
    ("trionet", "pasta"),
    ("trionet-nooffload", "slirp4netns"),
]
SHORT = {"trionet": "t", "trionet-nooffload": "t-plain", "slirp4netns": "slirp", "pasta": "pasta"}

# (workload, MTU, comparison, bound, "min" for >= or "max" for <=): issues 7 and 17, pinned.
TARGETS = [
    ("g2h", 1500, ">=", 3.0),
    ("h2g", 1500, ">=", 2.0),
    ("rr", 1500, "<=", 1.5),
    ("crr", 1500, ">=", 1.0),
    ("g2h_cpu", 1500, "<=", 1.0),
    ("h2g_cpu", 1500, "<=", 1.0),
]
#: Issue 17: an idle engine (one sandbox, no traffic) under 20 MiB RSS, absolute.
IDLE_RSS_MIB = 20.0

Cases = Sequence[Mapping[str, Any]]


def _find(cases: Cases, label: str, mtu: int, pinned: bool) -> Mapping[str, Any] | None:
    for case in cases:
        if case["label"] == label and case["mtu"] == mtu and case["pinned"] == pinned:
            return case
    return None


def median(cases: Cases, label: str, mtu: int, pinned: bool, workload: str) -> float | None:
    case = _find(cases, label, mtu, pinned)
    if case is None:
        return None
    value = case.get(workload, {}).get("median")
    return None if value is None else float(value)


def _cell(result: Mapping[str, Any] | None, workload: str) -> str:
    if result is None:
        return "skipped"
    data = result.get(workload)
    if not data:
        return "skipped"
    if "median" not in data:
        return "failed"
    digits = 0 if workload in ("rr", "crr") else (1 if workload.startswith("idle") else 2)
    text = f"{data['median']:.{digits}f} ({data['min']:.{digits}f}..{data['max']:.{digits}f})"
    if data.get("errors"):
        text += f" [{len(data['errors'])} failed]"
    return text


def table(cases: Cases, mtus: Sequence[int]) -> str:
    ratio_names = [f"{SHORT[a]}/{SHORT[b]}" for a, b in RATIOS]
    header = ["pinning", "MTU", "workload", *STACKS, *ratio_names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for pinned in (True, False):
        for mtu in mtus:
            for workload, title in WORKLOADS:
                row = ["pinned" if pinned else "unpinned", str(mtu), title]
                row += [_cell(_find(cases, label, mtu, pinned), workload) for label in STACKS]
                for ours, peer in RATIOS:
                    a = median(cases, ours, mtu, pinned, workload)
                    b = median(cases, peer, mtu, pinned, workload)
                    row.append("n/a" if a is None or not b else f"{a / b:.2f}x")
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


FLOOR = ["veth", "veth+selectors-relay", "veth+trio-relay", "trionet", "slirp4netns"]


def floor_table(cases: Cases) -> str:
    """RR and connection rate through minimal Python relays, beside trionet (pinned, 1500)."""
    lines = ["| path | 1-byte RR µs | connect+echo+close /s |", "|---|---|---|"]
    for label in FLOOR:
        case = _find(cases, label, 1500, True)
        lines.append(f"| {label} | {_cell(case, 'rr')} | {_cell(case, 'crr')} |")
    return "\n".join(lines)


def verdicts(cases: Cases, memory: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Issue 7's targets, judged on the pinned figures of this run."""
    results = []
    for workload, mtu, op, bound in TARGETS:
        ours = median(cases, "trionet", mtu, True, workload)
        peer = median(cases, "slirp4netns", mtu, True, workload)
        ratio = None if ours is None or not peer else ours / peer
        met = ratio is not None and (ratio >= bound if op == ">=" else ratio <= bound)
        results.append(
            {
                "target": f"{workload} MTU {mtu}: trionet/slirp4netns {op} {bound}",
                "value": ratio,
                "met": met,
            }
        )
    idle = median(cases, "trionet", 1500, True, "idle_rss_mib")
    results.append(
        {
            "target": f"engine RSS with no traffic < {IDLE_RSS_MIB:g} MiB (MTU 1500, pinned)",
            "value": idle,
            "unit": "MiB",
            "met": idle is not None and idle < IDLE_RSS_MIB,
        }
    )
    big = memory.get("10000", {})
    per_conn = big.get("bytes_per_connection")
    held_all = big.get("held") == big.get("requested")
    results.append(
        {
            "target": "10,000 idle guest connections at <= 32 KiB RSS each",
            "value": per_conn,
            "unit": "bytes",
            "met": per_conn is not None and held_all and per_conn <= 32 * 1024,
        }
    )
    return results


def verdict_lines(results: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for result in results:
        value = result["value"]
        if value is None:
            shown = "n/a"
        elif result.get("unit") == "MiB":
            shown = f"{value:.1f} MiB"
        elif result.get("unit") == "bytes":
            shown = f"{value / 1024:,.1f} KiB"
        else:
            shown = f"{value:,.2f}"
        lines.append(
            f"- {'MET' if result['met'] else 'NOT MET'}: {result['target']} (got {shown})"
        )
    return "\n".join(lines)


def chart(cases: Cases, mtus: Sequence[int], path: Path) -> str | None:
    """A 2x2 bar chart of the pinned medians; returns why it was skipped, if it was."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (the optional `bench` extra)"
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    width = 0.8 / len(STACKS)
    for axis, (workload, title) in zip(axes.flat, WORKLOADS[:4], strict=True):
        for index, label in enumerate(STACKS):
            values = [median(cases, label, mtu, True, workload) or 0.0 for mtu in mtus]
            positions = [m + (index - len(STACKS) / 2 + 0.5) * width for m in range(len(mtus))]
            axis.bar(positions, values, width, label=label)
        axis.set_xticks(range(len(mtus)), [f"MTU {mtu}" for mtu in mtus])
        axis.set_title(title + (" (lower is better)" if workload == "rr" else ""))
        if workload in ("g2h", "h2g"):
            axis.set_yscale("log")
        axis.grid(axis="y", alpha=0.3)
    axes.flat[0].legend(fontsize="small")
    figure.suptitle("trionet beside its peers, pinned to one CPU (medians)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return None
