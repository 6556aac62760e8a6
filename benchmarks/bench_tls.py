"""Intercepted HTTPS: trionet beside mitmproxy's mitmdump, same client, same server.

    python -m benchmarks tls        # needs root, curl, openssl; mitmdump in /work/mitm-venv
                                    # (or TRIONET_BENCH_MITMDUMP=/path/to/mitmdump)

The server is ``openssl s_server -WWW`` on the host's 127.0.0.1 (C, one
connection at a time: the same for both), with a certificate from a CA of
the benchmark's own that both interceptors trust upstream. The client is
curl, the same binary for both:

- trionet: ``trionet run`` with TLS interception on the server's port; curl
  runs as CMD and dials the gateway (172.16.0.1), which stands for the
  host's loopback. curl is given trionet's CA alone with ``--cacert``, as it
  is given mitmproxy's: loading the whole bind-mounted system bundle (about
  150 roots) costs curl several milliseconds per connection, which would
  measure curl, not the interceptor.
- mitmdump: an explicit proxy on 127.0.0.1; curl on the host with ``-x`` and
  mitmproxy's CA.

Workloads: new TLS handshakes per second (``HANDSHAKES`` sequential requests
of a 16-byte file, each on a new connection without session resumption:
``--no-sessionid``, ``Connection: close``), and MB/s of one ``DOWNLOAD_MB``
download. Each is run ``ROUNDS`` times; the best round is reported.

Writes benchmarks/results/tls.json; docs/performance.md quotes it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trionet.tls.certs import generate_ca, issue_leaf

HERE = Path(__file__).parent
ROOT = HERE.parent
HANDSHAKES = int(os.environ.get("TRIONET_BENCH_HANDSHAKES", "200"))
DOWNLOAD_MB = int(os.environ.get("TRIONET_BENCH_DOWNLOAD_MB", "200"))
ROUNDS = int(os.environ.get("TRIONET_BENCH_ROUNDS", "3"))
MITMDUMP = os.environ.get("TRIONET_BENCH_MITMDUMP", "/work/mitm-venv/bin/mitmdump")
#: Where mitmproxy gets a venv of its own when MITMDUMP does not exist: its
#: version pins must not touch trionet's dependencies.
MITM_VENV = Path.home() / ".cache" / "trionet-bench" / "mitm-venv"


def _mitmdump_path() -> str:
    if os.path.exists(MITMDUMP):
        return MITMDUMP
    mitmdump = MITM_VENV / "bin" / "mitmdump"
    if not mitmdump.exists():
        subprocess.run([sys.executable, "-m", "venv", str(MITM_VENV)], check=True)
        pip = str(MITM_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "mitmproxy>=11,<12"], check=True)
    return str(mitmdump)


NAME = "bench.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _client_script(host: str, port: int, extra: str) -> str:
    """The shell script curl runs in: prints handshakes/s then MB/s, per round."""
    small = " ".join(f"-o /dev/null https://{NAME}:{port}/small" for _ in range(HANDSHAKES))
    common = f"--resolve {NAME}:{port}:{host} {extra} -sS --http1.1 --max-time 120"
    return (
        f"for r in $(seq {ROUNDS}); do "
        "s=$(date +%s.%N); "
        f"curl {common} --no-sessionid -H 'Connection: close' {small} || exit 1; "
        "e=$(date +%s.%N); "
        f'echo "handshakes $(echo "{HANDSHAKES} / ($e - $s)" | bc -l)"; '
        f"curl {common} -o /dev/null -w 'download %{{speed_download}}\\n' "
        f"https://{NAME}:{port}/big || exit 1; "
        "done"
    )


def _parse(output: str) -> dict[str, float]:
    handshakes = [
        float(line.split()[1]) for line in output.splitlines() if line.startswith("handshakes ")
    ]
    downloads = [
        float(line.split()[1]) / 1e6
        for line in output.splitlines()
        if line.startswith("download ")
    ]
    if not handshakes or not downloads:
        raise RuntimeError(f"no figures in the client's output: {output[-500:]!r}")
    return {
        "handshakes_per_s": max(handshakes),
        "download_mb_per_s": max(downloads),
        "handshakes_rounds": handshakes,
        "download_rounds": downloads,
    }


def run() -> dict[str, Any]:
    if shutil.which("bc") is None:
        raise SystemExit("bench_tls needs bc (apt-get install bc)")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ca = generate_ca()
        leaf = issue_leaf(ca, NAME, time.time())
        (tmp / "ca.pem").write_bytes(ca.cert_pem)
        (tmp / "leaf.pem").write_bytes(leaf.chain_pem)
        (tmp / "leaf.key").write_bytes(leaf.key_pem)
        www = tmp / "www"
        www.mkdir()
        (www / "small").write_bytes(b"0123456789abcde\n")
        with open(www / "big", "wb") as f:
            f.truncate(DOWNLOAD_MB * 1_000_000)
        port = _free_port()
        server = subprocess.Popen(
            [
                "openssl",
                "s_server",
                "-quiet",
                "-accept",
                f"127.0.0.1:{port}",
                "-cert",
                str(tmp / "leaf.pem"),
                "-key",
                str(tmp / "leaf.key"),
                "-WWW",
            ],
            cwd=www,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)
            results = {
                "trionet": _trionet(tmp, port),
                "mitmdump": _mitmdump(tmp, port),
            }
        finally:
            server.kill()
            server.wait()
    t, m = results["trionet"], results["mitmdump"]
    results["ratio"] = {
        "handshakes": t["handshakes_per_s"] / m["handshakes_per_s"],
        "download": t["download_mb_per_s"] / m["download_mb_per_s"],
    }
    results["settings"] = {"handshakes": HANDSHAKES, "download_mb": DOWNLOAD_MB, "rounds": ROUNDS}
    results["loadavg_before"] = os.getloadavg()
    for name in ("trionet", "mitmdump"):
        r = results[name]
        hs, mb = r["handshakes_per_s"], r["download_mb_per_s"]
        print(f"   {name:9} {hs:7.1f} handshakes/s  {mb:7.1f} MB/s")
    return results


def _trionet(tmp: Path, port: int) -> dict[str, float]:
    config = {
        "policy": {"default_egress": "allow"},
        "tls": {
            "enabled": True,
            "intercepted_ports": [port],
            "upstream_ca_cert": [str(tmp / "ca.pem")],
        },
    }
    (tmp / "net.json").write_text(json.dumps(config))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trionet.cli.main",
            "run",
            "--config",
            str(tmp / "net.json"),
            "--",
            "sh",
            "-c",
            _client_script("172.16.0.1", port, f"--cacert {tmp / 'home' / 'tls' / 'ca.crt'}"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "TRIONET_HOME": str(tmp / "home")},
    )
    if result.returncode != 0:
        raise RuntimeError(f"trionet run failed: {result.stderr[-2000:]}")
    return _parse(result.stdout)


def _mitmdump(tmp: Path, port: int) -> dict[str, float]:
    proxy_port = _free_port()
    confdir = tmp / "mitm"
    # mitmdump resolves the CONNECT target itself: give it the name in a
    # private mount namespace instead of touching the machine's /etc/hosts.
    hosts = tmp / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {NAME}\n")
    wrapper = f'mount --bind {hosts} /etc/hosts && exec "$@"'
    argv = [
        *("unshare", "-m", "--propagation", "private", "sh", "-c", wrapper, "sh"),
        *(_mitmdump_path(), "--listen-host", "127.0.0.1", "--listen-port", str(proxy_port)),
        *("--set", f"confdir={confdir}"),
        *("--set", f"ssl_verify_upstream_trusted_ca={tmp / 'ca.pem'}"),
        *("--set", "flow_detail=0"),
    ]
    log_path = tmp / "mitm.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        _wait_port(proxy_port)
        mitm_ca = confdir / "mitmproxy-ca-cert.pem"
        extra = f"-x http://127.0.0.1:{proxy_port} --cacert {mitm_ca}"
        result = subprocess.run(
            ["sh", "-c", _client_script("127.0.0.1", port, extra)],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if result.returncode != 0:
            tail = log_path.read_text()[-2000:]
            raise RuntimeError(f"curl through mitmdump failed: {result.stderr[-500:]}\n{tail}")
        return _parse(result.stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
