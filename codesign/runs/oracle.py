"""``codesign explore --oracle``: the surrogate-assisted loop (:mod:`codesign.search.surrogate_loop`),
then its run folder: ``oracle_trials.csv``, ``front.csv`` (every point oracle-verified),
``predicted_front.csv``, ``rounds.csv``, the surrogate, ``front.png`` and ``summary.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from codesign.errors import ArgumentError
from codesign.model.evaluator import check_metrics, resolve_device
from codesign.model.plugins import load_plugins
from codesign.oracles.base import Oracle, get_oracle
from codesign.plots import plot_front
from codesign.runs.folder import write_identity
from codesign.runs.outputs import Run
from codesign.runs.tables import write_csv, write_json
from codesign.search.surrogate_loop import LoopSettings, SurrogateLoop, check_design
from codesign.space import DesignSpace


def explore_with_oracle(design, *, oracle: str | Oracle, budget: int, trials: int | None, seed: int, out: Path,
                        device: str = "auto", say=print, settings: LoopSettings | None = None):
    """``codesign explore --oracle``: the loop, then the run folder. Returns a :class:`~codesign.runs.outputs.Run`."""
    check_design(design)
    settings = settings or LoopSettings(budget=budget, inner_trials=trials)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArgumentError("out", str(out), "exists and is not empty; an oracle run starts in a new or empty folder "
                            "(the oracle's cache keeps every result, so running again costs no oracle time)")
    resolved = settings.resolve(design)  # budget errors before the oracle is even built
    dev = resolve_device(device)
    space = DesignSpace.from_design(design)
    plugins = load_plugins(design.cost_model.plugins, source=design.source)
    oracle = get_oracle(oracle)
    loop = SurrogateLoop(space, oracle, resolved, seed=seed, device=dev, plugins=plugins, say=say)
    check_metrics(design, loop.analytic_eval.metric_names)
    start = time.perf_counter()
    try:
        result = loop.run()
    finally:
        oracle.close()
    wall = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    write_identity(out, design, {"oracle": oracle.describe(), "oracle_budget": budget, "seed": seed, "kind": "surrogate_loop"})
    write_csv(result.verified, out / "oracle_trials.csv")
    write_csv(result.front, out / "front.csv")
    if result.predicted_front is not None:
        write_csv(result.predicted_front, out / "predicted_front.csv")
    write_csv(pd.DataFrame(result.rounds), out / "rounds.csv")
    loop.save_surrogate(out / "surrogate")
    objectives = list(design.objectives.minimize)
    frame = result.verified.copy()
    if len(result.front):
        plot_front(frame, result.front, objectives, out / "front.png", title=f"{design.workload.network}: {len(frame)} oracle-verified designs")
    summary = {
        "design": design.source, "workload": design.workload.network, "objectives": objectives,
        "constraints": design.constraints, "n_trials": len(frame), "trials_added": len(frame),
        "n_complete": int((frame["fail_reason"] == "").sum()), "n_feasible": int(frame["feasible"].sum()),
        "n_front": len(result.front), "hypervolume": result.summary["verified_hypervolume"],
        "reference_point_rule": "nadir + 0.1·(nadir − ideal) of the oracle-verified feasible designs",
        "wall_s": wall, "device": str(dev), **result.summary,
    }
    write_json(summary, out / "summary.json")
    return Run(out=out, trials=frame, front=result.front, summary=summary)
