"""Optuna's NSGA-II, a generation at a time, on integer code rows.

Each generation is ``population`` new trials. :class:`Nsga2` draws them exactly as
Optuna's ``NSGAIISampler`` would for ``study.ask()`` (same parent selection, crossover,
mutation, constraint handling, generation numbers and random streams: for a seed the
trials are those of a plain ask/tell loop), but once per generation and on integer
rows instead of per-parameter ``suggest`` calls.

Nothing here grows with the number of stored trials: the parent population is kept
in memory per generation. The parent caches and the state of the random streams are
stored with each generation (:meth:`Nsga2.take_study_attrs`), so a resumed run reads
them back (:meth:`Nsga2.restore`) and continues exactly where it stopped.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace

import numpy as np
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from codesign.search.optuna_internals import GENERATION_KEY, PARENT_KEY_PREFIX, EliteSelection, is_constrained, trial_id
from codesign.search.pareto import domination_matrix, trial_violation
from codesign.space import DesignSpace

RNG_KEY = "codesign:nsga2_rng"  # the two random streams after the last stored generation
SWAPPING_PROB = 0.5  # NSGAIISampler's default


def _encode_rng(rng: np.random.RandomState) -> list:
    name, keys, pos, has_gauss, gauss = rng.get_state()
    return [name, base64.b64encode(np.asarray(keys, dtype="<u4").tobytes()).decode("ascii"), int(pos), int(has_gauss), float(gauss)]


def _decode_rng(value: list) -> tuple:
    name, keys, pos, has_gauss, gauss = value
    return (name, np.frombuffer(base64.b64decode(keys), dtype="<u4").astype(np.uint32), int(pos), int(has_gauss), float(gauss))


def trials_domination(pool: list[FrozenTrial], constrained: bool) -> np.ndarray:
    """``D[a, b]``: does ``pool[a]`` dominate ``pool[b]``, as Optuna's ``_constrained_dominates``
    (``constrained``) or ``_dominates`` decides for complete trials, every objective minimised."""
    values = np.array([t.values for t in pool], dtype=np.float64)
    return domination_matrix(values, [trial_violation(t) for t in pool] if constrained else None)


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
        self._elite = EliteSelection(population_size=population)

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

    def _stored_row(self, trial: FrozenTrial) -> np.ndarray:
        """The code row of a stored trial (:mod:`codesign.packing`)."""
        row = self.space.packed.row(trial)
        if row is None:
            raise ValueError(f"trial {trial.number} lacks knobs of this design space")
        return np.array(row, dtype=np.int64)

    def record(self, trials: list[FrozenTrial], codes: np.ndarray | None = None) -> None:
        """Take finished, stored trials into the bookkeeping (``codes``: their rows)."""
        for i, t in enumerate(trials):
            g = t.system_attrs.get(GENERATION_KEY)
            if t.state != TrialState.COMPLETE or g is None:
                continue
            self.complete[g] = self.complete.get(g, 0) + 1
            self.population.setdefault(g, []).append(t)
            self._codes[t.number] = codes[i] if codes is not None else self._stored_row(t)
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
            by_id = {trial_id(t): t for t in trials}
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
                self._pending[f"{PARENT_KEY_PREFIX}{h}"] = [trial_id(t) for t in self.parents[h]]
                if h == target:
                    self._first[h] = selected
        for g in (target - 1, target):
            if g in by_gen:
                self.population[g] = by_gen[g]
        for ts in list(self.population.values()) + list(self.parents.values()):
            for t in ts:
                if t.number not in self._codes:
                    self._codes[t.number] = self._stored_row(t)
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
        self._pending[f"{PARENT_KEY_PREFIX}{generation}"] = [trial_id(t) for t in self.parents[generation]]

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
        better = trials_domination(parents, is_constrained(parents))
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
