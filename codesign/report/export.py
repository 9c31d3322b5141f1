"""Tables of a run: every trial and the Pareto front as pandas DataFrames, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pandas as pd

from codesign.search.pareto import front_of

STATE_NAMES = {optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.FAIL: "fail"}


def trials_frame(trials: list[optuna.trial.FrozenTrial], metric_names: list[str], param_names: list[str]) -> pd.DataFrame:
    """One row per finished trial: ``trial``, ``state``, ``feasible``, every metric, every knob.

    A trial is feasible when it completed and all its constraint values are ≤ 0
    (a constraint value is ``(metric − budget) / budget``).
    """
    rows = []
    for t in trials:
        if t.state not in STATE_NAMES:
            continue
        metrics = t.user_attrs.get("metrics", {})
        constraints = [v for k, v in t.system_attrs.items() if k.startswith("constraints:")]
        row = {
            "trial": t.number,
            "state": STATE_NAMES[t.state],
            "feasible": t.state == optuna.trial.TrialState.COMPLETE and all(v <= 0 for v in constraints),
        }
        row.update({name: metrics.get(name, float("nan")) for name in metric_names})
        row.update({name: t.params.get(name) for name in param_names})
        row["duplicate_of"] = t.user_attrs.get("duplicate_of")
        row["fail_reason"] = t.user_attrs.get("fail_reason", "")
        rows.append(row)
    columns = ["trial", "state", "feasible", *metric_names, *param_names, "duplicate_of", "fail_reason"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["duplicate_of"] = frame["duplicate_of"].astype("Int64")
    return frame.sort_values("trial", kind="stable").reset_index(drop=True)


def pareto_front(trials: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The non-dominated feasible trials."""
    return front_of(trials, objectives)


def write_atomic(path: Path, write) -> Path:
    """Write through ``write(tmp_path)`` then rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda p: frame.to_csv(p, index=False))


def write_json(data: dict, path: Path) -> Path:
    return write_atomic(path, lambda p: Path(p).write_text(json.dumps(data, indent=2, default=float) + "\n"))
