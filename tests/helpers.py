"""Helpers the test files share: small design spaces built in memory, random rows, and running the
shell in-process with its one-line errors checked."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import optuna
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from codesign.cli import main
from codesign.design import parse_design
from codesign.space import DesignSpace

ROOT = Path(__file__).resolve().parents[1]
DESIGNS = ROOT / "designs"
EDGE = DESIGNS / "edge_resnet18.toml"
POPULATION = 32


def make_space(*, graph=None, **overrides) -> DesignSpace:
    """A small but complete design space (ResNet-18 on up to 2×2 cores) with overrides per section;
    ``graph``: a hand-built :class:`~codesign.workload.graph.Workload` instead of the named network."""
    raw = {
        "workload": {"network": "resnet18", "batch": 1},
        "hardware": {
            "grid_rows": [1, 2],
            "grid_cols": [1, 2],
            "pe_rows": [4, 8, 16, 32],
            "pe_cols": [4, 8, 16, 32],
            "sram_kib": [16, 64, 256, 1024],
            "dram_gbps": [6.4, 25.6, 102.4],
            "noc_link_gbps": [8.0, 64.0],
            "clock_ghz": [0.5, 1.0],
            "node": ["28nm", "7nm"],
        },
        "schedule": {"dataflow": ["ws", "os", "is"], "mapping": "search"},
    }
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) and section != "constraints" else values
    return DesignSpace.from_design(parse_design(raw, source="<test>"), workload=graph)


def random_rows(space: DesignSpace, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` random integer rows of ``space``."""
    gen = torch.Generator().manual_seed(seed)
    cols = []
    for knob in space.knobs:
        high = len(knob.choices) if knob.choices is not None else knob.high + 1
        cols.append(torch.randint(0, high, (n,), generator=gen))
    return torch.stack(cols, dim=1)


def small_design_text(*, plugins: list[str] | None = None, objectives: list[str] | None = None, **hardware) -> str:
    """edge_resnet18.toml with a population of 32, optionally other hardware ranges or plug-ins."""
    text = EDGE.read_text()
    text = re.sub(r"(?m)^population = \d+", f"population = {POPULATION}", text)
    for key, value in hardware.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {json.dumps(value)}", text)
        assert n == 1, key
    if objectives is not None:
        text, n = re.subn(r"(?m)^minimize = .*$", f"minimize = {json.dumps(objectives)}", text)
        assert n == 1
    if plugins is not None:
        text += f"\n[cost_model]\nplugins = {json.dumps(plugins)}\n"
    return text


def write_design(folder: Path, name: str = "design.toml", **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(small_design_text(**kwargs))
    return path


def terminal_signals() -> None:
    """``preexec_fn`` of a child the test signals: SIGHUP and SIGINT at their defaults, as for a command run
    in a terminal. A test run under nohup passes SIGHUP ignored on to its children, and one run as a
    background job of a shell without job control (``cmd &`` in a script) passes SIGINT ignored; codesign
    keeps an ignored signal ignored (what nohup and the shell promise), so the child would not stop."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(capsys, *argv) -> tuple[int, str, str]:
    """``codesign ARGV`` in this process: exit code, stdout, stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse exits instead of returning
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2, no traceback, one ``codesign: error:`` line that names every needle."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("codesign: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    return lines[0]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` with its mtime and contents."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def stored_trials(run: Path) -> list[optuna.trial.FrozenTrial]:
    storage = JournalStorage(JournalFileBackend(str(run / "study.journal")))
    study = optuna.load_study(study_name="codesign", storage=storage)
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    return [t for t in study.get_trials(deepcopy=False) if t.state in done]
