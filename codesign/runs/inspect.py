"""``codesign report`` and ``codesign show``: redraw a run's plots from its stored trials, and draw
one trial's design (floorplan, Gantt chart, schedule table, GraphML and JSON of its graph).

Every file is written to a temporary file in the run folder and renamed into place, and both
commands first remove the temporary files a killed earlier command left behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from codesign.design import parse_design
from codesign.errors import ArgumentError, UserError
from codesign.graph import design_graph, write_graph_json, write_graphml
from codesign.model.evaluator import Evaluator, build_evaluator
from codesign.plots import plot_energy_parts, plot_floorplan, plot_gantt, plot_hypervolume_history, plot_parallel_coordinates
from codesign.runs.energy import design_energy_parts, trial_params
from codesign.runs.evaluate import layer_schedule, stack_cores, tile_schedule
from codesign.runs.tables import remove_stale_temps, write_atomic, write_csv
from codesign.runs.folder import RUN_FILE
from codesign.runs.outputs import open_run, write_outputs
from codesign.search.pareto import hypervolume_history
from codesign.search.storage import open_storage, open_study
from codesign.space import DesignSpace
from codesign.vocab import ENERGY_PARTS


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable ({error}); is this a codesign run folder?") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def _alive(pid) -> bool:
    """Whether the process ``pid`` (another one than this) still runs."""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _load_run_space(out: Path) -> tuple[DesignSpace, Evaluator, dict]:
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise UserError(f"{out}: not a codesign run folder (no {RUN_FILE}); run `codesign explore` first")
    info = _read_json(run_file)
    if "design" not in info:
        raise UserError(f"{run_file}: holds no design; is this a codesign run folder?")
    remove_stale_temps(out)
    design = parse_design(info["design"], source=info.get("design_source", str(run_file)))
    space, evaluator = build_evaluator(design)
    return space, evaluator, info


def report(out: str | Path) -> list[Path]:
    """Regenerate a run's plots from its stored trials: front, hypervolume history, parallel coordinates."""
    out = Path(out)
    space, evaluator, info = _load_run_space(out)
    # Reading the study never writes to its storage (a CREATE_STUDY record on every open, before).
    backend, where = open_storage(out, info.get("storage_url"), read_only=True)
    persistent = open_study(backend, ["minimize"] * len(space.design.objectives.minimize), create=False, where=where)
    # Keep what only the run itself measured (seed, wall time, throughput) from its summary.
    previous = _read_json(out / "summary.json") if (out / "summary.json").is_file() else {}
    run_keys = ("status", "signal", "error", "trials_requested", "seed", "strategy", "sampler", "refine", "device", "trials_added", "wall_s", "evals_per_s",
                "trials_per_s", "timings_s", "storage")
    run_stats = {k: previous[k] for k in run_keys if k in previous}
    # No summary: the run stopped before its first outputs. "running" from a process that is gone:
    # it was killed outright. Either way what it stored is what there is: interrupted.
    if not previous or (run_stats.get("status") == "running" and not _alive(previous.get("pid"))):
        run_stats["status"] = "interrupted"
    run = write_outputs(out, space, evaluator.metric_names, persistent.get_trials(deepcopy=False), run_stats=run_stats)
    objectives = run.objectives
    paths = [out / "front.png"] + ([out / "energy.png"] if (out / "energy.png").is_file() else [])
    if len(run.front):
        ref = np.array([run.summary["reference_point"][o] for o in objectives])
        history = hypervolume_history(run.trials, objectives, ref)
        paths.append(write_atomic(out / "hypervolume.png", lambda p: plot_hypervolume_history(history, p, reference_point=ref)))
        knobs = [k.name for k in space.knobs if k.name.startswith("hw.") or k.name == "sched.mode"]
        columns = [*objectives, *knobs]
        paths.append(write_atomic(out / "parallel_coordinates.png", lambda p: plot_parallel_coordinates(run.front, columns, p)))
    return paths


def show(out: str | Path, trial: int) -> dict[str, Path]:
    """Floorplan with mapping, per-core Gantt chart, GraphML and JSON of one trial's design, and its
    energy by component (a CSV and a stacked bar; not for a model without the parts, an LLM's); with
    fusion or splitting the floorplan outlines the fused stacks, the Gantt chart is drawn tile by
    tile and the tiles' times are written too (``tiles``)."""
    out = Path(out)
    space, evaluator, _ = _load_run_space(out)
    frame = open_run(out).trials
    match = frame[frame["trial"] == trial]
    if match.empty:
        raise ArgumentError("trial", trial, f"no such trial in {out} (trials 0–{int(frame['trial'].max())})")
    params = trial_params(space, match.iloc[0])
    graph = design_graph(space, params)
    row = torch.tensor([space.encode(params)], dtype=torch.long).reshape(1, space.dimension)
    schedule = layer_schedule(space, evaluator, row)
    tiles = tile_schedule(space, evaluator, row, schedule)  # None without fusion or splitting: today's chart
    stem = f"trial_{trial}"
    parts = design_energy_parts(evaluator.model, space, row)
    energy = {}
    if parts:  # the energy by component: a table (part, joules, share of energy_j) and its stacked bar
        total = sum(parts.values())
        table = pd.DataFrame({"part": list(ENERGY_PARTS), "energy_j": list(parts.values()), "share": [v / total for v in parts.values()]})
        energy = {"energy": write_csv(table, out / f"{stem}_energy.csv"),
                  "energy_plot": write_atomic(out / f"{stem}_energy.png", lambda p: plot_energy_parts(
                      pd.DataFrame([parts]), p, labels=[f"trial {trial}"], title=f"trial {trial}: energy by component"))}
    return {
        "floorplan": write_atomic(out / f"{stem}_floorplan.png",
                                  lambda p: plot_floorplan(graph, p, title=f"trial {trial}", stacks=stack_cores(schedule))),
        "gantt": write_atomic(out / f"{stem}_gantt.png", lambda p: plot_gantt(schedule, p, title=f"trial {trial}: schedule", tiles=tiles)),
        "schedule": write_csv(schedule, out / f"{stem}_schedule.csv"),
        **({"tiles": write_csv(tiles, out / f"{stem}_tiles.csv")} if tiles is not None else {}),
        "graphml": write_atomic(out / f"{stem}.graphml", lambda p: write_graphml(graph, p)),
        "json": write_atomic(out / f"{stem}.json", lambda p: write_graph_json(graph, p)),
        **energy,
    }
