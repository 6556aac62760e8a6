"""DNS queries through trionet's interceptor against dnsmasq queried directly, one run.

One dnsmasq on 127.0.0.1 (a free port) answers ``bench.test`` from its own
configuration. The same client program asks it twice:

- directly, from the host (the floor: the client, the kernel, dnsmasq);
- from a ``trionet run`` guest, asking its gateway: the query crosses the
  TAP, trionet's stack and the interceptor (DNS policy, a fresh upstream
  id, the rebind check, the pin set), goes to the same dnsmasq, and back.

Two figures each: the median latency of sequential queries, and the
queries per second with a window of queries outstanding. Every loop is
bounded in count and in time; all traffic is loopback or the guest's TAP.
Needs root (``trionet run``), dnsmasq and a Python for the client.

    python -m benchmarks dns

Goal (issue 12): interception adds at most 1 ms to the median and sustains
at least 5,000 queries/s.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEQUENTIAL = 2000
WINDOW = 32
TOTAL = 30000
TIME_LIMIT = 15.0  # seconds per phase, whatever the count

# The client: stdlib only, raw wire bytes, so its own cost is small and the
# same on both paths. Prints one JSON line.
CLIENT = r"""
import json, socket, statistics, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
sequential, window, total = (int(a) for a in sys.argv[3:6])
limit = float(sys.argv[6])
QUESTION = b"\x05bench\x04test\x00\x00\x01\x00\x01"
def query(i):
    return struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + QUESTION
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((host, port))
s.settimeout(2.0)
# warm-up (and proof the path answers)
for i in range(50):
    s.send(query(i)); s.recv(2048)
latencies = []
stop = time.monotonic() + limit
for i in range(sequential):
    if time.monotonic() > stop:
        break
    t = time.perf_counter()
    s.send(query(i))
    while True:
        data = s.recv(2048)
        if data[:2] == query(i)[:2]:
            break
    latencies.append(time.perf_counter() - t)
s.settimeout(0.5)
sent = answered = lost = 0
start = time.perf_counter()
stop = time.monotonic() + limit
outstanding = 0
while answered < total and time.monotonic() < stop:
    while outstanding < window and sent < total + window:
        s.send(query(sent)); sent += 1; outstanding += 1
    try:
        s.recv(2048)
        answered += 1
        outstanding -= 1
    except socket.timeout:
        lost += outstanding  # dropped somewhere: refill the window
        outstanding = 0
elapsed = time.perf_counter() - start
print(json.dumps({
    "median_ms": statistics.median(latencies) * 1000,
    "p90_ms": statistics.quantiles(latencies, n=10)[-1] * 1000,
    "qps": answered / elapsed,
    "answered": answered,
    "lost": lost,
}))
"""


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
        with socket.socket() as t, contextlib.suppress(OSError):
            t.bind(("127.0.0.1", port))
            return port


def _client(argv_prefix: list[str], host: str, port: int, script: Path) -> dict[str, float]:
    args = [str(a) for a in (host, port, SEQUENTIAL, WINDOW, TOTAL, TIME_LIMIT)]
    result = subprocess.run(
        [*argv_prefix, sys.executable, str(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=4 * TIME_LIMIT + 60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"DNS client failed: {result.stdout}\n{result.stderr}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def run() -> dict[str, float]:
    if shutil.which("dnsmasq") is None:
        raise SystemExit("bench_dns needs dnsmasq (apt-get install dnsmasq-base)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "dns_client.py"
        script.write_text(CLIENT)
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({"dns": {"nameservers": [f"127.0.0.1:{port}"]}}))
        dnsmasq = subprocess.Popen(
            [
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                f"--port={port}",
                "--user=root",
                "--pid-file=",
                "--address=/bench.test/11.1.1.1",
                "--dns-forward-max=1000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            direct = _client([], "127.0.0.1", port, script)
            trionet = [sys.executable, "-m", "trionet.cli.main", "run", "--config", str(config)]
            intercepted = _client([*trionet, "--"], "172.16.0.1", 53, script)
        finally:
            dnsmasq.terminate()
            dnsmasq.wait(timeout=5)
    metrics = {f"direct_{k}": float(v) for k, v in direct.items()}
    metrics.update({f"trionet_{k}": float(v) for k, v in intercepted.items()})
    metrics["added_median_ms"] = metrics["trionet_median_ms"] - metrics["direct_median_ms"]
    print("                      median ms   p90 ms   queries/s   lost")
    for name in ("direct", "trionet"):
        print(
            f"   {name:18} {metrics[f'{name}_median_ms']:9.3f} {metrics[f'{name}_p90_ms']:8.3f}"
            f" {metrics[f'{name}_qps']:11.0f} {metrics[f'{name}_lost']:6.0f}"
        )
    print(f"   interception adds {metrics['added_median_ms']:.3f} ms to the median")
    return metrics


if __name__ == "__main__":
    run()
