"""HTTP/1.1 requests from the guest to an intercepted server: check, scan, substitute (§11.4).

:class:`H1RequestRewriter` sits on the guest->server plaintext of one
connection. Bytes in (any cut: the TCP and TLS reads decide), bytes out that
go to the server. ``h11`` parses (as the server side of the guest's
connection); the rewriter emits each request again with the placeholders of
eligible secrets replaced and nothing else changed: request line, header
order and name case, chunk sizes (one emitted chunk per received chunk) and
trailers are kept, so a server sees what the guest wrote, up to h11's
normalization of optional whitespace.

Every request must name the TLS server name in its one ``Host`` header (and
in an absolute-form or CONNECT target): a request fronted to another host
over an allowed connection is refused, with or without secrets. A
placeholder of a secret that may not go to this host is a violation.

h11 is a one-request-at-a-time machine; pipelining is supported by
answering each finished request on the parser's side with a dummy response
(never sent anywhere) and starting its next cycle. After a request that asks
to switch protocols (``Upgrade``, ``CONNECT``) the rest of the stream is
relayed as opaque bytes, still scanned for forbidden placeholders; HTTP
sent after it (the server refused to switch) is refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import h11

from trionet.secrets.plan import SubstitutionPlan, ViolationScanner
from trionet.tls.clienthello import canonical_sni

__all__ = [
    "ECHOING_METHODS",
    "MAX_BODY",
    "MAX_HEAD",
    "H1RequestRewriter",
    "HttpRefusedError",
    "field_value",
    "host_part",
    "ip_or_none",
]

MAX_HEAD = 65536
MAX_BODY = 16 * 1024 * 1024
#: A chunk bigger than this is forwarded in pieces instead of held whole.
MAX_HELD_CHUNK = 65536
#: RFC 6455 §5.2: continuation, text, binary, close, ping, pong.
_WEBSOCKET_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))
_NO_FIELD_VALUE = re.compile(rb"[\0\r\n]")
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")
#: Methods whose response echoes the request (TRACK: IIS's TRACE), upper-cased.
ECHOING_METHODS = frozenset((b"TRACE", b"TRACK"))


class HttpRefusedError(Exception):
    """The request breaks a rule of the interceptor; ``reason`` is the audit reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def host_part(authority: bytes) -> str:
    """The host of a ``Host`` value or authority: port and trailing dot removed, lower-case."""
    try:
        text = authority.decode("ascii").strip()
    except UnicodeDecodeError:
        raise HttpRefusedError("host-mismatch", "the Host header is not ASCII") from None
    if text.startswith("["):
        # RFC 3986 §3.2.2: an IPv6 literal, then at most a port; a server may
        # take a name in brackets, or what follows them, for the host.
        host, sep, rest = text[1:].partition("]")
        if (
            not sep
            or not isinstance(ip_or_none(host), ipaddress.IPv6Address)
            or (rest and not (rest[:1] == ":" and rest[1:].isdigit()))
        ):
            raise HttpRefusedError("host-mismatch", "not an IPv6 literal in brackets")
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            host = text
    return canonical_sni(host)


def field_value(plan: SubstitutionPlan, name: bytes, value: bytes) -> bytes:
    """``plan.header_value``, refused when a secret put in has CR, LF or NUL.

    The name is scanned for forbidden placeholders too: it is a token, and
    ``$`` and ``_`` are token characters.

    A multi-line key, a JSON file or a value with a stray newline is no field
    value (RFC 9110 §5.5): in an HTTP/1 header its line breaks would end the
    line, or with a blank line the head, and the guest's next lines would
    frame as the body or a request of their own; an HTTP/2 server refuses it.
    """
    plan.check(name, "header")
    out = plan.header_value(name, value)
    if _NO_FIELD_VALUE.search(out) is not None:
        raise HttpRefusedError(
            "unsafe-secret-value", "a secret's value has CR, LF or NUL: not put in a header"
        )
    return out


def ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address, or None if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class H1RequestRewriter:
    """The guest->server direction of one intercepted HTTP/1.x connection."""

    def __init__(
        self, plan: SubstitutionPlan, authority: str | None, *, max_body: int = MAX_BODY
    ) -> None:
        self._plan = plan
        #: the plan of the request in progress (no substitution in an echoed one)
        self._request_plan = plan
        self._authority = authority
        self._max_body = max_body
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._scanner = ViolationScanner(plan)
        self.upgraded = False
        #: the first bytes after an upgrade request, until they show a WebSocket frame
        self._raw_start: bytes | None = b""
        self.requests = 0
        self._chunked = False
        self._chunk = bytearray()
        # A request whose body a secret's body scope may change is held whole.
        self._held: tuple[bytes, list[tuple[bytes, bytes]]] | None = None
        self._body = bytearray()

    def receive(self, data: bytes | bytearray | memoryview) -> bytes:
        """Guest bytes in; bytes for the server out. Raises on a refusal or violation."""
        if self.upgraded:
            return self._raw(data)
        if not data:
            return b""
        self._conn.receive_data(bytes(data))
        out = bytearray()
        self._pump(out)
        return bytes(out)

    def receive_eof(self) -> bytes:
        if self.upgraded:
            return b""
        self._conn.receive_data(b"")
        out = bytearray()
        self._pump(out)
        return bytes(out)

    # -- the event loop ----------------------------------------------------------

    def _pump(self, out: bytearray) -> None:
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpRefusedError(
                    "malformed-http", f"not a valid HTTP/1.1 request: {exc}"
                ) from None
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                if self._conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:  # type: ignore[attr-defined]
                    self._switch(out)
                return
            if isinstance(event, h11.Request):
                self._on_request(event, out)
            elif isinstance(event, h11.Data):
                self._on_data(event, out)
            elif isinstance(event, h11.EndOfMessage):
                self._on_end(event, out)
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _switch(self, out: bytearray) -> None:
        self.upgraded = True
        rest, _closed = self._conn.trailing_data
        self._scanner.reset()
        if rest:
            out += self._raw(rest)

    def _raw(self, data: bytes | bytearray | memoryview) -> bytes:
        """The stream after an upgrade request: opaque once it starts as a WebSocket.

        Whether the server switched is in its response, which this direction
        does not see. The guest's first bytes must therefore be a WebSocket
        client frame, which is masked (RFC 6455 §5.1): its second byte has
        the high bit set, which no HTTP request's has (a token character,
        space, CR or LF). A request after a refused upgrade would otherwise
        pass unchecked and unsubstituted, with any Host (domain fronting on
        an allowed connection): servers skip empty lines before a request
        (RFC 9112 §2.2) and many take any token as a method, so the first
        byte alone cannot tell. Other upgrades (h2c, a CONNECT tunnel) are
        refused the same way: what they carry is not inspected.
        """
        if self._raw_start is not None:
            start = self._raw_start + bytes(data)
            if len(start) < 2:
                self._raw_start = start
                return b""
            self._raw_start = None
            if not start[1] & 0x80 or start[0] & 0x0F not in _WEBSOCKET_OPCODES:
                raise HttpRefusedError(
                    "upgrade-not-taken",
                    "not a WebSocket frame after an upgrade request: the server did not switch",
                )
            data = start
        self._scanner.feed(data, "upgraded stream")
        return bytes(data)

    # -- requests ----------------------------------------------------------------

    def _check_authority(self, request: h11.Request) -> None:
        target = request.target
        # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT)
        # or "*". Anything else a server may read as an absolute URI after
        # its own fashion ("http:\\evil.example"), and route by it.
        if not (
            target.startswith(b"/")
            or target == b"*"
            or request.method == b"CONNECT"
            or _ABSOLUTE_FORM.match(target) is not None
        ):
            raise HttpRefusedError("malformed-http", "a request target of none of the four forms")
        expected = self._authority
        if expected is None:
            return
        hosts = [value for name, value in request.headers if name == b"host"]
        if len(hosts) != 1:
            raise HttpRefusedError(
                "host-mismatch", f"a request must carry exactly one Host header, not {len(hosts)}"
            )
        host = host_part(hosts[0])
        if host != expected:
            raise HttpRefusedError(
                "host-mismatch", f"Host {host!r} does not match the TLS server name {expected!r}"
            )
        authority: bytes | None = None
        if request.method == b"CONNECT":
            authority = target
        elif not target.startswith(b"/") and b"://" in target:
            authority = target.split(b"://", 1)[1].split(b"/", 1)[0].split(b"?", 1)[0]
            if b"@" in authority:
                raise HttpRefusedError("host-mismatch", "userinfo in an absolute request target")
        if authority is not None and host_part(authority) != expected:
            raise HttpRefusedError(
                "host-mismatch", "the request target names another host than the TLS server name"
            )

    @staticmethod
    def _check_framing(request: h11.Request) -> None:
        """Refuse what a server may frame otherwise than h11 did (RFC 9112 §6.1, §6.3).

        h11 lets Transfer-Encoding win over Content-Length, and frames
        chunked HTTP/1.0 bodies; the request is emitted again with both
        headers as received, so a server that reads it by Content-Length,
        or ignores chunking in HTTP/1.0, sees other message boundaries:
        bytes trionet took for a body become a request of their own (to any
        Host), and the next request, with its substituted secrets, its body.
        """
        if not request.http_version.startswith(b"1."):
            raise HttpRefusedError("malformed-http", "not an HTTP/1.x request line")
        if not any(name == b"transfer-encoding" for name, _ in request.headers):
            return
        if any(name == b"content-length" for name, _ in request.headers):
            raise HttpRefusedError(
                "malformed-http", "Transfer-Encoding together with Content-Length"
            )
        if request.http_version < b"1.1":
            raise HttpRefusedError("malformed-http", "Transfer-Encoding in an HTTP/1.0 request")

    def _plan_for(self, request: h11.Request) -> SubstitutionPlan:
        """No secret in a request whose response echoes it (RFC 9110 §9.3.8: a client
        must not send credentials in TRACE): the guest would read the real value
        there and could send it anywhere. Such a request has no content either."""
        if request.method.upper() not in ECHOING_METHODS:
            return self._plan
        for name, value in request.headers:
            if name == b"transfer-encoding" or (name == b"content-length" and int(value)):
                raise HttpRefusedError("malformed-http", "content in a TRACE request")
        return self._plan.without_substitutions()

    def _on_request(self, request: h11.Request, out: bytearray) -> None:
        self._check_framing(request)
        self._check_authority(request)
        self.requests += 1
        plan = self._request_plan = self._plan_for(request)
        self._scanner.reset()
        plan.check(request.method, "request line")  # a token, like "$MSB_X"
        target = plan.target(request.target)
        headers = [
            (raw_name, field_value(plan, raw_name, value))
            for raw_name, value in request.headers.raw_items()
        ]
        self._chunked = any(name == b"transfer-encoding" for name, _ in request.headers)
        length = next(
            (int(value) for name, value in request.headers if name == b"content-length"), 0
        )
        encoded = any(
            name == b"content-encoding" and value.lower() != b"identity"
            for name, value in request.headers
        )
        line = request.method + b" " + target + b" HTTP/" + request.http_version + b"\r\n"
        if plan.wants_body and not encoded and (self._chunked or length > 0):
            if length > self._max_body:
                raise HttpRefusedError("too-large", "a request body too large to rewrite")
            self._held = (line, headers)
            self._body.clear()
            return
        out += line
        _emit_headers(out, headers)

    def _on_data(self, event: h11.Data, out: bytearray) -> None:
        self._scanner.feed(event.data, "body")
        if self._held is not None:
            self._body += event.data
            if len(self._body) > self._max_body:
                raise HttpRefusedError("too-large", "a request body too large to rewrite")
        elif self._chunked:
            self._chunk += event.data
            if event.chunk_end or len(self._chunk) >= MAX_HELD_CHUNK:
                _emit_chunk(out, self._chunk)
                self._chunk.clear()
        else:
            out += event.data

    def _on_end(self, event: h11.EndOfMessage, out: bytearray) -> None:
        plan = self._request_plan
        trailers = [
            (name, field_value(plan, name, value)) for name, value in event.headers.raw_items()
        ]
        if self._held is not None:
            line, headers = self._held
            self._held = None
            body = plan.body(bytes(self._body))
            self._body.clear()
            if not self._chunked:
                headers = [
                    (name, str(len(body)).encode() if name.lower() == b"content-length" else value)
                    for name, value in headers
                ]
            out += line
            _emit_headers(out, headers)
            if self._chunked:
                if body:
                    _emit_chunk(out, body)
                out += b"0\r\n"
                _emit_headers(out, trailers)
            else:
                out += body
        elif self._chunked:
            if self._chunk:
                _emit_chunk(out, self._chunk)
                self._chunk.clear()
            out += b"0\r\n"
            _emit_headers(out, trailers)
        self._chunked = False
        conn = self._conn
        if conn.their_state is h11.DONE and conn.our_state is h11.SEND_RESPONSE:
            # The parser's side of the cycle, so it reads the next pipelined request.
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            if conn.states[h11.SERVER] is h11.DONE:
                conn.start_next_cycle()


def _emit_headers(out: bytearray, headers: Sequence[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        out += name + b": " + value + b"\r\n"
    out += b"\r\n"


def _emit_chunk(out: bytearray, data: bytes | bytearray) -> None:
    out += b"%x\r\n" % len(data)
    out += data
    out += b"\r\n"
