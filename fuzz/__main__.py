"""Run every fuzz target (or those named) for a bounded total time.

    python -m fuzz --seconds 60 [--target tcp ...]

Hypothesis drives each target in batches of examples until its share of the
time is used up; a failing input is shrunk and printed, and the exit status
is 1. Batches use fresh random seeds, so repeated runs explore further.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

from fuzz.mutate import inputs
from fuzz.targets import TARGETS, Target, layers_of

CORPUS = Path(__file__).parent / "corpus"
BATCH = 300


def load_corpus(directory: Path = CORPUS) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("*.bin"))]


def seeds_for(layer: str, frames: list[bytes]) -> list[bytes]:
    return [found[layer] for frame in frames if layer in (found := layers_of(frame))]


def run_target(target: Target, seeds: list[bytes], seconds: float) -> int:
    """Fuzz one target for about ``seconds``; return the number of examples tried."""
    tried = 0

    @settings(
        max_examples=BATCH,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs(seeds))
    def batch(data: bytes) -> None:
        nonlocal tried
        tried += 1
        target(data)

    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        batch()
    return tried


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="total time budget")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    args = parser.parse_args(argv)
    names = args.target or list(TARGETS)
    frames = load_corpus()
    share = args.seconds / len(names)
    print(f"fuzzing {len(names)} targets, {share:.1f} s each, {len(frames)} corpus frames")
    failed = False
    for name in names:
        target, layer = TARGETS[name]
        seeds = seeds_for(layer, frames)
        started = time.monotonic()
        try:
            tried = run_target(target, seeds, share)
        except Exception as exc:
            failed = True
            print(f"  {name:9} FAILED: {exc!r}", file=sys.stderr)
            continue
        elapsed = time.monotonic() - started
        print(f"  {name:9} {tried:8d} inputs in {elapsed:5.1f} s ({len(seeds)} seeds)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
