"""From per-layer costs and a schedule to a design's metrics: what both evaluation paths share.

The analytical model computes its per-layer costs in two layouts: candidate-major ``[P, L]`` (the
direct path) and layer-major ``[L, P]`` (the tabulated path, which the list schedule steps
through). How a run of the whole network follows from them — the chip-level DRAM bound, the
pipelined batch, the metrics — does not depend on the layout; it is written here once, on
``[P]`` tensors, with the layout's layer dimension passed as ``dim`` where a function reduces
over cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GB = 1e9


@dataclass
class Evaluation:
    """Metrics ``[P]`` by name and, when asked for, the per-layer schedule ``[P, L]``."""

    metrics: dict[str, torch.Tensor]
    layers: dict[str, torch.Tensor] | None = None


def chip_cycles(schedule_end: torch.Tensor, dram_bytes: torch.Tensor, dram_bytes_per_cycle: torch.Tensor) -> torch.Tensor:
    """Cycles of a run ``[...]``: the list schedule's end, but never less than the chip's DRAM
    traffic over its DRAM bandwidth (the roofline of the whole chip)."""
    return torch.maximum(schedule_end, dram_bytes / dram_bytes_per_cycle)


def per_core_sum(core: torch.Tensor, values: torch.Tensor, n_slots: int, *, dim: int) -> torch.Tensor:
    """Sums of ``values`` over the layers of each core: ``core`` and ``values`` have the layers
    along ``dim`` (1 for ``[P, L]``, 0 for ``[L, P]``); the result has ``n_slots`` cores there."""
    shape = list(core.shape)
    shape[dim] = n_slots
    return torch.zeros(shape, dtype=values.dtype, device=values.device).scatter_add_(dim, core, values)


def resident_weights(core: torch.Tensor, weight_bytes: torch.Tensor, filter_capacity: torch.Tensor, n_slots: int, *,
                     dim: int) -> torch.Tensor:
    """Whether each layer's weights stay in SRAM across a pipelined batch: all the weights mapped
    to its core fit that core's filter partition (``filter_capacity``, broadcast against ``core``)."""
    return per_core_sum(core, weight_bytes, n_slots, dim=dim).gather(dim, core) <= filter_capacity


def pipelined_run(fill_cycles: torch.Tensor, busiest_core: torch.Tensor, dram_bytes: torch.Tensor,
                  dram_bytes_per_cycle: torch.Tensor, energy: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cycles and dynamic energy ``[P]`` of a batch pipelined sample by sample across the cores.

    One sample's schedule (``fill_cycles``) fills the pipeline; every further sample costs the
    bottleneck stage: the busiest core's cycles per sample, or the sample's DRAM traffic over the
    DRAM bandwidth. ``energy`` is one sample's dynamic energy; the batch spends ``batch`` times it.
    """
    bottleneck = torch.maximum(busiest_core, dram_bytes / dram_bytes_per_cycle)
    return fill_cycles + (batch - 1) * bottleneck, batch * energy


def metrics(latency, dyn_energy, area, die_cost, static_w) -> dict[str, torch.Tensor]:
    """The model's metrics ``[P]``: energy adds leakage over the run to the dynamic energy."""
    energy = dyn_energy + static_w * latency
    return {
        "latency_s": latency,
        "energy_j": energy,
        "area_mm2": area,
        "cost_usd": die_cost,
        "power_w": energy / latency,
    }


def layer_detail(clock_ghz, compute, total, dram, start, finish, *, vector, array, plan: dict | None = None) -> dict[str, torch.Tensor]:
    """The per-layer schedule ``[P, L]`` from cycle counts ``[P, L]`` and the clock ``[P]``.

    ``vector`` is the vector unit's cycles (a vector layer's, or a MAC layer's epilogue's) and
    ``array`` the PE array's cycles with its stalls, without the epilogue's bound (0 for a vector
    layer): what a simulator of the array alone counts. With a fusion/split ``plan``
    (:func:`~codesign.model.fusion.schedule_plan`) also ``fused`` (1 where the layer's input
    boundary is fused), ``tiles`` (of its stack) and ``split`` (cores)."""
    clock = (clock_ghz * GB)[:, None]
    extra = {}
    if plan and "fused" in plan:  # (the plan is layer-major)
        extra.update(fused=plan["fused"].t().to(total.dtype), tiles=torch.where(plan["fused"] | plan["fused_out"], plan["tiles"], 1.0).t())
    if plan and "split" in plan:
        extra["split"] = plan["split"].t().to(total.dtype)
    return {**extra,
        "compute_cycles": compute,
        "stall_cycles": total - compute,
        "total_cycles": total,
        "vector_cycles": vector,
        "array_cycles": array,
        "dram_bytes": dram,
        "start_s": start / clock,
        "end_s": finish / clock,
    }
