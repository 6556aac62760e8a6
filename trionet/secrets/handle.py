"""The live secrets of a running network: rotate, remove, re-scope (§11.1).

Each intercepted connection takes a :meth:`SecretsHandle.snapshot` when it
starts and keeps it: a rotation applies to new connections, never halfway
through a request.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence

from trionet.secrets.config import SecretEntry, SecretsConfig, SecretValue
from trionet.tls.patterns import HostPattern

__all__ = ["SecretsHandle"]


class SecretsHandle:
    """Cheap to pass around; all copies act on the same network's secrets."""

    def __init__(self, config: SecretsConfig) -> None:
        self._config = config

    def __repr__(self) -> str:
        return f"SecretsHandle(names={self.names()!r})"

    def snapshot(self) -> SecretsConfig:
        return self._config

    def names(self) -> list[str]:
        return [s.env_var for s in self._config.secrets]

    def _replace(self, name: str, entry: SecretEntry | None) -> None:
        secrets = []
        found = False
        for s in self._config.secrets:
            if s.env_var == name:
                found = True
                if entry is not None:
                    secrets.append(entry)
            else:
                secrets.append(s)
        if not found:
            raise KeyError(f"no secret named {name!r}")
        self._config = dataclasses.replace(self._config, secrets=tuple(secrets))

    def _entry(self, name: str) -> SecretEntry:
        for s in self._config.secrets:
            if s.env_var == name:
                return s
        raise KeyError(f"no secret named {name!r}")

    def rotate_value(self, name: str, value: str | SecretValue) -> None:
        """New connections substitute ``value`` for this secret's placeholder."""
        secret = value if isinstance(value, SecretValue) else SecretValue(value)
        self._replace(name, dataclasses.replace(self._entry(name), value=secret))

    def remove(self, name: str) -> None:
        """Forget a secret (idempotent): its placeholder is then an ordinary string."""
        with contextlib.suppress(KeyError):
            self._replace(name, None)

    def set_allowed_hosts(self, name: str, hosts: Sequence[str]) -> None:
        """``"*"`` is any host, ``"*.x"`` a wildcard, anything else an exact name."""
        patterns = tuple(HostPattern.parse(h) for h in hosts)
        if not patterns:
            raise ValueError("a secret needs at least one allowed host")
        self._replace(name, dataclasses.replace(self._entry(name), allowed_hosts=patterns))
