"""Tests for codesign.search.pareto (feasibility, dominance, spreading, non-dominance, hypervolume, knee,
fronts of trials tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from optuna.trial import FrozenTrial, TrialState

from codesign.search.pareto import (
    dominated_by,
    dominates,
    domination_matrix,
    feasible_mask,
    front_of,
    hypervolume,
    hypervolume_history,
    knee_point,
    nondominated_mask,
    reference_point,
    spread,
    spread_front,
    spread_positions,
    trial_feasible,
    trial_violation,
)

OBJ = ["latency_s", "energy_j"]


def brute_force_mask(values: np.ndarray) -> np.ndarray:
    """O(n^2) reference: finite rows not strictly dominated by any finite row."""
    n = len(values)
    finite = np.isfinite(values).all(axis=1)
    mask = np.zeros(n, dtype=bool)
    for i in range(n):
        if not finite[i]:
            continue
        mask[i] = not any(
            finite[j] and np.all(values[j] <= values[i]) and np.any(values[j] < values[i]) for j in range(n)
        )
    return mask


# Small integer grids force ties and duplicates.
def _points(m: int):
    return st.integers(0, 40).flatmap(
        lambda n: arrays(np.float64, (n, m), elements=st.integers(0, 5).map(float))
    )


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([2, 3]).flatmap(_points))
def test_nondominated_mask_matches_brute_force(values):
    np.testing.assert_array_equal(nondominated_mask(values), brute_force_mask(values))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 25), st.sampled_from([2, 3])),
           elements=st.sampled_from([0.0, 1.0, 2.5, 3.0, np.nan, np.inf, -np.inf]))
)
def test_nondominated_mask_with_non_finite(values):
    mask = nondominated_mask(values)
    np.testing.assert_array_equal(mask, brute_force_mask(values))
    assert not mask[~np.isfinite(values).all(axis=1)].any()


def test_nondominated_mask_continuous_random():
    rng = np.random.default_rng(0)
    values = rng.random((300, 3))
    np.testing.assert_array_equal(nondominated_mask(values), brute_force_mask(values))


def test_nondominated_mask_keeps_duplicates_and_empty():
    values = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])
    assert nondominated_mask(values).tolist() == [True, True, True, False]
    assert nondominated_mask(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ValueError, match="values"):
        nondominated_mask(np.array([1.0, 2.0]))


def test_hypervolume_hand_computed():
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(pts, [4.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(pts[:1], [4.0, 4.0]) == pytest.approx(3.0)
    # A dominated point and a point beyond the reference add nothing.
    more = np.vstack([pts, [[3.5, 3.5], [0.5, 5.0], [np.nan, 0.0]]])
    assert hypervolume(more, [4.0, 4.0]) == pytest.approx(6.0)
    # A point on the reference boundary contributes nothing.
    assert hypervolume(np.array([[4.0, 1.0]]), [4.0, 4.0]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [1.0, 1.0]) == 0.0
    # 3-D unit cubes: (0,0,0) with ref (1,1,1) -> 1; adding (0.5, 0.5, -1) adds 0.25 * 1.
    assert hypervolume(np.array([[0.0, 0.0, 0.0]]), [1, 1, 1]) == pytest.approx(1.0)
    assert hypervolume(np.array([[0.0, 0.0, 0.0], [0.5, 0.5, -1.0]]), [1, 1, 1]) == pytest.approx(1.25)
    with pytest.raises(ValueError, match="reference_point"):
        hypervolume(pts, [4.0])


@settings(max_examples=80, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 20), st.sampled_from([1, 2, 3])),
              elements=st.floats(-1e3, 1e3, allow_nan=False).filter(lambda v: v == 0 or abs(v) >= 1e-3)),
       st.floats(0.01, 2.0))
def test_reference_point_strictly_worse_than_nadir(values, margin):
    ref = reference_point(values, margin=margin)
    assert ref.shape == (values.shape[1],)
    assert np.all(ref > values.max(axis=0))
    # Every point then contributes: the hypervolume is positive.
    assert hypervolume(values, ref) > 0


def test_reference_point_formula_and_degenerate():
    values = np.array([[1.0, 10.0], [3.0, 20.0]])
    np.testing.assert_allclose(reference_point(values), [3.2, 21.0])
    np.testing.assert_allclose(reference_point(np.array([[2.0, 0.0, -4.0]])), [2.2, 0.1, -3.6])
    with pytest.raises(ValueError, match="margin"):
        reference_point(values, margin=0)
    with pytest.raises(ValueError, match="values"):
        reference_point(np.array([[np.nan, 1.0]]))


def test_knee_of_l_shaped_front_is_the_corner():
    # Convex L: a vertical arm down to the corner (1, 1), then a horizontal arm.
    front = np.array([[1.0, 10.0], [1.02, 6.0], [1.04, 3.0], [1.1, 1.1], [3.0, 1.06], [6.0, 1.03],
                      [10.0, 1.0]])
    assert nondominated_mask(front).all()
    assert knee_point(front) == 3
    # Same front shuffled, in 3-D with a constant third objective.
    perm = np.random.default_rng(1).permutation(len(front))
    front3 = np.hstack([front[perm], np.ones((len(front), 1))])
    assert perm[knee_point(front3)] == 3


def test_knee_small_and_degenerate_inputs():
    assert knee_point(np.array([[1.0, 2.0]])) == 0
    assert knee_point(np.array([[0.0, 10.0], [10.0, 0.0]])) in (0, 1)
    assert knee_point(np.array([[2.0, 2.0], [1.0, 1.0]])) == 1
    # A straight front has no bulge: closest to the ideal (the middle point).
    assert knee_point(np.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])) == 1
    # 3-objective simplex corners plus a bulging point.
    pts = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.2, 0.2, 0.2]])
    assert knee_point(pts) == 3
    with pytest.raises(ValueError, match="values"):
        knee_point(np.zeros((0, 2)))


def _trials(values, feasible=None) -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    df = pd.DataFrame(values, columns=OBJ[: values.shape[1]])
    df.insert(0, "trial", np.arange(len(df)))
    df["feasible"] = True if feasible is None else feasible
    df["hw.pe_rows"] = 16
    return df


def test_front_of_drops_infeasible_and_nan_and_is_exactly_nondominated():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 8, size=(200, 2)).astype(float)
    values[rng.random(200) < 0.1, 0] = np.nan
    values[rng.random(200) < 0.05, 1] = np.inf
    feasible = rng.random(200) < 0.8
    trials = _trials(values, feasible).sample(frac=1.0, random_state=0)  # shuffled rows

    front = front_of(trials, OBJ)
    assert front["feasible"].all()
    assert np.isfinite(front[OBJ].to_numpy()).all()
    assert front["trial"].is_monotonic_increasing
    assert list(front.columns) == list(trials.columns)

    usable = trials[trials["feasible"] & np.isfinite(trials[OBJ]).all(axis=1)]
    expected = usable[brute_force_mask(usable[OBJ].to_numpy())]
    assert sorted(front["trial"]) == sorted(expected["trial"])
    # An infeasible point dominating everything does not hide the feasible front.
    best = _trials([[0.0, 0.0], [1.0, 2.0], [2.0, 1.0]], [False, True, True])
    assert front_of(best, OBJ)["trial"].tolist() == [1, 2]


def test_front_of_validates():
    with pytest.raises(ValueError, match="trials"):
        front_of(_trials([[1.0, 2.0]]).drop(columns="feasible"), OBJ)
    with pytest.raises(ValueError, match="objectives"):
        front_of(_trials([[1.0, 2.0]]), [])
    assert front_of(_trials(np.zeros((0, 2))), OBJ).empty


def test_hypervolume_history_non_decreasing_and_final_value():
    rng = np.random.default_rng(7)
    values = rng.random((137, 2))
    feasible = rng.random(137) < 0.7
    trials = _trials(values, feasible)
    ref = reference_point(values[feasible])
    hist = hypervolume_history(trials, OBJ, ref, n_points=25)
    assert list(hist.columns) == ["trial", "hypervolume"]
    assert len(hist) == 25
    assert hist["trial"].iloc[-1] == trials["trial"].max()
    assert np.all(np.diff(hist["hypervolume"].to_numpy()) >= 0)
    final = hypervolume(front_of(trials, OBJ)[OBJ].to_numpy(), ref)
    assert hist["hypervolume"].iloc[-1] == pytest.approx(final)
    # More checkpoints than trials: one per trial.
    assert len(hypervolume_history(trials.head(10), OBJ, ref, n_points=100)) == 10
    assert hypervolume_history(trials.head(0), OBJ, ref).empty
    with pytest.raises(ValueError, match="n_points"):
        hypervolume_history(trials, OBJ, ref, n_points=0)
    with pytest.raises(ValueError, match="reference_point"):
        hypervolume_history(trials, OBJ, [1.0])


# --- feasibility, dominance, spreading ------------------------------------------------------


def trial(number, values, constraints, state=TrialState.COMPLETE):
    return FrozenTrial(number=number, state=state, value=None, values=values, datetime_start=None, datetime_complete=None,
                       params={}, distributions={}, user_attrs={}, system_attrs={f"constraints:{k}": v for k, v in constraints.items()},
                       intermediate_values={}, trial_id=number)


def test_feasibility_of_metric_rows_and_of_trials():
    values = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 9.0]])
    assert feasible_mask(values, ["a", "b"], {"b": 6.0}).tolist() == [True, False, False]
    assert trial_feasible(trial(0, [1.0], {"a": 0.0, "b": -1.0}))
    assert not trial_feasible(trial(1, [1.0], {"a": 0.5}))
    assert not trial_feasible(trial(2, None, {}, state=TrialState.FAIL))
    assert trial_violation(trial(3, [1.0], {"a": 0.5, "b": -2.0, "c": 0.25})) == 0.75
    assert trial_violation(trial(4, [1.0], {"a": -0.5})) == 0.0
    assert trial_violation(trial(5, None, {}, state=TrialState.FAIL)) == float("inf")


@settings(max_examples=100, deadline=None)
@given(_points(2).filter(lambda v: len(v) > 0), st.data())
def test_dominance_relations_agree(values, data):
    n = len(values)
    matrix = domination_matrix(values)
    brute = np.array([[np.all(a <= b) and np.any(a < b) for b in values] for a in values])
    assert (matrix == brute).all() and (dominates(values[:, None], values[None, :]) == brute).all()
    assert (~dominated_by(values, values) == brute_force_mask(values)).all()
    violations = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.5]), min_size=n, max_size=n)))
    constrained = domination_matrix(values, violations)
    for a in range(n):
        for b in range(n):
            fa, fb = violations[a] == 0, violations[b] == 0
            expected = brute[a, b] if fa and fb else (fa if fa != fb else violations[a] < violations[b])
            assert constrained[a, b] == expected


def test_dominated_by_empty_inputs():
    assert dominated_by(np.zeros((0, 2)), np.ones((3, 2))).tolist() == [False] * 3
    assert dominated_by(np.ones((2, 2)), np.zeros((0, 2))).shape == (0,)


def test_spread_takes_extremes_and_even_positions_along_the_front():
    assert spread_positions(5, 9).tolist() == [0, 1, 2, 3, 4]
    assert spread_positions(11, 3).tolist() == [0, 5, 10]
    assert spread_positions(4, 0).tolist() == []
    front = np.array([[3.0, 1.0], [0.0, 9.0], [1.0, 5.0], [2.0, 2.0], [4.0, 0.5]])  # unsorted
    assert spread(front, 3).tolist() == [1, 3, 4]  # first, middle and last along the first objective
    assert sorted(spread(front, 10).tolist()) == list(range(5))
    tied = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 4.0], [0.0, 5.0, 5.0]])
    assert spread(tied, 3).tolist() == [2, 1, 0]  # ties in the first objective: lexicographic


def test_spread_front_counts_each_part_once_and_falls_back_to_least_violating():
    trials = [
        trial(0, [1.0, 9.0], {"a": -1.0}), trial(1, [1.0, 9.0], {"a": -1.0}),  # the same front point twice
        trial(2, [5.0, 5.0], {"a": 0.0}), trial(3, [9.0, 1.0], {"a": -0.5}),
        trial(4, [6.0, 6.0], {"a": -1.0}),  # dominated
        trial(5, [0.0, 0.0], {"a": 2.0}),  # infeasible
    ]
    rows = np.array([[0, 1], [0, 1], [1, 1], [2, 0], [3, 3], [4, 4]])
    assert [p.tolist() for p in spread_front(trials, rows, [0, 1], 5)] == [[0, 1], [1, 1], [2, 0]]
    assert [p.tolist() for p in spread_front(trials, rows, [0], 2)] == [[0], [2]]
    infeasible = [trial(0, [1.0, 1.0], {"a": 2.0}), trial(1, [2.0, 2.0], {"a": 0.5}), trial(2, None, {}, state=TrialState.FAIL)]
    assert [p.tolist() for p in spread_front(infeasible, rows[:3], [0, 1], 3)] == [[0, 1]]
