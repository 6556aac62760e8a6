"""The README and docs say what the code does: names, examples and command lines.

A newcomer follows the README first: its example must run as written and
print what it says, every name it and the docs use must exist at the top of
the package, and every ``trionet ...`` option the docs show must exist in the
command-line parsers.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import trionet
from trionet.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def _block(text: str, language: str, after: str = "") -> str:
    """The first fenced ``language`` block in ``text`` that follows ``after``."""
    start = text.index(after) if after else 0
    match = re.compile(rf"^```{language}\n(.*?)^```$", re.S | re.M).search(text, start)
    assert match is not None, f"no ```{language} block after {after!r}"
    return match.group(1)


def _readme_commands() -> list[str]:
    """The README's indented shell commands (the quick start's set-up and test commands)."""
    return [line[4:] for line in README.read_text().splitlines() if line.startswith("    {")]


def test_every_public_name_resolves() -> None:
    assert trionet.__all__ == sorted(trionet.__all__, key=lambda n: (n[0].islower(), n))
    for name in trionet.__all__:
        assert getattr(trionet, name) is not None, name
    for name in ("open_network", "Network", "NetworkConfig", "ConfigError", "FrameBackend"):
        assert name in trionet.__all__
    for name in ("TerminationHandle", "MetricsHandle", "NewFlow", "Verdict", "FlowPolicy"):
        assert name in trionet.__all__


def test_a_fresh_interpreter_finds_open_network_at_the_top() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import trionet; trionet.open_network; trionet.Network"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_readme_example_runs_as_written_and_prints_what_readme_says(tmp_path: Path) -> None:
    text = README.read_text()
    example = tmp_path / "example.py"
    example.write_text(_block(text, "python"))
    expected = _block(text, "text", after="It prints:")
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=tmp_path,  # not the checkout: it must need nothing but the installed package
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_readme_has_two_commands_and_ci_runs_the_test_one() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    main, tests = commands
    assert "trionet run --" in main and "nox -s lint tests" in tests
    # Both builds: pure Python, and the optional mypyc one (noxfile.py, setup.py).
    assert tests.endswith("nox -s lint tests tests_compiled")
    # Both work on a stock Debian python3, which refuses pip outside a venv (PEP 668).
    for command in commands:
        assert "python3 -m venv .venv && .venv/bin/pip install" in command
        assert "python3 -m pip" not in command
    assert tests in (ROOT / ".ci" / "run").read_text()


_OPTION = re.compile(r"^-[-\w]+")
_COMMAND_END = frozenset({"--", "&", "&&", ";", "|", "*/", "#"})


def _documented_invocations() -> list[tuple[str, str, list[str]]]:
    """(where, subcommand, options) for every ``trionet SUB ...`` in the docs."""
    found = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in re.finditer(r"\btrionet (run|serve|env)(?=[\s`]|$)([^`\n]*)", line):
                options = []
                for token in match.group(2).split():
                    if token in _COMMAND_END or token.endswith(";"):
                        break
                    if _OPTION.match(token):
                        options.append(_OPTION.match(token).group(0))  # type: ignore[union-attr]
                found.append((f"{doc.name}:{number}", match.group(1), options))
    return found


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("trionet has no subcommands")


def test_every_documented_trionet_option_exists() -> None:
    subparsers = _subparsers()
    invocations = _documented_invocations()
    assert {sub for _, sub, _ in invocations} == {"run", "serve", "env"}
    checked = 0
    for where, sub, options in invocations:
        known = {s for action in subparsers[sub]._actions for s in action.option_strings}
        for option in options:
            assert option in known, f"{where}: trionet {sub} has no option {option}"
            checked += 1
    assert checked >= 10  # the scan finds the docs' options, not nothing


@pytest.mark.parametrize("sub", ["run", "serve"])
def test_every_option_in_the_subcommands_doc_exists(sub: str) -> None:
    """docs/run.md and docs/serve.md name options in tables and prose, in backticks."""
    known = {s for action in _subparsers()[sub]._actions for s in action.option_strings}
    text = (ROOT / "docs" / f"{sub}.md").read_text()
    prose = re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)  # other programs' examples
    spans = re.findall(r"`([^`\n]+)`", prose)
    named = {option for span in spans for option in re.findall(r"--[a-z][\w-]*", span)}
    assert len(named) >= 5
    assert sorted(named - known) == []


def test_documented_nox_sessions_exist() -> None:
    sessions = set(re.findall(r"^def (\w+)\(session", (ROOT / "noxfile.py").read_text(), re.M))
    for doc in DOCS:
        for names in re.findall(r"nox -s ((?:\w+ ?)+)", doc.read_text()):
            for name in names.split():
                assert name in sessions, f"{doc.name}: no nox session {name!r}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_do_not_promise_what_exists_or_point_at_other_branches(doc: Path) -> None:
    text = doc.read_text()
    assert "on another branch" not in text
    assert not re.search(r"\(later\) `trionet run --config", text)
