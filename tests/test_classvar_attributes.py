"""Class-level constants in the sans-IO layers are declared ``ClassVar``.

An unannotated ``header_len = 8`` in a class body is a class attribute to
CPython but, compiled with mypyc (issue 17's optional build), a per-instance
field with a default: it would grow every header object. Enum members are
the one legitimate unannotated assignment.

A dataclass in them declares no ``ClassVar`` either: compiled, mypyc makes it
a field anyway (mypyc issues 740 and 1122), and a frozen dataclass's
``__init__`` then fails with "attribute is read-only". A constant those
classes expose is a property.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "trionet"
LAYERS = ("wire", "tcp", "stack")
ALLOWED = {"__slots__", "__match_args__", "__hash__"}


def _is_enum(node: ast.ClassDef) -> bool:
    return any("Enum" in ast.unparse(base) or "Flag" in ast.unparse(base) for base in node.bases)


def test_sans_io_class_constants_are_classvars() -> None:
    offenders = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef) or _is_enum(node):
                    continue
                for statement in node.body:
                    if isinstance(statement, ast.Assign):
                        names = [ast.unparse(target) for target in statement.targets]
                        if set(names) - ALLOWED:
                            offenders.append(f"{path.name}:{statement.lineno} {node.name}.{names}")
    assert not offenders, offenders


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(decorator) for decorator in node.decorator_list)


def test_sans_io_dataclasses_declare_no_classvar() -> None:
    offenders = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef) or not _is_dataclass(node):
                    continue
                for statement in node.body:
                    if isinstance(statement, ast.AnnAssign) and "ClassVar" in ast.unparse(
                        statement.annotation
                    ):
                        target = ast.unparse(statement.target)
                        offenders.append(f"{path.name}:{statement.lineno} {node.name}.{target}")
    assert not offenders, offenders
