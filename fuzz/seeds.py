"""The seed corpus: real kernel frames, split into the layer each target parses."""

from __future__ import annotations

from pathlib import Path

from fuzz.dns_target import dns_seeds
from fuzz.targets import layers_of

CORPUS = Path(__file__).parent / "corpus"
#: Seeds of the application-layer targets (ClientHello peek, HTTP/1 rewriter):
#: files named ``<layer>-*.bin``, since no frame of the capture holds them whole.
APP_CORPUS = Path(__file__).parent / "corpus-app"
APP_LAYERS = ("clienthello", "http1", "http2")


def load_corpus(directory: Path = CORPUS) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("*.bin"))]


def seeds_for(layer: str, frames: list[bytes]) -> list[bytes]:
    """The ``layer`` bytes (e.g. "tcp": the TCP segment) of every frame that has one."""
    if layer in APP_LAYERS:
        return [path.read_bytes() for path in sorted(APP_CORPUS.glob(f"{layer}-*.bin"))]
    seeds = [found[layer] for frame in frames if layer in (found := layers_of(frame))]
    if layer == "dns":
        # The dns target's input is a length byte, the query, then a resolver's
        # bytes; the capture has few queries, if any: add well-formed ones.
        seeds = [bytes([len(q)]) + q for q in seeds + dns_seeds() if len(q) < 256]
    return seeds
