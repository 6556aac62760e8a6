"""200 MB each way through the engine, checked with SHA-256.

A real Linux guest moves the data; the engine relays it to a host-side
server on its loopback. Runs at MTU 1500 with TAP offloads on and off, and
at MTU 65520.
"""

from __future__ import annotations

import pytest
import trio

from tests.engine.servers import HttpServer, pattern_sha256, serve_tcp, sha256_sink_handler
from tests.engine.test_real_guest import GW4, run_with_engine
from tests.support.fixtures import GuestLinkFactory, default_guest_env
from trionet.config import InterfaceOverrides, NetworkConfig
from trionet.network import Network
from trionet.policy import NetworkPolicy

pytestmark = pytest.mark.root

SIZE = 200 * 1024 * 1024

# A guest program that sends the same byte pattern the server sends, then
# prints the server's digest of what it received.
_UPLOAD = """
import socket, sys
size = int(sys.argv[3])
chunk = bytes(range(256)) * 256
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
while size > 0:
    n = min(size, len(chunk))
    s.sendall(chunk[:n])
    size -= n
s.shutdown(socket.SHUT_WR)
answer = b""
while True:
    c = s.recv(4096)
    if not c:
        break
    answer += c
print(answer.decode())
"""

CASES = [
    pytest.param(1500, True, id="mtu1500-offload"),
    pytest.param(1500, False, id="mtu1500-plain"),
    pytest.param(65520, True, id="mtu65520"),
]


def _config(mtu: int) -> NetworkConfig:
    return NetworkConfig(interface=InterfaceOverrides(mtu=mtu), policy=NetworkPolicy.allow_all())


@pytest.mark.parametrize(("mtu", "offload"), CASES)
def test_download_200mb(guest_link_factory: GuestLinkFactory, mtu: int, offload: bool) -> None:
    config = _config(mtu)
    link = guest_link_factory(default_guest_env(config=config), offload=offload, uso=False)
    server = HttpServer()

    async def body(net: Network, servers: trio.Nursery) -> None:
        port = await serve_tcp(servers, server.handle, "127.0.0.1")
        result = await link.guest.arun(
            ["sh", "-c", f"curl -sS --max-time 100 http://{GW4}:{port}/{SIZE} | sha256sum"],
            timeout=110,
        )
        assert result.stdout.split()[0].decode() == pattern_sha256(SIZE)

    run_with_engine(link, body, config=config, timeout=120)


@pytest.mark.parametrize(("mtu", "offload"), CASES)
def test_upload_200mb(guest_link_factory: GuestLinkFactory, mtu: int, offload: bool) -> None:
    config = _config(mtu)
    link = guest_link_factory(default_guest_env(config=config), offload=offload, uso=False)

    async def body(net: Network, servers: trio.Nursery) -> None:
        port = await serve_tcp(servers, sha256_sink_handler, "127.0.0.1")
        result = await link.guest.arun(
            ["python3", "-c", _UPLOAD, GW4, str(port), str(SIZE)], timeout=110
        )
        assert result.stdout.strip().decode() == pattern_sha256(SIZE)

    run_with_engine(link, body, config=config, timeout=120)
