"""Gradient refinement: MGDA's common descent direction, PCGrad's projection, the relaxed model's
gradients, and refined designs that are valid and never dominated by where they started."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign import api
from codesign.errors import UserError
from codesign.model.evaluator import Evaluator
from codesign.search.driver import run_search
from codesign.search.refine import REFINE_KEY, Relaxation, check_refinable, combine, front_starts, min_norm_weights, refine_rows
from tests.helpers import make_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=4, max_size=4)


@given(st.lists(vectors, min_size=2, max_size=4))
@settings(max_examples=80, deadline=None)
def test_mgda_direction_is_the_min_norm_point_and_descends_every_objective(gradients):
    g = torch.tensor([gradients], dtype=torch.float64)  # [1, K, N]
    w = min_norm_weights(torch.einsum("pkn,pjn->pkj", g, g))
    assert torch.all(w >= -1e-12) and torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    d = torch.einsum("pk,pkn->pn", w, g)[0]
    # the min-norm point of the hull satisfies g_k·d ≥ ‖d‖² for every k: -d decreases every objective
    slack = g[0] @ d - d @ d
    assert torch.all(slack >= -1e-9 * (1 + g.abs().max() ** 2))
    # and no random point of the hull is shorter
    for weights in torch.distributions.Dirichlet(torch.ones(g.shape[1], dtype=torch.float64)).sample((50,)):
        assert (weights @ g[0]).norm() >= d.norm() - 1e-9 * (1 + g.abs().max())


def test_mgda_stops_at_a_pareto_stationary_point():
    g = torch.tensor([[[1.0, 2.0], [-1.0, -2.0]]], dtype=torch.float64)  # opposite gradients
    assert combine(g, "mgda", torch.Generator()).norm() < 1e-9


def test_pcgrad_removes_conflict():
    g = torch.tensor([[[1.0, 0.0], [-1.0, 1.0]]], dtype=torch.float64)
    d = combine(g, "pcgrad", torch.Generator().manual_seed(0))[0]
    # g1 loses its component along g2 and vice versa: the sum decreases both objectives
    assert (g[0] @ d >= -1e-12).all()
    aligned = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    assert torch.allclose(combine(aligned, "pcgrad", torch.Generator())[0], aligned[0].sum(0))  # no conflict: plain sum


@pytest.fixture(scope="module")
def setup():
    space = make_space(search={"population": 32}, constraints={"area_mm2": 10.0}, objectives={"minimize": ["latency_s", "cost_usd"]},
                       schedule={"granularity": "group", "group_size": 6})
    evaluator = Evaluator(space)
    study = optuna.create_study(directions=["minimize", "minimize"])
    run_search(space, evaluator, study, n_trials=192, seed=1, say=lambda _: None)
    return space, evaluator, study


def test_relaxed_model_has_gradients_for_every_relaxed_knob(setup):
    space, evaluator, study = setup
    relax = Relaxation(space, evaluator)
    rows, _ = front_starts(space, study.get_trials(deepcopy=False), 4)
    u, logits = relax.start(rows)
    u.requires_grad_(True)
    logits.requires_grad_(True)
    logs, _ = relax.objectives_of(rows, u, logits)
    exact, _ = evaluator.evaluate_rows(rows)
    names = evaluator.metric_names
    # at the starting point the relaxed model is the exact model (one-hot-ish dataflow weights aside: compare hardware only)
    assert torch.isfinite(logs).all()
    gu, gl = torch.autograd.grad(logs[:, 0].sum(), [u, logits])
    assert torch.isfinite(gu).all() and torch.isfinite(gl).all()
    assert (gu.abs().sum(dim=0) > 0).sum() >= 3  # latency moves with PE array, SRAM or bandwidth
    assert gl.abs().sum() > 0
    hard = relax.start(rows, temperature=1e4)
    logs_hard, _ = relax.objectives_of(rows, *hard)
    assert np.allclose(logs_hard.detach().exp().numpy()[:, 0], exact[:, names.index("latency_s")], rtol=1e-9)


@pytest.mark.parametrize("method", ["mgda", "pcgrad"])
def test_refined_designs_are_valid_and_never_dominated_by_their_start(setup, method):
    space, evaluator, study = setup
    rows, numbers = front_starts(space, study.get_trials(deepcopy=False), 16)
    found, origin, stats = refine_rows(space, evaluator, rows, method=method, steps=10, seed=0)
    assert stats.relaxed_evaluations == 10 * len(rows) and stats.returned == len(found)
    assert len(found) > 0
    for j, knob in enumerate(space.knobs):  # valid codes of every knob
        n_values = len(knob.choices) if knob.choices is not None else knob.high + 1
        assert found[:, j].min() >= 0 and found[:, j].max() < n_values
    values, errors = evaluator.evaluate_rows(torch.from_numpy(found))
    start_values, _ = evaluator.evaluate_rows(rows[torch.from_numpy(origin)])
    names = evaluator.metric_names
    obj = [names.index(o) for o in space.design.objectives.minimize]
    assert all(e is None for e in errors)
    assert (values[:, names.index("area_mm2")] <= 10.0).all()
    a, b = start_values[:, obj], values[:, obj]
    assert not ((a <= b).all(axis=1) & (a < b).any(axis=1)).any()
    assert not (space.canonical(torch.from_numpy(found)) == space.canonical(rows[torch.from_numpy(origin)])).all(dim=1).any()


def test_explore_refine_adds_refined_trials(tmp_path):
    run = api.explore("designs/quality_enumerable.toml", trials=256, seed=0, out=tmp_path / "r", refine="mgda", device="cpu", say=lambda _: None)
    trials = optuna.load_study(study_name="codesign", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "r" / "study.journal")))).get_trials(deepcopy=False)
    refined = [t for t in trials if REFINE_KEY in t.system_attrs]
    assert run.summary["refine"]["trials_added"] == len(refined) > 0
    assert run.summary["trials_added"] == len(trials) == run.summary["n_trials"] == 256  # refined designs count against the total
    assert all(t.system_attrs[REFINE_KEY] < 256 for t in refined)


@pytest.mark.parametrize("strategy", ["random", "sequential"])
def test_refine_with_a_replayed_strategy_stays_within_the_trials_and_resumes(tmp_path, strategy):
    """Refined designs were never proposed by the strategy: its replay on resume skips them."""
    out = tmp_path / "r"
    quiet = dict(seed=0, out=out, refine="mgda", device="cpu", say=lambda _: None, strategy=strategy)
    run = api.explore("designs/quality_enumerable.toml", trials=256, **quiet)
    assert run.summary["status"] == "finished" and run.summary["n_trials"] <= 256
    assert run.summary["refine"]["trials_added"] > 0
    if strategy == "random":  # sequential's phases are fixed by its total: it resumes only with the same one
        again = api.explore("designs/quality_enumerable.toml", trials=320, **quiet)
        assert again.summary["status"] == "finished" and again.summary["n_trials"] == 320


def test_refine_needs_objectives_of_the_builtin_model():
    space = make_space(objectives={"minimize": ["latency_s", "cost_usd"]})
    check_refinable(space, Evaluator(space))
    space, evaluator = api.build("designs/edge_resnet18_chiplet_cost.toml")  # its plug-in replaces cost_usd
    with pytest.raises(UserError, match="'cost_usd' comes from the plug-in ChipletCost"):
        check_refinable(space, evaluator)


def test_refinement_without_budgets_or_dataflow_knobs():
    space = make_space(objectives={"minimize": ["latency_s", "cost_usd"]}, schedule={"dataflow": "ws", "mapping": "round_robin"})
    evaluator = Evaluator(space)
    study = optuna.create_study(directions=["minimize", "minimize"])
    run_search(space, evaluator, study, n_trials=64, seed=0, say=lambda _: None)
    rows, _ = front_starts(space, study.get_trials(deepcopy=False), 4)
    found, origin, stats = refine_rows(space, evaluator, rows, method="mgda", steps=3)
    assert stats.relaxed_evaluations == 3 * len(rows) and len(found) == len(origin) == stats.returned


def test_refine_method_and_relaxed_knobs_come_from_the_vocabulary_and_registry():
    from codesign.errors import ArgumentError
    from codesign.knobs import knob_names
    from codesign.search.refine import RELAXED_FIELDS, relaxed_columns

    space = make_space(objectives={"minimize": ["latency_s", "energy_j"]})
    with pytest.raises(ArgumentError, match="refine='none': expected mgda or pcgrad") as error:
        refine_rows(space, Evaluator(space), torch.zeros(1, space.dimension, dtype=torch.long), method="none")
    assert error.value.words("cli") == "--refine none: expected mgda or pcgrad"
    assert RELAXED_FIELDS == knob_names(relaxable=True)
    assert set(relaxed_columns(space)) == {"pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "clock_ghz"}
