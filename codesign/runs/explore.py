"""``codesign explore``: the plain workflow. Check everything, open (or resume) the run folder and
its study, run the search strategy, refine the front if asked, and write the outputs.

The whole workflow runs under one signal guard (:class:`~codesign.search.guards.StopOnInterrupt`):
a first SIGINT or SIGTERM, at any stage, stores the batch in flight, skips what is left of the
search and refinement, and still writes the outputs (``status`` ``interrupted`` in summary.json);
a second aborts at once, never inside a storage write or while the outputs are renamed into place.
An error during the search writes the outputs of what is stored (``status`` ``failed``) before it
propagates; so does a run whose every trial failed, which is an error (:class:`UserError`).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import optuna

from codesign.cluster import cluster_session, distribute_slow_plugins
from codesign.design import Design
from codesign.errors import ArgumentError, UserError
from codesign.model.evaluator import build_evaluator
from codesign.runs.folder import RUN_FILE, check_resume, plugin_sources, prepare_run_folder, space_fingerprint, write_identity
from codesign.runs.outputs import Run, failure_line, mark_running, write_outputs
from codesign.runs.tables import remove_stale_temps, write_json
from codesign.search.batch import Timings, study_user_attrs
from codesign.search.driver import run_search
from codesign.search.guards import StopOnInterrupt, deferred_abort, signal_name
from codesign.search.lease import Lease
from codesign.search.lease import acquire as acquire_lease
from codesign.search.refine import check_refinable, refine_front, refine_reserve
from codesign.search.storage import STUDY_NAME, open_storage, open_study

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)


def explore_plain(design: Design, *, trials: int | None, seed: int | None, out: Path, storage: str | None, device: str, progress: bool,
                  say, strategy: str, sampler: str, refine: str, cluster: str | None = None) -> Run:
    """Search ``design``'s space into the run folder ``out`` (arguments already checked by :func:`codesign.api.explore`).

    ``cluster``: a Dask scheduler address or ``local:N`` (:mod:`codesign.cluster`): the plug-ins that
    declare themselves slow evaluate there, one task per design; the study, the NSGA-II generation
    and the results' cache stay here.

    ``trials`` and ``seed`` may be None: the design's ``search.trials`` (never fewer than the
    run folder already holds) and the run's own seed when it resumes, else the design's.
    """
    space, evaluator = build_evaluator(design, device=device)
    if refine != "none":
        check_refinable(space, evaluator)
    with cluster_session(cluster, say=say) as client:
        if client is not None:
            evaluator.plugins = distribute_slow_plugins(evaluator.plugins, client)
        evaluator.check_plugins()  # a plug-in that breaks its contract stops before any folder is made
        with StopOnInterrupt(say) as stop:
            persistent, storage_desc, seed, lease = open_run_study(out, space, evaluator, storage=storage, strategy=strategy, sampler=sampler,
                                                                   seed=seed)
            try:
                run = _leased_run(out, space, evaluator, persistent, storage_desc, seed, trials=trials, strategy=strategy, sampler=sampler,
                                  refine=refine, progress=progress, say=say, stop=stop)
            finally:
                lease.release()
    line = failure_line(run.summary)
    if line:
        say(line)
    if run.summary["status"] == "failed":
        reason = next(iter(run.summary["fail_reasons"]), "unknown")
        raise UserError(f"{out}: every one of the {run.summary['n_trials']} trials failed, so there is no design to report; "
                        f"most common reason: {reason} (all reasons: trials.csv's fail_reason)")
    return run


def _leased_run(out: Path, space, evaluator, persistent, storage_desc: str, seed: int, *, trials: int | None, strategy: str, sampler: str,
                refine: str, progress: bool, say, stop: StopOnInterrupt) -> Run:
    """The search and its outputs, while this process holds the study's lease: the trials the study
    holds are counted now, and no other coordinator adds any until it ends."""
    held = len(persistent.get_trials(deepcopy=False, states=FINISHED))
    trials = _total_trials(trials, space.design.search.trials, held, out)
    remove_stale_temps(out)
    mark_running(out)
    start = time.perf_counter()
    stats = {"trials_requested": trials, "seed": seed, "strategy": strategy, "sampler": sampler, "device": str(evaluator.device), "storage": storage_desc}
    try:
        timings, added, refined = _search(space, evaluator, persistent, trials=trials, seed=seed, strategy=strategy, sampler=sampler,
                                          refine=refine, progress=progress, say=say, stop=stop, held=held)
    except Exception as error:
        if isinstance(error, OSError) and error.filename is None:
            error.filename = storage_desc  # a failed storage write: name the storage
        _write_failed(out, space, evaluator, persistent, stats, error)
        raise
    stored = persistent.get_trials(deepcopy=False)
    stats.update(_run_stats(timings, added, refined, time.perf_counter() - start))
    stats.update(_status(stored, trials, stop))
    run = write_outputs(out, space, evaluator.metric_names, stored, run_stats=stats)
    if stop.received is not None and run.summary["signal"] is None:  # it came while the outputs were written
        run.summary["signal"] = signal_name(stop.received)
        with deferred_abort():
            write_json(run.summary, out / "summary.json")
    return run


def _total_trials(trials: int | None, default: int, held: int, out: Path) -> int:
    if trials is None:
        return max(default, held)
    if trials < held:
        raise ArgumentError("trials", trials, f"the run folder {out} already holds {held} trials and {{arg}} is the total the study "
                            f"should hold; pass at least {held} to resume it, or use another run folder")
    return trials


def _search(space, evaluator, persistent, *, trials: int, seed: int, strategy: str, sampler: str, refine: str, progress: bool, say,
            stop: StopOnInterrupt, held: int):
    """Search, refinement within the same total, then search again for what refinement left:
    returns the timings, the trials added and refinement's statistics (None if it did not run)."""
    reserve = refine_reserve(space.design, trials) if refine != "none" else 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=trials, initial=min(trials, held), unit="trial", desc="explore", file=sys.stderr)
    update = bar.update if bar is not None else None
    search = dict(seed=seed, progress=update, say=say, strategy=strategy, sampler=sampler)
    refined = None
    try:
        timings, added = run_search(space, evaluator, persistent, n_trials=trials - reserve, **search)
        done = len(persistent.get_trials(deepcopy=False, states=FINISHED))
        if refine != "none" and (stop.stop_requested or done < trials - reserve):
            say("refine: skipped, the search stopped before its trials were done")
        elif refine != "none" and done < trials:  # (a resumed run that holds its total has no room left for refined designs)
            refined = refine_front(space, evaluator, persistent, method=refine, seed=seed, starts=space.design.search.refine_starts,
                                   steps=space.design.search.refine_steps, say=say, max_trials=trials - done, stop=lambda: stop.stop_requested)
            if update is not None:
                update(refined.trials_added)
        elif refine != "none":
            say(f"refine: skipped, the run already holds its total of {trials} trials: no room left for refined designs")
        left = trials - len(persistent.get_trials(deepcopy=False, states=FINISHED))
        if reserve and not stop.stop_requested and refined is not None and left > 0:  # the reserve refinement did not use
            if strategy == "sequential":  # its proposals depend on its total: a larger one is another search
                say(f"refine: {left} trials of the reserve left unused (the sequential strategy's phases are fixed by its budget)")
            else:
                more, more_added = run_search(space, evaluator, persistent, n_trials=trials, **search)
                timings, added = timings.merged(more), added + more_added
    finally:
        if bar is not None:
            bar.close()
    return timings, added, refined


def _run_stats(timings: Timings, added: int, refined, wall: float) -> dict:
    return {
        "refine": refined.as_dict() if refined is not None else None,
        "trials_added": added + (refined.trials_added if refined is not None else 0),
        "wall_s": wall,
        "evals_per_s": timings.evaluated / timings.evaluate_s if timings.evaluate_s > 0 else None,
        "trials_per_s": added / wall if wall > 0 else None,
        "timings_s": timings.as_dict(),
    }


def _status(stored, trials: int, stop: StopOnInterrupt) -> dict:
    """summary.json's ``status`` (and ``signal``, ``error``) of a search that ran to its end or was stopped."""
    finished = [t for t in stored if t.state in FINISHED]
    signal = signal_name(stop.received) if stop.received is not None else None
    if finished and not any(t.state == optuna.trial.TrialState.COMPLETE for t in finished):
        return {"status": "failed", "signal": signal, "error": f"every one of the {len(finished)} trials failed"}
    cut_short = len(finished) < trials  # (refinement cut short leaves the rest of its reserve unsearched)
    return {"status": "interrupted" if signal and cut_short else "finished", "signal": signal, "error": None}


def _write_failed(out: Path, space, evaluator, persistent, stats: dict, error: Exception) -> None:
    """Outputs of what is stored when the search failed, if they can be written (not on a full disk)."""
    try:
        stats = {**stats, "status": "failed", "signal": None, "error": f"{type(error).__name__}: {error}"}
        write_outputs(out, space, evaluator.metric_names, persistent.get_trials(deepcopy=False), run_stats=stats)
    except Exception:  # the error that stopped the run is the one to report
        pass


def open_run_study(out: Path, space, evaluator, *, storage: str | None, strategy: str, sampler: str,
                   seed: int | None) -> tuple[optuna.Study, str, int, Lease]:
    """The run folder's study, its description, the seed and the study's lease (:mod:`codesign.search.lease`:
    a second coordinator on the study is refused here): a new folder gets ``run.json`` and the
    design's copy; an existing one must hold the same design space, storage, strategy, sampler,
    seed and plug-ins. Nothing is left behind on failure."""
    design = space.design
    fingerprint = space_fingerprint(space)
    sources = plugin_sources(design.cost_model.plugins, evaluator.plugins)
    resuming = prepare_run_folder(out, fingerprint, design, storage)
    if resuming:
        before = json.loads((out / RUN_FILE).read_text())
        kind = before.get("strategy", {"strategy": "joint", "sampler": "nsga2"})
        if (kind.get("strategy"), kind.get("sampler")) != (strategy, sampler):
            raise ArgumentError(
                "strategy", strategy,
                f"the run folder {out} holds a run of strategy {kind.get('strategy')} with sampler {kind.get('sampler')}; "
                f"resume it with those, or use another run folder for strategy {strategy} with sampler {sampler}",
            )
        seed = check_resume(out, before, seed=seed, plugins=sources)
    seed = design.search.seed if seed is None else seed
    created = not out.exists()
    try:
        with deferred_abort():
            out.mkdir(parents=True, exist_ok=True)
            if not resuming:  # the identity first: a folder killed after this is a run folder, never a stray one
                write_identity(out, design, {
                    "fingerprint": fingerprint, "storage_url": storage, "study_name": STUDY_NAME, "metrics": evaluator.metric_names,
                    "strategy": {"strategy": strategy, "sampler": sampler}, "seed": seed, "plugin_sources": sources,
                })
            backend, storage_desc = open_storage(out, storage)
            persistent = open_study(backend, ["minimize"] * len(design.objectives.minimize),
                                    objectives=list(design.objectives.minimize), user_attrs=study_user_attrs(space), where=storage_desc)
            lease = acquire_lease(persistent, out=out, url=storage)
    except BaseException as error:
        if isinstance(error, OSError) and error.filename is None:
            error.filename = storage or str(out)  # name where it failed: the storage, else the run folder
        if not resuming:  # a new run leaves no trace: the folder as it was (absent or empty)
            shutil.rmtree(out, ignore_errors=True)
            if not created:
                out.mkdir(exist_ok=True)
        raise
    return persistent, storage_desc, seed, lease
