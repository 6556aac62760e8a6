"""The HTTP/1 rewriter as transcripts: guest bytes in (cut anywhere), server bytes out."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet.http.h1 import H1RequestRewriter, HttpRefusedError
from trionet.secrets.config import SecretsConfig, ViolationKind
from trionet.secrets.plan import SecretViolationError, build_plan

HOST = "api.example.com"
CONFIG = SecretsConfig.from_dict(
    {
        "secrets": [
            {
                "env_var": "KEY",
                "value": "REAL-key-1",
                "allowed_hosts": [{"exact": HOST}],
                "injection": {"query_params": True, "body": True},
            },
            {
                "env_var": "OTHER",
                "value": "REAL-other",
                "allowed_hosts": [{"exact": "other.example"}],
                "on_violation": "block-and-terminate",
            },
            {"env_var": "TOKEN", "value": "REAL-token", "allowed_hosts": [{"exact": HOST}]},
        ]
    }
)


def rewriter(host: str = HOST, *, identity: bool = True) -> H1RequestRewriter:
    plan = build_plan(CONFIG, host, tls_intercepted=True, identity=lambda _p: identity)
    return H1RequestRewriter(plan, host)


def run(data: bytes, cuts: list[int] | None = None, host: str = HOST) -> bytes:
    r = rewriter(host)
    points = sorted({c for c in (cuts or []) if 0 < c < len(data)})
    out = b""
    for a, b in zip([0, *points], [*points, len(data)], strict=True):
        out += r.receive(data[a:b])
    return out + r.receive_eof()


def test_headers_basic_auth_query_and_body_are_substituted() -> None:
    basic = base64.b64encode(b"user:$MSB_KEY").decode()
    request = (
        "POST /v1?k=$MSB_KEY&z=%24MSB_KEY HTTP/1.1\r\n"
        f"Host: {HOST}\r\nAuthorization: Basic {basic}\r\nX-Token: $MSB_TOKEN\r\n"
        "Content-Length: 12\r\n\r\nkey=$MSB_KEY"
    ).encode()
    out = run(request)
    assert b"k=REAL-key-1&z=REAL-key-1" in out
    assert base64.b64encode(b"user:REAL-key-1") in out
    assert b"X-Token: REAL-token" in out
    assert out.endswith(b"Content-Length: 14\r\n\r\nkey=REAL-key-1")
    assert b"$MSB" not in out


def test_chunked_body_with_trailers_and_keepalive_pipelining() -> None:
    request = (
        f"POST /a HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nkey=\r\n8\r\n$MSB_KEY\r\n0\r\nX-T: $MSB_TOKEN\r\n\r\n"
        f"GET /b HTTP/1.1\r\nHost: {HOST}:443\r\nX-Token: $MSB_TOKEN\r\n\r\n"
    ).encode()
    for cuts in ([], list(range(1, len(request)))):
        out = run(request, cuts)
        assert (
            out
            == (
                f"POST /a HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
                "e\r\nkey=REAL-key-1\r\n0\r\nX-T: REAL-token\r\n\r\n"
                f"GET /b HTTP/1.1\r\nHost: {HOST}:443\r\nX-Token: REAL-token\r\n\r\n"
            ).encode()
        )


def test_websocket_upgrade_substitutes_then_passes_frames() -> None:
    request = (
        f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer $MSB_KEY\r\n\r\n"
    ).encode() + b"\x81\x85\0\0\0\0hello"
    r = rewriter()
    out = r.receive(request)
    assert b"Authorization: Bearer REAL-key-1" in out
    assert out.endswith(b"\x81\x85\0\0\0\0hello")
    assert r.upgraded
    assert r.receive(b"\x81\x82\0\0\0\0hi") == b"\x81\x82\0\0\0\0hi"
    with pytest.raises(SecretViolationError):  # a zero mask keeps the text as it is
        r.receive(b"\x81\x8a\0\0\0\0$MSB_OTHER")


@pytest.mark.parametrize(
    "head",
    [
        "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: {HOST}\r\nHost: evil.example\r\n\r\n",
        f"GET http://evil.example/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
        f"GET http://x@{HOST}/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
        f"CONNECT evil.example:443 HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
        # Brackets hold an IPv6 literal and only a port may follow (RFC 3986 §3.2.2):
        # a server may take what follows them for the host.
        f"GET / HTTP/1.1\r\nHost: [{HOST}]evil.example\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: [{HOST}]\r\n\r\n",
        f"GET https://[{HOST}]evil.example/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
    ],
)
def test_authority_must_equal_the_sni(head: str) -> None:
    with pytest.raises(HttpRefusedError) as info:
        run(head.encode())
    # h11 itself refuses a duplicate Host (RFC 9112 §3.2): malformed, refused all the same.
    assert info.value.reason in ("host-mismatch", "malformed-http")
    if "evil" in head and head.count("Host") == 1:
        assert info.value.reason == "host-mismatch"


def test_http_after_an_upgrade_request_is_refused() -> None:
    """A refused upgrade must not turn the rest of the connection into unchecked bytes."""
    upgrade = (
        f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    # Servers skip empty lines before a request line (RFC 9112 §2.2), and many take
    # any token as a method: not only capitals start a request.
    for start in (b"GET", b"\r\nGET", b"\nGET", b"1X", b"get", b"_GET", b"PRI"):
        fronted = start + b" / HTTP/1.1\r\nHost: evil.example\r\n\r\n"
        for pieces in (
            [upgrade + fronted],
            [upgrade, fronted],
            [upgrade, *(fronted[i : i + 1] for i in range(len(fronted)))],
        ):
            r = rewriter()
            with pytest.raises(HttpRefusedError) as info:
                for piece in pieces:
                    r.receive(piece)
            assert info.value.reason == "upgrade-not-taken", (start, len(pieces))


def test_websocket_frames_after_an_upgrade_pass_even_byte_by_byte() -> None:
    upgrade = (
        f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    frame = b"\x81\x85\x01\x02\x03\x04" + bytes(
        c ^ m for c, m in zip(b"hello", b"\x01\x02\x03\x04\x01", strict=True)
    )
    r = rewriter()
    out = r.receive(upgrade)
    out += b"".join(r.receive(frame[i : i + 1]) for i in range(len(frame)))
    assert out == upgrade + frame


def test_second_pipelined_request_is_checked_too() -> None:
    good = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    r = rewriter()
    assert r.receive(good.encode()) == good.encode()
    with pytest.raises(HttpRefusedError):
        r.receive(b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")


def test_malformed_http_is_refused() -> None:
    with pytest.raises(HttpRefusedError) as info:
        run(b"\x16\x03\x01garbage\r\n\r\n")
    assert info.value.reason == "malformed-http"
    with pytest.raises(HttpRefusedError):
        run(
            f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )


#: Requests a server may frame otherwise than h11 does (RFC 9112 §6.1, §6.3).
SMUGGLED = f"GET /x HTTP/1.1\r\nHost: {HOST}\r\nX-Token: $MSB_TOKEN\r\n\r\n"
AMBIGUOUS = {
    # CL.TE: a server that frames by Content-Length reads the 4 bytes "3b\r\n" as
    # the body and the chunk data as a request of its own, to another virtual host,
    # whose body then swallows the next request and its substituted secret.
    "content-length and transfer-encoding": (
        f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3b\r\n"
        "GET / HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 100\r\n\r\n"
        "\r\n0\r\n\r\n" + SMUGGLED
    ),
    "transfer-encoding then content-length": (
        f"POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 100\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    # §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
    "transfer-encoding in HTTP/1.0": (
        f"POST / HTTP/1.0\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    # §11.4: the version must be HTTP/1.x.
    "an HTTP/2.0 request line": f"GET / HTTP/2.0\r\nHost: {HOST}\r\n\r\n",
}


@pytest.mark.parametrize(
    "target", ["evil.example:443", "http:evil.example", "http:\\\\evil.example\\x", "urn:x"]
)
def test_a_request_target_of_none_of_the_four_forms_is_refused(target: str) -> None:
    """RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT) or "*".
    A server may take another form for an absolute URI naming another host."""
    with pytest.raises(HttpRefusedError) as info:
        rewriter().receive(f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert info.value.reason == "malformed-http"


def test_the_four_target_forms_pass() -> None:
    for line in (
        "GET //x/y?q HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        f"GET HTTPS://{HOST}:443/p HTTP/1.1",
        f"CONNECT {HOST}:443 HTTP/1.1",
    ):
        head = f"{line}\r\nHost: {HOST}\r\n\r\n".encode()
        assert rewriter().receive(head) == head


@pytest.mark.parametrize("name", AMBIGUOUS)
def test_ambiguous_framing_is_refused_and_nothing_is_forwarded(name: str) -> None:
    """Each read is refused as a whole before anything of it goes out, so a server
    never sees a request that trionet framed differently."""
    r = rewriter()
    with pytest.raises(HttpRefusedError) as info:
        r.receive(AMBIGUOUS[name].encode())
    assert info.value.reason == "malformed-http"


def test_forbidden_placeholder_in_any_form_is_a_violation() -> None:
    forms = [
        "X-A: $MSB_OTHER",
        "X-A: %24MSB_OTHER",
        "Authorization: Basic " + base64.b64encode(b"u:$MSB_OTHER").decode(),
    ]
    for header in forms:
        with pytest.raises(SecretViolationError) as info:
            run(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{header}\r\n\r\n".encode())
        assert info.value.secret == "OTHER"
        assert info.value.action.kind is ViolationKind.BLOCK_AND_TERMINATE
        assert "REAL" not in str(info.value)
    body = '{"k": "\\u0024MSB_OTHER"}'
    with pytest.raises(SecretViolationError):
        run(
            f"POST / HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )


@pytest.mark.parametrize(
    "request_text",
    [
        # A method and a field name are tokens, and "$" and "_" are token characters.
        f"$MSB_OTHER / HTTP/1.1\r\nHost: {HOST}\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: {HOST}\r\n$MSB_OTHER: x\r\n\r\n",
        f"POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n$MSB_OTHER: x\r\n\r\n",
    ],
)
def test_forbidden_placeholder_as_a_method_or_field_name_is_a_violation(
    request_text: str,
) -> None:
    with pytest.raises(SecretViolationError) as info:
        rewriter().receive(request_text.encode())
    assert info.value.secret == "OTHER"


def test_placeholder_split_over_reads_is_still_seen() -> None:
    body = "xxxxxxxx$MSB_OTHERyyyy"
    request = f"POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    head_len = len(request) - len(body)
    for cut in range(head_len + 1, len(request)):
        with pytest.raises(SecretViolationError):
            run(request.encode(), [cut])


def test_secret_for_another_host_is_a_violation_there() -> None:
    with pytest.raises(SecretViolationError) as info:
        run(
            b"GET / HTTP/1.1\r\nHost: evil.example\r\nX-Key: $MSB_KEY\r\n\r\n", host="evil.example"
        )
    assert info.value.secret == "KEY" and info.value.host == "evil.example"
    assert info.value.action.kind is ViolationKind.BLOCK_AND_LOG  # the config default


@pytest.mark.parametrize("method", ["TRACE", "TRACK", "trace"])
def test_no_secret_goes_into_a_trace_request(method: str) -> None:
    """RFC 9110 §9.3.8: a TRACE response echoes the request, so a client must not
    put credentials in one. A guest would read the real value in the echo and
    could then send it anywhere, placeholder or not."""
    head = (
        f"{method} /?k=$MSB_KEY HTTP/1.1\r\nHost: {HOST}\r\n"
        "Authorization: Bearer $MSB_TOKEN\r\n\r\n"
    ).encode()
    assert rewriter().receive(head) == head
    with pytest.raises(SecretViolationError):  # forbidden ones are still violations
        rewriter().receive(head.replace(b"$MSB_TOKEN", b"$MSB_OTHER"))
    # §9.3.8: no content in a TRACE request (trailers would carry secrets too).
    chunked = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(HttpRefusedError):
        rewriter().receive(chunked + b"0\r\nX-T: $MSB_TOKEN\r\n\r\n")


def test_no_dns_identity_means_no_substitution() -> None:
    """require_tls_identity: the SNI alone is not enough; the dialled IP must be pinned."""
    r = rewriter(identity=False)
    with pytest.raises(SecretViolationError):
        r.receive(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Key: $MSB_KEY\r\n\r\n".encode())


#: A secret whose value is no field value (a multi-line key or JSON file, a value
#: with a stray newline): in a header its line breaks would end the header line, or
#: with a blank line the head, and the guest's next lines would become the body.
MULTILINE = SecretsConfig.from_dict(
    {
        "secrets": [
            {"env_var": "ML", "value": "line-1\r\n\r\nGET /", "allowed_hosts": [HOST]},
            {"env_var": "NUL", "value": "a\0b", "allowed_hosts": [HOST]},
        ]
    }
)


@pytest.mark.parametrize("header", ["X-K: $MSB_ML", "X-K: $MSB_NUL"])
def test_a_secret_that_is_no_field_value_is_not_put_in_a_header(header: str) -> None:
    plan = build_plan(MULTILINE, HOST, tls_intercepted=True, identity=lambda _p: True)
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n{header}\r\n\r\n".encode()
    with pytest.raises(HttpRefusedError) as info:
        H1RequestRewriter(plan, HOST).receive(request)
    assert info.value.reason == "unsafe-secret-value"
    trailer = f"POST / HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
    with pytest.raises(HttpRefusedError):
        H1RequestRewriter(plan, HOST).receive(f"{trailer}0\r\n{header}\r\n\r\n".encode())


# -- property: with random cuts, the server gets the request with only placeholders replaced


_token = st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,10}\Z")
_value = st.lists(
    st.one_of(
        st.from_regex(r"\A[A-Za-z0-9 ,;=/]{0,12}\Z"), st.just("$MSB_KEY"), st.just("$MSB_TOKEN")
    ),
    max_size=4,
).map(lambda parts: "".join(parts).strip() or "v")
_body = st.lists(
    st.one_of(st.binary(max_size=30).map(lambda b: b.replace(b"$", b"")), st.just(b"$MSB_KEY")),
    max_size=5,
).map(b"".join)


def _expect(data: bytes) -> bytes:
    return data.replace(b"$MSB_KEY", b"REAL-key-1").replace(b"$MSB_TOKEN", b"REAL-token")


@settings(max_examples=300, deadline=None)
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST", "PUT"]),
            st.from_regex(r"\A/[a-z0-9/]{0,10}\Z"),
            st.lists(st.tuples(_token, _value), max_size=4),
            _body,
            st.booleans(),
        ),
        min_size=1,
        max_size=3,
    ),
    cuts=st.lists(st.integers(1, 2000), max_size=20),
)
def test_random_chunking_changes_only_placeholders(
    requests: list[tuple[str, str, list[tuple[str, str]], bytes, bool]], cuts: list[int]
) -> None:
    stream = b""
    expected = b""
    for method, path, raw_headers, body, chunked in requests:
        headers = [
            (n, v)
            for n, v in raw_headers
            if n.lower()
            not in (
                "host",
                "content-length",
                "transfer-encoding",
                "upgrade",
                "connection",
                "expect",
            )
        ]
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n" + "".join(
            f"{n}: {v}\r\n" for n, v in headers
        )
        if chunked:
            pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
            wire_body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
            expected_body = (
                b"".join(b"%x\r\n%s\r\n" % (len(_expect(p)), _expect(p)) for p in pieces)
                + b"0\r\n\r\n"
            )
            head += "Transfer-Encoding: chunked\r\n\r\n"
            stream += head.encode() + wire_body
            # Body scope is on for KEY: a chunked body is held and re-emitted in one chunk.
            whole = _expect(body)
            expected += _expect(head.encode()) + (
                (b"%x\r\n%s\r\n" % (len(whole), whole) if whole else b"") + b"0\r\n\r\n"
                if body
                else expected_body
            )
        else:
            stream += head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            expected += (
                _expect(head.encode())
                + f"Content-Length: {len(_expect(body))}\r\n\r\n".encode()
                + _expect(body)
            )
    assert run(stream, cuts) == expected
