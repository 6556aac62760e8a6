"""Timing helpers the micro-benchmarks share."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["best_rate"]


def best_rate(step: Callable[[], object], iterations: int, repeats: int = 7) -> float:
    """Best calls per second over ``repeats`` timed loops of ``iterations`` calls.

    The best, not the median: on a shared 2-CPU machine other processes only
    ever slow a loop down, so the fastest loop is the closest to the code's
    own cost.
    """
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        rates.append(iterations / (time.perf_counter() - start))
    return max(rates)
