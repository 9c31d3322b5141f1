"""An oracle's view of whole designs: a population's layers as jobs, and their cycles scheduled.

A *design's* oracle latency is the analytical model's schedule with the oracle's per-layer
cycles in place of the analytical ones (:func:`~codesign.model.schedule.schedule_latency`): the
list schedule over the cores, the NoC transfers between layers and the chip-level DRAM bound
stay the model's; only each layer's busy time changes. A simulator of the PE array (SCALE-Sim) runs
MAC layers only: a vector layer gets no job (its cycles are the analytical model's), and a MAC
layer with a fused epilogue takes ``max(oracle cycles, epilogue cycles)`` (the epilogue runs on
the vector unit in pipeline with the array). :class:`OracleCostModel` wraps an oracle
as a plug-in cost model (the :class:`~codesign.model.plugins.CostModel` protocol) that provides
``latency_s``; the engine never calls it per trial in the inner loop (see
:mod:`codesign.search.surrogate_loop`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from codesign.model.analytical import AnalyticalModel
from codesign.model.schedule import check_layer_by_layer, schedule_latency, with_vector_unit
from codesign.oracles.jobs import LayerJob, LayerResult
from codesign.vocab import DATAFLOWS


class JobRunner(Protocol):
    """What a design's oracle evaluation needs of an oracle (:class:`~codesign.oracles.base.Oracle`
    is one): results for jobs, in order."""

    def run(self, jobs: Sequence[LayerJob], progress: Callable[[int], None] | None = None) -> list[LayerResult]: ...


@dataclass
class DesignJobs:
    """The jobs of ``P`` designs × ``L`` layers, de-duplicated.

    ``jobs[index[p, l]]`` is layer ``l`` of design ``p``; the layer's cycles are
    ``repeats[l] ×`` that job's. A vector layer has no job of its own: its ``repeats`` is 0 and
    its ``index`` that of a MAC layer of the same design (so every entry of ``index`` is a job the
    design needs); ``mac[l]`` tells the two apart.
    """

    jobs: list[LayerJob]
    index: np.ndarray  # [P, L] long
    repeats: np.ndarray  # [L]: GEMMs per layer (groups, × batch for a matmul); 0 for a vector layer
    mac: np.ndarray | None = None  # [L] bool: a MAC layer (a vector layer has no job)


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
    """The oracle jobs of every MAC layer of every candidate (a :class:`~codesign.space.Candidates`)."""
    P, L = candidates.dataflow.shape
    split = space.design.hardware.sram_split
    forms = _layer_forms(space)
    mac = ~space.lowered.is_vector.cpu().numpy()
    mac_cols = np.flatnonzero(mac)
    sram = candidates.sram_kib.double().cpu().numpy() * 1024.0
    bw = (torch.minimum(candidates.dram_gbps, candidates.noc_link_gbps) / candidates.clock_ghz).double().cpu().numpy()
    hw = np.stack([candidates.pe_rows.double().cpu().numpy(), candidates.pe_cols.double().cpu().numpy(), sram, bw], axis=1)  # [P, 4]
    df = candidates.dataflow.cpu().numpy()  # [P, L]
    precision = space.lowered.precision_bytes.cpu().numpy()
    # One numeric row per (p, l): layer index, hardware, dataflow; unique rows → jobs.
    Lm = len(mac_cols)
    table = np.concatenate([
        np.broadcast_to(mac_cols.astype(np.float64)[None, :, None], (P, Lm, 1)),
        np.broadcast_to(hw[:, None, :], (P, Lm, 4)),
        df[:, mac_cols, None].astype(np.float64),
    ], axis=2).reshape(P * Lm, 6)
    uniq, inverse = np.unique(table, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Jobs in the order designs first need them (design 0's layers, then what design 1 adds, ...): an
    # oracle stopped part-way (its deadline) has then finished whole designs, not a layer of each.
    first = np.full(len(uniq), inverse.size)
    np.minimum.at(first, inverse, np.arange(inverse.size))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    uniq, inverse = uniq[order], rank[inverse]
    jobs = []
    for l, h, w, s, b, d in uniq:
        form = forms[int(l)]
        jobs.append(LayerJob(*form, int(h), int(w), DATAFLOWS[int(d)], float(s * split[0]), float(s * split[1]), float(s * split[2]), float(b), int(precision[int(l)])))
    repeats = np.where(mac, space.lowered.groups.cpu().numpy().astype(np.float64), 0.0)
    index = np.zeros((P, L), dtype=np.int64)
    if Lm:
        index[:, mac_cols] = inverse.reshape(P, Lm)
        index[:, ~mac] = index[:, mac_cols[:1]]  # a job the design needs anyway
    return DesignJobs(jobs=jobs, index=index, repeats=repeats, mac=mac)


@dataclass
class OracleEvaluation:
    """An oracle's view of ``P`` designs."""

    latency_s: torch.Tensor  # [P]
    layer_cycles: torch.Tensor  # [P, L] oracle cycles per layer (vector work included)
    array_cycles: torch.Tensor  # [P, L] the simulator's own cycles of each MAC layer (0 for vector layers)
    analytical: dict  # the model's per-layer detail ([P, L] tensors) and metrics
    jobs: DesignJobs
    results: list[LayerResult]


def oracle_evaluate(oracle: JobRunner, model, candidates, *, progress=None) -> OracleEvaluation:
    """Run the oracle on every layer of ``candidates`` and schedule its cycles."""
    space = model.space
    check_layer_by_layer(candidates, space)
    ev = model.evaluate(candidates, detail=True)
    dj = design_jobs(space, candidates)
    results = oracle.run(dj.jobs, progress=progress) if dj.jobs else []
    per_job = torch.tensor([r.total_cycles for r in results] or [0.0], dtype=model.dtype, device=model.device)
    cycles = per_job[torch.as_tensor(dj.index, device=model.device)] * torch.as_tensor(dj.repeats, dtype=model.dtype, device=model.device)[None, :]
    array = cycles
    cycles = with_vector_unit(model, array, ev.layers)
    latency = schedule_latency(model, candidates, cycles, ev.layers["dram_bytes"])
    return OracleEvaluation(latency_s=latency, layer_cycles=cycles, array_cycles=array, analytical={**ev.layers, **ev.metrics},
                            jobs=dj, results=results)


@dataclass
class OracleCostModel:
    """An oracle as a plug-in cost model: provides ``latency_s`` (everything else stays analytical).

    Each call runs the oracle on every layer of every candidate it is given (cached
    layers cost nothing); ``designs`` counts the candidates evaluated, which is what an
    oracle budget counts. Slow by nature: hand it to an
    :class:`~codesign.model.evaluator.Evaluator` only where every call is meant to reach
    the oracle (the baseline "NSGA-II on the oracle", or verification).
    """

    oracle: JobRunner
    space: object
    device: str | torch.device = "cpu"
    dtype: torch.dtype = torch.float64
    provides: tuple[str, ...] = ("latency_s",)
    designs: int = 0
    history: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = AnalyticalModel(self.space, device=self.device, dtype=self.dtype)

    def evaluate(self, candidates, metrics) -> dict[str, torch.Tensor]:
        result = oracle_evaluate(self.oracle, self.model, candidates)
        self.designs += len(candidates)
        self.history.append(result)
        return {"latency_s": result.latency_s}
