"""One hypervolume reference point per design: from its budgets and a fixed sample of its space, so two
runs of the same design (other seeds, other trial counts, oracle runs) have comparable hypervolumes."""

from __future__ import annotations

import numpy as np
import pytest

from codesign.model.evaluator import Evaluator
from codesign.search.pareto import feasible_mask, reference_point
from codesign.search.reference import REFERENCE_RULE, design_reference_point, sample_rows
from tests.helpers import make_space


def test_the_reference_point_is_the_designs_own(small_space):
    evaluator = Evaluator(small_space)
    first = design_reference_point(small_space, evaluator)
    again = design_reference_point(make_space())  # its own evaluator, built from the design
    np.testing.assert_array_equal(first, again)  # the design's, not the run's: nothing random left
    names = evaluator.metric_names
    objectives = list(small_space.design.objectives.minimize)
    values, _ = evaluator.evaluate_rows(sample_rows(small_space))
    objs = values[:, [names.index(o) for o in objectives]]
    ok = feasible_mask(values, names, dict(small_space.design.constraints))
    np.testing.assert_allclose(first, reference_point(objs[ok] if ok.any() else objs))
    assert (first > np.nanmax(objs[ok] if ok.any() else objs, axis=0)).all()
    assert "budget" in REFERENCE_RULE and "seed" in REFERENCE_RULE


def test_a_budgeted_objective_has_its_budget_as_reference():
    space = make_space(constraints={"latency_s": 0.004})
    ref = design_reference_point(space, Evaluator(space), ["latency_s", "cost_usd"])
    assert ref[0] == pytest.approx(0.004)
    free = design_reference_point(make_space(), Evaluator(make_space()), ["latency_s", "cost_usd"])
    assert ref[0] != free[0]
