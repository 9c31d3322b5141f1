"""How an objective axis is drawn (label, unit factor, log or linear, limits) and the budget lines on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from codesign.plots._style import BUDGET_COLOR
from codesign.plots._units import axis_label, format_value, quantity, spans_decades


@dataclass(frozen=True)
class Axis:
    """How one objective is drawn: label, multiplier to display units, log scale, limits."""

    label: str
    factor: float
    log: bool
    lim: tuple[float, float]


def log_axis(view: np.ndarray, front: np.ndarray) -> bool:
    """Log scale for an objective axis: the front alone spans more than a decade (its points
    would crowd one end of a linear axis), or everything in view spans more than two."""
    return spans_decades(front, decades=1.0) or spans_decades(view)


def axis_for(column: str, view: np.ndarray, front: np.ndarray | None = None) -> Axis:
    """Label/scale/limits for ``column`` from the finite values ``view`` that must be visible."""
    view = view[np.isfinite(view)]
    label, factor = axis_label(column, view if view.size else None)
    log = log_axis(view, np.asarray(front if front is not None else [], dtype=float))
    if view.size == 0:
        return Axis(label, factor, False, (0.0, 1.0))
    lo, hi = float(view.min()) * factor, float(view.max()) * factor
    if log:
        pad = 10 ** (0.05 * np.log10(hi / lo))
        lim = (lo / pad, hi * pad)
    else:
        pad = 0.05 * (hi - lo) if hi > lo else (0.05 * abs(hi) or 1.0)
        lim = (lo - pad, hi + pad)
    return Axis(label, factor, log, lim)


def apply_axes(ax, xaxis: Axis | None, yaxis: Axis | None) -> None:
    if xaxis is not None:
        if xaxis.log:
            ax.set_xscale("log")
        ax.set_xlim(*xaxis.lim)
    if yaxis is not None:
        if yaxis.log:
            ax.set_yscale("log")
        ax.set_ylim(*yaxis.lim)


def plotted_budgets(constraints, objectives: Sequence[str]) -> dict[str, float]:
    """The finite budgets on plotted objectives."""
    if constraints is None:
        return {}
    if not isinstance(constraints, Mapping):
        raise ValueError(f"constraints: expected a mapping metric -> budget, got {type(constraints).__name__}")
    out = {}
    for name, bound in constraints.items():
        try:
            value = float(bound)
        except (TypeError, ValueError):
            raise ValueError(f"constraints: budget of {name!r} is not a number: {bound!r}") from None
        if name in objectives and np.isfinite(value):
            out[name] = value
    return out


def budget_text(column: str, bound: float) -> str:
    return f"budget: {quantity(column).name} ≤ {format_value(bound, column)}"


def budget_lines(ax, objectives, axes, lines, where: tuple[int, int | None]) -> None:
    """Dashed budget lines on the axes ``where = (horizontal objective, vertical objective or None)``."""
    jx, jy = where
    if lines[jx] is not None:
        ax.axvline(lines[jx] * axes[jx].factor, color=BUDGET_COLOR, ls="--", lw=1.2, zorder=2,
                   label=budget_text(objectives[jx], lines[jx]))
    if jy is not None and lines[jy] is not None:
        ax.axhline(lines[jy] * axes[jy].factor, color=BUDGET_COLOR, ls="--", lw=1.2, zorder=2,
                   label=budget_text(objectives[jy], lines[jy]))
