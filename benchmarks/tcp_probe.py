"""Tiny TCP client/server pair for the latency, connection-rate and idle-connection workloads.

Standalone (stdlib only) so it runs the same in every namespace, pinned or not:

    python tcp_probe.py serve PORT          # 1-byte echo, one connection at a time
    python tcp_probe.py hold PORT           # accept connections and keep them, idle
    python tcp_probe.py rr HOST PORT SECONDS MAX      # 1-byte round trips, one connection
    python tcp_probe.py crr HOST PORT SECONDS MAX     # connect + 1-byte echo + close, in a row
    python tcp_probe.py open HOST PORT COUNT          # open COUNT idle connections and hold them
    python tcp_probe.py connect HOST PORT             # one connection, closed at once

Servers print ``LISTENING`` once bound; ``open`` prints ``OPEN <n>`` once it
holds its connections and then waits for stdin to close. Clients print one
JSON object. Every loop is bounded by a count and by time.
"""

from __future__ import annotations

import json
import resource
import socket
import sys
import time


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _listen(port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # 0.0.0.0: reachable on loopback (userspace stacks) and on a veth (the kernel ceiling).
    server.bind(("0.0.0.0", port))
    server.listen(4096)
    print("LISTENING", flush=True)
    return server


def serve(port: int) -> None:
    server = _listen(port)
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(30)
        try:
            while data := conn.recv(1):
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()


def hold(port: int) -> None:
    _raise_fd_limit()
    server = _listen(port)
    held = []
    while len(held) < 100_000:
        conn, _ = server.accept()
        held.append(conn)


def _connect(host: str, port: int) -> socket.socket:
    conn = socket.create_connection((host, port), timeout=5)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def rr(host: str, port: int, seconds: float, limit: int) -> dict[str, float]:
    conn = _connect(host, port)
    for _ in range(100):  # warm up the path (ARP, caches, the engine's flow)
        conn.sendall(b"x")
        conn.recv(1)
    samples = []
    clock = time.perf_counter
    deadline = clock() + seconds
    while len(samples) < limit:
        start = clock()
        conn.sendall(b"x")
        if not conn.recv(1):
            raise SystemExit("server closed the connection")
        end = clock()
        samples.append(end - start)
        if end > deadline:
            break
    conn.close()
    samples.sort()
    return {
        "count": len(samples),
        "median_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[min(len(samples) - 1, len(samples) * 99 // 100)] * 1e6,
        "mean_us": sum(samples) / len(samples) * 1e6,
    }


def crr(host: str, port: int, seconds: float, limit: int) -> dict[str, float]:
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds
    count = 0
    while count < limit and clock() < deadline:
        conn = _connect(host, port)
        conn.sendall(b"x")
        if not conn.recv(1):
            raise SystemExit("server closed the connection")
        conn.close()
        count += 1
    elapsed = clock() - start
    return {"count": count, "per_s": count / elapsed}


def open_idle(host: str, port: int, count: int) -> None:
    _raise_fd_limit()
    held = []
    deadline = time.monotonic() + 60
    error = ""
    while len(held) < count and time.monotonic() < deadline:
        try:
            held.append(socket.create_connection((host, port), timeout=5))
        except OSError as exc:
            error = repr(exc)
            break
    print(f"OPEN {len(held)} {error}".rstrip(), flush=True)
    sys.stdin.read()  # hold them until the driver closes our stdin


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "serve":
        serve(int(argv[1]))
    elif command == "hold":
        hold(int(argv[1]))
    elif command in ("rr", "crr"):
        function = rr if command == "rr" else crr
        result = function(argv[1], int(argv[2]), float(argv[3]), int(argv[4]))
        print(json.dumps(result))
    elif command == "connect":
        _connect(argv[1], int(argv[2])).close()
    elif command == "open":
        open_idle(argv[1], int(argv[2]), int(argv[3]))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
