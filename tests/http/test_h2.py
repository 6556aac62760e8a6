"""The HTTP/2 rewriter as transcripts: frames from h2's client, parsed by h2's server."""

from __future__ import annotations

import base64

import h2.config
import h2.connection
import h2.events
import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.http.test_h1 import CONFIG, HOST
from trionet.http.h1 import HttpRefusedError
from trionet.http.h2 import PREFACE, H2RequestRewriter
from trionet.secrets.plan import SecretViolationError, build_plan

Headers = list[tuple[str, str]]


def request(path: str = "/", extra: Headers | None = None, authority: str = HOST) -> Headers:
    return [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
        *(extra or []),
    ]


def client(requests: list[tuple[Headers, bytes]]) -> bytes:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, validate_outbound_headers=False)
    )
    conn.initiate_connection()
    for headers, body in requests:
        stream = conn.get_next_available_stream_id()
        conn.send_headers(stream, headers, end_stream=not body)
        if body:
            conn.send_data(stream, body, end_stream=True)
    return conn.data_to_send()


def server(data: bytes) -> list[tuple[Headers, bytes]]:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
    )
    conn.initiate_connection()
    got: dict[int, tuple[Headers, bytearray]] = {}
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.RequestReceived):
            got[event.stream_id] = ([(str(n), str(v)) for n, v in event.headers], bytearray())
        elif isinstance(event, h2.events.DataReceived):
            got[event.stream_id][1].extend(event.data)
    return [(h, bytes(b)) for h, b in got.values()]


def rewrite(data: bytes, segment: int | None = None, host: str = HOST) -> bytes:
    plan = build_plan(CONFIG, host, tls_intercepted=True, identity=lambda _p: True)
    rewriter = H2RequestRewriter(plan, host)
    step = segment or len(data)
    return b"".join(rewriter.receive(data[i : i + step]) for i in range(0, len(data), step))


def test_many_streams_substituted_in_headers_basic_and_query() -> None:
    basic = base64.b64encode(b"u:$MSB_KEY").decode()
    reqs = [
        (request("/a?k=$MSB_KEY", [("authorization", f"Basic {basic}")]), b""),
        (request("/b", [("x-token", "$MSB_TOKEN")]), b"plain body"),
        *[(request(f"/n{i}", [("x-i", str(i))]), b"") for i in range(20)],
    ]
    got = server(rewrite(client(reqs), segment=7))
    assert len(got) == 22
    (h0, _), (h1, b1) = got[0], got[1]
    assert (":path", "/a?k=REAL-key-1") in h0
    assert ("authorization", "Basic " + base64.b64encode(b"u:REAL-key-1").decode()) in h0
    assert ("x-token", "REAL-token") in h1 and b1 == b"plain body"
    assert [dict(h)[":path"] for h, _ in got[2:]] == [f"/n{i}" for i in range(20)]


def test_authority_must_equal_the_sni() -> None:
    with pytest.raises(HttpRefusedError) as info:
        rewrite(client([(request(authority="evil.example"), b"")]))
    assert info.value.reason == "host-mismatch"
    with pytest.raises(HttpRefusedError):
        rewrite(client([(request(extra=[("host", "evil.example")]), b"")]))


def test_forbidden_placeholder_in_headers_or_data_is_a_violation() -> None:
    with pytest.raises(SecretViolationError):
        rewrite(client([(request(extra=[("x-a", "$MSB_OTHER")]), b"")]))
    data = client([(request(), b"x" * 30 + b"$MSB_OTHER" + b"y" * 30)])
    for segment in (1, 5, 17, len(data)):
        with pytest.raises(SecretViolationError):
            rewrite(data, segment)


def test_forbidden_placeholder_as_a_field_name_is_a_violation() -> None:
    from trionet.secrets.config import SecretsConfig

    config = SecretsConfig.from_dict(
        {
            "secrets": [
                {
                    "env_var": "LOW",
                    "placeholder": "$msb_low",
                    "value": "REAL",
                    "allowed_hosts": ["other.example"],
                }
            ]
        }
    )
    plan = build_plan(config, HOST, tls_intercepted=True, identity=lambda _p: True)
    data = raw_request([*BASE, (b"$msb_low", b"x")], [])
    with pytest.raises(SecretViolationError):
        H2RequestRewriter(plan, HOST).receive(data)


def test_eligible_body_placeholder_is_refused_not_leaked() -> None:
    """KEY has the body scope, which HTTP/2 cannot honour: refused, never sent as is."""
    with pytest.raises(HttpRefusedError) as info:
        rewrite(client([(request(), b"key=$MSB_KEY")]))
    assert info.value.reason == "h2-body-secret"


def raw_request(fields: list[tuple[bytes, bytes]], trailers: list[tuple[bytes, bytes]]) -> bytes:
    """A preface and one request as raw frames: h2's own client would not send these."""

    def frame(kind: int, flags: int, payload: bytes) -> bytes:
        return (
            len(payload).to_bytes(3, "big")
            + bytes([kind, flags])
            + (1).to_bytes(4, "big")
            + payload
        )

    encoder = hpack.Encoder()
    data = PREFACE + b"\0\0\0\x04\0\0\0\0\0"  # an empty SETTINGS
    if not trailers:
        return data + frame(0x1, 0x5, encoder.encode(fields))
    return (
        data + frame(0x1, 0x4, encoder.encode(fields)) + frame(0x1, 0x5, encoder.encode(trailers))
    )


BASE = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", HOST.encode()),
    (b":path", b"/"),
]
MALFORMED_FIELDS = {
    # RFC 9113 §8.2.1: names are lower-case tokens. A server or an HTTP/1 hop behind it
    # that reads "HOST" (or "host ") as Host routes by it, and the check missed it.
    "upper-case host": [*BASE, (b"HOST", b"evil.example")],
    "name with a space": [*BASE, (b"host ", b"evil.example")],
    "empty name": [*BASE, (b"", b"x")],
    # §8.2.1: no CR, LF or NUL in a value, nor white space at its ends: an HTTP/1 hop
    # would see "Host: evil.example" as a header line of its own.
    "CR LF in a value": [*BASE, (b"x-a", b"a\r\nHost: evil.example")],
    "LF in a value": [*BASE, (b"x-a", b"a\nHost: evil.example")],
    "NUL in a value": [*BASE, (b"x-a", b"a\x00b")],
    "space around a value": [*BASE, (b"x-a", b" a")],
    "CR LF in a pseudo-header": [*BASE[:3], (b":path", b"/ HTTP/1.1\r\nHost: evil.example")],
    # §8.2.2: connection-specific fields are malformed.
    "transfer-encoding": [*BASE, (b"transfer-encoding", b"chunked")],
    "connection": [*BASE, (b"connection", b"keep-alive")],
    "upgrade": [*BASE, (b"upgrade", b"h2c")],
    "keep-alive": [*BASE, (b"keep-alive", b"5")],
    "proxy-connection": [*BASE, (b"proxy-connection", b"close")],
    "te other than trailers": [*BASE, (b"te", b"gzip")],
    # §8.3: pseudo-headers come first, once each, only the defined ones.
    "pseudo-header after a field": [*BASE[:2], (b"x-a", b"1"), *BASE[2:]],
    "unknown pseudo-header": [*BASE, (b":host", b"evil.example")],
    "repeated :path": [*BASE, (b":path", b"/other")],
    "no :method": BASE[1:],
    # §8.3.1: :path is an absolute path (or "*"); an HTTP/1 hop would send an absolute
    # URI as the target, which an origin routes by before Host (RFC 9112 §3.2.2).
    ":path as an absolute URI": [*BASE[:3], (b":path", b"http://evil.example/")],
    ":path as an authority": [*BASE[:3], (b":path", b"evil.example:443")],
    ":path with backslashes": [*BASE[:3], (b":path", b"http:\\\\evil.example\\x")],
    # RFC 3986 §3.2.2: brackets hold an IPv6 literal, and only a port follows them.
    "a name in brackets": [*BASE[:2], (b":authority", f"[{HOST}]evil.example".encode()), BASE[3]],
}


@pytest.mark.parametrize("name", MALFORMED_FIELDS)
def test_malformed_fields_are_refused(name: str) -> None:
    with pytest.raises(HttpRefusedError) as info:
        rewrite(raw_request(MALFORMED_FIELDS[name], []))
    assert info.value.reason in ("malformed-http", "host-mismatch")


def test_pseudo_headers_in_trailers_are_refused() -> None:
    body = raw_request(BASE, [(b"x-t", b"1")])
    assert server(rewrite(body))  # well-formed trailers pass
    for trailer in ((b":authority", b"evil.example"), (b":path", b"/x"), (b"x-t", b"a\r\nb")):
        with pytest.raises(HttpRefusedError):
            rewrite(raw_request(BASE, [trailer]))


def test_well_formed_fields_pass() -> None:
    fields = [*BASE, (b"te", b"trailers"), (b"x-a", b"a b"), (b"x-b", b"")]
    extended = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *BASE[1:]]
    for request_fields in (fields, extended):
        out = rewrite(raw_request(request_fields, []))
        assert hpack.Decoder().decode(out[len(PREFACE) + 18 :], raw=True) == request_fields


def test_a_secret_that_is_no_field_value_is_not_put_in_a_header() -> None:
    from tests.http.test_h1 import MULTILINE

    plan = build_plan(MULTILINE, HOST, tls_intercepted=True, identity=lambda _p: True)
    for name in ("ML", "NUL"):
        data = raw_request([*BASE, (b"x-k", f"$MSB_{name}".encode())], [])
        with pytest.raises(HttpRefusedError) as info:
            H2RequestRewriter(plan, HOST).receive(data)
        assert info.value.reason == "unsafe-secret-value"


def test_no_secret_goes_into_a_trace_request() -> None:
    """RFC 9110 §9.3.8: the response echoes the request; see the HTTP/1 test."""
    fields = [(b":method", b"TRACE"), *BASE[1:3], (b":path", b"/?k=$MSB_KEY")]
    fields.append((b"authorization", b"Bearer $MSB_TOKEN"))
    out = rewrite(raw_request(fields, []))
    assert hpack.Decoder().decode(out[len(PREFACE) + 18 :], raw=True) == fields
    with pytest.raises(HttpRefusedError):  # content, here trailers, in a TRACE request
        rewrite(raw_request(fields, [(b"x-t", b"$MSB_TOKEN")]))


def test_not_a_preface_is_refused() -> None:
    with pytest.raises(HttpRefusedError):
        rewrite(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_huge_header_block_split_into_continuations() -> None:
    big = "v" * 40000
    got = server(rewrite(client([(request(extra=[("x-big", big), ("x-k", "$MSB_TOKEN")]), b"")])))
    headers = dict(got[0][0])
    assert headers["x-big"] == big and headers["x-k"] == "REAL-token"


@settings(max_examples=100, deadline=None)
@given(
    reqs=st.lists(
        st.tuples(
            st.lists(
                st.tuples(
                    st.from_regex(r"\Ax-[a-z]{1,8}\Z"),
                    st.sampled_from(["v", "$MSB_TOKEN", "a $MSB_TOKEN b", "plain"]),
                ),
                max_size=4,
            ),
            st.binary(max_size=200).map(lambda b: b.replace(b"$", b"")),
        ),
        min_size=1,
        max_size=5,
    ),
    segment=st.integers(1, 300),
)
def test_random_chunking_changes_only_placeholders(
    reqs: list[tuple[Headers, bytes]], segment: int
) -> None:
    sent = [(request("/p", extra), body) for extra, body in reqs]
    got = server(rewrite(client(sent), segment))
    expected = [
        ([(n, v.replace("$MSB_TOKEN", "REAL-token")) for n, v in headers], body)
        for headers, body in sent
    ]
    assert got == expected


def test_prior_knowledge_is_recognised_by_the_preface() -> None:
    from trionet.http.rewriter import rewriter_for

    plan = build_plan(CONFIG, HOST, tls_intercepted=True, identity=lambda _p: True)
    data = client([(request(extra=[("x-k", "$MSB_TOKEN")]), b"")])
    auto = rewriter_for(plan, HOST, None)
    out = b"".join(auto.receive(data[i : i + 5]) for i in range(0, len(data), 5))
    assert dict(server(out)[0][0])["x-k"] == "REAL-token"
    h1 = rewriter_for(plan, HOST, None)
    head = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nX-K: $MSB_TOKEN\r\n\r\n".encode()
    assert h1.receive(head[:3]) == b""
    assert h1.receive(head[3:]) == head.replace(b"$MSB_TOKEN", b"REAL-token")
