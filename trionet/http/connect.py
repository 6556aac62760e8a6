"""The small parsers of flow inspection: CONNECT requests (§4.4), Host headers, status lines.

Sans-IO: bytes in, values out; the Trio side is
:mod:`trionet.services.tls_intercept`.
"""

from __future__ import annotations

import re

from trionet.http.h1 import HttpRefusedError, host_part, ip_or_none
from trionet.secrets.plan import SubstitutionPlan, basic_credentials
from trionet.tls.clienthello import canonical_sni

__all__ = [
    "check_connect_metadata",
    "host_header",
    "ip_or_none",
    "is_2xx",
    "is_http_start",
    "may_be_connect",
    "parse_connect",
]


_HTTP_START = re.compile(rb"^[A-Za-z]{3,10} ")
_STATUS_2XX = re.compile(rb"^HTTP/\d\.\d 2\d\d[ \r]")
_CONNECT = b"CONNECT "


def may_be_connect(data: bytes) -> bool:
    """Whether ``data`` is (the start of) a CONNECT request line, case-insensitively."""
    head = data[: len(_CONNECT)].upper()
    return _CONNECT.startswith(head) if len(head) < len(_CONNECT) else head == _CONNECT


def parse_connect(block: bytes) -> tuple[str, int] | None:
    """``CONNECT host:port HTTP/x.y`` -> (canonical host, port); None if malformed (§4.4)."""
    try:
        line = block.split(b"\r\n", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = line.split(" ")
    if len(parts) != 3 or parts[0].upper() != "CONNECT":
        return None
    if re.fullmatch(r"HTTP/\d\.\d", parts[2]) is None:
        return None
    authority = parts[1]
    if authority.startswith("["):
        host, sep, port = authority[1:].partition("]:")
        if not sep or ip_or_none(host) is None:
            return None
    else:
        host, sep, port = authority.rpartition(":")
        if not sep or ":" in host:  # an unbracketed IPv6 literal
            return None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    host = canonical_sni(host.strip())
    return (host, int(port)) if host else None


def check_connect_metadata(plan: SubstitutionPlan, block: bytes) -> None:
    """A CONNECT request's head is untrusted metadata (§11.2): nothing is substituted,
    and a placeholder in it is a violation, as the request scan of §11.4 sees it:
    raw, encoded, or inside ``Basic`` credentials (``curl --proxy-user``)."""
    plan.check(block, "connect request")
    for line in block.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() in (b"authorization", b"proxy-authorization"):
            credentials = basic_credentials(value)
            if credentials is not None:
                plan.check(credentials, "authorization_basic")


def host_header(head: bytes) -> str | None:
    """The one ``Host`` of a request head, canonical; None without exactly one."""
    hosts = [
        line.split(b":", 1)[1]
        for line in head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
        if line.lower().startswith(b"host:")
    ]
    if len(hosts) != 1:
        return None
    try:
        return host_part(hosts[0]) or None
    except HttpRefusedError:
        return None


def is_http_start(data: bytes) -> bool:
    """Whether ``data`` starts like an HTTP/1 request line (a method, then a space)."""
    return _HTTP_START.match(data) is not None


def is_2xx(response_head: bytes) -> bool:
    """Whether a response head's status line says 2xx (a CONNECT proxy's success)."""
    return _STATUS_2XX.match(response_head) is not None
