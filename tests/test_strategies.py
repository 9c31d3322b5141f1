"""The baseline strategies (sequential, random) and Optuna's other samplers: budgets, phases,
determinism, resume by replay, and the command line's handling of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from codesign import api
from codesign.errors import UserError
from codesign.model.evaluator import Evaluator
from codesign.search.driver import run_search
from codesign.search.pareto import spread_front
from codesign.search.strategies import PHASE_KEY, STRATEGY_KEY, default_schedule, hardware_columns
from tests.helpers import make_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = {"latency_s": 2e-2, "area_mm2": 10.0}


@pytest.fixture(scope="module")
def space():
    return make_space(search={"population": 16}, constraints=CONSTRAINTS, objectives={"minimize": ["latency_s", "energy_j"]},
                      schedule={"granularity": "group", "group_size": 6})


@pytest.fixture(scope="module")
def evaluator(space):
    return Evaluator(space)


def run(space, evaluator, strategy, n, seed=0, sampler="nsga2", study=None, **kw):
    study = study or optuna.create_study(directions=["minimize", "minimize"])
    timings, added = run_search(space, evaluator, study, n_trials=n, seed=seed, strategy=strategy, sampler=sampler, say=lambda _: None, **kw)
    return study, timings, added


def rows_of(space, study):
    return np.array([space.packed.row(t) for t in study.get_trials(deepcopy=False)])


@pytest.mark.parametrize("n", [96, 203])
def test_sequential_spends_the_same_budget_as_joint(space, evaluator, n):
    joint, jt, _ = run(space, evaluator, "joint", n)
    seq, st, added = run(space, evaluator, "sequential", n)
    assert len(joint.get_trials()) == len(seq.get_trials()) == added == n
    assert st.evaluated <= n and jt.evaluated <= n


def test_sequential_searches_hardware_first_then_schedules_of_front_hardware(space, evaluator):
    n = 200
    study, _, _ = run(space, evaluator, "sequential", n)
    trials = study.get_trials(deepcopy=False)
    rows = rows_of(space, study)
    hw, sched = hardware_columns(space)
    phases = [t.system_attrs[PHASE_KEY] for t in trials]
    assert phases == ["hardware"] * (n // 2) + ["schedule"] * (n - n // 2)
    assert {t.system_attrs[STRATEGY_KEY] for t in trials} == {"sequential"}
    default = default_schedule(space)
    first = rows[: n // 2]
    assert (first[:, sched] == default[sched]).all()  # phase 1: the default schedule only
    assert len({r.tobytes() for r in first[:, hw]}) > 10  # ...and many hardware designs
    # phase 2: only hardware from the feasible front of phase 1, each with its schedule searched
    allowed = {p.tobytes() for p in spread_front(trials[: n // 2], first, hw, 10**6)}
    second = rows[n // 2:]
    assert {r.tobytes() for r in second[:, hw]} <= allowed
    assert len({r.tobytes() for r in second[:, sched]}) > 10


def test_spread_front_picks_feasible_nondominated_parts(space, evaluator):
    study, _, _ = run(space, evaluator, "random", 64)
    trials = study.get_trials(deepcopy=False)
    rows = rows_of(space, study)
    hw, _ = hardware_columns(space)
    parts = spread_front(trials, rows, hw, 3)
    assert 1 <= len(parts) <= 3
    feasible = [t for t in trials if t.state.name == "COMPLETE" and all(v <= 0 for v in t.constraints.values())]
    values = np.array([t.values for t in feasible])
    for part in parts:
        i = next(i for i, t in enumerate(trials) if (rows[i, hw] == part).all() and t in feasible)
        v = np.array(trials[i].values)
        assert not ((values <= v).all(axis=1) & (values < v).any(axis=1)).any()


def test_random_is_uniform_and_deterministic(space, evaluator):
    a, _, _ = run(space, evaluator, "random", 400, seed=3)
    b, _, _ = run(space, evaluator, "random", 400, seed=3)
    c, _, _ = run(space, evaluator, "random", 400, seed=4)
    ra, rb, rc = rows_of(space, a), rows_of(space, b), rows_of(space, c)
    assert (ra == rb).all() and not (ra == rc).all()
    for j, knob in enumerate(space.knobs):
        n_values = len(knob.choices) if knob.choices is not None else knob.high + 1
        counts = np.bincount(ra[:, j], minlength=n_values)
        assert len(counts) == n_values and counts.min() > 0  # every value drawn, none out of range


@pytest.mark.parametrize("strategy,sampler", [("sequential", "nsga2"), ("random", "nsga2"), ("joint", "nsga3")])
def test_stopped_run_resumes_by_replay_to_the_same_trials(space, evaluator, strategy, sampler):
    whole, _, _ = run(space, evaluator, strategy, 150, sampler=sampler)

    class Stop(Exception):
        pass

    calls = []

    def stop_after_two(n):
        calls.append(n)
        if len(calls) == 2:
            raise Stop

    study = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(Stop):
        run(space, evaluator, strategy, 150, sampler=sampler, study=study, progress=stop_after_two)
    stopped_at = len(study.get_trials())
    assert 0 < stopped_at < 150
    _, timings, added = run(space, evaluator, strategy, 150, sampler=sampler, study=study)
    assert added == 150 - stopped_at
    assert (rows_of(space, study) == rows_of(space, whole)).all()
    assert [t.values for t in study.get_trials()] == [t.values for t in whole.get_trials()]


@pytest.mark.parametrize("strategy,sampler", [("random", "nsga2"), ("joint", "nsga3"), ("joint", "nsga2")])
def test_a_run_stopped_inside_a_batch_continues_with_the_rest_of_it(space, evaluator, strategy, sampler):
    whole, _, _ = run(space, evaluator, strategy, 90, sampler=sampler)
    study, _, added = run(space, evaluator, strategy, 40, sampler=sampler)  # 2.5 populations of 16
    assert added == 40
    _, _, added = run(space, evaluator, strategy, 90, sampler=sampler, study=study)
    assert added == 50
    assert (rows_of(space, study) == rows_of(space, whole)).all()


def test_sequential_resume_with_another_budget_is_a_user_error(space, evaluator):
    study, _, _ = run(space, evaluator, "sequential", 100)
    with pytest.raises(UserError, match=r"strategy='sequential': the run's stored trial \d+ is not what this strategy proposes \(with sampler nsga2, seed 0\)"):
        run(space, evaluator, "sequential", 300, study=study)
    assert len(study.get_trials()) == 100


def test_tpe_and_nsga3_fill_the_study_with_constraints(space, evaluator):
    for sampler in ("tpe", "nsga3"):
        study, _, added = run(space, evaluator, "joint", 40, sampler=sampler)
        trials = study.get_trials(deepcopy=False)
        assert added == len(trials) == 40
        assert {t.system_attrs[STRATEGY_KEY] for t in trials} == {f"joint-{sampler}"}
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        assert complete and all(len(t.system_attrs["constraints"]) == len(space.design.constraints) == 2 for t in complete)


def test_sampler_only_with_joint(space):
    with pytest.raises(UserError, match="sampler='tpe': applies to the joint strategy only"):
        api.explore(space.design, trials=10, strategy="random", sampler="tpe", say=lambda _: None)


def test_sequential_needs_hardware_and_schedule_knobs(evaluator):
    fixed_schedule = make_space(search={"population": 16}, constraints=CONSTRAINTS, objectives={"minimize": ["latency_s", "energy_j"]},
                                schedule={"mapping": "single_core", "dataflow": ["ws"]})
    with pytest.raises(UserError, match=r"strategy='sequential': needs both hardware and schedule knobs; .* searches no schedule knob"):
        run(fixed_schedule, Evaluator(fixed_schedule), "sequential", 32)


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "codesign", *args], cwd=cwd, capture_output=True, text=True)


def test_cli_strategy_flags_and_resume_check(tmp_path):
    design = ROOT / "designs" / "quality_enumerable.toml"
    out = tmp_path / "seq"
    done = cli("explore", str(design), "--trials", "128", "--strategy", "sequential", "--out", str(out), "--device", "cpu", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    summary = api.open_run(out).summary
    assert summary["strategy"] == "sequential" and summary["n_trials"] == 128
    again = cli("explore", str(design), "--trials", "200", "--strategy", "random", "--out", str(out), "--device", "cpu", cwd=ROOT)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "holds a run of strategy sequential" in again.stderr
    assert api.open_run(out).summary["n_trials"] == 128
    bad = cli("explore", str(design), "--strategy", "sequential", "--sampler", "tpe", "--out", str(tmp_path / "x"), cwd=ROOT)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "x").exists()
    flag = cli("explore", str(design), "--strategy", "greedy", cwd=ROOT)
    assert flag.returncode == 2 and "invalid choice" in flag.stderr
