"""Hypothesis strategies that mutate seed frames, like a mutational fuzzer's havoc stage."""

from __future__ import annotations

import random

from hypothesis import strategies as st

#: Byte values that sit on length and type boundaries parsers test against.
_INTERESTING = [0x00, 0x01, 0x02, 0x04, 0x05, 0x08, 0x0A, 0x3F, 0x40, 0x7F, 0x80, 0xFE, 0xFF]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits: byte sets, flips, truncations, insertions, deletions."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 5))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[pos] = draw(st.sampled_from(_INTERESTING))
        elif op == 1 and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 2:
            del data[pos:]
        elif op == 3:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == 4:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif data:
            data[pos] = draw(st.integers(0, 255))
    return bytes(data)


def inputs(seeds: list[bytes], max_size: int = 256) -> st.SearchStrategy[bytes]:
    """Random bytes, or mutated seeds when there are any."""
    random_bytes = st.binary(max_size=max_size)
    if not seeds:
        return random_bytes
    return st.one_of(random_bytes, mutated(seeds), mutated(seeds))


def havoc(rng: random.Random, seeds: list[bytes], max_size: int = 256) -> bytes:
    """The same edits as :func:`mutated`, drawn from ``rng``: ~50x cheaper per input.

    No shrinking, so a failure is reported as the raw input; the hypothesis
    phase of each target is what minimises.
    """
    if not seeds or rng.random() < 0.2:
        return rng.randbytes(rng.randrange(max_size))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randrange(1, 7)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data)) if data else 0
        if op == 0 and data:
            data[pos] = rng.choice(_INTERESTING)
        elif op == 1 and data:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 2:
            del data[pos:]
        elif op == 3:
            data[pos:pos] = rng.randbytes(rng.randrange(1, 17))
        elif op == 4:
            del data[pos : pos + rng.randrange(1, 17)]
        elif data:
            data[pos] = rng.randrange(256)
    return bytes(data)
