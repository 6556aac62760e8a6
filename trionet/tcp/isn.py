"""Initial sequence numbers per RFC 6528: ``ISN = M + F(4-tuple, secret)``.

``M`` is a clock ticking every 4 microseconds, derived from the caller's
``now`` (this package never reads a clock). ``F`` is a keyed hash, so an
off-path attacker who does not know the secret cannot predict the ISN of a
connection, while the clock keeps successive incarnations of one 4-tuple
moving forward through the sequence space (RFC 9293 section 3.4.1, MUST-8).
"""

from __future__ import annotations

import hashlib

from trionet.tcp.seq import SEQ_MASK

__all__ = ["IsnGenerator"]

_TICKS_PER_SECOND = 250_000  # one tick per 4 microseconds


class IsnGenerator:
    """Computes RFC 6528 initial sequence numbers from a secret key.

    The secret must stay the same for the life of the process (changing it
    makes ISNs of a 4-tuple jump) and must not be guessable: pass 16 to 64
    bytes from a CSPRNG.
    """

    __slots__ = ("_keyed", "_secret")

    def __init__(self, secret: bytes) -> None:
        if not 16 <= len(secret) <= 64:
            raise ValueError("ISN secret must be 16 to 64 bytes")
        self._secret = bytes(secret)
        # Keying BLAKE2 compresses a whole block; copying a keyed state is a
        # quarter of the cost and gives the same digests.
        self._keyed = hashlib.blake2b(key=self._secret, digest_size=4)

    def isn(
        self,
        local_addr: bytes,
        local_port: int,
        remote_addr: bytes,
        remote_port: int,
        now: float,
    ) -> int:
        """The ISN for a connection from ``local`` to ``remote`` at time ``now``.

        Addresses are packed (4 bytes for IPv4, 16 for IPv6), as the stack
        already holds them.
        """
        h = self._keyed.copy()
        h.update(local_addr)
        h.update(remote_addr)
        h.update(((local_port & 0xFFFF) << 16 | (remote_port & 0xFFFF)).to_bytes(4, "big"))
        clock = int(now * _TICKS_PER_SECOND)
        return (clock + int.from_bytes(h.digest(), "big")) & SEQ_MASK
