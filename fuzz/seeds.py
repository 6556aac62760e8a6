"""The seed corpus: real kernel frames, split into the layer each target parses."""

from __future__ import annotations

from pathlib import Path

from fuzz.targets import layers_of

CORPUS = Path(__file__).parent / "corpus"


def load_corpus(directory: Path = CORPUS) -> list[bytes]:
    return [path.read_bytes() for path in sorted(directory.glob("*.bin"))]


def seeds_for(layer: str, frames: list[bytes]) -> list[bytes]:
    """The ``layer`` bytes (e.g. "tcp": the TCP segment) of every frame that has one."""
    return [found[layer] for frame in frames if layer in (found := layers_of(frame))]
