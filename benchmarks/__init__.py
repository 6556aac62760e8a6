"""Benchmarks: each ``bench_*.py`` module has ``run() -> dict[str, float]``.

``python -m benchmarks [name ...]`` runs them and writes
``benchmarks/results/<module>.json``. Performance claims in trionet come
from here, never from timed unit tests.
"""
