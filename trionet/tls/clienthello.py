"""Peek at a guest's ClientHello: server name (SNI) and ALPN list, without answering it.

Interception and policy must know which name the guest wants before any
byte goes anywhere, yet the ClientHello must stay intact (a bypassed
connection forwards it untouched). This parser reads a growing buffer of the
guest's first bytes and answers one of: need more bytes, not TLS, malformed,
or the parsed hello.

Unlike a one-record parser, the handshake message is reassembled across
TLS records (RFC 8446 §5.1 allows a ClientHello fragmented over several
records, and post-quantum key shares make hellos larger than one segment),
so it does not care how TCP or TLS cut the bytes. The buffer is capped
(:data:`MAX_HELLO_BYTES`): a guest cannot make us hold more.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "MAX_HELLO_BYTES",
    "ClientHello",
    "PeekResult",
    "PeekStatus",
    "canonical_sni",
    "peek_client_hello",
]

#: Guest bytes we are willing to hold while waiting for a complete hello (§14).
MAX_HELLO_BYTES = 16384

_CONTENT_HANDSHAKE = 0x16
_HANDSHAKE_CLIENT_HELLO = 1
_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_NAME_TYPE_HOST = 0
_MAX_RECORD = 16384 + 2048  # plaintext limit plus slack some stacks use


class PeekStatus(enum.Enum):
    NEED_MORE = "need-more"  # a strict prefix of something that may still be a hello
    NOT_TLS = "not-tls"  # the first byte is not a handshake record
    MALFORMED = "malformed"  # TLS-looking, but broken or over the size cap
    COMPLETE = "complete"


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What the peek learnt. ``sni`` is canonical (lower-case, no trailing dot) or None."""

    sni: str | None
    alpn: tuple[str, ...]
    #: Bytes of the buffer that the records carrying the hello take up.
    length: int


@dataclass(frozen=True, slots=True)
class PeekResult:
    status: PeekStatus
    hello: ClientHello | None = None
    reason: str = ""


_NEED_MORE = PeekResult(PeekStatus.NEED_MORE)


class _MalformedError(Exception):
    pass


def canonical_sni(name: str) -> str:
    """Lower-case, trailing dot removed: the form policy and certificates use."""
    return name.removesuffix(".").lower()


def peek_client_hello(buffer: bytes | bytearray | memoryview) -> PeekResult:
    """Parse the ClientHello at the start of ``buffer`` (the guest's first bytes).

    Every strict prefix of a valid hello gives NEED_MORE; the first byte
    alone decides NOT_TLS, so server-first or plain-text protocols are let
    go at once.
    """
    data = memoryview(buffer).cast("B")
    if not data:
        return _NEED_MORE
    if data[0] != _CONTENT_HANDSHAKE:
        return PeekResult(PeekStatus.NOT_TLS)
    handshake = bytearray()
    offset = 0
    needed: int | None = None  # total handshake message length once its header is in
    while needed is None or len(handshake) < needed:
        if len(data) - offset < 5:
            return _too_big_or_more(len(data))
        content_type = data[offset]
        major = data[offset + 1]
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        if content_type != _CONTENT_HANDSHAKE:
            return PeekResult(PeekStatus.MALFORMED, reason="non-handshake record inside hello")
        if major != 3:
            return PeekResult(PeekStatus.MALFORMED, reason="record version is not 3.x")
        if length == 0 or length > _MAX_RECORD:
            return PeekResult(PeekStatus.MALFORMED, reason="bad record length")
        body = data[offset + 5 : offset + 5 + length]
        if len(body) < length:
            return _too_big_or_more(len(data))
        handshake += body
        offset += 5 + length
        if needed is None and len(handshake) >= 4:
            if handshake[0] != _HANDSHAKE_CLIENT_HELLO:
                return PeekResult(PeekStatus.MALFORMED, reason="first handshake is not a hello")
            needed = 4 + int.from_bytes(handshake[1:4], "big")
            if needed > MAX_HELLO_BYTES:
                return PeekResult(PeekStatus.MALFORMED, reason="hello over the size cap")
    try:
        sni, alpn = _parse_hello_body(memoryview(handshake)[4:needed])
    except _MalformedError as exc:
        return PeekResult(PeekStatus.MALFORMED, reason=str(exc))
    return PeekResult(PeekStatus.COMPLETE, ClientHello(sni, alpn, offset))


def _too_big_or_more(have: int) -> PeekResult:
    if have >= MAX_HELLO_BYTES + 5:
        return PeekResult(PeekStatus.MALFORMED, reason="hello over the size cap")
    return _NEED_MORE


class _Reader:
    """Bounds-checked big-endian reads; any overrun is malformed."""

    __slots__ = ("data", "pos")

    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise _MalformedError("length overruns the hello")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> memoryview:
        return self.take(self.uint(length_bytes))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def _parse_hello_body(body: memoryview) -> tuple[str | None, tuple[str, ...]]:
    r = _Reader(body)
    r.take(2 + 32)  # legacy_version, random
    r.vector(1)  # session id
    suites = r.vector(2)
    if len(suites) % 2 or not suites:
        raise _MalformedError("bad cipher suite list")
    if not r.vector(1):
        raise _MalformedError("no compression methods")
    if r.left == 0:
        return None, ()  # a hello without extensions (SSLv3 style): no SNI
    extensions = _Reader(r.vector(2))
    if r.left:
        raise _MalformedError("bytes after the extensions")
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    seen: set[int] = set()
    while extensions.left:
        ext_type = extensions.uint(2)
        ext = extensions.vector(2)
        if ext_type in seen:
            raise _MalformedError("duplicate extension")  # RFC 8446 §4.2
        seen.add(ext_type)
        if ext_type == _EXT_SERVER_NAME:
            sni = _parse_server_name(ext)
        elif ext_type == _EXT_ALPN:
            alpn = _parse_alpn(ext)
    return sni, alpn


def _parse_server_name(ext: memoryview) -> str | None:
    r = _Reader(ext)
    names = _Reader(r.vector(2))
    if r.left:
        raise _MalformedError("bytes after the server name list")
    found: str | None = None
    while names.left:
        name_type = names.uint(1)
        name = bytes(names.vector(2))
        if name_type == _NAME_TYPE_HOST and found is None:
            if not name or not all(0x21 <= b < 0x7F for b in name):
                raise _MalformedError("server name is not printable ASCII")
            found = canonical_sni(name.decode("ascii"))
            if not found:
                raise _MalformedError("empty server name")
    return found


def _parse_alpn(ext: memoryview) -> tuple[str, ...]:
    r = _Reader(ext)
    protocols = _Reader(r.vector(2))
    if r.left:
        raise _MalformedError("bytes after the ALPN list")
    out: list[str] = []
    while protocols.left:
        proto = bytes(protocols.vector(1))
        if not proto:
            raise _MalformedError("empty ALPN protocol name")
        out.append(proto.decode("latin-1"))
    return tuple(out)
