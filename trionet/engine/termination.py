"""The termination handle: how the engine (or its owner) ends a sandbox.

A policy violation serious enough to stop the sandbox (for example a secret
sent to a host it was not meant for) is decided deep inside a service task;
the consequence, stopping the VM, belongs to the embedder. The handle joins
the two: the embedder installs a hook, and ``terminate(reason)`` runs that
hook once and cancels the engine's cancel scope, which ends every task.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["TerminationHandle"]


class TerminationHandle:
    """Cheap to pass around; all copies act on the same engine."""

    def __init__(self, cancel_scope: trio.CancelScope) -> None:
        self._cancel_scope = cancel_scope
        self._hook: Callable[[str], object] | None = None
        self._reason: str | None = None

    def set_hook(self, hook: Callable[[str], object] | None) -> None:
        """Install (or replace, or with None remove) what runs on termination."""
        self._hook = hook

    @property
    def reason(self) -> str | None:
        """Why the engine was terminated, or None while it runs."""
        return self._reason

    @property
    def terminated(self) -> bool:
        return self._reason is not None

    def terminate(self, reason: str) -> None:
        """Run the hook once, then cancel every engine task. Idempotent.

        The first reason wins: later calls do nothing, so a cascade of
        failures caused by the termination cannot overwrite its cause.
        """
        if self._reason is not None:
            return
        self._reason = reason
        hook = self._hook
        try:
            if hook is not None:
                hook(reason)
        finally:
            self._cancel_scope.cancel()
