"""The conformance-script format: parse a script into timed steps.

A script is one step per line, packetdrill-like but our own::

    # a comment
    %tolerance 0.03                 (seconds either way; default 0.03)
    0     < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
    +0    > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 100,nop,wscale *>
    +.01  < . 1:1(0) ack 1 win 514 <nop,nop,TS val 110 ecr *>
    +0    accept
    +0    < P. 1:101(100) ack 1 win 514
    +0    > . 1:1(0) ack 101
    +0    read 100
    +0    write 1000
    +0.3  quiet                     (nothing was sent since the previous line)
    [linux] +0 > ...                (a step for one target only: a documented difference)

Times are absolute seconds from the start, or ``+x`` after the previous step.
``<`` is a segment the peer (the test) sends, ``>`` one the implementation
must send at that time (within the tolerance). Sequence numbers are relative:
inbound SEQ and outbound ACK count from the peer's ISN, outbound SEQ and
inbound ACK (and inbound SACK blocks) from the implementation's ISN, learned
from its SYN-ACK. ``win`` is the raw 16-bit field. An outbound line checks
only what it names: its options, if given in ``<...>``, must be exactly the
kinds listed (``nop``/``eol`` ignored), with ``*`` for any value. Inbound
``ecr *`` echoes the implementation's latest TSval. Socket calls: ``accept``,
``read N`` (N bytes must be readable), ``write N``, ``shutdown`` (SHUT_WR),
``close``. In an outbound segment's flags, ``p`` means PSH may be set or
not: where a sender pushes is its own choice (Linux pushes more often).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Script", "SegmentSpec", "Step", "parse_script"]

ANY = None  # a wildcard value in an outbound expectation


@dataclass
class SegmentSpec:
    flags: str  # sorted letters of S F R P U, plus "." for ACK
    seq: int
    length: int
    ack: int | None = None
    win: int | None = None
    urg: int | None = None
    #: None: options unchecked (outbound) / none sent (inbound)
    options: dict[str, object] | None = None
    #: outbound ``p``: PSH may be set or not (where to push is the sender's choice)
    psh_optional: bool = False


@dataclass
class Step:
    time: float
    kind: str  # "in", "out", "accept", "read", "write", "shutdown", "close", "quiet"
    line: int
    text: str
    segment: SegmentSpec | None = None
    count: int = 0
    targets: frozenset[str] = frozenset({"linux", "trionet"})


@dataclass
class Script:
    name: str
    steps: list[Step]
    tolerance: float = 0.03
    notes: list[str] = field(default_factory=list)


_SEG = re.compile(
    r"^(?P<flags>[SFRPUp.]+|\.)\s+(?P<start>\d+):(?P<end>\d+)\((?P<len>\d+)\)"
    r"(?P<rest>.*)$"
)


def _value(text: str) -> int | None:
    return None if text == "*" else int(text)


def _options(text: str) -> dict[str, object]:
    opts: dict[str, object] = {}
    for raw in text.split(","):
        part = raw.strip().split()
        if not part or part[0] in ("nop", "eol"):
            continue
        kind = part[0]
        if kind == "mss":
            opts["mss"] = _value(part[1])
        elif kind == "wscale":
            opts["wscale"] = _value(part[1])
        elif kind == "sackOK":
            opts["sackOK"] = True
        elif kind == "TS":
            # TS val X ecr Y
            opts["TS"] = (_value(part[2]), _value(part[4]))
        elif kind == "sack":
            blocks = []
            for b in part[1:]:
                left, right = b.split(":")
                blocks.append((int(left), int(right)))
            opts["sack"] = tuple(blocks)
        else:
            raise ValueError(f"unknown option {kind!r}")
    return opts


def _segment(text: str) -> SegmentSpec:
    m = _SEG.match(text.strip())
    if m is None:
        raise ValueError(f"bad segment: {text!r}")
    start, end, length = int(m["start"]), int(m["end"]), int(m["len"])
    if end - start != length:
        raise ValueError(f"{start}:{end} is not {length} bytes")
    letters = m["flags"]
    flags = "".join(sorted(c for c in letters if c not in ".p")) + ("." if "." in letters else "")
    spec = SegmentSpec(flags, start, length, psh_optional="p" in letters)
    rest = m["rest"].strip()
    opt_text = None
    if "<" in rest:
        rest, opt_text = rest.split("<", 1)
        opt_text = opt_text.rstrip().rstrip(">")
    words = rest.split()
    while words:
        key, value = words[0], words[1]
        words = words[2:]
        if key == "ack":
            spec.ack = _value(value)
        elif key == "win":
            spec.win = _value(value)
        elif key == "urg":
            spec.urg = _value(value)
        else:
            raise ValueError(f"unknown field {key!r}")
    if opt_text is not None:
        spec.options = _options(opt_text)
    return spec


def parse_script(path: Path) -> Script:
    script = Script(path.stem, [])
    now = 0.0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            if raw.strip().startswith("#"):
                script.notes.append(raw.strip()[1:].strip())
            continue
        if line.startswith("%tolerance"):
            script.tolerance = float(line.split()[1])
            continue
        targets = frozenset({"linux", "trionet"})
        if line.startswith("["):
            tag, line = line[1:].split("]", 1)
            targets = frozenset({tag.strip()})
            line = line.strip()
        when, _, action = line.partition(" ")
        at = now + float(when[1:] or 0) if when.startswith("+") else float(when)
        action = action.strip()
        now = at
        step = Step(at, "", number, raw.strip(), targets=targets)
        if action.startswith("<"):
            step.kind, step.segment = "in", _segment(action[1:])
        elif action.startswith(">"):
            step.kind, step.segment = "out", _segment(action[1:])
        else:
            word, *args = action.split()
            if word not in ("accept", "read", "write", "shutdown", "close", "quiet"):
                raise ValueError(f"{path.name}:{number}: unknown step {action!r}")
            step.kind = word
            step.count = int(args[0]) if args else 0
        script.steps.append(step)
    return script
