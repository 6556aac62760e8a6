"""Host patterns: ``example.com``, ``*.example.com`` and ``any`` (§8.1, §11.1).

One matcher for TLS bypass, scoped upstream verification and the hosts a
secret may go to. Matching is ASCII case-insensitive and ignores a trailing
dot; ``*.s`` matches ``s`` itself and any name ending in ``.s`` (label
aligned), as the reference does.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trionet.tls.clienthello import canonical_sni

__all__ = ["HostPattern", "PatternKind"]


class PatternKind(enum.Enum):
    EXACT = "exact"
    WILDCARD = "wildcard"
    ANY = "any"


@dataclass(frozen=True, slots=True)
class HostPattern:
    kind: PatternKind
    #: The normalized name (exact) or suffix without ``*.`` (wildcard); "" for any.
    name: str = ""

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """``*`` or ``any`` -> any; ``*.x`` -> wildcard; else exact. ValueError if empty."""
        text = text.strip()
        if text in ("*", "any"):
            return cls(PatternKind.ANY)
        if text.startswith("*."):
            name = canonical_sni(text[2:])
            kind = PatternKind.WILDCARD
        else:
            name = canonical_sni(text)
            kind = PatternKind.EXACT
        if not name or "*" in name or any(c.isspace() for c in name) or not name.isascii():
            raise ValueError(f"{text!r} is not a host pattern (name, *.suffix or any)")
        return cls(kind, name)

    def matches(self, host: str) -> bool:
        if self.kind is PatternKind.ANY:
            return True
        host = canonical_sni(host)
        if self.kind is PatternKind.EXACT:
            return host == self.name
        return host == self.name or host.endswith("." + self.name)

    @property
    def specificity(self) -> int:
        """Longer patterns win; an exact name beats a wildcard of the same suffix (§8.6)."""
        if self.kind is PatternKind.ANY:
            return 0
        return len(self.name) + (1 if self.kind is PatternKind.EXACT else 0)

    def text(self) -> str:
        if self.kind is PatternKind.ANY:
            return "any"
        return self.name if self.kind is PatternKind.EXACT else "*." + self.name

    def __str__(self) -> str:
        return self.text()
