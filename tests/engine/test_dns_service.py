"""DnsService inside a real engine: a real guest kernel, the resolver a Trio task here.

The resolver runs in this process so a test can see exactly what reached
it, make it slow or silent, and read the engine's counters and audit
records afterwards.
"""

from __future__ import annotations

import gc
import json
import socket
import struct
import sys

import dns.message
import dns.rrset
import pytest
import trio

from tests.engine.servers import serve_tcp, serve_udp
from tests.engine.test_real_guest import DUAL, GW4, GW6
from tests.support.fixtures import GuestLinkFactory
from tests.support.leaks import assert_nothing_left, snapshot
from tests.support.netns import in_netns
from tests.support.world import world
from trionet.config import NetworkConfig
from trionet.dns.config import DnsConfig, Nameserver
from trionet.dns.intercept import DnsExchange
from trionet.network import open_network
from trionet.policy import AuditRecord, NetworkPolicy

pytestmark = pytest.mark.root


class Resolver:
    """Answers every A query with 11.0.0.1 unless told to keep quiet."""

    def __init__(self) -> None:
        self.silent = False
        self.seen: list[str] = []

    async def serve(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, peer = await sock.recvfrom(65535)
            query = dns.message.from_wire(data)
            self.seen.append(query.question[0].name.to_text())
            if self.silent:
                continue
            response = dns.message.make_response(query)
            response.answer.append(
                dns.rrset.from_text(query.question[0].name, 30, "IN", "A", "11.0.0.1")
            )
            await sock.sendto(response.to_wire(), peer)


_GUEST = """
import json, socket, sys
import dns.message
gw, gw6 = sys.argv[1], sys.argv[2]
out = {}
def ask(data, host=gw, port=53, wait=2.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(wait)
    s.sendto(data, (host, port))
    try:
        reply, peer = s.recvfrom(65535)
    except socket.timeout:
        return None
    assert peer[0] == host and peer[1] == port, peer
    return reply
q = dns.message.make_query("one.test", "A"); q.id = 4321
r = dns.message.from_wire(ask(q.to_wire()))
out["answer"] = [r.id, [x.to_text() for rr in r.answer for x in rr]]
r = dns.message.from_wire(ask(q.to_wire(), gw6))
out["answer6"] = [x.to_text() for rr in r.answer for x in rr]
out["garbage"] = ask(b"\\x12\\x34 not dns at all", wait=0.5)
out["mdns"] = ask(q.to_wire(), port=5353, wait=0.5)
q2 = dns.message.make_query("host.trionet.internal", "AAAA")
r = dns.message.from_wire(ask(q2.to_wire()))
out["alias"] = [x.to_text() for rr in r.answer for x in rr]
print(json.dumps(out))
"""

_FLOOD = """
import socket, sys, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q = bytes.fromhex("000001000001000000000000") + b"\\x05flood\\x04test\\x00\\x00\\x01\\x00\\x01"
for i in range(int(sys.argv[2])):
    s.sendto(struct.pack("!H", i) + q[2:], (sys.argv[1], 53))
print("sent")
"""


def _config(port: int, timeout_ms: int = 2000) -> NetworkConfig:
    return NetworkConfig(
        policy=NetworkPolicy.from_profiles(["public"]),
        dns=DnsConfig(nameservers=(Nameserver("127.0.0.1", port),), query_timeout_ms=timeout_ms),
    )


def test_answers_drops_and_records(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    resolver = Resolver()
    records: list[AuditRecord] = []
    out: dict[str, object] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                port = await serve_udp(servers, resolver.serve, "127.0.0.1")
                async with open_network(_config(port), 0, routes=DUAL) as net:
                    net.on_audit(records.append)
                    await net.attach_tap(link.tap)
                    result = await link.guest.arun([sys.executable, "-c", _GUEST, GW4, GW6])
                    out.update(json.loads(result.stdout))
                    out["snapshot"] = net.metrics_handle().snapshot()
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out["answer"] == [4321, ["11.0.0.1"]]
    assert out["answer6"] == ["11.0.0.1"]
    assert out["garbage"] is None and out["mdns"] is None
    assert out["alias"] == [GW6]
    # The resolver saw the two forwarded queries, nothing else.
    assert resolver.seen == ["one.test.", "one.test."]
    dropped = out["snapshot"]["dropped"]  # type: ignore[index]
    assert dropped["dns_unparseable"] == 1
    assert dropped["udp_alternative_resolver"] == 1
    dns_records = [
        (r.name, r.verdict, r.reason, r.destination) for r in records if r.kind == "dns"
    ]
    assert dns_records == [
        ("one.test", "allow", None, GW4),
        ("one.test", "allow", None, GW6),
        ("host.trionet.internal", "allow", "host-alias", GW4),
    ]


def test_a_flood_to_a_silent_resolver_is_bounded_and_cleaned_up(
    guest_link_factory: GuestLinkFactory,
) -> None:
    link = guest_link_factory()
    resolver = Resolver()
    resolver.silent = True
    out: dict[str, object] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                port = await serve_udp(servers, resolver.serve, "127.0.0.1")
                before = snapshot()
                async with open_network(_config(port, timeout_ms=500), 0, routes=DUAL) as net:
                    await net.attach_tap(link.tap)
                    await link.guest.arun(["python3", "-c", _FLOOD, GW4, "800"])
                    await trio.sleep(1.5)  # every attempt timed out by now
                    out["snapshot"] = net.metrics_handle().snapshot()
                assert_nothing_left(before)
                servers.cancel_scope.cancel()

    trio.run(main)
    dropped = out["snapshot"]["dropped"]  # type: ignore[index]
    # At most 512 in flight: of 800 queries at once, the rest were dropped.
    assert dropped["dns_overload"] >= 800 - 512
    assert dropped["dns_upstream_failed"] == 800 - dropped["dns_overload"]
    # (the resolver's own socket buffer may drop some of what was sent to it)
    assert 0 < len(resolver.seen) <= 800 - dropped["dns_overload"]


_DIRECT = """
import socket, sys
import dns.message
answered = 0
for i in range(1, int(sys.argv[1]) + 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2.0)
    q = dns.message.make_query(f"d{i}.test", "A")
    s.sendto(q.to_wire(), (f"198.18.0.{i}", 53))
    try:
        s.recvfrom(65535)
        answered += 1
    except socket.timeout:
        pass
    s.close()
print(answered)
"""


def _sockets() -> int:
    return sum(1 for _fd, what in snapshot().fds if what.startswith("socket:"))


def test_guest_chosen_resolvers_leave_no_sockets_behind(
    guest_link_factory: GuestLinkFactory,
) -> None:
    # dig @X for ever more addresses X: a socket kept per resolver the guest
    # names would let it hold open any number of the host's descriptors.
    link = guest_link_factory()
    count = 40
    link.host.ip_batch(f"addr add 198.18.0.{i}/32 dev lo" for i in range(1, count + 1))
    resolver = Resolver()
    out: dict[str, int] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                for i in range(1, count + 1):
                    await serve_udp(servers, resolver.serve, f"198.18.0.{i}", 53)
                async with open_network(_config(5399), 0, routes=DUAL) as net:
                    await net.attach_tap(link.tap)
                    before = _sockets()
                    result = await link.guest.arun(
                        [sys.executable, "-c", _DIRECT, str(count)], timeout=30
                    )
                    out["answered"] = int(result.stdout)
                    out["held"] = _sockets() - before
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out["answered"] == count
    assert len(resolver.seen) == count
    assert out["held"] == 0


_TCP_GUEST = """
import socket, struct, sys
import dns.message
q = dns.message.make_query("reset.test", "A"); q.id = 999
wire = q.to_wire()
s = socket.create_connection((sys.argv[1], 53), timeout=8)
s.sendall(struct.pack("!H", len(wire)) + wire)
def exactly(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("eof")
        data += chunk
    return data
try:
    (size,) = struct.unpack("!H", exactly(2))
    r = dns.message.from_wire(exactly(size))
    print(r.id, r.rcode(), " ".join(x.to_text() for rr in r.answer for x in rr))
except socket.timeout:
    print("timeout")
"""


async def _resetting_handler(stream: trio.SocketStream) -> None:
    """Read the query, then reset the connection (SO_LINGER 0) instead of answering."""
    await stream.receive_some(65535)
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


async def _answering_handler(stream: trio.SocketStream) -> None:
    async with stream:
        data = await stream.receive_some(65535)
        query = dns.message.from_wire(data[2:])
        response = dns.message.make_response(query)
        response.answer.append(
            dns.rrset.from_text(query.question[0].name, 30, "IN", "A", "11.0.0.2")
        )
        wire = response.to_wire()
        await stream.send_all(struct.pack("!H", len(wire)) + wire)


def test_a_tcp_upstream_that_resets_fails_over(guest_link_factory: GuestLinkFactory) -> None:
    # §7.3 step 7: a transport error moves on to the next upstream.
    link = guest_link_factory()
    out: dict[str, object] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                bad = await serve_tcp(servers, _resetting_handler, "127.0.0.1")
                good = await serve_tcp(servers, _answering_handler, "127.0.0.1")
                config = NetworkConfig(
                    policy=NetworkPolicy.from_profiles(["public"]),
                    dns=DnsConfig(
                        nameservers=(Nameserver("127.0.0.1", bad), Nameserver("127.0.0.1", good)),
                        query_timeout_ms=3000,
                    ),
                )
                async with open_network(config, 0, routes=DUAL) as net:
                    await net.attach_tap(link.tap)
                    result = await link.guest.arun([sys.executable, "-c", _TCP_GUEST, GW4])
                    out["reply"] = result.stdout.decode().strip()
                    out["dropped"] = net.metrics_handle().snapshot()["dropped"]
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out["reply"] == "999 0 11.0.0.2"
    dropped = out["dropped"]
    assert isinstance(dropped, dict)
    assert dropped["dns_upstream_failed"] == 1 and dropped.get("dns_error", 0) == 0


_TCP_FLOOD = """
import socket, struct, sys, time
import dns.message
conns = []
for c in range(int(sys.argv[2])):
    s = socket.create_connection((sys.argv[1], 53), timeout=5)
    burst = b""
    for i in range(int(sys.argv[3])):
        wire = dns.message.make_query(f"q{c}-{i}.test", "A").to_wire()
        burst += struct.pack("!H", len(wire)) + wire
    s.sendall(burst)
    conns.append(s)
time.sleep(float(sys.argv[4]))
print(len(conns))
"""


class _SilentTcpResolver:
    """Accepts upstream TCP queries and never answers; counts them open at once."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0

    async def handler(self, stream: trio.SocketStream) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        try:
            async with stream:
                while await stream.receive_some(65535):
                    pass
        finally:
            self.open -= 1


def test_tcp_queries_count_toward_the_in_flight_limit(
    guest_link_factory: GuestLinkFactory,
) -> None:
    # At most 512 queries in flight, UDP and TCP together: 64 DNS-over-TCP
    # connections pipelining 16 each must not hold 1024 upstream sockets.
    link = guest_link_factory()
    resolver = _SilentTcpResolver()
    out: dict[str, object] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                port = await serve_tcp(servers, resolver.handler, "127.0.0.1")
                async with open_network(_config(port, timeout_ms=4000), 0, routes=DUAL) as net:
                    await net.attach_tap(link.tap)
                    result = await link.guest.arun(
                        [sys.executable, "-c", _TCP_FLOOD, GW4, "64", "16", "2.5"], timeout=30
                    )
                    out["connections"] = int(result.stdout)
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out["connections"] == 64
    assert 256 < resolver.most <= 512


_PADDED = """
import socket, sys
import dns.edns, dns.message
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2.0)
answered = 0
for i in range(int(sys.argv[2])):
    # EDNS padding (RFC 7830) makes a query as large as the guest likes.
    pad = dns.edns.GenericOption(dns.edns.OptionType.PADDING, bytes(int(sys.argv[3])))
    q = dns.message.make_query(f"p{i}.test", "A", use_edns=0, payload=1232, options=[pad])
    s.sendto(q.to_wire(max_size=65535), (sys.argv[1], 53))
    try:
        s.recvfrom(65535)
        answered += 1
    except socket.timeout:
        pass
print(answered)
"""


def test_answered_udp_queries_are_not_held_until_their_timeout(
    guest_link_factory: GuestLinkFactory,
) -> None:
    # Each UDP attempt's timeout sits on the engine's timer until it is due;
    # if it kept the query's bytes alive, a guest sending large (padded)
    # queries would hold rate x timeout of them.
    link = guest_link_factory()
    resolver = Resolver()
    out: dict[str, int] = {}

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                port = await serve_udp(servers, resolver.serve, "127.0.0.1")
                config = _config(port, timeout_ms=60_000)
                async with open_network(config, 0, routes=DUAL) as net:
                    await net.attach_tap(link.tap)
                    result = await link.guest.arun(
                        [sys.executable, "-c", _PADDED, GW4, "200", "8000"], timeout=30
                    )
                    out["answered"] = int(result.stdout)
                    gc.collect()
                    out["held"] = sum(isinstance(o, DnsExchange) for o in gc.get_objects())
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out["answered"] == 200
    assert out["held"] <= 2  # (each one holds its query's 8 KB)


def test_a_resolver_on_another_host_address_is_judged_as_the_host(
    guest_link_factory: GuestLinkFactory,
) -> None:
    # dig @<one of the host's own addresses>: the host kernel delivers that
    # locally, so it is the host (as for every other flow), not "public".
    link = guest_link_factory()
    link.host.ip("addr", "add", "198.18.0.99/32", "dev", "lo")
    resolver = Resolver()
    out: dict[str, object] = {}
    policy = NetworkPolicy.from_dict(
        {
            "default_egress": "deny",
            "rules": [
                {
                    "direction": "egress",
                    "destination": {"domain_suffix": "test"},
                    "action": "allow",
                },
                {"direction": "egress", "destination": {"group": "public"}, "action": "allow"},
            ],
        }
    )

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(60):
            async with trio.open_nursery() as servers:
                await serve_udp(servers, resolver.serve, "198.18.0.99", 53)
                config = NetworkConfig(
                    policy=policy,
                    dns=DnsConfig(nameservers=(Nameserver("127.0.0.1", 5399),)),
                )
                async with open_network(config, 0, routes=DUAL) as net:
                    await net.attach_tap(link.tap)
                    result = await link.guest.arun(
                        [sys.executable, "-c", _ONE_QUERY, "198.18.0.99", "host.test"]
                    )
                    out["rcode"] = result.stdout.decode().strip()
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out["rcode"] == "NXDOMAIN"
    assert resolver.seen == []


_ONE_QUERY = """
import socket, sys
import dns.message, dns.rcode
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3.0)
s.sendto(dns.message.make_query(sys.argv[2], "A").to_wire(), (sys.argv[1], 53))
try:
    print(dns.rcode.to_text(dns.message.from_wire(s.recvfrom(65535)[0]).rcode()))
except socket.timeout:
    print("timeout")
"""


_CONNECT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.sendall(b"hello")
    print(s.recv(100).decode() or "eof")
except ConnectionRefusedError:
    print("refused")
except OSError as exc:
    print(type(exc).__name__)
"""


async def _greeting_handler(stream: trio.SocketStream) -> None:
    async with stream:
        await stream.receive_some(100)
        await stream.send_all(b"reached")


def test_dns_over_tls_without_interception_is_reset(guest_link_factory: GuestLinkFactory) -> None:
    # §7.1: TCP/853 is accepted only with TLS interception (trionet answers
    # DoT then); otherwise RST, so the stub falls back to plain DNS, which
    # trionet answers, rather than resolving past the DNS policy and pins.
    link = guest_link_factory()
    out: dict[str, str] = {}

    async def main() -> None:
        with world(link.host, ["198.51.100.53"]) as elsewhere, trio.fail_after(60):
            async with trio.open_nursery() as servers:
                with in_netns(elsewhere):
                    await serve_tcp(servers, _greeting_handler, "198.51.100.53", 853)
                    await serve_tcp(servers, _greeting_handler, "198.51.100.53", 8853)
                with in_netns(link.host):
                    async with open_network(_config(5399), 0, routes=DUAL) as net:
                        await net.attach_tap(link.tap)
                        for port in (853, 8853):
                            result = await link.guest.arun(
                                [sys.executable, "-c", _CONNECT, "198.51.100.53", str(port)]
                            )
                            out[str(port)] = result.stdout.decode().strip()
                servers.cancel_scope.cancel()

    trio.run(main)
    assert out == {"853": "refused", "8853": "reached"}
