"""Real ClientHellos (from the stdlib's OpenSSL), and ways to cut them up."""

from __future__ import annotations

import contextlib
import ssl


def client_hello(server_name: str | None, alpn: list[str] | None = None) -> bytes:
    """The records OpenSSL sends first for a handshake to ``server_name``."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def handshake_message(records: bytes) -> bytes:
    """The handshake bytes carried by a run of handshake records."""
    out = bytearray()
    offset = 0
    while offset < len(records):
        length = int.from_bytes(records[offset + 3 : offset + 5], "big")
        out += records[offset + 5 : offset + 5 + length]
        offset += 5 + length
    return bytes(out)


def reframe(message: bytes, cuts: list[int]) -> bytes:
    """``message`` carried in one handshake record per piece between ``cuts``."""
    points = sorted({c for c in cuts if 0 < c < len(message)})
    pieces = [message[a:b] for a, b in zip([0, *points], [*points, len(message)], strict=True)]
    return b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in pieces)
