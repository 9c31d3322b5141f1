"""``codesign explore --oracle``: the surrogate-assisted loop (:mod:`codesign.search.surrogate_loop`),
then its run folder: ``oracle_trials.csv``, ``front.csv`` (every point oracle-verified),
``predicted_front.csv``, ``rounds.csv``, the surrogate, ``front.png`` and ``summary.json``.

Nothing of the oracle's work is held only in memory: ``run.json`` is written before the first
oracle job, and ``oracle_trials.csv``, ``rounds.csv`` and ``front.csv`` (each written to a
temporary file and renamed into place) after every round. Running the same command again on the
folder of an interrupted run resumes it: the stored designs are replayed (the oracle's cache
answers them: no simulator time; each counts once against the budget) and the loop goes on.

SIGINT (Ctrl-C) and SIGTERM: the first stops the oracle at once — every simulator process group
still running is killed with its children, no further job starts — keeps every finished round,
writes ``summary.json`` with ``status: interrupted`` and the ``signal``, and returns the run (the
shell exits with 128 + the signal's number, as for a plain search). A second signal raises
:class:`~codesign.search.guards.Aborted` (a ``KeyboardInterrupt``) at once; what is stored stays stored.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from codesign.cluster import cluster_session, distribute_slow_plugins
from codesign.errors import ArgumentError, UserError
from codesign.model.evaluator import check_metrics, resolve_device
from codesign.model.plugins import load_plugins
from codesign.oracles.base import Oracle, OracleStopped, get_oracle
from codesign.plots import plot_front
from codesign.runs.folder import ORACLE_KIND, RUN_FILE, space_fingerprint, write_identity
from codesign.runs.outputs import Run, top_fail_reasons, workload_summary
from codesign.runs.tables import write_atomic, write_csv, write_json
from codesign.search.guards import StopOnInterrupt
from codesign.search.reference import REFERENCE_RULE
from codesign.search.surrogate_loop import LoopSettings, SurrogateLoop, check_design
from codesign.space import DesignSpace

KIND = ORACLE_KIND  # run.json's kind of this workflow


def explore_with_oracle(design, *, oracle: str | Oracle, budget: int, trials: int | None, seed: int | None, out: Path,
                        device: str = "auto", say=print, settings: LoopSettings | None = None,
                        deadline_s: float | None = None, cluster: str | None = None):
    """``codesign explore --oracle``: the loop, then the run folder. Returns a :class:`~codesign.runs.outputs.Run`.

    ``cluster``: a Dask scheduler's address or ``local:N`` (:mod:`codesign.cluster`): the oracle jobs the
    cache does not answer, and the slow plug-ins' designs, run on its workers.

    ``deadline_s``: seconds after which the oracle is asked nothing more; what was verified by
    then is kept and reported (``summary.json``'s ``stopped_by``). ``seed``: ``None`` is the
    resumed run's own seed, or the design's ``search.seed`` for a new run.
    """
    check_design(design)
    settings = settings or LoopSettings(budget=budget, inner_trials=trials, deadline_s=deadline_s)
    out = Path(out)
    resolved = settings.resolve(design)  # budget errors before the oracle is even built
    dev = resolve_device(device)
    space = DesignSpace.from_design(design)
    previous = _previous_run(out, space)
    if seed is None:  # a resumed run keeps its own seed, as a plain run does
        seed = previous.get("seed", design.search.seed) if previous is not None else design.search.seed
    plugins = load_plugins(design.cost_model.plugins, source=design.source)
    oracle = get_oracle(oracle)
    identity = {"kind": KIND, "fingerprint": space_fingerprint(space), "oracle": oracle.describe(),
                "oracle_budget": budget, "seed": seed}
    resume = _resume(out, space, previous, identity) if previous is not None else None
    start = time.perf_counter()

    def summary(lp: SurrogateLoop, status: str = "running", **why) -> Run:
        return _write_partial(out, design, lp, status=status, wall=time.perf_counter() - start, device=dev, **why)

    def stored(lp: SurrogateLoop) -> None:
        """After each round: the rounds so far, and a summary saying the run goes on."""
        _write_rounds(out, lp)
        summary(lp)

    with cluster_session(cluster, say=say) as client:  # (no cluster: None, and the oracle's own pool)
        oracle.use_cluster(client)
        if client is not None:
            plugins = distribute_slow_plugins(plugins, client)
        loop = SurrogateLoop(space, oracle, resolved, seed=seed, device=dev, plugins=plugins, say=say, on_round=stored)
        check_metrics(design, loop.analytic_eval.metric_names)
        out.mkdir(parents=True, exist_ok=True)
        write_identity(out, design, identity)
        # A summary of an earlier run here is not this run's; its tables stay until the replay stores them again.
        summary(loop)
        def stop_oracle(name: str) -> str:  # the first signal: no job starts, the simulators die now
            killed = oracle.stop()
            return (f"{name}: oracle stopped ({killed} simulator process group(s) killed); keeping the finished rounds "
                    f"(the same command resumes the run; {name} again to abort)")

        # The one signal guard of the engine: the loop's inner searches nest in it, so a signal during
        # one of them stops the oracle run too (a second guard of their own would swallow it).
        with StopOnInterrupt(say, on_signal=stop_oracle) as guard:
            try:
                result = loop.run(resume=resume)
            except OracleStopped:  # the tables hold every round finished (stored as each ended)
                return summary(loop, "interrupted", signum=guard.received)
            except UserError as error:  # nothing verified to learn from: say so in the folder too
                summary(loop, "failed", signum=guard.received, error=str(error))
                raise
            finally:
                oracle.close()
            return _write_outputs(out, design, loop, result, wall=time.perf_counter() - start, device=dev)


def _previous_run(out: Path, space: DesignSpace) -> dict | None:
    """``run.json`` of an oracle run in ``out`` (to resume), None for a new or empty folder; else an error."""
    run_file = out / RUN_FILE
    if run_file.is_file():
        try:
            info = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"{run_file}: unreadable run file ({error}); use another run folder") from None
        if info.get("kind") == KIND:
            return info
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArgumentError("out", str(out), "exists and holds no oracle run; an oracle run starts in a new or empty folder, "
                            "or resumes an oracle run of the same design")
    return None


def _resume(out: Path, space: DesignSpace, info: dict, identity: dict):
    """What the loop replays from an earlier oracle run in ``out``, after checking it is the same run."""
    if info.get("fingerprint") != identity["fingerprint"]:
        raise ArgumentError("out", str(out), "holds an oracle run of a different design space; use another run folder")
    then, now = info.get("oracle", {}), identity["oracle"]
    if (then.get("name"), then.get("version")) != (now.get("name"), now.get("version")):
        raise ArgumentError("oracle", now.get("name"), f"the run folder {out} holds a run of oracle {then.get('name')} "
                            f"version {then.get('version')}; resume it with that oracle, or use another run folder")
    if info.get("seed") != identity["seed"]:
        raise ArgumentError("seed", identity["seed"], f"the run folder {out} holds an oracle run with seed {info.get('seed')}; "
                            "resume it with that seed, or use another run folder")
    trials_file = out / "oracle_trials.csv"
    try:
        table = pd.read_csv(trials_file, dtype={k.name: str for k in space.knobs})
    except (FileNotFoundError, pd.errors.EmptyDataError):  # stopped before its first round was stored
        return None
    if len(table) > identity["oracle_budget"]:
        raise ArgumentError("oracle_budget", identity["oracle_budget"], f"the run folder {out} already holds {len(table)} "
                            "oracle-verified designs; pass at least that many to resume it")
    rounds_file = out / "rounds.csv"
    rounds = pd.read_csv(rounds_file).to_dict("records") if rounds_file.is_file() and rounds_file.stat().st_size > 1 else []
    return rows_of(space, table), table, rounds


def rows_of(space: DesignSpace, frame: pd.DataFrame) -> torch.Tensor:
    """Integer rows ``[n, D]`` of a table's knob columns, read back as text (``oracle_trials.csv``
    as the loop writes it: each value as ``str`` of the design's choice)."""
    codes = []
    for knob in space.knobs:
        column = frame[knob.name].astype(str)
        if knob.choices is None:
            codes.append(column.astype(float).astype(int).to_numpy())
            continue
        lookup = {str(choice): i for i, choice in enumerate(knob.choices)}
        bad = ~column.isin(list(lookup))
        if bad.any():
            raise UserError(f"{knob.name} = {column[bad].iloc[0]!r} in a stored oracle trial is not one of the design's "
                            f"choices {list(knob.choices)}: the stored trials belong to another design")
        codes.append(column.map(lookup).to_numpy(dtype=np.int64))
    return torch.as_tensor(np.stack(codes, axis=1) if codes else np.zeros((len(frame), 0)), dtype=torch.long)


def _write_rounds(out: Path, loop: SurrogateLoop) -> None:
    """What the loop has verified so far: rounds first, then the designs (a resume reads rounds up to the designs' last)."""
    write_csv(pd.DataFrame(loop.rounds), out / "rounds.csv")
    verified = pd.DataFrame(loop.records)
    write_csv(verified, out / "oracle_trials.csv")
    write_csv(loop.verified_front(verified), out / "front.csv")


def _counts(design, loop: SurrogateLoop, verified: pd.DataFrame, front: pd.DataFrame, hypervolume: float) -> dict:
    complete = int((verified["fail_reason"] == "").sum()) if len(verified) else 0
    reasons = top_fail_reasons(verified.loc[verified["fail_reason"] != "", "fail_reason"]) if len(verified) else {}
    return {
        "design": design.source, "workload": design.workload.network, **workload_summary(loop.space),
        "objectives": list(design.objectives.minimize),
        "constraints": design.constraints, "n_trials": len(verified), "n_complete": complete,
        "n_failed": len(verified) - complete, "fail_reasons": reasons,
        "n_feasible": int(verified["feasible"].sum()) if len(verified) else 0, "n_front": len(front),
        "hypervolume": hypervolume, "reference_point": dict(zip(loop.objectives, map(float, loop.reference))),
        "reference_point_rule": REFERENCE_RULE,
    }


def _write_partial(out: Path, design, loop: SurrogateLoop, *, status: str, wall: float, device, signum: int | None = None,
                   error: str | None = None) -> Run:
    """``summary.json`` of a run before its end: ``running``, ``interrupted`` (by ``signum``) or
    ``failed`` (with the ``error``), with what it had verified by then."""
    verified = pd.DataFrame(loop.records)
    front = loop.verified_front(verified)
    hv = loop.verified_hv() if len(verified) else 0.0
    summary = {**_counts(design, loop, verified, front, hv), "status": status, "error": error,
               "signal": signal.Signals(signum).name if signum else None, "trials_added": len(verified),
               "trials_requested": loop.settings.budget, "wall_s": wall, "device": str(device),
               "oracle": loop.oracle.describe(), "oracle_stats": loop.oracle.stats.as_dict(), "budget": loop.settings.budget,
               "designs_verified": len(verified), "rounds": len(loop.rounds), "seed": loop.seed}
    write_json(summary, out / "summary.json")
    return Run(out=out, trials=verified, front=front, summary=summary)


def _write_outputs(out: Path, design, loop: SurrogateLoop, result, *, wall: float, device) -> Run:
    _write_rounds(out, loop)
    if result.predicted_front is not None:
        write_csv(result.predicted_front, out / "predicted_front.csv")
    loop.save_surrogate(out / "surrogate")
    objectives = list(design.objectives.minimize)
    frame = result.verified.copy()
    if len(result.front):
        title = f"{design.workload.network}: {len(frame)} oracle-verified designs"
        write_atomic(out / "front.png", lambda p: plot_front(frame, result.front, objectives, p, constraints=design.constraints, title=title))
    hv = result.summary["verified_hypervolume"]
    summary = {
        **_counts(design, loop, frame, result.front, hv if math.isfinite(hv) else 0.0), "status": "finished", "signal": None,
        "trials_added": len(frame), "trials_requested": loop.settings.budget, "wall_s": wall, "device": str(device), **result.summary,
    }
    write_json(summary, out / "summary.json")
    return Run(out=out, trials=frame, front=result.front, summary=summary)
