"""Pareto-front utilities: feasibility, dominance, spreading, hypervolume, knee point, front history.

The one home of each: budgets met (:func:`feasible_mask` on metric rows,
:func:`trial_violation`/:func:`trial_feasible` on Optuna trials), Pareto dominance
(:func:`dominates`, :func:`dominated_by`, :func:`domination_matrix` with Optuna's
constrained domination, :func:`nondominated_mask`), picking points spread along a front
(:func:`spread`, :func:`spread_front`).

Every objective is **minimised**. Objective vectors are ``[n, m]`` float arrays
(``n`` points, ``m`` objectives); a trials table is a :class:`pandas.DataFrame`
with a ``trial`` column, one column per objective and a boolean ``feasible``
column.

Non-dominated filtering and hypervolume are delegated to `moocore
<https://multi-objective.github.io/moocore/python/>`_ (dimension-sweep
algorithms, exact hypervolume); this module only handles validation,
non-finite values, reference points and the bookkeeping over trials tables.

Reference point convention (stated in the run summary): unless one is given,
the hypervolume reference point is :func:`reference_point` of the feasible,
finite objective vectors, i.e. ``nadir + margin * (nadir - ideal)`` per
objective with ``margin = 0.1``. Each objective with zero range falls back to
``nadir + margin * |nadir|`` (or ``nadir + margin`` when the nadir is 0), so the
reference is always strictly worse than the nadir and every front point
contributes a positive volume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import moocore
import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "feasible_mask",
    "trial_violation",
    "trial_feasible",
    "dominates",
    "dominated_by",
    "domination_matrix",
    "nondominated_mask",
    "spread",
    "spread_front",
    "reference_point",
    "hypervolume",
    "knee_point",
    "front_of",
    "hypervolume_history",
]


def _as_points(values, name: str = "values") -> np.ndarray:
    """``values`` as a float ``[n, m]`` array (``m >= 1``); raises ``ValueError`` otherwise."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric [n, m] array ({exc})") from exc
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D [n, m] array, got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one objective column, got shape {arr.shape}")
    return arr


def _finite_rows(arr: np.ndarray) -> np.ndarray:
    """Bool ``[n]``: rows whose every entry is finite."""
    return np.isfinite(arr).all(axis=1)


def feasible_mask(values: np.ndarray, names: Sequence[str], constraints: dict) -> np.ndarray:
    """Bool ``[n]``: every metric of the row is finite and each budget ``constraints[name]`` is met.

    ``values`` is ``[n, len(names)]`` metrics as :meth:`Evaluator.evaluate_rows` returns them; a
    candidate that failed has NaN metrics there, so a failed candidate is never feasible.
    """
    ok = np.isfinite(values).all(axis=1)
    for name, bound in constraints.items():
        ok &= values[:, names.index(name)] <= bound
    return ok


def violation(constraints: Mapping[str, float]) -> float:
    """Total violation of a trial's budgets (Optuna's ``Trial.constraints``: ``<= 0`` is met): the sum
    of the positive values, summed in order as Optuna's constrained domination sums them; 0 when all are met."""
    return sum(v for v in constraints.values() if v > 0)


def trial_violation(trial: FrozenTrial) -> float:
    """:func:`violation` of a complete trial; infinite for one that did not complete."""
    return violation(trial.constraints) if trial.state == TrialState.COMPLETE else float("inf")


def trial_feasible(trial: FrozenTrial) -> bool:
    """The trial completed and meets every budget."""
    return trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def dominates(a, b) -> np.ndarray:
    """``a`` Pareto-dominates ``b`` (broadcast over leading axes; objectives on the last one): no worse
    in every objective and better in one."""
    a, b = np.asarray(a), np.asarray(b)
    return (a <= b).all(axis=-1) & (a < b).any(axis=-1)


def dominated_by(front, points) -> np.ndarray:
    """Bool ``[n]``: ``points[i]`` is dominated by some row of ``front``."""
    front, points = np.asarray(front, dtype=float), np.asarray(points, dtype=float)
    if len(front) == 0 or len(points) == 0:
        return np.zeros(len(points), dtype=bool)
    return dominates(front[None, :, :], points[:, None, :]).any(axis=1)


def domination_matrix(values, violations=None) -> np.ndarray:
    """``D[a, b]``: point ``a`` dominates point ``b`` (``values`` ``[n, m]``, every objective minimised).

    Without ``violations``: Pareto dominance. With them (``[n]``, :func:`violation` of each point,
    0 when feasible): Optuna's constrained domination of complete trials: feasible beats
    infeasible, two infeasible ones compare their total violation, two feasible ones Pareto.
    """
    values = np.asarray(values, dtype=np.float64)
    pareto = dominates(values[:, None, :], values[None, :, :])
    if violations is None:
        return pareto
    violations = np.asarray(violations, dtype=np.float64)
    feasible = violations <= 0
    both = feasible[:, None] & feasible[None, :]
    infeasible = ~feasible[:, None] & ~feasible[None, :]
    return np.where(both, pareto, np.where(infeasible, violations[:, None] < violations[None, :], feasible[:, None]))


def nondominated_mask(values) -> np.ndarray:
    """Mask of the (weakly) non-dominated points of ``values`` under minimisation.

    Args:
        values: ``[n, m]`` objective vectors.

    Returns:
        bool ``[n]``: ``True`` for a point that no other point strictly dominates
        (no other point is ``<=`` in every objective and ``<`` in at least one).
        Duplicated objective vectors are all kept. Rows holding a NaN or an
        infinity are never on the front (and do not dominate anything). An empty
        input gives an empty mask.
    """
    arr = _as_points(values)
    mask = np.zeros(arr.shape[0], dtype=bool)
    finite = _finite_rows(arr)
    if finite.any():
        mask[finite] = moocore.is_nondominated(arr[finite], keep_weakly=True)
    return mask


def spread_positions(n: int, k: int) -> np.ndarray:
    """Up to ``k`` positions among ``0..n-1``, evenly spaced, first and last included (all when ``k >= n``)."""
    if k >= n:
        return np.arange(n)
    if k <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def spread(values, k: int) -> np.ndarray:
    """Indices of up to ``k`` points of a front spread evenly along it (its extremes included).

    The points go in lexicographic order of their objectives (on a front: along the first
    objective), equal ones in index order; ``k`` evenly spaced positions of that order are taken.
    """
    values = np.asarray(values, dtype=float)
    order = np.lexsort(values.T[::-1]) if values.size else np.arange(len(values))
    return order[spread_positions(len(order), k)]


def spread_front(trials: Sequence[FrozenTrial], rows: np.ndarray, cols: list[int], k: int) -> list[np.ndarray]:
    """Up to ``k`` distinct ``cols``-parts of ``rows`` (one row per trial) on the feasible front of
    ``trials``, spread evenly along it (:func:`spread`, a part counted once where several front trials share it).

    With no feasible trial, the part of the least-violating one.
    """
    feasible = [i for i, t in enumerate(trials) if trial_feasible(t)]
    if not feasible:
        best = min(range(len(trials)), key=lambda i: trial_violation(trials[i]))
        return [rows[best, cols]]
    values = np.array([trials[i].values for i in feasible], dtype=np.float64)
    on_front = np.flatnonzero(nondominated_mask(values))
    front = [feasible[j] for j in on_front[np.lexsort(values[on_front].T[::-1])]]
    parts: list[np.ndarray] = []
    seen: set[bytes] = set()
    for i in front:
        part = rows[i, cols]
        if part.tobytes() not in seen:
            seen.add(part.tobytes())
            parts.append(part)
    return [parts[i] for i in spread_positions(len(parts), k)]


def reference_point(values, margin: float = 0.1) -> np.ndarray:
    """Hypervolume reference point: the nadir pushed out by ``margin`` of the range.

    ``ref_j = nadir_j + margin * (nadir_j - ideal_j)`` where ``nadir``/``ideal`` are
    the per-objective max/min over the finite rows of ``values``. For an
    objective with zero range (e.g. a single point) it is
    ``nadir_j + margin * |nadir_j|``, or ``nadir_j + margin`` when ``nadir_j == 0``.
    The result is always strictly greater than the nadir in every objective.

    Args:
        values: ``[n, m]`` objective vectors (non-finite rows are ignored).
        margin: relative enlargement, ``> 0``.

    Returns:
        float ``[m]``.
    """
    arr = _as_points(values)
    margin = float(margin)
    if not np.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin: must be a finite number > 0, got {margin}")
    finite = arr[_finite_rows(arr)]
    if finite.shape[0] == 0:
        raise ValueError("values: no row with all-finite objectives to build a reference point from")
    nadir = finite.max(axis=0)
    ideal = finite.min(axis=0)
    span = nadir - ideal
    fallback = np.where(nadir != 0, np.abs(nadir), 1.0)
    ref = nadir + margin * np.where(span > 0, span, fallback)
    # A range tiny relative to the nadir can vanish in floating point.
    return np.where(ref > nadir, ref, np.nextafter(nadir, np.inf))


def hypervolume(values, reference_point) -> float:
    """Hypervolume dominated by ``values`` and bounded by ``reference_point`` (moocore).

    Args:
        values: ``[n, m]`` objective vectors (need not be non-dominated).
        reference_point: ``[m]`` finite reference point.

    Returns:
        The hypervolume (in the product of the objectives' units). Points that
        are not strictly better than the reference in every objective, and
        non-finite rows, contribute nothing; no contributing point gives ``0.0``.
    """
    arr = _as_points(values)
    ref = np.asarray(reference_point, dtype=float)
    if ref.ndim != 1 or ref.shape[0] != arr.shape[1]:
        raise ValueError(
            f"reference_point: expected shape ({arr.shape[1]},) to match values {arr.shape}, got {ref.shape}"
        )
    if not np.isfinite(ref).all():
        raise ValueError(f"reference_point: must be finite, got {ref}")
    keep = _finite_rows(arr)
    keep[keep] = (arr[keep] < ref).all(axis=1)
    if not keep.any():
        return 0.0
    return float(moocore.hypervolume(arr[keep], ref=ref))


def knee_point(values) -> int:
    """Index (into ``values``) of the knee of a Pareto front.

    Each objective is normalised to ``[0, 1]`` over the given points (an
    objective with zero range maps to 0). The knee is the point with the largest
    distance, on the side of the ideal point, from the hyperplane through the
    extreme points (for 2 objectives: the line joining the two extremes) -- the
    "maximum bulge" criterion of the normal-boundary-intersection view of Das
    (1999, "On characterizing the 'knee' of the Pareto curve based on
    normal-boundary intersection", Structural Optimization 18) and of Branke,
    Deb, Dierolf & Osswald (2004, "Finding knees in multi-objective
    optimization", PPSN VIII, LNCS 3242).

    The extreme point of objective ``j`` is the point with the smallest
    normalised value in ``j`` (ties broken by the smallest sum of the others).
    When the extremes are degenerate (they do not span a hyperplane whose normal
    points to the ideal), the hyperplane ``sum(f) = 1`` of the normalised space
    is used instead. With fewer than 3 points, or when no point lies strictly on
    the ideal side of the hyperplane (a linear or concave front), the point
    closest (Euclidean, normalised space) to the ideal is returned. Ties go to
    the lowest index.

    Args:
        values: ``[n, m]`` finite objective vectors, ``n >= 1``, normally a
            non-dominated set.

    Returns:
        An index ``0 <= i < n``.
    """
    arr = _as_points(values)
    n, m = arr.shape
    if n == 0:
        raise ValueError("values: need at least one point to find a knee")
    if not np.isfinite(arr).all():
        raise ValueError("values: knee_point needs finite objective values")
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    span = hi - lo
    norm = np.where(span > 0, (arr - lo) / np.where(span > 0, span, 1.0), 0.0)
    closest = int(np.argmin(np.linalg.norm(norm, axis=1)))
    if n < 3 or m < 2:
        return closest

    extremes = np.empty((m, m))
    for j in range(m):
        order = np.lexsort((norm.sum(axis=1) - norm[:, j], norm[:, j]))
        extremes[j] = norm[order[0]]
    normal = None
    if np.linalg.matrix_rank(extremes) == m:
        w = np.linalg.solve(extremes, np.ones(m))
        if np.all(np.isfinite(w)) and np.all(w > 0):
            normal = w
    if normal is None:
        normal = np.ones(m)
    # Signed distance to {f : normal . f = 1}, positive towards the ideal (origin).
    dist = (1.0 - norm @ normal) / np.linalg.norm(normal)
    best = int(np.argmax(dist))
    if dist[best] <= 1e-12:
        return closest
    return best


def _check_trials(trials: pd.DataFrame, objectives: Sequence[str]) -> list[str]:
    if not isinstance(trials, pd.DataFrame):
        raise ValueError(f"trials: expected a pandas DataFrame, got {type(trials).__name__}")
    if isinstance(objectives, str):
        raise ValueError(f"objectives: expected a list of column names, got the string {objectives!r}")
    objectives = list(objectives)
    if not objectives:
        raise ValueError("objectives: need at least one objective column")
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"objectives: duplicate column names in {objectives}")
    missing = [c for c in ["trial", "feasible", *objectives] if c not in trials.columns]
    if missing:
        raise ValueError(f"trials: missing column(s) {missing}")
    return objectives


def _objective_matrix(trials: pd.DataFrame, objectives: list[str]) -> np.ndarray:
    try:
        return trials[objectives].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"trials: objective columns {objectives} must be numeric ({exc})") from exc


def _usable(trials: pd.DataFrame, values: np.ndarray) -> np.ndarray:
    """Bool ``[n]``: feasible rows (missing ``feasible`` counts as infeasible) with finite objectives."""
    feasible = trials["feasible"].fillna(False).astype(bool).to_numpy()
    return feasible & _finite_rows(values)


def front_of(trials: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The Pareto front of a trials table.

    Args:
        trials: trials table (``trial``, ``feasible`` and the objective columns).
        objectives: names of the (minimised) objective columns.

    Returns:
        The rows of ``trials`` (all columns) that are feasible, have finite
        objectives and are not dominated by any other such row, sorted by
        ``trial``, with a fresh ``0..k-1`` index, so that a position from
        :func:`knee_point` is also a row label. Rows with identical objective
        vectors are all kept.
    """
    objectives = _check_trials(trials, objectives)
    values = _objective_matrix(trials, objectives)
    usable = _usable(trials, values)
    on_front = np.zeros(len(trials), dtype=bool)
    on_front[usable] = nondominated_mask(values[usable])
    return trials.loc[on_front].sort_values("trial", kind="stable").reset_index(drop=True)


def hypervolume_history(
    trials: pd.DataFrame,
    objectives: Sequence[str],
    reference_point,
    n_points: int = 100,
) -> pd.DataFrame:
    """Hypervolume of the feasible front as the search progresses.

    The trials are taken in ``trial`` order and cut at ``min(n_points, n)``
    checkpoints spaced evenly through them, the last one after all trials.

    Args:
        trials: trials table (``trial``, ``feasible`` and the objective columns).
        objectives: names of the (minimised) objective columns, ``[m]``.
        reference_point: ``[m]`` reference point, in the order of ``objectives``.
        n_points: number of checkpoints, ``>= 1``.

    Returns:
        DataFrame ``[k, 2]`` with columns ``trial`` (the last trial included at
        the checkpoint) and ``hypervolume`` (of the feasible, finite,
        non-dominated trials up to it); non-decreasing in ``hypervolume``. Empty
        when ``trials`` is.
    """
    objectives = _check_trials(trials, objectives)
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
        raise ValueError(f"n_points: must be an integer >= 1, got {n_points!r}")
    ref = np.asarray(reference_point, dtype=float)
    if ref.shape != (len(objectives),):
        raise ValueError(f"reference_point: expected shape ({len(objectives)},), got {ref.shape}")
    if not np.isfinite(ref).all():
        raise ValueError(f"reference_point: must be finite, got {ref}")

    ordered = trials.sort_values("trial", kind="stable")
    n = len(ordered)
    if n == 0:
        return pd.DataFrame({"trial": pd.Series(dtype=int), "hypervolume": pd.Series(dtype=float)})
    values = _objective_matrix(ordered, objectives)
    usable = _usable(ordered, values)
    trial_ids = ordered["trial"].to_numpy()
    cuts = np.unique(np.ceil(np.linspace(0, n, min(int(n_points), n) + 1)[1:]).astype(int))

    front = np.empty((0, len(objectives)))
    rows, start = [], 0
    for cut in cuts:
        new = values[start:cut][usable[start:cut]]
        if new.shape[0]:
            pool = np.vstack([front, new])
            front = pool[nondominated_mask(pool)]
        rows.append((trial_ids[cut - 1], hypervolume(front, ref)))
        start = cut
    out = pd.DataFrame(rows, columns=["trial", "hypervolume"])
    out["hypervolume"] = out["hypervolume"].astype(float)
    return out
