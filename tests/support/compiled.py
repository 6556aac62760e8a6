"""Which build the suite runs on: pure Python, or the optional mypyc build (setup.py).

A pytest plugin (registered by tests/conftest.py). ``TRIONET_EXPECT_COMPILED``
says what the run must be testing, so that neither nox session can silently
test the other's build:

- ``1`` (``nox -s tests_compiled``): every module the compiled build recorded
  in ``trionet._build_info`` must load from its extension module, and tests
  marked ``compiled`` run;
- ``0`` (``nox -s tests``): no extension module may shadow a source;
- unset (a developer's pytest): no check.

Tests marked ``compiled`` need a compiled build and are deselected otherwise.
"""

from __future__ import annotations

import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

__all__ = ["EXPECT_COMPILED", "compiled_modules", "expected_build", "package_dir"]

EXPECT_COMPILED = "TRIONET_EXPECT_COMPILED"


def expected_build() -> bool | None:
    """True for compiled, False for pure, None when the run does not say."""
    value = os.environ.get(EXPECT_COMPILED, "")
    if value not in ("", "0", "1"):
        raise pytest.UsageError(f"{EXPECT_COMPILED} must be 0, 1 or unset, not {value!r}")
    return None if value == "" else value == "1"


def package_dir() -> Path:
    import trionet

    return Path(trionet.__file__).parent


def compiled_modules() -> list[str]:
    """The modules the compiled build beside ``trionet`` recorded (none if pure)."""
    try:
        record = importlib.import_module("trionet._build_info")
    except ModuleNotFoundError:
        return []
    names = []
    for source in record.SOURCE_SHA256:
        module = "trionet." + source.removesuffix(".py").replace("/", ".")
        names.append(module.removesuffix(".__init__"))
    return sorted(names)


def _check_build(compiled: bool) -> None:
    from trionet._compiled import shadowed_sources

    if not compiled:
        shadowed = shadowed_sources(package_dir())
        if shadowed:
            raise pytest.UsageError(
                f"{EXPECT_COMPILED}=0 but extension modules shadow {shadowed}: "
                "this run would not test the pure-Python source"
            )
        return
    modules = compiled_modules()
    if "trionet.tcp.connection" not in modules:
        raise pytest.UsageError(
            f"{EXPECT_COMPILED}=1 but trionet.tcp.connection is not in a compiled build "
            f"(recorded: {modules})"
        )
    pure = [
        name
        for name in modules
        if not str(importlib.import_module(name).__file__).endswith(tuple(EXTENSION_SUFFIXES))
    ]
    if pure:
        raise pytest.UsageError(f"{EXPECT_COMPILED}=1 but these load as Python: {pure}")


def pytest_configure(config: pytest.Config) -> None:
    compiled = expected_build()
    if compiled is not None:
        _check_build(compiled)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from trionet._compiled import shadowed_sources

    if expected_build() or shadowed_sources(package_dir()):
        return
    deselected = [item for item in items if item.get_closest_marker("compiled") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("compiled") is None]
