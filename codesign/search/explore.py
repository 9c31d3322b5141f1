"""The joint search: Optuna's NSGA-II over hardware and schedule knobs, a generation at a time.

Each generation is ``population`` new trials. :class:`Nsga2` draws them exactly as
Optuna's ``NSGAIISampler`` would for ``study.ask()`` (same parent selection, crossover,
mutation, constraint handling, generation numbers and random streams: for a seed the
trials are those of a plain ask/tell loop), but once per generation and on integer
rows instead of per-parameter ``suggest`` calls. The rows are evaluated together in
one batched model call; repeated configurations (equal canonical rows) reuse the
earlier result. Each trial becomes a finished Optuna ``FrozenTrial`` with its
objectives, its budget constraints (Optuna's ``constraints:<name>`` system attributes:
constrained domination, not a penalty), its metrics and its generation, and the whole
generation is written to the run's storage in one batch (:class:`TrialWriter`), with
Optuna's NSGA-II parent cache and the state of the random streams.

Nothing here grows with the number of stored trials: the parent population is kept
in memory per generation, and the storage is written once per generation, never read
back. A crash or Ctrl-C loses at most the generation in flight. Running the same
command again reads the stored trials, parents and random state, and continues up to
the requested total exactly where the run stopped.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import torch
from optuna.samplers import NSGAIISampler
from optuna.samplers.nsgaii._elite_population_selection_strategy import NSGAIIElitePopulationSelectionStrategy
from optuna.study import StudyDirection
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY, _is_constrained_optimization
from optuna.trial import FrozenTrial, TrialState

from codesign.design import Design
from codesign.errors import UserError
from codesign.model.evaluator import Evaluator
from codesign.search.storage import TrialWriter, study_system_attrs
from codesign.space import DesignSpace

@dataclass
class Timings:
    """Seconds spent in each part of the loop, and per generation."""

    sample_s: float = 0.0  # NSGA-II: parent selection, crossover, mutation, random sampling
    evaluate_s: float = 0.0  # deduplication and the batched model
    tell_s: float = 0.0  # building the finished trials (values, constraints, attributes)
    store_s: float = 0.0  # writing them to the storage
    evaluated: int = 0  # candidates actually run through the model (after deduplication)
    generations: list[tuple[int, float]] = field(default_factory=list)  # (trials, seconds) per batch
    phases: list[tuple[float, float, float, float]] = field(default_factory=list)  # (sample, evaluate, tell, store) s per batch

    def per_trial_s(self, first: bool, fraction: float = 0.1) -> float | None:
        """Mean seconds per trial over the first (or last) ``fraction`` of the trials added."""
        total = sum(n for n, _ in self.generations)
        if total == 0:
            return None
        want, n_sum, s_sum = max(1.0, fraction * total), 0, 0.0
        for n, s in (self.generations if first else reversed(self.generations)):
            take = min(n, want - n_sum)
            n_sum, s_sum = n_sum + take, s_sum + s * take / n
            if n_sum >= want:
                break
        return s_sum / n_sum

    def as_dict(self) -> dict:
        out = {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items() if k not in ("generations", "phases")}
        first, last = self.per_trial_s(True), self.per_trial_s(False)
        out["batches"] = len(self.generations)
        out["per_trial_first_10pct_s"] = first
        out["per_trial_last_10pct_s"] = last
        out["last_over_first_per_trial"] = last / first if first and last is not None else None
        return out


@dataclass
class SearchState:
    """What the loop knows between generations."""

    cache: dict[bytes, tuple[np.ndarray, str | None, int]] = field(default_factory=dict)
    stop_requested: bool = False


class _StopOnInterrupt:
    """First Ctrl-C: finish and store the generation in flight, then stop. Second: abort."""

    def __init__(self, state: SearchState, say) -> None:
        self.state, self.say, self.previous = state, say, None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None
        return self

    def _handler(self, signum, frame):
        if self.state.stop_requested:
            raise KeyboardInterrupt
        self.state.stop_requested = True
        self.say("interrupted: storing the generation in flight, then stopping (Ctrl-C again to abort)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


# --- NSGA-II, a generation at a time -------------------------------------------------------
GENERATION_KEY = NSGAIISampler._get_generation_key()  # "NSGAIISampler:generation", per trial
PARENT_KEY_PREFIX = NSGAIISampler._get_parent_cache_key_prefix()  # "NSGAIISampler:parent:<g>", per study
RNG_KEY = "codesign:nsga2_rng"  # the two random streams after the last stored generation
SWAPPING_PROB = 0.5  # NSGAIISampler's default
SINGLE_THREAD_MAX_BATCH = 4096  # populations up to this evaluate on one CPU thread (see _torch_threads)


def _encode_rng(rng: np.random.RandomState) -> list:
    name, keys, pos, has_gauss, gauss = rng.get_state()
    return [name, base64.b64encode(np.asarray(keys, dtype="<u4").tobytes()).decode("ascii"), int(pos), int(has_gauss), float(gauss)]


def _decode_rng(value: list) -> tuple:
    name, keys, pos, has_gauss, gauss = value
    return (name, np.frombuffer(base64.b64decode(keys), dtype="<u4").astype(np.uint32), int(pos), int(has_gauss), float(gauss))


def _domination_matrix(pool: list[FrozenTrial], constrained: bool) -> np.ndarray:
    """``D[a, b]``: does ``pool[a]`` dominate ``pool[b]``, as Optuna's ``_constrained_dominates``
    (``constrained``) or ``_dominates`` decides for complete trials, every objective minimised.

    Feasible beats infeasible; two infeasible ones compare their total violation (the sum of
    their positive constraint values, summed as Optuna sums them); otherwise Pareto dominance:
    no worse in every objective and not equal in all.
    """
    values = np.array([t.values for t in pool], dtype=np.float64)
    pareto = (values[:, None, :] <= values[None, :, :]).all(-1) & ~(values[:, None, :] == values[None, :, :]).all(-1)
    if not constrained:
        return pareto
    constraints = [t.constraints for t in pool]
    feasible = np.array([all(v <= 0 for v in c.values()) for c in constraints])
    violation = np.array([sum(v for v in c.values() if v > 0) for c in constraints], dtype=np.float64)
    both = feasible[:, None] & feasible[None, :]
    infeasible = ~feasible[:, None] & ~feasible[None, :]
    return np.where(both, pareto, np.where(infeasible, violation[:, None] < violation[None, :], feasible[:, None]))


class RowCodec:
    """Integer code rows → a trial's params, and the JSON of them a journal line holds."""

    def __init__(self, knobs) -> None:
        self.names = [k.name for k in knobs]
        self._values = [list(k.choices) if k.choices is not None else list(range(k.high + 1)) for k in knobs]
        self._json_fragments = [
            [f"{json.dumps(k.name)}:{json.dumps(code if k.choices is not None else float(code))}" for code in range(len(values))]
            for k, values in zip(knobs, self._values)
        ]

    def params(self, row: list[int]) -> dict:
        return {name: values[code] for name, values, code in zip(self.names, self._values, row)}

    def params_json(self, codes: np.ndarray) -> list[str]:
        """Each row's params as the JSON object a journal line holds: names → Optuna's internal
        representation (``distribution.to_internal_repr``: a categorical's choice index, an int's float)."""
        return ["{" + ",".join([table[c] for table, c in zip(self._json_fragments, row)]) + "}" for row in codes.tolist()]


class Nsga2:
    """Optuna's ``NSGAIISampler`` (default crossover and mutation), driven a generation at a time.

    Everything Optuna's sampler decides is decided the same way, with the same random
    streams, so that for a seed this produces the very trials a plain
    ``study.ask()``/``study.tell()`` loop with ``NSGAIISampler(seed=...)`` produces:

    * generation numbers by ``BaseGASampler.get_trial_generation``'s rule (a generation
      takes trials until it holds ``population`` complete ones), stored under the same
      trial system attribute;
    * parents by Optuna's own ``NSGAIIElitePopulationSelectionStrategy`` (constrained
      non-dominated sorting, crowding distance) over the last generation and its
      parents, selected once per generation and stored as Optuna's parent cache
      (study system attribute ``NSGAIISampler:parent:<g>``, trial ids);
    * children as ``NSGAIIChildGenerationStrategy`` makes them: binary tournaments under
      (constrained) domination, uniform crossover with probability ``crossover_prob``,
      each knob dropped with probability ``mutation_prob`` (default 1/#knobs) and
      resampled like ``RandomSampler``, which also samples generation 0.

    What differs is the cost: the parent population is memoised instead of rebuilt from
    every stored trial per ask, and a child is drawn on integer code rows with numpy
    instead of per-parameter ``suggest`` calls through a storage.
    """

    def __init__(self, space: DesignSpace, *, population: int, crossover_prob: float, mutation_prob: float | None, seed: int, n_objectives: int) -> None:
        self.space = space
        self.population_size = population
        self.crossover_prob = crossover_prob
        self.seed = seed
        self.rng = np.random.RandomState(seed)  # NSGAIISampler._rng: tournaments, crossover, mutation
        self.rng_random = np.random.RandomState(seed)  # its RandomSampler: generation 0, mutated knobs
        self.directions = [StudyDirection.MINIMIZE] * n_objectives
        self._view = SimpleNamespace(directions=self.directions)  # all the selection reads of a study
        self._elite = NSGAIIElitePopulationSelectionStrategy(population_size=population)

        knobs = space.knobs
        self.names = [k.name for k in knobs]
        self.distributions = space.distributions  # one dict shared by every trial of the run
        dims = len(knobs)
        self.dimension = dims
        self.mutation_prob = 1.0 / max(1.0, dims) if mutation_prob is None else mutation_prob
        categorical = np.array([k.choices is not None for k in knobs], dtype=bool)
        by_name = sorted(range(dims), key=lambda i: self.names[i])  # IntersectionSearchSpace's order
        self._order_plain = np.array(by_name, dtype=np.int64)
        self._cat_cols = np.array([i for i in by_name if categorical[i]], dtype=np.int64)
        self._num_cols = np.array([i for i in by_name if not categorical[i]], dtype=np.int64)
        self._order_cx = np.concatenate([self._cat_cols, self._num_cols])  # child_params order after crossover
        # RandomSampler's transform: a categorical is len(choices) one-hot columns on [0, 1]
        # (the argmax wins), an int is one column on [low - step/2, high + step/2].
        self._categorical = categorical
        self._width = np.array([len(k.choices) if k.choices is not None else 1 for k in knobs], dtype=np.int64)
        int_low = np.array([0 if k.choices is not None else k.distribution.low for k in knobs], dtype=np.float64)
        int_high = np.array([0 if k.choices is not None else k.distribution.high for k in knobs], dtype=np.float64)
        int_step = np.array([1 if k.choices is not None else k.distribution.step for k in knobs], dtype=np.float64)
        self._int_low, self._int_high, self._int_step = int_low, int_high, int_step
        self._low = np.where(categorical, 0.0, int_low - 0.5 * int_step)
        self._high = np.where(categorical, 1.0, int_high + 0.5 * int_step)
        for k in knobs:
            if k.distribution.single():
                raise ValueError(f"knob {k.name} has a single value")  # never a knob; Optuna would not sample it relatively

        self.complete: dict[int, int] = {}  # generation → its COMPLETE trials
        self.population: dict[int, list[FrozenTrial]] = {}  # generation → its COMPLETE trials, by number
        self.parents: dict[int, list[FrozenTrial]] = {}  # generation → its parents, by number (Optuna's cached order)
        self._first: dict[int, list[FrozenTrial]] = {}  # parents in selection order, for the generation's first child
        self._codes: dict[int, np.ndarray] = {}  # trial number → code row, for trials that may still be parents
        self._pending: dict[str, list[int]] = {}  # parent caches to store with the next batch

    # --- bookkeeping -----------------------------------------------------------------------
    def next_generation(self) -> tuple[int, int]:
        """The generation the next trial belongs to and how many more trials it takes."""
        counted = {g: c for g, c in self.complete.items() if c > 0}
        if not counted:
            return 0, self.population_size
        last = max(counted)
        if counted[last] < self.population_size:
            return last, self.population_size - counted[last]
        return last + 1, self.population_size

    def record(self, trials: list[FrozenTrial], codes: np.ndarray | None = None) -> None:
        """Take finished, stored trials into the bookkeeping (``codes``: their rows)."""
        for i, t in enumerate(trials):
            g = t.system_attrs.get(GENERATION_KEY)
            if t.state != TrialState.COMPLETE or g is None:
                continue
            self.complete[g] = self.complete.get(g, 0) + 1
            self.population.setdefault(g, []).append(t)
            self._codes[t.number] = codes[i] if codes is not None else np.array(self.space.encode(t.params), dtype=np.int64)
        self._prune()

    def _prune(self) -> None:
        """Forget generations that can no longer be parents or grandparents."""
        if not self.complete:
            return
        keep_from = max(self.complete) - 1
        for table in (self.population, self.parents, self._first):
            for g in [g for g in table if g < keep_from]:
                del table[g]
        alive = {t.number for table in (self.population, self.parents) for ts in table.values() for t in ts}
        for number in [n for n in self._codes if n not in alive]:
            del self._codes[number]

    def restore(self, trials: list[FrozenTrial], study_attrs: dict, n_finished: int) -> bool:
        """Rebuild the state from stored trials (a resumed run). Returns True if the random streams continue exactly."""
        rng_state = study_attrs.get(RNG_KEY)
        exact = isinstance(rng_state, dict) and rng_state.get("trials") == n_finished and rng_state.get("seed") == self.seed
        if exact:
            self.rng.set_state(_decode_rng(rng_state["parents"]))
            self.rng_random.set_state(_decode_rng(rng_state["random"]))
        by_gen: dict[int, list[FrozenTrial]] = {}
        for t in trials:
            g = t.system_attrs.get(GENERATION_KEY)
            if t.state == TrialState.COMPLETE and isinstance(g, int):
                by_gen.setdefault(g, []).append(t)
        self.complete = {g: len(ts) for g, ts in by_gen.items()}
        target, _ = self.next_generation()
        cached = {}
        for key, ids in study_attrs.items():
            if key.startswith(PARENT_KEY_PREFIX) and key[len(PARENT_KEY_PREFIX):].isdigit():
                cached[int(key[len(PARENT_KEY_PREFIX):])] = ids
        if target >= 1:
            # Optuna's get_parent_population: a cached generation's parents come in trial order; one
            # selected now, in selection order (what the first child of the generation then sees).
            by_id = {t._trial_id: t for t in trials}
            start = target
            while start >= 1 and start not in cached:
                start -= 1
            selected: list[FrozenTrial] = []
            if start >= 1:
                selected = sorted((by_id[i] for i in cached[start] if i in by_id), key=lambda t: t.number)
                self.parents[start] = selected
            for h in range(start + 1, target + 1):  # generations whose parents were never stored (older runs)
                selected = self._elite(self._view, by_gen.get(h - 1, []) + selected)
                self.parents[h] = sorted(selected, key=lambda t: t.number)
                self._pending[f"{PARENT_KEY_PREFIX}{h}"] = [t._trial_id for t in self.parents[h]]
                if h == target:
                    self._first[h] = selected
        for g in (target - 1, target):
            if g in by_gen:
                self.population[g] = by_gen[g]
        for ts in list(self.population.values()) + list(self.parents.values()):
            for t in ts:
                self._codes.setdefault(t.number, np.array(self.space.encode(t.params), dtype=np.int64))
        self._prune()
        return exact

    def ensure_parents(self, generation: int) -> None:
        """Select the parents of ``generation`` once (Optuna: ``get_parent_population``)."""
        if generation == 0 or generation in self.parents:
            return
        pool = self.population.get(generation - 1, []) + self.parents.get(generation - 1, [])
        chosen = self._elite(self._view, pool)
        self._first[generation] = chosen
        self.parents[generation] = sorted(chosen, key=lambda t: t.number)
        self._pending[f"{PARENT_KEY_PREFIX}{generation}"] = [t._trial_id for t in self.parents[generation]]

    def take_study_attrs(self, n_finished: int) -> dict:
        """Study system attributes to store with the batch just sampled: new parent caches, the random streams."""
        attrs, self._pending = self._pending, {}
        attrs[RNG_KEY] = {"trials": n_finished, "seed": self.seed, "parents": _encode_rng(self.rng), "random": _encode_rng(self.rng_random)}
        return attrs

    # --- sampling --------------------------------------------------------------------------
    def sample(self, generation: int, n: int) -> np.ndarray:
        """Code rows ``[n, D]`` of ``n`` new trials of ``generation``."""
        self.ensure_parents(generation)
        parents = self.parents.get(generation, [])
        codes = np.zeros((n, self.dimension), dtype=np.int64)
        drop = np.ones((n, self.dimension), dtype=bool)
        if parents:
            first = self._first.pop(generation, None)
            self._children(codes, drop, parents, first)
        self._random_fill(codes, drop)
        return codes

    def random_rows(self, n: int) -> np.ndarray:
        """``n`` rows drawn as Optuna's ``RandomSampler`` draws every knob (the random stream)."""
        codes = np.zeros((n, self.dimension), dtype=np.int64)
        self._random_fill(codes, np.ones_like(codes, dtype=bool))
        return codes

    def _children(self, codes: np.ndarray, drop: np.ndarray, parents: list[FrozenTrial], first: list[FrozenTrial] | None) -> None:
        """NSGAIIChildGenerationStrategy.__call__, child by child, on code rows (same draws from the same stream)."""
        rng = self.rng
        rows = np.stack([self._codes[t.number] for t in parents])
        better = _domination_matrix(parents, _is_constrained_optimization(parents))
        pools = {id(parents): (rows, better)}  # id(pool) → (code rows, domination matrix)
        if first is not None:  # the same trials in selection order
            position = {t.number: i for i, t in enumerate(parents)}
            order = np.array([position[t.number] for t in first])
            pools[id(first)] = (rows[order], better[np.ix_(order, order)])
        n_cat, n_num, dims = len(self._cat_cols), len(self._num_cols), self.dimension

        def tournament(better: np.ndarray, n: int, skip: int) -> int:
            """_select_parent: the better of two random picks among the pool minus index ``skip``.

            ``randint(n)`` draws exactly what ``choice(n)`` draws (legacy RandomState), 4× faster.
            """
            a = rng.randint(n)
            b = rng.randint(n)
            if skip >= 0:
                a, b = a + (a >= skip), b + (b >= skip)
            return a if better[a, b] else b

        for c in range(codes.shape[0]):
            pool = first if (c == 0 and first is not None) else parents
            rows, better = pools[id(pool)]
            m = len(pool)
            if rng.rand() < self.crossover_prob:
                p0 = tournament(better, m, -1)
                p1 = tournament(better, m - 1, p0)  # the second parent is not the first
                child = rows[p0].copy()
                if n_cat:
                    cols = self._cat_cols[rng.rand(n_cat) >= SWAPPING_PROB]
                    child[cols] = rows[p1, cols]
                if n_num:
                    cols = self._num_cols[rng.rand(n_num) >= SWAPPING_PROB]
                    child[cols] = rows[p1, cols]
                order = self._order_cx
            else:
                child = rows[rng.randint(m)].copy()
                order = self._order_plain
            codes[c] = child
            drop[c] = False
            drop[c, order[rng.rand(dims) < self.mutation_prob]] = True

    def _random_fill(self, codes: np.ndarray, drop: np.ndarray) -> None:
        """RandomSampler.sample_independent for every dropped knob, child by child in knob order, in one draw."""
        rows, cols = np.nonzero(drop)
        if rows.size == 0:
            return
        width = self._width[cols]
        u = self.rng_random.uniform(np.repeat(self._low[cols], width), np.repeat(self._high[cols], width))
        starts = np.concatenate(([0], np.cumsum(width)[:-1]))
        out = np.empty(rows.size, dtype=np.int64)
        cat = self._categorical[cols]
        if cat.any():  # first argmax of each one-hot segment
            segment = np.repeat(np.arange(rows.size), width)
            hits = np.flatnonzero(u == np.maximum.reduceat(u, starts)[segment])
            _, first_hit = np.unique(segment[hits], return_index=True)
            out[cat] = (hits[first_hit] - starts)[cat]
        num = ~cat
        if num.any():  # _untransform_numerical_param of an IntDistribution
            c, v = cols[num], u[starts[num]]
            value = np.floor((v - self._int_low[c]) / self._int_step[c] + 0.5) * self._int_step[c] + self._int_low[c]
            out[num] = np.minimum(np.maximum(value, self._int_low[c]), self._int_high[c]).astype(np.int64)
        codes[rows, cols] = out


@contextmanager
def _torch_threads(device: torch.device, batch: int, threads: int | None = None):
    """One intra-op thread for small CPU batches while the loop runs (or ``threads``).

    A generation is a few hundred rows at most: too small for torch to gain from
    threads, and on a busy machine every parallel region then waits for a core
    (measured on 2 shared cores: 164 ms instead of 4 ms for 100 ResNet-50 candidates).
    """
    before = torch.get_num_threads()
    if threads is None:
        threads = 1 if batch <= SINGLE_THREAD_MAX_BATCH else before
    change = device.type == "cpu" and threads != before
    if change:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


def _row_keys(space: DesignSpace, rows: torch.Tensor) -> list[bytes]:
    """One key per row: equal keys, equal designs (canonical rows, as compact bytes)."""
    top = max((len(k.choices) - 1 if k.choices is not None else k.high for k in space.knobs), default=0)
    canonical = space.canonical(rows).numpy().astype(np.int16 if top < 2**15 else np.int64)
    return [r.tobytes() for r in canonical]


@contextmanager
def _no_full_gc():
    """No full garbage collection while the loop runs; young generations are still collected.

    A full collection walks every live object, and the stored trials are most of them: at
    100,000 trials each one took 0.2–0.3 s, at random generations. The loop makes no
    reference cycles worth collecting; the threshold is restored afterwards.
    """
    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], max(before[2], 1_000_000))
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _restore_cache(space: DesignSpace, trials: list[FrozenTrial], metric_names: list[str], state: SearchState) -> None:
    """Results of stored trials by canonical row, so a resumed run does not evaluate them again either."""
    rows, entries = [], []
    for t in trials:
        if t.number in (None, -1) or not all(k.name in t.params for k in space.knobs) or "duplicate_of" in t.user_attrs:
            continue
        if t.state == TrialState.COMPLETE:
            metrics = t.user_attrs.get("metrics", {})
            if not all(n in metrics for n in metric_names):
                continue
            entries.append((np.array([metrics[n] for n in metric_names], dtype=np.float64), None, t.number))
        elif t.state == TrialState.FAIL and "fail_reason" in t.user_attrs:
            entries.append((np.full(len(metric_names), np.nan), t.user_attrs["fail_reason"], t.number))
        else:
            continue
        rows.append(space.encode(t.params))
    if rows:
        for key, entry in zip(_row_keys(space, torch.tensor(rows, dtype=torch.long)), entries):
            state.cache.setdefault(key, entry)



class BatchLoop:
    """One batch of code rows → evaluated (each distinct design once, ever), finished trials, stored.

    Shared by the NSGA-II loop and the other strategies (:mod:`codesign.search.strategies`):
    the cache of results by canonical row, the objectives, the budgets as Optuna
    constraints (``constraints:<name>`` system attributes), the metrics, the batched
    write, the timings.
    """

    def __init__(self, space: DesignSpace, evaluator: Evaluator, persistent: optuna.Study, *, fast_storage: bool, say) -> None:
        design = space.design
        self.space, self.evaluator, self.say = space, evaluator, say
        self.metric_names = evaluator.metric_names
        self.obj_idx = [self.metric_names.index(o) for o in design.objectives.minimize]
        self.con_items = [(self.metric_names.index(name), bound, f"{_CONSTRAINTS_KEY}:{name}") for name, bound in design.constraints.items()]
        self.distributions = space.distributions  # one dict shared by every trial of the run
        self.codec = RowCodec(space.knobs)
        self.writer = TrialWriter(persistent, fast=fast_storage)
        self.stored = persistent.get_trials(deepcopy=False)
        self.previous = [t for t in self.stored if t.state in (TrialState.COMPLETE, TrialState.FAIL)]
        self.state = SearchState()
        _restore_cache(space, self.previous, self.metric_names, self.state)
        self.next_number = len(self.stored)
        self.timings = Timings()

    def evaluate(self, rows: torch.Tensor) -> list[bytes]:
        """Run the rows not seen before through the model; returns every row's cache key."""
        keys = _row_keys(self.space, rows)
        cache, todo = self.state.cache, {}
        for i, key in enumerate(keys):
            if key not in cache and key not in todo:
                todo[key] = i
        if todo:
            values, errors = self.evaluator.evaluate_rows(rows[torch.tensor(list(todo.values()))])
            for j, (key, i) in enumerate(todo.items()):
                cache[key] = (values[j], errors[j], self.next_number + i)
            self.timings.evaluated += len(todo)
        return keys

    def run(self, codes: np.ndarray, *, t0: float, system_attrs: dict | list[dict], study_attrs: dict) -> list[FrozenTrial]:
        """Evaluate, finish and store the batch ``codes`` (sampled since ``t0``); returns its trials.

        ``system_attrs``: the trials' system attributes, one dict for all or one per row.
        """
        params = self.codec.params
        t1 = time.perf_counter()
        started = datetime.now()
        keys = self.evaluate(torch.from_numpy(codes))
        t2 = time.perf_counter()
        finished = datetime.now()
        frozen = []
        complete, fail = TrialState.COMPLETE, TrialState.FAIL
        number = self.next_number
        for i, (row, key) in enumerate(zip(codes.tolist(), keys)):
            values, error, first = self.state.cache[key]
            user_attrs: dict = {}
            if first != number + i:
                user_attrs["duplicate_of"] = first
            attrs = dict(system_attrs[i] if isinstance(system_attrs, list) else system_attrs)
            if error is not None:
                user_attrs["fail_reason"] = error
                trial_state, trial_values = fail, None
            else:
                for m, bound, key_name in self.con_items:
                    attrs[key_name] = float((values[m] - bound) / bound)
                user_attrs["metrics"] = dict(zip(self.metric_names, values.tolist()))
                trial_state, trial_values = complete, [float(values[m]) for m in self.obj_idx]
            frozen.append(FrozenTrial(
                number=number + i, state=trial_state, value=None, values=trial_values,
                datetime_start=started, datetime_complete=finished, params=params(row),
                distributions=self.distributions, user_attrs=user_attrs, system_attrs=attrs,
                intermediate_values={}, trial_id=-1,
            ))
        t3 = time.perf_counter()
        self.writer.write(frozen, study_attrs, params_json=self.codec.params_json(codes) if self.writer.fast else None)
        if frozen and frozen[0].number != number:  # someone else wrote to the study meanwhile
            self.say(f"warning: trials were added to the study by another process; numbering continues at {frozen[-1].number + 1}")
        self.next_number = frozen[-1].number + 1 if frozen else number
        t4 = time.perf_counter()
        timings = self.timings
        timings.sample_s += t1 - t0
        timings.evaluate_s += t2 - t1
        timings.tell_s += t3 - t2
        timings.store_s += t4 - t3
        timings.generations.append((len(codes), t4 - t0))
        timings.phases.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3))
        return frozen


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
    """Add trials to ``persistent`` until it holds ``n_trials`` finished ones.

    ``strategy``/``sampler`` other than ``joint``/``nsga2`` hand the run to
    :func:`codesign.search.strategies.run_strategy` (sequential and random baselines,
    Optuna's NSGA-III and TPE samplers).

    Returns the timings and the number of trials added. For benchmarks:
    ``fast_storage=False`` writes through Optuna's public storage calls only;
    ``cpu_threads`` sets torch's intra-op threads for the run (default: one thread
    when the population is small, see :func:`_torch_threads`).
    """
    design = space.design
    objectives = design.objectives.minimize
    if (strategy, sampler) != ("joint", "nsga2"):
        from codesign.search.strategies import run_strategy

        return run_strategy(space, evaluator, persistent, strategy=strategy, sampler=sampler, n_trials=n_trials, seed=seed,
                            progress=progress, say=say, fast_storage=fast_storage, cpu_threads=cpu_threads)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loop = BatchLoop(space, evaluator, persistent, fast_storage=fast_storage, say=say)
    nsga = Nsga2(
        space, population=design.search.population, crossover_prob=design.search.crossover_prob,
        mutation_prob=design.search.mutation_prob, seed=seed, n_objectives=len(objectives),
    )
    if loop.previous:
        nsga.restore(loop.stored, study_system_attrs(persistent), len(loop.previous))

    added, n_done = 0, len(loop.previous)
    remaining = n_trials - n_done
    with _StopOnInterrupt(loop.state, say), _torch_threads(evaluator.device, design.search.population, cpu_threads), _no_full_gc():
        while remaining > 0 and not loop.state.stop_requested:
            t0 = time.perf_counter()
            generation, room = nsga.next_generation()
            batch = min(room, remaining)
            codes = nsga.sample(generation, batch)
            frozen = loop.run(codes, t0=t0, system_attrs={GENERATION_KEY: generation}, study_attrs=nsga.take_study_attrs(n_done + batch))
            nsga.record(frozen, codes)
            added += batch
            n_done += batch
            remaining -= batch
            if progress is not None:
                progress(batch)
    return loop.timings, added
