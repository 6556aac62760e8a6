"""Guest pings to external destinations, through unprivileged ICMP sockets.

Linux's ``SOCK_DGRAM``/``IPPROTO_ICMP`` sockets (allowed for the groups in
``net.ipv4.ping_group_range``) let an unprivileged process ping; the kernel
picks the echo identifier, so the guest's identifier is restored on the
reply. Where the host forbids them, pings are dropped and counted: the guest
sees a timeout, exactly as behind a firewall that drops ICMP.
"""

from __future__ import annotations

import errno
import socket
import struct

import trio

from trionet.engine.core import EngineCore
from trionet.stack.flows import EchoRequested, FlowKey

__all__ = ["IcmpRelay"]

REPLY_TIMEOUT = 10.0
MAX_OUTSTANDING = 64
_ECHO = struct.Struct("!BBHHH")
_FORBIDDEN = {errno.EACCES, errno.EPERM, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}


class IcmpRelay:
    def __init__(self, core: EngineCore) -> None:
        self._core = core
        self._outstanding = 0
        self._unavailable: set[int] = set()
        core.on_echo = self.on_echo

    def on_echo(self, event: EchoRequested) -> None:
        core = self._core
        key = FlowKey(event.version, event.guest_addr, event.ident, event.remote_addr, 0)
        flow = core.describe(key, "icmp")
        if not core.allows(flow):
            return  # silently, as §6 says: the guest sees a timeout
        if core.is_gateway(flow.destination):
            # The gateway answers its own pings, once the policy let them through.
            core.stack.echo_reply(event, event.payload, trio.current_time())
            return
        if event.version in self._unavailable:
            core.counters.dropped["icmp_unavailable"] += 1
            return
        if self._outstanding >= MAX_OUTSTANDING:
            core.counters.dropped["icmp_limit"] += 1
            return
        family, proto, request_type = (
            (socket.AF_INET, socket.IPPROTO_ICMP, 8)
            if event.version == 4
            else (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128)
        )
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        except OSError as exc:
            # Only a refusal is permanent; running out of fds is not.
            if exc.errno in _FORBIDDEN:
                self._unavailable.add(event.version)
                core.counters.dropped["icmp_unavailable"] += 1
            else:
                core.counters.dropped["host_socket_error"] += 1
            return
        sock.setblocking(False)
        # The gateway is a router: what reaches the host has one hop less.
        hops = max(event.hop_limit - 1, 1)
        if event.version == 4:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, hops)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, hops)
        message = _ECHO.pack(request_type, 0, 0, event.ident, event.sequence) + event.payload
        try:
            sock.sendto(message, (socket.inet_ntop(family, event.remote_addr), 0))
        except OSError:
            sock.close()
            core.counters.dropped["icmp_host_error"] += 1
            return
        self._outstanding += 1
        core.start_flow_task(self._await_reply, event, sock)

    async def _await_reply(self, event: EchoRequested, sock: socket.socket) -> None:
        core = self._core
        reply_type = 0 if event.version == 4 else 129
        try:
            with trio.move_on_after(REPLY_TIMEOUT):
                while True:
                    await trio.lowlevel.wait_readable(sock)
                    try:
                        data = sock.recv(65535)
                    except OSError:
                        continue
                    if len(data) < _ECHO.size:
                        continue
                    icmp_type, _, _, _, sequence = _ECHO.unpack_from(data)
                    if icmp_type != reply_type or sequence != event.sequence:
                        continue
                    core.stack.echo_reply(event, data[_ECHO.size :], trio.current_time())
                    core.flush()
                    return
        finally:
            self._outstanding -= 1
            trio.lowlevel.notify_closing(sock)
            sock.close()
