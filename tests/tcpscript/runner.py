"""Run a conformance script against an implementation ("target").

Two targets share this logic: trionet's stack, driven in-process with mock
time (:class:`TrionetTarget`), and the Linux kernel, driven in real time
over a TUN device inside a throwaway network namespace
(:mod:`tests.tcpscript.linux_target`). The script plays the remote peer: it
sends the ``<`` segments and checks that the target sends exactly the ``>``
segments, at their times (within the script's tolerance), and nothing else.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from tests.tcpscript.format import Script, SegmentSpec, Step
from trionet.wire.tcp import TcpFlags, TcpHeader, TcpOptions

__all__ = ["PEER_ISN", "PEER_PORT", "SERVER_PORT", "ScriptMismatchError", "Target", "run_script"]

PEER_ISN = 1_000_000
PEER_PORT = 40000
SERVER_PORT = 8080
MASK = 0xFFFF_FFFF

_FLAG_LETTERS = (
    (TcpFlags.FIN, "F"),
    (TcpFlags.PSH, "P"),
    (TcpFlags.RST, "R"),
    (TcpFlags.SYN, "S"),
    (TcpFlags.URG, "U"),
)


class ScriptMismatchError(AssertionError):
    """The target did not behave as the script says."""


@dataclass
class Sent:
    """A segment the target emitted, at ``time`` seconds from the start."""

    time: float
    header: TcpHeader
    payload: bytes


class Target(Protocol):
    """What a script needs from an implementation under test."""

    def inject(self, header: TcpHeader, payload: bytes, at: float) -> None: ...

    def collect(self, until: float, *, first: bool) -> list[Sent]:
        """What the target sent up to ``until`` (stop at the first one if ``first``)."""
        ...

    def call(self, step: Step, at: float) -> None:
        """A socket call: accept, read N, write N, shutdown, close."""
        ...


def flags_text(flags: TcpFlags) -> str:
    text = "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit)
    return "".join(sorted(text)) + ("." if flags & TcpFlags.ACK else "")


def describe(sent: Sent, kernel_isn: int) -> str:
    h = sent.header
    seq = (h.seq - kernel_isn) & MASK
    text = f"{sent.time:.3f} > {flags_text(h.flags)} {seq}:{seq + len(sent.payload)}"
    text += f"({len(sent.payload)}) ack {(h.ack - PEER_ISN) & MASK} win {h.window}"
    o = h.options
    opts = []
    if o.mss is not None:
        opts.append(f"mss {o.mss}")
    if o.sack_permitted:
        opts.append("sackOK")
    if o.timestamp is not None:
        opts.append(f"TS val {o.timestamp[0]} ecr {o.timestamp[1]}")
    if o.window_scale is not None:
        opts.append(f"wscale {o.window_scale}")
    if o.sack_blocks:
        blocks = " ".join(
            f"{(a - PEER_ISN) & MASK}:{(b - PEER_ISN) & MASK}" for a, b in o.sack_blocks
        )
        opts.append(f"sack {blocks}")
    return text + (f" <{','.join(opts)}>" if opts else "")


class _Run:
    def __init__(self, script: Script, target: Target, name: str) -> None:
        self.script = script
        self.target = target
        self.name = name
        self.kernel_isn = 0
        self.kernel_tsval = 0
        self.pending: deque[Sent] = deque()
        self.seen: list[str] = []

    def fail(self, step: Step, why: str) -> ScriptMismatchError:
        log = "\n".join(self.seen[-12:])
        return ScriptMismatchError(
            f"{self.script.name} on {self.name}, line {step.line} ({step.text}): {why}\n"
            f"sent so far (last 12):\n{log}"
        )

    def take(self, sent: list[Sent]) -> None:
        for s in sent:
            h = s.header
            if h.flags & TcpFlags.SYN:
                self.kernel_isn = h.seq
            if h.options.timestamp is not None:
                self.kernel_tsval = h.options.timestamp[0]
            self.seen.append(describe(s, self.kernel_isn))
            self.pending.append(s)

    def inbound(self, spec: SegmentSpec) -> tuple[TcpHeader, bytes]:
        flags = TcpFlags(0)
        for bit, letter in _FLAG_LETTERS:
            if letter in spec.flags:
                flags |= bit
        if "." in spec.flags:
            flags |= TcpFlags.ACK
        ack = 0 if spec.ack is None else (self.kernel_isn + spec.ack) & MASK
        opts = spec.options or {}
        ts = opts.get("TS")
        timestamp = None
        if isinstance(ts, tuple):
            val, ecr = ts
            timestamp = (val or 0, self.kernel_tsval if ecr is None else ecr)
        sack = opts.get("sack")
        blocks: tuple[tuple[int, int], ...] = ()
        if isinstance(sack, tuple):
            blocks = tuple(
                ((self.kernel_isn + a) & MASK, (self.kernel_isn + b) & MASK) for a, b in sack
            )
        mss = opts.get("mss")
        wscale = opts.get("wscale")
        options = TcpOptions(
            mss if isinstance(mss, int) else None,
            wscale if isinstance(wscale, int) else None,
            bool(opts.get("sackOK")),
            blocks,
            timestamp,
        )
        header = TcpHeader(
            PEER_PORT,
            SERVER_PORT,
            (PEER_ISN + spec.seq) & MASK,
            ack,
            flags,
            65535 if spec.win is None else spec.win,
            spec.urg or 0,
            options,
        )
        payload = bytes((spec.seq + i) & 0xFF for i in range(spec.length))
        return header, payload

    def check(self, step: Step, sent: Sent) -> None:
        spec = step.segment
        assert spec is not None
        h = sent.header
        tol = self.script.tolerance
        if abs(sent.time - step.time) > tol:
            raise self.fail(step, f"sent at {sent.time:.3f}, expected {step.time:.3f} ± {tol}")
        got = flags_text(h.flags)
        if spec.psh_optional:
            got = got.replace("P", "")
        if got != spec.flags:
            raise self.fail(step, f"flags {got}, expected {spec.flags}")
        seq = (h.seq - self.kernel_isn) & MASK
        if seq != spec.seq or len(sent.payload) != spec.length:
            raise self.fail(
                step, f"segment {seq}({len(sent.payload)}), expected {spec.seq}({spec.length})"
            )
        if spec.ack is not None and (h.ack - PEER_ISN) & MASK != spec.ack:
            raise self.fail(step, f"ack {(h.ack - PEER_ISN) & MASK}, expected {spec.ack}")
        if spec.win is not None and h.window != spec.win:
            raise self.fail(step, f"win {h.window}, expected {spec.win}")
        if spec.options is None:
            return
        o = h.options
        have: dict[str, object] = {}
        if o.mss is not None:
            have["mss"] = o.mss
        if o.window_scale is not None:
            have["wscale"] = o.window_scale
        if o.sack_permitted:
            have["sackOK"] = True
        if o.timestamp is not None:
            have["TS"] = o.timestamp
        if o.sack_blocks:
            have["sack"] = tuple(
                ((a - PEER_ISN) & MASK, (b - PEER_ISN) & MASK) for a, b in o.sack_blocks
            )
        if set(have) != set(spec.options):
            raise self.fail(step, f"options {sorted(have)}, expected {sorted(spec.options)}")
        for key, want in spec.options.items():
            got_value = have[key]
            if key == "TS":
                assert isinstance(want, tuple) and isinstance(got_value, tuple)
                for w, g, label in zip(want, got_value, ("val", "ecr"), strict=True):
                    if w is not None and w != g:
                        raise self.fail(step, f"TS {label} {g}, expected {w}")
            elif want is not None and want != got_value:
                raise self.fail(step, f"{key} {got_value}, expected {want}")

    def run(self) -> None:
        tol = self.script.tolerance
        for step in self.script.steps:
            if self.name not in step.targets:
                continue
            if step.kind == "out":
                if not self.pending:
                    self.take(self.target.collect(step.time + tol, first=True))
                if not self.pending:
                    raise self.fail(step, "nothing was sent")
                self.check(step, self.pending.popleft())
                continue
            self.take(self.target.collect(step.time, first=False))
            if self.pending:
                raise self.fail(step, f"unexpected segment before this step: {self.seen[-1]}")
            if step.kind == "quiet":
                continue
            if step.kind == "in":
                assert step.segment is not None
                header, payload = self.inbound(step.segment)
                self.target.inject(header, payload, step.time)
            else:
                try:
                    self.target.call(step, step.time)
                except ScriptMismatchError as exc:
                    raise self.fail(step, str(exc)) from None
        # Whatever came out right after the last step was not expected either.
        last = max((s.time for s in self.script.steps), default=0.0)
        self.take(self.target.collect(last + tol, first=False))
        if self.pending:
            raise ScriptMismatchError(
                f"{self.script.name} on {self.name}: unexpected segment at the end: "
                f"{describe(self.pending[0], self.kernel_isn)}"
            )


def run_script(script: Script, target: Target, name: str) -> None:
    """Raise :class:`ScriptMismatchError` unless ``target`` follows ``script``."""
    _Run(script, target, name).run()
