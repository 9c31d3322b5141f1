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

from codesign.hardware import carbon
from codesign.vocab import ENERGY_PARTS

GB = 1e9


@dataclass
class Evaluation:
    """Metrics ``[P]`` by name and, when asked for (detail), the per-layer schedule ``[P, L]`` and the
    energy by component ``[P]`` (:data:`~codesign.vocab.ENERGY_PARTS`, joules; they sum to ``energy_j``)."""

    metrics: dict[str, torch.Tensor]
    layers: dict[str, torch.Tensor] | None = None
    energy_parts: dict[str, torch.Tensor] | None = None


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


def metrics(latency, dyn_energy, area, die_cost, static_w, embodied_kg, settings) -> dict[str, torch.Tensor]:
    """The model's metrics ``[P]``: energy adds leakage over the run to the dynamic energy; the
    embodied carbon ``embodied_kg`` comes with the area, the operational carbon follows from the
    energy and latency over the lifetime, usage and grid of ``settings`` (the design's ``[carbon]``)."""
    energy = dyn_energy + static_w * latency
    return {
        "latency_s": latency,
        "energy_j": energy,
        "area_mm2": area,
        "cost_usd": die_cost,
        "power_w": energy / latency,
        "carbon_kg": embodied_kg,
        "carbon_operational_kg": operational_kg(energy, latency, settings),
    }


def operational_kg(energy: torch.Tensor, latency: torch.Tensor, settings) -> torch.Tensor:
    """``carbon_operational_kg`` ``[P]`` of runs of ``energy`` J and ``latency`` s ``[P]`` under ``settings``
    (the design's ``[carbon]``): what a model that combines runs (an LLM request) computes again."""
    return carbon.operational_carbon_kg(energy, latency, use_intensity_g_per_kwh=settings.use_intensity_g_per_kwh,
                                        lifetime_years=settings.lifetime_years, duty_cycle=settings.duty_cycle,
                                        inferences_per_s=settings.inferences_per_s)


def embodied_kg(area: torch.Tensor, nodes: list, node: torch.Tensor, settings, dies: torch.Tensor | int = 1) -> torch.Tensor:
    """Embodied carbon ``[P]`` (:func:`codesign.hardware.carbon.embodied_carbon_kg`) of chips of ``area``
    ``[P]`` in ``dies`` dies, each at ``nodes[node]`` (``node``: codes ``[P]``), with the fab grid of
    ``settings`` (the design's ``[carbon]``). Loops over the nodes, not the candidates."""
    fab = settings.fab_intensity_g_per_kwh
    out = carbon.embodied_carbon_kg(area, nodes[0], dies=dies, fab_intensity_g_per_kwh=fab)
    for i, tech in enumerate(nodes[1:], start=1):
        out = torch.where(node == i, carbon.embodied_carbon_kg(area, tech, dies=dies, fab_intensity_g_per_kwh=fab), out)
    return out


def tabulated_embodied_kg(path, k, area: torch.Tensor) -> torch.Tensor:
    """Embodied carbon ``[P]`` of a coded population on the tabulated ``path``
    (:class:`~codesign.model.tabulated.TabulatedPath`, coded ``k``, chip areas ``area`` ``[P]``): one-die
    chips gather it from a table over the area table's entries (built on first use; an entry's node is
    its index mod the nodes), chips of several dies compute it from their area and die count."""
    model, T = path.model, path.tables
    if k.chiplet is not None:
        return embodied_kg(area, model.nodes, k.node, model.carbon, model.chiplets.dies.index_select(0, k.chiplet.dies).to(area.dtype))
    table = T.get("embodied")
    if table is None:  # (two threads may both build it: the same values)
        chips = T["area"][:, 0]
        table = T["embodied"] = embodied_kg(chips, model.nodes, torch.arange(len(chips), device=chips.device) % path.n_nodes, model.carbon)
    return table.index_select(0, (k.hw * T["G"] + k.grid) * path.n_nodes + k.node)


def run_energy_parts(layer_parts: dict[str, torch.Tensor], byte_hops: torch.Tensor, e_hop: torch.Tensor,
                     d2d_energy: torch.Tensor | float = 0.0) -> dict[str, torch.Tensor]:
    """A run's dynamic energy by component ``[P]``: the layers' parts ``[P, L]`` summed over the layers
    (candidate-major), the NoC's with the on-die transfers between layers (``byte_hops`` at ``e_hop`` J
    each), and the die-to-die links' ``d2d_energy`` ``[P]`` (J; 0 on one die)."""
    parts = {name: x.sum(dim=1) for name, x in layer_parts.items()}
    parts["noc"] = parts["noc"] + byte_hops * e_hop
    parts["d2d"] = torch.zeros_like(parts["noc"]) + d2d_energy
    return parts


def with_leakage(dynamic: dict[str, torch.Tensor], static_w: torch.Tensor, latency: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every part of :data:`~codesign.vocab.ENERGY_PARTS` ``[P]``, in its order: the run's dynamic parts
    (:func:`run_energy_parts`; zero where the model has none), and leakage over the run, as
    :func:`metrics` adds it. They sum to ``energy_j``."""
    parts = dict(dynamic, leakage=static_w * latency)
    zero = torch.zeros_like(latency)
    return {name: parts.get(name, zero) for name in ENERGY_PARTS}


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
