"""Exhaustive evaluation of a design space small enough to enumerate: the true Pareto front.

Every joint point (one choice per knob) is a mixed-radix number; chunks of consecutive
numbers are decoded to integer rows ``[chunk, D]`` on the fly, evaluated in one batched
call each, and folded into a running non-dominated set of the feasible points
(moocore's filter), so memory stays at one chunk plus the front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from codesign.model.evaluator import Evaluator
from codesign.search.pareto import feasible_mask, nondominated_mask
from codesign.space import DesignSpace


def radices(space: DesignSpace) -> list[int]:
    """Number of values of each knob, in row order."""
    return [len(k.choices) if k.choices is not None else k.high + 1 for k in space.knobs]


def space_size(space: DesignSpace) -> int:
    """Joint points of the space: the product of every knob's number of values."""
    return math.prod(radices(space))


def rows_of(space: DesignSpace, index: torch.Tensor) -> torch.Tensor:
    """Integer rows ``[n, D]`` of the joint points numbered ``index`` (``[n]`` long, mixed radix, first knob fastest)."""
    digits = []
    rest = index.clone()
    for radix in radices(space):
        digits.append(rest % radix)
        rest = torch.div(rest, radix, rounding_mode="floor")
    return torch.stack(digits, dim=1) if digits else torch.zeros(len(index), 0, dtype=torch.long)


@dataclass
class ExactFront:
    """The true front of an enumerated space.

    Attributes:
        values: ``[F, M]`` objective values of the front (minimised), feasible points only.
        rows: ``[F, D]`` integer rows of the front's designs.
        space_size: joint points enumerated.
        n_feasible: how many of them met every budget.
    """

    values: np.ndarray
    rows: np.ndarray
    space_size: int
    n_feasible: int


def exhaustive_front(space: DesignSpace, evaluator: Evaluator, *, chunk: int = 65536) -> ExactFront:
    """Evaluate every point of ``space`` and return the feasible non-dominated set."""
    design = space.design
    names = evaluator.metric_names
    obj = [names.index(o) for o in design.objectives.minimize]
    total = space_size(space)
    front_values = np.empty((0, len(obj)))
    front_rows = np.empty((0, space.dimension), dtype=np.int64)
    n_feasible = 0
    for start in range(0, total, chunk):
        index = torch.arange(start, min(start + chunk, total), dtype=torch.long)
        rows = rows_of(space, index)
        values, _ = evaluator.evaluate_rows(rows)
        ok = feasible_mask(values, names, design.constraints)  # a failed candidate's metrics are NaN
        n_feasible += int(ok.sum())
        candidates = np.concatenate([front_values, values[ok][:, obj]])
        candidate_rows = np.concatenate([front_rows, rows.numpy()[ok]])
        keep = nondominated_mask(candidates)
        front_values, front_rows = candidates[keep], candidate_rows[keep]
    return ExactFront(values=front_values, rows=front_rows, space_size=total, n_feasible=n_feasible)
