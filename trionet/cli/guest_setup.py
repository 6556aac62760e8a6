"""What a guest init does with the guest variables, as data: ip commands, resolv.conf, hosts.

``trionet run`` hands these to its namespace helper (:mod:`trionet.cli.nsexec`),
which runs the commands with ``ip -batch`` inside the new namespace and
bind-mounts the two files over /etc's.
"""

from __future__ import annotations

from trionet.addressing import GuestAddressing

__all__ = ["hosts_file", "ip_commands", "resolv_conf"]


def ip_commands(addressing: GuestAddressing, dev: str = "eth0") -> list[str]:
    """Loopback up, MAC and MTU, addresses (IPv6 without DAD), link up, default routes."""
    commands = [
        "link set dev lo up",
        f"link set dev {dev} address {addressing.guest_mac} mtu {addressing.mtu}",
    ]
    if addressing.ipv4 is not None:
        v4 = addressing.ipv4
        commands.append(f"address add {v4.guest}/{v4.prefix_len} dev {dev}")
    if addressing.ipv6 is not None:
        v6 = addressing.ipv6
        # nodad: usable at once; the gateway is the only other node on the link.
        commands.append(f"address add {v6.guest}/{v6.prefix_len} dev {dev} nodad")
    commands.append(f"link set dev {dev} up")
    if addressing.ipv4 is not None:
        commands.append(f"route add default via {addressing.ipv4.gateway} dev {dev}")
    if addressing.ipv6 is not None:
        commands.append(f"route add default via {addressing.ipv6.gateway} dev {dev}")
    return commands


def resolv_conf(addressing: GuestAddressing) -> str:
    lines = [
        "# Written by trionet run. trionet answers DNS queries on the gateway",
        "# (docs/dns.md).",
    ]
    for family in (addressing.ipv4, addressing.ipv6):
        if family is not None:
            lines.append(f"nameserver {family.gateway}")
    return "\n".join(lines) + "\n"


def hosts_file(addressing: GuestAddressing) -> str:
    lines = [
        "# Written by trionet run: the host alias names the gateway, which is the host.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    for family in (addressing.ipv4, addressing.ipv6):
        if family is not None:
            lines.append(f"{family.gateway}\t{addressing.host_alias}")
    return "\n".join(lines) + "\n"
