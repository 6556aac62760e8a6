"""32-bit TCP sequence-number arithmetic (RFC 9293 section 3.4).

Sequence numbers wrap at 2**32, so "less than" only means something within
half the space. The connection keeps its own counters as *unwrapped* Python
ints that grow without bound (so its internal comparisons are plain integer
comparisons and cannot get wrap-around wrong) and converts at the wire with
:func:`unwrap` and ``& SEQ_MASK``. The comparison helpers here are for code
that works on raw wire values.
"""

from __future__ import annotations

__all__ = [
    "SEQ_MASK",
    "seq_add",
    "seq_diff",
    "seq_ge",
    "seq_gt",
    "seq_le",
    "seq_lt",
    "unwrap",
]

SEQ_MASK = 0xFFFF_FFFF
_HALF = 0x8000_0000
_SPACE = 0x1_0000_0000


def seq_add(a: int, n: int) -> int:
    """``a + n`` in sequence space."""
    return (a + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in sequence space, in [-2**31, 2**31)."""
    d = (a - b) & SEQ_MASK
    return d - _SPACE if d >= _HALF else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


def seq_gt(a: int, b: int) -> bool:
    return seq_diff(a, b) > 0


def seq_ge(a: int, b: int) -> bool:
    return seq_diff(a, b) >= 0


def unwrap(wire: int, ref: int) -> int:
    """The unwrapped value nearest to ``ref`` whose low 32 bits are ``wire``.

    ``ref`` is an unwrapped counter of the connection (e.g. RCV.NXT); the
    result may be below or above it by up to 2**31.
    """
    d = (wire - ref) & SEQ_MASK
    if d >= _HALF:
        d -= _SPACE
    return ref + d
