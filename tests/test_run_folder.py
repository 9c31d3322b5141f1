"""The run folder: outputs a failure cannot half-write, OS errors as one line and exit code 2, resumes
that refuse to mix two runs in one study, refinement within the trial budget, and runs of a single
objective."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from codesign.errors import ArgumentError
from codesign.runs.tables import remove_stale_temps, write_atomic
from tests.helpers import DESIGNS, POPULATION, assert_one_error, cli, snapshot, stored_trials, write_design

OUTPUTS = ("trials.csv", "front.csv", "front.png", "summary.json")


def _explore(capsys, design, out, trials, *extra):
    return cli(capsys, "explore", design, "--trials", trials, "--out", out, "--no-progress", *extra)


# --- atomic outputs ---------------------------------------------------------------------------


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "front.png"
    path.write_bytes(b"old")

    def half_then_fail(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.png"]
    write_atomic(path, lambda tmp: Path(tmp).write_bytes(b"new"))
    assert path.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["front.png"]


def test_stale_temporary_files_are_told_from_live_ones(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        names = [".a.csv.tmp", ".b.png.999999999.tmp", f".c.json.{live.pid}.tmp", f".d.json.{os.getpid()}.tmp", "keep.tmp"]
        for name in names:
            (tmp_path / name).write_text("x")
        removed = remove_stale_temps(tmp_path)
        assert sorted(p.name for p in removed) == [".a.csv.tmp", ".b.png.999999999.tmp"]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
    finally:
        live.kill()
        live.wait()


def test_a_finished_run_says_so(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = _explore(capsys, write_design(tmp_path), out, 2 * POPULATION)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["signal"], summary["error"]) == ("finished", None, None)
    assert (summary["n_failed"], summary["fail_reasons"], summary["trials_requested"]) == (0, {}, 2 * POPULATION)
    assert not list(out.glob(".*"))


# --- OS errors --------------------------------------------------------------------------------


def test_out_under_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "a_file").write_text("")
    code, _, err = _explore(capsys, write_design(tmp_path), tmp_path / "a_file" / "sub", POPULATION)
    assert_one_error(code, err, str(tmp_path / "a_file"), "Not a directory (ENOTDIR)")


def test_out_under_proc_is_one_line(capsys, tmp_path):
    code, _, err = _explore(capsys, write_design(tmp_path), "/proc/codesign-no-such-dir/run", POPULATION)
    assert_one_error(code, err, "/proc/codesign-no-such-dir", "No such file or directory (ENOENT)")


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs file systems (root only; the test is skipped where mounting is not allowed)."""
    mounted = []

    def mount(size: str, *options: str) -> Path:
        if shutil.which("mount") is None or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root and mount(8)")
        path = tmp_path / f"fs{len(mounted)}"
        path.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_read_only_file_system_is_one_line(capsys, tmp_path, tmpfs):
    design = write_design(tmp_path)
    fs = tmpfs("4m")
    out = fs / "run"
    assert _explore(capsys, design, out, POPULATION)[0] == 0
    before = snapshot(out)
    subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
    code, _, err = _explore(capsys, design, fs / "new", POPULATION)
    assert_one_error(code, err, str(fs / "new"), "Read-only file system (EROFS)")
    code, _, err = cli(capsys, "report", out)  # an archived run: its plots cannot be redrawn there, but that is one line
    assert_one_error(code, err, str(out), "Read-only file system (EROFS)")
    assert snapshot(out) == before


def test_a_full_disk_is_one_line(capsys, tmp_path, tmpfs):
    fs = tmpfs("256k")
    code, _, err = _explore(capsys, write_design(tmp_path), fs / "run", 8 * POPULATION)
    assert_one_error(code, err, str(fs / "run"), "No space left on device (ENOSPC)")


# --- resume -----------------------------------------------------------------------------------


@pytest.fixture
def seeded_run(capsys, tmp_path) -> tuple[Path, Path]:
    design = write_design(tmp_path)
    out = tmp_path / "run"
    code, _, err = _explore(capsys, design, out, 2 * POPULATION, "--seed", "3")
    assert code == 0, err
    return design, out


def test_resume_refuses_another_seed(capsys, seeded_run):
    design, out = seeded_run
    before = snapshot(out)
    code, _, err = _explore(capsys, design, out, 3 * POPULATION, "--seed", "4")
    assert_one_error(code, err, "--seed 4", f"{out} holds a run with seed 3", "leave --seed out")
    assert snapshot(out) == before


def test_resume_without_a_seed_keeps_the_runs_own(capsys, seeded_run):
    design, out = seeded_run
    code, _, err = _explore(capsys, design, out, 3 * POPULATION)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["seed"] == 3


def test_resume_refuses_fewer_trials_than_the_run_holds(capsys, seeded_run):
    design, out = seeded_run
    before = snapshot(out)
    code, _, err = _explore(capsys, design, out, POPULATION, "--seed", "3")
    assert_one_error(code, err, f"--trials {POPULATION}", f"already holds {2 * POPULATION} trials", f"at least {2 * POPULATION}")
    after = snapshot(out)  # the journal is the storage's: opening it may record the study once more, not a trial
    assert {k: v for k, v in after.items() if k != "study.journal"} == {k: v for k, v in before.items() if k != "study.journal"}
    assert len(stored_trials(out)) == 2 * POPULATION


@pytest.fixture
def _fresh_plugin_modules():
    """The design's ``plugins`` package imported from this test's folder, and forgotten after it."""
    forget = lambda: [sys.modules.pop(name) for name in [m for m in sys.modules if m == "plugins" or m.startswith("plugins.")]]  # noqa: E731
    forget()
    yield forget
    forget()


def test_resume_refuses_an_edited_plugin(capsys, tmp_path, _fresh_plugin_modules):
    shutil.copytree(DESIGNS / "plugins", tmp_path / "plugins")
    design = tmp_path / "design.toml"
    design.write_text((DESIGNS / "edge_resnet18_chiplet_cost.toml").read_text().replace("population = 64", f"population = {POPULATION}"))
    out = tmp_path / "run"
    code, _, err = _explore(capsys, design, out, POPULATION)
    assert code == 0, err
    sources = json.loads((out / "run.json").read_text())["plugin_sources"]
    (spec, source), = sources.items()
    assert source["file"] == str((tmp_path / "plugins" / "chiplet_cost.py").resolve()) and len(source["sha256"]) == 64
    assert _explore(capsys, design, out, 2 * POPULATION)[0] == 0  # unchanged: resumes

    plugin = tmp_path / "plugins" / "chiplet_cost.py"
    plugin.write_text(plugin.read_text() + "\n# a new wafer price\n")
    _fresh_plugin_modules()
    before = snapshot(out)
    code, _, err = _explore(capsys, design, out, 3 * POPULATION)
    assert_one_error(code, err, f"--out {out}", f"another version of the plug-in {spec}", str(plugin.resolve()), "changed since")
    assert snapshot(out) == before


def test_refinement_stays_within_the_trials(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", DESIGNS / "quality_enumerable.toml", "--trials", 256, "--seed", "0", "--out", out,
                       "--refine", "mgda", "--device", "cpu", "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    stored = stored_trials(out)
    refined = [t for t in stored if "codesign:refined_from" in t.system_attrs]
    assert len(stored) == summary["n_trials"] == 256
    assert 0 < summary["refine"]["trials_added"] == len(refined) <= 256 // 4
    assert summary["status"] == "finished"


# --- one objective ----------------------------------------------------------------------------


def test_a_single_objective_run_gives_the_best_design(capsys, tmp_path):
    design = write_design(tmp_path, objectives=["latency_s"])
    out = tmp_path / "run"
    code, stdout, err = _explore(capsys, design, out, 3 * POPULATION)
    assert code == 0, err
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    trials = pd.read_csv(out / "trials.csv")
    feasible = trials[trials["feasible"]]
    best = feasible.sort_values(["latency_s", "trial"]).iloc[0]
    assert summary["best_trial"] == summary["knee_trial"] == int(best["trial"])
    assert summary["best"]["latency_s"] == pytest.approx(best["latency_s"])
    assert summary["best"]["cost_usd"] == pytest.approx(best["cost_usd"])
    front = pd.read_csv(out / "front.csv")
    assert (front["latency_s"] == best["latency_s"]).all()

    code, stdout, err = cli(capsys, "report", out)
    assert code == 0, err
    assert all(Path(line).is_file() for line in stdout.split())
    code, _, err = cli(capsys, "show", out, "--trial", summary["best_trial"])
    assert code == 0, err


def test_report_of_a_run_that_never_wrote_its_summary_says_interrupted(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", write_design(tmp_path), "--trials", 64, "--out", out, "--no-progress")
    assert code == 0, err
    (out / "summary.json").unlink()  # as a first run killed outright before its outputs leaves it
    code, _, err = cli(capsys, "report", out)
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_a_damaged_run_file_is_one_line(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", write_design(tmp_path), "--trials", 64, "--out", out, "--no-progress")
    assert code == 0, err
    (out / "summary.json").write_text("{not json")
    code, _, err = cli(capsys, "show", out, "--trial", 0)
    assert_one_error(code, err, str(out), "unreadable run outputs")
    (out / "run.json").write_text("[1, 2]")
    code, _, err = cli(capsys, "report", out)
    assert_one_error(code, err, "run.json", "expected a JSON object")


def test_a_plain_explore_does_not_take_over_an_oracle_run(tmp_path):
    from codesign.runs.folder import ORACLE_KIND, RUN_FILE, prepare_run_folder

    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_FILE).write_text(json.dumps({"kind": ORACLE_KIND, "fingerprint": "abc", "storage_url": None}))
    with pytest.raises(ArgumentError, match="holds an oracle-verified run"):
        prepare_run_folder(out, "abc", None, None)
