"""``--audit FILE``: policy decisions as JSON lines, one per record.

The writer is an audit callback, so it runs inside the engine's frame
processing. It only appends a line to a buffered file (line buffered, so
``tail -f`` sees each decision as it happens): a regular file or stderr
takes that without waiting on anything the guest controls.
"""

from __future__ import annotations

import sys
from typing import TextIO

from trionet.policy.audit import AuditRecord

__all__ = ["AuditWriter"]


class AuditWriter:
    def __init__(self, path: str) -> None:
        """Open ``path`` for appending (``-`` is stderr); raises OSError."""
        self.path = path
        self._file: TextIO = (
            sys.stderr if path == "-" else open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        )

    def __call__(self, record: AuditRecord) -> None:
        self._file.write(record.to_json() + "\n")

    def close(self) -> None:
        if self._file is not sys.stderr:
            self._file.close()
        else:
            self._file.flush()
