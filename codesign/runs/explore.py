"""``codesign explore``: the plain workflow. Check everything, open (or resume) the run folder and
its study, run the search strategy, refine the front if asked, and write the outputs.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import optuna

from codesign.design import Design
from codesign.errors import ArgumentError
from codesign.model.evaluator import build_evaluator
from codesign.runs.folder import RUN_FILE, prepare_run_folder, space_fingerprint, write_identity
from codesign.runs.outputs import Run, write_outputs
from codesign.search.driver import run_search
from codesign.search.refine import check_refinable, refine_front
from codesign.search.storage import STUDY_NAME, load_or_create_study, open_storage


def explore_plain(design: Design, *, trials: int, seed: int, out: Path, storage: str | None, device: str, progress: bool,
                  say, strategy: str, sampler: str, refine: str) -> Run:
    """Search ``design``'s space into the run folder ``out`` (arguments already checked by :func:`codesign.api.explore`)."""
    space, evaluator = build_evaluator(design, device=device)
    if refine != "none":
        check_refinable(space, evaluator)
    persistent, storage_desc = open_run_study(out, space, evaluator.metric_names, storage=storage, strategy=strategy, sampler=sampler)
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=trials, initial=min(trials, len(persistent.get_trials(deepcopy=False))), unit="trial", desc="explore", file=sys.stderr)
    try:
        timings, added = run_search(space, evaluator, persistent, n_trials=trials, seed=seed, progress=bar.update if bar else None,
                                    say=say, strategy=strategy, sampler=sampler)
    finally:
        if bar is not None:
            bar.close()
    refined = None
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    if refine != "none" and len(persistent.get_trials(deepcopy=False, states=finished)) < trials:
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
    return write_outputs(out, space, evaluator.metric_names, persistent.get_trials(deepcopy=False), run_stats=run_stats)


def open_run_study(out: Path, space, metric_names: list[str], *, storage: str | None, strategy: str, sampler: str) -> tuple[optuna.Study, str]:
    """The run folder's study: a new folder gets ``run.json`` and the design's copy; an existing one must
    hold the same design space, storage, strategy and sampler. Nothing is left behind on failure."""
    design = space.design
    fingerprint = space_fingerprint(space)
    resuming = prepare_run_folder(out, fingerprint, design, storage)
    if resuming:
        before = json.loads((out / RUN_FILE).read_text()).get("strategy", {"strategy": "joint", "sampler": "nsga2"})
        if (before.get("strategy"), before.get("sampler")) != (strategy, sampler):
            raise ArgumentError(
                "strategy", strategy,
                f"the run folder {out} holds a run of strategy {before.get('strategy')} with sampler {before.get('sampler')}; "
                f"resume it with those, or use another run folder for strategy {strategy} with sampler {sampler}",
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
        write_identity(out, design, {
            "fingerprint": fingerprint,
            "storage_url": storage,
            "storage": storage_desc,
            "study_name": STUDY_NAME,
            "metrics": metric_names,
            "strategy": {"strategy": strategy, "sampler": sampler},
        })
    return persistent, storage_desc
