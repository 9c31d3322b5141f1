"""The search loop: any strategy's batches evaluated and stored until the study holds the budget.

One loop for every strategy (:mod:`codesign.search.strategies`): the strategy proposes a
batch of code rows, :class:`~codesign.search.batch.BatchLoop` evaluates them (each distinct
design once, ever) and stores them as finished trials, the strategy is told the trials. A
stopped run is resumed by the strategy from the stored trials, up to exactly the requested
total. While the loop runs: the first SIGINT or SIGTERM stores the batch in flight and stops
(a second aborts, never inside a storage write), small batches evaluate on one torch thread,
and no full garbage collection walks the stored trials (:mod:`codesign.search.guards`).
"""

from __future__ import annotations

import time

import optuna

from codesign.model.evaluator import Evaluator
from codesign.search.batch import BatchLoop, Timings
from codesign.search.guards import StopOnInterrupt, no_full_gc, torch_threads
from codesign.search.storage import study_system_attrs
from codesign.search.strategies import make_strategy
from codesign.space import DesignSpace


def run_search(
    space: DesignSpace,
    evaluator: Evaluator,
    persistent: optuna.Study,
    *,
    n_trials: int,
    seed: int,
    progress=None,
    say=print,
    fast_storage: bool = True,
    cpu_threads: int | None = None,
    strategy: str = "joint",
    sampler: str = "nsga2",
) -> tuple[Timings, int]:
    """Add trials proposed by ``strategy``/``sampler`` to ``persistent`` until it holds ``n_trials`` finished ones.

    ``strategy`` and ``sampler`` are names of :data:`codesign.vocab.STRATEGIES` and
    :data:`codesign.vocab.SAMPLERS` (a sampler other than ``nsga2`` with the joint strategy
    only), checked by the caller. Returns the timings and the number of trials added;
    ``progress(n)`` is called after each stored batch of ``n``. For benchmarks:
    ``fast_storage=False`` writes through Optuna's public storage calls only;
    ``cpu_threads`` sets torch's intra-op threads for the run (default: one thread when the
    population is small, see :func:`~codesign.search.guards.torch_threads`).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loop = BatchLoop(space, evaluator, persistent, fast_storage=fast_storage, say=say)
    remaining = n_trials - len(loop.previous)
    if remaining <= 0:
        return loop.timings, 0
    chosen = make_strategy(space, strategy, sampler, budget=n_trials, seed=seed)
    added = 0
    try:
        if loop.previous:
            chosen.resume(loop.stored, study_system_attrs(persistent))
        guards = StopOnInterrupt(say), torch_threads(evaluator.device, space.design.search.population, cpu_threads), no_full_gc()
        with guards[0] as stop, guards[1], guards[2]:
            while remaining > 0 and not stop.stop_requested:
                t0 = time.perf_counter()
                proposal = chosen.propose(remaining)
                if proposal is None:
                    break
                trials = loop.run(proposal.codes, t0=t0, system_attrs=proposal.system_attrs, study_attrs=proposal.study_attrs)
                chosen.tell(trials)
                added += len(trials)
                remaining -= len(trials)
                if progress is not None:
                    progress(len(trials))
    finally:
        chosen.close()
    return loop.timings, added
