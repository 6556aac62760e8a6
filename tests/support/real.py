"""Whether this run must exercise every real part, and what to do when one is missing.

CI runs as root on a machine whose set-up (``nox -s tests``) installed every
system tool the tests drive, so there a missing part means the set-up is
broken: the test must fail, never skip, or green would mean nothing. On a
developer's machine without root or a tool, the test skips with the reason.

"Required" is decided in one place: ``TRIONET_REQUIRE_REAL=1`` (which
``.ci/run`` sets), or ``CI`` set to any of the values CI systems use for
"yes" (``true``, ``1``, ``yes``, in any case).
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

__all__ = ["missing", "need_tool", "real_parts_required"]

_YES = frozenset({"true", "1", "yes"})


def real_parts_required() -> bool:
    """True in CI: every real-part test must run, so a skip is a failure."""
    if os.environ.get("TRIONET_REQUIRE_REAL", "").strip().lower() in _YES:
        return True
    return os.environ.get("CI", "").strip().lower() in _YES


def missing(reason: str) -> NoReturn:
    """Skip the calling test for ``reason``, or fail it when real parts are required."""
    if real_parts_required():
        pytest.fail(f"CI must run this test, but: {reason}", pytrace=False)
    pytest.skip(reason)


def need_tool(command: str, package: str) -> str:
    """The path of ``command``, or :func:`missing` naming the Debian package to install."""
    path = shutil.which(command)
    if path is None:
        missing(f"needs {command} (apt-get install --no-install-recommends {package})")
    return path
