"""Pick the request rewriter for an intercepted connection: by ALPN, else by the first bytes."""

from __future__ import annotations

from typing import Protocol

from trionet.http.h1 import H1RequestRewriter
from trionet.http.h2 import PREFACE, H2RequestRewriter
from trionet.secrets.plan import SubstitutionPlan

__all__ = ["AutoRewriter", "RequestRewriter", "rewriter_for"]


class RequestRewriter(Protocol):
    """Guest bytes in, server bytes out; raises on a refusal or a secret violation."""

    def receive(self, data: bytes | bytearray | memoryview) -> bytes: ...
    def receive_eof(self) -> bytes: ...


def rewriter_for(
    plan: SubstitutionPlan, authority: str | None, alpn: str | None
) -> RequestRewriter:
    """``h2`` and ``http/1.1`` as negotiated; without ALPN, HTTP/2 with prior knowledge is
    recognised by its preface and everything else is HTTP/1."""
    if alpn == "h2":
        return H2RequestRewriter(plan, authority)
    if alpn == "http/1.1":
        return H1RequestRewriter(plan, authority)
    return AutoRewriter(plan, authority)


class AutoRewriter:
    """Holds the first bytes until they are, or cannot be, the HTTP/2 client preface."""

    def __init__(self, plan: SubstitutionPlan, authority: str | None) -> None:
        self._plan = plan
        self._authority = authority
        self._held = b""
        self._inner: RequestRewriter | None = None

    def receive(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._inner is not None:
            return self._inner.receive(data)
        self._held += bytes(data)
        prefix = self._held[: len(PREFACE)]
        if PREFACE.startswith(prefix) and len(prefix) < len(PREFACE):
            return b""
        if prefix == PREFACE:
            self._inner = H2RequestRewriter(self._plan, self._authority)
        else:
            self._inner = H1RequestRewriter(self._plan, self._authority)
        held, self._held = self._held, b""
        return self._inner.receive(held)

    def receive_eof(self) -> bytes:
        if self._inner is None:
            self._inner = H1RequestRewriter(self._plan, self._authority)
            out = self._inner.receive(self._held)
            return out + self._inner.receive_eof()
        return self._inner.receive_eof()
