"""The committed seed corpus: real kernel frames parse to what their file names say.

These frames are Linux's own output (see fuzz/corpus/README.md), so this is
also a conformance check of the parsers against a real implementation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.capture_corpus import describe
from trionet.wire.checksum import pseudo_header_v4
from trionet.wire.ethernet import parse_ethernet
from trionet.wire.ipv4 import parse_ipv4
from trionet.wire.tcp import TcpFlags, parse_tcp

CORPUS = Path(__file__).parents[2] / "fuzz" / "corpus"
FILES = sorted(CORPUS.glob("*.bin"))


#: What the corpus must hold: substrings of the file names.
REQUIRED_KINDS = (
    "arp-request",
    "arp-reply",
    "routersolicitation",
    "neighborsolicitation",
    "neighboradvertisement",
    "ipv4-tcp-syn",
    "ipv6-tcp-syn",
    "sack",
    "ipv4-fragment",
    "ipv6-fragment",
    "destunreachable-code4",
    "packettoobig",
    "timeexceeded",
)


def missing_kinds(names: list[str]) -> list[str]:
    joined = " ".join(names)
    return [kind for kind in REQUIRED_KINDS if kind not in joined]


def test_corpus_has_the_required_kinds() -> None:
    assert missing_kinds([path.name for path in FILES]) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_frame_parses_to_its_name(path: Path) -> None:
    slug = path.name.split("-", 1)[1].removesuffix(".bin")
    assert describe(path.read_bytes()) == slug


def test_linux_syn_has_all_options_and_valid_checksum() -> None:
    (path,) = [p for p in FILES if p.name.endswith("ipv4-tcp-syn.bin")]
    ip, l4 = parse_ipv4(parse_ethernet(path.read_bytes())[1])
    tcp, _ = parse_tcp(l4, pseudo_header_v4(ip.src, ip.dst, 6, len(l4)))
    assert tcp.flags == TcpFlags.SYN
    opts = tcp.options
    assert opts.mss == 1460 and opts.sack_permitted
    assert opts.window_scale is not None and opts.timestamp is not None
