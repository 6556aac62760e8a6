"""trionet's TCP as a script target: the stack in-process, on mock time.

The script's peer is the guest; the "socket" is the relay's side of the
connection (``tcp_read``/``tcp_send``/``tcp_shutdown``/``tcp_release``). A
guest SYN is accepted at once: trionet dials the host before its SYN-ACK,
so the ``accept`` step is a no-op here (a deliberate difference of a relay).
"""

from __future__ import annotations

from dataclasses import replace

from tests.stack.guest import GUEST4, REMOTE4, make_stack, parse_out, v4
from tests.tcpscript.format import Step
from tests.tcpscript.runner import PEER_PORT, SERVER_PORT, ScriptMismatchError, Sent
from trionet.stack.flows import FlowKey, TcpConnectRequested
from trionet.wire.tcp import TcpHeader

__all__ = ["TrionetTarget"]

KEY = FlowKey(4, GUEST4, PEER_PORT, REMOTE4, SERVER_PORT)


class TrionetTarget:
    def __init__(self, congestion: str = "reno") -> None:
        self.stack = make_stack()
        # The script's congestion control (the stack's own default is CUBIC).
        table = self.stack.tcp
        for name in ("_config_v4", "_config_v6", "_large_v4", "_large_v6"):
            setattr(table, name, replace(getattr(table, name), congestion_control=congestion))
        self.now = 0.0

    def _drain(self, out: list[Sent]) -> None:
        for event in self.stack.take_events():
            if isinstance(event, TcpConnectRequested):
                self.stack.tcp_accept(event.key, self.now)
        for frame in self.stack.take_frames():
            parsed = parse_out(frame)
            if parsed.tcp is not None:
                out.append(Sent(self.now, parsed.tcp, parsed.payload))

    def _advance(self, until: float, out: list[Sent], *, first: bool) -> None:
        """Run the timers due up to ``until``, collecting what they send."""
        while not (first and out):
            deadline = self.stack.next_deadline()
            if deadline is None or deadline > until:
                break
            self.now = max(self.now, deadline)
            self.stack.poll(self.now)
            self._drain(out)
        if not (first and out):
            self.now = max(self.now, until)

    def inject(self, header: TcpHeader, payload: bytes, at: float) -> None:
        self.now = max(self.now, at)
        self.stack.receive_frame(v4(header, payload, dst=REMOTE4), self.now)
        self._pending: list[Sent] = []
        self._drain(self._pending)

    def collect(self, until: float, *, first: bool) -> list[Sent]:
        out = getattr(self, "_pending", [])
        self._pending = []
        if not (first and out):
            self._advance(until, out, first=first)
        return out

    def call(self, step: Step, at: float) -> None:
        self.now = max(self.now, at)
        stack = self.stack
        self._pending = getattr(self, "_pending", [])
        if step.kind == "accept":
            pass  # accepted at the SYN: trionet dials the host first
        elif step.kind == "read":
            data = stack.tcp_read(KEY, step.count, self.now)
            if len(data) != step.count:
                raise ScriptMismatchError(f"read {len(data)} bytes, expected {step.count}")
        elif step.kind == "write":
            taken = stack.tcp_send(KEY, memoryview(bytes(step.count)), self.now)
            if taken != step.count:
                raise ScriptMismatchError(f"wrote {taken} bytes of {step.count}")
        elif step.kind == "shutdown":
            stack.tcp_shutdown(KEY, self.now)
        elif step.kind == "close":
            if stack.tcp_status(KEY).readable:
                stack.tcp_abort(KEY, self.now)  # unread data: RST, as close(2) does
            else:
                stack.tcp_shutdown(KEY, self.now)
                stack.tcp_release(KEY, self.now)
        self._drain(self._pending)
