"""The ``secrets`` configuration section (§11.1, §19) and the value wrapper."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trionet.config_fields import ConfigError, ConfigReader, parse_field
from trionet.tls.patterns import HostPattern, PatternKind

__all__ = [
    "MAX_PLACEHOLDER",
    "SOURCE_KINDS",
    "Injection",
    "SecretEntry",
    "SecretValue",
    "SecretsConfig",
    "ViolationAction",
    "ViolationKind",
]

MAX_PLACEHOLDER = 1024
#: Where a secret's value may come from instead of the config: the host's
#: environment (``env:NAME``) or a file (``file:/path``), read when the
#: network starts, so the config file itself need not hold the value.
SOURCE_KINDS = ("env", "file")


class SecretValue:
    """A real secret. Its ``repr``/``str`` never show it; ``reveal()`` is the one way out.

    Only the substitution layers call :meth:`reveal`, when they write the
    bytes to the upstream server.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretValue(<redacted>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a SecretValue is not picklable")


class ViolationKind(enum.Enum):
    BLOCK = "block"
    BLOCK_AND_LOG = "block-and-log"
    BLOCK_AND_TERMINATE = "block-and-terminate"
    PASSTHROUGH = "passthrough"


_LEGACY = {
    "Block": "block",
    "BlockAndLog": "block-and-log",
    "BlockAndTerminate": "block-and-terminate",
    "block_and_log": "block-and-log",
    "block_and_terminate": "block-and-terminate",
}


@dataclass(frozen=True, slots=True)
class ViolationAction:
    """What happens to a placeholder headed where its secret may not go."""

    kind: ViolationKind
    #: For passthrough: hosts the placeholder may reach unchanged.
    passthrough: tuple[HostPattern, ...] = ()

    @property
    def severity(self) -> int:
        """Strictest wins when several secrets are hit (terminate > log > block)."""
        return {
            ViolationKind.BLOCK: 1,
            ViolationKind.BLOCK_AND_LOG: 2,
            ViolationKind.BLOCK_AND_TERMINATE: 3,
        }.get(self.kind, 0)

    @classmethod
    def from_value(cls, value: Any, path: str) -> ViolationAction:
        if isinstance(value, str):
            text = _LEGACY.get(value, value)
            try:
                kind = ViolationKind(text)
            except ValueError:
                raise ConfigError(
                    path,
                    f"{value!r} is not block, block-and-log, block-and-terminate "
                    "or {passthrough = [...]}",
                ) from None
            if kind is ViolationKind.PASSTHROUGH:
                raise ConfigError(path, "passthrough needs a host list: {passthrough = [...]}")
            return cls(kind)
        if isinstance(value, Mapping) and len(value) == 1:
            ((key, hosts),) = value.items()
            if key in ("passthrough", "Passthrough") and isinstance(hosts, Sequence):
                if isinstance(hosts, str):
                    raise ConfigError(path + ".passthrough", "is not a list")
                return cls(
                    ViolationKind.PASSTHROUGH,
                    tuple(
                        _host_pattern(f"{path}.passthrough[{i}]", h) for i, h in enumerate(hosts)
                    ),
                )
        raise ConfigError(path, f"{value!r} is not a violation action")

    def to_value(self) -> Any:
        if self.kind is ViolationKind.PASSTHROUGH:
            return {"passthrough": [_pattern_value(p) for p in self.passthrough]}
        return self.kind.value


@dataclass(frozen=True, slots=True)
class Injection:
    """Where a placeholder may be replaced."""

    headers: bool = True
    basic_auth: bool = True
    query_params: bool = False
    body: bool = False


@dataclass(frozen=True, slots=True)
class SecretEntry:
    env_var: str
    placeholder: str
    allowed_hosts: tuple[HostPattern, ...]
    value: SecretValue = field(default_factory=lambda: SecretValue(""))
    injection: Injection = field(default_factory=Injection)
    on_violation: ViolationAction | None = None
    require_tls_identity: bool = True
    source: str | None = None

    def __post_init__(self) -> None:
        _check_entry(self, _SOME_ENTRY)

    @property
    def host_scoped(self) -> bool:
        return any(p.kind is not PatternKind.ANY for p in self.allowed_hosts)


#: the path an entry's own checks give; the config reader puts the index in
_SOME_ENTRY = "secrets.secrets[?]."


def _check_entry(entry: SecretEntry, prefix: str) -> None:
    if not entry.env_var or "=" in entry.env_var or "\0" in entry.env_var:
        raise ConfigError(prefix + "env_var", "must be non-empty, without '=' or NUL")
    p = entry.placeholder
    if not p or len(p.encode()) > MAX_PLACEHOLDER or any(c in p for c in "\0\r\n"):
        raise ConfigError(
            prefix + "placeholder", f"must be 1..{MAX_PLACEHOLDER} bytes without NUL, CR or LF"
        )
    if not entry.allowed_hosts:
        raise ConfigError(prefix + "allowed_hosts", "needs at least one host pattern")
    if entry.source is not None:
        kind, _, ref = entry.source.partition(":")
        if kind not in SOURCE_KINDS or not ref:
            raise ConfigError(
                prefix + "source", "must be env:VARIABLE or file:PATH (read on the host)"
            )


@dataclass(frozen=True, slots=True)
class SecretsConfig:
    secrets: tuple[SecretEntry, ...] = ()
    on_violation: ViolationAction = field(
        default_factory=lambda: ViolationAction(ViolationKind.BLOCK_AND_LOG)
    )

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, entry in enumerate(self.secrets):
            if entry.env_var in seen:
                raise ConfigError(f"secrets.secrets[{i}].env_var", f"{entry.env_var} is repeated")
            seen.add(entry.env_var)

    def env_vars(self) -> list[tuple[str, str]]:
        """``(ENV, placeholder)`` per secret: all the guest ever learns."""
        return [(s.env_var, s.placeholder) for s in self.secrets]

    def action_for(self, entry: SecretEntry) -> ViolationAction:
        return entry.on_violation or self.on_violation

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "secrets.") -> SecretsConfig:
        r = ConfigReader(data, prefix)
        entries = r.take("secrets", Sequence, [])
        on_violation = r.take("on_violation", object, "block-and-log")
        r.finish()
        return cls(
            secrets=tuple(
                _entry_from_dict(f"{prefix}secrets[{i}].", e) for i, e in enumerate(entries)
            ),
            on_violation=ViolationAction.from_value(on_violation, prefix + "on_violation"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The config form. It holds the real values: it is what a config file holds."""
        return {
            "secrets": [_entry_to_dict(e) for e in self.secrets],
            "on_violation": self.on_violation.to_value(),
        }


def _host_pattern(path: str, value: Any) -> HostPattern:
    """``"any"``, ``{"exact": h}``, ``{"wildcard": "*.h"}``, or a bare string pattern."""
    if isinstance(value, str):
        return parse_field(path, HostPattern.parse, value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, text),) = value.items()
        key = str(key).lower()
        if isinstance(text, str) and key in ("exact", "wildcard"):
            pattern = parse_field(path, HostPattern.parse, text)
            want = PatternKind.EXACT if key == "exact" else PatternKind.WILDCARD
            if pattern.kind is not want:
                raise ConfigError(path, f"{text!r} is not an {key} pattern")
            return pattern
    raise ConfigError(path, f"{value!r} is not a host pattern")


def _pattern_value(pattern: HostPattern) -> Any:
    if pattern.kind is PatternKind.ANY:
        return "any"
    return {pattern.kind.value: pattern.text()}


def _entry_from_dict(prefix: str, data: Any) -> SecretEntry:
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip("."), f"{type(data).__name__} is not a table")
    r = ConfigReader(data, prefix)
    env_var = r.take("env_var", str, None)
    # Taken as any type and checked here: the reader's own message shows the
    # value, and a number (a PIN, a numeric key) is the secret all the same.
    value = r.take("value", object, "")
    if not isinstance(value, str):
        raise ConfigError(prefix + "value", f"must be a string, not a {type(value).__name__}")
    source = r.take("source", str, None)
    placeholder = r.take("placeholder", str, None)
    hosts = r.take("allowed_hosts", Sequence, None)
    injection = r.take("injection", Mapping, {})
    on_violation = r.take("on_violation", object, None)
    require = r.take("require_tls_identity", bool, True)
    r.finish()
    if env_var is None:
        raise ConfigError(prefix + "env_var", "is required")
    if hosts is None:
        raise ConfigError(prefix + "allowed_hosts", "is required")
    ir = ConfigReader(injection, prefix + "injection.")
    inj = Injection(
        headers=ir.take("headers", bool, True),
        basic_auth=ir.take("basic_auth", bool, True),
        query_params=ir.take("query_params", bool, False),
        body=ir.take("body", bool, False),
    )
    ir.finish()
    try:
        return SecretEntry(
            env_var=env_var,
            placeholder=placeholder if placeholder is not None else f"$MSB_{env_var}",
            allowed_hosts=tuple(
                _host_pattern(f"{prefix}allowed_hosts[{i}]", h) for i, h in enumerate(hosts)
            ),
            value=SecretValue(value),
            injection=inj,
            on_violation=None
            if on_violation is None
            else ViolationAction.from_value(on_violation, prefix + "on_violation"),
            require_tls_identity=require,
            source=source,
        )
    except ConfigError as exc:
        if not exc.path.startswith(_SOME_ENTRY):
            raise
        # The entry checked itself without knowing its index: name it.
        raise ConfigError(prefix + exc.path.removeprefix(_SOME_ENTRY), exc.message) from None


def _entry_to_dict(entry: SecretEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "env_var": entry.env_var,
        "value": entry.value.reveal(),
        "placeholder": entry.placeholder,
        "allowed_hosts": [_pattern_value(p) for p in entry.allowed_hosts],
        "injection": {
            "headers": entry.injection.headers,
            "basic_auth": entry.injection.basic_auth,
            "query_params": entry.injection.query_params,
            "body": entry.injection.body,
        },
        "require_tls_identity": entry.require_tls_identity,
    }
    if entry.source is not None:
        out["source"] = entry.source
    if entry.on_violation is not None:
        out["on_violation"] = entry.on_violation.to_value()
    return out
