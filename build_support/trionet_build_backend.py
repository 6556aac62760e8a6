"""The build backend: setuptools', plus mypy as a build requirement only when compiling.

A pure build (the default) needs what ``[build-system] requires`` lists and
no compiler. ``TRIONET_COMPILE=1`` asks setup.py to compile the sans-IO
layers with mypyc, which ships with mypy; listing mypy in ``requires`` would
make every pure build download it, so it is asked for here instead, through
the PEP 517 hooks for extra requirements, and only then.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403  (the backend is setuptools' own otherwise)

#: mypyc comes with mypy; the same floor as the dev extra's mypy.
COMPILE_REQUIRES = ["mypy>=1.10"]
COMPILE_VARIABLE = "TRIONET_COMPILE"


@contextmanager
def _as_pure() -> Iterator[None]:
    """setuptools asks setup.py for its requirements by running it, before mypy is there."""
    saved = os.environ.pop(COMPILE_VARIABLE, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[COMPILE_VARIABLE] = saved


def _requires(
    hook: Callable[[dict[str, object] | None], list[str]],
    config_settings: dict[str, object] | None,
) -> list[str]:
    compiling = os.environ.get(COMPILE_VARIABLE) == "1"
    with _as_pure():
        requires = hook(config_settings)
    return [*requires, *COMPILE_REQUIRES] if compiling else requires


def get_requires_for_build_wheel(config_settings: dict[str, object] | None = None) -> list[str]:
    return _requires(build_meta.get_requires_for_build_wheel, config_settings)


def get_requires_for_build_editable(
    config_settings: dict[str, object] | None = None,
) -> list[str]:
    return _requires(build_meta.get_requires_for_build_editable, config_settings)
