"""The engine's audit log: every policy decision, to whoever listens, never blocking.

The engine emits an :class:`~trionet.policy.audit.AuditRecord` for each
decision from inside its flush (a SYN, a UDP flow, a ping, a DNS query, a
published-port connection). Emitting must never wait and never grow memory
without bound, whatever a listener does:

* callbacks run synchronously; one that raises is logged and the engine
  carries on (an embedder's bug must not take the network down);
* each async iterator (:meth:`AuditLog.records`) reads from its own bounded
  buffer; when a reader falls behind, the oldest records are dropped and
  counted, so a slow consumer costs records, not memory or latency.

Counts by verdict are kept for ``metrics_handle().snapshot()``.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable

import trio

from trionet.policy.audit import AuditRecord

__all__ = ["DEFAULT_BUFFER", "AuditLog"]

#: Records an iterator may fall behind by before the oldest are dropped.
DEFAULT_BUFFER = 4096
_log = logging.getLogger("trionet.audit")

AuditCallback = Callable[[AuditRecord], None]


class _Reader:
    __slots__ = ("buffer", "event")

    def __init__(self, size: int) -> None:
        self.buffer: deque[AuditRecord] = deque(maxlen=size)
        self.event = trio.Event()


class AuditLog:
    def __init__(self, buffer_size: int = DEFAULT_BUFFER) -> None:
        self.buffer_size = buffer_size
        #: records emitted, by verdict ("allow", "deny")
        self.counts: Counter[str] = Counter()
        #: records a slow iterator lost (oldest first)
        self.dropped = 0
        #: callbacks that raised
        self.callback_errors = 0
        self._callbacks: list[AuditCallback] = []
        self._readers: list[_Reader] = []

    def emit(self, record: AuditRecord) -> None:
        """Count ``record`` and hand it to every listener; returns at once."""
        self.counts[record.verdict] += 1
        for callback in tuple(self._callbacks):
            try:
                callback(record)
            except Exception:
                self.callback_errors += 1
                _log.exception("an audit callback raised; the record was not lost elsewhere")
        for reader in self._readers:
            if len(reader.buffer) == reader.buffer.maxlen:
                self.dropped += 1
            reader.buffer.append(record)
            reader.event.set()

    def on_record(self, callback: AuditCallback) -> Callable[[], None]:
        """Call ``callback(record)`` for each record; returns a function that unsubscribes."""
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unsubscribe

    async def records(self) -> AsyncIterator[AuditRecord]:
        """Every record emitted from now on, until the iterator is closed or cancelled."""
        reader = _Reader(self.buffer_size)
        self._readers.append(reader)
        try:
            while True:
                while reader.buffer:
                    yield reader.buffer.popleft()
                reader.event = trio.Event()
                await reader.event.wait()
        finally:
            self._readers.remove(reader)

    def snapshot(self) -> dict[str, int]:
        return {
            "allow": self.counts["allow"],
            "deny": self.counts["deny"],
            "dropped": self.dropped,
            "callback_errors": self.callback_errors,
        }
