"""The house rules of the package: layers, sizes, and one home per idea.

The layering itself is import-linter's (``[tool.importlinter]`` in pyproject.toml): imports only
run downward, no module cycles, private modules stay private. The rest is read from the source
with :mod:`ast`: how long modules and functions are, and that each shared vocabulary and each
twin the architecture removed has exactly one home.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "codesign"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: Plot functions draw one figure step by step; they may run longer.
LONG_FUNCTIONS_ALLOWED_IN = {"codesign/plots/plots.py", "codesign/plots/schedule_plots.py"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _lint_imports() -> str:
    here = Path(sys.executable).parent / "lint-imports"
    found = str(here) if here.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is not installed: `pip install -e .[test]` installs import-linter")
    return found


def test_import_contracts_are_kept():
    done = subprocess.run([_lint_imports(), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout, done.stdout[-2000:]


def test_every_package_folder_is_a_package():
    # A folder without __init__.py is a namespace package, which import-linter does not see.
    for folder in [PACKAGE, *[p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"]]:
        assert (folder / "__init__.py").is_file(), f"{_rel(folder)} has no __init__.py"


def test_no_module_is_longer_than_the_limit():
    long = {_rel(p): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split them by idea): {long}"


def test_no_function_is_longer_than_the_limit():
    long = {}
    for path in _modules():
        if _rel(path) in LONG_FUNCTIONS_ALLOWED_IN:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{_rel(path)}:{node.lineno} {node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def _string_tuples(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)) and node.elts and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            yield node.lineno, tuple(e.value for e in node.elts)


@pytest.mark.parametrize("vocabulary", ["DATAFLOWS", "MODES", "DRAM_KINDS", "STRATEGIES", "SAMPLERS", "REFINE_METHODS", "METRICS", "MAPPINGS", "GRANULARITIES"])
def test_each_vocabulary_is_written_once(vocabulary):
    """Only codesign/vocab.py spells out a shared vocabulary; everything else imports it."""
    from codesign import vocab

    values = set(getattr(vocab, vocabulary))
    found = []
    for path in _modules():
        if path.name == "vocab.py":
            continue
        for line, strings in _string_tuples(ast.parse(path.read_text())):
            if len(strings) > 1 and set(strings) == values:
                found.append(f"{_rel(path)}:{line}")
    assert not found, f"{vocabulary} written again (import it from codesign.vocab): {found}"


def test_hardware_knob_names_are_listed_only_in_the_registry():
    """A new hardware knob is one registry row: no other module lists the knob fields."""
    from codesign.knobs import HARDWARE_KNOBS

    names = {k.name for k in HARDWARE_KNOBS}
    found = []
    for path in _modules():
        if path.name == "knobs.py":
            continue
        for line, strings in _string_tuples(ast.parse(path.read_text())):
            if len(set(strings) & names) >= 4:
                found.append(f"{_rel(path)}:{line} {strings}")
    assert not found, f"hardware knob fields listed outside codesign/knobs.py: {found}"


def test_user_code_is_imported_by_the_one_loader():
    """``package.module:attr`` is resolved in codesign/loader.py only (plug-ins and oracles use it)."""
    found = []
    for path in _modules():
        if path.name == "loader.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "import_module" and _rel(path) != "codesign/__init__.py":
                found.append(f"{_rel(path)}:{node.lineno}")
    assert not found, f"import_module outside codesign/loader.py: {found}"


def test_library_code_does_not_speak_in_shell_flags():
    """Errors raised below the shell name arguments through ArgumentError, not as ``--flag`` text."""
    shell_modules = {"codesign/cli.py", "codesign/cycles.py", "codesign/surrogate_cli.py", "codesign/argtypes.py"}
    found = []
    for path in _modules():
        if _rel(path) in shell_modules:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = ast.unparse(node.exc)
                if "'--" in text or '"--' in text or "f'--" in text or 'f"--' in text:
                    found.append(f"{_rel(path)}:{node.lineno}")
    assert not found, f"errors that name a shell flag below the shell (use codesign.errors.ArgumentError): {found}"
