"""Run benchmark modules and record their metrics as JSON.

python -m benchmarks            # every benchmarks/bench_*.py
python -m benchmarks wire       # just bench_wire (the prefix is optional)
"""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def module_names(requested: list[str]) -> list[str]:
    available = sorted(path.stem for path in HERE.glob("bench_*.py"))
    if not requested:
        return available
    names = []
    for name in requested:
        full = name if name.startswith("bench_") else f"bench_{name}"
        if full not in available:
            raise SystemExit(f"no benchmark {name!r}; have {', '.join(available)}")
        names.append(full)
    return names


def main(argv: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    for name in module_names(argv):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}")
        metrics = module.run()
        record = {
            "benchmark": name,
            "metrics": metrics,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        path = RESULTS / f"{name}.json"
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        print(f"   -> {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
