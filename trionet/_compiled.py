"""The stale-extension guard of the optional compiled build (setup.py, issue 17).

Python imports ``connection.cpython-311-x86_64-linux-gnu.so`` in preference
to the ``connection.py`` beside it. After a build in place (``setup.py
build_ext --inplace``, an editable compiled install) an edited, checked-out
or merged source would therefore be silently ignored: the engine would run
the code of the last build. Modification times cannot tell (a checkout sets
them, a copy keeps them), so every compiled build records the sha256 of each
source it compiled in ``trionet/_build_info.py``, and ``import trionet``
checks, before any compiled module loads, that every extension module with a
source beside it was built from exactly that source.

A pure checkout has no extension modules: the check is one walk over the
package's directories, and hashes nothing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

__all__ = ["StaleExtensionError", "check_extensions", "shadowed_sources"]

#: The module a compiled build writes beside the package's ``__init__``.
RECORD_MODULE = "_build_info"


class StaleExtensionError(ImportError):
    """A compiled module would shadow a source it was not built from."""


def shadowed_sources(package_dir: Path) -> list[str]:
    """Sources (relative to ``package_dir``, ``/``-separated) an extension module shadows."""
    found = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = [name for name in dirnames if name != "__pycache__"]
        names = set(filenames)
        relative = Path(dirpath).relative_to(package_dir)
        for name in filenames:
            suffix = next((s for s in EXTENSION_SUFFIXES if name.endswith(s)), None)
            if suffix is not None and name[: -len(suffix)] + ".py" in names:
                found.append((relative / (name[: -len(suffix)] + ".py")).as_posix())
    return sorted(found)


def _recorded(package: str) -> Mapping[str, str] | None:
    try:
        record = importlib.import_module(f"{package}.{RECORD_MODULE}")
    except ModuleNotFoundError:
        return None
    hashes: Mapping[str, str] = record.SOURCE_SHA256
    return hashes


def check_extensions(package_dir: Path, package: str = "trionet") -> None:
    """Raise :class:`StaleExtensionError` unless every shadowed source is the one compiled."""
    shadowed = shadowed_sources(package_dir)
    if not shadowed:
        return
    import hashlib  # only a compiled install pays for it

    fix = (
        f"rebuild the compiled modules (TRIONET_COMPILE=1 python setup.py build_ext --inplace, "
        f"or reinstall with TRIONET_COMPILE=1), or delete the extension modules under "
        f"{package_dir} to run the pure-Python source"
    )
    recorded = _recorded(package)
    if recorded is None:
        raise StaleExtensionError(
            f"{package}: extension modules shadow {', '.join(shadowed)} but there is no "
            f"{package}.{RECORD_MODULE} saying which sources they were built from: {fix}"
        )
    stale = [
        source
        for source in shadowed
        if recorded.get(source) != hashlib.sha256((package_dir / source).read_bytes()).hexdigest()
    ]
    if stale:
        raise StaleExtensionError(
            f"{package}: the compiled modules for {', '.join(stale)} were built from "
            f"other source than the .py beside them (edited since the build?): {fix}"
        )


# Runs when trionet/__init__.py imports this module, first, before anything it
# imports could load a compiled module.
check_extensions(Path(__file__).parent)
