"""Search strategies: what proposes the trials that :func:`~codesign.search.driver.run_search` evaluates.

``codesign explore --strategy`` picks one; every strategy spends the same budget (trials),
lands every trial in the run's Optuna storage and is evaluated by the same batched model
(:class:`~codesign.search.batch.BatchLoop`):

* ``joint`` with the ``nsga2`` sampler (the default) is the engine's generation-level
  NSGA-II (:class:`~codesign.search.nsga2.Nsga2`, :class:`Nsga2Strategy`); the ``nsga3`` and
  ``tpe`` samplers run Optuna's ``NSGAIIISampler`` and ``TPESampler`` over the same joint space
  (ask/tell on an in-memory study, budgets as Optuna's named trial constraints);
* ``sequential`` is the way accelerators are usually designed: first the hardware, searched
  by NSGA-II against a fixed default schedule (each layer's first listed dataflow, layers
  dealt round-robin over the core slots, the first listed mode), with half the budget; then,
  for hardware designs spread along the front of that first phase, the schedule is searched
  by NSGA-II with the hardware fixed, sharing the other half;
* ``random``: uniform sampling of the joint space (Optuna's ``RandomSampler`` draws).

Every strategy has the interface :class:`Strategy`: it proposes a batch of integer code rows
(with their trials' system attributes and study attributes to store with them), is told the
batch's finished trials, and resumes from the stored trials of a stopped run. NSGA-II
restores its parents and random streams from the storage. The others are generators: one
yields a batch and receives its finished trials; given its seed and the (deterministic)
results it proposes the same rows again, so :class:`Replay` resumes it by feeding it the
stored trials, checked row by row, and the search continues where it stopped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import ArgumentError
from codesign.search.nsga2 import Nsga2
from codesign.search.optuna_internals import CONSTRAINTS_KEY, GENERATION_KEY
from codesign.search.pareto import spread_front
from codesign.space import DesignSpace

STRATEGY_KEY = "codesign:strategy"  # trial system attribute: which strategy proposed it
REFINED_PREFIX = "refine-"  # STRATEGY_KEY of designs gradient refinement added (refine-mgda, refine-pcgrad)
PHASE_KEY = "codesign:phase"  # sequential: "hardware" or "schedule"

Batch = tuple[np.ndarray, dict]  # code rows [n, D] and the system attributes of their trials
BatchGenerator = Generator[Batch, list[FrozenTrial], None]


@dataclass
class Proposal:
    """A batch to evaluate: code rows ``[n, D]``, their trials' system attributes (one dict for all,
    or one per row) and study system attributes to store with them."""

    codes: np.ndarray
    system_attrs: dict | list[dict]
    study_attrs: dict = field(default_factory=dict)


class Strategy(Protocol):
    """What the driver asks of a strategy."""

    def resume(self, stored: list[FrozenTrial], study_attrs: dict) -> None:
        """Continue a run whose study holds ``stored`` (every trial, by number) and ``study_attrs``."""

    def propose(self, limit: int) -> Proposal | None:
        """The next batch, at most ``limit`` rows; ``None`` when the strategy has nothing more."""

    def tell(self, trials: list[FrozenTrial]) -> None:
        """The finished, stored trials of the batch just proposed."""

    def close(self) -> None:
        """The run is over."""


def _finished(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.FAIL)]


class Nsga2Strategy:
    """The joint strategy with the ``nsga2`` sampler: :class:`Nsga2` over the whole space, a generation
    at a time; its parent caches and random streams are stored with every generation."""

    def __init__(self, space: DesignSpace, seed: int) -> None:
        search = space.design.search
        self.nsga = Nsga2(space, population=search.population, crossover_prob=search.crossover_prob,
                          mutation_prob=search.mutation_prob, seed=seed, n_objectives=len(space.design.objectives.minimize))
        self.n_finished = 0
        self._codes: np.ndarray | None = None

    def resume(self, stored: list[FrozenTrial], study_attrs: dict) -> None:
        self.n_finished = len(_finished(stored))
        if self.n_finished:
            self.nsga.restore(stored, study_attrs, self.n_finished)

    def propose(self, limit: int) -> Proposal:
        generation, room = self.nsga.next_generation()
        batch = min(room, limit)
        self._codes = self.nsga.sample(generation, batch)
        return Proposal(self._codes, {GENERATION_KEY: generation}, self.nsga.take_study_attrs(self.n_finished + batch))

    def tell(self, trials: list[FrozenTrial]) -> None:
        self.nsga.record(trials, self._codes)
        self.n_finished += len(trials)

    def close(self) -> None:
        pass


class Replay:
    """A generator strategy (yields batches, receives their trials) behind :class:`Strategy`.

    :meth:`resume` feeds the generator the stored trials of a stopped run, in order, checking
    that it proposes their rows again (``mismatch(trial)`` is the error otherwise); a batch that
    was stored only in part is proposed again without its stored rows.
    """

    def __init__(self, space: DesignSpace, generator: BatchGenerator, mismatch: Callable[[FrozenTrial], Exception]) -> None:
        self.space, self.generator, self.mismatch = space, generator, mismatch
        self.answer: list[FrozenTrial] | None = None  # what to send the generator next
        self.old: list[FrozenTrial] = []  # stored trials of the batch in flight
        self.left: Batch | None = None  # the rest of a batch stored in part
        self.done = False

    def _next(self) -> Batch | None:
        try:
            return next(self.generator) if self.answer is None else self.generator.send(self.answer)
        except StopIteration:
            self.done = True
            return None

    def resume(self, stored: list[FrozenTrial], study_attrs: dict) -> None:
        # Designs that refinement added were never proposed by this strategy: it replays its own.
        finished = sorted((t for t in _finished(stored) if not str(t.system_attrs.get(STRATEGY_KEY, "")).startswith(REFINED_PREFIX)),
                          key=lambda t: t.number)
        replayed = 0
        while replayed < len(finished):
            batch = self._next()
            if batch is None:
                return
            codes, attrs = batch
            old = finished[replayed:replayed + len(codes)]
            for row, t in zip(codes, old):
                if self.space.packed.row(t) != row.tolist():
                    raise self.mismatch(t)
            replayed += len(old)
            if len(old) < len(codes):
                self.old, self.left = old, (codes[len(old):], attrs)
                return
            self.answer = old

    def propose(self, limit: int) -> Proposal | None:
        if self.left is not None:
            (codes, attrs), self.left = self.left, None
        else:
            batch = None if self.done else self._next()
            if batch is None:
                return None
            (codes, attrs), self.old = batch, []
        return Proposal(codes[:limit], attrs)

    def tell(self, trials: list[FrozenTrial]) -> None:
        self.answer, self.old = self.old + trials, []

    def close(self) -> None:
        self.generator.close()


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
            attrs = {k: v for k, v in t.system_attrs.items() if k.startswith(CONSTRAINTS_KEY)}
            attrs[GENERATION_KEY] = generation
            n = self.numbered + i
            inner.append(FrozenTrial(number=n, trial_id=n, state=t.state, value=None, values=t.values, datetime_start=None,
                                     datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs=attrs,
                                     intermediate_values={}))
        self.numbered += len(trials)
        self.nsga.record(inner, sub)


def sequential(space: DesignSpace, budget: int, seed: int) -> BatchGenerator:
    """Hardware first against a default schedule (half the budget), then the schedule per front hardware."""
    hw_cols, sched_cols = hardware_columns(space)
    if not hw_cols or not sched_cols:
        which = "hardware" if not hw_cols else "schedule"
        raise ArgumentError("strategy", "sequential", f"needs both hardware and schedule knobs; {space.design.source} searches no {which} knob")
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


def random_search(space: DesignSpace, seed: int) -> BatchGenerator:
    """Uniform samples of the joint space, a population at a time."""
    nsga = Nsga2(space, population=space.design.search.population, crossover_prob=0.0, mutation_prob=None, seed=seed, n_objectives=1)
    while True:
        yield nsga.random_rows(space.design.search.population), {STRATEGY_KEY: "random"}


def optuna_sampler(space: DesignSpace, name: str, seed: int) -> BatchGenerator:
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
    """The strategy of ``strategy``/``sampler`` (names from :mod:`codesign.vocab`, checked by the caller)."""
    if (strategy, sampler) == ("joint", "nsga2"):
        return Nsga2Strategy(space, seed)
    if strategy == "sequential":
        generator = sequential(space, budget, seed)
    elif strategy == "random":
        generator = random_search(space, seed)
    else:
        generator = optuna_sampler(space, sampler, seed)

    def mismatch(trial: FrozenTrial) -> Exception:
        return ArgumentError(
            "strategy", strategy,
            f"the run's stored trial {trial.number} is not what this strategy proposes (with {{sampler}} {sampler}, {{seed}} {seed}); "
            "resume with the {arg}, {sampler}, {seed} and (for sequential) {trials} it was started with, or use another {out}",
            related={"sampler": "sampler", "seed": "seed", "trials": "trials", "out": "out"},
        )

    return Replay(space, generator, mismatch)
