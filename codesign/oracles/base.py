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
import copy
import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from codesign.errors import ArgumentError
from codesign.loader import instantiate, load_object, split_spec
from codesign.oracles.cache import CACHE_ENV, FAILED, OracleCache, default_cache_dir
from codesign.oracles.designs import DesignJobs, OracleCostModel, OracleEvaluation, design_jobs, oracle_evaluate
from codesign.oracles.jobs import UNLIMITED_BANDWIDTH, LayerJob, LayerResult
from codesign.oracles.process import JobTimeout, kill_running
from codesign.vocab import one_of

__all__ = [
    "BUILTIN", "CACHE_ENV", "UNLIMITED_BANDWIDTH", "WORKERS_ENV", "DesignJobs", "LayerJob", "LayerResult", "Oracle",
    "OracleCache", "OracleCostModel", "OracleEvaluation", "OracleJobError", "OracleStats", "OracleStopped", "default_cache_dir", "design_jobs",
    "get_oracle", "oracle_evaluate",
]

WORKERS_ENV = "CODESIGN_ORACLE_WORKERS"  # default number of worker processes


@dataclass
class OracleStats:
    """What an oracle has cost so far in this process."""

    jobs: int = 0  # jobs asked for (after de-duplication within a call)
    simulated: int = 0  # cache misses actually run (and answered)
    cache_hits: int = 0  # answers from the cache
    failed: int = 0  # jobs run here that failed (cached with their reason)
    failed_cached: int = 0  # jobs answered by a failure remembered in the cache (not run again)
    sim_s: float = 0.0  # sum of the oracle's own seconds over simulated jobs
    wall_s: float = 0.0  # wall time inside run()

    def as_dict(self) -> dict:
        return asdict(self)


class OracleJobError(RuntimeError):
    """Jobs failed, now or in an earlier run (a failure is cached with its reason and not run again).

    ``failures`` lists ``(job, reason)``; the message gives the first reason and how many more.
    """

    def __init__(self, oracle: str, failures: list[tuple[LayerJob, str]]) -> None:
        self.failures = failures
        more = f" (and {len(failures) - 1} more failed job(s))" if len(failures) > 1 else ""
        super().__init__(f"oracle {oracle}: {failures[0][1]}{more}")


class OracleStopped(BaseException):
    """The oracle runs no more jobs: its deadline has passed (``reason`` ``deadline``) or it was
    interrupted (``interrupted``). Nothing about the job is cached.

    A ``BaseException``, like ``KeyboardInterrupt``: it is not a failure of the design being
    evaluated, so it must pass through the evaluator's per-design isolation of plug-in errors
    (``except Exception``) instead of failing every design one by one.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _failure_reason(error: Exception) -> str:
    text = str(error).strip() or "no message"
    return text if isinstance(error, RuntimeError) else f"{type(error).__name__}: {text}"


def _attempt(oracle: "Oracle", job: LayerJob) -> tuple[str, object, float]:
    """One job, in a worker: ``("ok", result, seconds)`` or ``("failed", (reason, timeout_s), seconds)``.

    An :class:`OracleStopped` (deadline, interruption) propagates: it is not the job's failure.
    """
    oracle.check_running()
    t0 = time.perf_counter()
    try:
        out = oracle._check(job, oracle.simulate(job))
    except JobTimeout as error:
        return "failed", (f"{oracle.name}: {error}", error.timeout_s), time.perf_counter() - t0
    except Exception as error:  # the simulator's failure: remembered with its reason
        return "failed", (_failure_reason(error), None), time.perf_counter() - t0
    return "ok", out, time.perf_counter() - t0


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
        retry_failed: run again the jobs whose failure is cached (default ``False``: a failed
            job is remembered with its reason and fails again at once, without the simulator).
            A job that *timed out* is retried anyway when its time limit is now longer than the
            one it failed under.

    ``deadline`` (a :func:`time.monotonic` time, or ``None``): after it no job starts, and a
    job running then is stopped (:class:`OracleStopped`); set it with :meth:`set_deadline`.
    """

    name = "oracle"
    version = "0"
    parallel = "processes"

    def __init__(self, *, cache_dir: str | Path | bool | None = None, workers: int | None = None,
                 retry_failed: bool = False) -> None:
        if cache_dir is False:
            path = None
        else:
            folder = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
            path = folder / f"{self.name}-{self.version}.sqlite"
        self.cache = OracleCache(path)
        self.workers = max(1, int(workers if workers is not None else os.environ.get(WORKERS_ENV, 1)))
        self.retry_failed = bool(retry_failed)
        self.stats = OracleStats()
        self.deadline: float | None = None
        self._stopping = False
        self._executor: Executor | None = None
        self.cluster = None  # a distributed.Client: jobs run on its workers (use_cluster)

    # --- what a subclass implements ------------------------------------------------------
    @abc.abstractmethod
    def simulate(self, job: LayerJob) -> dict:
        """Cycles of one job: ``{"total_cycles": ..., "compute_cycles": ..., "stall_cycles": ...}``
        (the last two may be ``None``). Runs in a worker; may be slow; must be deterministic.
        Raise (any ``Exception``) when the simulator fails: the job fails and is remembered."""

    def prepare(self, job: LayerJob) -> LayerJob:
        """The job as the oracle will really run it (e.g. sizes rounded to what the simulator
        accepts). The cache key is taken after this, so equal effective jobs share a result."""
        return job

    def describe(self) -> dict:
        """Name, version and settings, for run summaries and surrogate metadata."""
        return {"name": self.name, "version": self.version}

    def job_timeout(self, job: LayerJob) -> float | None:
        """Seconds one run of ``job`` may take (``None``: no limit). Oracles that start a process
        enforce it (see :func:`codesign.oracles.process.scaled_timeout` for their default)."""
        return None

    # --- deadline and interruption -----------------------------------------------------------
    def set_deadline(self, seconds: float | None) -> None:
        """No job starts after ``seconds`` from now, and one still running then is stopped."""
        self.deadline = None if seconds is None else time.monotonic() + float(seconds)

    def check_running(self) -> None:
        """Raise :class:`OracleStopped` when the oracle was stopped or its deadline has passed."""
        if self._stopping:
            raise OracleStopped("interrupted")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise OracleStopped("deadline")

    def time_limit(self, job: LayerJob) -> tuple[float | None, bool]:
        """``(seconds, by_deadline)``: how long ``job`` may run now, and whether the deadline
        (rather than :meth:`job_timeout`) sets that limit. A simulator cut short by the deadline
        raises :class:`OracleStopped` instead of failing the job."""
        limit = self.job_timeout(job)
        if self.deadline is None:
            return limit, False
        left = max(0.0, self.deadline - time.monotonic())
        return (left, True) if limit is None or left < limit else (limit, False)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (an interruption)."""
        return self._stopping

    def stop(self) -> int:
        """Stop now: no further job starts, and every simulator process group still running is
        killed (with its children). Returns how many were killed. Safe from a signal handler."""
        self._stopping = True
        return kill_running()

    # --- the machinery ---------------------------------------------------------------------
    def __getstate__(self) -> dict:  # workers need the settings, not the cache, the pool or the cluster
        state = dict(self.__dict__)
        state["cache"] = None
        state["_executor"] = None
        state["cluster"] = None
        return state

    def use_cluster(self, client) -> None:
        """Run the jobs :meth:`run` does not find in the cache on the workers of a Dask cluster
        (``client``: a ``distributed.Client``; ``None``: here again). See :mod:`codesign.cluster`."""
        self.cluster = client

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

    def _abandon(self) -> None:
        """After an interruption or the deadline: queued jobs are cancelled, running simulators killed."""
        kill_running()
        pool, self._executor = self._executor, None
        if pool is not None:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # in-process simulators
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)

    def _outcomes(self, todo: list[tuple[str, LayerJob]]):
        """``(key, job, outcome)`` of each job of ``todo`` as they finish (in order, except on a cluster)."""
        if self.cluster is not None:
            yield from self._cluster_outcomes(todo)
            return
        if self.workers == 1 or len(todo) == 1:
            for key, job in todo:
                yield key, job, _attempt(self, job)
            return
        pool = self._pool()
        futures = [pool.submit(_attempt, self, job) for _, job in todo]
        for (key, job), future in zip(todo, futures):
            yield key, job, future.result()

    def _cluster_outcomes(self, todo: list[tuple[str, LayerJob]]):
        """The jobs on the cluster, one task each, named by the oracle, the job and the call.
        The workers get the oracle without its deadline (their clocks are not ours): the deadline and a
        stop are watched here, and the tasks not finished then are cancelled."""
        from codesign.cluster import completed

        remote = copy.copy(self)
        remote.deadline, remote._stopping = None, False
        run = uuid.uuid4().hex[:8]  # a key of its own per call: a key just cancelled is never submitted again
        calls = [(_attempt, (remote, job), f"codesign-{self.name}-{self.version}-{key[:16]}-{run}") for key, job in todo]
        for i, outcome in completed(self.cluster, calls, check=self.check_running):
            yield todo[i][0], todo[i][1], outcome

    def answered(self, jobs: Sequence[LayerJob]) -> list[bool]:
        """Whether each job has an answer in the cache (a result or a remembered failure): what
        :meth:`run` would answer without running anything."""
        keys = [self.prepare(j).key() for j in jobs]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        return [k in found and not (FAILED in found[k] and self._stale_failure(j, found[k])) for k, j in zip(keys, jobs)]

    def _stale_failure(self, job: LayerJob, entry: dict) -> bool:
        """Whether a cached failure should be run again (``retry_failed``, or a longer time limit now)."""
        if self.retry_failed:
            return True
        failed_under, limit = entry.get("timeout_s"), self.job_timeout(job)
        return failed_under is not None and (limit is None or limit > float(failed_under) * (1 + 1e-9))

    def run(self, jobs: Sequence[LayerJob], progress: Callable[[int], None] | None = None) -> list[LayerResult]:
        """Results for ``jobs`` (in order): cached ones from the cache, the rest simulated.

        Every job is attempted even when some fail; then :class:`OracleJobError` lists the failed
        ones (failures found in the cache included: a failed job is not run again unless
        ``retry_failed``). Finished jobs, successes and failures, are cached as they come, so an
        interruption (:class:`OracleStopped`, ``KeyboardInterrupt``) loses only the jobs running then.
        """
        t0 = time.perf_counter()
        prepared = [self.prepare(j) for j in jobs]
        keys = [j.key() for j in prepared]
        unique: dict[str, LayerJob] = {}
        for key, job in zip(keys, prepared):
            unique.setdefault(key, job)
        self.stats.jobs += len(unique)
        found = self.cache.get_many(list(unique))
        failures: dict[str, str] = {}
        for key, entry in list(found.items()):
            if FAILED in entry:
                if self._stale_failure(unique[key], entry):
                    del found[key]
                else:
                    failures[key] = entry[FAILED]
                    self.stats.failed_cached += 1
        hits = {k for k in found if k not in failures}
        self.stats.cache_hits += len(hits)
        todo = [(k, j) for k, j in unique.items() if k not in found]
        try:
            if todo:
                self._simulate(todo, found, failures, progress)
        finally:
            self.stats.wall_s += time.perf_counter() - t0
        if failures:
            raise OracleJobError(self.name, [(job, failures[key]) for key, job in unique.items() if key in failures])
        out = []
        for key in keys:
            r = found[key]
            out.append(LayerResult(r["total_cycles"], r.get("compute_cycles"), r.get("stall_cycles"), r.get("wall_s", 0.0), key in hits))
        return out

    def _simulate(self, todo, found: dict, failures: dict, progress) -> None:
        new: list[tuple[str, LayerJob, dict]] = []
        try:
            for key, job, (status, payload, seconds) in self._outcomes(todo):
                if status == "ok":
                    result = {**payload, "wall_s": seconds}
                    found[key] = result
                    self.stats.simulated += 1
                    self.stats.sim_s += seconds
                else:
                    reason, timeout_s = payload
                    result = {FAILED: reason, "wall_s": seconds, "timeout_s": timeout_s}
                    failures[key] = reason
                    self.stats.failed += 1
                new.append((key, job, result))
                if progress is not None:
                    progress(1)
                if len(new) >= 64 or self.cluster is not None:  # a cluster's results are cached as each comes back
                    self.cache.put_many(new)
                    new = []
        except BaseException:
            self._abandon()
            raise
        finally:  # what is done stays done, even when the run is interrupted
            self.cache.put_many(new)

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
