"""optuna-dashboard on a run's study: a real `codesign dashboard` server on 127.0.0.1, asked over HTTP.

The study page must name the objectives, show every trial's budgets (the constraints list the
dashboard reads) and put on its Pareto front exactly the designs of ``front.csv``: feasible, each
design once (optuna-dashboard's own front ignores the budgets).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from codesign import api
from codesign.runs.dashboard import run_front
from codesign.search.storage import open_storage, open_study

pytest.importorskip("optuna_dashboard")

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "designs" / "bench_resnet50_16core.toml"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("dashboard") / "run"
    api.explore(str(BENCH), trials=400, seed=2, out=str(out), say=lambda _: None)
    return out


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def test_the_dashboard_shows_the_runs_objectives_budgets_and_front(run_folder):
    server = subprocess.Popen([sys.executable, "-m", "codesign", "dashboard", str(run_folder), "--port", "0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not answer"
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == ["codesign"]
        detail = _get(f"{base}/api/studies/{studies[0]['study_id']}?after=0")
    finally:
        server.terminate()
        server.wait(timeout=30)
    trials = pd.read_csv(run_folder / "trials.csv").set_index("trial")
    front = pd.read_csv(run_folder / "front.csv")
    assert detail["objective_names"] == ["latency_s", "energy_j", "cost_usd"]
    assert len(detail["trials"]) == len(trials) == 400
    for t in detail["trials"]:
        if t["state"] == "Complete":
            assert len(t["constraints"]) == 2
            assert all(v <= 0 for v in t["constraints"]) == bool(trials.loc[t["number"], "feasible"])
    assert sorted(t["number"] for t in detail["best_trials"]) == sorted(front["trial"].tolist())
    assert all(trials.loc[t["number"], "feasible"] for t in detail["best_trials"])


def test_run_front_is_optunas_best_trials_each_design_once(run_folder):
    storage, _ = open_storage(run_folder, None, read_only=True)
    study = open_study(storage, ["minimize"] * 3, create=False)
    trials = study.get_trials(deepcopy=False)
    ours = run_front(trials, study.directions)
    best = [t for t in study.best_trials if "duplicate_of" not in t.user_attrs]  # Optuna's constrained front
    assert ours and [t.number for t in ours] == sorted(t.number for t in best)
    from optuna_dashboard._pareto_front import get_pareto_front_trials

    theirs = get_pareto_front_trials(trials, study.directions)  # what the dashboard shows by itself
    assert {t.number for t in ours} <= {t.number for t in theirs}
    assert any(any(v > 0 for v in t.constraints.values()) for t in theirs), "the plain front holds infeasible designs"


def test_not_a_run_folder_is_one_line_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "codesign", "dashboard", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not a codesign run folder" in done.stderr
