"""The fast generation loop is Optuna's NSGA-II: the same trials as a plain ask/tell loop, in a
storage plain Optuna reads (values, constraints, best trials, generations, parent caches),
deterministic per seed, resumable to exactly the requested total, evaluating each design once.

Correctness only; the speed is measured by scripts/bench_search.py and scripts/bench_storage.py.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from codesign import api
from codesign.model.evaluator import Evaluator
from codesign.packing import SCHEDULE_ATTR
from codesign.search.driver import run_search
from codesign.search.nsga2 import RNG_KEY, Nsga2, trials_domination
from codesign.search.optuna_internals import GENERATION_KEY, PARENT_KEY_PREFIX
from codesign.search.storage import STUDY_NAME, JOURNAL_FILE, TrialWriter, open_storage
from tests.helpers import make_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

CONSTRAINTS = {"latency_s": 2e-2, "area_mm2": 10.0}  # about one random design in six is feasible
OBJECTIVES = ["latency_s", "energy_j"]


def space_with(population: int, **overrides):
    return make_space(
        search={"population": population, **overrides.pop("search", {})},
        constraints=overrides.pop("constraints", CONSTRAINTS),
        objectives={"minimize": OBJECTIVES},
        **overrides,
    )


class FailSmallArrays:
    """A plug-in that fails every candidate with 4-row PE arrays (NaN power), keeping the rest."""

    provides = ("power_w",)

    def evaluate(self, candidates, metrics):
        power = metrics["power_w"].clone()
        power[candidates.pe_rows == 4] = math.nan
        return {"power_w": power}


def plain_optuna_trials(space, evaluator, n_trials: int, seed: int) -> list[optuna.trial.FrozenTrial]:
    """The reference: Optuna's NSGAIISampler through study.ask/study.tell, one trial at a time."""
    design, names = space.design, evaluator.metric_names
    sampler = optuna.samplers.NSGAIISampler(
        population_size=design.search.population, seed=seed,
        crossover_prob=design.search.crossover_prob, mutation_prob=design.search.mutation_prob,
    )
    study = optuna.create_study(directions=["minimize"] * len(OBJECTIVES), sampler=sampler)
    for _ in range(n_trials):
        trial = study.ask(space.distributions)
        values, errors = evaluator.evaluate_rows(torch.tensor([space.encode(trial.params)]))
        if errors[0] is not None:
            study.tell(trial, state=TrialState.FAIL)
            continue
        for name, bound in design.constraints.items():
            trial.set_constraint(name, float((values[0][names.index(name)] - bound) / bound))
        study.tell(trial, [float(values[0][names.index(o)]) for o in OBJECTIVES])
    return study.get_trials(deepcopy=False)


def fast_trials(space, evaluator, n_trials: int, seed: int, study=None) -> list[optuna.trial.FrozenTrial]:
    study = study or optuna.create_study(directions=["minimize"] * len(OBJECTIVES))
    run_search(space, evaluator, study, n_trials=n_trials, seed=seed, say=lambda _: None)
    return study.get_trials(deepcopy=False)


def knobs_of(trial) -> dict:
    """Every knob of a trial, whether it holds them as params (Optuna's own sampler) or packed (codesign)."""
    return {**trial.params, **{f"{family}[{i}]": v for family, values in trial.user_attrs.get(SCHEDULE_ATTR, {}).items()
                               for i, v in enumerate(values)}}


def unpacked(space, trial):
    """The trial with every knob an Optuna param (what Optuna's own samplers read)."""
    return optuna.trial.FrozenTrial(
        number=trial.number, state=trial.state, value=None, values=trial.values, datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete, params=space.decode_params(space.packed.row(trial)), distributions=space.distributions,
        user_attrs={}, system_attrs=trial.system_attrs, intermediate_values={}, trial_id=trial._trial_id)


def assert_same_trials(reference, ours, space=None):
    """Same trials; with ``space``, the reference may hold its knobs as params and ours packed."""
    assert len(reference) == len(ours)
    for a, b in zip(reference, ours):
        assert a.number == b.number
        assert a.state == b.state, a.number
        if space is None:
            assert knobs_of(a) == knobs_of(b), a.number
        else:
            assert space.packed.row(a) == space.packed.row(b), a.number
        assert a.values == b.values, a.number
        assert list(a.constraints.values()) == list(b.constraints.values()), a.number  # named (Optuna's set_constraint) or listed
        assert a.system_attrs[GENERATION_KEY] == b.system_attrs[GENERATION_KEY], a.number


def open_journal(out: Path) -> optuna.Study:
    """The run's study as plain Optuna opens it: a fresh JournalStorage replaying the file."""
    return optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(out / JOURNAL_FILE))))


# --- the same algorithm ----------------------------------------------------------------------


@pytest.mark.parametrize("population, generations, seed", [(6, 6, 3), (16, 4, 0)])
def test_same_trials_as_plain_optuna_ask_tell(population, generations, seed):
    space = space_with(population)
    evaluator = Evaluator(space)
    n = population * generations
    assert_same_trials(plain_optuna_trials(space, evaluator, n, seed), fast_trials(space, evaluator, n, seed), space)


def test_same_trials_as_plain_optuna_with_failing_trials_and_options():
    """Failed trials do not count towards a generation (Optuna refills it), set probabilities are used."""
    space = space_with(8, search={"mutation_prob": 0.2, "crossover_prob": 0.6})
    evaluator = Evaluator(space, [FailSmallArrays()])
    reference = plain_optuna_trials(space, evaluator, 60, 5)
    assert any(t.state == TrialState.FAIL for t in reference)
    ours = fast_trials(space, evaluator, 60, 5)
    assert_same_trials(reference, ours, space)
    fails = [t for t in ours if t.state == TrialState.FAIL]
    assert all("non-finite power_w" in t.user_attrs["fail_reason"] for t in fails)
    # a generation holds `population` complete trials; failed ones come on top
    complete = [t.system_attrs[GENERATION_KEY] for t in ours if t.state == TrialState.COMPLETE]
    assert all(complete.count(g) == 8 for g in set(complete) if g < max(complete))


def test_child_generation_matches_optuna_strategy():
    """Children drawn on code rows equal NSGAIIChildGenerationStrategy + RandomSampler on FrozenTrials."""
    from optuna.samplers._lazy_random_state import LazyRandomState
    from optuna.samplers.nsgaii._child_generation_strategy import NSGAIIChildGenerationStrategy
    from optuna.samplers.nsgaii._crossovers._uniform import UniformCrossover

    space = space_with(10)
    evaluator = Evaluator(space)
    parents = [unpacked(space, t) for t in fast_trials(space, evaluator, 10, 1) if t.state == TrialState.COMPLETE]
    nsga = Nsga2(space, population=10, crossover_prob=0.9, mutation_prob=0.3, seed=11, n_objectives=2)
    view = optuna.create_study(directions=["minimize", "minimize"])
    first_parents = nsga._elite(view, parents)  # the first child sees the selection order, the rest trial order
    nsga.parents[1], nsga._first[1] = parents, first_parents
    nsga.record(parents)
    ours = nsga.sample(1, 40)

    strategy = NSGAIIChildGenerationStrategy(
        crossover=UniformCrossover(0.5), crossover_prob=0.9, mutation_prob=0.3, swapping_prob=0.5, rng=LazyRandomState(11),
    )
    random_sampler = optuna.samplers.RandomSampler(seed=11)
    search_space = dict(sorted(space.distributions.items()))
    for c in range(40):
        params = strategy(view, search_space, first_parents if c == 0 else parents)
        for name, dist in space.distributions.items():
            if name not in params:
                params[name] = random_sampler.sample_independent(view, None, name, dist)
        assert space.encode(params) == ours[c].tolist(), c


def test_domination_matrix_is_optunas_relation():
    from datetime import datetime

    from optuna.samplers.nsgaii._constraints_evaluation import _constrained_dominates
    from optuna.study import StudyDirection
    from optuna.study._multi_objective import _dominates

    rng = np.random.default_rng(0)
    pool = []
    for i in range(60):
        values = rng.integers(0, 4, 2).astype(float).tolist()  # many ties and equal points
        constraints = {"a": float(rng.choice([-1.0, 0.0, 0.5, 1.5])), "b": float(rng.choice([-0.5, 0.0, 0.25]))}
        pool.append(optuna.trial.FrozenTrial(
            number=i, state=TrialState.COMPLETE, value=None, values=values, datetime_start=datetime.now(), datetime_complete=datetime.now(),
            params={}, distributions={}, user_attrs={}, system_attrs={f"constraints:{k}": v for k, v in constraints.items()},
            intermediate_values={}, trial_id=i,
        ))
    directions = [StudyDirection.MINIMIZE] * 2
    for constrained, relation in ((True, _constrained_dominates), (False, _dominates)):
        matrix = trials_domination(pool, constrained)
        expected = np.array([[relation(a, b, directions) for b in pool] for a in pool])
        assert (matrix == expected).all()


# --- storage ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def journal_run(tmp_path_factory) -> tuple[Path, api.Run]:
    out = tmp_path_factory.mktemp("loop") / "run"
    run = api.explore(space_with(12).design, trials=60, seed=4, out=out, device="cpu", say=lambda _: None)
    return out, run


def test_storage_is_read_by_plain_optuna(journal_run):
    out, run = journal_run
    study = open_journal(out)
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(60))
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    space = space_with(12)
    for t in trials:
        assert set(t.params) == {k.name for k in space.knobs if k.family is None}  # per-layer knobs: packed
        assert t.distributions == space.packed.distributions
        assert space.packed.row(t) is not None
        assert t.datetime_start is not None and t.datetime_complete is not None
        if t.state == TrialState.COMPLETE:
            metrics = t.user_attrs["metrics"]
            assert t.values == [metrics[o] for o in OBJECTIVES]
            assert len(t.system_attrs["constraints"]) == len(CONSTRAINTS)  # the list optuna-dashboard reads
            for value, (name, bound) in zip(t.system_attrs["constraints"], CONSTRAINTS.items()):
                assert value == pytest.approx((metrics[name] - bound) / bound)
    # best_trials applies Optuna's constrained domination: feasible, non-dominated, = our front
    best = study.best_trials
    assert best and all(all(v <= 0 for v in t.constraints.values()) for t in best)
    # front.csv lists each design once: the trial that first evaluated it
    assert sorted(t.number for t in best if "duplicate_of" not in t.user_attrs) == sorted(run.front["trial"].tolist())
    assert {tuple(t.values) for t in best} == {tuple(v) for v in run.front[OBJECTIVES].to_numpy().tolist()}
    # trials.csv agrees with the storage
    assert run.trials["trial"].tolist() == list(range(60))
    assert int(run.trials["feasible"].sum()) == sum(t.state == TrialState.COMPLETE and all(v <= 0 for v in t.constraints.values()) for t in trials)


def test_journal_fast_path_equals_what_optuna_replays(journal_run, tmp_path):
    """The trials handed to the in-memory replay equal those a fresh reader parses from the file."""
    out = tmp_path / "run"
    shutil.copytree(journal_run[0], out)
    storage, _ = open_storage(out, None)
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    writer = TrialWriter(study)
    assert writer.fast
    space = space_with(12)
    extra = fast_trials(space, Evaluator(space), 84, 4, study=study)  # resumes: 24 more through the fast path
    fresh = open_journal(out).get_trials(deepcopy=False)
    assert len(extra) == len(fresh) == 84
    for a, b in zip(extra, fresh):
        assert a == b, a.number  # every field: number, id, state, values, params, attrs, datetimes
    assert storage.get_study_system_attrs(study._study_id) == open_journal(out)._storage.get_study_system_attrs(0)


def test_generations_and_parent_cache_as_nsga2_stores_them(journal_run):
    out, _ = journal_run
    study = open_journal(out)
    trials = study.get_trials(deepcopy=False)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert [t.system_attrs[GENERATION_KEY] for t in trials] == [n // 12 for n in range(60)]
    ids = {t._trial_id for t in trials}
    for g in range(1, 5):
        parents = attrs[f"{PARENT_KEY_PREFIX}{g}"]
        assert len(parents) == 12 and set(parents) <= ids
        assert all(trials[i].system_attrs[GENERATION_KEY] < g for i in parents)
    assert f"{PARENT_KEY_PREFIX}5" not in attrs and attrs[RNG_KEY]["trials"] == 60
    # Optuna's own sampler picks the study up where the loop left it
    sampler = optuna.samplers.NSGAIISampler(population_size=12, seed=0)
    trial = study.ask(space_with(12).distributions)
    assert sampler.get_trial_generation(study, study._storage.get_trial(trial._trial_id)) == 5
    assert len(sampler.get_parent_population(study, 4)) == 12


def test_sqlite_storage_gets_the_same_trials(tmp_path, journal_run):
    out, _ = journal_run
    url = f"sqlite:///{tmp_path / 'study.db'}"
    api.explore(space_with(12).design, trials=24, seed=4, out=tmp_path / "run", storage=url, device="cpu", say=lambda _: None)
    study = optuna.load_study(study_name=STUDY_NAME, storage=url)
    assert_same_trials(open_journal(out).get_trials(deepcopy=False)[:24], study.get_trials(deepcopy=False))
    assert len(study._storage.get_study_system_attrs(study._study_id)[f"{PARENT_KEY_PREFIX}1"]) == 12


# --- determinism and resume --------------------------------------------------------------------


def test_same_seed_same_trials_and_front(tmp_path, journal_run):
    out, run = journal_run
    again = api.explore(space_with(12).design, trials=60, seed=4, out=tmp_path / "again", device="cpu", say=lambda _: None)
    assert_same_trials(open_journal(out).get_trials(deepcopy=False)[:60], open_journal(tmp_path / "again").get_trials(deepcopy=False))
    assert again.front.equals(run.front)
    other = api.explore(space_with(12).design, trials=24, seed=5, out=tmp_path / "other", device="cpu", say=lambda _: None)
    assert other.trials["trial"].tolist() == list(range(24))
    assert [t.params for t in open_journal(tmp_path / "other").get_trials()] != [t.params for t in open_journal(out).get_trials()[:24]]


def test_resume_adds_exactly_up_to_the_total_and_continues_the_run(tmp_path):
    """30 trials, then resumed to 70 (mid-generation both times): the 70 trials of one uninterrupted run."""
    design = space_with(16).design
    first = api.explore(design, trials=30, seed=2, out=tmp_path / "split", device="cpu", say=lambda _: None)
    assert first.summary["trials_added"] == 30
    resumed = api.explore(design, trials=70, seed=2, out=tmp_path / "split", device="cpu", say=lambda _: None)
    assert resumed.summary["trials_added"] == 40 and resumed.summary["n_trials"] == 70
    again = api.explore(design, trials=70, seed=2, out=tmp_path / "split", device="cpu", say=lambda _: None)
    assert again.summary["trials_added"] == 0 and again.summary["n_trials"] == 70
    whole = api.explore(design, trials=70, seed=2, out=tmp_path / "whole", device="cpu", say=lambda _: None)
    assert_same_trials(open_journal(tmp_path / "whole").get_trials(), open_journal(tmp_path / "split").get_trials())
    assert resumed.front.equals(whole.front)


def test_resume_of_a_study_without_parent_caches_is_what_optuna_does():
    """A study NSGA-II trials were added to without parent caches or random state (an older run):
    the loop selects the parents again as Optuna would, and continues like a fresh sampler would."""
    space = space_with(6)
    evaluator = Evaluator(space)
    first = plain_optuna_trials(space, evaluator, 18, 7)  # three generations
    reference = optuna.create_study(directions=["minimize"] * 2, sampler=optuna.samplers.NSGAIISampler(population_size=6, seed=7))
    reference.add_trials(first)
    ours = optuna.create_study(directions=["minimize"] * 2)
    ours.add_trials(first)
    names = evaluator.metric_names
    for _ in range(12):  # the reference goes on with plain ask/tell
        trial = reference.ask(space.distributions)
        values, _ = evaluator.evaluate_rows(torch.tensor([space.encode(trial.params)]))
        for name, bound in space.design.constraints.items():
            trial.set_constraint(name, float((values[0][names.index(name)] - bound) / bound))
        reference.tell(trial, [float(values[0][names.index(o)]) for o in OBJECTIVES])
    run_search(space, evaluator, ours, n_trials=30, seed=7, say=lambda _: None)
    assert_same_trials(reference.get_trials(deepcopy=False), ours.get_trials(deepcopy=False), space)


# --- repeated configurations -------------------------------------------------------------------


def test_repeated_configurations_are_evaluated_once(tmp_path):
    space = make_space(
        hardware={"grid_rows": 1, "grid_cols": [1, 2], "pe_rows": [4, 16], "pe_cols": [8, 32], "sram_kib": 64,
                  "dram_gbps": 25.6, "noc_link_gbps": 64.0, "clock_ghz": 1.0, "node": "7nm"},
        schedule={"granularity": "network"}, search={"population": 8}, objectives={"minimize": OBJECTIVES},
    )

    class Counting(Evaluator):
        rows = 0

        def evaluate_rows(self, rows):
            Counting.rows += len(rows)
            return super().evaluate_rows(rows)

    evaluator = Counting(space)
    study = optuna.create_study(directions=["minimize"] * 2)
    timings, added = run_search(space, evaluator, study, n_trials=64, seed=0, say=lambda _: None)
    trials = study.get_trials(deepcopy=False)
    canonical = [space.canonical(torch.tensor([space.encode(t.params)]))[0].tolist() for t in trials]
    unique = {tuple(c) for c in canonical}
    assert added == 64 and len(unique) < 64
    assert Counting.rows == timings.evaluated == len(unique)
    for t, c in zip(trials, canonical):
        first = t.user_attrs.get("duplicate_of")
        if first is None:
            assert canonical.index(c) == t.number  # the first of its design
        else:
            assert first < t.number and canonical[first] == c
            assert trials[first].values == t.values and trials[first].user_attrs["metrics"] == t.user_attrs["metrics"]
    # resumed, repeated designs are still not evaluated again
    Counting.rows = 0
    run_search(space, evaluator, study, n_trials=96, seed=0, say=lambda _: None)
    more = study.get_trials(deepcopy=False)[64:]
    fresh = {tuple(space.canonical(torch.tensor([space.encode(t.params)]))[0].tolist()) for t in more} - unique
    assert Counting.rows == len(fresh)


def test_timings_report_each_part_and_per_trial_cost():
    space = space_with(8)
    study = optuna.create_study(directions=["minimize"] * 2)
    timings, added = run_search(space, Evaluator(space), study, n_trials=40, seed=0, say=lambda _: None)
    d = timings.as_dict()
    assert added == 40 and d["batches"] == 5 and sum(n for n, _ in timings.generations) == 40
    assert all(d[k] >= 0 for k in ("sample_s", "evaluate_s", "tell_s", "store_s"))
    assert d["per_trial_first_10pct_s"] > 0 and d["per_trial_last_10pct_s"] > 0
    assert d["last_over_first_per_trial"] == pytest.approx(d["per_trial_last_10pct_s"] / d["per_trial_first_10pct_s"])


@pytest.mark.cuda
def test_cuda_loop_gives_the_cpu_trials():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    space = space_with(8)
    cpu = fast_trials(space, Evaluator(space), 32, 1)
    cuda = fast_trials(space, Evaluator(space, device="cuda"), 32, 1)
    assert [t.params for t in cpu] == [t.params for t in cuda]
    np.testing.assert_allclose([t.values or [np.nan] * 2 for t in cpu], [t.values or [np.nan] * 2 for t in cuda], rtol=1e-9)
