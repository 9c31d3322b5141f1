"""The Python API: everything the shell does, one call away.

    import codesign
    run = codesign.explore("designs/edge_resnet18.toml", trials=2000, seed=1, out="runs/q")
    run.front            # pandas DataFrame of the non-dominated feasible designs
    run.summary["hypervolume"]
    codesign.show("runs/q", trial=run.knee_trial)   # floorplan, Gantt chart, GraphML
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from codesign.design import Design, load_design, parse_design
from codesign.errors import UserError
from codesign.graph import design_graph, write_graph_json, write_graphml
from codesign.model.plugins import Evaluator
from codesign.report import plot_floorplan, plot_front, plot_gantt, plot_hypervolume_history, plot_parallel_coordinates
from codesign.report.export import pareto_front, trials_frame, write_csv, write_json
from codesign.search.explore import (
    RUN_FILE,
    check_metrics,
    load_plugins,
    prepare_run_folder,
    resolve_device,
    run_search,
    space_fingerprint,
)
from codesign.search.pareto import hypervolume, hypervolume_history, knee_point, reference_point
from codesign.search.refine import REFINE_METHODS, check_refinable, refine_front
from codesign.search.storage import STUDY_NAME, load_or_create_study, open_storage
from codesign.search.strategies import check_strategy
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


def _as_design(design: Design | str | Path) -> Design:
    return design if isinstance(design, Design) else load_design(design)


def build(design: Design | str | Path, *, device: str = "cpu") -> tuple[DesignSpace, Evaluator]:
    """The design space and its evaluator (built-in model + plug-ins), checked."""
    design = _as_design(design)
    plugins = load_plugins(design)
    space = DesignSpace.from_design(design)
    evaluator = Evaluator(space, plugins, device=resolve_device(device))
    check_metrics(design, evaluator)
    return space, evaluator


def explore(
    design: Design | str | Path,
    *,
    trials: int | None = None,
    seed: int | None = None,
    out: str | Path = "runs/latest",
    storage: str | None = None,
    device: str = "auto",
    progress: bool = False,
    say=lambda msg: print(msg, file=sys.stderr),
    oracle=None,
    oracle_budget: int | None = None,
    strategy: str | None = None,
    sampler: str | None = None,
    refine: str | None = None,
) -> Run:
    """Search the design space jointly and write the run folder ``out``.

    Args:
        design: a :class:`Design` or the path of a design file.
        trials: total trials the study should hold at the end (default: the design's
            ``search.trials``); a run folder that already holds some resumes.
        seed: NSGA-II seed (default: the design's ``search.seed``).
        out: run folder: ``trials.csv``, ``front.csv``, ``front.png``, ``summary.json``.
        storage: an Optuna storage URL instead of the run folder's journal file.
        device: ``auto``, ``cpu`` or ``cuda``.
        progress: show a progress bar.
        strategy: ``joint`` (default), ``sequential`` or ``random`` (:mod:`codesign.search.strategies`);
            default: the design's ``search.strategy``.
        sampler: ``nsga2`` (default), ``nsga3`` or ``tpe``, for the joint strategy.
        refine: ``mgda`` or ``pcgrad``: after the search, gradient steps on the relaxed model
            from the front's designs add refined designs as trials (:mod:`codesign.search.refine`);
            ``none`` (default: the design's ``search.refine``).
        oracle, oracle_budget: an oracle (``emulated``, ``scalesim``, ``package.module:attr``)
            and the designs it may evaluate: the surrogate-assisted loop instead
            (:mod:`codesign.search.surrogate_loop`; ``trials`` is then per round).
    """
    design = _as_design(design)
    if oracle is not None or oracle_budget is not None:
        if oracle is None or oracle_budget is None:
            raise UserError("--oracle and --oracle-budget go together: name an oracle and the designs it may evaluate")
        if storage is not None:
            raise UserError("--storage: an oracle run keeps its rounds in memory; leave --storage out")
        for flag, value, default in (("--strategy", strategy, "joint"), ("--sampler", sampler, "nsga2"), ("--refine", refine, "none")):
            if value not in (None, default):
                raise UserError(f"{flag} {value}: the oracle loop runs its own NSGA-II search on the surrogate; leave {flag} out with --oracle")
        from codesign.search.surrogate_loop import explore_with_oracle

        return explore_with_oracle(design, oracle=oracle, budget=oracle_budget, trials=trials,
                                   seed=design.search.seed if seed is None else seed, out=out, device=device, say=say)
    n_trials = design.search.trials if trials is None else trials
    if n_trials < 1:
        raise UserError(f"--trials {n_trials}: expected a positive number of trials")
    seed = design.search.seed if seed is None else seed
    strategy = design.search.strategy if strategy is None else strategy
    sampler = design.search.sampler if sampler is None else sampler
    refine = design.search.refine if refine is None else refine
    check_strategy(strategy, sampler)
    if refine not in REFINE_METHODS:
        raise UserError(f"--refine {refine!r}: expected one of {', '.join(REFINE_METHODS)}")
    space, evaluator = build(design, device=device)
    if refine != "none":
        check_refinable(space, evaluator)
    out = Path(out)
    fingerprint = space_fingerprint(space)
    resuming = prepare_run_folder(out, fingerprint, design, storage)
    if resuming:
        before = json.loads((out / RUN_FILE).read_text()).get("strategy", {"strategy": "joint", "sampler": "nsga2"})
        if (before.get("strategy"), before.get("sampler")) != (strategy, sampler):
            raise UserError(
                f"--out {out}: holds a run of --strategy {before.get('strategy')} --sampler {before.get('sampler')}; "
                f"resume it with those, or use another --out for --strategy {strategy} --sampler {sampler}"
            )
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        backend, storage_desc = open_storage(out, storage)
        persistent = load_or_create_study(backend, ["minimize"] * len(design.objectives.minimize))
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    if not resuming:
        info = {
            "fingerprint": fingerprint,
            "storage_url": storage,
            "storage": storage_desc,
            "study_name": STUDY_NAME,
            "design": design.model_dump(mode="json"),
            "design_source": str(Path(design.source).resolve()) if Path(design.source).is_file() else design.source,
            "metrics": evaluator.metric_names,
            "strategy": {"strategy": strategy, "sampler": sampler},
        }
        write_json(info, out / RUN_FILE)
        if Path(design.source).is_file():
            shutil.copyfile(design.source, out / "design.toml")

    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_trials, initial=min(n_trials, len(persistent.get_trials(deepcopy=False))), unit="trial", desc="explore", file=sys.stderr)
    try:
        timings, added = run_search(space, evaluator, persistent, n_trials=n_trials, seed=seed, progress=bar.update if bar else None,
                                    say=say, strategy=strategy, sampler=sampler)
    finally:
        if bar is not None:
            bar.close()
    refined = None
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    if refine != "none" and len(persistent.get_trials(deepcopy=False, states=finished)) < n_trials:
        say("refine: skipped, the search stopped before its trials were done")
    elif refine != "none":
        refined = refine_front(space, evaluator, persistent, method=refine, seed=seed, starts=design.search.refine_starts,
                               steps=design.search.refine_steps, say=say)
    wall = time.perf_counter() - start

    run_stats = {
        "seed": seed,
        "strategy": strategy,
        "sampler": sampler,
        "refine": refined.as_dict() if refined is not None else None,
        "device": str(evaluator.device),
        "trials_added": added + (refined.trials_added if refined is not None else 0),
        "wall_s": wall,
        "evals_per_s": timings.evaluated / timings.evaluate_s if timings.evaluate_s > 0 else None,
        "trials_per_s": added / wall if wall > 0 else None,
        "timings_s": timings.as_dict(),
        "storage": storage_desc,
    }
    return _write_outputs(out, space, evaluator.metric_names, persistent.get_trials(deepcopy=False), run_stats=run_stats)


def _write_outputs(out: Path, space: DesignSpace, metric_names: list[str], trials, *, run_stats: dict) -> Run:
    """trials.csv, front.csv, front.png and summary.json from the study's trials.

    ``run_stats`` (seed, wall time, throughput, ...) describe the run that made the trials;
    they go into summary.json beside what is computed here from the trials.
    """
    design = space.design
    objectives = design.objectives.minimize
    frame = _effective_cores(space, trials_frame(trials, metric_names, [k.name for k in space.knobs]))
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


def _effective_cores(space: DesignSpace, frame: pd.DataFrame) -> pd.DataFrame:
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


def _load_run_space(out: Path) -> tuple[DesignSpace, Evaluator, dict]:
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise UserError(f"{out}: not a codesign run folder (no {RUN_FILE}); run `codesign explore` first")
    info = json.loads(run_file.read_text())
    design = parse_design(info["design"], source=info.get("design_source", str(run_file)))
    space, evaluator = build(design)
    return space, evaluator, info


def open_run(out: str | Path) -> Run:
    """Read a run folder's tables and summary."""
    out = Path(out)
    for name in ("trials.csv", "front.csv", "summary.json"):
        if not (out / name).is_file():
            raise UserError(f"{out}: no {name}; is this a finished codesign run folder?")
    summary = json.loads((out / "summary.json").read_text())
    return Run(out=out, trials=pd.read_csv(out / "trials.csv"), front=pd.read_csv(out / "front.csv"), summary=summary)


def report(out: str | Path) -> list[Path]:
    """Regenerate a run's plots from its stored trials: front, hypervolume history, parallel coordinates."""
    out = Path(out)
    space, evaluator, info = _load_run_space(out)
    backend, _ = open_storage(out, info.get("storage_url"))
    persistent = load_or_create_study(backend, ["minimize"] * len(space.design.objectives.minimize))
    # Keep what only the run itself measured (seed, wall time, throughput) from its summary.
    previous = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    run_keys = ("seed", "strategy", "sampler", "refine", "device", "trials_added", "wall_s", "evals_per_s", "trials_per_s", "timings_s", "storage")
    run_stats = {k: previous[k] for k in run_keys if k in previous}
    run = _write_outputs(out, space, evaluator.metric_names, persistent.get_trials(deepcopy=False), run_stats=run_stats)
    objectives = run.objectives
    paths = [out / "front.png"]
    if len(run.front):
        ref = np.array([run.summary["reference_point"][o] for o in objectives])
        history = hypervolume_history(run.trials, objectives, ref)
        paths.append(plot_hypervolume_history(history, out / "hypervolume.png", reference_point=ref))
        knobs = [k.name for k in space.knobs if k.name.startswith("hw.") or k.name == "sched.mode"]
        paths.append(plot_parallel_coordinates(run.front, [*objectives, *knobs], out / "parallel_coordinates.png"))
    return paths


def show(out: str | Path, trial: int) -> dict[str, Path]:
    """Floorplan with mapping, per-core Gantt chart, GraphML and JSON of one trial's design."""
    out = Path(out)
    space, evaluator, _ = _load_run_space(out)
    frame = open_run(out).trials
    match = frame[frame["trial"] == trial]
    if match.empty:
        raise UserError(f"--trial {trial}: no such trial in {out} (trials 0–{int(frame['trial'].max())})")
    record = match.iloc[0]
    params = {}
    for knob in space.knobs:
        value = record[knob.name]
        params[knob.name] = type(knob.choices[0])(value) if knob.choices else int(value)
    graph = design_graph(space, params)
    row = torch.tensor([space.encode(params)], dtype=torch.long).reshape(1, space.dimension)
    detail = evaluator.model.evaluate(space.decode(row), detail=True).layers
    schedule = pd.DataFrame(
        {
            "layer": space.lowered.names,
            "core": space.decode(row).core[0].tolist(),
            "dataflow": [graph.edges[n, f"core{int(cc)}"]["dataflow"] for n, cc in zip(space.lowered.names, space.decode(row).core[0].tolist())],
            "start_s": detail["start_s"][0].tolist(),
            "end_s": detail["end_s"][0].tolist(),
            "compute_cycles": detail["compute_cycles"][0].tolist(),
            "stall_cycles": detail["stall_cycles"][0].tolist(),
            "dram_bytes": detail["dram_bytes"][0].tolist(),
        }
    )
    stem = out / f"trial_{trial}"
    return {
        "floorplan": plot_floorplan(graph, f"{stem}_floorplan.png", title=f"trial {trial}"),
        "gantt": plot_gantt(schedule, f"{stem}_gantt.png", title=f"trial {trial}: layer-by-layer schedule"),
        "schedule": write_csv(schedule, Path(f"{stem}_schedule.csv")),
        "graphml": write_graphml(graph, f"{stem}.graphml"),
        "json": write_graph_json(graph, f"{stem}.json"),
    }
