"""A trial's stored form (codesign/packing.py): scalar knobs as Optuna params, per-layer knobs packed.

Pinned here: every stored trial reads back to the row it was made from (through codesign and through
plain ``optuna.load_study``), a trial holding every knob as a param (Optuna's samplers, older runs)
reads the same, ``trials.csv`` has every knob's column, and a run of the benchmark design stores
at most 4 KiB of journal per trial (issue: 19.6 KB with every knob a param).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from codesign.design import load_design
from codesign.packing import SCHEDULE_ATTR, UNITS_ATTR, PackedForm
from codesign.api import explore
from codesign.space import DesignSpace

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "designs" / "bench_resnet50_16core.toml"
FUSED = ROOT / "designs" / "bench_resnet50_16core_fused.toml"


def plain_study(path: Path) -> optuna.Study:
    """The study as plain Optuna reads it: its own journal backend, nothing of codesign."""
    return optuna.load_study(study_name="codesign", storage=JournalStorage(JournalFileBackend(str(path))))


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("packing") / "run"
    explore(str(BENCH), trials=300, out=str(out), seed=3, say=lambda _: None)
    return out


def test_bench_design_stores_at_most_4_kib_per_trial(bench_run):
    trials = plain_study(bench_run / "study.journal").get_trials(deepcopy=False)
    assert len(trials) == 300
    assert (bench_run / "study.journal").stat().st_size / len(trials) <= 4096


def test_plain_optuna_reads_the_scalar_knobs_as_params_and_the_layers_packed(bench_run):
    study = plain_study(bench_run / "study.journal")
    space = DesignSpace.from_design(load_design(BENCH))
    scalar = {k.name for k in space.knobs if k.family is None}
    assert scalar and all(k.startswith("hw.") for k in scalar)
    units = study.user_attrs[UNITS_ATTR]
    assert set(units) == {"sched.dataflow", "sched.core"} and len(units["sched.core"]) == len(space.lowered.names)
    assert units["sched.core"][0] == space.lowered.names[0]
    for t in study.get_trials(deepcopy=False):
        assert set(t.params) == scalar
        assert {f: len(v) for f, v in t.user_attrs[SCHEDULE_ATTR].items()} == {f: len(u) for f, u in units.items()}
        assert set(t.user_attrs[SCHEDULE_ATTR]["sched.dataflow"]) <= {"ws", "os", "is"}


def test_trials_csv_has_every_knob_equal_to_the_stored_trial(bench_run):
    space = DesignSpace.from_design(load_design(BENCH))
    frame = pd.read_csv(bench_run / "trials.csv")
    trials = {t.number: t for t in plain_study(bench_run / "study.journal").get_trials(deepcopy=False)}
    assert [k.name for k in space.knobs] == [c for c in frame.columns if c.startswith(("hw.", "sched."))]
    for _, record in frame.sample(20, random_state=0).iterrows():
        row = space.packed.row(trials[int(record["trial"])])
        expected = space.decode_params(row)
        assert {k: str(record[k]) for k in expected} == {k: str(v) for k, v in expected.items()}


def test_constraints_are_the_list_optuna_dashboard_reads(bench_run):
    study = plain_study(bench_run / "study.journal")
    frame = pd.read_csv(bench_run / "trials.csv").set_index("trial")
    assert study.user_attrs["constraint_names"] == ["area_mm2", "power_w"]
    assert study.metric_names == ["latency_s", "energy_j", "cost_usd"]
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert len(t.system_attrs["constraints"]) == 2
            assert all(v <= 0 for v in t.system_attrs["constraints"]) == bool(frame.loc[t.number, "feasible"])


@pytest.mark.parametrize("design", [BENCH, FUSED])
def test_rows_survive_the_stored_form_either_way(design):
    space = DesignSpace.from_design(load_design(design))
    rng = np.random.default_rng(0)
    highs = np.array([len(k.choices) if k.choices is not None else k.high + 1 for k in space.knobs])
    rows = (rng.random((50, space.dimension)) * highs).astype(np.int64).tolist()
    everything = PackedForm([replace(k, family=None) for k in space.knobs])  # every knob a param
    for row in rows:
        params, packed = space.packed.split(row)
        assert space.packed.row(optuna.trial.create_trial(params=params, distributions=space.packed.distributions,
                                                          user_attrs={SCHEDULE_ATTR: packed}, values=[1.0])) == row
        full, nothing = everything.split(row)
        assert nothing == {} and full == space.decode_params(row)
        old = optuna.trial.create_trial(params=full, distributions=space.distributions, values=[1.0])
        assert space.packed.row(old) == row  # a trial with every knob a param reads the same
    assert space.packed.row(optuna.trial.create_trial(params={}, distributions={}, values=[1.0])) is None


def test_a_resumed_run_reads_its_packed_trials_back(tmp_path):
    """A resume replays the stored generations from their packed form: same trials as one long run."""
    explore(str(BENCH), trials=200, out=str(tmp_path / "a"), seed=5, say=lambda _: None)
    explore(str(BENCH), trials=400, out=str(tmp_path / "a"), seed=5, say=lambda _: None)
    explore(str(BENCH), trials=400, out=str(tmp_path / "b"), seed=5, say=lambda _: None)
    a = plain_study(tmp_path / "a" / "study.journal").get_trials(deepcopy=False)
    b = plain_study(tmp_path / "b" / "study.journal").get_trials(deepcopy=False)
    assert [(t.params, t.user_attrs.get(SCHEDULE_ATTR), t.values) for t in a] == [(t.params, t.user_attrs.get(SCHEDULE_ATTR), t.values) for t in b]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["n_trials"] == 400
