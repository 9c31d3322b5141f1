"""The README's code works as printed: every ```python block runs, the Quick start's command lines
run and give the files and summary fields the README lists.

Each runs in a fresh process in a temporary folder that sees the repository's ``designs/``, so
relative paths resolve as they do from the repository root. ``scripts/codesign.sh`` is run as
``python -m codesign`` with this interpreter (what it execs once ``.venv`` is ready; the
bootstrap itself is not what is tested here), and ``scripts/test.sh`` (this suite) is not run.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TIMEOUT_S = 600


def blocks(language: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced block of ``language``."""
    found = []
    for match in re.finditer(rf"(?ms)^```{language}\n(.*?)^```", README):
        found.append((README.count("\n", 0, match.start()) + 1, match.group(1)))
    return found


def command_lines(text: str) -> list[list[str]]:
    """The ``codesign`` command lines of a bash block, as argv for this interpreter."""
    argvs = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] in ("codesign", "scripts/codesign.sh", ".venv/bin/codesign"):
            argvs.append([sys.executable, "-m", "codesign", *words[1:]])
    return argvs


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


@pytest.fixture
def workdir(tmp_path) -> Path:
    (tmp_path / "designs").symlink_to(ROOT / "designs")
    return tmp_path


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{shlex.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_the_readme_has_the_blocks_this_test_runs():
    assert blocks("python"), "no ```python block"
    assert any(command_lines(text) for _, text in blocks("bash")), "no codesign command line in a ```bash block"


@pytest.mark.parametrize(("line", "code"), blocks("python"), ids=[f"README.md:{line}" for line, _ in blocks("python")])
def test_python_block_runs_as_printed(workdir, line, code):
    script = workdir / f"readme_{line}.py"
    script.write_text(code)
    _run([sys.executable, str(script)], workdir)


def _listed(row_text: str) -> list[str]:
    """The `names` of a table cell, leaving out what is in parentheses (values, cases)."""
    return re.findall(r"`([^`]+)`", re.sub(r"\([^()]*\)", "", row_text))


def test_quick_start_runs_and_gives_what_the_readme_lists(workdir):
    quick = section("Quick start")
    argvs = [argv for _, text in blocks("bash") if text in quick for argv in command_lines(text)]
    assert argvs, "the Quick start has no codesign command line"
    for argv in argvs:
        _run(argv, workdir)
    out = workdir / argvs[0][argvs[0].index("--out") + 1]

    rows = {m.group(1): m.group(2) for m in re.finditer(r"(?m)^\| (`[^|]+`) \| (.+) \|$", quick)}
    for files, what in rows.items():
        for name in _listed(files):
            assert (out / name).is_file(), f"the README lists {name} in the run folder"
    summary = json.loads((out / "summary.json").read_text())
    for key in _listed(rows["`summary.json`"]):
        assert key in summary, f"the README lists summary.json's {key}"
    columns = list(pd.read_csv(out / "trials.csv", nrows=1).columns)
    for column in _listed(rows["`trials.csv`"]):
        if column.endswith(".*"):
            assert any(c.startswith(column[:-1]) for c in columns), column
        elif column != "complete/fail":
            assert column in columns, f"the README lists trials.csv's {column}"
