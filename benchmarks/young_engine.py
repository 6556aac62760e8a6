"""Is a young engine slower than a warm one? host->guest iperf3, side by side.

    python -m benchmarks.young_engine      # root; about a minute

Issue 17 saw host->guest bulk at 1.63-1.75x slirp4netns when every workload
started a fresh engine, against 2.3-3.3x from one engine serving several
workloads. This measures the two in one run on the same machine: "young" is
the first iperf3 run of a freshly started engine (a new engine per sample),
"warm" the second and later runs of one engine. Same topology and settings as
the peer benchmark (pinned, MTU 1500, offloads on).
"""

from __future__ import annotations

import json
import os
import statistics

from benchmarks.peer_lab import Case, open_lab
from benchmarks.peer_workloads import iperf3

SECONDS = float(os.environ.get("TRIONET_BENCH_YOUNG_S", "3"))
SAMPLES = int(os.environ.get("TRIONET_BENCH_YOUNG_SAMPLES", "3"))


def _one(lab: object) -> float:
    result = iperf3(lab, reverse=True, seconds=SECONDS, repeats=1)  # type: ignore[arg-type]
    return float(result["median"])  # type: ignore[arg-type]


def main() -> None:
    case = Case("trionet", 1500)
    young = []
    for _ in range(SAMPLES):
        with open_lab(case) as lab:
            young.append(_one(lab))
    with open_lab(case) as lab:
        first = _one(lab)
        warm = [_one(lab) for _ in range(SAMPLES)]
    record = {
        "young_gbit_s": young,
        "warm_gbit_s": warm,
        "warm_engine_first_run_gbit_s": first,
        "young_median": statistics.median(young),
        "warm_median": statistics.median(warm),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
