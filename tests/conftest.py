"""Shared fixtures and session checks.

Real-guest tests need root and /dev/net/tun. Elsewhere they skip with the
reason; in CI (``TRIONET_REQUIRE_REAL=1`` or ``CI=true``, see
tests/support/real.py) a missing requirement is a failure, because CI runs as
root and a silently skipped real-guest test would make green mean nothing.
tests/support/session_checks.py fails the run if the suite changed the
machine, or if CI skipped a test that is not on its allow-list.
"""

from __future__ import annotations

import functools
import inspect
import os
import warnings

import pytest
import trio

from tests.support.real import missing


def _root_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces and TAP devices)"
    if not os.path.exists("/dev/net/tun"):
        return "needs /dev/net/tun"
    return None


def require_root() -> None:
    """Skip the calling test without root, or fail it in CI."""
    reason = _root_unavailable_reason()
    if reason is not None:
        missing(reason)


def pytest_sessionstart(session: pytest.Session) -> None:
    # Hypothesis builds its Unicode tables (into .hypothesis/) on the first
    # from_regex draw, about 1 s: in a fresh checkout that lands inside some
    # test's first example, which then fails the too-slow health check
    # (tests/wire test_ndp did, in a fresh copy). Build them up front.
    import hypothesis.strategies as st

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st.from_regex("a", fullmatch=True).example()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        require_root()


# Namespace and real-guest fixtures (netns_factory, guest_link_factory), and the
# checks at the session's end (machine left as found, no unexplained skip in CI).
# Which build runs (pure, or the mypyc-compiled one: tests/support/compiled.py).
pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.session_checks",
    "tests.support.compiled",
]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests under ``trio.run`` (a fresh run per test)."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    # A test may carry its own clock (e.g. trio.testing.MockClock) as ``.clock``.
    trio.run(functools.partial(function, **arguments), clock=getattr(function, "clock", None))
    return True
