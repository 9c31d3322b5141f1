"""Oracles: slow, trusted per-layer cycle models, their on-disk cache, and their cost-model adapter.

An *oracle* answers one question: how many cycles does this layer take on this systolic
array? That is the granularity of a cycle-accurate simulator such as SCALE-Sim (one layer
on one array per run), of an RTL or FPGA run of one layer, and of most in-house
simulators. A query is a :class:`LayerJob` — one GEMM (one group of a grouped layer) with
its loop bounds, its convolution form where it has one, the array ``H × W``, the dataflow,
the three SRAM partitions and the DRAM bandwidth — and the answer is a :class:`LayerResult`
(total cycles, and compute / stall cycles when the oracle reports them).

A *design's* oracle latency is the analytical model's schedule with the oracle's
per-layer cycles in place of the analytical ones (:func:`schedule_latency`): the list
schedule over the cores, the NoC transfers between layers and the chip-level DRAM bound
stay the model's; only each layer's busy time changes. :class:`OracleCostModel` wraps an
oracle as a plug-in cost model (the :class:`~codesign.model.plugins.CostModel` protocol)
that provides ``latency_s``; the engine never calls it per trial in the inner loop
(see :mod:`codesign.search.surrogate_loop`).

Writing an oracle: subclass :class:`Oracle`, set ``name`` and ``version`` (both go into
the cache key, so bump the version when the simulator or its settings change) and
implement :meth:`Oracle.simulate` for one job. :meth:`Oracle.run` does the rest:
de-duplication, the on-disk cache (SQLite, one file per oracle name and version, keyed
by the job's canonical JSON), and worker processes. See :mod:`codesign.oracles.command`
for a command-line simulator and :mod:`codesign.oracles.emulated` for a cheap stand-in.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from codesign.vocab import DATAFLOWS
from codesign.errors import UserError

CACHE_ENV = "CODESIGN_ORACLE_CACHE"  # folder of the oracle caches (default ~/.cache/codesign/oracles)
WORKERS_ENV = "CODESIGN_ORACLE_WORKERS"  # default number of worker processes
UNLIMITED_BANDWIDTH = 1e12  # bytes per cycle that stand for "no DRAM bound" (SCALE-Sim's CALC mode)


@dataclass(frozen=True)
class LayerJob:
    """One oracle query: one GEMM of a layer on one systolic array.

    A layer with ``G`` groups (or a batched matmul) is ``G`` identical GEMMs run one after
    the other; a job is one of them and the layer's cycles are ``G ×`` the job's.

    Attributes:
        kind: ``conv`` (a convolution of batch 1, with its window form below) or ``gemm``.
        M, N, K: GEMM rows (output pixels), columns (filters) and reduction depth.
        ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters, stride: SCALE-Sim's
            topology fields; for a GEMM ``M, K, 1, K, 1, N, 1`` (SCALE-Sim's GEMM form).
            The ifmap extent is the padded one, ``(P − 1)·stride + R``.
        array_h, array_w: PE rows × columns.
        dataflow: ``ws``, ``os`` or ``is``.
        ifmap_sram_bytes, filter_sram_bytes, ofmap_sram_bytes: the three SRAM partitions.
        bandwidth: DRAM bytes per cycle (``UNLIMITED_BANDWIDTH`` for none).
        precision_bytes: bytes per operand word.
    """

    kind: str
    M: int
    N: int
    K: int
    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    num_filters: int
    stride: int
    array_h: int
    array_w: int
    dataflow: str
    ifmap_sram_bytes: float
    filter_sram_bytes: float
    ofmap_sram_bytes: float
    bandwidth: float
    precision_bytes: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "gemm"):
            raise ValueError(f"LayerJob.kind must be 'conv' or 'gemm', got {self.kind!r}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"LayerJob.dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")

    @classmethod
    def gemm(cls, M: int, N: int, K: int, **hw) -> "LayerJob":
        """A GEMM job in SCALE-Sim's GEMM form."""
        return cls("gemm", M, N, K, M, K, 1, K, 1, N, 1, **hw)

    @classmethod
    def conv(cls, *, ifmap_h: int, ifmap_w: int, filt_h: int, filt_w: int, channels: int, num_filters: int, stride: int, **hw) -> "LayerJob":
        """A convolution job from SCALE-Sim's topology fields (ifmap = padded extent)."""
        oh, ow = (ifmap_h - filt_h) // stride + 1, (ifmap_w - filt_w) // stride + 1
        return cls("conv", oh * ow, num_filters, filt_h * filt_w * channels, ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters, stride, **hw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LayerJob":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def canonical(self) -> str:
        """Canonical JSON: floats rounded to 9 significant digits, keys sorted."""
        data = {k: (float(f"{v:.9g}") if isinstance(v, float) else v) for k, v in self.to_dict().items()}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


@dataclass
class LayerResult:
    """An oracle's answer for one job (cycles of one GEMM)."""

    total_cycles: float
    compute_cycles: float | None = None
    stall_cycles: float | None = None
    wall_s: float = 0.0  # seconds the oracle spent on it when it was simulated (kept for cache hits)
    cached: bool = False

    def to_dict(self) -> dict:
        return {"total_cycles": self.total_cycles, "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles, "wall_s": self.wall_s}


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


class OracleCache:
    """Results by job key in one SQLite file (or in memory when ``path`` is None).

    Only the process that owns the oracle reads and writes it (workers return results),
    so there is one writer; SQLite's locking also makes concurrent runs sharing a cache
    folder safe.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, dict] = {}
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, job TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60.0)

    def get_many(self, keys: Sequence[str]) -> dict[str, dict]:
        found = {k: self._memory[k] for k in keys if k in self._memory}
        missing = [k for k in keys if k not in found]
        if self.path is not None and missing:
            with self._lock, self._connect() as db:
                for start in range(0, len(missing), 500):
                    chunk = missing[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    for key, result in db.execute(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                        found[key] = self._memory[key] = json.loads(result)
        return found

    def put_many(self, entries: Sequence[tuple[str, LayerJob, dict]]) -> None:
        for key, _, result in entries:
            self._memory[key] = result
        if self.path is not None and entries:
            now = time.time()
            with self._lock, self._connect() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO results (key, job, result, created) VALUES (?, ?, ?, ?)",
                    [(key, job.canonical(), json.dumps(result), now) for key, job, result in entries],
                )

    def items(self) -> list[tuple[LayerJob, dict]]:
        """Every cached (job, result), for training a surrogate from an oracle's history."""
        if self.path is None:
            raise ValueError("an in-memory cache keeps no jobs")
        with self._lock, self._connect() as db:
            rows = db.execute("SELECT job, result FROM results ORDER BY created").fetchall()
        return [(LayerJob.from_dict(json.loads(j)), json.loads(r)) for j, r in rows]


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "codesign" / "oracles")


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


# --- from a population of designs to jobs, and back --------------------------------------------
@dataclass
class DesignJobs:
    """The jobs of ``P`` designs × ``L`` layers, de-duplicated.

    ``jobs[index[p, l]]`` is layer ``l`` of design ``p``; the layer's cycles are
    ``repeats[l] ×`` that job's.
    """

    jobs: list[LayerJob]
    index: np.ndarray  # [P, L] long
    repeats: np.ndarray  # [L]: GEMMs per layer (groups, × batch for a matmul)


def _layer_forms(space) -> list[tuple]:
    """Per layer (topological order): the job's layer fields (kind, M, N, K, conv fields)."""
    forms = []
    for name in space.lowered.names:
        layer = space.workload.nodes[name]["layer"]
        M, N, K = layer.gemm_m, layer.gemm_n, layer.gemm_k
        if layer.op == "conv" and layer.N == 1:
            forms.append(("conv", M, N, K, layer.input_rows, layer.input_cols, layer.R, layer.S, layer.C // layer.groups, layer.K // layer.groups, layer.stride))
        else:
            forms.append(("gemm", M, N, K, M, K, 1, K, 1, N, 1))
    return forms


def design_jobs(space, candidates) -> DesignJobs:
    """The oracle jobs of every layer of every candidate (a :class:`~codesign.space.Candidates`)."""
    P, L = candidates.dataflow.shape
    split = space.design.hardware.sram_split
    forms = _layer_forms(space)
    sram = candidates.sram_kib.double().cpu().numpy() * 1024.0
    bw = (torch.minimum(candidates.dram_gbps, candidates.noc_link_gbps) / candidates.clock_ghz).double().cpu().numpy()
    hw = np.stack([candidates.pe_rows.double().cpu().numpy(), candidates.pe_cols.double().cpu().numpy(), sram, bw], axis=1)  # [P, 4]
    df = candidates.dataflow.cpu().numpy()  # [P, L]
    precision = space.lowered.precision_bytes.cpu().numpy()
    # One numeric row per (p, l): layer index, hardware, dataflow; unique rows → jobs.
    table = np.concatenate([
        np.broadcast_to(np.arange(L, dtype=np.float64)[None, :, None], (P, L, 1)),
        np.broadcast_to(hw[:, None, :], (P, L, 4)),
        df[:, :, None].astype(np.float64),
    ], axis=2).reshape(P * L, 6)
    uniq, inverse = np.unique(table, axis=0, return_inverse=True)
    jobs = []
    for l, h, w, s, b, d in uniq:
        form = forms[int(l)]
        jobs.append(LayerJob(*form, int(h), int(w), DATAFLOWS[int(d)], float(s * split[0]), float(s * split[1]), float(s * split[2]), float(b), int(precision[int(l)])))
    repeats = space.lowered.groups.cpu().numpy().astype(np.float64)
    return DesignJobs(jobs=jobs, index=inverse.reshape(P, L), repeats=repeats)


def schedule_latency(model, candidates, layer_cycles: torch.Tensor, dram_bytes: torch.Tensor) -> torch.Tensor:
    """Latency (s) of layer-by-layer designs whose layers take ``layer_cycles``.

    The analytical model's schedule with other per-layer busy times: the list schedule
    of the DAG over the cores with the model's NoC transfers, bounded below by the
    chip's total DRAM traffic over the DRAM bandwidth, as in
    :meth:`~codesign.model.analytical.AnalyticalModel.evaluate`.

    Args:
        model: the :class:`~codesign.model.analytical.AnalyticalModel` of the space.
        candidates: ``P`` candidates (layer-by-layer mode).
        layer_cycles: ``[P, L]`` or ``[E, P, L]`` (``E`` alternatives, e.g. ensemble members).
        dram_bytes: ``[P, L]`` per-layer DRAM bytes (the model's).

    Returns:
        ``[P]`` or ``[E, P]`` seconds.
    """
    from codesign.model.schedule import list_schedule

    lw = model.lw
    squeeze = layer_cycles.dim() == 2
    cycles = layer_cycles[None] if squeeze else layer_cycles
    E, P, L = cycles.shape
    transfer, _ = model._transfers(candidates)  # [P, L, J]
    core = candidates.core
    cycles = cycles.to(device=transfer.device, dtype=transfer.dtype).reshape(E * P, L)
    _, finish = list_schedule(cycles, core.repeat(E, 1), transfer.repeat(E, 1, 1), lw.preds, lw.pred_mask, model.n_slots)
    dram_bpc = (candidates.dram_gbps / candidates.clock_ghz).to(transfer.dtype)
    total = torch.maximum(finish.amax(dim=1).reshape(E, P), (dram_bytes.sum(dim=1) / dram_bpc)[None])
    latency = total / (candidates.clock_ghz.to(transfer.dtype) * 1e9)[None]
    return latency[0] if squeeze else latency


def check_layer_by_layer(candidates, space) -> None:
    """Oracle latency is defined for layer-by-layer execution only (see :func:`schedule_latency`)."""
    if space.lowered.batch > 1 and bool(candidates.pipelined.any()):
        raise ValueError("oracle latency is defined for layer_by_layer mode only (this candidate is pipelined)")


@dataclass
class OracleEvaluation:
    """An oracle's view of ``P`` designs."""

    latency_s: torch.Tensor  # [P]
    layer_cycles: torch.Tensor  # [P, L] oracle cycles per layer
    analytical: dict  # the model's per-layer detail ([P, L] tensors) and metrics
    jobs: DesignJobs
    results: list[LayerResult]


def oracle_evaluate(oracle: Oracle, model, candidates, *, progress=None) -> OracleEvaluation:
    """Run the oracle on every layer of ``candidates`` and schedule its cycles."""
    space = model.space
    check_layer_by_layer(candidates, space)
    ev = model.evaluate(candidates, detail=True)
    dj = design_jobs(space, candidates)
    results = oracle.run(dj.jobs, progress=progress)
    per_job = torch.tensor([r.total_cycles for r in results], dtype=model.dtype, device=model.device)
    cycles = per_job[torch.as_tensor(dj.index, device=model.device)] * torch.as_tensor(dj.repeats, dtype=model.dtype, device=model.device)[None, :]
    latency = schedule_latency(model, candidates, cycles, ev.layers["dram_bytes"])
    return OracleEvaluation(latency_s=latency, layer_cycles=cycles, analytical={**ev.layers, **ev.metrics}, jobs=dj, results=results)


@dataclass
class OracleCostModel:
    """An oracle as a plug-in cost model: provides ``latency_s`` (everything else stays analytical).

    Each call runs the oracle on every layer of every candidate it is given (cached
    layers cost nothing); ``designs`` counts the candidates evaluated, which is what an
    oracle budget counts. Slow by nature: hand it to an
    :class:`~codesign.model.plugins.Evaluator` only where every call is meant to reach
    the oracle (the baseline "NSGA-II on the oracle", or verification).
    """

    oracle: Oracle
    space: object
    device: str | torch.device = "cpu"
    dtype: torch.dtype = torch.float64
    provides: tuple[str, ...] = ("latency_s",)
    designs: int = 0
    history: list = field(default_factory=list)

    def __post_init__(self) -> None:
        from codesign.model.analytical import AnalyticalModel

        self.model = AnalyticalModel(self.space, device=self.device, dtype=self.dtype)

    def evaluate(self, candidates, metrics) -> dict[str, torch.Tensor]:
        result = oracle_evaluate(self.oracle, self.model, candidates)
        self.designs += len(candidates)
        self.history.append(result)
        return {"latency_s": result.latency_s}


# --- the registry ----------------------------------------------------------------------------
BUILTIN = {
    "emulated": "codesign.oracles.emulated:EmulatedOracle",
    "scalesim": "codesign.oracles.scalesim:ScaleSimOracle",
}


def get_oracle(name: str | Oracle, **options) -> Oracle:
    """An oracle by name: ``emulated``, ``scalesim`` or ``package.module:attr`` (a class or an
    instance of an :class:`Oracle` subclass). ``options`` go to the class (``cache_dir``,
    ``workers``, ...). Unknown names and failing imports raise :class:`UserError`."""
    if isinstance(name, Oracle):
        return name
    spec = BUILTIN.get(name, name)
    if ":" not in spec:
        raise UserError(f"--oracle {name!r}: unknown oracle; expected one of {', '.join(sorted(BUILTIN))} or 'package.module:attr'")
    module_name, _, attr = spec.partition(":")
    import importlib

    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise UserError(f"--oracle {name!r}: cannot load {spec!r}: {type(error).__name__}: {error}") from None
    if isinstance(obj, type):
        obj = obj(**options)
    if not isinstance(obj, Oracle):
        raise UserError(f"--oracle {name!r}: {spec!r} is not a codesign.oracles.Oracle")
    return obj
