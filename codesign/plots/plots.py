"""Search-result plots: Pareto front, hypervolume history, parallel coordinates.

Every function draws with the headless Agg backend, writes a PNG at ``path``
(parent folders are created), closes its figure and returns the path as a
:class:`pathlib.Path`. Axis labels carry the quantity and its unit, SI-prefixed
where that helps (see :mod:`codesign.plots._units`); an objective axis switches to
log scale when the front alone spans a decade or its view (feasible trials, front,
budget) spans more than two (:func:`log_axis`). Budgets (the design's constraints)
are dashed lines on every axis of their metric.

The per-candidate plots (:func:`plot_floorplan`, :func:`plot_gantt`) live in
:mod:`codesign.plots.schedule_plots` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm, Normalize

from codesign.plots._style import (
    BUDGET_COLOR,
    FRONT_COLOR,
    INFEASIBLE_COLOR,
    KNEE_COLOR,
    TRIAL_COLOR,
    check_path,
    closing_on_error,
    plt,
    save_figure,
)
from codesign.plots._axes import Axis, apply_axes, axis_for, budget_lines, budget_text, plotted_budgets, log_axis
from codesign.plots._units import axis_label, format_value, quantity, spans_decades
from codesign.plots.schedule_plots import plot_floorplan, plot_gantt

__all__ = [
    "log_axis",
    "plot_front",
    "plot_hypervolume_history",
    "plot_parallel_coordinates",
    "plot_floorplan",
    "plot_gantt",
]


def _check_columns(frame, columns: Sequence[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}")


def _resolve_knee(front: pd.DataFrame, knee) -> int | None:
    """Position in ``front`` of ``knee``: an index label of ``front`` first, else a position."""
    if knee is None:
        return None
    if knee in front.index:
        pos = front.index.get_loc(knee)
        if not isinstance(pos, (int, np.integer)):
            raise ValueError(f"knee: index label {knee!r} is not unique in front")
        return int(pos)
    if isinstance(knee, (int, np.integer)) and not isinstance(knee, bool) and 0 <= knee < len(front):
        return int(knee)
    raise ValueError(f"knee: {knee!r} is neither an index label nor a position of front ({len(front)} rows)")


def _knee_text(front: pd.DataFrame, pos: int, objectives: Sequence[str], axes: Sequence[Axis]) -> str:
    """Legend text of the knee: its trial and objective values in the units of the axes."""
    row = front.iloc[pos]
    head = f"knee (trial {row['trial']})" if "trial" in front.columns else "knee"
    parts = []
    for c, a in zip(objectives, axes):
        unit = a.label[a.label.rfind("[") + 1:-1] if a.label.endswith("]") else ""
        parts.append(f"{float(row[c]) * a.factor:.3g} {unit}".rstrip())
    return head + ": " + ", ".join(parts)


def plot_front(
    trials: pd.DataFrame,
    front: pd.DataFrame,
    objectives: Sequence[str],
    path,
    *,
    knee=None,
    title: str | None = None,
    constraints: Mapping[str, float] | None = None,
) -> Path:
    """Pareto front over all trials.

    One objective: the objective of every trial against the trial number, the best-so-far
    line, and the best design(s) (``front``) marked. Two objectives: one scatter of all trials (feasible ones faded grey,
    infeasible ones as faded crosses), the front highlighted and joined by its
    attainment step line, the knee starred and annotated. Three or more: a
    corner scatter matrix (every pair once, histograms of the feasible trials
    and the front on the diagonal).

    The view is fitted to the feasible trials and the front; infeasible trials
    outside it are clipped (their count is given in the legend).

    Args:
        trials: trials table ``[n, ...]`` with ``feasible`` and the objective columns.
        front: the front rows ``[k, ...]`` (e.g. :func:`codesign.search.pareto.front_of`).
        objectives: ``[m]`` objective column names, ``m >= 1``.
        path: PNG file to write.
        knee: the knee as an index label of ``front`` (or, failing that, a
            position in it); ``None`` for no knee marker.
        title: figure title (default: front size and trial counts).
        constraints: the design's budgets, metric -> upper bound; those on a plotted
            objective are drawn as dashed lines (and kept in view).
    """
    path = check_path(path)
    if isinstance(objectives, str) or len(objectives) < 1:
        raise ValueError(f"objectives: need a list of at least 1 column, got {objectives!r}")
    objectives = list(objectives)
    _check_columns(trials, [*objectives, "feasible"], "trials")
    _check_columns(front, objectives, "front")
    knee_pos = _resolve_knee(front, knee)
    budgets = plotted_budgets(constraints, objectives)
    if len(objectives) == 1:
        return _plot_single(trials, front, objectives[0], path, knee_pos, title, budgets.get(objectives[0]))

    vals = trials[objectives].to_numpy(dtype=float)
    fvals = front[objectives].to_numpy(dtype=float)
    finite = np.isfinite(vals).all(axis=1)
    feasible = trials["feasible"].fillna(False).astype(bool).to_numpy()
    feas, infeas = vals[finite & feasible], vals[finite & ~feasible]
    view = np.vstack([feas, fvals]) if len(feas) + len(fvals) else infeas
    axes = [axis_for(c, np.append(view[:, j], budgets.get(c, np.nan)), fvals[:, j]) for j, c in enumerate(objectives)]
    lines = [budgets.get(c) for c in objectives]

    def outside(points: np.ndarray) -> int:
        inside = np.ones(len(points), dtype=bool)
        for j, a in enumerate(axes):
            v = points[:, j] * a.factor
            inside &= (v >= a.lim[0]) & (v <= a.lim[1])
        return int((~inside).sum())

    labels = {
        "trials": f"feasible trials ({len(feas)})",
        "infeasible": f"infeasible trials ({len(infeas)}"
        + (f", {outside(infeas)} off-view)" if outside(infeas) else ")"),
        "front": f"Pareto front ({len(front)})",
        "knee": _knee_text(front, knee_pos, objectives, axes) if knee_pos is not None else None,
    }
    if title is None:
        title = f"Pareto front: {len(front)} of {len(feas)} feasible trials ({len(trials)} total)"

    m = len(objectives)
    if m == 2:
        fig, ax = plt.subplots(figsize=(7.0, 5.0))
        with closing_on_error(fig):
            _scatter_pair(ax, 0, 1, axes, feas, infeas, fvals, knee_pos, labels, step=True)
            budget_lines(ax, objectives, axes, lines, (0, 1))
            ax.set_xlabel(axes[0].label)
            ax.set_ylabel(axes[1].label)
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(title)
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
        return save_figure(fig, path)

    size = min(2.6 * m, 14.0)
    fig, grid = plt.subplots(m, m, figsize=(size, size), squeeze=False)
    with closing_on_error(fig):
        for i in range(m):
            for j in range(m):
                ax = grid[i][j]
                if j > i:
                    ax.set_axis_off()
                    continue
                if i == j:
                    _diagonal_hist(ax, axes[i], feas[:, i], fvals[:, i])
                    budget_lines(ax, objectives, axes, lines, (i, None))
                else:
                    _scatter_pair(ax, j, i, axes, feas, infeas, fvals, knee_pos, labels, step=False)
                    budget_lines(ax, objectives, axes, lines, (j, i))
                    ax.grid(True, which="major", alpha=0.3)
                ax.tick_params(labelsize=7)
                if i == m - 1:
                    ax.set_xlabel(axes[j].label, fontsize=8)
                else:
                    ax.tick_params(labelbottom=False)
                if j == 0 and i > 0:
                    ax.set_ylabel(axes[i].label, fontsize=8)
                elif i != j:
                    ax.tick_params(labelleft=False)
        handles, texts = grid[1][0].get_legend_handles_labels()
        grid[0][m - 1].legend(handles, texts, loc="upper right", fontsize=8, frameon=False)
        fig.suptitle(title)
        fig.tight_layout()
    return save_figure(fig, path)


def _plot_single(trials: pd.DataFrame, front: pd.DataFrame, objective: str, path: Path, knee_pos, title, budget) -> Path:
    """One objective: every trial's value by trial number, the best so far, the best design(s)."""
    order = trials["trial"].to_numpy(dtype=float) if "trial" in trials.columns else np.arange(len(trials), dtype=float)
    vals = trials[objective].to_numpy(dtype=float)
    feasible = trials["feasible"].fillna(False).astype(bool).to_numpy() & np.isfinite(vals)
    infeasible = ~trials["feasible"].fillna(False).astype(bool).to_numpy() & np.isfinite(vals)
    best = front[objective].to_numpy(dtype=float)
    view = np.concatenate([vals[feasible], best, [budget] if budget is not None else []])
    sort = np.argsort(order[feasible], kind="stable")
    running = np.minimum.accumulate(vals[feasible][sort]) if feasible.any() else np.zeros(0)
    axis = axis_for(objective, view if view.size else vals[infeasible], running)  # log where the best so far spans a decade
    k = axis.factor
    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    with closing_on_error(fig):
        apply_axes(ax, None, axis)
        ax.scatter(order[feasible], vals[feasible] * k, s=10, color=TRIAL_COLOR, alpha=0.45, linewidths=0,
                   label=f"feasible trials ({int(feasible.sum())})", zorder=1)
        if infeasible.any():
            shown = vals[infeasible] * k
            off = int(((shown < axis.lim[0]) | (shown > axis.lim[1])).sum())
            ax.scatter(order[infeasible], shown, s=14, marker="x", color=INFEASIBLE_COLOR, alpha=0.35, linewidths=0.8,
                       label=f"infeasible trials ({int(infeasible.sum())}" + (f", {off} off-view)" if off else ")"), zorder=1)
        if feasible.any():
            ax.step(order[feasible][sort], running * k, where="post", color=FRONT_COLOR, lw=1.5, label="best so far", zorder=2)
        if len(front):
            x = front["trial"].to_numpy(dtype=float) if "trial" in front.columns else np.full(len(front), np.nan)
            text = f"best: {format_value(float(best.min()), objective)}"
            if "trial" in front.columns:
                text += f" (trial {', '.join(str(t) for t in front['trial'].tolist()[:3])})"
            ax.scatter(x, best * k, s=160, marker="*", color=KNEE_COLOR, edgecolors="black", linewidths=0.8,
                       label=text, zorder=4)
        if budget is not None:
            ax.axhline(budget * k, color=BUDGET_COLOR, ls="--", lw=1.2, label=budget_text(objective, budget), zorder=2)
        ax.set_xlabel("Trial")
        ax.set_ylabel(axis.label)
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(title or f"{quantity(objective).name}: best of {int(feasible.sum())} feasible trials ({len(trials)} total)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return save_figure(fig, path)


def _scatter_pair(ax, jx, jy, axes, feas, infeas, fvals, knee_pos, labels, *, step: bool) -> None:
    """Trials, front and knee in objective ``jx`` (horizontal) against ``jy`` (vertical)."""
    ax_x, ax_y = axes[jx], axes[jy]
    apply_axes(ax, ax_x, ax_y)
    sx, sy = ax_x.factor, ax_y.factor
    ax.scatter(feas[:, jx] * sx, feas[:, jy] * sy, s=10, color=TRIAL_COLOR, alpha=0.35, linewidths=0,
               label=labels["trials"], zorder=1)
    if len(infeas):
        ax.scatter(infeas[:, jx] * sx, infeas[:, jy] * sy, s=14, marker="x", color=INFEASIBLE_COLOR,
                   alpha=0.35, linewidths=0.8, label=labels["infeasible"], zorder=1)
    fx, fy = fvals[:, jx] * sx, fvals[:, jy] * sy
    if step and len(fvals):
        order = np.lexsort((fy, fx))
        ax.step(fx[order], fy[order], where="post", color=FRONT_COLOR, lw=1.2, alpha=0.8, zorder=2)
    ax.scatter(fx, fy, s=30, color=FRONT_COLOR, edgecolors="black", linewidths=0.5,
               label=labels["front"], zorder=3)
    if knee_pos is not None:
        kx, ky = fx[knee_pos], fy[knee_pos]
        ax.scatter([kx], [ky], s=200, marker="*", color=KNEE_COLOR, edgecolors="black", linewidths=0.8,
                   label=labels["knee"], zorder=4)
        if step:
            ax.annotate("knee", (kx, ky), xytext=(10, 10), textcoords="offset points", fontsize=9,
                        fontweight="bold", zorder=5,
                        bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.5", alpha=0.85),
                        arrowprops=dict(arrowstyle="-", color="0.3", lw=0.8))


def _diagonal_hist(ax, axis: Axis, feas: np.ndarray, front: np.ndarray) -> None:
    """Histogram of one objective: feasible trials (grey) and front (blue)."""
    apply_axes(ax, axis, None)
    lo, hi = axis.lim
    bins = np.geomspace(lo, hi, 21) if axis.log else np.linspace(lo, hi, 21)
    if len(feas):
        ax.hist(feas * axis.factor, bins=bins, color=TRIAL_COLOR, alpha=0.5)
    if len(front):
        ax.hist(front * axis.factor, bins=bins, color=FRONT_COLOR, alpha=0.8)
    ax.set_yticks([])


def plot_hypervolume_history(history: pd.DataFrame, path, *, reference_point=None) -> Path:
    """Hypervolume of the feasible front against the trial number.

    Args:
        history: ``[k, 2]`` table with ``trial`` and ``hypervolume`` columns
            (e.g. :func:`codesign.search.pareto.hypervolume_history`).
        path: PNG file to write.
        reference_point: the reference point used, shown in a note; either an
            ``[m]`` array or a mapping objective column -> value (then the
            values are printed with units and the unit of the hypervolume is
            given on the axis).
    """
    path = check_path(path)
    _check_columns(history, ["trial", "hypervolume"], "history")
    if len(history) == 0:
        raise ValueError("history: empty, nothing to plot")
    h = history.sort_values("trial", kind="stable")
    try:
        x = h["trial"].to_numpy(dtype=float)
        y = h["hypervolume"].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"history: trial and hypervolume must be numeric ({exc})") from exc

    ylabel, note = "Hypervolume", None
    if reference_point is not None:
        if isinstance(reference_point, (Mapping, pd.Series)):
            items = list(reference_point.items())
            units = [quantity(str(k)).unit for k, _ in items]
            if all(units):
                ylabel = f"Hypervolume [{'·'.join(units)}]"
            note = "reference point:\n" + "\n".join(
                f"  {quantity(str(k)).name} {format_value(float(v), str(k))}" for k, v in items)
        else:
            ref = np.atleast_1d(np.asarray(reference_point, dtype=float))
            note = "reference point: (" + ", ".join(f"{v:.3g}" for v in ref) + ")"

    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    with closing_on_error(fig):
        ax.step(x, y, where="post", color=FRONT_COLOR, lw=1.5)
        ax.plot(x, y, ".", color=FRONT_COLOR, ms=4 if len(x) <= 200 else 0)
        ax.set_xlabel("Trial")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, (float(np.nanmax(y)) * 1.08) or 1.0)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"Hypervolume history (final {y[-1]:.4g} after trial {h['trial'].iloc[-1]})", pad=14)
        if note:
            ax.text(0.98, 0.04, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                    multialignment="left",
                    bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.7", alpha=0.9))
    return save_figure(fig, path)


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def plot_parallel_coordinates(front: pd.DataFrame, columns: Sequence[str], path, *,
                              color_by: str | None = None) -> Path:
    """Parallel-coordinates view of the front designs.

    One line per row of ``front`` across ``columns``. Numeric columns are
    normalised to ``[0, 1]`` (log-normalised when spanning more than two
    decades; a constant column sits at 0.5) with the min/max printed at the
    axis ends; categorical columns (non-numeric or bool) are placed at their
    category index with the category names as labels.

    Args:
        front: ``[k, ...]`` front rows, ``k >= 1``.
        columns: ``[c]`` columns to show, ``c >= 2``.
        path: PNG file to write.
        color_by: numeric column colouring the lines; default: the first
            objective among ``columns`` (``latency_s``, ``energy_j``, ... -- any
            column with a known unit), else the first numeric column.
    """
    path = check_path(path)
    if isinstance(columns, str) or len(columns) < 2:
        raise ValueError(f"columns: need a list of at least 2 columns, got {columns!r}")
    columns = list(columns)
    _check_columns(front, columns + ([color_by] if color_by else []), "front")
    if len(front) == 0:
        raise ValueError("front: empty, nothing to plot")
    if color_by is None:
        numeric = [c for c in columns if not _is_categorical(front[c])]
        with_unit = [c for c in numeric if quantity(c).unit]
        color_by = (with_unit or numeric or [None])[0]
    elif _is_categorical(front[color_by]):
        raise ValueError(f"color_by: column {color_by!r} is not numeric")

    k = len(columns)
    ys = np.full((len(front), k), np.nan)
    axis_notes: list[tuple[str, str, list[tuple[float, str]]]] = []  # (bottom, top, category ticks)
    names = []
    for i, c in enumerate(columns):
        s = front[c]
        names.append(quantity(c).name)
        if _is_categorical(s):
            cats = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else \
                sorted(s.dropna().unique(), key=str)
            pos = {cat: (j / (len(cats) - 1) if len(cats) > 1 else 0.5) for j, cat in enumerate(cats)}
            ys[:, i] = [pos.get(v, np.nan) for v in s]
            axis_notes.append(("", "", [(p, str(cat)) for cat, p in pos.items()]))
            continue
        v = s.to_numpy(dtype=float)
        finite = v[np.isfinite(v)]
        if finite.size == 0:
            axis_notes.append(("", "", []))
            continue
        lo, hi = finite.min(), finite.max()
        log = spans_decades(finite)
        if log:
            ys[:, i] = (np.log10(v) - np.log10(lo)) / (np.log10(hi) - np.log10(lo))
            names[-1] += "\n(log)"
        elif hi > lo:
            ys[:, i] = (v - lo) / (hi - lo)
        else:
            ys[:, i] = np.where(np.isfinite(v), 0.5, np.nan)
        axis_notes.append((format_value(lo, c), format_value(hi, c), []))

    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * k + 2.0), 4.8))
    with closing_on_error(fig):
        xs = np.arange(k)
        if color_by is not None:
            cv = front[color_by].to_numpy(dtype=float)
            label, factor = axis_label(color_by, cv)
            norm = (LogNorm if spans_decades(cv) else Normalize)(
                vmin=np.nanmin(cv) * factor, vmax=np.nanmax(cv) * factor)
            cmap = plt.get_cmap("viridis")
            colors = [cmap(norm(val * factor)) if np.isfinite(val) else (0.5, 0.5, 0.5, 1) for val in cv]
            sm = ScalarMappable(norm=norm, cmap=cmap)
            fig.colorbar(sm, ax=ax, pad=0.02, fraction=0.04).set_label(label)
        else:
            colors = [FRONT_COLOR] * len(front)
        alpha = 0.85 if len(front) <= 50 else 0.5
        for row, col in zip(ys, colors):
            ax.plot(xs, row, color=col, lw=1.4, alpha=alpha, marker="o", ms=3)
        for i, (bottom, top, cats) in enumerate(axis_notes):
            ax.axvline(i, color="0.2", lw=0.8, zorder=0)
            if bottom or top:
                ax.text(i, -0.04, bottom, ha="center", va="top", fontsize=7)
                ax.text(i, 1.04, top, ha="center", va="bottom", fontsize=7)
            for p, name in cats:
                ax.text(i + 0.04, p, name, ha="left", va="center", fontsize=7,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
        ax.set_xticks(xs, names, fontsize=8)
        ax.tick_params(axis="x", length=0, pad=16)
        ax.set_yticks([])
        ax.set_xlim(-0.3, k - 0.7)
        ax.set_ylim(-0.12, 1.12)
        for side in ("left", "right", "top", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"Front designs ({len(front)})")
    return save_figure(fig, path)
