"""The namespace harness itself: isolation, switching back, guest configuration, cleanup."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import trio

from tests.support.fixtures import GuestLinkFactory, NetnsFactory, default_guest_env
from tests.support.netns import (
    NETNS_DIR,
    Netns,
    create_netns,
    delete_netns,
    in_netns,
    sweep_stale_netns,
)
from trionet.addressing import HostRoutes
from trionet.config import InterfaceOverrides, NetworkConfig
from trionet.links.tap import TapDevice

pytestmark = pytest.mark.root


def _netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_in_netns_switches_thread_and_back(netns_factory: NetnsFactory) -> None:
    ns = netns_factory("h")
    before = _netns_inode()
    with in_netns(ns):
        assert _netns_inode() == os.stat(ns.path).st_ino != before
        # A socket made inside lives there: 127.0.0.1 here is the namespace's loopback.
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # So do child processes started from this thread.
        links = subprocess.run(["ip", "-j", "link"], capture_output=True, check=True).stdout
        assert [i["ifname"] for i in json.loads(links)] == ["lo"]
    assert _netns_inode() == before
    with server:
        # Outside, nothing listens on that port (the host's loopback is another one).
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))
        ns.run(
            [
                sys.executable,
                "-c",
                f"import socket; socket.create_connection(('127.0.0.1', {port}))",
            ]
        )


def test_in_netns_restores_after_exception(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    before = _netns_inode()
    with pytest.raises(RuntimeError), in_netns(ns.name):
        raise RuntimeError("boom")
    assert _netns_inode() == before
    with pytest.raises(FileNotFoundError), in_netns("tnt-does-not-exist"):
        pass
    assert _netns_inode() == before


def test_run_and_arun_with_timeouts(netns_factory: NetnsFactory) -> None:
    ns = netns_factory()
    assert ns.run(["ip", "-o", "link"]).stdout.count("\n") == 1
    with pytest.raises(subprocess.CalledProcessError):
        ns.run(["false"])
    with pytest.raises(subprocess.TimeoutExpired):
        ns.run(["sleep", "5"], timeout=0.2)

    async def main() -> None:
        result = await ns.arun(["sh", "-c", "echo hi; exit 3"], check=False)
        assert (result.returncode, result.stdout) == (3, b"hi\n")
        with pytest.raises(trio.TooSlowError):
            await ns.arun(["sleep", "5"], timeout=0.2)
        async with trio.open_nursery() as nursery:
            process = await ns.start(nursery, ["sleep", "30"])
            assert process.returncode is None
            nursery.cancel_scope.cancel()
        assert process.returncode is not None  # killed with its nursery

    trio.run(main)


def test_namespaces_removed_and_stale_ones_swept() -> None:
    ns = create_netns("x")
    assert ns.path.exists()
    delete_netns(ns)
    assert not ns.path.exists()
    # A namespace named for a pid that no longer exists is a crashed run's leftover.
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Netns(f"tnt-{dead.pid}-0s")
    subprocess.run(["ip", "netns", "add", stale.name], check=True)
    mine = create_netns("m")
    try:
        swept = sweep_stale_netns()
        assert stale.name in swept and not stale.path.exists()
        assert mine.path.exists()
    finally:
        delete_netns(stale)
        delete_netns(mine)


def test_guest_configured_like_a_guest_init(guest_link_factory: GuestLinkFactory) -> None:
    link = guest_link_factory()
    [eth0] = json.loads(link.guest.ip("-j", "address", "show", "eth0").stdout)
    assert eth0["address"] == str(link.config.mac)
    assert eth0["mtu"] == link.config.mtu == 1500
    assert "UP" in eth0["flags"]
    addrs = {(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["scope"] == "global"}
    assert addrs == {("172.16.0.2", 30), ("fd42:6d73:62::2", 64)}
    routes4 = json.loads(link.guest.ip("-j", "-4", "route", "show", "default").stdout)
    routes6 = json.loads(link.guest.ip("-j", "-6", "route", "show", "default").stdout)
    assert [r["gateway"] for r in routes4] == ["172.16.0.1"]
    assert [r["gateway"] for r in routes6] == ["fd42:6d73:62::1"]
    lo = json.loads(link.guest.ip("-j", "link", "show", "lo").stdout)[0]
    assert "UP" in lo["flags"]
    # The host namespace no longer holds the TAP: it moved.
    assert link.tap.name not in link.host.ip("link").stdout
    assert link.host.ip("link").stdout.count(": lo:") == 1


def test_guest_ipv4_only_large_mtu(guest_link_factory: GuestLinkFactory) -> None:
    env = default_guest_env(
        slot=7,
        config=NetworkConfig(interface=InterfaceOverrides(mtu=65520)),
        routes=HostRoutes(ipv4=True, ipv6=False),
    )
    link = guest_link_factory(env)
    assert link.config.ipv6 is None and link.config.mtu == 65520
    [eth0] = json.loads(link.guest.ip("-j", "address", "show", "eth0").stdout)
    assert eth0["mtu"] == 65520
    assert {a["local"] for a in eth0["addr_info"] if a["family"] == "inet"} == {"172.16.0.30"}
    assert link.guest.ip("-6", "route", "show", "default").stdout == ""


def test_fixture_cleanup_leaves_nothing() -> None:
    # Every namespace the tests above made (through fixtures) is gone again.
    leftovers = [n for n in os.listdir(NETNS_DIR) if n.startswith(f"tnt-{os.getpid()}-")]
    assert leftovers == []


def test_trio_run_inside_a_namespace(netns_factory: NetnsFactory) -> None:
    """How an engine test runs its host side: the whole trio.run inside the host namespace.

    Sockets follow the thread. Child processes are another matter: trio starts
    them from a cached worker thread, which stays in whatever namespace it was
    created in (possibly an earlier test's), so a plain ``trio.run_process``
    child's namespace is unspecified. Programs meant for a namespace therefore
    always go through ``ns.start``/``ns.arun`` (``ip netns exec``), which this
    checks reaches a listener that exists only in the host namespace.
    """
    host = netns_factory("h")
    connect = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))"

    async def main() -> None:
        with trio.socket.socket() as listener:
            await listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = str(listener.getsockname()[1])
            async with trio.open_nursery() as nursery:
                await host.start(nursery, [sys.executable, "-c", connect, port], check=True)
                conn, _ = await listener.accept()
                conn.close()

    with in_netns(host):
        trio.run(main)
    # The listener lived in the host namespace, not in ours.
    assert _netns_inode() != os.stat(host.path).st_ino


def test_leak_snapshot_sees_each_kind_of_leftover(netns_factory: NetnsFactory) -> None:
    from tests.support.leaks import assert_nothing_left, snapshot

    before = snapshot()
    assert_nothing_left(before)
    ns = create_netns("l")
    fd = os.open("/dev/null", os.O_RDONLY)
    child = subprocess.Popen(["sleep", "30"])
    with pytest.raises(AssertionError) as info:
        assert_nothing_left(before)
    message = str(info.value)
    assert ns.name in message and "/dev/null" in message and str(child.pid) in message
    child.kill()
    child.wait()
    os.close(fd)
    delete_netns(ns)
    assert_nothing_left(before)
    tap = TapDevice.open("tntleak0")  # in this (the test's) namespace, briefly
    with pytest.raises(AssertionError, match="tntleak0"):
        assert_nothing_left(before)
    tap.close()
    assert_nothing_left(before)
