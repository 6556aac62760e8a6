"""The policy through ``trionet run``: a real guest against servers on addresses of every group.

The engine runs inside a namespace this test creates ("the host"), whose
loopback carries a public-looking address (203.0.113.10, 2001:db8::10), a
private one (10.1.2.3, fd00::10), the metadata address 169.254.169.254 and a
link-local one (169.254.7.7), with one dual-stack server answering on all of
them (and on the host's own loopback, which the guest reaches through its
gateway). Nothing leaves the machine. Every target is first shown reachable
with ``--net all``, so a "blocked" under another profile is the policy's
doing, not a missing server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.netns import Netns

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parent.parent
GW4, GW6 = "172.16.0.1", "fd42:6d73:62::1"
ADDRESSES = [
    "203.0.113.10/32",
    "10.1.2.3/32",
    "169.254.169.254/32",
    "169.254.7.7/32",
    "2001:db8::10/128",
    "fd00::10/128",
]

SERVER = r"""
import socket, sys, threading
def tcp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", 8080)); s.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        with c:
            local = c.getsockname()[0].removeprefix("::ffff:")
            c.recv(4096)
            body = (local + "\n").encode()
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
def udp():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 9090))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(b"udp:" + data, peer)
threading.Thread(target=udp, daemon=True).start()
tcp()
"""

# One line per target: "TARGET ANSWER" where ANSWER is what the server said or BLOCKED.
GUEST = r"""
for t in 203.0.113.10 '[2001:db8::10]' 10.1.2.3 '[fd00::10]' '[::ffff:10.1.2.3]' \
         169.254.169.254 169.254.7.7 172.16.0.1 '[fd42:6d73:62::1]'; do
    echo "$t $(curl -sS --max-time 3 "http://$t:8080/" 2>/dev/null || echo BLOCKED)"
done
for t in 203.0.113.10 169.254.169.254; do
    echo "udp:$t $(python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)
s.sendto(b"x", (sys.argv[1], 9090))
try: print(s.recv(100).decode())
except OSError: print("BLOCKED")' "$t")"
done
for t in 169.254.169.254 172.16.0.1 fd42:6d73:62::1; do
    if ping -c 1 -W 2 "$t" >/dev/null 2>&1; then echo "ping:$t ok"; else echo "ping:$t BLOCKED"; fi
done
"""

REACHABLE = {
    "203.0.113.10": "203.0.113.10",
    "[2001:db8::10]": "2001:db8::10",
    "10.1.2.3": "10.1.2.3",
    "[fd00::10]": "fd00::10",
    "[::ffff:10.1.2.3]": "10.1.2.3",
    "169.254.169.254": "169.254.169.254",
    "169.254.7.7": "169.254.7.7",
    "172.16.0.1": "127.0.0.1",  # the gateway is the host's loopback
    "[fd42:6d73:62::1]": "::1",
    "udp:203.0.113.10": "udp:x",
    "udp:169.254.169.254": "udp:x",
    "ping:169.254.169.254": "BLOCKED",  # no ping sockets in the test's namespace
    "ping:172.16.0.1": "ok",  # the gateway answers its own pings
    "ping:fd42:6d73:62::1": "ok",
}


@pytest.fixture
def host(netns_factory: Callable[[str], Netns]) -> Iterator[Netns]:
    ns = netns_factory("p")
    ns.ip_batch(f"address add {a} dev lo" for a in ADDRESSES)
    server = subprocess.Popen(
        ns.exec_argv([sys.executable, "-c", SERVER]), stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield ns
    finally:
        server.kill()
        server.wait()


def run_guest(
    host: Netns, tmp_path: Path, *net: str
) -> tuple[dict[str, str], list[dict[str, object]]]:
    audit = tmp_path / f"audit-{time.monotonic_ns()}.jsonl"
    argv = [
        sys.executable,
        "-m",
        "trionet.cli.main",
        "run",
        "--ipv4",
        "--ipv6",
        *net,
        "--audit",
        str(audit),
        "--",
        "sh",
        "-c",
        GUEST,
    ]
    result = subprocess.run(
        host.exec_argv(argv), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    answers = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    return answers, records


def _find(records: list[dict[str, object]], **fields: object) -> list[dict[str, object]]:
    return [r for r in records if all(r.get(k) == v for k, v in fields.items())]


def test_every_target_is_reachable_with_net_all(host: Netns, tmp_path: Path) -> None:
    answers, records = run_guest(host, tmp_path, "--net", "all")
    assert answers == REACHABLE
    assert records and all(r["verdict"] == "allow" and r["rule"] == "default" for r in records)


def test_the_default_profile_allows_public_and_blocks_the_rest(
    host: Netns, tmp_path: Path
) -> None:
    answers, records = run_guest(host, tmp_path)  # no --net, no config: the public profile
    expected = {target: "BLOCKED" for target in REACHABLE}
    expected.update(
        {
            "203.0.113.10": "203.0.113.10",
            "[2001:db8::10]": "2001:db8::10",
            "udp:203.0.113.10": "udp:x",
        }
    )
    assert answers == expected
    # The audit file holds one record per decision, with the rule that made it.
    [public] = _find(records, kind="flow", protocol="tcp", destination="203.0.113.10", port=8080)
    assert (public["verdict"], public["rule_index"], public["rule"]) == (
        "allow",
        1,
        "allow egress group:public",
    )
    assert public["source"] == "172.16.0.2" and isinstance(public["source_port"], int)
    assert isinstance(public["time"], float) and abs(public["time"] - time.time()) < 120
    for destination in ("10.1.2.3", "fd00::10", "169.254.169.254", "169.254.7.7", GW4, GW6):
        denied = _find(records, kind="flow", protocol="tcp", destination=destination, port=8080)
        assert denied, destination
        assert all(
            (r["verdict"], r["rule_index"], r["rule"]) == ("deny", None, "default") for r in denied
        ), denied
    [v6] = _find(records, protocol="tcp", destination="2001:db8::10")
    assert v6["source"] == "fd42:6d73:62::2" and v6["verdict"] == "allow"
    assert _find(records, protocol="udp", destination="203.0.113.10", verdict="allow")
    assert _find(records, protocol="udp", destination="169.254.169.254", verdict="deny")
    assert _find(records, protocol="icmpv4", destination="169.254.169.254", verdict="deny")
    assert _find(records, protocol="icmpv4", destination=GW4, verdict="deny", port=None)
    assert _find(records, protocol="icmpv6", destination=GW6, verdict="deny", port=None)


def test_profiles_compose(host: Netns, tmp_path: Path) -> None:
    answers, _ = run_guest(host, tmp_path, "--net", "public,host")
    assert answers["172.16.0.1"] == "127.0.0.1" and answers["[fd42:6d73:62::1]"] == "::1"
    assert answers["ping:172.16.0.1"] == answers["ping:fd42:6d73:62::1"] == "ok"
    assert answers["10.1.2.3"] == answers["169.254.169.254"] == "BLOCKED"
    answers, _ = run_guest(host, tmp_path, "--net", "private")
    assert answers["10.1.2.3"] == "10.1.2.3" and answers["[fd00::10]"] == "fd00::10"
    assert answers["203.0.113.10"] == answers["169.254.169.254"] == "BLOCKED"
    assert answers["169.254.7.7"] == answers["172.16.0.1"] == "BLOCKED"
    answers, records = run_guest(host, tmp_path, "--net", "none")
    assert set(answers.values()) == {"BLOCKED"}
    assert {r["verdict"] for r in records} == {"deny"}


def test_config_file_policy_and_audit_to_stderr(host: Netns, tmp_path: Path) -> None:
    config = tmp_path / "net.toml"
    config.write_text(
        "[policy]\n"
        'default_egress = "allow"\n'
        "[[policy.rules]]\n"
        'direction = "egress"\n'
        'destination = { cidr = "10.0.0.0/8" }\n'
        'action = "deny"\n'
        "[[policy.rules]]\n"
        'direction = "egress"\n'
        'destination = { group = "metadata" }\n'
        'action = "deny"\n'
    )
    script = (
        "curl -sS --max-time 3 http://10.1.2.3:8080/ || echo BLOCKED; "
        "curl -sS --max-time 3 http://169.254.7.7:8080/"
    )
    argv = [
        sys.executable,
        "-m",
        "trionet.cli.main",
        "run",
        "--ipv4",
        "--no-ipv6",
        "--config",
        str(config),
        "--audit",
        "-",
        "--",
        "sh",
        "-c",
        script,
    ]
    result = subprocess.run(
        host.exec_argv(argv), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "BLOCKED\n169.254.7.7\n"
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [(r["destination"], r["verdict"], r["rule_index"], r["rule"]) for r in records] == [
        ("10.1.2.3", "deny", 0, "deny egress cidr:10.0.0.0/8"),
        ("169.254.7.7", "allow", None, "default"),
    ]


def test_bad_net_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trionet.cli.main", "run", "--net", "public,lan", "--", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown profile 'lan'" in result.stderr and result.stderr.count("\n") == 1
