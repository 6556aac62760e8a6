"""One structured record per policy decision (sans-IO data; the engine's AuditLog ships them).

Every decision trionet takes about a flow, a DNS query, a published port or
a TLS session becomes an :class:`AuditRecord`: what was asked, what was
decided and the rule that decided it (its index and text, or ``"default"``).
Records hold addresses, ports and names only -- never payload, headers or
secrets -- so they are safe to write to a log file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from trionet.policy.evaluate import Decision

__all__ = ["AuditRecord"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    #: wall-clock seconds since the epoch (the shell passes it in)
    time: float
    #: "flow" | "dns" | "tls" | "ingress" | ...
    kind: str
    #: "tcp" | "udp" | "icmpv4" | "icmpv6"
    protocol: str
    source: str
    source_port: int | None
    destination: str
    port: int | None
    #: the name involved: from the pin set, the SNI or the DNS query
    name: str | None
    #: "allow" | "deny" (a deferred decision is recorded once it is final)
    verdict: str
    rule_index: int | None
    #: the deciding rule's text, or "default"
    rule: str
    #: why, when the rule alone does not say: "rebind", "sni-mismatch", "platform", ...
    reason: str | None = None

    @classmethod
    def from_decision(
        cls,
        decision: Decision,
        *,
        time: float,
        kind: str,
        protocol: str,
        source: str,
        source_port: int | None,
        destination: str,
        port: int | None,
        name: str | None = None,
        reason: str | None = None,
    ) -> AuditRecord:
        """The record of ``decision``; a platform-layer decision says so in ``reason``."""
        if reason is None and decision.layer != "tenant":
            reason = decision.layer
        return cls(
            time=time,
            kind=kind,
            protocol=protocol,
            source=source,
            source_port=source_port,
            destination=destination,
            port=port,
            name=name if name is not None else decision.matched_name,
            verdict=decision.verdict.value,
            rule_index=decision.rule_index,
            rule=decision.rule_text,
            reason=reason,
        )

    def to_json(self) -> str:
        """One line of JSON (no newline), keys in field order."""
        return json.dumps(asdict(self), separators=(",", ":"))
