"""The optional mypyc build (setup.py): its stale-extension guard, its backend, and the build.

Python imports an extension module in preference to the ``.py`` beside it,
so an edited source next to an old compiled module would silently not run.
trionet/_compiled.py refuses that at ``import trionet``. The guard only looks
at files, so most of it is tested here on fake extension modules (files with
an extension module's name, which the guard must refuse before Python ever
tries to load them); the tests marked ``compiled`` do the same on the real
build and run only against it (``nox -s tests_compiled``, which builds it).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tomllib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.compiled import compiled_modules, package_dir
from trionet._compiled import StaleExtensionError, check_extensions, shadowed_sources
from trionet.wire._construct import positional_constructor

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package(
    root: Path, name: str, sources: dict[str, str], record: dict[str, str] | None
) -> Path:
    package = root / name
    for relative, text in {"__init__.py": "", **sources}.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    if record is not None:
        (package / "_build_info.py").write_text(f"SOURCE_SHA256 = {record!r}\n")
    return package


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_pure_package_is_not_checked(on_path: Path) -> None:
    package = _package(on_path, "pure_pkg", {"sub/mod.py": "x = 1\n"}, record=None)
    assert shadowed_sources(package) == []
    check_extensions(package, "pure_pkg")


def test_extensions_built_from_the_sources_present_pass(on_path: Path) -> None:
    package = _package(on_path, "fresh_pkg", {"sub/mod.py": "x = 1\n"}, record=None)
    (package / f"sub/mod{SUFFIX}").write_bytes(b"")
    (package / "_build_info.py").write_text(
        f"SOURCE_SHA256 = {{'sub/mod.py': {_sha(package / 'sub/mod.py')!r}}}\n"
    )
    assert shadowed_sources(package) == ["sub/mod.py"]
    check_extensions(package, "fresh_pkg")


def test_an_edited_source_beside_its_extension_is_refused(on_path: Path) -> None:
    package = _package(on_path, "edited_pkg", {"sub/mod.py": "x = 1\n", "b.py": ""}, None)
    record = {"sub/mod.py": _sha(package / "sub/mod.py"), "b.py": _sha(package / "b.py")}
    (package / "_build_info.py").write_text(f"SOURCE_SHA256 = {record!r}\n")
    for module in ("sub/mod", "b"):
        (package / f"{module}{SUFFIX}").write_bytes(b"")
    (package / "sub/mod.py").write_text("x = 2\n")  # same size, same second: mtimes can't tell
    with pytest.raises(StaleExtensionError, match=r"for sub/mod\.py were built") as raised:
        check_extensions(package, "edited_pkg")
    assert "b.py" not in str(raised.value)  # only the stale one is named
    assert "TRIONET_COMPILE=1" in str(raised.value)  # and how to fix it


def test_an_extension_without_a_record_is_refused(on_path: Path) -> None:
    package = _package(on_path, "unrecorded_pkg", {"mod.py": "x = 1\n"}, record=None)
    (package / f"mod{SUFFIX}").write_bytes(b"")
    with pytest.raises(StaleExtensionError, match=r"shadow mod\.py but there is no"):
        check_extensions(package, "unrecorded_pkg")


def test_a_source_the_record_does_not_list_is_refused(on_path: Path) -> None:
    package = _package(on_path, "partial_pkg", {"a.py": "", "b.py": ""}, record=None)
    (package / "_build_info.py").write_text(
        f"SOURCE_SHA256 = {{'a.py': {_sha(package / 'a.py')!r}}}\n"
    )
    (package / f"b{SUFFIX}").write_bytes(b"")
    with pytest.raises(StaleExtensionError, match=r"for b\.py"):
        check_extensions(package, "partial_pkg")


def test_an_extension_with_no_source_beside_it_shadows_nothing(on_path: Path) -> None:
    package = _package(on_path, "lib_pkg", {"mod.py": ""}, record=None)
    (package / f"helper__mypyc{SUFFIX}").write_bytes(b"")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / f"mod{SUFFIX}").write_bytes(b"")
    check_extensions(package, "lib_pkg")


def _copy_trionet(dest: Path) -> Path:
    """A copy of the package under test (compiled modules included), importable from ``dest``."""
    source = package_dir()
    shutil.copytree(source, dest / "trionet", ignore=shutil.ignore_patterns("__pycache__"))
    for library in source.parent.glob(f"trionet__mypyc{SUFFIX}"):  # the compiled group's
        shutil.copy(library, dest)
    return dest / "trionet"


def _import_in(root: Path, code: str = "import trionet") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_trionet_refuses_an_extension_built_from_other_source(tmp_path: Path) -> None:
    package = _copy_trionet(tmp_path)
    seq = package / "tcp" / "seq.py"
    (package / "_build_info.py").write_text(f"SOURCE_SHA256 = {{'tcp/seq.py': {_sha(seq)!r}}}\n")
    (package / "tcp" / f"seq{SUFFIX}").write_bytes(b"")  # not a real library: never loaded
    seq.write_text(seq.read_text() + "# edited after the build\n")
    result = _import_in(tmp_path)
    assert result.returncode != 0
    assert "StaleExtensionError" in result.stderr, result.stderr
    assert "tcp/seq.py" in result.stderr


def test_a_native_class_is_its_own_constructor() -> None:
    class Native:  # what mypyc makes of a dataclass: a C layout, marked so
        __mypyc_attrs__ = ("a",)

        def __init__(self, a: int) -> None:
            self.a = a

    assert positional_constructor(Native) is Native


def _backend() -> ModuleType:
    path = ROOT / "build_support" / "trionet_build_backend.py"
    spec = importlib.util.spec_from_file_location("trionet_build_backend", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("compile_value", [None, "0", "1"])
def test_the_backend_asks_for_mypy_only_when_compiling(
    compile_value: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = _backend()
    seen = []

    def setuptools_hook(config_settings: object) -> list[str]:
        # setuptools runs setup.py for these: mypyc is not installed yet then.
        seen.append(backend.os.environ.get("TRIONET_COMPILE"))
        return ["setuptools>=77"]

    monkeypatch.setattr(backend.build_meta, "get_requires_for_build_wheel", setuptools_hook)
    monkeypatch.setattr(backend.build_meta, "get_requires_for_build_editable", setuptools_hook)
    if compile_value is None:
        monkeypatch.delenv("TRIONET_COMPILE", raising=False)
    else:
        monkeypatch.setenv("TRIONET_COMPILE", compile_value)
    extra = ["mypy>=1.10"] if compile_value == "1" else []
    assert backend.get_requires_for_build_wheel() == ["setuptools>=77", *extra]
    assert backend.get_requires_for_build_editable() == ["setuptools>=77", *extra]
    assert seen == [None, None]
    assert backend.os.environ.get("TRIONET_COMPILE") == compile_value  # put back


def test_the_compiled_packages_exist_and_are_sans_io() -> None:
    """setup.py's one list: each entry a package of the sans-IO contract (no I/O, no clock)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    (listed,) = [
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "COMPILED"
    ]
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (sans_io,) = [c for c in contracts["contracts"] if c["name"].startswith("The sans-IO core")]
    assert "trionet/tcp" in listed
    for package in listed:
        assert (ROOT / package / "__init__.py").is_file(), package
        assert package.replace("/", ".") in sans_io["source_modules"], package


@pytest.mark.compiled
def test_every_module_the_build_recorded_runs_compiled() -> None:
    modules = compiled_modules()
    assert "trionet.tcp.connection" in modules and "trionet.stack.interface" in modules
    for name in modules:
        module = importlib.import_module(name)
        assert str(module.__file__).endswith(SUFFIX), module.__file__


@pytest.mark.compiled
def test_the_real_build_refuses_an_edited_source_and_runs_once_its_extensions_are_gone(
    tmp_path: Path,
) -> None:
    package = _copy_trionet(tmp_path)
    probe = "import trionet.tcp.connection as m; print(m.__file__)"
    result = _import_in(tmp_path, probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(package / "tcp" / f"connection{SUFFIX}")

    connection = package / "tcp" / "connection.py"
    connection.write_text(connection.read_text() + "\n# edited after the build\n")
    result = _import_in(tmp_path, probe)
    assert result.returncode != 0
    assert "StaleExtensionError" in result.stderr and "tcp/connection.py" in result.stderr

    for extension in package.rglob(f"*{SUFFIX}"):  # the fix the error names
        extension.unlink()
    result = _import_in(tmp_path, probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(connection)
