"""The one exception every wire parser raises for malformed input.

A guest is hostile: whatever bytes it sends, a parser either returns a
representation or raises :class:`ParseError`. Callers catch exactly this and
drop the frame, so an IndexError or struct.error escaping a parser would be a
bug (the fuzz targets check that none does).
"""

from __future__ import annotations

__all__ = ["ParseError"]


class ParseError(Exception):
    """Malformed or unsupported bytes; ``reason`` says what was wrong (for logs and counters)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
