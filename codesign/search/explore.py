"""The joint search: Optuna's NSGA-II over hardware and schedule knobs, a generation at a time.

Each generation is ``population`` trials asked from an NSGA-II study (``study.ask``),
evaluated together in one batched model call, and told back (``study.tell``) with
their objectives and budget constraints (``trial.set_constraint``: Optuna's
constrained domination, not a penalty). Repeated configurations (equal canonical
rows) reuse the earlier result instead of being evaluated again.

The sampler works on an in-memory copy of the study; each finished generation is
then appended to the run's persistent storage in one batch (``study.add_trials``),
so the storage is never touched per parameter or per trial on the hot path and a
crash or Ctrl-C loses at most the generation in flight. Running the same command
again loads the stored trials, rebuilds the NSGA-II population from them and
continues up to the requested total.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import torch

from codesign.design import Design
from codesign.errors import UserError
from codesign.model.plugins import CostModel, Evaluator, load_plugin
from codesign.space import DesignSpace

RUN_FILE = "run.json"
DESIGN_COPY = "design.toml"  # the design file as given, for people; run.json holds the validated design


def resolve_device(device: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; an explicit ``cuda`` must be available."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device {device!r}: expected auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device!r}: this machine has no CUDA device (torch {torch.__version__}); use --device cpu or auto")
    return torch.device(device)


def load_plugins(design: Design) -> list[CostModel]:
    return [load_plugin(spec, source=design.source) for spec in design.cost_model.plugins]


def check_metrics(design: Design, evaluator: Evaluator) -> None:
    """Objectives and constraints must name metrics the model or a plug-in provides."""
    known = evaluator.metric_names
    for where, names in (("objectives.minimize", design.objectives.minimize), ("constraints", list(design.constraints))):
        for name in names:
            if name not in known:
                raise UserError(f"{design.source}: {where}: unknown metric {name!r}; expected one of {known}")


def space_fingerprint(space: DesignSpace) -> str:
    """A hash of what makes stored trials comparable: knobs, objectives, budgets, workload."""
    d = space.design
    payload = {
        "knobs": {k.name: repr(k.distribution) for k in space.knobs},
        "objectives": d.objectives.minimize,
        "constraints": d.constraints,
        "workload": d.workload.model_dump(),
        "hardware": d.hardware.model_dump(mode="json"),
        "schedule": d.schedule.model_dump(mode="json"),
        "plugins": d.cost_model.plugins,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Timings:
    """Seconds spent in each part of the loop."""

    sample_s: float = 0.0
    evaluate_s: float = 0.0
    tell_s: float = 0.0
    store_s: float = 0.0
    evaluated: int = 0  # candidates actually run through the model (after deduplication)

    def as_dict(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in self.__dict__.items()}


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


def prepare_run_folder(out: Path, fingerprint: str, design: Design, storage_url: str | None) -> bool:
    """Check ``out`` can hold this run; returns True if it resumes an earlier one. Creates nothing."""
    run_file = out / RUN_FILE
    if run_file.exists():
        try:
            info = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"{run_file}: unreadable run file ({error}); use another --out") from None
        if info.get("fingerprint") != fingerprint:
            raise UserError(
                f"--out {out}: holds a run of a different design space (its design is {out / DESIGN_COPY}); "
                "use another --out to start a new run"
            )
        if info.get("storage_url") != storage_url:
            raise UserError(f"--out {out}: this run's storage is {info.get('storage_url') or 'the run folder'}; pass the same --storage to resume it")
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not a codesign run folder; choose a new or empty folder")
    return False


def run_search(
    space: DesignSpace,
    evaluator: Evaluator,
    persistent: optuna.Study,
    *,
    n_trials: int,
    seed: int,
    progress=None,
    say=print,
) -> tuple[Timings, int]:
    """Add trials to ``persistent`` until it holds ``n_trials`` finished ones.

    Returns the timings and the number of trials added.
    """
    design = space.design
    objectives = design.objectives.minimize
    metric_names = evaluator.metric_names
    obj_idx = [metric_names.index(o) for o in objectives]
    con_items = [(metric_names.index(name), bound, name) for name, bound in design.constraints.items()]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(
        population_size=design.search.population,
        mutation_prob=design.search.mutation_prob,
        crossover_prob=design.search.crossover_prob,
        seed=seed,
    )
    study = optuna.create_study(directions=["minimize"] * len(objectives), sampler=sampler)
    done_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    previous = [t for t in persistent.get_trials(deepcopy=False) if t.state in done_states]
    study.add_trials(previous)
    state = SearchState()
    for t in previous:  # rebuild the cache so that resumed runs do not re-evaluate either
        if t.state == optuna.trial.TrialState.COMPLETE and all(k.name in t.params for k in space.knobs):
            key = space.canonical(torch.tensor([space.encode(t.params)])).numpy().tobytes()
            metrics = t.user_attrs.get("metrics", {})
            if all(n in metrics for n in metric_names):
                state.cache[key] = (np.array([metrics[n] for n in metric_names]), None, t.number)

    timings, added = Timings(), 0
    distributions = space.distributions
    remaining = n_trials - len(previous)
    with _StopOnInterrupt(state, say):
        while remaining > 0 and not state.stop_requested:
            batch = min(design.search.population, remaining)
            t0 = time.perf_counter()
            trials = [study.ask(distributions) for _ in range(batch)]
            rows = torch.tensor([space.encode(t.params) for t in trials], dtype=torch.long).reshape(batch, space.dimension)
            t1 = time.perf_counter()
            keys = [r.tobytes() for r in space.canonical(rows).numpy()]
            todo = {}
            for i, key in enumerate(keys):
                if key not in state.cache and key not in todo:
                    todo[key] = i
            if todo:
                idx = torch.tensor(list(todo.values()))
                values, errors = evaluator.evaluate_rows(rows[idx])
                for j, (key, i) in enumerate(todo.items()):
                    state.cache[key] = (values[j], errors[j], trials[i].number)
                timings.evaluated += len(todo)
            t2 = time.perf_counter()
            frozen = []
            for trial, key in zip(trials, keys):
                values, error, first = state.cache[key]
                if first != trial.number:
                    trial.set_user_attr("duplicate_of", first)
                if error is not None:
                    trial.set_user_attr("fail_reason", error)
                    frozen.append(study.tell(trial, state=optuna.trial.TrialState.FAIL))
                    continue
                for i, bound, name in con_items:
                    trial.set_constraint(name, (values[i] - bound) / bound)
                trial.set_user_attr("metrics", {n: float(v) for n, v in zip(metric_names, values)})
                frozen.append(study.tell(trial, [float(values[i]) for i in obj_idx]))
            t3 = time.perf_counter()
            persistent.add_trials(frozen)
            t4 = time.perf_counter()
            timings.sample_s += t1 - t0
            timings.evaluate_s += t2 - t1
            timings.tell_s += t3 - t2
            timings.store_s += t4 - t3
            added += batch
            remaining -= batch
            if progress is not None:
                progress(batch)
    return timings, added
