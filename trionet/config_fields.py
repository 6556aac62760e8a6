"""The building blocks every configuration section is read with.

Each section of :class:`trionet.NetworkConfig` (interface, policy, dns, ports,
tls, ...) lives beside the code that uses it and reads its dict form with a
:class:`ConfigReader`. Sharing these pieces keeps one behaviour everywhere:
type errors, unknown keys and bad values all raise :class:`ConfigError`
whose message starts with the dotted field path (``policy.rules[2].action``),
so a user editing a large file is pointed straight at the line to fix.

This module imports nothing of trionet, so any section module may use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "ConfigReader",
    "check_hostname",
    "parse_field",
]


class ConfigError(ValueError):
    """A configuration value broke a rule; the message names the field path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def parse_field(path: str, parser: Callable[[str], T], text: str) -> T:
    """``parser(text)``, with a ValueError turned into a ConfigError at ``path``."""
    try:
        value = parser(text)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from exc
    return value


_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    str: "a string",
    Mapping: "a table",
    Sequence: "a list",
    list: "a list",
}


class ConfigReader:
    """Takes known keys out of a mapping, type-checked, then rejects leftovers.

    ``prefix`` is the path of the mapping itself including its trailing dot
    (``"interface."``), or ``""`` at the top level.
    """

    def __init__(self, data: Mapping[str, Any], prefix: str) -> None:
        self._data = dict(data)
        self.prefix = prefix

    def path(self, key: str) -> str:
        return self.prefix + key

    def take(self, key: str, kind: Any, default: Any) -> Any:
        if key not in self._data:
            return default
        value = self._data.pop(key)
        # bool is an int subclass; a config saying `mtu = true` is a mistake.
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        # A string is a Sequence too, but never what a list-valued key means.
        if kind in (Sequence, list) and isinstance(value, str | bytes):
            wrong = True
        if wrong:
            raise ConfigError(
                self.prefix + key,
                f"{value!r} is not {_TYPE_NAMES.get(kind, getattr(kind, '__name__', kind))}",
            )
        return value

    def finish(self) -> None:
        for key in self._data:
            raise ConfigError(self.prefix + str(key), "unknown key")


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_hostname(path: str, name: str) -> None:
    """Reject anything but a lowercase DNS name (the form trionet stores names in)."""
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ConfigError(
            path,
            f"{name!r} is not a lowercase DNS name (labels of a-z, 0-9 and '-', 1..63 long)",
        )
