"""Evaluate and store: a batch of integer code rows becomes finished Optuna trials in the run's storage.

The rows are evaluated together in one batched model call; repeated configurations (equal
canonical rows) reuse the earlier result, also across a resumed run. Each trial becomes a
finished Optuna ``FrozenTrial`` with its objectives, its budget constraints (Optuna's
``constraints`` system attribute, the list its own samplers write and optuna-dashboard reads:
constrained domination, not a penalty), its metrics and the strategy's attributes, its knobs
in their stored form (:mod:`codesign.packing`), and the whole batch is written to the storage in
one go (:class:`~codesign.search.storage.TrialWriter`). A crash or Ctrl-C loses at most
the batch in flight, and a second signal never cuts a write short
(:func:`~codesign.search.guards.deferred_abort`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from codesign.model.evaluator import Evaluator
from codesign.search.guards import deferred_abort
from codesign.search.optuna_internals import CONSTRAINTS_KEY
from codesign.search.storage import TrialWriter
from codesign.packing import SCHEDULE_ATTR, UNITS_ATTR, PackedForm
from codesign.space import DesignSpace


@dataclass
class Timings:
    """Seconds spent in each part of the loop, and per generation."""

    sample_s: float = 0.0  # the strategy proposing the batch (NSGA-II: parent selection, crossover, mutation, random sampling)
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

    def merged(self, other: "Timings") -> "Timings":
        """The timings of this part of a run followed by ``other``'s."""
        sums = {k: getattr(self, k) + getattr(other, k) for k in ("sample_s", "evaluate_s", "tell_s", "store_s", "evaluated")}
        return Timings(**sums, generations=self.generations + other.generations, phases=self.phases + other.phases)

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


class RowCodec:
    """Integer code rows → a stored trial's params and packed schedule knobs
    (:mod:`codesign.packing`), and the JSON of the params a journal line holds."""

    def __init__(self, packed: PackedForm) -> None:
        self.packed = packed
        knobs = [packed.knobs[i] for i in packed.scalar_cols]
        self._cols = packed.scalar_cols
        self._json_fragments = [
            [f"{json.dumps(k.name)}:{json.dumps(code if k.choices is not None else float(code))}" for code in range(_n_codes(k))]
            for k in knobs
        ]

    def params(self, row: list[int]) -> tuple[dict, dict]:
        """(params, packed families) of one row."""
        return self.packed.split(row)

    def params_json(self, codes: np.ndarray) -> list[str]:
        """Each row's params as the JSON object a journal line holds: names → Optuna's internal
        representation (``distribution.to_internal_repr``: a categorical's choice index, an int's float)."""
        scalar = codes[:, self._cols].tolist() if self._cols else [[] for _ in range(len(codes))]
        return ["{" + ",".join([table[c] for table, c in zip(self._json_fragments, row)]) + "}" for row in scalar]


#: Study user attribute: the budgets' names, in the order of each trial's ``constraints`` list.
CONSTRAINT_NAMES_ATTR = "constraint_names"


def study_user_attrs(space: DesignSpace) -> dict:
    """What a study needs to read its trials' stored form: each packed family's unit names and
    the budgets' names (the trials' constraint list is in this order)."""
    attrs: dict = {CONSTRAINT_NAMES_ATTR: list(space.design.constraints)}
    if space.packed.families:
        attrs[UNITS_ATTR] = space.packed.units
    return attrs


def _n_codes(knob) -> int:
    return len(knob.choices) if knob.choices is not None else knob.high + 1


def _row_keys(space: DesignSpace, rows: torch.Tensor) -> list[bytes]:
    """One key per row: equal keys, equal designs (canonical rows, as compact bytes)."""
    top = max((len(k.choices) - 1 if k.choices is not None else k.high for k in space.knobs), default=0)
    canonical = space.canonical(rows).numpy().astype(np.int16 if top < 2**15 else np.int64)
    return [r.tobytes() for r in canonical]


def _restore_cache(space: DesignSpace, trials: list[FrozenTrial], metric_names: list[str], state: SearchState) -> None:
    """Results of stored trials by canonical row, so a resumed run does not evaluate them again either."""
    rows, entries = [], []
    for t in trials:
        if t.number in (None, -1) or "duplicate_of" in t.user_attrs:
            continue
        row = space.packed.row(t)
        if row is None:
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
        rows.append(row)
    if rows:
        for key, entry in zip(_row_keys(space, torch.tensor(rows, dtype=torch.long)), entries):
            state.cache.setdefault(key, entry)


class BatchLoop:
    """One batch of code rows → evaluated (each distinct design once, ever), finished trials, stored.

    Shared by every strategy (:mod:`codesign.search.strategies`) through the driver
    (:func:`codesign.search.driver.run_search`) and by refinement:
    the cache of results by canonical row, the objectives, the budgets as Optuna
    constraints (the ``constraints`` system attribute), the metrics, the batched
    write, the timings.
    """

    def __init__(self, space: DesignSpace, evaluator: Evaluator, persistent: optuna.Study, *, fast_storage: bool, say) -> None:
        design = space.design
        self.space, self.evaluator, self.say = space, evaluator, say
        self.metric_names = evaluator.metric_names
        self.obj_idx = [self.metric_names.index(o) for o in design.objectives.minimize]
        self.con_items = [(self.metric_names.index(name), bound) for name, bound in design.constraints.items()]
        self.distributions = space.packed.distributions  # one dict shared by every trial of the run
        self.codec = RowCodec(space.packed)
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
            trial_params, packed = params(row)
            user_attrs: dict = {SCHEDULE_ATTR: packed} if packed else {}
            if first != number + i:
                user_attrs["duplicate_of"] = first
            attrs = dict(system_attrs[i] if isinstance(system_attrs, list) else system_attrs)
            if error is not None:
                user_attrs["fail_reason"] = error
                trial_state, trial_values = fail, None
            else:
                if self.con_items:  # Optuna's list form, what its samplers write and optuna-dashboard reads
                    attrs[CONSTRAINTS_KEY] = [float((values[m] - bound) / bound) for m, bound in self.con_items]
                user_attrs["metrics"] = dict(zip(self.metric_names, values.tolist()))
                trial_state, trial_values = complete, [float(values[m]) for m in self.obj_idx]
            frozen.append(FrozenTrial(
                number=number + i, state=trial_state, value=None, values=trial_values,
                datetime_start=started, datetime_complete=finished, params=trial_params,
                distributions=self.distributions, user_attrs=user_attrs, system_attrs=attrs,
                intermediate_values={}, trial_id=-1,
            ))
        t3 = time.perf_counter()
        params_json = self.codec.params_json(codes) if self.writer.fast else None
        with deferred_abort():  # a second signal waits until the batch is written whole
            self.writer.write(frozen, study_attrs, params_json=params_json)
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
