"""The side-by-side benchmark's bookkeeping: ratios, verdicts and profile reduction.

Only the pure parts; the measurements themselves live in benchmarks/ and are
never asserted on here.
"""

from __future__ import annotations

from typing import Any

from benchmarks.peer_profile import top_functions
from benchmarks.peer_report import table, verdicts


def _case(label: str, **medians: float) -> dict[str, Any]:
    record: dict[str, Any] = {"label": label, "mtu": 1500, "pinned": True}
    for workload, value in medians.items():
        record[workload] = {"median": value, "min": value * 0.9, "max": value * 1.1}
    return record


CASES = [
    _case("slirp4netns", g2h=1.0, h2g=2.0, rr=40.0, crr=1000.0),
    _case("trionet", g2h=3.5, h2g=3.0, rr=80.0, crr=1000.0),
]
BIG = {"10000": {"requested": 10000, "held": 10000, "bytes_per_connection": 20000.0}}


def test_table_rows_carry_trionet_to_peer_ratios() -> None:
    text = table(CASES, [1500])
    row = next(line for line in text.splitlines() if "guest->host" in line and "| pinned" in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[-3] == "3.50x"  # trionet / slirp4netns
    assert cells[-2] == "n/a"  # no pasta figure in this run
    assert "skipped" in row  # no veth, pasta or trionet-nooffload case


def test_verdicts_follow_issue_7_bounds() -> None:
    results = {v["target"].split(":")[0]: v for v in verdicts(CASES, BIG)}
    assert results["g2h MTU 1500"]["met"]  # 3.5 >= 3.0
    assert not results["h2g MTU 1500"]["met"]  # 1.5 < 2.0
    assert not results["rr MTU 1500"]["met"]  # 2.0 > 1.5: latency, lower is better
    assert results["crr MTU 1500"]["met"]  # 1.0 >= 1.0
    memory = next(v for v in verdicts(CASES, BIG) if "idle" in v["target"])
    assert memory["met"]


def test_memory_target_needs_every_connection_held() -> None:
    partial = {"10000": {"requested": 10000, "held": 4096, "bytes_per_connection": 100.0}}
    memory = next(v for v in verdicts(CASES, partial) if "idle" in v["target"])
    assert not memory["met"]


def test_top_functions_counts_self_and_inclusive_samples() -> None:
    raw = (
        "<module> (run.py:1);pump (trionet/engine/tcp_relay.py:9);send (trio/_socket.py:3) 3\n"
        "<module> (run.py:1);pump (trionet/engine/tcp_relay.py:10) 1\n"
        "garbage line\n"
    )
    result = top_functions(raw)
    assert result["samples"] == 4
    assert result["self"][0] == ("send (trio/_socket.py)", 0.75)
    assert ("pump (trionet/engine/tcp_relay.py)", 1.0) in result["total"]
    assert all(not name.startswith("<module>") for name, _ in result["total"])


def test_cpu_per_gb_and_quiet_engine_rss_verdicts() -> None:
    cases = [
        _case("slirp4netns", g2h_cpu=5.0, h2g_cpu=1.0, idle_rss_mib=3.0),
        _case("trionet", g2h_cpu=2.0, h2g_cpu=1.5, idle_rss_mib=25.0),
    ]
    results = {v["target"].split(":")[0]: v for v in verdicts(cases, BIG)}
    assert results["g2h_cpu MTU 1500"]["met"]  # 0.4 <= 1.0
    assert not results["h2g_cpu MTU 1500"]["met"]  # 1.5 > 1.0
    rss = next(v for v in verdicts(cases, BIG) if v["target"].startswith("engine RSS"))
    assert rss["value"] == 25.0 and not rss["met"]  # absolute bound, not a ratio
    cases[1]["idle_rss_mib"]["median"] = 19.0
    rss = next(v for v in verdicts(cases, BIG) if v["target"].startswith("engine RSS"))
    assert rss["met"]
    row = next(line for line in table(cases, [1500]).splitlines() if "idle stack RSS" in line)
    assert "19.0 (22.5..27.5)" in row  # median (min..max), one decimal
