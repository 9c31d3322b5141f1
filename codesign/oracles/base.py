"""Oracles: slow, trusted per-layer cycle models, the machinery that runs them, and their registry.

An *oracle* answers one question: how many cycles does this layer take on this systolic
array? That is the granularity of a cycle-accurate simulator such as SCALE-Sim (one layer
on one array per run), of an RTL or FPGA run of one layer, and of most in-house
simulators. A query is a :class:`~codesign.oracles.jobs.LayerJob` and the answer a
:class:`~codesign.oracles.jobs.LayerResult`; :mod:`codesign.oracles.designs` turns a
population of designs into jobs and the answers into design latencies (and wraps an oracle as
a plug-in cost model, :class:`~codesign.oracles.designs.OracleCostModel`).

Writing an oracle: subclass :class:`Oracle`, set ``name`` and ``version`` (both go into
the cache key, so bump the version when the simulator or its settings change) and
implement :meth:`Oracle.simulate` for one job. :meth:`Oracle.run` does the rest:
de-duplication, the on-disk cache (:mod:`codesign.oracles.cache`: SQLite, one file per oracle
name and version, keyed by the job's canonical JSON), and worker processes. See
:mod:`codesign.oracles.command` for a command-line simulator and
:mod:`codesign.oracles.emulated` for a cheap stand-in; :func:`get_oracle` finds one by name.
"""

from __future__ import annotations

import abc
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from codesign.errors import ArgumentError
from codesign.loader import instantiate, load_object, split_spec
from codesign.oracles.cache import CACHE_ENV, OracleCache, default_cache_dir
from codesign.oracles.designs import DesignJobs, OracleCostModel, OracleEvaluation, design_jobs, oracle_evaluate
from codesign.oracles.jobs import UNLIMITED_BANDWIDTH, LayerJob, LayerResult
from codesign.vocab import one_of

__all__ = [
    "BUILTIN", "CACHE_ENV", "UNLIMITED_BANDWIDTH", "WORKERS_ENV", "DesignJobs", "LayerJob", "LayerResult", "Oracle",
    "OracleCache", "OracleCostModel", "OracleEvaluation", "OracleStats", "default_cache_dir", "design_jobs",
    "get_oracle", "oracle_evaluate",
]

WORKERS_ENV = "CODESIGN_ORACLE_WORKERS"  # default number of worker processes


@dataclass
class OracleStats:
    """What an oracle has cost so far in this process."""

    jobs: int = 0  # jobs asked for (after de-duplication within a call)
    simulated: int = 0  # cache misses actually run
    cache_hits: int = 0
    sim_s: float = 0.0  # sum of the oracle's own seconds over simulated jobs
    wall_s: float = 0.0  # wall time inside run()

    def as_dict(self) -> dict:
        return asdict(self)


def _simulate_in_worker(oracle: "Oracle", job: LayerJob) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = oracle.simulate(job)
    return out, time.perf_counter() - t0


class Oracle(abc.ABC):
    """Base class of oracles: implement :meth:`simulate`; call :meth:`run`.

    Args:
        cache_dir: folder of the on-disk cache (default ``$CODESIGN_ORACLE_CACHE`` or
            ``~/.cache/codesign/oracles``); ``False`` keeps results in memory only.
        workers: jobs run at once (default ``$CODESIGN_ORACLE_WORKERS`` or 1). With more
            than one, jobs run in worker processes (``parallel = "processes"``: the
            oracle object is pickled to spawned processes) or, for oracles whose
            :meth:`simulate` itself starts a process (``parallel = "threads"``), from
            threads that each wait on their own process.
    """

    name = "oracle"
    version = "0"
    parallel = "processes"

    def __init__(self, *, cache_dir: str | Path | bool | None = None, workers: int | None = None) -> None:
        if cache_dir is False:
            path = None
        else:
            folder = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
            path = folder / f"{self.name}-{self.version}.sqlite"
        self.cache = OracleCache(path)
        self.workers = max(1, int(workers if workers is not None else os.environ.get(WORKERS_ENV, 1)))
        self.stats = OracleStats()
        self._executor: Executor | None = None

    # --- what a subclass implements ------------------------------------------------------
    @abc.abstractmethod
    def simulate(self, job: LayerJob) -> dict:
        """Cycles of one job: ``{"total_cycles": ..., "compute_cycles": ..., "stall_cycles": ...}``
        (the last two may be ``None``). Runs in a worker; may be slow; must be deterministic."""

    def prepare(self, job: LayerJob) -> LayerJob:
        """The job as the oracle will really run it (e.g. sizes rounded to what the simulator
        accepts). The cache key is taken after this, so equal effective jobs share a result."""
        return job

    def describe(self) -> dict:
        """Name, version and settings, for run summaries and surrogate metadata."""
        return {"name": self.name, "version": self.version}

    # --- the machinery ---------------------------------------------------------------------
    def __getstate__(self) -> dict:  # workers need the settings, not the cache or the pool
        state = dict(self.__dict__)
        state["cache"] = None
        state["_executor"] = None
        return state

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.parallel == "threads":
                self._executor = ThreadPoolExecutor(max_workers=self.workers)
            else:
                self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))
        return self._executor

    def run(self, jobs: Sequence[LayerJob], progress: Callable[[int], None] | None = None) -> list[LayerResult]:
        """Results for ``jobs`` (in order): cached ones from the cache, the rest simulated."""
        t0 = time.perf_counter()
        prepared = [self.prepare(j) for j in jobs]
        keys = [j.key() for j in prepared]
        unique: dict[str, LayerJob] = {}
        for key, job in zip(keys, prepared):
            unique.setdefault(key, job)
        self.stats.jobs += len(unique)
        found = self.cache.get_many(list(unique))
        hits = set(found)
        todo = [(k, j) for k, j in unique.items() if k not in found]
        self.stats.cache_hits += len(unique) - len(todo)
        new: list[tuple[str, LayerJob, dict]] = []
        if todo:
            if self.workers == 1 or len(todo) == 1:
                outputs = (_simulate_in_worker(self, j) for _, j in todo)
            else:
                pool = self._pool()
                outputs = pool.map(_simulate_in_worker, [self] * len(todo), [j for _, j in todo])
            try:
                for (key, job), (out, seconds) in zip(todo, outputs):
                    result = self._check(job, out)
                    result["wall_s"] = seconds
                    new.append((key, job, result))
                    found[key] = result
                    self.stats.simulated += 1
                    self.stats.sim_s += seconds
                    if progress is not None:
                        progress(1)
                    if len(new) >= 64:
                        self.cache.put_many(new)
                        new = []
            finally:  # what is done stays done, even if a later job fails
                self.cache.put_many(new)
        self.stats.wall_s += time.perf_counter() - t0
        out = []
        for key in keys:
            r = found[key]
            out.append(LayerResult(r["total_cycles"], r.get("compute_cycles"), r.get("stall_cycles"), r.get("wall_s", 0.0), key in hits))
        return out

    def _check(self, job: LayerJob, out: dict) -> dict:
        total = out.get("total_cycles") if isinstance(out, dict) else None
        if total is None or not math.isfinite(float(total)) or float(total) <= 0:
            raise RuntimeError(f"oracle {self.name}: no positive total_cycles for job {job.canonical()}: got {out!r}")
        result = {"total_cycles": float(total)}
        for name in ("compute_cycles", "stall_cycles"):
            value = out.get(name)
            result[name] = None if value is None else float(value)
        return result


# --- the registry ----------------------------------------------------------------------------
BUILTIN = {
    "emulated": "codesign.oracles.emulated:EmulatedOracle",
    "scalesim": "codesign.oracles.scalesim:ScaleSimOracle",
}


def get_oracle(name: str | Oracle, **options) -> Oracle:
    """An oracle by name: ``emulated``, ``scalesim`` or ``package.module:attr`` (a class or an
    instance of an :class:`Oracle` subclass). ``options`` go to the class (``cache_dir``,
    ``workers``, ...). Unknown names, failing imports and failing constructors raise
    :class:`~codesign.errors.ArgumentError` on ``oracle`` (``--oracle`` in the shell)."""
    if isinstance(name, Oracle):
        return name
    spec = BUILTIN.get(name, name)
    if split_spec(spec) is None:
        raise ArgumentError("oracle", name, f"unknown oracle; expected {one_of((*sorted(BUILTIN), 'package.module:attr'))}")

    def error(message: str) -> ArgumentError:  # the loader's message, as what is wrong with the argument
        return ArgumentError("oracle", name, message.replace("{", "{{").replace("}", "}}"))

    where = f"loading {spec!r}"
    obj = instantiate(load_object(spec, where=where, error=error), where=where, error=error, **options)
    if not isinstance(obj, Oracle):
        raise ArgumentError("oracle", name, f"{spec!r} is not a codesign.oracles.Oracle (a subclass, or an instance of one)")
    return obj
