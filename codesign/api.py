"""The Python API: everything the shell does, one call away.

    import codesign
    run = codesign.explore("designs/edge_resnet18.toml", trials=2000, seed=1, out="runs/q")
    run.front            # pandas DataFrame of the non-dominated feasible designs
    run.summary["hypervolume"]
    codesign.show("runs/q", trial=run.knee_trial)   # floorplan, Gantt chart, GraphML

A thin facade over the application layer (:mod:`codesign.runs`): arguments are checked here,
once, and a bad one raises :class:`~codesign.errors.ArgumentError` naming the argument as the
caller wrote it (``trials=0``; the shell renders the same error as ``--trials 0``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from codesign.design import Design, load_design
from codesign.cluster import check_address
from codesign.errors import ArgumentError, DesignError
from codesign.model.evaluator import Evaluator, build_evaluator
from codesign.runs.evaluate import evaluate_design
from codesign.runs.explore import explore_plain
from codesign.runs.inspect import report, show
from codesign.runs.oracle import explore_with_oracle
from codesign.runs.outputs import Run, open_run
from codesign.runs.workloads import workload_description
from codesign.space import DesignSpace
from codesign.vocab import DEVICES, PRECISIONS, REFINE_METHODS, SAMPLERS, STRATEGIES, UNSUPPORTED, one_of
from codesign.workload.sources import build_workload


__all__ = ["Run", "build", "evaluate", "explore", "open_run", "report", "show", "describe_workload"]


def _as_design(design: Design | str | Path) -> Design:
    return design if isinstance(design, Design) else load_design(design)


def build(design: Design | str | Path, *, device: str = "cpu") -> tuple[DesignSpace, Evaluator]:
    """The design space and its evaluator (built-in model + plug-ins), checked."""
    return build_evaluator(_as_design(design), device=device)


def _choose(argument: str, value: str | None, default: str, allowed: tuple) -> str:
    value = default if value is None else value
    if value not in allowed:
        raise ArgumentError(argument, value, f"expected {one_of(allowed)}")
    return value


def _check_oracle_arguments(oracle, oracle_budget, storage, strategy, sampler, refine) -> None:
    if oracle is None or oracle_budget is None:
        given, missing = ("oracle", "oracle_budget") if oracle_budget is None else ("oracle_budget", "oracle")
        raise ArgumentError(given, oracle if oracle_budget is None else oracle_budget,
                            "{arg} and {other} go together: name an oracle and the designs it may evaluate", related={"other": missing})
    if isinstance(oracle_budget, bool) or not isinstance(oracle_budget, int) or oracle_budget < 1:
        raise ArgumentError("oracle_budget", oracle_budget, "expected a positive number of designs")
    if storage is not None:
        raise ArgumentError("storage", storage, "an oracle run keeps its rounds in its run folder, not in an Optuna storage; leave {arg} out")
    for argument, value, default in (("strategy", strategy, "joint"), ("sampler", sampler, "nsga2"), ("refine", refine, "none")):
        if value not in (None, default):
            raise ArgumentError(argument, value, "the oracle loop runs its own NSGA-II search on the surrogate; leave {arg} out with an oracle")


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
    oracle_deadline: float | None = None,
    strategy: str | None = None,
    sampler: str | None = None,
    refine: str | None = None,
    cluster: str | None = None,
) -> Run:
    """Search the design space jointly and write the run folder ``out``.

    Args:
        design: a :class:`Design` or the path of a design file.
        trials: total trials the study should hold at the end (default: the design's
            ``search.trials``); a run folder that already holds some resumes (fewer than it
            holds is an error; refined designs count against this total too).
        seed: NSGA-II seed (default: the design's ``search.seed``; resuming, the run's own,
            and another one is an error).
        out: run folder: ``trials.csv``, ``front.csv``, ``front.png``, ``summary.json``
            (whose ``status`` is ``finished``, ``interrupted`` or ``failed``).
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
        oracle_deadline: seconds after which the oracle loop asks the oracle nothing more and
            reports what it has verified (default: no deadline).
        cluster: a Dask scheduler's address (``tcp://HOST:8786``) or ``local:N`` (N worker processes
            here): oracle jobs and slow plug-ins run on its workers (:mod:`codesign.cluster`); default:
            the design's ``cluster.address``, else none (everything in this process).

    A first SIGINT or SIGTERM stores the batch in flight and returns the run with ``status``
    ``interrupted`` (and ``signal``); a second raises :class:`~codesign.search.guards.Aborted`
    (a ``KeyboardInterrupt``). A run whose every trial failed raises :class:`UserError` after
    writing its outputs.
    """
    design = _as_design(design)
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise ArgumentError("trials", trials, "expected a positive number of trials")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ArgumentError("seed", seed, "expected a non-negative integer")
    if not str(device).startswith("cuda:"):
        _choose("device", device, "auto", DEVICES)
    cluster = _cluster_address(design, cluster)
    if oracle is not None or oracle_budget is not None:
        _check_oracle_arguments(oracle, oracle_budget, storage, strategy, sampler, refine)
        return explore_with_oracle(design, oracle=oracle, budget=oracle_budget, trials=trials, seed=seed, out=out, device=device, say=say,
                                   deadline_s=oracle_deadline, cluster=cluster)
    if oracle_deadline is not None:
        raise ArgumentError("oracle_deadline", oracle_deadline, "bounds an oracle run; give {oracle} too, or leave {arg} out",
                            related={"oracle": "oracle"})
    strategy = _choose("strategy", strategy, design.search.strategy, STRATEGIES)
    sampler = _choose("sampler", sampler, design.search.sampler, SAMPLERS)
    refine = _choose("refine", refine, design.search.refine, REFINE_METHODS)
    if strategy != "joint" and sampler != "nsga2":
        raise ArgumentError("sampler", sampler, f"applies to the joint strategy only (the {strategy} strategy has its own sampling)")
    return explore_plain(design, trials=trials, seed=seed, out=Path(out),
                         storage=storage, device=device, progress=progress, say=say, strategy=strategy, sampler=sampler, refine=refine,
                         cluster=cluster)


def _cluster_address(design: Design, cluster: str | None) -> str | None:
    """The cluster of a run: the argument, else the design file's ``[cluster]`` (checked, in its words)."""
    if cluster is not None:
        return check_address(cluster)
    address = design.cluster.address
    if address is not None:
        try:
            check_address(address)
        except ArgumentError as error:
            raise DesignError(f"{design.source}: cluster.address = {address!r}: {error.expected}") from None
    return address


def describe_workload(spec: str, *, batch: int = 1, precision_bytes: int = 1, params: dict | None = None,
             input_shape: tuple[int, ...] | list[int] | None = None, unsupported: str = "error") -> dict:
    """The network ``spec`` as the model sees it: a zoo name, ``torchvision:NAME``, ``file.py:Name``,
    ``package.module:Name``, an ``.onnx`` file or a SCALE-Sim ``.csv``. Returns the JSON object of
    ``codesign workload`` (``total_macs``, ``weight_bytes``, ``vector_ops``, ``layers``, ...)."""
    for argument, value in (("batch", batch), *((("input_shape", d) for d in input_shape) if input_shape else ())):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(argument, value, "expected a positive integer" if argument == "batch" else "expected positive integers")
    _choose("precision_bytes", precision_bytes, 1, PRECISIONS)
    _choose("unsupported", unsupported, "error", UNSUPPORTED)
    built = build_workload(spec, batch=batch, precision_bytes=precision_bytes, params=dict(params or {}),
                           input_shape=None if input_shape is None else tuple(input_shape), unsupported=unsupported)
    return workload_description(built)


def evaluate(design: str | Path, *, settings: list[str] | tuple[str, ...] = (), device: str = "cpu") -> dict:
    """The metrics and per-layer schedule of one exact design: every search range of the design
    file at the value a setting gives (``"hardware.pe_rows=32"``) or at its first choice."""
    _choose("device", device, "cpu", DEVICES)
    return evaluate_design(design, list(settings), device=device)
