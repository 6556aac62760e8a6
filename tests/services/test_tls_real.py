"""TLS interception with a real Linux guest and real TLS servers.

The host namespace holds the engine's host side and HTTPS echo servers on
public-looking addresses (203.0.113.0/24 on a "world" namespace routed from it), each
with a certificate from a test CA that trionet trusts as an upstream root.
In the guest: curl, openssl s_client and Python ssl, trusting trionet's CA.
Names are given to the guest with ``curl --resolve`` / ``-servername`` (no
DNS here); where a test needs the sandbox to have resolved a name, it records
the pin directly, as trionet's DNS would.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.services.tls_servers import ConnectProxy, PlainHttpEcho, TlsEchoServer, UpstreamCa
from tests.support.fixtures import GuestLink, GuestLinkFactory
from tests.support.netns import Netns, in_netns
from tests.support.world import world
from trionet.addressing import HostRoutes
from trionet.config import NetworkConfig
from trionet.network import Network, open_network
from trionet.policy.audit import AuditRecord
from trionet.policy.model import NetworkPolicy
from trionet.tls.certs import generate_ca

pytestmark = pytest.mark.root

DUAL = HostRoutes(ipv4=True, ipv6=True)
API, API_IP = "api.example.com", "203.0.113.10"
OTHER, OTHER_IP = "other.example", "203.0.113.11"
PINNED, PINNED_IP = "pinned.example", "203.0.113.12"
ROGUE, ROGUE_IP = "rogue.example", "203.0.113.13"
PROXY_IP = "203.0.113.20"
#: stands for the rogue server's CA file in a test's tls settings
ROGUE_CA_FILE = "@ROGUE_CA@"
REAL = "sk-REAL-secret-value-42"
SECRET = {"env_var": "API_KEY", "value": REAL, "allowed_hosts": [{"exact": API}]}
ENGINE_CA = generate_ca()
GUEST_HTTPS = str(Path(__file__).with_name("guest_https.py"))


@dataclass
class Setup:
    link: GuestLink
    tmp: Path
    net: Network
    servers: dict[str, TlsEchoServer]
    test_ca: UpstreamCa
    proxy: ConnectProxy
    plain: PlainHttpEcho
    #: the namespace the servers' addresses live in (tests/support/world.py)
    world: Netns
    audit: list[AuditRecord] = field(default_factory=list)

    @property
    def ca_file(self) -> str:
        path = self.tmp / "trionet-ca.pem"
        ca = self.net.ca_cert_pem()
        assert ca is not None
        path.write_bytes(ca)
        return str(path)

    def env(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.net.guest_env_vars()]

    async def guest(self, argv: list[str], **kwargs: Any) -> Any:
        kwargs.setdefault("check", False)
        kwargs.setdefault("timeout", 20)
        return await self.link.guest.arun(["env", *self.env(), *argv], **kwargs)

    async def curl(self, name: str, ip: str, *args: str, cafile: str | None = None) -> Any:
        return await self.guest(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                cafile or self.ca_file,
                "--resolve",
                f"{name}:443:{ip}",
                *args,
                f"https://{name}/echo",
            ]
        )

    def reasons(self) -> list[str | None]:
        """Why each TLS-level refusal happened, in order."""
        return [r.reason for r in self.audit if r.verdict == "deny" and r.kind == "tls"]


def run_tls(
    link: GuestLink,
    tmp: Path,
    body: Callable[[Setup], Awaitable[None]],
    *,
    tls: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    pins: dict[str, str] | None = None,
    dns: bool = False,
    proxy_names: dict[str, str] | None = None,
) -> Setup:
    """``dns``: a dnsmasq in the host namespace knows every server's name, and is
    the engine's only upstream resolver; otherwise the guest gets no DNS.
    ``proxy_names``: where the CONNECT proxy sends each name, if it lies."""
    test_ca, rogue_ca = UpstreamCa(tmp), UpstreamCa(tmp)
    servers = {
        name: TlsEchoServer(
            (rogue_ca if name == ROGUE else test_ca).server_context(name, ["h2", "http/1.1"])
        )
        for name in (API, OTHER, PINNED, ROGUE)
    }
    addresses = {API: API_IP, OTHER: OTHER_IP, PINNED: PINNED_IP, ROGUE: ROGUE_IP}
    proxy = ConnectProxy(proxy_names or addresses)
    plain = PlainHttpEcho()
    data: dict[str, Any] = {
        "tls": {
            "enabled": True,
            "upstream_ca_cert": [str(test_ca.path)],
            **json.loads(json.dumps(tls or {}).replace(ROGUE_CA_FILE, str(rogue_ca.path))),
        },
        "secrets": secrets or {"secrets": [SECRET]},
    }
    if policy is not None:
        data["policy"] = policy
    dns_port = 5300 + os.getpid() % 500
    if dns:
        # 203.0.113.0/24 is in the rebind-private set (§7.4): these tests'
        # answers point there on purpose, so rebind protection is off.
        data["dns"] = {"nameservers": [f"127.0.0.1:{dns_port}"], "rebind_protection": False}
    config = NetworkConfig.from_dict(data)
    result: list[Setup] = []

    async def main(elsewhere: Netns) -> None:
        with in_netns(link.host), trio.fail_after(90):
            async with trio.open_nursery() as nursery:
                # The servers are elsewhere, not on the engine's host: their
                # sockets are made in the world namespace and stay there.
                with in_netns(elsewhere):
                    for name, server in servers.items():
                        await server.serve(nursery, addresses[name])
                    await proxy.serve(nursery, PROXY_IP)
                    await plain.serve(nursery, OTHER_IP)
                if dns:
                    await _start_dnsmasq(nursery, link, dns_port, addresses)
                async with open_network(config, 0, routes=DUAL, ca=ENGINE_CA) as net:
                    await net.attach_tap(link.tap)
                    setup = Setup(link, tmp, net, servers, test_ca, proxy, plain, elsewhere)
                    net.on_audit(setup.audit.append)
                    for name, ip in (pins or {}).items():
                        net.pins.record(
                            name,
                            4,
                            [__import__("ipaddress").ip_address(ip)],
                            300,
                            trio.current_time(),
                        )
                    result.append(setup)
                    await body(setup)
                nursery.cancel_scope.cancel()

    with world(link.host, [*addresses.values(), PROXY_IP]) as elsewhere:
        trio.run(main, elsewhere)
    return result[0]


async def _start_dnsmasq(
    nursery: trio.Nursery, link: GuestLink, port: int, names: dict[str, str]
) -> None:
    argv = [
        *("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv"),
        *("--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1"),
        *(f"--port={port}", "--user=root", "--pid-file="),
        *(f"--address=/{name}/{ip}" for name, ip in names.items()),
    ]
    await link.host.start(nursery, argv)
    with in_netns(link.host):
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            await trio.sleep(0.05)
    raise RuntimeError("dnsmasq did not start")


def test_intercepted_fetch_substitutes_the_secret(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """curl and Python ssl: the server gets the value, the guest only the placeholder."""

    async def body(s: Setup) -> None:
        env = await s.guest(["sh", "-c", "echo $API_KEY"])
        assert env.stdout == b"$MSB_API_KEY\n"
        r = await s.curl(API, API_IP, "--http1.1", "-H", "Authorization: Bearer $MSB_API_KEY")
        assert r.returncode == 0, r.stderr
        py = await s.guest(["python3", GUEST_HTTPS, "get", s.ca_file, API_IP, API])
        assert py.stdout == b"HTTP/1.1 200 OK\n", py.stderr
        # Rotated at run time: the next connection gets the new value.
        s.net.secrets_handle().rotate_value("API_KEY", "sk-ROTATED")
        py = await s.guest(["python3", GUEST_HTTPS, "get", s.ca_file, API_IP, API])
        assert py.stdout == b"HTTP/1.1 200 OK\n", py.stderr

    s = run_tls(guest_link_factory(), tmp_path, body, pins={API: API_IP})
    first, second, third = s.servers[API].received
    assert b"Authorization: Bearer " + REAL.encode() in first
    assert b"X-Key: " + REAL.encode() in second
    assert b"X-Key: sk-ROTATED" in third
    assert b"MSB_API_KEY" not in first + second + third
    assert s.reasons() == []


def test_intercepted_fetch_over_http2(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """curl --http2: ALPN h2 end to end, many streams, the secret substituted."""

    async def body(s: Setup) -> None:
        urls = " ".join(f"-o /dev/null https://{API}/s{i}" for i in range(5))
        r = await s.guest(
            [
                "sh",
                "-c",
                f"curl -sS --max-time 10 --http2 --cacert {s.ca_file} "
                f"--resolve {API}:443:{API_IP} -H 'X-Key: '$API_KEY "
                f"-w '%{{http_version}}\\n' {urls}",
            ]
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"2\n" * 5
        r = await s.curl(API, API_IP, "--http1.1", "-w", "%{http_version}", "-o", "/dev/null")
        assert r.stdout == b"1.1"

    s = run_tls(guest_link_factory(), tmp_path, body, pins={API: API_IP})
    assert s.servers[API].alpn == ["h2", "http/1.1"]
    h2_requests = s.servers[API].received[:5]
    assert all(b"x-key: " + REAL.encode() in r for r in h2_requests), h2_requests
    assert sorted(r.split(b":path: ")[1].split(b"\r\n")[0] for r in h2_requests) == [
        b"/s%d" % i for i in range(5)
    ]


def test_bypassed_host_presents_its_own_certificate(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    async def body(s: Setup) -> None:
        # Trusting only the test CA: works only if the server's own cert reaches the guest.
        r = await s.curl(
            PINNED, PINNED_IP, "-H", "X-Key: $MSB_API_KEY", cafile=str(s.test_ca.path)
        )
        assert r.returncode == 0, r.stderr
        r = await s.curl(PINNED, PINNED_IP)  # trionet's CA does not sign it
        assert r.returncode != 0

    s = run_tls(guest_link_factory(), tmp_path, body, tls={"bypass": ["*.pinned.example"]})
    assert b"x-key: $MSB_API_KEY" in s.servers[PINNED].received[0]  # untouched, over h2


@pytest.mark.parametrize("action", ["block-and-log", "block-and-terminate"])
def test_placeholder_to_another_host_is_blocked(
    guest_link_factory: GuestLinkFactory, tmp_path: Path, action: str
) -> None:
    async def body(s: Setup) -> None:
        r = await s.curl(OTHER, OTHER_IP, "-H", "X-Key: $MSB_API_KEY")
        assert r.returncode != 0
        if action == "block-and-terminate":
            await trio.sleep_forever()  # the termination cancels the network's scope

    secrets = {"secrets": [{**SECRET, "on_violation": action}]}
    s = run_tls(guest_link_factory(), tmp_path, body, secrets=secrets, pins={API: API_IP})
    assert s.servers[OTHER].received == []
    assert s.reasons() == ["secret-violation"]
    termination = s.net.termination_handle()
    if action == "block-and-terminate":
        assert termination.reason == f"secret API_KEY sent to {OTHER} (in the header)"
    else:
        assert not termination.terminated


def test_host_header_must_match_the_sni(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    async def body(s: Setup) -> None:
        r = await s.curl(API, API_IP, "-H", f"Host: {OTHER}")
        assert r.returncode != 0

    s = run_tls(guest_link_factory(), tmp_path, body)
    assert s.servers[API].received == []
    assert s.reasons() == ["host-mismatch"]


def test_sni_of_an_allowed_domain_on_an_unresolved_ip_is_refused(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """Domain rules hold only where this sandbox's DNS bound the name to the address."""
    policy = {
        "default_egress": "deny",
        "rules": [
            {"direction": "egress", "destination": {"domain": d}, "action": "allow"}
            for d in (API, OTHER)
        ],
    }

    async def body(s: Setup) -> None:
        # Both names are allowed and resolved, but the guest sends other.example's
        # name to api.example.com's address: the SYN passes (the address is
        # bound to an allowed name), the SNI does not.
        r = await s.curl(OTHER, API_IP)
        assert r.returncode != 0
        r = await s.curl(API, ROGUE_IP)  # an address nothing resolved to: no SYN-ACK
        assert r.returncode != 0
        r = await s.curl(API, API_IP)  # what the sandbox resolved
        assert r.returncode == 0, r.stderr

    s = run_tls(
        guest_link_factory(), tmp_path, body, policy=policy, pins={API: API_IP, OTHER: OTHER_IP}
    )
    assert len(s.servers[API].received) == 1
    assert s.servers[ROGUE].received == []
    denied = [(r.kind, r.reason, r.destination, r.name) for r in s.audit if r.verdict == "deny"]
    assert denied == [("tls", "sni-policy", API_IP, OTHER), ("flow", None, ROGUE_IP, None)]


@pytest.mark.parametrize("scoped", [None, "verify-off", "scoped-ca"])
def test_upstream_with_unknown_ca_is_refused(
    guest_link_factory: GuestLinkFactory, tmp_path: Path, scoped: str | None
) -> None:
    """Verification is on unless scoped off for that host, or that host's CA is added."""

    async def body(s: Setup) -> None:
        r = await s.curl(ROGUE, ROGUE_IP)
        assert (r.returncode == 0) == (scoped is not None), r.stderr
        r = await s.curl(API, API_IP)  # other hosts keep the global settings
        assert r.returncode == 0, r.stderr

    tls: dict[str, Any] = {}
    if scoped == "verify-off":
        tls = {"scoped_verify_upstream": [{"pattern": ROGUE, "verify": False}]}
    elif scoped == "scoped-ca":
        tls = {"scoped_upstream_ca_cert": [{"pattern": "*.example", "path": ROGUE_CA_FILE}]}
    s = run_tls(guest_link_factory(), tmp_path, body, tls=tls)
    assert len(s.servers[ROGUE].received) == (0 if scoped is None else 1)
    assert s.reasons() == ([] if scoped else ["upstream-verify"])


def test_hello_without_sni_and_plain_text_are_refused_at_once(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    async def body(s: Setup) -> None:
        with trio.fail_after(5):  # not the reference's 10 s SNI wait
            r = await s.guest(
                ["openssl", "s_client", "-connect", f"{API_IP}:443", "-noservername"],
                stdin=b"",
            )
        assert b"no peer certificate available" in r.stdout
        r = await s.guest(["curl", "-sS", "--max-time", "5", f"http://{API_IP}:443/"])
        assert r.returncode != 0

    s = run_tls(guest_link_factory(), tmp_path, body)
    assert s.reasons() == ["no-sni", "not-tls"]
    assert s.servers[API].received == []


def test_guest_one_hour_behind_accepts_the_leaf(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """openssl s_client in the guest verifies the leaf as of an hour ago."""

    async def body(s: Setup) -> None:
        for skew, ok in ((3600, True), (3 * 86400, False)):
            r = await s.guest(
                [
                    "openssl",
                    "s_client",
                    "-connect",
                    f"{API_IP}:443",
                    "-servername",
                    API,
                    "-CAfile",
                    s.ca_file,
                    "-verify_return_error",
                    "-attime",
                    str(int(time.time()) - skew),
                ],
                stdin=b"",
            )
            assert (b"Verify return code: 0 (ok)" in r.stdout) == ok, r.stdout[-500:]

    run_tls(guest_link_factory(), tmp_path, body)


def test_websocket_upgrade_carries_the_substituted_header(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    async def body(s: Setup) -> None:
        r = await s.guest(["python3", GUEST_HTTPS, "ws", s.ca_file, API_IP, API])
        assert r.stdout == b"HTTP/1.1 101 Switching Protocols\n", r.stderr

    s = run_tls(guest_link_factory(), tmp_path, body, pins={API: API_IP})
    assert b"Authorization: Bearer " + REAL.encode() in s.servers[API].received[0]


def test_quic_to_an_intercepted_port_is_dropped(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    got: list[bytes] = []

    async def body(s: Setup) -> None:
        with in_netns(s.world):  # where API_IP is; the socket stays there
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await sock.bind((API_IP, 443))

        async def receive() -> None:
            got.append(await sock.recv(2048))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            script = f"import socket; socket.socket(2, 2).sendto(b'quic', ('{API_IP}', 443))"
            await s.guest(["python3", "-c", script])
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        sock.close()

    s = run_tls(guest_link_factory(), tmp_path, body)
    assert got == []
    blocked = [r for r in s.audit if r.reason == "quic-blocked"]
    assert [(r.protocol, r.destination, r.port, r.verdict) for r in blocked] == [
        ("udp", API_IP, 443, "deny")
    ]


def test_connect_tunnel_is_intercepted_and_checked_on_its_target(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """§4.4: a tunnel through a proxy is intercepted like a direct connection."""
    policy = {
        "default_egress": "allow",
        "rules": [{"direction": "egress", "destination": {"domain": ROGUE}, "action": "deny"}],
    }

    async def body(s: Setup) -> None:
        proxy = ["-x", f"http://{PROXY_IP}:3128", "--cacert", s.ca_file]
        base = ["curl", "-sS", "--max-time", "10", *proxy]
        r = await s.guest([*base, "-H", "X-Key: $MSB_API_KEY", f"https://{API}/tunnel"])
        assert r.returncode == 0, r.stderr
        r = await s.guest([*base, f"https://{ROGUE}/"])  # the target is denied
        assert r.returncode != 0
        # The hello inside the tunnel names another host than the CONNECT did.
        r = await s.guest(
            [
                *("openssl", "s_client", "-proxy", f"{PROXY_IP}:3128"),
                *("-connect", f"{API}:443", "-servername", OTHER, "-CAfile", s.ca_file),
            ],
            stdin=b"",
        )
        assert b"no peer certificate available" in r.stdout
        auth = "Proxy-Authorization: Bearer $MSB_API_KEY"
        r = await s.guest([*base, "--proxy-header", auth, f"https://{API}/"])
        assert r.returncode != 0  # a placeholder in the CONNECT request itself
        # Waiting before speaking does not get a CONNECT past the check.
        script = (
            "import socket,time\n"
            f"s=socket.create_connection(('{PROXY_IP}',3128))\n"
            "time.sleep(6)\n"
            f"s.sendall(b'CONNECT {ROGUE}:443 HTTP/1.1\\r\\nHost: {ROGUE}:443\\r\\n\\r\\n')\n"
            "print(s.recv(100))\n"
        )
        r = await s.guest(["python3", "-c", script])
        assert r.stdout == b"b''\n", r.stdout + r.stderr

    s = run_tls(guest_link_factory(), tmp_path, body, policy=policy)
    received = s.servers[API].received
    assert len(received) == 1 and b"x-key: " + REAL.encode() in received[0]  # over h2
    assert s.servers[ROGUE].received == []
    assert s.reasons() == [
        "connect-policy",
        "connect-sni-mismatch",
        "secret-violation",
        "connect-policy",
    ]
    assert [r.split(b" ")[1] for r in s.proxy.requests] == [
        f"{API}:443".encode(),
        f"{API}:443".encode(),
    ]


def test_a_tunnel_to_an_ip_meets_the_policy_with_its_sni_and_earns_no_secret_unverified(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """A CONNECT to an IP literal names no host to hold the hello to (§4.4): any SNI
    may come. The DNS-pin identity is skipped in tunnels, so with upstream
    verification off such a tunnel earned the SNI's secrets at the guest's chosen
    address; and the SNI met no policy, so a domain deny rule was dodged."""

    async def body(s: Setup) -> None:
        proxy = ["-x", f"http://{PROXY_IP}:3128", "--cacert", s.ca_file]
        for name in (API, OTHER):
            r = await s.guest(
                [
                    *("curl", "-sS", "--max-time", "10", *proxy),
                    *("--connect-to", f"{name}:443:{ROGUE_IP}:443"),
                    *("-H", "X-Key: $MSB_API_KEY", f"https://{name}/ip-tunnel"),
                ]
            )
            assert r.returncode != 0

    policy = {
        "default_egress": "allow",
        "rules": [{"direction": "egress", "destination": {"domain": OTHER}, "action": "deny"}],
    }
    s = run_tls(
        guest_link_factory(), tmp_path, body, policy=policy, tls={"verify_upstream": False}
    )
    assert [r.split(b" ")[1] for r in s.proxy.requests] == [f"{ROGUE_IP}:443".encode()] * 2
    assert s.servers[ROGUE].received == []
    assert s.reasons() == ["secret-violation", "sni-policy"]


def test_a_tunnel_without_upstream_verification_gets_no_identity_bound_secret(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """In a tunnel the DNS-pin identity is skipped: the proxy resolved the name. But
    the guest picks the proxy, and one that sends the name elsewhere is caught only
    by the upstream certificate check; without it (verify off for the name) nothing
    binds the server to the name, and a secret that requires that is withheld."""

    async def body(s: Setup) -> None:
        proxy = ["-x", f"http://{PROXY_IP}:3128", "--cacert", s.ca_file]
        r = await s.guest(
            [
                *("curl", "-sS", "--max-time", "10", *proxy),
                *("-H", "X-Key: $MSB_API_KEY", f"https://{API}/lying-proxy"),
            ]
        )
        assert r.returncode != 0

    policy = {"default_egress": "allow", "rules": []}
    s = run_tls(
        guest_link_factory(),
        tmp_path,
        body,
        policy=policy,
        tls={"scoped_verify_upstream": [{"pattern": API, "verify": False}]},
        proxy_names={API: ROGUE_IP},
    )
    assert s.servers[ROGUE].received == []
    assert s.reasons() == ["secret-violation"]


def test_placeholder_over_plain_http_is_a_violation(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """Secrets are never substituted in plain HTTP, and a placeholder sent there is caught."""

    plain_secret = {
        "env_var": "PLAIN_KEY",
        "value": "plain-REAL",
        "allowed_hosts": [{"exact": OTHER}],
        "require_tls_identity": False,
    }

    async def body(s: Setup) -> None:
        url = f"http://{OTHER_IP}/plain"
        curl = ["curl", "-sS", "--max-time", "10", "-H", f"Host: {OTHER}"]
        r = await s.guest([*curl, "-H", "X-Plain: $MSB_PLAIN_KEY", url])
        assert r.returncode == 0 and r.stdout == b"ok", r.stderr
        r = await s.guest([*curl, "-H", "X-Key: $MSB_API_KEY", url])
        assert r.returncode != 0

    secrets = {"secrets": [SECRET, plain_secret]}
    s = run_tls(guest_link_factory(), tmp_path, body, secrets=secrets, pins={OTHER: OTHER_IP})
    assert len(s.plain.received) == 1
    assert b"X-Plain: plain-REAL" in s.plain.received[0]  # the one meant for plain text
    assert s.reasons() == ["secret-violation"]


def test_names_resolved_by_the_sandbox_and_dns_over_tls(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    """With trionet's DNS: DoT on 853 is answered by it (§7.7), its answers pin names to
    addresses, and only a resolved name on its own address gets the secret."""

    async def body(s: Setup) -> None:
        # Before the sandbox resolved the name, the SNI alone does not earn the secret.
        r = await s.curl(API, API_IP, "-H", "X-Key: $MSB_API_KEY")
        assert r.returncode != 0
        # DNS over TLS to the gateway: no SNI, so the leaf names the address.
        dig = ["dig", "+short", "+tls", f"+tls-ca={s.ca_file}", "-p", "853"]
        r = await s.guest([*dig, "@172.16.0.1", API])
        assert r.stdout == f"{API_IP}\n".encode(), r.stdout + r.stderr
        r = await s.curl(API, API_IP, "-H", "X-Key: $MSB_API_KEY")
        assert r.returncode == 0, r.stderr
        r = await s.guest(["dig", "+short", "@172.16.0.1", OTHER])  # plain DNS as well
        assert r.stdout == f"{OTHER_IP}\n".encode()

    # The public profile allows DNS to the gateway on port 53 only, so DoT
    # queries are NXDOMAIN under it (§10.6); this policy adds 853.
    dot = {
        "direction": "egress",
        "destination": {"group": "host"},
        "protocols": ["tcp"],
        "ports": [{"start": 853, "end": 853}],
        "action": "allow",
    }
    policy = NetworkPolicy.from_profiles(["public"]).to_dict()
    policy["rules"].insert(0, dot)
    s = run_tls(guest_link_factory(), tmp_path, body, dns=True, policy=policy)
    assert len(s.servers[API].received) == 1
    assert b"x-key: " + REAL.encode() in s.servers[API].received[0]  # over h2
    assert s.reasons() == ["secret-violation"]
    assert any(r.kind == "tls" and r.reason == "dot" for r in s.audit)
