"""Search strategies besides joint NSGA-II: the baselines that show what joint search is worth.

``codesign explore --strategy`` picks one; every strategy spends the same budget (trials),
lands every trial in the run's Optuna storage and is evaluated by the same batched model
(:class:`~codesign.search.explore.BatchLoop`):

* ``joint`` with ``--sampler nsga2`` (the default) is :func:`~codesign.search.explore.run_search`'s
  generation-level NSGA-II; ``--sampler nsga3`` and ``--sampler tpe`` run Optuna's
  ``NSGAIIISampler`` and ``TPESampler`` over the same joint space (ask/tell on an in-memory
  study, budgets as Optuna's named trial constraints);
* ``sequential`` is the way accelerators are usually designed: first the hardware, searched
  by NSGA-II against a fixed default schedule (each layer's first listed dataflow, layers
  dealt round-robin over the core slots, the first listed mode), with half the budget; then,
  for hardware designs spread along the front of that first phase, the schedule is searched
  by NSGA-II with the hardware fixed, sharing the other half;
* ``random``: uniform sampling of the joint space (Optuna's ``RandomSampler`` draws).

A strategy is a generator: it yields a batch of integer code rows and receives the batch's
finished trials. Given its seed and the (deterministic) results, it proposes the same rows
again, which is how a stopped run resumes: the stored trials are replayed into a fresh
generator, checked row by row, and the search continues where it stopped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Generator

import numpy as np
import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import UserError
from codesign.model.evaluator import Evaluator
from codesign.search.explore import (
    GENERATION_KEY,
    BatchLoop,
    Nsga2,
    _no_full_gc,
    _StopOnInterrupt,
    _torch_threads,
)
from codesign.search.pareto import nondominated_mask
from codesign.space import DesignSpace

STRATEGIES = ("joint", "sequential", "random")
SAMPLERS = ("nsga2", "nsga3", "tpe")
STRATEGY_KEY = "codesign:strategy"  # trial system attribute: which strategy proposed it
PHASE_KEY = "codesign:phase"  # sequential: "hardware" or "schedule"

Batch = tuple[np.ndarray, dict]  # code rows [n, D] and the system attributes of their trials
Strategy = Generator[Batch, list[FrozenTrial], None]


def check_strategy(strategy: str, sampler: str) -> None:
    if strategy not in STRATEGIES:
        raise UserError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if sampler not in SAMPLERS:
        raise UserError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
    if strategy != "joint" and sampler != "nsga2":
        raise UserError(f"--sampler {sampler}: applies to --strategy joint only (the {strategy} strategy has its own sampling)")


def hardware_columns(space: DesignSpace) -> tuple[list[int], list[int]]:
    """Row columns of the hardware knobs and of the schedule knobs."""
    hw = [i for i, k in enumerate(space.knobs) if k.name.startswith("hw.")]
    return hw, [i for i in range(space.dimension) if i not in hw]


def default_schedule(space: DesignSpace) -> np.ndarray:
    """A full code row whose schedule knobs hold the fixed default schedule (hardware columns 0).

    Each layer (or group) runs its first listed dataflow; layers are dealt round-robin over
    the core slots (slot ``u mod max_cores`` for the ``u``-th unit; a design with fewer cores
    folds the slots onto its cores); the first listed mode.
    """
    row = np.zeros(space.dimension, dtype=np.int64)
    unit = 0
    for i, knob in enumerate(space.knobs):
        if knob.name.startswith("sched.core"):
            row[i] = unit % (knob.high + 1)
            unit += 1
    return row


class _SubSpace:
    """The knobs of some columns, as :class:`Nsga2` sees a space."""

    def __init__(self, space: DesignSpace, cols: list[int]) -> None:
        self.knobs = [space.knobs[c] for c in cols]
        self.distributions = {k.name: k.distribution for k in self.knobs}
        self.dimension = len(self.knobs)

    def encode(self, params: dict) -> list[int]:
        return [k.encode(params[k.name]) for k in self.knobs]


class _SubGA:
    """Optuna's NSGA-II (:class:`Nsga2`) over some columns of the row, the others fixed to ``base``."""

    def __init__(self, space: DesignSpace, cols: list[int], base: np.ndarray, *, seed: int) -> None:
        search = space.design.search
        self.cols, self.base = np.array(cols, dtype=np.int64), base
        self.nsga = Nsga2(_SubSpace(space, cols), population=search.population, crossover_prob=search.crossover_prob,
                          mutation_prob=search.mutation_prob, seed=seed, n_objectives=len(space.design.objectives.minimize))
        self.numbered = 0
        self.pending: tuple[int, np.ndarray] | None = None

    def ask(self, limit: int) -> np.ndarray:
        generation, room = self.nsga.next_generation()
        sub = self.nsga.sample(generation, min(room, limit))
        self.pending = (generation, sub)
        full = np.repeat(self.base[None, :], len(sub), axis=0)
        full[:, self.cols] = sub
        return full

    def tell(self, trials: list[FrozenTrial]) -> None:
        """Record the asked batch's results as trials of this GA's own (sub-space) study."""
        generation, sub = self.pending
        inner = []
        for i, t in enumerate(trials):
            attrs = {k: v for k, v in t.system_attrs.items() if k.startswith(_CONSTRAINTS_KEY)}
            attrs[GENERATION_KEY] = generation
            n = self.numbered + i
            inner.append(FrozenTrial(number=n, trial_id=n, state=t.state, value=None, values=t.values, datetime_start=None,
                                     datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs=attrs,
                                     intermediate_values={}))
        self.numbered += len(trials)
        self.nsga.record(inner, sub)


def _feasible(t: FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and all(v <= 0 for v in t.constraints.values())


def _violation(t: FrozenTrial) -> float:
    if t.state != TrialState.COMPLETE:
        return float("inf")
    return sum(max(0.0, v) for v in t.constraints.values())


def spread_front(trials: list[FrozenTrial], rows: np.ndarray, cols: list[int], k: int) -> list[np.ndarray]:
    """Up to ``k`` distinct ``cols``-parts of rows on the feasible front, spread evenly along it.

    With no feasible trial, the part of the least-violating one.
    """
    feasible = [i for i, t in enumerate(trials) if _feasible(t)]
    if not feasible:
        best = min(range(len(trials)), key=lambda i: _violation(trials[i]))
        return [rows[best, cols]]
    values = np.array([trials[i].values for i in feasible], dtype=np.float64)
    front = [feasible[j] for j in np.flatnonzero(nondominated_mask(values))]
    front.sort(key=lambda i: tuple(trials[i].values))
    parts: list[np.ndarray] = []
    seen: set[bytes] = set()
    for i in front:
        part = rows[i, cols]
        if part.tobytes() not in seen:
            seen.add(part.tobytes())
            parts.append(part)
    if len(parts) <= k:
        return parts
    pick = np.unique(np.round(np.linspace(0, len(parts) - 1, k)).astype(int))
    return [parts[i] for i in pick]


def sequential(space: DesignSpace, budget: int, seed: int) -> Strategy:
    """Hardware first against a default schedule (half the budget), then the schedule per front hardware."""
    hw_cols, sched_cols = hardware_columns(space)
    if not hw_cols or not sched_cols:
        which = "hardware" if not hw_cols else "schedule"
        raise UserError(f"{space.design.source}: --strategy sequential needs both hardware and schedule knobs; this design searches no {which} knob")
    population = space.design.search.population
    first = budget // 2
    ga = _SubGA(space, hw_cols, default_schedule(space), seed=seed)
    seen: list[FrozenTrial] = []
    rows: list[np.ndarray] = []
    while len(seen) < first:
        codes = ga.ask(first - len(seen))
        trials = yield codes, {STRATEGY_KEY: "sequential", PHASE_KEY: "hardware"}
        ga.tell(trials)
        seen += trials
        rows.append(codes)
    rest = budget - first
    if rest <= 0:
        return
    k = max(1, rest // (2 * population))
    chosen = spread_front(seen, np.concatenate(rows), hw_cols, k)
    shares = np.diff(np.round(np.linspace(0, rest, len(chosen) + 1)).astype(int))
    for j, (hardware, share) in enumerate(zip(chosen, shares)):
        base = default_schedule(space)
        base[hw_cols] = hardware
        ga = _SubGA(space, sched_cols, base, seed=seed + 1 + j)
        spent = 0
        while spent < share:
            codes = ga.ask(int(share) - spent)
            trials = yield codes, {STRATEGY_KEY: "sequential", PHASE_KEY: "schedule"}
            ga.tell(trials)
            spent += len(codes)


def random_search(space: DesignSpace, seed: int) -> Strategy:
    """Uniform samples of the joint space, a population at a time."""
    nsga = Nsga2(space, population=space.design.search.population, crossover_prob=0.0, mutation_prob=None, seed=seed, n_objectives=1)
    while True:
        yield nsga.random_rows(space.design.search.population), {STRATEGY_KEY: "random"}


def optuna_sampler(space: DesignSpace, name: str, seed: int) -> Strategy:
    """Optuna's NSGA-III or TPE over the joint space, by ask/tell on an in-memory study.

    NSGA-III is asked a population at a time; TPE one trial at a time (it models every
    finished trial before the next suggestion, as in a sequential ``study.optimize``).
    Budgets reach both as Optuna 5's named trial constraints (``Trial.set_constraint``).
    """
    design = space.design
    if name == "tpe":
        sampler, batch = optuna.samplers.TPESampler(seed=seed), 1
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.NSGAIIISampler(population_size=design.search.population, seed=seed,
                                                     crossover_prob=design.search.crossover_prob,
                                                     mutation_prob=design.search.mutation_prob)
        batch = design.search.population
    study = optuna.create_study(directions=["minimize"] * len(design.objectives.minimize), sampler=sampler)
    distributions = space.distributions
    while True:
        asked = [study.ask(distributions) for _ in range(batch)]
        codes = np.array([space.encode(t.params) for t in asked], dtype=np.int64).reshape(len(asked), space.dimension)
        trials = yield codes, {STRATEGY_KEY: f"joint-{name}"}
        for trial, done in zip(asked, trials):
            if done.state == TrialState.COMPLETE:
                for budget, value in done.constraints.items():
                    trial.set_constraint(budget, value)
                study.tell(trial, done.values)
            else:
                study.tell(trial, state=TrialState.FAIL)


def make_strategy(space: DesignSpace, strategy: str, sampler: str, *, budget: int, seed: int) -> Strategy:
    check_strategy(strategy, sampler)
    if strategy == "sequential":
        return sequential(space, budget, seed)
    if strategy == "random":
        return random_search(space, seed)
    return optuna_sampler(space, sampler, seed)


def run_strategy(
    space: DesignSpace,
    evaluator: Evaluator,
    persistent: optuna.Study,
    *,
    strategy: str,
    sampler: str,
    n_trials: int,
    seed: int,
    progress=None,
    say=print,
    fast_storage: bool = True,
    cpu_threads: int | None = None,
):
    """Add trials proposed by ``strategy`` to ``persistent`` until it holds ``n_trials``; as ``run_search``."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loop = BatchLoop(space, evaluator, persistent, fast_storage=fast_storage, say=say)
    if len(loop.previous) >= n_trials:
        return loop.timings, 0
    stored = sorted(loop.previous, key=lambda t: t.number)
    gen = make_strategy(space, strategy, sampler, budget=n_trials, seed=seed)
    replayed, added = 0, 0
    remaining = n_trials - len(stored)
    answer: list[FrozenTrial] | None = None
    with _StopOnInterrupt(loop.state, say), _torch_threads(evaluator.device, space.design.search.population, cpu_threads), _no_full_gc():
        while not loop.state.stop_requested:
            t0 = time.perf_counter()
            try:
                codes, attrs = next(gen) if answer is None else gen.send(answer)
            except StopIteration:
                break
            # A resumed run: the first proposals are the stored trials, in order.
            n_old = min(len(codes), len(stored) - replayed)
            old = stored[replayed:replayed + n_old]
            for row, t in zip(codes[:n_old], old):
                if not all(k.name in t.params for k in space.knobs) or space.encode(t.params) != row.tolist():
                    raise UserError(
                        f"the run's stored trial {t.number} is not what --strategy {strategy} (sampler {sampler}, seed {seed}) proposes; "
                        "resume with the --strategy, --sampler, --seed and (for sequential) --trials it was started with, or use another --out"
                    )
            replayed += n_old
            new = codes[n_old:][:max(0, remaining)]
            if len(codes) > n_old and len(new) == 0:
                break
            answer = list(old)
            if len(new):
                answer += loop.run(new, t0=t0, system_attrs=attrs, study_attrs={})
                added += len(new)
                remaining -= len(new)
                if progress is not None:
                    progress(len(new))
            if len(answer) < len(codes):  # budget reached inside the batch
                break
    gen.close()
    return loop.timings, added

