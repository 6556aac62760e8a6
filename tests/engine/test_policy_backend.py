"""The configured policy at the engine's decision points, through the frame backend (no root).

Only denied flows and gateway pings are exercised here: an allowed flow to a
public address would leave the machine. Real guests reaching real servers
are in tests/test_cli_policy.py.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket
from collections.abc import Callable

import pytest
import trio
import trio.testing

from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.engine.audit import AuditLog
from trionet.engine.policy import NewFlow, Verdict
from trionet.network import Network, multi_tenant_config, open_network
from trionet.policy import AuditRecord, NetworkPolicy
from trionet.ports.config import PortMapping
from trionet.services import ports
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.frames import build_ipv4_frame
from trionet.wire.icmpv4 import Icmpv4Echo, parse_icmpv4
from trionet.wire.ipv4 import PROTO_TCP, parse_ipv4
from trionet.wire.tcp import TcpFlags, TcpHeader, parse_tcp
from trionet.wire.udp import UdpHeader

ROUTES = HostRoutes(ipv4=True, ipv6=False)
GUEST_MAC = bytes.fromhex("026d73000002")
GATEWAY_MAC = bytes.fromhex("026d73000001")
GUEST = bytes([172, 16, 0, 2])
GATEWAY = bytes([172, 16, 0, 1])


def _ping(dst: bytes) -> bytes:
    echo = Icmpv4Echo(True, 0x77, 1)
    return bytes(build_ipv4_frame(GUEST_MAC, GATEWAY_MAC, GUEST, dst, echo, payload=b"hi")) + b"hi"


def _syn(dst: bytes, port: int) -> bytes:
    syn = TcpHeader(40000, port, 1000, 0, TcpFlags.SYN, 65535)
    return bytes(build_ipv4_frame(GUEST_MAC, GATEWAY_MAC, GUEST, dst, syn))


def _udp(dst: bytes, port: int) -> bytes:
    frame = build_ipv4_frame(
        GUEST_MAC, GATEWAY_MAC, GUEST, dst, UdpHeader(40001, port), payload=b"x"
    )
    return bytes(frame) + b"x"


async def _next_frame(net: Network, timeout: float = 2.0) -> bytes | None:
    with trio.move_on_after(timeout):
        return bytes(await net.core.backend.receive())
    return None


async def _records(net: Network, frames: list[bytes], count: int) -> list[AuditRecord]:
    got: list[AuditRecord] = []
    net.on_audit(got.append)
    backend = net.take_backend()
    for frame in frames:
        await backend.send(frame)
    with trio.fail_after(5):
        while len(got) < count:
            await trio.sleep(0.01)
    return got


async def test_default_profile_denies_gateway_ping_and_records_it() -> None:
    async with open_network(NetworkConfig(), 0, routes=ROUTES) as net:
        [record] = await _records(net, [_ping(GATEWAY)], 1)
        assert await _next_frame(net, 0.5) is None  # silently consumed (§6)
        assert (record.kind, record.protocol, record.verdict, record.rule) == (
            "flow",
            "icmpv4",
            "deny",
            "default",
        )
        assert (record.source, record.destination, record.port) == (
            "172.16.0.2",
            "172.16.0.1",
            None,
        )
        audit = net.metrics_handle().snapshot()["audit"]
        assert audit == {"allow": 0, "deny": 1, "dropped": 0, "callback_errors": 0}


async def test_host_profile_answers_gateway_ping() -> None:
    config = NetworkConfig(policy=NetworkPolicy.from_profiles(["public", "host"]))
    async with open_network(config, 0, routes=ROUTES) as net:
        [record] = await _records(net, [_ping(GATEWAY)], 1)
        frame = await _next_frame(net)
        assert frame is not None
        _, payload = parse_ethernet(frame)
        ip, body = parse_ipv4(payload)
        assert (ip.src, ip.dst) == (GATEWAY, GUEST)
        assert parse_icmpv4(body)[0] == Icmpv4Echo(False, 0x77, 1)
        assert (record.verdict, record.rule_index, record.rule) == (
            "allow",
            2,
            "allow egress group:host",
        )


@pytest.mark.parametrize(
    ("dst", "port"),
    [
        ("10.0.0.1", 80),  # private
        ("169.254.169.254", 80),  # metadata
        ("169.254.1.1", 80),  # link-local
        ("172.16.0.1", 8080),  # the host, not its DNS port
        ("192.168.7.7", 22),
    ],
)
async def test_denied_tcp_gets_a_reset(dst: str, port: int) -> None:
    async with open_network(NetworkConfig(), 0, routes=ROUTES) as net:
        address = ipaddress.IPv4Address(dst).packed
        [record] = await _records(net, [_syn(address, port)], 1)
        frame = await _next_frame(net)
        assert frame is not None
        _, payload = parse_ethernet(frame)
        ip, body = parse_ipv4(payload)
        assert ip.protocol == PROTO_TCP and (ip.src, ip.dst) == (address, GUEST)
        header, _ = parse_tcp(body, None)
        assert TcpFlags.RST in header.flags
        assert (record.protocol, record.destination, record.port) == ("tcp", dst, port)
        assert (record.source_port, record.verdict) == (40000, "deny")
        snapshot = net.metrics_handle().snapshot()
        assert snapshot["dropped"]["policy"] == 1  # type: ignore[index]
        assert snapshot["connections"]["refused"] == 1  # type: ignore[index]


async def test_denied_udp_is_dropped_and_recorded() -> None:
    async with open_network(NetworkConfig(), 0, routes=ROUTES) as net:
        meta = ipaddress.IPv4Address("169.254.169.254").packed
        records = await _records(net, [_udp(meta, 80), _udp(GATEWAY, 5000)], 2)
        assert await _next_frame(net, 0.5) is None
        assert [(r.protocol, r.destination, r.port, r.verdict) for r in records] == [
            ("udp", "169.254.169.254", 80, "deny"),
            ("udp", "172.16.0.1", 5000, "deny"),
        ]
        assert net.metrics_handle().snapshot()["udp_flows"]["opened"] == 0  # type: ignore[index]


async def test_the_embedder_hook_is_asked_only_after_the_policy_allowed() -> None:
    asked: list[NewFlow] = []

    def hook(flow: NewFlow) -> Verdict:
        asked.append(flow)
        return Verdict.DENY

    config = NetworkConfig(policy=NetworkPolicy.from_profiles(["host"]))
    async with open_network(config, 0, routes=ROUTES, policy=hook) as net:
        records = await _records(net, [_syn(bytes([10, 0, 0, 1]), 80), _syn(GATEWAY, 8080)], 2)
        assert [f.destination_port for f in asked] == [8080]
        assert [(r.verdict, r.rule, r.reason) for r in records] == [
            ("deny", "default", None),
            ("deny", "embedder policy", "embedder-policy"),
        ]


async def test_multi_tenant_floor_denies_what_the_tenant_allows() -> None:
    config = NetworkConfig(policy=NetworkPolicy.allow_all(), max_connections=4096)
    async with open_network(config, 0, routes=ROUTES, profile="multi-tenant") as net:
        assert net.config.max_connections == 256
        records = await _records(net, [_syn(bytes([10, 0, 0, 1]), 80), _ping(GATEWAY)], 2)
        assert [(r.verdict, r.reason) for r in records] == [
            ("deny", "platform"),
            ("deny", "platform"),
        ]
    with pytest.raises(ValueError, match="unknown profile"):
        async with open_network(config, 0, routes=ROUTES, profile="shared"):
            pass


def test_multi_tenant_config_resets_what_could_widen_access() -> None:
    config = NetworkConfig.from_dict(
        {
            "interface": {"mtu": 9000},
            "max_connections": 1000,
            "dns": {"nameservers": ["10.0.0.53"], "rebind_protection": False},
            "ports": [{"host_port": 8080, "guest_port": 80}],
        }
    )
    sanitised, changed = multi_tenant_config(config)
    assert changed == ["dns", "interface", "max_connections", "ports"]
    assert sanitised.ports == ()
    assert sanitised.interface == NetworkConfig().interface
    assert sanitised.dns == NetworkConfig().dns
    assert sanitised.max_connections == 256
    assert sanitised.policy == config.policy  # the tenant's policy is kept as is
    assert multi_tenant_config(NetworkConfig()) == (NetworkConfig(), [])


async def test_audit_iterator_and_ingress_decision() -> None:
    policy = NetworkPolicy.from_dict(
        {
            "default_ingress": "deny",
            "rules": [
                {
                    "direction": "ingress",
                    "destination": {"group": "loopback"},
                    "ports": [{"start": 80, "end": 80}],
                    "action": "allow",
                }
            ],
        }
    )
    async with open_network(NetworkConfig(policy=policy), 0, routes=ROUTES) as net:
        records: list[AuditRecord] = []

        async def read() -> None:
            async for record in net.audit_records():
                records.append(record)
                if len(records) == 2:
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            with trio.fail_after(5):
                while not net.core.audit._readers:
                    await trio.sleep(0.001)
            assert net.core.ingress_decision(ipaddress.ip_address("127.0.0.1"), 80, "tcp")
            assert not net.core.ingress_decision(ipaddress.ip_address("127.0.0.1"), 81, "tcp")
        assert [
            (r.kind, r.source, r.destination, r.port, r.verdict, r.rule_index) for r in records
        ] == [
            ("ingress", "127.0.0.1", "172.16.0.2", 80, "allow", 0),
            ("ingress", "127.0.0.1", "172.16.0.2", 81, "deny", None),
        ]
        line = json.loads(records[0].to_json())
        assert line["rule"] == "allow ingress group:loopback port 80"


async def test_audit_log_never_blocks_and_drops_oldest_for_a_slow_reader() -> None:
    log = AuditLog(buffer_size=3)
    record = AuditRecord(0.0, "flow", "tcp", "a", 1, "b", 2, None, "deny", None, "default")

    def broken(_record: AuditRecord) -> None:
        raise RuntimeError("embedder bug")

    log.on_record(broken)
    got: list[AuditRecord] = []
    unsubscribe = log.on_record(got.append)
    reader = log.records()
    async with trio.open_nursery() as nursery:
        results: list[int] = []

        async def consume() -> None:
            async for rec in reader:
                results.append(rec.port or 0)
                if rec.port == 9:
                    return

        nursery.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()  # the reader is waiting now
        for port in range(2, 10):  # eight records without yielding: the reader lags
            log.emit(AuditRecord(0.0, "flow", "tcp", "a", 1, "b", port, None, "deny", None, "d"))
    assert results == [7, 8, 9]  # the oldest were dropped, the latest kept
    assert log.dropped == 5
    assert log.callback_errors == 8
    unsubscribe()
    log.emit(record)
    assert len(got) == 8
    assert log.snapshot()["deny"] == 9


async def test_flow_records_name_what_the_guest_resolved_and_shadowed_rules_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = NetworkPolicy.public().append(NetworkPolicy.public().rules[1])
    async with open_network(NetworkConfig(policy=policy), 0, routes=ROUTES) as net:
        net.core.pins.record(
            "intranet.example", 4, [ipaddress.ip_address("10.0.0.1")], 30, trio.current_time()
        )
        [record] = await _records(net, [_syn(bytes([10, 0, 0, 1]), 80)], 1)
        assert (record.name, record.verdict, record.rule) == (
            "intranet.example",
            "deny",
            "default",
        )
    assert "rules[2] (allow egress group:public) is shadowed by rules[1]" in caplog.text


async def test_a_denied_udp_flood_is_one_record_per_second() -> None:
    async with open_network(NetworkConfig(), 0, routes=ROUTES) as net:
        meta = ipaddress.IPv4Address("169.254.169.254").packed
        records = await _records(net, [_udp(meta, 80)] * 50, 1)
        await trio.sleep(0.2)
        assert len(records) == 1
        assert net.metrics_handle().snapshot()["dropped"]["policy"] == 50  # type: ignore[index]
        await trio.sleep(1.0)
        await net.core.backend.send(_udp(meta, 80))
        with trio.fail_after(5):
            while len(records) < 2:
                await trio.sleep(0.01)


async def test_a_denied_published_udp_peer_flood_is_one_record_per_second() -> None:
    # The peers of a published UDP port are whoever can reach its host
    # socket (anyone, on a wildcard bind): a denied one sending fast must not
    # put each datagram on record, or an --audit file grows at its rate.
    policy = NetworkPolicy.from_dict({"default_ingress": "deny"})
    async with open_network(NetworkConfig(policy=policy), 0, routes=ROUTES) as net:
        got: list[AuditRecord] = []
        net.on_audit(got.append)
        mapping = await net.publish(PortMapping(0, 7001, "udp"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            for _ in range(50):
                peer.sendto(b"x", ("127.0.0.1", mapping.host_port))
            dropped = net.metrics_handle().snapshot()["dropped"]
            with trio.fail_after(5):
                while dropped.get("published_denied", 0) < 50:  # type: ignore[union-attr]
                    await trio.sleep(0.01)
                    dropped = net.metrics_handle().snapshot()["dropped"]
            assert [(r.kind, r.verdict) for r in got] == [("ingress", "deny")]
            await trio.sleep(1.0)
            peer.sendto(b"x", ("127.0.0.1", mapping.host_port))
            with trio.fail_after(5):
                while len(got) < 2:
                    await trio.sleep(0.01)


async def test_published_udp_peers_past_the_port_range_are_dropped_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each host peer takes a gateway port toward the guest. With all of them
    # taken, a new peer must be dropped without walking the whole range: a
    # sender cycling source ports would otherwise cost a 16384-port scan per
    # datagram, stalling the engine for every guest flow.
    monkeypatch.setattr(ports, "EPHEMERAL_LAST", ports.EPHEMERAL_FIRST + 3)
    async with open_network(NetworkConfig(), 0, routes=ROUTES) as net:
        mapping = await net.publish(PortMapping(0, 7001, "udp"))
        publisher = net._ports  # type: ignore[attr-defined]
        scans = 0
        scan = publisher._ephemeral

        def counted(free: Callable[[int], bool]) -> int | None:
            nonlocal scans
            scans += 1
            return scan(free)  # type: ignore[no-any-return]

        publisher._ephemeral = counted
        peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(6)]
        try:
            for peer in peers:
                peer.sendto(b"x", ("127.0.0.1", mapping.host_port))
                await trio.sleep(0.05)
        finally:
            for peer in peers:
                peer.close()
        dropped = net.metrics_handle().snapshot()["dropped"]
        assert dropped["published_no_port"] == 2  # type: ignore[index]
        assert scans == 4


async def test_a_failing_accept_rests_the_listener_instead_of_spinning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Out of file descriptors, accept() fails while the client stays in the
    # backlog, so the level-triggered loop reports the listener again at
    # once: without a pause the engine spins on it until an fd frees up.
    async with open_network(NetworkConfig(), 0, routes=ROUTES) as net:
        mapping = await net.publish(PortMapping(0, 7001))
        calls = 0
        accept = socket.socket.accept

        def failing(sock: socket.socket) -> tuple[socket.socket, object]:
            nonlocal calls
            if sock.getsockname()[1] == mapping.host_port:
                calls += 1
                raise OSError(errno.EMFILE, "Too many open files")
            return accept(sock)

        monkeypatch.setattr(socket.socket, "accept", failing)
        client = socket.socket()
        client.setblocking(False)
        try:
            client.connect_ex(("127.0.0.1", mapping.host_port))
            await trio.sleep(0.55)
        finally:
            client.close()
        assert 1 <= calls <= 10
        monkeypatch.undo()
