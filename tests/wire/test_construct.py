"""The parsers' fast constructors build ordinary, frozen instances."""

from __future__ import annotations

import dataclasses

import pytest

from trionet.wire._construct import positional_constructor
from trionet.wire.tcp import NO_OPTIONS, TcpFlags, TcpHeader, TcpOptions, make_tcp_header


def test_built_instance_is_the_real_class_equal_hashable_and_frozen() -> None:
    built = make_tcp_header(1, 2, 3, 4, TcpFlags.ACK, 5, 6, NO_OPTIONS)
    normal = TcpHeader(1, 2, 3, 4, TcpFlags.ACK, 5, 6, NO_OPTIONS)
    assert type(built) is TcpHeader
    assert built == normal and hash(built) == hash(normal) and repr(built) == repr(normal)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.seq = 7  # type: ignore[misc]
    assert dataclasses.replace(built, seq=7).seq == 7


def test_only_plain_slotted_dataclasses_are_accepted() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived(Base):
        b: int

    for cls in (NoSlots, Derived):
        with pytest.raises(TypeError):
            positional_constructor(cls)
    assert positional_constructor(TcpOptions)(1, 2, True, (), None) == TcpOptions(1, 2, True)
