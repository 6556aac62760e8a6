"""Build script beside pyproject.toml: pure Python unless ``TRIONET_COMPILE=1``.

Everything about the package lives in pyproject.toml; this file only adds the
optional compiled build (issue 17). ``pip install .`` and ``pip install -e .``
build a pure-Python package and need no compiler. With ``TRIONET_COMPILE=1``
the sans-IO layers in :data:`COMPILED` are compiled with mypyc (as black and
mypy ship themselves); the ``.py`` sources are installed beside the
extensions, so a compiled install is the pure one plus a faster copy of the
same code. The in-tree backend (build_support/trionet_build_backend.py) adds
mypy to the build requirements only then.

Python imports an extension module in preference to the ``.py`` beside it, so
an extension built in place and a source edited afterwards would silently run
the old code. Every compiled build therefore writes ``trionet/_build_info.py``:
the sha256 of each source it compiled. ``import trionet`` compares the sources
present with it and refuses to import stale extensions (trionet/_compiled.py).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent

#: The one list of what the compiled build compiles: packages, every module in them.
#:
#: trionet/wire compiles and passes its tests compiled, but is left out because
#: it runs slower so: a dataclass compiled by mypyc keeps the ``__init__`` that
#: dataclasses generates, which for a frozen class stores each field through
#: ``object.__setattr__``, and wire/_construct.py's fast path (filling an
#: unfrozen twin, then swapping ``__class__``) cannot apply to a native class.
#: Every header a parser builds costs 3-4x more: measured pure -> compiled,
#: ``make_tcp_header`` 0.29 -> 1.0 us, ``parse_tcp`` 0.68 -> 1.33 us,
#: ``parse_ipv4`` 1.28 -> 2.22 us. Kept as Python classes under mypyc
#: (``@mypyc_attr(native_class=False)`` on the six per-packet header classes,
#: so the fast path applies again), compiled wire measured no faster than pure
#: (0.30, 0.70, 1.32 us): those functions' time is struct, the checksum and
#: object construction, all C already. So compiling wire buys nothing there.
COMPILED = ("trionet/tcp", "trionet/stack")

#: Written next to the compiled modules by every compiled build; read by trionet/_compiled.py.
RECORD = "_build_info.py"


def _compile_requested() -> bool:
    value = os.environ.get("TRIONET_COMPILE", "")
    if value not in ("", "0", "1"):
        sys.exit(f"TRIONET_COMPILE must be 1 (compile) or 0/unset (pure), not {value!r}")
    return value == "1"


def _sources() -> list[Path]:
    return sorted(path for package in COMPILED for path in (ROOT / package).glob("*.py"))


def _record_text(sources: list[Path]) -> str:
    """The module ``trionet._build_info``: what was compiled, from which source bytes."""
    lines = [
        '"""Written by setup.py for a compiled build: the sources mypyc compiled.',
        "",
        "trionet/_compiled.py refuses to import when a source beside its extension",
        'module no longer has the sha256 recorded here. Do not edit; rebuild."""',
        "",
        "SOURCE_SHA256 = {",
    ]
    for path in sources:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"    {path.relative_to(ROOT / 'trionet').as_posix()!r}: {digest!r},")
    lines.append("}")
    return "\n".join(lines) + "\n"


class BuildExtWithRecord(build_ext):
    """build_ext that also writes the build record where the extensions go."""

    record = ""

    def run(self) -> None:
        super().run()
        # Where trionet's extensions land: the checkout for --inplace and editable
        # installs, the build directory a wheel is made from otherwise.
        package_dir = Path(self.get_ext_fullpath("trionet._build_info")).parent
        package_dir.mkdir(parents=True, exist_ok=True)
        (package_dir / RECORD).write_text(self.record)


def _compiled_options() -> dict[str, object]:
    try:
        from mypyc.build import mypycify  # a build requirement only when compiling
    except ImportError:
        sys.exit("TRIONET_COMPILE=1 compiles with mypyc, which comes with mypy: install mypy")

    sources = _sources()
    # Hashed before mypyc reads them: an edit during the build makes the record
    # disagree with the checkout, so the result is refused rather than trusted.
    BuildExtWithRecord.record = _record_text(sources)
    extensions = mypycify(
        [
            # Not pyproject's [tool.mypy]: strictness is the lint session's job, and
            # an isolated build environment holds none of the packages the rest of
            # trionet imports (mypy reads trionet/__init__.py, the parent package).
            # The compiled layers import only the standard library and each other.
            *("--config-file", os.devnull, "--ignore-missing-imports"),
            *(str(path.relative_to(ROOT)) for path in sources),
        ],
        opt_level="3",
        # Names the group's shared library trionet__mypyc.*.so, rather than a
        # hash. It must sit at the top level (beside the trionet directory):
        # mypyc derives compiled packages' __path__ from where it is.
        group_name="trionet",
    )
    return {"ext_modules": extensions, "cmdclass": {"build_ext": BuildExtWithRecord}}


setup(**(_compiled_options() if _compile_requested() else {}))
