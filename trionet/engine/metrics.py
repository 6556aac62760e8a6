"""Byte and event counters, and the handle embedders read them through."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

__all__ = ["EngineCounters", "MetricsHandle"]


class EngineCounters:
    """Mutable counters owned by one engine. Only the engine writes them."""

    __slots__ = (
        "connections_opened",
        "connections_refused",
        "connections_reset",
        "dropped",
        "held_bytes",
        "held_frames",
        "rx_bytes",
        "rx_frames",
        "tx_bytes",
        "tx_frames",
        "udp_flows_evicted",
        "udp_flows_opened",
    )

    def __init__(self) -> None:
        #: guest -> engine Ethernet bytes at the backend boundary
        self.tx_bytes = 0
        self.tx_frames = 0
        #: engine -> guest Ethernet bytes at the backend boundary
        self.rx_bytes = 0
        self.rx_frames = 0
        self.connections_opened = 0
        self.connections_refused = 0
        self.connections_reset = 0
        self.udp_flows_opened = 0
        self.udp_flows_evicted = 0
        #: frames the engine itself dropped, by reason (the stack counts its own)
        self.dropped: Counter[str] = Counter()
        #: bytes and frames a rate limit held back, by direction ("egress", "ingress")
        self.held_bytes: Counter[str] = Counter()
        self.held_frames: Counter[str] = Counter()


class MetricsHandle:
    """Read-only view for embedders; cheap to copy and to call."""

    def __init__(
        self,
        counters: EngineCounters,
        stack_drops: Callable[[], Mapping[str, int]],
        host_sockets: Callable[[], int],
        audit: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self._counters = counters
        #: audit records by verdict, and those a slow reader lost
        self._audit = audit
        self._stack_drops = stack_drops
        #: host TCP sockets held right now (read from the relay, not kept twice)
        self._host_sockets = host_sockets

    def tx_bytes(self) -> int:
        """Ethernet bytes the guest sent (frames accepted at the backend)."""
        return self._counters.tx_bytes

    def rx_bytes(self) -> int:
        """Ethernet bytes delivered towards the guest."""
        return self._counters.rx_bytes

    def snapshot(self) -> dict[str, object]:
        """All counters at once, as plain data (for logs and dashboards)."""
        c = self._counters
        dropped: Counter[str] = Counter(c.dropped)
        dropped.update(self._stack_drops())
        return {
            "tx_bytes": c.tx_bytes,
            "rx_bytes": c.rx_bytes,
            "tx_frames": c.tx_frames,
            "rx_frames": c.rx_frames,
            "dropped": dict(sorted(dropped.items())),
            "connections": {
                "opened": c.connections_opened,
                "refused": c.connections_refused,
                "reset": c.connections_reset,
                "host_sockets": self._host_sockets(),
            },
            "udp_flows": {"opened": c.udp_flows_opened, "evicted": c.udp_flows_evicted},
            "audit": dict(self._audit()),
            "rate_limited": {
                "held_bytes": dict(sorted(c.held_bytes.items())),
                "held_frames": dict(sorted(c.held_frames.items())),
            },
        }
