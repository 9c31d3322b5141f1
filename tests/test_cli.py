"""The shell: user errors stop before any work with exit code 2 and one ``codesign: error:``
line; successful runs write their outputs, resume, survive failing plug-ins and Ctrl-C."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from codesign.cli import main
from codesign.vocab import ENERGY_COLUMNS
from tests.helpers import (DESIGNS, POPULATION, assert_one_error, cli, small_design_text, snapshot, stored_trials, terminal_signals,
                           write_design)

CHIPLET = DESIGNS / "edge_resnet18_chiplet_cost.toml"
OUTPUTS = ("trials.csv", "front.csv", "front.png", "summary.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def non_dominated(frame: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """Brute force: feasible complete rows with finite objectives that no other such row dominates."""
    usable = frame[(frame["state"] == "complete") & frame["feasible"].astype(bool)]
    usable = usable[np.isfinite(usable[objectives].to_numpy(dtype=float)).all(axis=1)]
    values = usable[objectives].to_numpy(dtype=float)
    keep = [
        i for i in range(len(values))
        if not any((values[j] <= values[i]).all() and (values[j] < values[i]).any() for j in range(len(values)))
    ]
    return usable.iloc[keep].sort_values("trial").reset_index(drop=True)



@pytest.fixture(autouse=True)
def _forget_plugin_modules():
    """Plug-in modules written by a test do not stay imported for the next one."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("plug_", "plugins", "relplug")):
            del sys.modules[name]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished 64-trial run of the small edge design (never modified by the tests)."""
    folder = tmp_path_factory.mktemp("base")
    design = write_design(folder)
    out = folder / "run"
    assert main(["explore", str(design), "--trials", "64", "--seed", "3", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    """A copy of the base run (with its design file next to it) that a test may change."""
    shutil.copy(base_run.parent / "design.toml", tmp_path / "design.toml")
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    return out


# --- bad design files ------------------------------------------------------------------------

BAD_DESIGNS = [
    ("unknown-key", "[hardware]\npe_rowz = [8]\n", ["hardware.pe_rowz", "[8]", "no such key"]),
    ("wrong-type", '[hardware]\npe_rows = "big"\n', ["hardware.pe_rows", "'big'", "valid integer"]),
    ("negative-in-list", "[hardware]\npe_rows = [8, -4]\n", ["hardware.pe_rows[1]", "-4", "greater than 0"]),
    ("unknown-dataflow", '[hardware]\ndataflows = ["ws", "xs"]\n', ["hardware.dataflows[1]", "'xs'", "'ws', 'os' or 'is'"]),
    ("unknown-mode", '[schedule]\nmode = "streaming"\n', ["schedule.mode", "'streaming'", "pipelined"]),
]


@pytest.mark.parametrize(("case", "body", "needles"), BAD_DESIGNS, ids=[c[0] for c in BAD_DESIGNS])
def test_bad_design(capsys, tmp_path, case, body, needles):
    design = tmp_path / f"{case}.toml"
    design.write_text('[workload]\nnetwork = "resnet18"\n' + body)
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "explore", design, "--out", out, "--trials", "32")
    assert_one_error(code, err, str(design), *needles)
    assert stdout == ""
    assert not out.exists()


def test_unknown_workload(capsys, tmp_path):
    design = tmp_path / "d.toml"
    design.write_text('[workload]\nnetwork = "resnet19"\n')
    out = tmp_path / "out"
    code, _, err = cli(capsys, "explore", design, "--out", out)
    assert_one_error(code, err, str(design), "workload.network", "'resnet19'", "not a zoo network (bert_base")
    assert not out.exists()


def test_invalid_toml_and_missing_file(capsys, tmp_path):
    design = tmp_path / "d.toml"
    design.write_text('[workload\nnetwork = "resnet18"\n')
    out = tmp_path / "out"
    code, _, err = cli(capsys, "explore", design, "--out", out)
    assert_one_error(code, err, str(design), "not valid TOML")
    code, _, err = cli(capsys, "explore", tmp_path / "nope.toml", "--out", out)
    assert_one_error(code, err, str(tmp_path / "nope.toml"), "no such design file")
    assert not out.exists()


def test_objective_that_no_model_provides(capsys, tmp_path):
    design = write_design(tmp_path, objectives=["latency_s", "water_l"])
    out = tmp_path / "out"
    code, _, err = cli(capsys, "explore", design, "--out", out)
    assert_one_error(code, err, str(design), "objectives.minimize", "'water_l'")
    assert not out.exists()


# --- bad flags -------------------------------------------------------------------------------

BAD_FLAGS = [
    ("trials-zero", ["explore", "{design}", "--trials", "0"], ["--trials", "'0'", "positive integer"]),
    ("trials-abc", ["explore", "{design}", "--trials", "abc"], ["--trials", "'abc'", "positive integer"]),
    ("seed-negative", ["explore", "{design}", "--seed", "-1"], ["--seed", "'-1'", "non-negative integer"]),
    ("device-tpu", ["explore", "{design}", "--device", "tpu"], ["--device", "'tpu'", "cuda"]),
    ("show-without-trial", ["show", "{out}"], ["--trial", "required"]),
    ("show-trial-abc", ["show", "{out}", "--trial", "abc"], ["--trial", "'abc'"]),
    ("no-command", [], ["required"]),
    ("unknown-command", ["explode", "{design}"], ["'explode'"]),
    ("unknown-flag", ["explore", "{design}", "--trails", "5"], ["--trails"]),
]


def _flag_argv(argv: list[str], design: Path, out: Path) -> list[str]:
    return [a.format(design=design, out=out) for a in argv]


@pytest.mark.parametrize(("case", "argv", "needles"), BAD_FLAGS, ids=[c[0] for c in BAD_FLAGS])
def test_bad_flag_stops_before_any_work(capsys, tmp_path, case, argv, needles):
    design = write_design(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, *_flag_argv(argv, design, out), *(["--out", out] if argv and argv[0] == "explore" else []))
    assert code == 2, err
    assert "Traceback" not in err
    assert stdout == ""
    last = err.strip().splitlines()[-1]
    assert "error:" in last
    for needle in needles:
        assert needle in last, (needle, err)
    assert not out.exists()


def test_bad_flag_is_one_codesign_error_line(capsys, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "out"
    for _, argv, needles in BAD_FLAGS:
        code, _, err = cli(capsys, *_flag_argv(argv, design, out))
        assert_one_error(code, err, *needles)


def test_storage_that_does_not_open(capsys, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli(capsys, "explore", design, "--storage", "bogus://nowhere", "--out", out)
    assert_one_error(code, err, "--storage bogus://nowhere", "cannot open this Optuna storage")
    assert not out.exists()


def test_sqlite_storage_that_does_not_open_is_one_line(capsys, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path}/no/such/folder/study.db"
    code, _, err = cli(capsys, "explore", design, "--storage", url, "--out", out)
    assert not out.exists()
    assert_one_error(code, err, f"--storage {url}", "cannot open this Optuna storage")


def test_device_cuda_without_cuda(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    design = write_design(tmp_path)
    out = tmp_path / "out"
    code, _, err = cli(capsys, "explore", design, "--device", "cuda", "--out", out)
    assert_one_error(code, err, "--device cuda", "no CUDA device", "--device cpu")
    assert not out.exists()


# --- plug-ins that cannot be used ------------------------------------------------------------

BAD_PLUGINS = [
    ("does-not-import", None, "nosuch.module:X", ["cannot import module 'nosuch.module'", "ModuleNotFoundError"]),
    ("no-evaluate", "class NoEval:\n    provides = ('cost_usd',)\n", "plug_noeval:NoEval", ["'evaluate(candidates, metrics)'"]),
    ("no-provides", "class NoProvides:\n    def evaluate(self, c, m):\n        return {}\n", "plug_noprov:NoProvides", ["'provides'"]),
    ("module-raises", "raise RuntimeError('boom at import')\n", "plug_boom:X", ["RuntimeError: boom at import"]),
    ("no-such-attribute", "X = 1\n", "plug_attr:Nope", ["has no attribute 'Nope'"]),
    ("constructor-raises", "class C:\n    provides = ('x',)\n    def __init__(self):\n        raise ValueError('needs a licence file')\n"
     "    def evaluate(self, c, m):\n        return {}\n", "plug_ctor:C", ["constructing C() failed", "needs a licence file"]),
    ("no-entry-point", None, "no_such_entry_point", ["entry point", "'no_such_entry_point'"]),
]


@pytest.mark.parametrize(("case", "source", "spec", "needles"), BAD_PLUGINS, ids=[c[0] for c in BAD_PLUGINS])
def test_unusable_plugin(capsys, tmp_path, case, source, spec, needles):
    if source is not None:
        (tmp_path / f"{spec.partition(':')[0]}.py").write_text(source)
    design = write_design(tmp_path, plugins=[spec])
    out = tmp_path / "out"
    code, _, err = cli(capsys, "explore", design, "--out", out, "--trials", "32")
    assert_one_error(code, err, str(design), "cost_model.plugins", repr(spec), *needles)
    assert not out.exists()


# --- run folders -----------------------------------------------------------------------------


def test_resume_refused_for_a_different_design(capsys, run_copy, tmp_path):
    before = snapshot(run_copy)
    other = write_design(tmp_path / "other", pe_rows=[8, 16])
    code, _, err = cli(capsys, "explore", other, "--out", run_copy, "--trials", "96")
    assert_one_error(code, err, f"--out {run_copy}", "different design")
    assert snapshot(run_copy) == before


def test_existing_run_untouched_by_failures(capsys, run_copy, tmp_path):
    """A bad design, a bad plug-in or a bad flag aimed at an existing run changes nothing in it."""
    before = snapshot(run_copy)
    bad = tmp_path / "bad.toml"
    bad.write_text(small_design_text().replace("pe_rows = [8, 16, 32, 64]", "pe_rows = [8, 0]"))
    code, _, err = cli(capsys, "explore", bad, "--out", run_copy, "--trials", "96")
    assert_one_error(code, err, "hardware.pe_rows[1]")
    code, _, err = cli(capsys, "explore", write_design(tmp_path / "p", plugins=["nosuch.module:X"]), "--out", run_copy)
    assert_one_error(code, err, "nosuch.module:X")
    code, _, err = cli(capsys, "explore", tmp_path / "design.toml", "--out", run_copy, "--trials", "0")
    assert code == 2
    code, _, err = cli(capsys, "explore", tmp_path / "design.toml", "--out", run_copy, "--storage", "sqlite:///x.db")
    assert_one_error(code, err, "--storage")
    assert snapshot(run_copy) == before


def test_out_is_a_folder_that_is_not_a_run(capsys, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = cli(capsys, "explore", design, "--out", out)
    assert_one_error(code, err, f"--out {out}", "not a codesign run folder")
    assert snapshot(out) == before


def test_show_unknown_trial(capsys, base_run):
    before = snapshot(base_run)
    code, stdout, err = cli(capsys, "show", base_run, "--trial", "999")
    assert_one_error(code, err, "--trial 999", "no such trial", "0–63")
    assert stdout == ""
    assert snapshot(base_run) == before


@pytest.mark.parametrize("command", ["report", "show"])
def test_report_and_show_need_a_run_folder(capsys, tmp_path, command):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing", write_design(tmp_path)):
        argv = [command, folder] + (["--trial", "0"] if command == "show" else [])
        code, _, err = cli(capsys, *argv)
        assert_one_error(code, err, str(folder), "not a codesign run folder")
    assert not any(empty.iterdir())
    assert not (tmp_path / "missing").exists()


# --- in a real process -----------------------------------------------------------------------


def _codesign(*argv, cwd=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codesign", *map(str, argv)], capture_output=True, text=True, cwd=cwd, timeout=120, **kwargs
    )


def test_subprocess_bad_design(tmp_path):
    design = tmp_path / "d.toml"
    design.write_text('[workload]\nnetwork = "resnet18"\n[hardware]\npe_rows = [8, -4]\n')
    out = tmp_path / "out"
    proc = _codesign("explore", design, "--out", out)
    assert_one_error(proc.returncode, proc.stderr, str(design), "hardware.pe_rows[1]", "-4", "greater than 0")
    assert proc.stdout == ""
    assert not out.exists()


def test_subprocess_plugin_that_does_not_import(tmp_path):
    design = write_design(tmp_path, plugins=["nosuch.module:X"])
    out = tmp_path / "out"
    proc = _codesign("explore", design, "--out", out)
    assert_one_error(proc.returncode, proc.stderr, str(design), "cost_model.plugins", "'nosuch.module:X'", "cannot import")
    assert not out.exists()


def test_subprocess_bad_flag(tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "out"
    proc = _codesign("explore", design, "--trials", "abc", "--out", out)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--trials" in proc.stderr and "'abc'" in proc.stderr
    assert not out.exists()


# --- successful runs -------------------------------------------------------------------------


def test_explore_writes_its_outputs(base_run):
    for name in OUTPUTS:
        assert (base_run / name).is_file(), name
    assert (base_run / "front.png").read_bytes().startswith(PNG_MAGIC)
    trials = pd.read_csv(base_run / "trials.csv")
    summary = json.loads((base_run / "summary.json").read_text())
    assert trials["trial"].tolist() == list(range(64))
    assert set(trials["state"]) <= {"complete", "fail"}
    assert summary["n_trials"] == 64 and summary["trials_added"] == 64 and summary["seed"] == 3
    assert summary["objectives"] == ["latency_s", "cost_usd"]
    assert len(stored_trials(base_run)) == 64


def test_front_is_the_non_dominated_feasible_subset(base_run):
    trials = pd.read_csv(base_run / "trials.csv")
    front = pd.read_csv(base_run / "front.csv")
    objectives = json.loads((base_run / "summary.json").read_text())["objectives"]
    expected = non_dominated(trials, objectives)
    assert len(expected) > 0
    assert front["trial"].tolist() == expected["trial"].tolist()
    # front.csv is those trials' rows, plus the energy of each design by component (summing to its energy_j)
    energy = front[list(ENERGY_COLUMNS)]
    pd.testing.assert_frame_equal(front.drop(columns=list(ENERGY_COLUMNS)).reset_index(drop=True), expected, check_dtype=False)
    assert energy.sum(axis=1).to_numpy() == pytest.approx(front["energy_j"].to_numpy(), rel=1e-12)
    assert json.loads((base_run / "summary.json").read_text())["n_front"] == len(front)


def test_resume_adds_trials_and_keeps_the_earlier_ones(capsys, base_run, run_copy):
    design = run_copy.parent / "design.toml"
    before = pd.read_csv(run_copy / "trials.csv")
    code, stdout, err = cli(capsys, "explore", design, "--trials", "96", "--seed", "3", "--out", run_copy)
    assert code == 0, err
    assert stdout.startswith("96 trials (32 new")
    after = pd.read_csv(run_copy / "trials.csv")
    assert after["trial"].tolist() == list(range(96))
    pd.testing.assert_frame_equal(after.iloc[:64].reset_index(drop=True), before, check_dtype=False)
    assert len(stored_trials(run_copy)) == 96
    summary = json.loads((run_copy / "summary.json").read_text())
    assert summary["n_trials"] == 96 and summary["trials_added"] == 32
    expected = non_dominated(after, summary["objectives"])
    assert pd.read_csv(run_copy / "front.csv")["trial"].tolist() == expected["trial"].tolist()
    # Asking again for the same total adds nothing.
    code, stdout, _ = cli(capsys, "explore", design, "--trials", "96", "--out", run_copy)
    assert code == 0 and stdout.startswith("96 trials (0 new")
    assert len(stored_trials(run_copy)) == 96


def test_report_writes_its_plots(capsys, run_copy):
    code, stdout, err = cli(capsys, "report", run_copy)
    assert code == 0, err
    paths = [Path(line) for line in stdout.splitlines()]
    assert {p.name for p in paths} == {"front.png", "energy.png", "hypervolume.png", "parallel_coordinates.png"}
    for path in paths:
        assert path.read_bytes().startswith(PNG_MAGIC), path


def test_show_writes_floorplan_gantt_graphml_and_json(capsys, run_copy):
    knee = json.loads((run_copy / "summary.json").read_text())["knee_trial"]
    trials = pd.read_csv(run_copy / "trials.csv")
    for trial in (knee, int(trials["trial"].iloc[-1])):
        code, stdout, err = cli(capsys, "show", run_copy, "--trial", trial)
        assert code == 0, err
        printed = {Path(line).name for line in stdout.splitlines()}
        stem = f"trial_{trial}"
        assert {f"{stem}_floorplan.png", f"{stem}_gantt.png", f"{stem}.graphml", f"{stem}.json", f"{stem}_energy.csv",
                f"{stem}_energy.png"} <= printed
        for png in (f"{stem}_floorplan.png", f"{stem}_gantt.png", f"{stem}_energy.png"):
            assert (run_copy / png).read_bytes().startswith(PNG_MAGIC)
        graph = nx.read_graphml(run_copy / f"{stem}.graphml")
        kinds = {data.get("kind") for _, data in graph.nodes(data=True)}
        assert {"core", "layer"} <= kinds
        record = trials[trials["trial"] == trial].iloc[0]
        n_cores = sum(1 for _, d in graph.nodes(data=True) if d.get("kind") == "core")
        assert n_cores == int(record["hw.grid_rows"]) * int(record["hw.grid_cols"])
        json.loads((run_copy / f"{stem}.json").read_text())


# --- plug-ins --------------------------------------------------------------------------------


def test_chiplet_cost_example_end_to_end(capsys, tmp_path):
    from codesign.hardware.cost import die_cost_usd
    from codesign.hardware.tech import TECH_NODES

    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "explore", CHIPLET, "--trials", "64", "--out", out)
    assert code == 0, err
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 64 and (trials["state"] == "complete").all()
    assert "carbon_kg" in trials.columns
    carbon = trials["carbon_kg"].to_numpy()
    assert np.isfinite(carbon).all() and (carbon > 0).all()
    # cost_usd is the plug-in's (tested, packaged part), not the built-in wafer-only die cost.
    area = torch.tensor(trials["area_mm2"].to_numpy())
    wafer_only = die_cost_usd(area, TECH_NODES["7nm"]).numpy()
    assert (trials["cost_usd"].to_numpy() > wafer_only + 1.0).all()
    # Larger dies carry more embodied carbon (the built-in carbon_kg, at one node).
    order = np.argsort(trials["area_mm2"].to_numpy())
    assert np.all(np.diff(carbon[order]) >= -1e-12)
    # The plug-in's own metric: wafer-sort seconds, more for more PEs (scan) and more SRAM (MBIST).
    assert (trials["test_s"] > 0.3).all() and "test_s" in json.loads((out / "run.json").read_text())["metrics"]


def test_plugin_metric_as_objective(capsys, tmp_path):
    (tmp_path / "plugins").mkdir()
    shutil.copy(DESIGNS / "plugins" / "chiplet_cost.py", tmp_path / "plugins" / "chiplet_cost.py")
    design = tmp_path / "test_time.toml"
    design.write_text(
        CHIPLET.read_text()
        .replace('minimize = ["latency_s", "cost_usd"]', 'minimize = ["latency_s", "cost_usd", "test_s"]')
        .replace("population = 64", "population = 32")
    )
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", design, "--trials", "32", "--out", out)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["objectives"] == ["latency_s", "cost_usd", "test_s"]


RAISING = """
import torch

class RaisesOnPe8:
    provides = ("cost_usd", "test_metric")

    def evaluate(self, candidates, metrics):
        if bool((candidates.pe_rows == 8).any()):
            raise ValueError("no price for 8-row PE arrays")
        return {"cost_usd": metrics["cost_usd"] * 2.0, "test_metric": metrics["area_mm2"] + 1.0}
"""

NAN = """
import torch

class NanOnPeCols8:
    provides = ("cost_usd",)

    def evaluate(self, candidates, metrics):
        return {"cost_usd": torch.where(candidates.pe_cols == 8, float("nan"), metrics["cost_usd"])}
"""


@pytest.mark.parametrize(
    ("module", "source", "attr", "column", "reason"),
    [
        ("plug_raises", RAISING, "RaisesOnPe8", "hw.pe_rows", "plug-in RaisesOnPe8 raised ValueError: no price for 8-row PE arrays"),
        ("plug_nan", NAN, "NanOnPeCols8", "hw.pe_cols", "plug-in NanOnPeCols8 returned a non-finite cost_usd"),
    ],
    ids=["raises", "nan"],
)
def test_failing_plugin_fails_only_its_trials(capsys, tmp_path, module, source, attr, column, reason):
    (tmp_path / f"{module}.py").write_text(source)
    design = write_design(tmp_path, plugins=[f"{module}:{attr}"])
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "explore", design, "--trials", "96", "--out", out)
    assert code == 0, err
    trials = pd.read_csv(out / "trials.csv")
    trials["fail_reason"] = trials["fail_reason"].fillna("")
    assert len(trials) == 96
    failed = trials[trials["state"] == "fail"]
    complete = trials[trials["state"] == "complete"]
    assert len(failed) > 0 and len(complete) > 0
    assert (failed[column] == 8).all() and (complete[column] != 8).all()
    assert (failed["fail_reason"] == reason).all()
    assert (complete["fail_reason"] == "").all()
    assert not failed["feasible"].any()
    front = pd.read_csv(out / "front.csv")
    assert len(front) > 0 and (front[column] != 8).all()
    if module == "plug_raises":  # the other candidates of a failing batch got their values
        assert np.isfinite(complete["test_metric"].astype(float)).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_complete"] == len(complete)


def test_show_plugin_run_from_another_folder(capsys, tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "relplug_cost.py").write_text(NAN.replace("NanOnPeCols8", "Cost").replace("candidates.pe_cols == 8", "candidates.pe_cols < 0"))
    write_design(project, plugins=["relplug_cost:Cost"])
    out = tmp_path / "run"
    monkeypatch.chdir(project)
    code, _, err = cli(capsys, "explore", "design.toml", "--trials", "32", "--out", out)
    assert code == 0, err
    sys.modules.pop("relplug_cost", None)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "show", out, "--trial", "0")
    assert code == 0, err


# --- Ctrl-C ----------------------------------------------------------------------------------


def test_interrupt_keeps_finished_trials_and_resumes(capsys, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    total = 20 * POPULATION
    argv = ["explore", design, "--trials", total, "--seed", "5", "--out", out, "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "codesign", *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=terminal_signals,
    )
    journal = out / "study.journal"
    deadline = time.monotonic() + 60
    # Wait until the first generation is stored, so that the search loop and its Ctrl-C handler
    # run (creating the study writes well under 1 kB to the journal; a generation, tens of kB).
    while time.monotonic() < deadline and proc.poll() is None and not (journal.exists() and journal.stat().st_size > 4096):
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err  # the shell's code for a process stopped by SIGINT, not 0
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"

    stored = stored_trials(out)
    assert 0 < len(stored) < total, "the run was not interrupted"
    assert len(stored) % POPULATION == 0
    assert sorted(t.number for t in stored) == list(range(len(stored)))
    if (out / "trials.csv").exists():
        assert pd.read_csv(out / "trials.csv")["trial"].tolist() == list(range(len(stored)))
    interrupted = pd.read_csv(out / "trials.csv") if (out / "trials.csv").exists() else None

    code, stdout, err = cli(capsys, *argv)
    assert code == 0, err
    assert stdout.startswith(f"{total} trials ({total - len(stored)} new")
    assert len(stored_trials(out)) == total
    trials = pd.read_csv(out / "trials.csv")
    assert trials["trial"].tolist() == list(range(total))
    if interrupted is not None:
        pd.testing.assert_frame_equal(trials.iloc[: len(interrupted)].reset_index(drop=True), interrupted, check_dtype=False)
