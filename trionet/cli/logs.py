"""Structured logs for the command line: one ``logfmt`` line per event on stderr.

``ts=2026-11-29T23:59:01.123Z level=info event=session.end link=stream
reason=eof frames_in=12`` is greppable and parses with any logfmt reader,
and stays readable by eye. Callers name the event and pass fields:
``log_event(logger, logging.INFO, "session.end", reason=...)``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Final

__all__ = ["LEVELS", "configure_logging", "log_event"]

LEVELS: Final = ("debug", "info", "warning", "error")
_FIELDS: Final = "trionet_fields"


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\t'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"event={_quote(record.getMessage())}",
        ]
        fields: dict[str, object] = getattr(record, _FIELDS, {})
        parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(level: str) -> None:
    """Send the ``trionet`` loggers to stderr at ``level`` (one of :data:`LEVELS`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger("trionet")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def log_event(logger: logging.Logger, level: int, event: str, **fields: object) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={_FIELDS: fields})
