"""Read secrets' values from their host-side sources when the network starts (§11.1).

A secret may name ``source = "env:NAME"`` or ``"file:/path"`` instead of
carrying its value, so config files need not hold credentials. The value is
read here, once, by the process that runs the engine; errors name the field
and the source, never any value.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from trionet.config_fields import ConfigError
from trionet.secrets.config import SecretsConfig, SecretValue

__all__ = ["resolve_sources"]


def resolve_sources(config: SecretsConfig) -> SecretsConfig:
    """``config`` with every sourced secret's value read (a value given inline wins)."""
    secrets = []
    for i, entry in enumerate(config.secrets):
        if entry.source is None or entry.value.reveal():
            secrets.append(entry)
            continue
        path = f"secrets.secrets[{i}].source"
        kind, _, ref = entry.source.partition(":")
        if kind == "env":
            value = os.environ.get(ref)
            if value is None:
                raise ConfigError(path, f"the environment variable {ref} is not set")
        else:
            try:
                value = Path(ref).read_text().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ConfigError(path, f"cannot read {ref}: {reason}") from None
        secrets.append(dataclasses.replace(entry, value=SecretValue(value)))
    return dataclasses.replace(config, secrets=tuple(secrets))
