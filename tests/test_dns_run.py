"""DNS interception end to end: real guests (``trionet run``), real resolvers (dnsmasq).

The lab, all on this machine:

- the configured upstream: dnsmasq on the host's 127.0.0.1 (a port of its
  own), knowing ``allowed.test``, ``denied.test``, ``rebind.test`` (a
  private answer) and ``big.test`` (a TXT answer too big for UDP);
- a "public" namespace joined to the host by a veth pair, holding a web
  server at a public-looking address and a second dnsmasq, the "other
  resolver" a guest may name with ``dig @X``, which alone knows
  ``direct.test``; and a resolver at a private address the policy denies.

``dns.nameservers`` always names the test's own resolver, never the host's
resolv.conf: no query leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import real
from tests.support.netns import Netns, create_netns, delete_netns

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parent.parent
TRIONET = [sys.executable, "-m", "trionet.cli.main"]
#: mDNS, LLMNR, NetBIOS-NS, DoQ (dropped by trionet over UDP), and 5300 (relayed)
ALTERNATIVE_PORTS = (5353, 5355, 137, 853, 5300)
BIG_TXT = [f"chunk{i:02d}-" + "x" * 200 for i in range(8)]  # ~1.7 KB: over 1232 bytes


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        real.missing(f"needs {missing} (apt-get install dnsmasq-base dnsutils)")


def _free_port(kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    # A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both).
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, contextlib.suppress(OSError):
            t.bind(("127.0.0.1", port))
            return port


@dataclass
class Lab:
    upstream_port: int
    web: str  # the public-looking web server's address
    other_resolver: str  # a public-looking resolver (dig @X)
    private_resolver: str  # a resolver at an address the policy denies
    upstream_log: Path
    other_log: Path
    private_log: Path
    tmp: Path

    def config(self, **dns: object) -> Path:
        """A config file: deny denied.test, then the public profile; our upstream."""
        settings = {"nameservers": [f"127.0.0.1:{self.upstream_port}"], "query_timeout_ms": 2000}
        settings.update(dns)
        policy = {
            "default_egress": "deny",
            "default_ingress": "allow",
            "rules": [
                # First: allow_dns (group host) would let the query through.
                {
                    "direction": "egress",
                    "destination": {"domain_suffix": "denied.test"},
                    "action": "deny",
                },
                {
                    "direction": "egress",
                    "destination": {"group": "host"},
                    "protocols": ["udp", "tcp"],
                    "ports": [{"start": 53, "end": 53}],
                    "action": "allow",
                },
                {"direction": "egress", "destination": {"group": "public"}, "action": "allow"},
            ],
        }
        path = self.tmp / f"config-{time.monotonic_ns()}.json"
        path.write_text(json.dumps({"dns": settings, "policy": policy}))
        return path


def _dnsmasq(listen: str, port: int, log: Path, *records: str) -> list[str]:
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        f"--listen-address={listen}",
        f"--port={port}",
        "--user=root",
        "--pid-file=",
        "--log-queries",
        f"--log-facility={log}",
        *records,
    ]


def _wait_port(address: str, port: int, ns: Netns | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = ["dig", f"@{address}", "-p", str(port), "+time=1", "+tries=1", "ping.test"]
        argv = probe if ns is None else ns.exec_argv(probe)
        if subprocess.run(argv, capture_output=True, check=False, timeout=5).returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"no resolver came up on {address}:{port}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    _require("dnsmasq", "dig", "curl", "getent", "ip")
    tmp = tmp_path_factory.mktemp("dns")
    # Addresses unique to this process: the host side of the veth lives in
    # the host's namespace while the test runs. 11/8 is outside every
    # rebind-private range, so answers pointing there pass rebind protection.
    a, b = os.getpid() % 250 + 1, int.from_bytes(os.urandom(1), "big") % 250 + 1
    public, private = f"11.{a}.{b}", f"10.213.{b}"
    ns = create_netns("pub")
    host_if, ns_if = f"tnd{os.getpid() % 100000}h", f"tnd{os.getpid() % 100000}n"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
            check=True,
            capture_output=True,
        )
        subprocess.run(["ip", "link", "set", ns_if, "netns", ns.name], check=True)
        for command in (
            f"address add {public}.1/24 dev {host_if}",
            f"address add {private}.1/24 dev {host_if}",
            f"link set {host_if} up",
        ):
            subprocess.run(["ip", *command.split()], check=True, capture_output=True)
        ns.ip_batch(
            [
                f"address add {public}.10/24 dev {ns_if}",
                f"address add {public}.53/24 dev {ns_if}",
                f"address add {private}.53/24 dev {ns_if}",
                f"link set {ns_if} up",
            ]
        )
        web_root = tmp / "www"
        web_root.mkdir()
        (web_root / "index.html").write_text("hello from the public namespace\n")
        processes.append(
            subprocess.Popen(
                ns.exec_argv([sys.executable, "-m", "http.server", "-b", f"{public}.10", "80"]),
                cwd=web_root,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        port = _free_port()
        upstream_log, other_log, private_log = tmp / "up.log", tmp / "other.log", tmp / "priv.log"
        txt = ",".join(f'"{chunk}"' for chunk in BIG_TXT[:4])
        txt2 = ",".join(f'"{chunk}"' for chunk in BIG_TXT[4:])
        processes.append(
            subprocess.Popen(
                _dnsmasq(
                    "127.0.0.1",
                    port,
                    upstream_log,
                    f"--address=/allowed.test/{public}.10",
                    f"--address=/denied.test/{public}.10",
                    "--address=/rebind.test/10.9.8.7",
                    f"--txt-record=big.test,{txt}",
                    f"--txt-record=big.test,{txt2}",
                    "--address=/ping.test/127.0.0.1",
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        resolvers = [
            (f"{public}.53", 53, other_log),
            (f"{private}.53", 53, private_log),
            # The ports stub resolvers try besides 53, and a control port.
            *((f"{public}.53", p, tmp / f"alt{p}.log") for p in ALTERNATIVE_PORTS),
        ]
        for listen, listen_port, log in resolvers:
            processes.append(
                subprocess.Popen(
                    ns.exec_argv(
                        _dnsmasq(
                            listen,
                            listen_port,
                            log,
                            f"--address=/direct.test/{public}.10",
                            f"--address=/denied.test/{public}.10",
                            "--address=/ping.test/127.0.0.1",
                        )
                    ),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        _wait_port("127.0.0.1", port)
        _wait_port(f"{public}.53", 53, ns)
        _wait_port(f"{private}.53", 53, ns)
        for alt in ALTERNATIVE_PORTS:
            _wait_port(f"{public}.53", alt, ns)
        yield Lab(
            upstream_port=port,
            web=f"{public}.10",
            other_resolver=f"{public}.53",
            private_resolver=f"{private}.53",
            upstream_log=upstream_log,
            other_log=other_log,
            private_log=private_log,
            tmp=tmp,
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        delete_netns(ns)  # takes the veth pair, both ends, with it
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)


def run_guest(config: Path, script: str, *extra: str, timeout: float = 60) -> str:
    """Run ``script`` in a ``trionet run`` guest; return its stdout (it must succeed)."""
    result = subprocess.run(
        [*TRIONET, "run", "--config", str(config), *extra, "--", "sh", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


def _status(dig_output: str) -> str:
    for line in dig_output.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    raise AssertionError(f"no status in dig output:\n{dig_output}")


DIG = "dig +time=3 +tries=1"


def test_allowed_names_resolve_and_connect(lab: Lab) -> None:
    out = run_guest(
        lab.config(),
        f"cat /etc/resolv.conf; {DIG} +short allowed.test; getent hosts allowed.test;"
        " curl -sS --max-time 10 http://allowed.test/",
    )
    assert "nameserver 172.16.0.1" in out
    lines = out.splitlines()
    assert f"{lab.web}" in lines
    assert any(line.startswith(lab.web) and "allowed.test" in line for line in lines)
    assert "hello from the public namespace" in out


def test_denied_and_rebinding_names_are_nxdomain(lab: Lab) -> None:
    out = run_guest(
        lab.config(),
        f"{DIG} denied.test; {DIG} www.denied.test; {DIG} rebind.test;"
        " getent hosts denied.test || echo getent-failed",
    )
    statuses = [line for line in out.splitlines() if "status:" in line]
    assert len(statuses) == 3 and all("NXDOMAIN" in s for s in statuses), out
    assert "getent-failed" in out


def test_rebinding_name_resolves_when_rebind_protection_is_off(lab: Lab) -> None:
    out = run_guest(lab.config(rebind_protection=False), f"{DIG} +short rebind.test")
    assert out.split() == ["10.9.8.7"]


def test_a_query_to_any_resolver_ip_is_answered_by_trionet(lab: Lab) -> None:
    # The guest names another resolver: trionet answers from that address,
    # asking that resolver itself (§7.3 step 6: the guest's choice, checked
    # as egress to it), so only it knows direct.test. DNS policy still holds.
    out = run_guest(
        lab.config(),
        f"{DIG} @{lab.other_resolver} +short direct.test;"
        f" {DIG} @{lab.other_resolver} +tcp +short direct.test;"
        f" {DIG} @{lab.other_resolver} denied.test;"
        f" {DIG} @{lab.other_resolver} +tcp denied.test",
    )
    assert out.splitlines()[:2] == [lab.web, lab.web], out
    statuses = [_status(chunk) for chunk in out.split(";; ->>HEADER<<-")[1:]]
    assert statuses == ["NXDOMAIN", "NXDOMAIN"], out
    log = lab.other_log.read_text()
    assert "direct.test" in log and "denied.test" not in log


def test_a_resolver_the_policy_denies_is_never_reached(lab: Lab) -> None:
    before = lab.private_log.read_text()
    out = run_guest(
        lab.config(),
        f"{DIG} @{lab.private_resolver} direct.test;"
        f" {DIG} @{lab.private_resolver} +tcp direct.test",
    )
    assert [_status(c) for c in out.split(";; ->>HEADER<<-")[1:]] == ["NXDOMAIN", "NXDOMAIN"]
    assert lab.private_log.read_text().count("direct.test") == before.count("direct.test")


def test_dns_over_tcp_is_intercepted_and_policy_holds(lab: Lab) -> None:
    out = run_guest(
        lab.config(),
        f"{DIG} +tcp +short allowed.test; {DIG} +tcp denied.test; {DIG} +tcp rebind.test",
    )
    lines = out.splitlines()
    assert lines[0] == lab.web
    statuses = [_status(c) for c in out.split(";; ->>HEADER<<-")[1:]]
    assert statuses == ["NXDOMAIN", "NXDOMAIN"], out


def test_tcp_fallback_after_truncation(lab: Lab) -> None:
    out = run_guest(
        lab.config(),
        f"{DIG} +ignore +noedns big.test TXT; echo ====; {DIG} +noedns big.test TXT",
    )
    truncated, full = out.split("====")
    flags = next(line for line in truncated.splitlines() if line.startswith(";; flags:"))
    assert " tc" in flags.split(";")[2] and "ANSWER: 0" in flags, truncated
    assert "Truncated, retrying in TCP mode" in full
    for chunk in BIG_TXT:
        assert chunk in full


def test_failover_past_dead_nameservers(lab: Lab) -> None:
    # First a port nobody listens on (refused at once), then a socket that
    # never answers (the per-attempt timeout), then the real resolver.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dead = _free_port()
        config = lab.config(
            nameservers=[
                f"127.0.0.1:{dead}",
                f"127.0.0.1:{silent.getsockname()[1]}",
                f"127.0.0.1:{lab.upstream_port}",
            ],
            query_timeout_ms=500,
        )
        started = time.monotonic()
        out = run_guest(config, "dig +time=5 +tries=1 +short allowed.test")
        elapsed = time.monotonic() - started
    assert out.split() == [lab.web]
    assert elapsed > 0.5  # it waited out the silent one


def test_all_nameservers_dead_is_servfail(lab: Lab) -> None:
    config = lab.config(nameservers=[f"127.0.0.1:{_free_port()}"], query_timeout_ms=300)
    out = run_guest(config, f"{DIG} allowed.test")
    assert _status(out) == "SERVFAIL"


def test_alternative_resolver_ports_are_dropped_over_udp(lab: Lab) -> None:
    # A resolver listens on each port; only the ordinary UDP port answers.
    script = "; ".join(
        f"dig @{lab.other_resolver} -p {port} +time=1 +tries=1 +short direct.test"
        f" || echo {port}-unanswered"
        for port in ALTERNATIVE_PORTS
    )
    out = [
        line for line in run_guest(lab.config(), script).split("\n") if line[:2] not in ("", ";;")
    ]
    assert out == [*(f"{p}-unanswered" for p in ALTERNATIVE_PORTS[:-1]), lab.web], out


PIPELINE = """
import json, socket, sys
import dns.message, dns.rcode
s = socket.create_connection((sys.argv[1], 53), timeout=10)
queries = [("allowed.test", "A"), ("denied.test", "A"), ("big.test", "TXT")]
wires = []
for i, (name, rdtype) in enumerate(queries):
    q = dns.message.make_query(name, rdtype)
    q.id = 100 + i
    wires.append(q.to_wire())
# All three in one write, then a zero-length message, then our FIN.
s.sendall(b"".join(len(w).to_bytes(2, "big") + w for w in wires) + b"\\0\\0")
s.shutdown(socket.SHUT_WR)
buf = b""
while chunk := s.recv(65536):
    buf += chunk
out = {}
while buf:
    n = int.from_bytes(buf[:2], "big")
    m = dns.message.from_wire(buf[2 : 2 + n])
    buf = buf[2 + n :]
    out[m.id] = [dns.rcode.to_text(m.rcode()), [r.to_text() for rr in m.answer for r in rr]]
print(json.dumps(out, sort_keys=True))
"""


def test_dns_over_tcp_pipelining_and_half_close(lab: Lab) -> None:
    script = lab.tmp / "pipeline.py"
    script.write_text(PIPELINE)
    out = run_guest(lab.config(), f"{sys.executable} {script} 172.16.0.1")
    answers = json.loads(out.splitlines()[-1])
    assert answers["100"] == ["NOERROR", [lab.web]]
    assert answers["101"] == ["NXDOMAIN", []]
    assert answers["102"][0] == "NOERROR"
    assert "".join(answers["102"][1]).count("x" * 200) == len(BIG_TXT)
    assert set(answers) == {"100", "101", "102"}  # the empty message gets no answer


def test_every_query_is_on_record(lab: Lab) -> None:
    audit = lab.tmp / f"audit-{time.monotonic_ns()}.jsonl"
    run_guest(
        lab.config(),
        f"{DIG} allowed.test; {DIG} +tcp denied.test; {DIG} rebind.test;"
        f" {DIG} @{lab.private_resolver} allowed.test",
        "--audit",
        str(audit),
    )
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    dns = [
        (r["name"], r["protocol"], r["verdict"], r["rule_index"], r["reason"])
        for r in records
        if r["kind"] == "dns"
    ]
    assert dns == [
        ("allowed.test", "udp", "allow", 1, None),
        ("denied.test", "tcp", "deny", 0, None),
        ("rebind.test", "udp", "deny", None, "rebind"),
        ("allowed.test", "udp", "deny", None, "resolver-denied"),
    ], records
    first = next(r for r in records if r["kind"] == "dns")
    assert first["destination"] == "172.16.0.1" and first["port"] == 53
    assert first["source"] == "172.16.0.2"
    assert first["rule"] == "allow egress group:host tcp,udp port 53"
    denied_resolver = next(r for r in records if r["reason"] == "resolver-denied")
    assert denied_resolver["destination"] == lab.private_resolver
    assert denied_resolver["rule"] == "default"
