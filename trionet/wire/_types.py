"""Type aliases shared by the codecs."""

from __future__ import annotations

from typing import TypeAlias

#: Anything the parsers accept: they wrap it in a memoryview and never copy it.
BytesLike: TypeAlias = bytes | bytearray | memoryview
#: Where ``emit_into`` writes: a mutable buffer the caller owns.
WritableBuffer: TypeAlias = bytearray | memoryview
