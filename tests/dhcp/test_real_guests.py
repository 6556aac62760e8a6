"""Stock Linux guests configure themselves from the gateway: no ``MSB_NET*`` at all.

Each guest is a namespace whose eth0 is a TAP attached to the engine, with
only the NIC's MAC set (what a VMM does). Everything else comes from the
gateway: busybox ``udhcpc`` and ISC ``dhclient`` (DHCPv4, stateful and
stateless DHCPv6) with lease scripts written here that apply the lease the
way a distribution's script does, and the kernel's own SLAAC (``accept_ra=2``, set inside the
guest namespace only). Each guest then fetches a page from a server on the
host's loopback through trionet. Nothing here names the gateway's address
up front except as the expected answer.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from tests.engine.servers import HttpServer, serve_tcp
from tests.support.fixtures import GuestLink, GuestLinkFactory
from tests.support.netns import Netns, in_netns
from tests.support.real import missing
from trionet.addressing import HostRoutes
from trionet.config import InterfaceOverrides, NetworkConfig
from trionet.dhcp.config import DhcpConfig
from trionet.engine.policy import NewFlow, Verdict
from trionet.network import Network, open_network
from trionet.policy import NetworkPolicy

pytestmark = pytest.mark.root

DUAL = HostRoutes(ipv4=True, ipv6=True)
GW4 = "172.16.0.1"
GUEST4 = "172.16.0.2"
GW6 = "fd42:6d73:62::1"
GUEST6 = "fd42:6d73:62::2"
SLOT_PREFIX = ipaddress.IPv6Network("fd42:6d73:62::/64")
MTU = 1400
PAGE = (bytes(range(256)) * 4)[:100]

#: The guests fetch pages from the host's loopback through the gateway.
HOST_ALLOWED = NetworkPolicy.from_profiles(["public", "host"])


def _need(tool: str) -> None:
    """Skip without ``tool``; in CI, where noxfile's SYSTEM_TOOLS installs it, fail."""
    if shutil.which(tool) is None:
        missing(f"{tool} is not installed (noxfile SYSTEM_TOOLS installs it)")


def run_engine(
    link: GuestLink,
    body: Callable[[Network, int, int], Awaitable[None]],
    config: NetworkConfig,
    flows: list[NewFlow],
    *,
    timeout: float = 60.0,
) -> Network:
    """An engine on ``link`` in the host namespace; ``body`` gets the HTTP ports (v4, v6)."""
    result: list[Network] = []

    def policy(flow: NewFlow) -> Verdict:
        flows.append(flow)
        return Verdict.ALLOW

    async def main() -> None:
        with in_netns(link.host), trio.fail_after(timeout):
            async with trio.open_nursery() as servers:
                server = HttpServer()
                port4 = await serve_tcp(servers, server.handle, "127.0.0.1")
                port6 = await serve_tcp(servers, server.handle, "::1")
                async with open_network(config, 0, routes=DUAL, policy=policy) as net:
                    await net.attach_tap(link.tap)
                    result.append(net)
                    await body(net, port4, port6)
                servers.cancel_scope.cancel()

    trio.run(main)
    return result[0]


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    with trio.move_on_after(timeout) as scope:
        while not await check():
            await trio.sleep(0.2)
    assert not scope.cancelled_caught, f"timed out waiting for {what}"


async def fetch(guest: Netns, url: str, *extra: str) -> bytes:
    result = await guest.arun(["curl", "-sS", "--max-time", "10", *extra, url], timeout=15)
    return result.stdout


async def addresses(guest: Netns, family: str) -> list[dict[str, object]]:
    out = await guest.arun(["ip", "-j", f"-{family}", "addr", "show", "dev", "eth0"])
    info = json.loads(out.stdout)
    return [a for entry in info for a in entry["addr_info"] if a.get("scope") == "global"]


async def default_route(guest: Netns, family: str) -> str:
    out = await guest.arun(["ip", f"-{family}", "route", "show", "default"])
    return out.stdout.decode()


# -- busybox udhcpc ------------------------------------------------------------------

UDHCPC_SCRIPT = """#!/bin/sh
# What a distribution's udhcpc default.script does, writing DNS to a file of the test's.
echo "$1 t=$(date +%s) ip=$ip mask=$mask router=$router dns=$dns" \\
    "domain=$domain search=$search mtu=$mtu lease=$lease" >> LOG
case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set dev "$interface" up
        ;;
    bound|renew)
        ip addr replace "$ip/$mask" dev "$interface"
        [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
        for r in $router; do ip route replace default via "$r" dev "$interface"; done
        {
            [ -n "$search" ] && echo "search $search"
            for d in $dns; do echo "nameserver $d"; done
        } > RESOLV
        ;;
esac
exit 0
"""


def test_udhcpc_guest_gets_ipv4_and_keeps_its_lease_across_renewals(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    _need("busybox")
    link = guest_link_factory(configure=False)
    log, resolv = tmp_path / "udhcpc.log", tmp_path / "resolv.conf"
    script = tmp_path / "udhcpc.script"
    script.write_text(UDHCPC_SCRIPT.replace("LOG", str(log)).replace("RESOLV", str(resolv)))
    script.chmod(0o755)
    config = NetworkConfig(
        policy=HOST_ALLOWED,
        interface=InterfaceOverrides(mtu=MTU),
        # 30 s: busybox udhcpc treats shorter leases as 30 s anyway.
        dhcp=DhcpConfig(lease_time=30, search_domains=("corp.example", "example.org")),
    )
    flows: list[NewFlow] = []

    def events() -> list[str]:
        return log.read_text().splitlines() if log.exists() else []

    async def body(net: Network, port4: int, port6: int) -> None:
        async with trio.open_nursery() as nursery:
            await link.guest.start(
                nursery,
                ["busybox", "udhcpc", "-f", "-i", "eth0", "-s", str(script), "-T", "1"],
            )

            async def bound() -> bool:
                return any(line.startswith("bound") for line in events())

            await wait_for(bound, "udhcpc to bind", 15)
            line = next(line for line in events() if line.startswith("bound"))
            assert f" ip={GUEST4} mask=30 router={GW4} dns={GW4}" in line
            assert "domain=corp.example search=corp.example example.org" in line
            assert f"mtu={MTU} lease=30" in line
            assert resolv.read_text() == (f"search corp.example example.org\nnameserver {GW4}\n")
            assert await fetch(link.guest, f"http://{GW4}:{port4}/100") == PAGE
            mtu = (await link.guest.arun(["cat", "/sys/class/net/eth0/mtu"])).stdout
            assert mtu.strip() == str(MTU).encode()

            # T1 is 15 s: two renewals, unicast to the gateway, each acknowledged.
            async def renewed_twice() -> bool:
                return sum(line.startswith("renew") for line in events()) >= 2

            await wait_for(renewed_twice, "two renewals", 45)
            assert await fetch(link.guest, f"http://{GW4}:{port4}/100") == PAGE
            nursery.cancel_scope.cancel()
        dhcp = net.core.stack.dhcpv4
        assert dhcp is not None and dhcp.sent["ACK"] >= 3 and dhcp.sent["NAK"] == 0
        assert dhcp.lease.active(trio.current_time())

    run_engine(link, body, config, flows, timeout=75)
    assert {str(f.guest) for f in flows} == {GUEST4}


# -- the kernel's own SLAAC ----------------------------------------------------------


def test_kernel_slaac_guest_gets_ipv6_from_router_advertisements(
    guest_link_factory: GuestLinkFactory,
) -> None:
    _need("rdisc6")
    link = guest_link_factory(configure=False)
    config = NetworkConfig(
        policy=HOST_ALLOWED,
        interface=InterfaceOverrides(mtu=MTU),
        dhcp=DhcpConfig(search_domains=("corp.example",)),
    )
    flows: list[NewFlow] = []
    # Inside the guest namespace only: accept RAs whatever forwarding says, and
    # form addresses from them (the kernel's defaults, made explicit).
    for key in ("accept_ra=2", "autoconf=1"):
        link.guest.run(["sysctl", "-q", "-w", f"net.ipv6.conf.eth0.{key}"])
    link.guest.ip("link", "set", "dev", "eth0", "up")
    slaac: list[str] = []

    async def body(net: Network, port4: int, port6: int) -> None:
        async def configured() -> bool:
            for a in await addresses(link.guest, "6"):
                if "tentative" not in a and a["local"] != GUEST6:
                    slaac.append(str(a["local"]))
                    return "via fe80::" in await default_route(link.guest, "6")
            return False

        await wait_for(configured, "a SLAAC address and a default route", 20)
        address = ipaddress.IPv6Address(slaac[-1])
        assert address in SLOT_PREFIX and address != ipaddress.IPv6Address(GUEST6)
        mtu6 = await link.guest.arun(["cat", "/proc/sys/net/ipv6/conf/eth0/mtu"])
        assert mtu6.stdout.strip() == str(MTU).encode()
        # DNS from the advertisement (RFC 8106), read by an independent parser.
        ra = (await link.guest.arun(["rdisc6", "-1", "eth0"], timeout=10)).stdout.decode()
        assert re.search(rf"Recursive DNS server\s*:\s*{GW6}\n", ra), ra
        assert re.search(r"DNS search list\s*:\s*corp\.example\s*\n", ra), ra
        assert re.search(r"Prefix\s*:\s*fd42:6d73:62::/64\n", ra), ra
        assert re.search(rf"MTU\s*:\s*{MTU} bytes", ra), ra
        assert re.search(r"Stateful address conf\.\s*:\s*Yes", ra), ra
        assert await fetch(link.guest, f"http://[{GW6}]:{port6}/100") == PAGE

    net = run_engine(link, body, config, flows)
    # The flow came from the address the guest made up, and was relayed.
    assert [str(f.guest) for f in flows] == [slaac[-1]]
    assert net.metrics_handle().snapshot()["connections"]["opened"] == 1  # type: ignore[index]


# -- ISC dhclient: DHCPv4 and stateful DHCPv6 --------------------------------------

DHCLIENT_SCRIPT = """#!/bin/sh
# What dhclient-script does for the reasons this test meets, DNS into a file of the test's.
env | grep -E '^(reason|new_|interface)' | sort | tr '\\n' ' ' >> LOG
echo >> LOG
case "$reason" in
    PREINIT)
        ip link set dev "$interface" up
        ;;
    BOUND|RENEW|REBIND|REBOOT)
        ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
        [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
        for r in $new_routers; do ip route replace default via "$r" dev "$interface"; done
        for d in $new_domain_name_servers; do echo "nameserver $d"; done >> RESOLV
        ;;
    BOUND6|RENEW6|REBIND6)
        ip -6 addr replace "$new_ip6_address/64" dev "$interface" nodad
        for d in $new_dhcp6_name_servers; do echo "nameserver $d"; done >> RESOLV
        [ -n "$new_dhcp6_domain_search" ] && echo "search $new_dhcp6_domain_search" >> RESOLV
        ;;
esac
exit 0
"""


def test_dhclient_guest_gets_both_families_by_dhcp(
    guest_link_factory: GuestLinkFactory, tmp_path: Path
) -> None:
    _need("dhclient")
    link = guest_link_factory(configure=False)
    log, resolv = tmp_path / "dhclient.log", tmp_path / "resolv.conf"
    script = tmp_path / "dhclient.script"
    script.write_text(DHCLIENT_SCRIPT.replace("LOG", str(log)).replace("RESOLV", str(resolv)))
    script.chmod(0o755)
    config = NetworkConfig(policy=HOST_ALLOWED, dhcp=DhcpConfig(search_domains=("corp.example",)))
    flows: list[NewFlow] = []
    for key in ("accept_ra=2", "autoconf=0"):  # the route from the RA, the address by DHCPv6
        link.guest.run(["sysctl", "-q", "-w", f"net.ipv6.conf.eth0.{key}"])
    link.guest.ip("link", "set", "dev", "eth0", "up")

    def dhclient(family: str) -> list[str]:
        return [
            "dhclient",
            f"-{family}",
            "-d",
            "-sf",
            str(script),
            "-lf",
            str(tmp_path / f"leases{family}"),
            "-pf",
            str(tmp_path / f"pid{family}"),
            "eth0",
        ]

    def log_has(reason: str) -> bool:
        return log.exists() and f"reason={reason} " in log.read_text()

    async def body(net: Network, port4: int, port6: int) -> None:
        async with trio.open_nursery() as nursery:
            await link.guest.start(nursery, dhclient("4"))

            async def bound4() -> bool:
                return log_has("BOUND")

            await wait_for(bound4, "a DHCPv4 lease", 20)

            # DHCPv6 needs a usable link-local address first (DAD takes a second).
            async def link_local_ready() -> bool:
                out = await link.guest.arun(["ip", "-6", "addr", "show", "dev", "eth0"])
                return b"scope link" in out.stdout and b"tentative" not in out.stdout

            await wait_for(link_local_ready, "the link-local address", 10)
            await link.guest.start(nursery, dhclient("6"))

            async def bound6() -> bool:
                return log_has("BOUND6") and "via fe80::" in await default_route(link.guest, "6")

            await wait_for(bound6, "a DHCPv6 lease and the RA's route", 30)
            text = log.read_text()
            assert f"new_ip_address={GUEST4} " in text
            assert "new_subnet_mask=255.255.255.252 " in text
            assert f"new_routers={GW4} " in text
            assert f"new_ip6_address={GUEST6} " in text
            assert f"new_dhcp6_name_servers={GW6} " in text
            assert "new_dhcp6_domain_search=corp.example." in text
            assert f"nameserver {GW4}\n" in resolv.read_text()
            assert f"nameserver {GW6}\n" in resolv.read_text()
            assert await fetch(link.guest, f"http://{GW4}:{port4}/100") == PAGE
            assert await fetch(link.guest, f"http://[{GW6}]:{port6}/100") == PAGE
            nursery.cancel_scope.cancel()
        # Stateless DHCPv6 (INFORMATION-REQUEST): DNS settings, no address.
        stateless = [*dhclient("6")[:-1], "-S", "-1", "eth0"]
        stateless[stateless.index("-d")] = "-v"
        await link.guest.arun(stateless, timeout=20)
        info = log.read_text().splitlines()[-1]
        assert f"new_dhcp6_name_servers={GW6} " in info, info
        assert "new_ip6_address" not in info, info
        assert net.core.stack.dhcpv6 is not None
        assert net.core.stack.dhcpv6.sent["REPLY"] >= 2  # the request's, and this one

    run_engine(link, body, config, flows, timeout=90)
    assert {str(f.guest) for f in flows} == {GUEST4, GUEST6}
