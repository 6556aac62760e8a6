"""``trionet run`` with TLS interception: CMD trusts the CA and holds only placeholders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.tls_servers import ThreadedTlsEcho, UpstreamCa

pytestmark = pytest.mark.root

ROOT = Path(__file__).resolve().parent.parent.parent
GW4 = "172.16.0.1"
REAL = "sk-REAL-run-secret"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[ThreadedTlsEcho, ThreadedTlsEcho, UpstreamCa]]:
    ca = UpstreamCa(tmp_path)
    server = ThreadedTlsEcho(ca.server_context("api.example.com", ["http/1.1"]))
    other = ThreadedTlsEcho(ca.server_context("other.example", ["http/1.1"]))
    yield server, other, ca
    server.close()
    other.close()


def _config(tmp_path: Path, ca: UpstreamCa, ports: list[int], action: str) -> Path:
    config = {
        "policy": {"default_egress": "allow"},
        "tls": {
            "enabled": True,
            "intercepted_ports": ports,
            "upstream_ca_cert": [str(ca.path)],
        },
        "secrets": {
            "secrets": [
                {
                    "env_var": "API_KEY",
                    "value": REAL,
                    "allowed_hosts": [{"exact": "api.example.com"}],
                    # No DNS in this test to bind the gateway to the name.
                    "require_tls_identity": False,
                    "on_violation": action,
                }
            ]
        },
    }
    path = tmp_path / "net.json"
    path.write_text(json.dumps(config))
    return path


def _run(config: Path, script: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "trionet.cli.main",
            "run",
            # Debug logging: not even there may a real value appear.
            "--log-level",
            "debug",
            "--config",
            str(config),
            "--",
            "sh",
            "-c",
            script,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "TRIONET_HOME": str(home)},
    )


def test_cmd_trusts_the_ca_and_the_server_gets_the_secret(
    tmp_path: Path, upstream: tuple[ThreadedTlsEcho, ThreadedTlsEcho, UpstreamCa]
) -> None:
    server, _, ca = upstream
    config = _config(tmp_path, ca, [server.port], "block-and-log")
    url = f"https://api.example.com:{server.port}/x"
    script = (
        'echo "$API_KEY $SSL_CERT_FILE $REQUESTS_CA_BUNDLE $CURL_CA_BUNDLE $NODE_EXTRA_CA_CERTS"; '
        f"curl -sS --max-time 10 --resolve api.example.com:{server.port}:{GW4} "
        f'-H "X-Key: $API_KEY" {url} -o /dev/null -w "%{{http_code}}\\n"'
    )
    result = _run(config, script, tmp_path / "home")
    assert result.returncode == 0, result.stderr
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    assert result.stdout.splitlines() == [
        f"$MSB_API_KEY {bundle} {bundle} {bundle} {bundle}",
        "200",
    ]
    assert len(server.received) == 1
    assert f"X-Key: {REAL}".encode() in server.received[0]
    # The CA was generated once, its key private to its owner.
    key = tmp_path / "home" / "tls" / "ca.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert REAL not in result.stderr


def test_block_and_terminate_ends_the_run_with_the_reason(
    tmp_path: Path, upstream: tuple[ThreadedTlsEcho, ThreadedTlsEcho, UpstreamCa]
) -> None:
    server, other, ca = upstream
    config = _config(tmp_path, ca, [server.port, other.port], "block-and-terminate")
    script = (
        f"curl -sS --max-time 10 --resolve other.example:{other.port}:{GW4} "
        f'-H "X-Key: $API_KEY" https://other.example:{other.port}/; sleep 30; echo survived'
    )
    result = _run(config, script, tmp_path / "home")
    assert result.returncode == 137, result.stderr
    assert "survived" not in result.stdout
    assert "terminated: secret API_KEY sent to other.example (in the header)" in result.stderr
    assert REAL not in result.stderr
    assert other.received == [] and server.received == []
