"""TLS interception on the intercepted ports (§8): peek, decide, bypass or terminate both ways.

One task per intercepted connection, over the guest's
:class:`~trionet.engine.guest_stream.GuestTcpStream` and the host socket the
relay already dialled (to the address the guest chose: the SNI never picks
where we connect, so a guest cannot use it to reach a host its policy
forbids).

1. Peek the ClientHello (:mod:`trionet.tls.clienthello`), at most 16 KiB and
   10 s. Not TLS, malformed or without SNI: refused (an SNI-less hello is
   refused as soon as it is complete, not after the reference's 10 s stall).
2. Policy with the SNI (§10.3): a domain allow rule holds only if this
   sandbox's DNS bound the dialled IP to that name (the pin set).
3. Bypass patterns: the buffered hello goes upstream untouched and the
   connection is spliced; the server sees the guest's own ClientHello.
4. Otherwise the upstream handshake comes first, offering the guest's own
   ALPN list (the protocols we can inspect), verified against the system
   roots plus configured CAs; then the guest gets a leaf for the SNI from
   the CA, offering exactly the protocol the server chose. ALPN is thus
   negotiated end to end.
5. The guest's plaintext passes through the HTTP rewriter (Host must equal
   the SNI; placeholders replaced for eligible hosts, violations caught);
   the server's goes back as is.

Other TCP flows are looked at until their first bytes (:meth:`TlsInterceptor.inspect`):
a CONNECT request (§4.4) is checked on its target and intercepted inside the
tunnel when the target port is; plain HTTP is scanned for placeholders when
secrets exist; anything else goes back to the splice.

Every refusal is an :class:`~trionet.policy.audit.AuditRecord` naming the
reason, and counted in ``dropped["tls_<reason>"]``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import ssl
import time
from dataclasses import dataclass

import trio

from trionet.engine.core import EngineCore
from trionet.engine.guest_stream import GuestTcpStream
from trionet.engine.policy import NewFlow
from trionet.engine.tcp_relay import SPLICE, FlowHandler
from trionet.engine.tcp_splice import CHUNK, close_with_reset
from trionet.engine.termination import TerminationHandle
from trionet.http.connect import (
    check_connect_metadata,
    host_header,
    ip_or_none,
    is_2xx,
    is_http_start,
    may_be_connect,
    parse_connect,
)
from trionet.http.h1 import MAX_HEAD, H1RequestRewriter, HttpRefusedError
from trionet.http.rewriter import RequestRewriter, rewriter_for
from trionet.policy.audit import AuditRecord
from trionet.policy.evaluate import Decision, PolicyVerdict
from trionet.secrets.config import ViolationKind
from trionet.secrets.handle import SecretsHandle
from trionet.secrets.plan import SecretViolationError, build_plan, metadata_plan
from trionet.services.tls_files import UpstreamConnectors, server_context
from trionet.tls.certs import CertificateAuthority, LeafCache
from trionet.tls.clienthello import MAX_HELLO_BYTES, ClientHello, PeekStatus, peek_client_hello
from trionet.tls.config import TlsConfig
from trionet.tls.patterns import HostPattern

__all__ = ["HANDSHAKE_TIMEOUT", "SNI_TIMEOUT", "TlsInterceptor"]

#: §8.5: the whole ClientHello wait, and each handshake.
SNI_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
#: §4.3/§4.4: how long the guest's first bytes and a CONNECT exchange may take.
PEEK_TIMEOUT = 5.0
MAX_CONNECT_HEAD = 16384
MAX_PROXY_RESPONSE = 8192
#: The application protocols the rewriters understand, in preference order.
INSPECTED_ALPN = ("h2", "http/1.1")

_log = logging.getLogger("trionet.tls")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _RefusedError(Exception):
    def __init__(self, reason: str, decision: Decision | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.decision = decision


async def _guest_handshake(tls: trio.SSLStream[_Prefixed]) -> None:
    """The guest side's handshake within §8.5's limit; any failure refuses the connection."""
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            await tls.do_handshake()
    except (trio.BrokenResourceError, trio.TooSlowError):
        raise _RefusedError("guest-handshake") from None


class _Prefixed(trio.abc.Stream):
    """A stream that first replays bytes already read from it (the peeked hello)."""

    def __init__(self, inner: trio.abc.Stream, prefix: bytes) -> None:
        self._inner = inner
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self._inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass
class _Conn:
    """One intercepted connection, for audit records and logs."""

    flow: NewFlow
    sni: str | None = None


class TlsInterceptor:
    """The service: claims the intercepted ports' flows and handles each in a task."""

    def __init__(
        self,
        core: EngineCore,
        config: TlsConfig,
        *,
        ca: CertificateAuthority,
        secrets: SecretsHandle,
    ) -> None:
        self.core = core
        self.config = config
        self.ca = ca
        self._secrets = secrets
        #: set once the network's nursery (whose scope it cancels) exists
        self.termination: TerminationHandle | None = None
        # The engine's own: the same policy, pin set and audit log as every flow.
        self._evaluator = core.policy_evaluator
        self._pins = core.pins
        self._audit = core.audit.emit
        self._ports = frozenset(config.intercepted_ports)
        self.leaves = LeafCache(ca, config.cache.capacity, config.cache.validity_hours)
        self.connectors = UpstreamConnectors(config)

    def choose(self, flow: NewFlow) -> FlowHandler | None:
        """The TcpRelay hook: intercepted ports are terminated, other TCP flows inspected.

        The inspection looks at the guest's first bytes only (a CONNECT
        request, or plain HTTP when secrets exist) and gives anything else
        back to the splice at once.
        """
        if flow.protocol != "tcp":
            return None
        if flow.destination_port in self._ports:
            return self.handle
        return self.inspect

    # -- one connection ------------------------------------------------------------

    async def handle(self, guest: GuestTcpStream, host: trio.SocketStream) -> object:
        """A flow to an intercepted port."""
        conn = _Conn(self.core.describe(guest.key, "tcp"))
        try:
            return await self._tls(conn, guest, host)
        except _RefusedError as refusal:
            self._refuse(conn, refusal.reason, refusal.decision)
            await _close_gracefully(guest)
        return None

    async def _tls(
        self,
        conn: _Conn,
        guest: GuestTcpStream,
        host: trio.SocketStream,
        *,
        seed: bytes = b"",
        connect_host: str | None = None,
        connect_port: int = 0,
    ) -> object:
        """Peek, decide, then bypass or intercept. ``connect_host``/``connect_port``:
        inside a CONNECT tunnel to them."""
        buffered, hello = await self._peek(guest, seed)
        sni = conn.sni = hello.sni
        if sni is None:
            raise _RefusedError("no-sni")
        flow = conn.flow
        target_ip = None if connect_host is None else ip_or_none(connect_host)
        if target_ip is not None:
            # A tunnel to an IP literal names no host to hold the hello to
            # (§4.4 step 2), so the SNI meets the policy on that address, as
            # on a direct connection (§4.4 step 6, §8.5 step 3): a domain
            # deny rule is not dodged by a CONNECT to the address.
            decision = self._evaluator.egress(target_ip, connect_port, "tcp", self._now(), sni=sni)
            if not decision.allowed:
                raise _RefusedError("sni-policy", decision)
        elif connect_host is not None:
            # The tunnel's target was checked by the policy already; the
            # hello must name that target (§4.4: no SNI swap inside a tunnel).
            if sni != connect_host:
                raise _RefusedError("connect-sni-mismatch")
            decision = Decision(PolicyVerdict.ALLOW, None, "connect")
        else:
            decision = self._evaluator.egress(
                flow.destination, flow.destination_port, "tcp", self._now(), sni=sni
            )
            if not decision.allowed:
                raise _RefusedError("sni-policy", decision)
        if self.config.bypassed(sni):
            self._record(conn, "allow", "bypass", decision)
            await host.send_all(buffered)
            return SPLICE
        await self._intercept(
            conn,
            guest=guest,
            host=host,
            buffered=buffered,
            hello=hello,
            decision=decision,
            tunnelled=connect_host is not None,
        )
        return None

    async def _peek(self, guest: GuestTcpStream, seed: bytes) -> tuple[bytes, ClientHello]:
        """The guest's whole ClientHello, starting from ``seed`` (bytes already read).

        The peek comes before each read, so a seed that already holds the
        hello (or already is not one) is decided without waiting; an empty
        buffer peeks as NEED_MORE.
        """
        buffer = bytearray(seed)
        with trio.move_on_after(SNI_TIMEOUT):
            while True:
                result = peek_client_hello(buffer)
                if result.status is PeekStatus.COMPLETE:
                    assert result.hello is not None
                    return bytes(buffer), result.hello
                if result.status is PeekStatus.NOT_TLS:
                    raise _RefusedError("not-tls")
                if result.status is PeekStatus.MALFORMED:
                    raise _RefusedError("malformed-hello")
                try:
                    data = await guest.receive_some(MAX_HELLO_BYTES + 5 - len(buffer))
                except trio.BrokenResourceError:
                    raise _RefusedError("guest-reset") from None
                if not data:
                    raise _RefusedError("guest-eof")
                buffer += data
        raise _RefusedError("sni-timeout")

    async def _intercept(
        self,
        conn: _Conn,
        *,
        guest: GuestTcpStream,
        host: trio.SocketStream,
        buffered: bytes,
        hello: ClientHello,
        decision: Decision,
        tunnelled: bool,
    ) -> None:
        sni = hello.sni
        assert sni is not None
        offered = [p for p in hello.alpn if p in INSPECTED_ALPN]
        upstream_ctx = self.connectors.for_host(sni)
        if offered:
            # set_alpn_protocols is copied into the SSL object when the
            # stream is made (below, in the same step): sharing is safe.
            upstream_ctx.set_alpn_protocols(offered)
        else:
            upstream_ctx.set_alpn_protocols([])
        upstream = trio.SSLStream(host, upstream_ctx, server_hostname=sni, https_compatible=True)
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                await upstream.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            cause = exc.__cause__
            verify = isinstance(cause, ssl.SSLCertVerificationError)
            if verify:
                _log.warning("upstream %s failed verification: %s", sni, cause)
            raise _RefusedError("upstream-verify" if verify else "upstream-handshake") from None
        selected = upstream.selected_alpn_protocol()
        try:
            guest_ctx = self._server_context(sni, (selected,) if selected else ())
        except ValueError:
            raise _RefusedError("bad-name") from None
        guest_tls = trio.SSLStream(
            _Prefixed(guest, buffered), guest_ctx, server_side=True, https_compatible=True
        )
        await _guest_handshake(guest_tls)
        self._record(conn, "allow", None, decision)
        # In a tunnel the proxy resolved the name, and the SNI was held to the
        # CONNECT target instead of the pin set (§11.2). But the guest picks
        # the proxy: only the upstream certificate binds the server to the
        # name there, so without its verification there is no identity.
        verified = upstream_ctx.verify_mode == ssl.CERT_REQUIRED and upstream_ctx.check_hostname
        plan = build_plan(
            self._secrets.snapshot(),
            sni,
            tls_intercepted=True,
            identity=(lambda _p: verified)
            if tunnelled
            else (lambda pattern: self._bound(conn.flow, pattern)),
        )
        rewriter = rewriter_for(plan, sni, selected)
        await self._relay(
            conn,
            guest=guest,
            guest_in=guest_tls,
            host=host,
            upstream=upstream,
            rewriter=rewriter,
        )

    # -- DNS over TLS (§7.7) ----------------------------------------------------------

    async def terminate_dot(self, guest: GuestTcpStream) -> trio.abc.Stream | None:
        """The guest's DNS-over-TLS connection, decrypted; None if it could not be.

        trionet's DNS answers it (the DNS service reads and writes the
        stream). The leaf names the SNI, or the dialled address without one
        (an IP SAN). Never bypassed, and nothing goes upstream here.
        """
        conn = _Conn(self.core.describe(guest.key, "tcp"))
        try:
            buffered, hello = await self._peek(guest, b"")
            name = conn.sni = hello.sni or str(conn.flow.destination)
            try:
                ctx = self._server_context(name, ())
            except ValueError:
                raise _RefusedError("bad-name") from None
            tls = trio.SSLStream(
                _Prefixed(guest, buffered), ctx, server_side=True, https_compatible=True
            )
            await _guest_handshake(tls)
        except _RefusedError as refusal:
            self._refuse(conn, refusal.reason, refusal.decision)
            return None
        self._record(conn, "allow", "dot", None)
        return tls

    # -- other TCP flows: CONNECT tunnels and plain HTTP --------------------------

    async def inspect(self, guest: GuestTcpStream, host: trio.SocketStream) -> object:
        """A flow to another port: a CONNECT tunnel (§4.4), plain HTTP (§11.2), or spliced."""
        conn = _Conn(self.core.describe(guest.key, "tcp"))
        try:
            first = await _first_flight(guest, host)
            if first is None:
                return SPLICE
            if may_be_connect(first):
                return await self._connect(conn, guest, host, first)
            if self._secrets.snapshot().secrets and is_http_start(first):
                await self._plain_http(conn, guest, host, first)
                return None
            await host.send_all(first)
            return SPLICE
        except _RefusedError as refusal:
            self._refuse(conn, refusal.reason, refusal.decision)
            await _close_gracefully(guest)
        except SecretViolationError as exc:
            self._violation(conn, exc)
            await _close_gracefully(guest)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return None

    async def _connect(
        self, conn: _Conn, guest: GuestTcpStream, host: trio.SocketStream, first: bytes
    ) -> object:
        head = bytearray(first)
        with trio.move_on_after(PEEK_TIMEOUT) as scope:
            while b"\r\n\r\n" not in head:
                if not may_be_connect(bytes(head)):
                    await host.send_all(head)  # "CONN..." that is not CONNECT
                    return SPLICE
                if len(head) > MAX_CONNECT_HEAD:
                    raise _RefusedError("connect-malformed")
                data = await guest.receive_some(CHUNK)
                if not data:
                    raise _RefusedError("guest-eof")
                head += data
        if scope.cancelled_caught:
            raise _RefusedError("connect-timeout")
        end = head.index(b"\r\n\r\n") + 4
        block, seed = bytes(head[:end]), bytes(head[end:])
        target = parse_connect(block)
        if target is None:
            raise _RefusedError("connect-malformed")
        name, port = target
        conn.sni = name
        # Untrusted metadata: a placeholder in the CONNECT request goes nowhere.
        check_connect_metadata(metadata_plan(self._secrets.snapshot(), name), block)
        flow = conn.flow
        target_ip = ip_or_none(name)
        decision = self._evaluator.egress(
            target_ip or flow.destination,
            port,
            "tcp",
            self._now(),
            sni=None if target_ip is not None else name,
        )
        if not decision.allowed:
            raise _RefusedError("connect-policy", decision)
        await host.send_all(block)
        response, extra = await _read_response_head(host)
        ok = is_2xx(response)
        if port not in self._ports:
            self._record(conn, "allow" if ok else "deny", "connect", decision)
            await guest.send_all(response + extra)
            if not ok:
                await _close_gracefully(guest)
                return None
            if seed:
                await host.send_all(seed)
            return SPLICE
        if not ok or extra:
            raise _RefusedError("connect-refused" if not ok else "connect-malformed")
        await guest.send_all(response)
        return await self._tls(conn, guest, host, seed=seed, connect_host=name, connect_port=port)

    async def _plain_http(
        self, conn: _Conn, guest: GuestTcpStream, host: trio.SocketStream, first: bytes
    ) -> None:
        """Plain HTTP with secrets configured: no substitution of TLS-bound secrets, and
        a placeholder headed elsewhere is a violation here too."""
        head = bytearray(first)
        with trio.move_on_after(PEEK_TIMEOUT):
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                data = await guest.receive_some(CHUNK)
                if not data:
                    break
                head += data
        name = host_header(bytes(head))
        conn.sni = name
        plan = build_plan(
            self._secrets.snapshot(),
            name,
            tls_intercepted=False,
            identity=lambda pattern: self._bound(conn.flow, pattern),
        )
        rewriter = H1RequestRewriter(plan, name)
        try:
            out = rewriter.receive(head)
        except (SecretViolationError, HttpRefusedError) as exc:
            self._violation(conn, exc)
            await _close_gracefully(guest)
            return
        if out:
            await host.send_all(out)
        await self._relay(
            conn, guest=guest, guest_in=guest, host=host, upstream=host, rewriter=rewriter
        )

    def _bound(self, flow: NewFlow, pattern: HostPattern) -> bool:
        """Does the sandbox's DNS bind the dialled address to a name ``pattern`` matches?"""
        names = self._pins.names_for(flow.destination, self._now())
        return any(pattern.matches(name) for name in names)

    def _server_context(self, sni: str, alpn: tuple[str, ...]) -> ssl.SSLContext:
        now = time.time()
        entry = self.leaves.get(sni, now)
        if entry is None:
            leaf = self.leaves.issue(sni, now)
            contexts: dict[tuple[str, ...], ssl.SSLContext] = {}
            self.leaves.put(leaf, contexts)
        else:
            leaf, extra = entry
            assert isinstance(extra, dict)
            contexts = extra
        ctx = contexts.get(alpn)
        if ctx is None:
            ctx = contexts[alpn] = server_context(leaf, alpn)
        return ctx

    async def _relay(
        self,
        conn: _Conn,
        *,
        guest: GuestTcpStream,
        guest_in: trio.abc.Stream,
        host: trio.SocketStream,
        upstream: trio.abc.Stream,
        rewriter: RequestRewriter,
    ) -> None:
        """Guest to server through ``rewriter``, server to guest as is.

        ``guest_in``/``upstream`` are the TLS streams over ``guest``/``host``
        when intercepting, or ``guest`` and ``host`` themselves for plain HTTP.
        """
        stop: Exception | None = None
        broken = False

        async def to_server() -> None:
            nonlocal stop, broken
            try:
                while data := await guest_in.receive_some(CHUNK):
                    out = rewriter.receive(data)
                    if out:
                        await upstream.send_all(out)
                tail = rewriter.receive_eof()
                if tail:
                    await upstream.send_all(tail)
                # TLS has no half-close: end our side of TCP, keep reading
                # the server's answer until it closes.
                await host.send_eof()
            except (SecretViolationError, HttpRefusedError) as exc:
                stop = exc
                nursery.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                broken = True
                nursery.cancel_scope.cancel()

        async def to_guest() -> None:
            nonlocal broken
            try:
                while data := await upstream.receive_some(CHUNK):
                    await guest_in.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                broken = True
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(to_server)
            nursery.start_soon(to_guest)
        close_with_reset(host.socket)  # type: ignore[arg-type]
        if stop is not None:
            self._violation(conn, stop)
        if broken:
            guest.abort()
            return
        with trio.move_on_after(1):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await guest_in.aclose()
        await _close_gracefully(guest)

    # -- outcomes ------------------------------------------------------------------

    def _violation(self, conn: _Conn, exc: Exception) -> None:
        if isinstance(exc, HttpRefusedError):
            self._refuse(conn, exc.reason, None)
            _log.warning("refused a request to %s: %s", conn.sni, exc)
            return
        assert isinstance(exc, SecretViolationError)
        self._refuse(conn, "secret-violation", None)
        kind = exc.action.kind
        reason = f"secret {exc.secret} sent to {exc.host} (in the {exc.location})"
        if kind is ViolationKind.BLOCK_AND_LOG:
            _log.warning("blocked: %s", reason)
        elif kind is ViolationKind.BLOCK_AND_TERMINATE:
            _log.error("terminating: %s", reason)
            if self.termination is not None:
                self.termination.terminate(reason)

    def _refuse(self, conn: _Conn, reason: str, decision: Decision | None) -> None:
        self.core.counters.dropped[f"tls_{reason.replace('-', '_')}"] += 1
        self._record(conn, "deny", reason, decision)

    def _record(
        self, conn: _Conn, verdict: str, reason: str | None, decision: Decision | None
    ) -> None:
        flow = conn.flow
        self._audit(
            AuditRecord(
                time=time.time(),
                kind="tls",
                protocol="tcp",
                source=str(flow.guest),
                source_port=flow.guest_port,
                destination=str(flow.destination),
                port=flow.destination_port,
                name=conn.sni,
                verdict=verdict if decision is None or decision.allowed else "deny",
                rule_index=None if decision is None else decision.rule_index,
                rule="tls" if decision is None else decision.rule_text,
                reason=reason,
            )
        )

    @staticmethod
    def _now() -> float:
        return trio.current_time()


async def _first_flight(guest: GuestTcpStream, host: trio.SocketStream) -> bytes | None:
    """The guest's first bytes, or None when the server speaks first or the guest
    closes; what the server said is passed on to the guest."""
    got: list[tuple[str, bytes]] = []

    async def read(side: str, stream: trio.abc.ReceiveStream) -> None:
        got.append((side, bytes(await stream.receive_some(CHUNK))))
        nursery.cancel_scope.cancel()

    # No time limit: the host is already dialled, so nothing waits on us,
    # and a limit would let a guest that waits it out past the inspection.
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, "guest", guest)
        nursery.start_soon(read, "host", host)
    guest_data: bytes | None = None
    for side, data in got:
        if side == "host" and data:
            await guest.send_all(data)
        elif side == "guest":
            guest_data = data
    if not guest_data or any(side == "host" for side, _ in got):
        if guest_data:
            await host.send_all(guest_data)
        return None
    return guest_data


async def _read_response_head(host: trio.SocketStream) -> tuple[bytes, bytes]:
    """The proxy's response head (≤8 KiB, 5 s) and the bytes after it."""
    data = bytearray()
    with trio.move_on_after(PEEK_TIMEOUT) as scope:
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_PROXY_RESPONSE:
                raise _RefusedError("connect-malformed")
            chunk = await host.receive_some(CHUNK)
            if not chunk:
                raise _RefusedError("connect-refused")
            data += chunk
    if scope.cancelled_caught:
        raise _RefusedError("connect-timeout")
    end = data.index(b"\r\n\r\n") + 4
    return bytes(data[:end]), bytes(data[end:])


async def _close_gracefully(guest: GuestTcpStream) -> None:
    """FIN to the guest (§4.2: refusals after the handshake close, they do not reset)."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await guest.aclose()
