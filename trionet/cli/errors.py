"""The one-line error a command prints, out of whatever exception group Trio raised.

Nurseries wrap what their tasks raise in exception groups; the user gets the
one-line reason inside. Plain ``except BaseExceptionGroup``, not ``except*``:
before Python 3.11.4 (Debian 12 ships 3.11.2) an exception raised inside an
``except*`` clause is itself wrapped in a new group (CPython gh-103590), so
the user would see a traceback instead of the line.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["first_leaf"]

E = TypeVar("E", bound=BaseException)


def first_leaf(group: BaseExceptionGroup[BaseException], kind: type[E]) -> E | None:
    """The first exception of ``kind`` in ``group``, depth first, or None."""
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = first_leaf(exc, kind)
            if found is not None:
                return found
    return None
