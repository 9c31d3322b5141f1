"""A run folder's tables: ``trials.csv``, ``front.csv``, ``front.png``, ``energy.png`` and ``summary.json``, and
:class:`Run`, what a finished run folder holds, as the API returns it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from codesign.errors import UserError
from codesign.plots import plot_energy_parts, plot_front
from codesign.runs.energy import with_energy_parts
from codesign.runs.tables import json_text, stage, trials_frame, write_json
from codesign.search.guards import deferred_abort
from codesign.search.pareto import front_of, hypervolume, knee_point
from codesign.search.reference import REFERENCE_RULE, design_reference_point
from codesign.space import DesignSpace
from codesign.vocab import ENERGY_COLUMNS


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

    @property
    def status(self) -> str:
        """``finished``, ``interrupted``, ``failed`` or ``running`` (see :data:`STATUSES`)."""
        return self.summary.get("status", "finished")


#: summary.json's ``status``: the run did all it was asked; a signal stopped it early (resume it with
#: the same command); an error stopped it (``error`` says which). ``running`` is written when a run
#: starts on a folder that already holds outputs, so a run killed outright (kill -9) leaves them marked.
STATUSES = ("finished", "interrupted", "failed", "running")
TOP_FAIL_REASONS = 5
OUTPUT_FILES = ("trials.csv", "front.csv", "front.png", "energy.png", "summary.json")


def write_outputs(out: Path, space: DesignSpace, metric_names: list[str], trials, *, run_stats: dict) -> Run:
    """trials.csv, front.csv (with the energy by component of its designs), front.png, energy.png
    (that energy as stacked bars) and summary.json from the study's trials, all or none.

    ``run_stats`` (status, seed, wall time, throughput, ...) describe the run that made the
    trials; they go into summary.json beside what is computed here from the trials. Every file is
    written to a temporary file first and the four are renamed into place together, where a
    second signal cannot cut them short: the folder holds the previous outputs or the new ones.
    """
    design = space.design
    objectives = design.objectives.minimize
    frame = effective_cores(space, trials_frame(trials, metric_names, space.packed.columns))
    # One row per design: a design proposed again is a trial (with ``duplicate_of``) but not a second front point.
    front = with_energy_parts(space, front_of(frame[frame["duplicate_of"].isna()], objectives))
    summary, knee = summarize(space, metric_names, frame, front)
    summary = {"status": run_stats.get("status", "finished"), **summary, **run_stats}
    title = f"{design.workload.network}: {len(frame)} trials"
    staged = []
    try:
        staged.append((stage(out / "trials.csv", lambda p: frame.to_csv(p, index=False)), out / "trials.csv"))
        staged.append((stage(out / "front.csv", lambda p: front.to_csv(p, index=False)), out / "front.csv"))
        staged.append((stage(out / "front.png", lambda p: plot_front(frame, front, objectives, p, knee=knee, title=title,
                                                                         constraints=design.constraints)), out / "front.png"))
        if set(ENERGY_COLUMNS) <= set(front.columns):
            staged.append((stage(out / "energy.png", lambda p: plot_energy_parts(front, p, title=f"{title}: energy of the front's designs")),
                           out / "energy.png"))
        staged.append((stage(out / "summary.json", lambda p: Path(p).write_text(json_text(summary))), out / "summary.json"))
        with deferred_abort():
            for tmp, path in staged:
                os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return Run(out=out, trials=frame, front=front, summary=summary)


def workload_summary(space: DesignSpace) -> dict[str, Any]:
    """What summary.json says about the network: its source, layers, MACs, and the operators the
    importer skipped (``workload.unsupported = "skip"``), every one of them."""
    graph = space.workload.graph
    layers = [data["layer"] for _, data in space.workload.nodes(data=True)]
    return {"workload_source": graph.get("source", "zoo"), "n_layers": len(layers),
            "n_vector_layers": sum(layer.op == "vector" for layer in layers), "total_macs": space.workload.total_macs,
            "skipped_nodes": list(graph.get("skipped", []))}


def summarize(space: DesignSpace, metric_names: list[str], frame: pd.DataFrame, front: pd.DataFrame) -> tuple[dict[str, Any], int | None]:
    """What summary.json says about the trials (counts, failures, front, hypervolume, knee or best
    design), and the knee's position in ``front``."""
    design = space.design
    objectives = design.objectives.minimize
    failed = frame[frame["state"] == "fail"]
    summary: dict[str, Any] = {
        "design": design.source,
        "workload": design.workload.network,
        **workload_summary(space),
        "objectives": objectives,
        "constraints": design.constraints,
        "n_trials": int(len(frame)),
        "n_complete": int((frame["state"] == "complete").sum()),
        "n_failed": int(len(failed)),
        "fail_reasons": top_fail_reasons(failed["fail_reason"]),
        "n_feasible": int(frame["feasible"].sum()),
        "n_front": int(len(front)),
        "n_unique_designs": int(len(frame) - frame["duplicate_of"].notna().sum()),
    }
    if not len(front):
        summary.update({"reference_point": None, "hypervolume": 0.0, "knee_trial": None})
        if len(objectives) == 1:
            summary.update({"best_trial": None, "best": None})
        return summary, None
    # One reference point per design (its budgets, else a fixed sample of its space), so that two
    # runs of one design, or a run and its resumption, have comparable hypervolumes.
    ref = design_reference_point(space)
    summary["reference_point"] = dict(zip(objectives, map(float, ref)))
    summary["reference_point_rule"] = REFERENCE_RULE
    summary["hypervolume"] = hypervolume(front[objectives].to_numpy(dtype=float), ref)
    # One objective: the front is the best design (and its ties); the first found is the best, and the knee.
    knee = 0 if len(objectives) == 1 else knee_point(front[objectives].to_numpy(dtype=float))
    summary["knee_trial"] = int(front.iloc[knee]["trial"])
    summary["knee"] = {o: float(front.iloc[knee][o]) for o in objectives}
    if len(objectives) == 1:
        summary["best_trial"] = summary["knee_trial"]
        summary["best"] = {m: float(front.iloc[knee][m]) for m in metric_names}
    return summary, knee


def top_fail_reasons(reasons: pd.Series) -> dict[str, int]:
    """The most common failure reasons of a run's failed trials (``reasons``, one per trial) and their counts."""
    return {str(k): int(v) for k, v in reasons.value_counts().head(TOP_FAIL_REASONS).items()}


def failure_line(summary: dict) -> str | None:
    """One line for stderr when trials failed: the counts and the most common reasons."""
    if not summary.get("n_failed"):
        return None
    reasons = "; ".join(f"{count}× {reason}" for reason, count in summary["fail_reasons"].items())
    return (f"{summary['n_failed']} of {summary['n_trials']} trials failed, {summary['n_feasible']} feasible; "
            f"most common reasons: {reasons} (every reason is in trials.csv's fail_reason)")


def mark_running(out: Path) -> None:
    """A run starts on a folder with outputs: its summary says ``running`` until the new outputs
    replace it, so a run killed outright leaves its outputs marked as not up to date."""
    path = out / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    write_json({**summary, "status": "running", "pid": os.getpid()}, path)


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
    try:
        summary = json.loads((out / "summary.json").read_text())
        trials, front = pd.read_csv(out / "trials.csv"), pd.read_csv(out / "front.csv")
    except (OSError, ValueError) as error:  # JSONDecodeError, pandas' EmptyDataError and ParserError are ValueErrors
        raise UserError(f"{out}: unreadable run outputs ({type(error).__name__}: {error}); report writes them again") from None
    return Run(out=out, trials=trials, front=front, summary=summary)


