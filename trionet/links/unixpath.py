"""Unix socket paths: replacing a stale socket file, never anything else."""

from __future__ import annotations

import os
import stat

__all__ = ["remove_stale_socket"]


def remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket (left by an earlier run); refuse any other file.

    Binding fails on an existing path, and a socket file outlives its
    process; but a regular file at that path is the user's, so it stays.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(f"{path} exists and is not a socket; not replacing it")
    os.unlink(path)
