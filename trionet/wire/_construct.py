"""Fast constructors for the frozen representations, for the parsers' use.

A frozen dataclass's ``__init__`` stores each field through
``object.__setattr__`` to get past its own frozen ``__setattr__``; with ten
fields that is most of the cost of building an IPv4 header (measured 2.4 µs
against 1.4 µs here). The parsers (and the TCP machine, once per segment it
sends) build several per frame, so they use a constructor that fills an
instance of an unfrozen twin class, one with exactly the same slots, with
plain attribute stores, then gives it the real class (slotted classes of
identical layout allow ``__class__`` assignment). That halves the cost again
against storing through the slot descriptors one call at a time (TcpHeader:
729 ns -> 410 ns). The result is an ordinary instance, equal to and as
immutable as one built normally.

Compiled by mypyc (the optional build, setup.py), a dataclass is a native
class: its instances have a C layout no Python class shares, so ``__class__``
assignment is refused, and the constructor is the class itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["positional_constructor"]

T = TypeVar("T")


def positional_constructor(cls: type[T]) -> Callable[..., T]:
    """A function taking every field of ``cls`` positionally, in declaration order.

    ``cls`` must be a frozen dataclass with ``slots=True`` and no base class
    of its own. The function is generated unrolled (as dataclasses generates
    ``__init__``) because a loop over the fields costs as much as the frozen
    path it replaces.
    """
    if "__mypyc_attrs__" in cls.__dict__:  # mypyc marks every native class with it
        return cls
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    slots = cls.__dict__.get("__slots__", ())
    if cls.__bases__ != (object,) or sorted(slots) != sorted(names):
        raise TypeError(f"{cls.__name__}: need a slotted dataclass directly on object")
    twin = type(f"_{cls.__name__}Builder", (), {"__slots__": slots})
    namespace: dict[str, Any] = {"_twin": twin, "_new": object.__new__, "_cls": cls}
    body = "".join(f"    obj.{name} = {name}\n" for name in names)
    source = (
        f"def construct({', '.join(names)}):\n"
        f"    obj = _new(_twin)\n{body}    obj.__class__ = _cls\n    return obj\n"
    )
    exec(source, namespace)
    construct: Callable[..., T] = namespace["construct"]
    construct.__qualname__ = f"positional_constructor({cls.__name__})"
    return construct
