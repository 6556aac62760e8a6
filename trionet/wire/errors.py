"""The one error every wire codec raises on malformed input."""

from __future__ import annotations

__all__ = ["ParseError"]


class ParseError(Exception):
    """Bytes that do not form a valid header; ``reason`` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
