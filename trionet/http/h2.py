"""HTTP/2 requests from the guest to an intercepted server: check, scan, substitute (§11.5).

Only the guest->server direction is rewritten, at the frame level: HEADERS
and CONTINUATION are reassembled per stream, HPACK-decoded (the guest's
encoder state, mirrored by our decoder), checked (``:authority``/``host``
equal the SNI), scanned for forbidden placeholders, substituted, and encoded
again with never-indexed literals, so our encoder never touches the dynamic
table that the server's decoder keeps for this direction. Every other frame
passes unchanged; DATA is scanned (per-stream tails, so split placeholders
are seen). The server->guest direction is not touched at all, so its HPACK
state and flow control stay the guest's and the server's business.

Limits as the reference: header block 64 KiB, 1024 fields, 1024 streams
with open state; a PUSH_PROMISE from a client, DATA on a stream that never
had HEADERS, or a placeholder of an eligible secret in DATA (no HTTP/2 body
substitution) are refused.
"""

from __future__ import annotations

import re
import struct

import hpack
from hpack import NeverIndexedHeaderTuple

from trionet.http.h1 import ECHOING_METHODS, HttpRefusedError, field_value, host_part
from trionet.secrets.plan import SubstitutionPlan, ViolationScanner

__all__ = ["PREFACE", "H2RequestRewriter"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_BLOCK = 65536
MAX_FIELDS = 1024
MAX_STREAMS = 1024
MAX_FRAME_OUT = 16384
_HEADER = struct.Struct("!I B I")  # length(24)+type packed in the first word

DATA, HEADERS, PUSH_PROMISE, CONTINUATION = 0x0, 0x1, 0x5, 0x9
#: RFC 9113 §8.3.1, and RFC 8441's :protocol (extended CONNECT, WebSockets).
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
#: RFC 9113 §8.2.2
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
#: RFC 9110 §5.1 token, lower-case only (RFC 9113 §8.2.1)
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE = re.compile(rb"[\0\r\n]|\A[ \t]|[ \t]\Z")
END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20


class H2RequestRewriter:
    """The guest->server direction of one intercepted HTTP/2 connection."""

    upgraded = False

    def __init__(self, plan: SubstitutionPlan, authority: str | None) -> None:
        self._plan = plan
        self._authority = authority
        self._buffer = bytearray()
        self._preface_done = False
        self._decoder = hpack.Decoder()
        self._decoder.max_allowed_table_size = 65536
        self._decoder.max_header_list_size = MAX_BLOCK
        self._encoder = hpack.Encoder()
        # A header block in progress: (stream, flags of HEADERS, priority bytes, fragments)
        self._block: tuple[int, int, bytes, bytearray] | None = None
        self._streams: dict[int, ViolationScanner] = {}
        #: client stream ids only grow (RFC 9113 §5.1.1): the highest seen is all we keep
        self._last_stream = 0
        self.requests = 0

    def receive(self, data: bytes | bytearray | memoryview) -> bytes:
        self._buffer += data
        out = bytearray()
        if not self._preface_done:
            if len(self._buffer) < len(PREFACE):
                if not PREFACE.startswith(bytes(self._buffer)):
                    raise HttpRefusedError("malformed-http", "not the HTTP/2 client preface")
                return b""
            if self._buffer[: len(PREFACE)] != PREFACE:
                raise HttpRefusedError("malformed-http", "not the HTTP/2 client preface")
            out += PREFACE
            del self._buffer[: len(PREFACE)]
            self._preface_done = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[0:3], "big")
            if len(self._buffer) < 9 + length:
                break
            kind = self._buffer[3]
            flags = self._buffer[4]
            stream = int.from_bytes(self._buffer[5:9], "big") & 0x7FFF_FFFF
            frame = bytes(self._buffer[: 9 + length])
            del self._buffer[: 9 + length]
            self._frame(out, frame, kind, flags, stream)
        return bytes(out)

    def receive_eof(self) -> bytes:
        return b""

    # -- frames --------------------------------------------------------------------

    def _frame(self, out: bytearray, frame: bytes, kind: int, flags: int, stream: int) -> None:
        payload = memoryview(frame)[9:]
        if self._block is not None and kind != CONTINUATION:
            raise HttpRefusedError("malformed-http", "a frame interleaved with a header block")
        if kind == HEADERS:
            if stream == 0 or stream % 2 == 0:
                raise HttpRefusedError("malformed-http", "HEADERS on a non-client stream")
            body = _unpad(payload, flags)
            priority = b""
            if flags & PRIORITY:
                if len(body) < 5:
                    raise HttpRefusedError("malformed-http", "short PRIORITY fields")
                priority, body = bytes(body[:5]), body[5:]
            self._block = (stream, flags, priority, bytearray(body))
            self._check_block_size()
            if flags & END_HEADERS:
                self._finish_block(out)
        elif kind == CONTINUATION:
            if self._block is None or self._block[0] != stream:
                raise HttpRefusedError("malformed-http", "CONTINUATION without its HEADERS")
            self._block[3].extend(payload)
            self._check_block_size()
            if flags & END_HEADERS:
                self._finish_block(out)
        elif kind == PUSH_PROMISE:
            raise HttpRefusedError("malformed-http", "PUSH_PROMISE from a client")
        elif kind == DATA:
            scanner = self._streams.get(stream)
            if scanner is None:
                raise HttpRefusedError("malformed-http", "DATA on a stream without HEADERS")
            data = bytes(_unpad(payload, flags))
            scanner.feed(data, "body")
            if self._plan.wants_body and self._plan.eligible_in(data):
                raise HttpRefusedError("h2-body-secret", "HTTP/2 request bodies are not rewritten")
            out += frame
            if flags & END_STREAM:
                del self._streams[stream]
        else:
            out += frame  # SETTINGS, WINDOW_UPDATE, PING, RST_STREAM, GOAWAY, PRIORITY, ...
            if kind == 0x3:  # RST_STREAM
                self._streams.pop(stream, None)

    def _check_block_size(self) -> None:
        assert self._block is not None
        if len(self._block[3]) > MAX_BLOCK:
            raise HttpRefusedError("too-large", "an HTTP/2 header block over 64 KiB")

    def _finish_block(self, out: bytearray) -> None:
        assert self._block is not None
        stream, flags, priority, block = self._block
        self._block = None
        try:
            fields = [
                (bytes(name), bytes(value))
                for name, value in self._decoder.decode(bytes(block), raw=True)
            ]
        except hpack.HPACKError as exc:
            raise HttpRefusedError("malformed-http", f"bad HPACK: {exc}") from None
        if len(fields) > MAX_FIELDS:
            raise HttpRefusedError("too-large", "over 1024 header fields")
        initial = stream > self._last_stream
        if initial:
            if len(self._streams) >= MAX_STREAMS:
                raise HttpRefusedError("too-large", "over 1024 open HTTP/2 streams")
            self._last_stream = stream
            self.requests += 1
        elif stream not in self._streams:
            raise HttpRefusedError("malformed-http", "HEADERS on a closed or reused stream")
        elif not flags & END_STREAM:
            raise HttpRefusedError("malformed-http", "trailers without END_STREAM")
        rewritten = self._rewrite(fields, initial, bool(flags & END_STREAM))
        if initial and not flags & END_STREAM:
            self._streams[stream] = ViolationScanner(self._plan)
        elif not initial and flags & END_STREAM:
            self._streams.pop(stream, None)
        encoded = self._encoder.encode(
            [NeverIndexedHeaderTuple(name, value) for name, value in rewritten]
        )
        first_room = MAX_FRAME_OUT - len(priority)
        pieces = [encoded[:first_room]]
        pieces += [
            encoded[i : i + MAX_FRAME_OUT] for i in range(first_room, len(encoded), MAX_FRAME_OUT)
        ]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if index == 0:
                kind = HEADERS
                out_flags = (flags & (END_STREAM | PRIORITY)) | (END_HEADERS if last else 0)
                body = priority + piece
            else:
                kind = CONTINUATION
                out_flags = END_HEADERS if last else 0
                body = piece
            out += (
                len(body).to_bytes(3, "big") + bytes([kind, out_flags]) + stream.to_bytes(4, "big")
            )
            out += body

    def _rewrite(
        self, fields: list[tuple[bytes, bytes]], initial: bool, ends: bool
    ) -> list[tuple[bytes, bytes]]:
        _check_fields(fields, initial)
        plan = self._plan
        method = next((value for name, value in fields if name == b":method"), b"")
        if method.upper() in ECHOING_METHODS:
            # As in HTTP/1 (H1RequestRewriter._plan_for); without END_STREAM
            # trailers could carry secrets into the echo.
            if not ends:
                raise HttpRefusedError("malformed-http", "content in a TRACE request")
            plan = plan.without_substitutions()
        expected = self._authority
        authorities = [v for n, v in fields if n == b":authority"]
        if expected is not None:
            if initial and len(authorities) != 1 and not any(n == b"host" for n, _ in fields):
                raise HttpRefusedError("host-mismatch", "a request needs exactly one :authority")
            for name, value in fields:
                if name in (b":authority", b"host") and host_part(value) != expected:
                    raise HttpRefusedError(
                        "host-mismatch",
                        f"{name.decode()} {host_part(value)!r} does not match the TLS "
                        f"server name {expected!r}",
                    )
        out = []
        for name, value in fields:
            if name == b":path":
                out.append((name, plan.target(value)))
            elif not name.startswith(b":"):
                out.append((name, field_value(plan, name, value)))
            else:
                plan.check(value, "header")
                out.append((name, value))
        return out


def _check_fields(fields: list[tuple[bytes, bytes]], initial: bool) -> None:
    """Refuse a malformed field section (RFC 9113 §8.2, §8.3): it is re-encoded as is.

    The authority check compares ``host`` and ``:authority`` byte for byte,
    so a ``HOST`` or ``host `` field, a second ``:path``, or a value with CR
    LF (``x: a\r\nHost: evil``) would reach a server, or an HTTP/1 hop
    behind it, that may route by them: these are malformed in HTTP/2, and
    a conforming intermediary does not forward them (§8.1.1).
    """
    regular = False
    seen: set[bytes] = set()
    for name, value in fields:
        if _BAD_VALUE.search(value) is not None:
            raise HttpRefusedError(
                "malformed-http", "a field value with CR, LF, NUL or edge space"
            )
        if name.startswith(b":"):
            if regular or not initial or name not in _REQUEST_PSEUDO or name in seen:
                raise HttpRefusedError("malformed-http", f"misplaced pseudo-header {name!r}")
            seen.add(name)
            # §8.3.1: an absolute path or "*". An HTTP/1 hop would send any
            # other value as the request target, and an origin routes by an
            # absolute URI before Host (RFC 9112 §3.2.2).
            if name == b":path" and not (value.startswith(b"/") or value == b"*"):
                raise HttpRefusedError("malformed-http", ":path is not an absolute path")
            continue
        regular = True
        if _FIELD_NAME.fullmatch(name) is None:
            raise HttpRefusedError("malformed-http", "a field name that is not a lower-case token")
        if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
            raise HttpRefusedError("malformed-http", f"connection-specific field {name!r}")
    if initial and b":method" not in seen:
        raise HttpRefusedError("malformed-http", "a request without :method")


def _unpad(payload: memoryview, flags: int) -> memoryview:
    if not flags & PADDED:
        return payload
    if not payload:
        raise HttpRefusedError("malformed-http", "PADDED frame without a pad length")
    pad = payload[0]
    if pad >= len(payload):
        raise HttpRefusedError("malformed-http", "padding longer than the frame")
    return payload[1 : len(payload) - pad]
