"""Guest UDP flows relayed through connected host UDP sockets.

One host socket per (guest address/port, destination address/port): the
kernel then filters replies to that peer for us, and replies go back to the
guest with the original destination as their source. A flow lives while
traffic passes in either direction and expires after ``idle_timeout``; the
number of flows is capped, evicting the least recently used. The sockets
are served by the engine's readiness loop and expire on its one timer, so a
flow costs a socket and a small record, not a task.
"""

from __future__ import annotations

import errno
import socket
from collections import OrderedDict

import trio

from trionet.engine.core import EngineCore
from trionet.engine.denials import RecentDenials
from trionet.engine.readiness import IN
from trionet.stack.flows import FlowKey, UdpReceived

__all__ = ["UdpRelay"]

DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_FLOWS = 1024
MAX_DATAGRAM = 65535
#: Host replies passed on per readiness wake-up before other sockets get a turn.
REPLIES_PER_WAKEUP = 64


class _UdpFlow:
    __slots__ = ("deadline", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        #: when the flow expires unless traffic moves it on
        self.deadline = deadline


class UdpRelay:
    def __init__(
        self,
        core: EngineCore,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_flows: int = DEFAULT_MAX_FLOWS,
    ) -> None:
        self._core = core
        self._idle_timeout = idle_timeout
        self._max_flows = max_flows
        self._flows: OrderedDict[FlowKey, _UdpFlow] = OrderedDict()
        #: a denied flow's later datagrams within a second are dropped on the same decision
        self._denied = RecentDenials()
        core.on_udp = self.on_datagram

    @property
    def flow_count(self) -> int:
        return len(self._flows)

    def on_datagram(self, event: UdpReceived) -> None:
        core = self._core
        key = event.key
        flow = self._flows.get(key)
        if flow is None:
            if self._denied.denied(key, trio.current_time()):
                core.counters.dropped["policy"] += 1
                return
            flow = self._open(key)
            if flow is None:
                return
        else:
            self._touch(key, flow)
        try:
            flow.sock.send(event.payload)
        except BlockingIOError:
            core.counters.dropped["udp_host_buffer_full"] += 1
        except OSError as exc:
            # An earlier ICMP error may surface on this send instead of recv.
            self._reflect_error(key, exc, event.payload)

    def _open(self, key: FlowKey) -> _UdpFlow | None:
        core = self._core
        flow_desc = core.describe(key, "udp")
        if not core.allows(flow_desc):
            self._denied.add(key, trio.current_time())
            return None
        target = core.host_target(flow_desc)
        sock = core.open_host_socket(target, socket.SOCK_DGRAM)
        if sock is None:
            return None
        try:
            sock.connect((str(target), key.remote_port))
        except OSError as exc:
            sock.close()
            self._reflect_error(key, exc, b"")
            return None
        while len(self._flows) >= self._max_flows:
            _, oldest = self._flows.popitem(last=False)
            self._close(oldest)
            core.counters.udp_flows_evicted += 1
        flow = _UdpFlow(sock, trio.current_time() + self._idle_timeout)
        self._flows[key] = flow
        core.counters.udp_flows_opened += 1
        core.readiness.watch(sock.fileno(), IN, lambda _events: self._readable(key, flow))
        core.call_at(flow.deadline, lambda: self._expire(key, flow))
        return flow

    def _touch(self, key: FlowKey, flow: _UdpFlow) -> None:
        flow.deadline = trio.current_time() + self._idle_timeout
        self._flows.move_to_end(key)

    def _readable(self, key: FlowKey, flow: _UdpFlow) -> None:
        """Replies from the host: each becomes a datagram to the guest."""
        if self._flows.get(key) is not flow:
            return
        stack = self._core.stack
        now = trio.current_time()
        for _ in range(REPLIES_PER_WAKEUP):
            try:
                data = flow.sock.recv(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError as exc:
                self._reflect_error(key, exc, b"")
                continue
            stack.udp_send(key, data, now)
        self._touch(key, flow)

    def _expire(self, key: FlowKey, flow: _UdpFlow) -> None:
        if self._flows.get(key) is not flow:
            return  # evicted or closed already
        if trio.current_time() < flow.deadline:
            # Traffic moved the deadline on: one timer entry per flow at a time.
            self._core.call_at(flow.deadline, lambda: self._expire(key, flow))
            return
        del self._flows[key]
        self._close(flow)

    def _close(self, flow: _UdpFlow) -> None:
        self._core.readiness.forget(flow.sock.fileno())
        flow.sock.close()

    def close(self) -> None:
        """Engine teardown: close every host socket."""
        for flow in self._flows.values():
            self._close(flow)
        self._flows.clear()

    def _reflect_error(self, key: FlowKey, exc: OSError, payload: bytes) -> None:
        core = self._core
        if exc.errno == errno.ECONNREFUSED:
            core.stack.udp_unreachable(key, payload, trio.current_time(), port=True)
        elif exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            core.stack.udp_unreachable(key, payload, trio.current_time(), port=False)
        else:
            core.counters.dropped["udp_host_error"] += 1
        # No flush here: every caller runs inside the engine's flush or the
        # readiness loop's batch, which flushes once at its end.
