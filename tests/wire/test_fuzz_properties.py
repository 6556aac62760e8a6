"""Arbitrary bytes give a representation or ParseError, for every parser.

The targets are the ones ``python -m fuzz`` runs for longer; here each gets
random bytes and mutated real frames from the corpus, briefly.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, find, given, settings

from fuzz.mutate import inputs, mutated
from fuzz.seeds import load_corpus, seeds_for
from fuzz.targets import TARGETS

CORPUS = load_corpus()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_target_survives_arbitrary_bytes(name: str) -> None:
    target, layer = TARGETS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(inputs(seeds_for(layer, CORPUS)))
    def check(data: bytes) -> None:
        target(data)

    check()


def test_every_target_has_real_seeds() -> None:
    for name, (_, layer) in TARGETS.items():
        assert seeds_for(layer, CORPUS), f"no corpus frame seeds the {name} target"


def test_mutator_does_mutate() -> None:
    # Guards the mutator itself: one that returned its seed unchanged would
    # make the corpus-seeded fuzzing above test nothing new.
    seed = bytes(range(64))
    changed = find(mutated([seed]), lambda data: data != seed and len(data) == len(seed))
    assert changed != seed


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("ipv6", bytes.fromhex("6000000000080000") + bytes(32) + b"\x00\x00"),  # hbh past end
        ("tcp", bytes(12) + b"\x60\x02" + bytes(6) + b"\x02"),  # option length missing
        ("tcp", bytes(12) + b"\x60\x02" + bytes(6) + b"\x05\x03\x00\x00"),  # bad SACK length
        ("icmpv6", b"\x86\x00\x00\x00" + bytes(12) + b"\x01\x00"),  # zero option length
        ("udp", b"\x00\x01\x00\x02\x00\x07\x00\x00"),  # length below 8
    ],
)
def test_known_malformed_inputs_are_rejected_cleanly(name: str, data: bytes) -> None:
    TARGETS[name][0](data)
