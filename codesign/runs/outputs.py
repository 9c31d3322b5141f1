"""A run folder's tables: ``trials.csv``, ``front.csv``, ``front.png`` and ``summary.json``, and
:class:`Run`, what a finished run folder holds, as the API returns it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from codesign.errors import UserError
from codesign.plots import plot_front
from codesign.runs.tables import pareto_front, trials_frame, write_csv, write_json
from codesign.search.pareto import hypervolume, knee_point, reference_point
from codesign.space import DesignSpace


@dataclass
class Run:
    """A finished (or interrupted) run folder: its tables and summary."""

    out: Path
    trials: pd.DataFrame
    front: pd.DataFrame
    summary: dict

    @property
    def objectives(self) -> list[str]:
        return self.summary["objectives"]

    @property
    def knee_trial(self) -> int | None:
        return self.summary.get("knee_trial")


def write_outputs(out: Path, space: DesignSpace, metric_names: list[str], trials, *, run_stats: dict) -> Run:
    """trials.csv, front.csv, front.png and summary.json from the study's trials.

    ``run_stats`` (seed, wall time, throughput, ...) describe the run that made the trials;
    they go into summary.json beside what is computed here from the trials.
    """
    design = space.design
    objectives = design.objectives.minimize
    frame = effective_cores(space, trials_frame(trials, metric_names, [k.name for k in space.knobs]))
    # One row per design: a design proposed again is a trial (with ``duplicate_of``) but not a second front point.
    front = pareto_front(frame[frame["duplicate_of"].isna()], objectives)
    summary: dict[str, Any] = {
        "design": design.source,
        "workload": design.workload.network,
        "objectives": objectives,
        "constraints": design.constraints,
        "n_trials": int(len(frame)),
        "n_complete": int((frame["state"] == "complete").sum()),
        "n_feasible": int(frame["feasible"].sum()),
        "n_front": int(len(front)),
        "n_unique_designs": int(len(frame) - frame["duplicate_of"].notna().sum()),
    }
    feasible = frame[frame["feasible"]][objectives].to_numpy(dtype=float)
    feasible = feasible[np.isfinite(feasible).all(axis=1)]
    knee = None
    if len(front):
        ref = reference_point(feasible)
        summary["reference_point"] = dict(zip(objectives, map(float, ref)))
        summary["reference_point_rule"] = "nadir + 0.1·(nadir − ideal) of the feasible trials"
        summary["hypervolume"] = hypervolume(front[objectives].to_numpy(dtype=float), ref)
        knee = knee_point(front[objectives].to_numpy(dtype=float))
        summary["knee_trial"] = int(front.iloc[knee]["trial"])
        summary["knee"] = {o: float(front.iloc[knee][o]) for o in objectives}
    else:
        summary.update({"reference_point": None, "hypervolume": 0.0, "knee_trial": None})
    write_csv(frame, out / "trials.csv")
    write_csv(front, out / "front.csv")
    plot_front(frame, front, objectives, out / "front.png", knee=knee, title=f"{design.workload.network}: {len(frame)} trials")
    summary.update(run_stats)
    write_json(summary, out / "summary.json")
    return Run(out=out, trials=frame, front=front, summary=summary)


def effective_cores(space: DesignSpace, frame: pd.DataFrame) -> pd.DataFrame:
    """Core-slot columns as the core each layer really runs on (``slot mod n_cores``)."""
    core_cols = [k.name for k in space.knobs if k.name.startswith("sched.core")]
    if not core_cols or frame.empty:
        return frame
    hw = space.design.hardware
    n_cores = 1
    for name in ("grid_rows", "grid_cols"):
        column = f"hw.{name}"
        n_cores = n_cores * (frame[column].astype("Int64") if column in frame else getattr(hw, name)[0])
    frame[core_cols] = frame[core_cols].astype("Int64").mod(n_cores, axis=0)
    return frame


def open_run(out: str | Path) -> Run:
    """Read a run folder's tables and summary."""
    out = Path(out)
    for name in ("trials.csv", "front.csv", "summary.json"):
        if not (out / name).is_file():
            raise UserError(f"{out}: no {name}; is this a finished codesign run folder?")
    summary = json.loads((out / "summary.json").read_text())
    return Run(out=out, trials=pd.read_csv(out / "trials.csv"), front=pd.read_csv(out / "front.csv"), summary=summary)


