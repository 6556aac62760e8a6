"""Per-connection secret handling: who may get what, and the violation scan (§11.3).

A :class:`SubstitutionPlan` is built once per connection from a snapshot of
the secrets config, the host the connection is for (the SNI) and whether the
sandbox's DNS bound the dialled address to that host. Protocol layers
(:mod:`trionet.http.h1`, :mod:`trionet.http.h2`) then ask it to replace
placeholders in the places a secret's scopes allow, and to scan everything
for placeholders of secrets that may not go to this host.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote_to_bytes

from trionet.secrets.config import (
    Injection,
    SecretEntry,
    SecretsConfig,
    ViolationAction,
    ViolationKind,
)
from trionet.tls.patterns import HostPattern, PatternKind

__all__ = [
    "Forbidden",
    "SecretViolationError",
    "Substitution",
    "SubstitutionPlan",
    "ViolationScanner",
    "build_plan",
    "metadata_plan",
]


class SecretViolationError(Exception):
    """A placeholder was headed to a host its secret may not reach.

    The message names the secret (its env var) and the host, never the value.
    """

    def __init__(self, secret: str, host: str | None, action: ViolationAction, location: str):
        self.secret = secret
        self.host = host
        self.action = action
        self.location = location
        super().__init__(
            f"secret {secret} sent to {host or 'an unnamed host'} "
            f"(in the {location}): {action.kind.value}"
        )


@dataclass(frozen=True, slots=True)
class Substitution:
    """An eligible secret: its placeholder becomes the value where ``injection`` allows."""

    name: str
    placeholder: bytes
    value: bytes
    injection: Injection

    def __repr__(self) -> str:
        return f"Substitution(name={self.name!r}, placeholder={self.placeholder!r})"


@dataclass(frozen=True, slots=True)
class Forbidden:
    name: str
    placeholder: bytes
    action: ViolationAction


def _allowed(
    pattern: HostPattern,
    host: str | None,
    entry: SecretEntry,
    identity: Callable[[HostPattern], bool],
) -> bool:
    if pattern.kind is PatternKind.ANY:
        return True
    if host is None or not pattern.matches(host):
        return False
    return not entry.require_tls_identity or identity(pattern)


def build_plan(
    config: SecretsConfig,
    host: str | None,
    *,
    tls_intercepted: bool,
    identity: Callable[[HostPattern], bool],
) -> SubstitutionPlan:
    """Sort each secret into substituted, left alone, or forbidden for this connection.

    ``identity(pattern)``: does the pin set bind the dialled address to a name
    matching ``pattern`` (the connection really goes where the SNI says)?
    """
    subs: list[Substitution] = []
    forbidden: list[Forbidden] = []
    for entry in config.secrets:
        if any(_allowed(p, host, entry, identity) for p in entry.allowed_hosts):
            if tls_intercepted or not entry.require_tls_identity:
                subs.append(
                    Substitution(
                        entry.env_var,
                        entry.placeholder.encode(),
                        entry.value.reveal().encode(),
                        entry.injection,
                    )
                )
            continue  # eligible, or eligible-but-plain-text: forwarded unchanged
        action = config.action_for(entry)
        if action.kind is ViolationKind.PASSTHROUGH and host is not None:
            if not any(p.matches(host) for p in action.passthrough):
                action = config.on_violation
            if action.kind is ViolationKind.PASSTHROUGH:
                if any(p.matches(host) for p in action.passthrough):
                    continue
                action = ViolationAction(ViolationKind.BLOCK_AND_LOG)
        elif action.kind is ViolationKind.PASSTHROUGH:
            action = ViolationAction(ViolationKind.BLOCK_AND_LOG)
        forbidden.append(Forbidden(entry.env_var, entry.placeholder.encode(), action))
    eligible = {s.placeholder for s in subs}
    return SubstitutionPlan(
        host, tuple(subs), tuple(f for f in forbidden if f.placeholder not in eligible)
    )


def metadata_plan(config: SecretsConfig, host: str | None) -> SubstitutionPlan:
    """For untrusted metadata (a CONNECT request to a proxy): nothing is substituted, and
    every placeholder is a violation unless a passthrough action lets it reach ``host``."""
    forbidden = []
    for entry in config.secrets:
        action = config.action_for(entry)
        if action.kind is ViolationKind.PASSTHROUGH:
            if host is not None and any(p.matches(host) for p in action.passthrough):
                continue
            action = ViolationAction(ViolationKind.BLOCK_AND_LOG)
        forbidden.append(Forbidden(entry.env_var, entry.placeholder.encode(), action))
    return SubstitutionPlan(host, (), tuple(forbidden))


_JSON_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})")


def _json_unescape(data: bytes) -> bytes:
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)).encode("utf-8", "replace"), data)


def decoded_forms(data: bytes) -> tuple[bytes, ...]:
    """The forms a placeholder may hide in: raw, percent-encoded, JSON ``\\u`` escapes."""
    forms = [data]
    if b"%" in data:
        forms.append(unquote_to_bytes(data))
    if b"\\u" in data:
        forms.append(_json_unescape(data))
    return tuple(forms)


def basic_credentials(value: bytes) -> bytes | None:
    """The decoded ``user:password`` of an ``Authorization: Basic`` value, or None."""
    scheme, _, rest = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        return base64.b64decode(rest.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SubstitutionPlan:
    host: str | None
    substitutions: tuple[Substitution, ...] = ()
    forbidden: tuple[Forbidden, ...] = ()

    @property
    def window(self) -> int:
        """Tail kept between reads so a split or encoded placeholder is still seen."""
        longest = max((len(f.placeholder) for f in self.forbidden), default=0)
        return max(0, 6 * longest - 1)

    @property
    def wants_body(self) -> bool:
        return any(s.injection.body for s in self.substitutions)

    def without_substitutions(self) -> SubstitutionPlan:
        """For a request whose response echoes it (TRACE, RFC 9110 §9.3.8): nothing is
        substituted, and forbidden placeholders are still violations."""
        return replace(self, substitutions=())

    def check(self, data: bytes, location: str) -> None:
        """Raise :class:`SecretViolationError` (strictest action) for a forbidden placeholder."""
        if not self.forbidden or not data:
            return
        worst: Forbidden | None = None
        for form in decoded_forms(data):
            for f in self.forbidden:
                if f.placeholder in form and (
                    worst is None or f.action.severity > worst.action.severity
                ):
                    worst = f
        if worst is not None:
            raise SecretViolationError(worst.name, self.host, worst.action, location)

    def header_value(self, name: bytes, value: bytes) -> bytes:
        """Check and substitute one header value (headers and basic_auth scopes)."""
        self.check(value, "header")
        credentials = (
            basic_credentials(value)
            if name.lower() in (b"authorization", b"proxy-authorization")
            else None
        )
        if credentials is not None:
            self.check(credentials, "authorization_basic")
            replaced = self._replace(credentials, lambda inj: inj.basic_auth)
            if replaced is not credentials:
                return b"Basic " + base64.b64encode(replaced)
        return self._replace(value, lambda inj: inj.headers)

    def target(self, target: bytes) -> bytes:
        """Check the request target and substitute in its query (query_params scope)."""
        self.check(target, "query" if b"?" in target else "path")
        path, sep, query = target.partition(b"?")
        if not sep:
            return target
        out = query
        for s in self.substitutions:
            if s.injection.query_params:
                encoded = quote(s.value, safe="").encode()
                out = out.replace(s.placeholder, encoded)
                out = out.replace(quote(s.placeholder, safe="").encode(), encoded)
        return target if out == query else path + b"?" + out

    def body(self, body: bytes) -> bytes:
        return self._replace(body, lambda inj: inj.body)

    def eligible_in(self, data: bytes) -> bool:
        return any(s.placeholder in data for s in self.substitutions)

    def _replace(self, data: bytes, scope: Callable[[Injection], bool]) -> bytes:
        out = data
        for s in self.substitutions:
            if scope(s.injection) and s.placeholder in out:
                out = out.replace(s.placeholder, s.value)
        return out


class ViolationScanner:
    """Scans a byte stream read by read, keeping a tail so split placeholders are caught."""

    def __init__(self, plan: SubstitutionPlan) -> None:
        self._plan = plan
        self._window = plan.window
        self._tail = b""

    def feed(self, data: bytes | bytearray | memoryview, location: str) -> None:
        if not self._window:
            return
        joined = self._tail + bytes(data)
        self._plan.check(joined, location)
        self._tail = joined[-self._window :]

    def reset(self) -> None:
        self._tail = b""
