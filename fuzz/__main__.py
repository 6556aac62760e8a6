"""Run every fuzz target (or those named) for a bounded total time.

    python -m fuzz --seconds 60 [--target tcp ...]

Each target gets an equal share of the time, spent in two phases: Hypothesis
drives it in batches (a failing input is shrunk and printed), then a plain
random havoc loop applies the same mutations about fifty times faster (a
failing input is printed as hex with the seed that found it). The exit
status is 1 if any target failed. Runs use fresh random seeds, so repeated
runs explore further; ``--seed`` repeats a havoc run.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback

from hypothesis import HealthCheck, Phase, given, settings

from fuzz.mutate import havoc, inputs
from fuzz.seeds import load_corpus, seeds_for
from fuzz.targets import TARGETS, Target

# Small batches: a batch always runs to the end, so this bounds the overshoot.
BATCH = 50


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


class HavocError(Exception):
    def __init__(self, data: bytes, seed: int) -> None:
        super().__init__(f"input {data.hex()} (havoc seed {seed})")


def run_havoc(target: Target, seeds: list[bytes], seconds: float, seed: int) -> int:
    """Fuzz one target with cheap random mutations; return the number of inputs tried."""
    rng = random.Random(seed)
    tried = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        for _ in range(256):
            data = havoc(rng, seeds)
            try:
                target(data)
            except Exception as exc:
                traceback.print_exc()
                raise HavocError(data, seed) from exc
        tried += 256
    return tried


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="total time budget")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS))
    parser.add_argument("--seed", type=int, help="seed for the havoc phase (default: random)")
    args = parser.parse_args(argv)
    names = args.target or list(TARGETS)
    frames = load_corpus()
    deadline = time.monotonic() + args.seconds
    print(f"fuzzing {len(names)} targets for {args.seconds:.0f} s, {len(frames)} corpus frames")
    failed = False
    for index, name in enumerate(names):
        # Each target gets an equal part of what is left, so an overrun is absorbed.
        share = max(deadline - time.monotonic(), 0.0) / (len(names) - index)
        target, layer = TARGETS[name]
        seeds = seeds_for(layer, frames)
        seed = args.seed if args.seed is not None else random.randrange(2**32)
        started = time.monotonic()
        try:
            generated = run_target(target, seeds, share / 2)
            havocked = run_havoc(target, seeds, share / 2, seed)
        except Exception as exc:
            failed = True
            print(f"  {name:9} FAILED: {exc}", file=sys.stderr)
            continue
        elapsed = time.monotonic() - started
        print(
            f"  {name:9} {generated:7d} hypothesis + {havocked:8d} havoc inputs"
            f" in {elapsed:5.1f} s ({len(seeds)} seeds)"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
