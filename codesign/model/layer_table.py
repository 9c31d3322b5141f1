"""The surrogate's inputs: a layer table (one row per layer instance) and its features.

A *layer table* holds, per layer instance, the layer's loop bounds, the hardware and schedule
knobs it sees (array, dataflow, SRAM partitions, DRAM bandwidth) and the analytical model's own
outputs for it (:data:`TABLE_COLUMNS`): ``[P, L]`` tensors for the layers of ``P`` designs
(:func:`design_table`), ``[R]`` for oracle jobs, each layer on its own (:func:`job_table`).
:func:`features` turns a table into the log-scaled inputs of
:class:`~codesign.model.surrogate.LatencySurrogate` (:data:`FEATURES`; their schema version is
saved with a surrogate, which refuses another version).
"""

from __future__ import annotations

import torch

from codesign.knobs import HARDWARE_KNOBS
from codesign.model.analytical import AnalyticalModel
from codesign.model.systolic import folds as systolic_folds
from codesign.model.systolic import sram_accesses
from codesign.space import Candidates
from codesign.vocab import IS, OS, WS, dataflow_code
from codesign.workload.layer import Layer

FEATURE_VERSION = 1

#: Inputs per layer instance, in order. ``log`` is log2; sizes are per GEMM (one group).
FEATURES = (
    "log_M", "log_N", "log_K", "log_groups", "log_window", "log_stride",
    "log_array_h", "log_array_w", "df_ws", "df_os", "df_is",
    "log_ifmap_sram", "log_filter_sram", "log_ofmap_sram", "log_bandwidth", "log_precision",
    "log_ifmap_bytes", "log_filter_bytes", "log_ofmap_bytes",
    "ifmap_over_sram", "filter_over_sram", "ofmap_over_sram",
    "log_row_folds", "log_col_folds", "log_mapping_util",
    "log_an_compute", "log_an_total", "log_an_stall", "log_an_dram_bytes", "log_an_memory_over_compute",
    "ifmap_demand_over_bw", "filter_demand_over_bw", "ofmap_demand_over_bw", "footprint_over_bw",
    "is_source", "is_sink", "has_weights", "is_conv",
)
MAX_BANDWIDTH = 1e6  # bytes per cycle: larger (unlimited) is clipped here before the log


# --- layer tables: one row per layer instance ----------------------------------------------------
#: Columns of a layer table (tensors of one shape: ``[P, L]`` for designs, ``[R]`` for jobs).
TABLE_COLUMNS = (
    "M", "N", "K", "groups", "window", "stride", "array_h", "array_w", "dataflow",
    "ifmap_sram", "filter_sram", "ofmap_sram", "bandwidth", "precision",
    "ifmap_bytes", "filter_bytes", "ofmap_bytes", "is_source", "is_sink", "has_weights", "is_conv",
    "an_compute", "an_total", "an_dram_bytes",
)


def design_table(model, candidates, layers: dict | None = None) -> dict[str, torch.Tensor]:
    """The layer table ``[P, L]`` of ``candidates`` in the model's design space.

    ``layers`` is the model's per-layer detail (``evaluate(..., detail=True).layers``);
    computed when not given.
    """
    if layers is None:
        layers = model.evaluate(candidates, detail=True).layers
    space, lw = model.space, model.lw
    P, L = candidates.dataflow.shape
    dt, dev = model.dtype, model.device
    split = space.design.hardware.sram_split
    row = lambda v: v.to(dev, dt)[None, :].expand(P, L)  # noqa: E731
    col = lambda v: v.to(dev, dt)[:, None].expand(P, L)  # noqa: E731
    layer_objs = [space.workload.nodes[n]["layer"] for n in space.lowered.names]
    window = torch.tensor([float(x.R * x.S) for x in layer_objs], dtype=dt, device=dev)
    stride = torch.tensor([float(x.stride) for x in layer_objs], dtype=dt, device=dev)
    is_conv = torch.tensor([float(x.op == "conv") for x in layer_objs], dtype=dt, device=dev)
    sram = candidates.sram_kib.to(dev, dt) * 1024.0
    groups = lw.groups
    return {
        "M": row(lw.gemm_m), "N": row(lw.gemm_n), "K": row(lw.gemm_k), "groups": row(groups),
        "window": row(window), "stride": row(stride),
        "array_h": col(candidates.pe_rows), "array_w": col(candidates.pe_cols),
        "dataflow": candidates.dataflow.to(dev),
        "ifmap_sram": col(sram * split[0]), "filter_sram": col(sram * split[1]), "ofmap_sram": col(sram * split[2]),
        "bandwidth": col(torch.minimum(candidates.dram_gbps, candidates.noc_link_gbps) / candidates.clock_ghz),
        "precision": row(lw.precision_bytes),
        "ifmap_bytes": row(lw.ifmap_bytes / groups), "filter_bytes": row(lw.filter_bytes / groups), "ofmap_bytes": row(lw.ofmap_bytes / groups),
        "is_source": row(lw.is_source.to(dt)), "is_sink": row(lw.is_sink.to(dt)), "has_weights": row(lw.has_weights.to(dt)),
        "is_conv": row(is_conv),
        # A MAC layer's total is its array's (what a simulator of the array counts; a fused
        # epilogue's bound is applied after the prediction); a vector layer's is its own.
        "an_compute": layers["compute_cycles"].to(dev, dt),
        "an_total": torch.where(lw.is_vector, layers["total_cycles"], layers["array_cycles"]).to(dev, dt),
        "an_dram_bytes": layers["dram_bytes"].to(dev, dt),
    }


def _job_layer(job, name: str):
    """The :class:`~codesign.workload.layer.Layer` of one oracle job (one GEMM of a layer)."""
    if job.kind == "conv":
        oh, ow = (job.ifmap_h - job.filt_h) // job.stride + 1, (job.ifmap_w - job.filt_w) // job.stride + 1
        return Layer(name, op="conv", N=1, K=job.num_filters, C=job.channels, P=oh, Q=ow, R=job.filt_h, S=job.filt_w,
                     stride=job.stride, precision_bytes=job.precision_bytes)
    return Layer(name, op="fc", N=1, K=job.N, C=job.K, P=job.M, Q=1, precision_bytes=job.precision_bytes)


def _sram_split(job) -> tuple[float, float, float]:
    """The job's SRAM partitions as fractions (rounded: jobs of one design share them exactly)."""
    total = job.ifmap_sram_bytes + job.filter_sram_bytes + job.ofmap_sram_bytes
    return tuple(round(x / total, 9) for x in (job.ifmap_sram_bytes, job.filter_sram_bytes, job.ofmap_sram_bytes))


def _job_candidates(jobs, col: torch.Tensor) -> Candidates:
    """One candidate per job ``[n]``, with the job's array, SRAM and bandwidth; job ``i``'s
    dataflow on its own layer ``col[i]`` of an ``n``-layer workload, one core, 1 GHz, no NoC bound
    (and the default vector unit: a job is a MAC layer with no epilogue)."""
    n = len(jobs)
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    dataflow = torch.zeros(n, n, dtype=torch.long)
    dataflow[torch.arange(n), col] = torch.tensor([dataflow_code(j.dataflow) for j in jobs])
    # Every knob at its registry default (a MAC layer with no epilogue does not see the vector
    # unit, and no single layer fills the DRAM), then the job's own hardware.
    values = {k.name: torch.zeros(n, dtype=torch.long) if k.tensor == "index"
              else torch.full((n,), k.default[0], dtype=torch.long if k.tensor == "long" else torch.float64) for k in HARDWARE_KNOBS}
    values.update(
        grid_rows=torch.ones(n, dtype=torch.long), grid_cols=torch.ones(n, dtype=torch.long),
        pe_rows=f64([j.array_h for j in jobs]), pe_cols=f64([j.array_w for j in jobs]),
        sram_kib=f64([(j.ifmap_sram_bytes + j.filter_sram_bytes + j.ofmap_sram_bytes) / 1024.0 for j in jobs]),
        dram_gbps=f64([j.bandwidth for j in jobs]), noc_link_gbps=f64([1e15] * n), clock_ghz=f64([1.0] * n),
    )
    return Candidates(**values, dataflow=dataflow, core=torch.zeros(n, n, dtype=torch.long), pipelined=torch.zeros(n, dtype=torch.bool))


def job_table(jobs, *, chunk: int = 32, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The layer table ``[R]`` of oracle jobs, each layer standing alone (read from and written
    to DRAM, as a simulator runs it), with the analytical model's per-layer outputs.

    The analytical model runs on the jobs' layers (:meth:`AnalyticalModel.for_layers`), ``chunk``
    jobs at a time (one candidate per job; jobs are grouped by SRAM split, a constant of the
    hardware template).
    """
    R = len(jobs)
    out = {name: torch.zeros(R, dtype=torch.float64) for name in TABLE_COLUMNS}
    out["dataflow"] = torch.zeros(R, dtype=torch.long)
    by_split: dict[tuple, list[int]] = {}
    for i, j in enumerate(jobs):
        by_split.setdefault(_sram_split(j), []).append(i)
    for split, members in by_split.items():
        s = sum(split)
        split = (split[0] / s, split[1] / s, 1.0 - split[0] / s - split[1] / s)
        for start in range(0, len(members), chunk):
            idx = members[start : start + chunk]
            model = AnalyticalModel.for_layers([_job_layer(jobs[i], f"j{k}") for k, i in enumerate(idx)],
                                               hardware={"sram_split": list(split)}, name="oracle jobs")
            pos = {name: p for p, name in enumerate(model.space.lowered.names)}
            col = torch.tensor([pos[f"j{k}"] for k in range(len(idx))])
            c = _job_candidates([jobs[i] for i in idx], col)
            table = design_table(model, c, model.evaluate(c, detail=True).layers)
            take = torch.arange(len(idx))
            for name in TABLE_COLUMNS:
                out[name][torch.tensor(idx)] = table[name][take, col].to(out[name].dtype)
    return {k: v.to(device) for k, v in out.items()}


def features(table: dict[str, torch.Tensor]) -> torch.Tensor:
    """Feature matrix ``[..., len(FEATURES)]`` (float64) of a layer table."""
    t = table
    lg = lambda v: torch.log2(torch.clamp(v, min=1e-9))  # noqa: E731
    lg1 = lambda v: torch.log2(1.0 + torch.clamp(v, min=0.0))  # noqa: E731
    df = t["dataflow"]
    row_folds, col_folds = systolic_folds(t["M"], t["N"], t["K"], t["array_h"], t["array_w"], df)
    util = t["M"] * t["N"] * t["K"] / (row_folds * col_folds * t["array_h"] * t["array_w"] * torch.where(df == OS, t["K"], torch.where(df == WS, t["M"], t["N"])))
    bw = torch.clamp(t["bandwidth"], max=MAX_BANDWIDTH)
    stall = t["an_total"] - t["an_compute"]
    memory = t["an_dram_bytes"] / bw
    # Bandwidth each operand's SRAM stream demands during compute, over the DRAM's: what a
    # simulator stalls on when an operand does not stay on chip.
    per_gemm = t["an_compute"] / t["groups"] * bw
    reads = sram_accesses(t["M"], t["N"], t["K"], t["array_h"], t["array_w"], df)
    demand = [lg1(words * t["precision"] / per_gemm) for words in reads]
    footprint = lg1((t["ifmap_bytes"] + t["filter_bytes"] + t["ofmap_bytes"]) / per_gemm)
    cols = [
        lg(t["M"]), lg(t["N"]), lg(t["K"]), lg(t["groups"]), lg(t["window"]), lg(t["stride"]),
        lg(t["array_h"]), lg(t["array_w"]), (df == WS).to(t["M"].dtype), (df == OS).to(t["M"].dtype), (df == IS).to(t["M"].dtype),
        lg(t["ifmap_sram"]), lg(t["filter_sram"]), lg(t["ofmap_sram"]), lg(bw), lg(t["precision"]),
        lg(t["ifmap_bytes"]), lg(t["filter_bytes"]), lg(t["ofmap_bytes"]),
        lg(t["ifmap_bytes"] / t["ifmap_sram"]), lg(t["filter_bytes"] / t["filter_sram"]), lg(t["ofmap_bytes"] / t["ofmap_sram"]),
        lg(row_folds), lg(col_folds), lg(util),
        lg(t["an_compute"]), lg(t["an_total"]), lg1(stall), lg1(t["an_dram_bytes"]), lg1(memory / t["an_compute"]),
        *demand, footprint,
        t["is_source"], t["is_sink"], t["has_weights"], t["is_conv"],
    ]
    return torch.stack([c.to(torch.float64) for c in cols], dim=-1)


STALL_COL = FEATURES.index("log_an_stall")
