"""The built-in analytical model: a population of candidates → latency, energy, area, cost.

One call of :meth:`AnalyticalModel.evaluate` takes :class:`~codesign.space.Candidates`
(``P`` candidates) and returns every metric as a ``[P]`` tensor, on the device and in
the dtype the model was built with. Per layer and candidate (``[P, L]`` tensors):

1. compute cycles from the systolic closed form of the layer's dataflow
   (:mod:`codesign.model.systolic`);
2. DRAM traffic (energy, chip-level roofline) from SRAM capacity, tiling and dataflow:
   operands that fit in their double-buffered SRAM partition are fetched once, others once
   per fold of the other dimension; activations stay on chip between layers when they fit;
3. stall cycles from SCALE-Sim 3.0.0's memory system in closed form
   (:func:`~codesign.model.systolic.stall_bound_cycles`): every operand that crosses the DRAM
   interface has its own channel of ``min(DRAM, NoC link)`` bandwidth, its prefetch count
   follows SCALE-Sim's window over the operand's fetch list, and the layer takes the
   longest of compute and the three channels; the difference is its stall;
4. NoC transfers between layers on different cores: bytes / link bandwidth + hops ×
   router latency (XY routing);
5. a list schedule of the DAG over the cores (:mod:`codesign.model.schedule`); the
   chip can never beat its total DRAM traffic / DRAM bandwidth;
6. pipelined mode: one sample's schedule fills the pipeline, then every further sample
   costs the bottleneck stage (the busiest core, or DRAM); weights stay resident across
   the batch on cores whose weights fit in SRAM;
7. layer by layer, fused stacks and split layers (:mod:`codesign.model.fusion`): fused
   boundaries keep their tensors in SRAM tile by tile (no DRAM traffic there) and the list
   schedule lets a fused layer start on its first input tiles; a split layer runs one part per
   core and gathers the parts over the NoC.

Non-MAC work runs on each core's vector unit (``vector_lanes`` operations per cycle): a vector
layer's cycles are its vector cycles against the streaming bound of its DRAM bytes, and a MAC
layer's fused epilogue bounds the layer's cycles from below (:mod:`codesign.model.layer_costs`).

Energy sums MAC, vector-unit, register, SRAM, DRAM and NoC energies and leakage over the run;
area and die cost come from :mod:`codesign.hardware.cost`. Steps 1–3 and the layers' energies
are the formulas of :mod:`codesign.model.layer_costs`; :mod:`codesign.model.evaluation` combines
the scheduled layers into a run (the chip's DRAM bound, the pipelined batch, the metrics) for
both paths below. The formulas and every
constant's source are in ``docs/model.md``.

Two paths compute the same numbers. The *tabulated* path (candidates whose hardware values
are choices of the design, the search's case; :mod:`codesign.model.tabulated`) gathers steps
1–3, the energies, area and cost and the hop counts from tables built once per model over every
combination of the design's choices (:mod:`codesign.model.tables`, which evaluates the same
formulas on a grid of the choices), and runs the list schedule on the gathered costs;
:meth:`AnalyticalModel.evaluate_rows` reads integer rows straight into it. The *direct* path
(:meth:`AnalyticalModel.evaluate_direct`, in this module) computes every step per candidate:
it takes values off the design's choices, hardware fields that require grad (gradients flow
through it; roundings are straight-through, see :mod:`codesign.model.systolic`) and the
dataflow mixture ``dataflow_weights``. In float64 both agree to the last bit on cycle counts,
DRAM bytes, area and cost, and to 1e-15 relative on energy (a different order of summation);
``tests/test_model_tabulated.py`` pins that.

:meth:`AnalyticalModel.for_layers` builds the model of ad-hoc layers on a hardware template
(a simulator's view: ``codesign cycles``, the surrogate's oracle jobs).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.floorplan import core_hops, dram_hops
from codesign.hardware.tech_tables import tech_node
from codesign.model.evaluation import (GB, Evaluation, chip_cycles, embodied_kg, layer_detail, metrics, per_core_sum, pipelined_run, resident_weights,
                                       run_energy_parts, with_leakage)
from codesign.model.chiplets import Chiplets
from codesign.model.fusion import FusionTables, schedule_plan, split_part, split_parts, stack_timing
from codesign.model.layer_costs import PJ, LayerCosts, LayerFormulas
from codesign.model.schedule import list_schedule
from codesign.model.standalone import layers_space
from codesign.model.tabulated import TabulatedPath
from codesign.space import Candidates, DesignSpace
from codesign.vocab import METRICS

__all__ = ["AnalyticalModel", "Evaluation", "LayerCosts"]


class AnalyticalModel:
    """Batched analytical latency / energy / area / cost model of a design space.

    Args:
        space: the design space (its workload is lowered once, here).
        device: where tensors live (``"cpu"``, ``"cuda"``, ...).
        dtype: floating dtype; float64 (default) keeps cycle counts exact.
    """

    name = "analytical"
    provides = METRICS

    def __init__(self, space: DesignSpace, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.space = space
        self.device = torch.device(device)
        self.dtype = dtype
        self.lw = space.lowered.to(self.device, dtype)
        hw = space.design.hardware
        self.split = hw.sram_split
        self.formulas = LayerFormulas(self.lw, [space.workload.nodes[name]["layer"] for name in self.lw.names], self.split)
        self.n_ports = hw.dram_ports
        self.carbon = space.design.carbon  # what the carbon metrics assume ([carbon])
        self.hop_cycles = float(hw.noc_hop_cycles)
        self.dram_kind = hw.dram_kind
        self.n_slots = hw.max_cores
        self.precision = self.formulas.precision
        self.nodes = [tech_node(name, hw.tech) for name in space.node_names]  # hardware.tech: the constants' source
        table = lambda f: torch.tensor([f(n) for n in self.nodes], dtype=dtype, device=self.device)  # noqa: E731
        self.e_mac = table(lambda n: n.mac_energy_pj[self.precision] * PJ)
        self.e_reg = table(lambda n: n.reg_energy_pj_per_byte * PJ)
        self.e_hop = table(lambda n: n.noc_hop_energy_pj_per_byte * PJ)
        self.e_dram = table(lambda n: n.dram_energy_pj_per_byte[self.dram_kind] * PJ)
        self.e_vec = table(lambda n: n.vector_op_energy_pj[self.precision] * PJ)
        # Bytes of weights of each layer [L]: what a core keeps resident across a pipelined batch.
        self.weight_bytes = torch.where(self.lw.has_weights, self.lw.filter_bytes, 0.0)
        # Real predecessors of each layer, read once here (not per call: no host sync on cuda).
        lowered = space.lowered
        self.pred_lists = [[p for p, real in zip(preds, mask) if real]
                           for preds, mask in zip(lowered.preds.tolist(), lowered.pred_mask.tolist())]
        # Fusion and splitting: their tables (None without either).
        self.fusion_tables = FusionTables(self) if space.fusion or space.splitting else None
        self.chiplets = Chiplets(self)  # several dies: D2D crossings and the package (enabled only then)
        self.tabulated = TabulatedPath(self)

    @classmethod
    def for_layers(cls, layers, *, hardware: dict | None = None, schedule: dict | None = None, name: str = "layers",
                   device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> "AnalyticalModel":
        """The model of a list of :class:`~codesign.workload.layer.Layer` run one by one, each
        reading its operands from DRAM and writing its result back, on a hardware template
        (``[hardware]`` keys, one value each) — a simulator's view of layers
        (:func:`~codesign.model.standalone.layers_space`)."""
        return cls(layers_space(layers, hardware=hardware, schedule=schedule, name=name), device=device, dtype=dtype)

    # --- the direct path: every candidate computed from its values (differentiable) -----------------
    def _per_node(self, node: torch.Tensor, fn) -> torch.Tensor:
        """``fn(tech_node)`` for each candidate's node (a handful of nodes, not candidates)."""
        out = fn(self.nodes[0])
        for i, tech in enumerate(self.nodes[1:], start=1):
            out = torch.where(node == i, fn(tech), out)
        return out

    def layer_costs(self, c: Candidates, kind: str = "batch", *, filter_resident=None,
                    dataflow_weights: torch.Tensor | None = None, plan: dict | None = None, parts: bool = False) -> LayerCosts:
        """Costs ``[P, L]`` of running each layer once, for the whole batch or one sample (``kind``).

        ``filter_resident`` ``[P, L]`` marks layers whose weights stay in SRAM across a pipelined
        batch. With ``dataflow_weights`` (``[P, L, 3]``) every cost is the weighted sum of the
        layer's costs under the three dataflows (``c.dataflow`` is ignored). ``plan``
        (:func:`~codesign.model.fusion.schedule_plan`) fuses and splits layers. ``parts`` adds the
        layers' energy by component (``energy_parts``)."""
        inputs = dict(self.formulas.inputs(kind), filter_resident=filter_resident, parts=parts)
        plan = plan or {}
        if "split" in plan:
            ft = self.fusion_tables
            part, _, _ = split_part(self.lw, inputs, plan["split"].t(), ft.split_rows[plan["option"]])
            inputs.update(part)
        if "fused" in plan:
            inputs.update(fused_in=plan["fused"].t(), fused_out=plan["fused_out"].t())
        if dataflow_weights is None:
            return self._split(self._layer_costs_one(c, **inputs), plan)
        mixed = mixed_parts = None
        for d in range(3):
            one = self._layer_costs_one(replace(c, dataflow=torch.full_like(c.core, d)), **inputs)
            w = dataflow_weights[..., d].to(self.dtype)
            terms = [w * x for x in (one.compute_cycles, one.total_cycles, one.dram_bytes, one.energy_j, one.vector_cycles,
                                     one.array_cycles)]
            mixed = terms if mixed is None else [a + b for a, b in zip(mixed, terms)]
            if parts:
                weighted = {name: w * x for name, x in one.energy_parts.items()}
                mixed_parts = weighted if mixed_parts is None else {name: mixed_parts[name] + x for name, x in weighted.items()}
        return self._split(LayerCosts(*mixed, energy_parts=mixed_parts), plan)

    @staticmethod
    def _split(costs: LayerCosts, plan: dict) -> LayerCosts:
        """A split layer's costs from one part's: ``k`` parts' DRAM bytes and energy, one part's
        cycles plus the NoC time of scattering and gathering the parts."""
        if "split" not in plan:
            return costs
        k = plan["split"].t()
        parts = None if costs.energy_parts is None else {name: k * x for name, x in costs.energy_parts.items()}
        return replace(costs, total_cycles=costs.total_cycles + plan["split_cycles"].t(), dram_bytes=k * costs.dram_bytes,
                       energy_j=k * costs.energy_j, energy_parts=parts)

    def schedule_plan(self, c: Candidates) -> dict:
        """:func:`~codesign.model.fusion.schedule_plan` of the candidates (layer-major; empty without
        fusion or splitting); ``option`` adds their split codes ``[P, L]``."""
        ft = self.fusion_tables
        if ft is None:
            return {}
        hops = None
        if ft.splitting:
            hops = split_parts(c.core.t(), ft.split_k[c.split.t()], c.n_cores[None, :], c.grid_cols[None, :], ft.max_split, self.dtype)
        plan = schedule_plan(ft, fuse=None if c.fuse is None else c.fuse.t(), tile=None if c.tile is None else c.tile.t(),
                             split=None if c.split is None else c.split.t(), sram_kib=c.sram_kib,
                             link_bytes_per_cycle=(c.noc_link_gbps / c.clock_ghz)[None, :], hops=hops)
        if ft.splitting:
            plan["option"] = c.split
        return plan

    def _layer_costs_one(self, c: Candidates, *, m, n, groups, ifmap_bytes, ofmap_bytes, filter_bytes, vector_work, side_bytes,
                         filter_resident=None, fused_in=None, fused_out=None, parts: bool = False) -> LayerCosts:
        f = self.formulas
        H, W, sram = c.pe_rows[:, None], c.pe_cols[:, None], c.sram_kib[:, None]
        df = c.dataflow
        t = f.traffic(H, W, sram, df, m=m, n=n, groups=groups, ifmap_bytes=ifmap_bytes, ofmap_bytes=ofmap_bytes,
                      filter_bytes=filter_bytes, vector_work=vector_work, side_bytes=side_bytes, lanes=c.vector_lanes[:, None],
                      filter_resident=filter_resident, fused_in=fused_in, fused_out=fused_out)
        bytes_per_cycle = (torch.minimum(c.dram_gbps, c.noc_link_gbps) / c.clock_ghz)[:, None]
        array = f.array_cycles(t, H, W, df, m=m, n=n, groups=groups, bytes_per_cycle=bytes_per_cycle,
                               terms=f.stall_terms(H, W, sram, df, m, n))
        total = f.with_vector(t, array, bytes_per_cycle) if f.has_vector else array
        node = c.node[:, None]
        e_sram = lambda share: self._per_node(node, lambda tech: hwcost.sram_energy_pj_per_byte(tech, sram * share)) * PJ  # noqa: E731
        hops = dram_hops(c.core, c.grid_rows[:, None], c.grid_cols[:, None], self.n_ports).to(self.dtype)
        energies = dict(e_sram=e_sram, e_mac=self.e_mac[node], e_reg=self.e_reg[node], e_vec=self.e_vec[node])
        energy = (
            f.core_energy(t, H, W, df, m=m, n=n, groups=groups, **energies)
            + t["dram"] * (self.e_dram[node] + hops * self.e_hop[node])
        )
        by_part = None
        if parts:  # the same energy by component: the core's, DRAM, and the NoC hops of the DRAM traffic
            by_part = f.core_energy_parts(t, H, W, df, m=m, n=n, groups=groups, **energies)
            by_part.update(dram=torch.broadcast_to(t["dram"] * self.e_dram[node], energy.shape), noc=t["dram"] * (hops * self.e_hop[node]))
        vector = torch.broadcast_to(t["vector"], total.shape) if f.has_vector else torch.zeros_like(total)
        return LayerCosts(compute_cycles=t["compute"], total_cycles=total, dram_bytes=t["dram"], energy_j=energy,
                          vector_cycles=vector, array_cycles=array, energy_parts=by_part)

    def transfers(self, c: Candidates, scale: float = 1.0, *, latency: bool = False, d2d: bool = False):
        """NoC time ``[P, L, J]`` of the edges between layers (bytes × ``scale`` over the link
        bandwidth, plus hops × router latency; zero on one core) and on-die byte-hops ``[P]`` (and, with
        ``latency``, the hops' latency ``[P, L, J]``; with ``d2d``, the D2D energy ``[P]``, J).

        With several dies (:class:`~codesign.model.chiplets.Chiplets`) a hop that crosses a die
        boundary is a D2D link: its latency and energy are the package's, and a transfer that crosses
        one moves at ``min(noc_link_gbps, d2d_gbps)``."""
        lw = self.lw
        producer_core = c.core[:, lw.preds]  # [P, L, J]
        consumer_core = c.core[:, :, None]
        hops = core_hops(producer_core, consumer_core, c.grid_cols[:, None, None]).to(self.dtype)
        hops = torch.where(lw.pred_mask, hops, 0.0)
        link_bytes_per_cycle = (c.noc_link_gbps / c.clock_ghz)[:, None, None]
        edge_bytes = lw.pred_bytes * scale
        hop_latency = hops * self.hop_cycles
        on_die, d2d_energy, slower = hops, 0.0, None
        if self.chiplets.enabled:  # several dies: each D2D crossing's latency, bandwidth and energy
            cross = torch.where(lw.pred_mask, self.chiplets.crossings(c, producer_core, consumer_core), 0).to(self.dtype)
            hop_latency, slower, d2d_energy = self.chiplets.direct_terms(c, cross, edge_bytes, hop_latency, self.hop_cycles)
            on_die = hops - cross
        cycles = torch.where(hops > 0, edge_bytes / link_bytes_per_cycle + hop_latency, 0.0)
        if slower is not None:
            cycles = cycles + slower
        out = (cycles, (edge_bytes * on_die).sum(dim=(1, 2))) + ((hop_latency,) if latency else ())
        return out + (d2d_energy,) if d2d else out

    def evaluate(self, c: Candidates, *, detail: bool = False, dataflow_weights: torch.Tensor | None = None,
                 rows: torch.Tensor | None = None) -> Evaluation:
        """Every metric for the ``P`` candidates in ``c``; ``detail`` adds the per-layer schedule.

        Args:
            c: the candidates.
            detail: also return the per-layer schedule ``[P, L]``.
            dataflow_weights: ``[P, L, 3]`` weights over the dataflows (ws, os, is) of each layer,
                rows summing to 1: every per-layer cost is the weighted mixture of the layer's costs
                under the three dataflows (a differentiable relaxation of the choice; ``c.dataflow``
                is ignored). Always computed directly.
            rows: the integer rows ``[P, D]`` that ``c`` was decoded from (:meth:`DesignSpace.decode`),
                if known: the hardware knobs' codes then index the model's tables directly, with no
                look-up of the values (and no host synchronisation on cuda).

        Candidates whose array, SRAM, bandwidth, clock and grid are choices of the design are
        evaluated from per-layer tables built once per model (:mod:`codesign.model.tables`); anything
        else — values off the design's choices, or hardware fields that require grad — is
        computed directly (:meth:`evaluate_direct`), and gradients flow through it.
        """
        path = self.tabulated
        if dataflow_weights is None and path.ready():
            coded = path.codes_from_rows(c, rows) if rows is not None else path.codes_from_values(c)
            if coded is not None:
                return self._with_energy_parts(path.evaluate(coded, detail), c) if detail else path.evaluate(coded, detail)
        return self.evaluate_direct(c, detail=detail, dataflow_weights=dataflow_weights)

    def _with_energy_parts(self, evaluation: Evaluation, c: Candidates) -> Evaluation:
        """A tabulated evaluation in detail with the energy by component of the direct path's
        :meth:`evaluate_direct` (they agree to rounding; only detail pays for it)."""
        return replace(evaluation, energy_parts=self.evaluate_direct(c, detail=True).energy_parts)

    def evaluate_rows(self, rows: torch.Tensor, *, detail: bool = False) -> Evaluation:
        """Every metric for the integer rows ``[P, D]`` of the design space (``DesignSpace.encode``).

        The same as ``evaluate(space.decode(rows), rows=rows)``, but the tabulated path reads the
        rows itself (knob codes index the tables; dataflow and core columns are gathered layer-major)
        and builds no :class:`Candidates`. Rows must hold codes within the knobs' ranges."""
        if not self.tabulated.ready():
            return self.evaluate(self.space.decode(rows.to(self.device), dtype=self.dtype), detail=detail)
        evaluation = self.tabulated.evaluate(self.tabulated.codes_of_rows(rows), detail)
        return self._with_energy_parts(evaluation, self.space.decode(rows.to(self.device), dtype=self.dtype)) if detail else evaluation

    def evaluate_direct(self, c: Candidates, *, detail: bool = False, dataflow_weights: torch.Tensor | None = None) -> Evaluation:
        """:meth:`evaluate` computed per candidate, whatever its values (the differentiable path)."""
        lw = self.lw
        node = c.node
        dram_bytes_per_cycle = c.dram_gbps / c.clock_ghz
        if dataflow_weights is not None and dataflow_weights.shape != (*c.core.shape, 3):
            raise ValueError(f"dataflow_weights must have shape {(*c.core.shape, 3)} ([P, L, 3]), got {tuple(dataflow_weights.shape)}")

        # Layer by layer: every layer processes the whole batch (in fused stacks and split layers).
        plan = self.schedule_plan(c)
        costs = self.layer_costs(c, "batch", dataflow_weights=dataflow_weights, plan=plan, parts=detail)
        transfer, byte_hops, hop_latency, d2d_energy = self.transfers(c, latency=True, d2d=True)
        stack = None
        if "fused" in plan:
            ft = self.fusion_tables
            F, J = ft.fusable_index, torch.tensor(ft.fused_input, dtype=torch.long, device=self.device)
            stack = stack_timing(ft, plan, costs.total_cycles.t(), transfer[:, F, J].t(), hop_latency[:, F, J].t())
        start, finish = list_schedule(costs.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, self.n_slots,
                                      pred_lists=self.pred_lists, stack=stack, parts=plan.get("parts"))
        cycles = chip_cycles(finish.amax(dim=1), costs.dram_bytes.sum(dim=1), dram_bytes_per_cycle)
        dyn_energy = costs.energy_j.sum(dim=1) + byte_hops * self.e_hop[node] + d2d_energy
        if "split" in plan:
            dyn_energy = dyn_energy + plan["split_byte_hops"] * self.e_hop[node]
        parts = None
        if detail:
            parts = run_energy_parts(costs.energy_parts, byte_hops + plan.get("split_byte_hops", 0.0), self.e_hop[node], d2d_energy)

        if lw.batch > 1 and bool(c.pipelined.any()):
            pipe_cycles, pipe_energy, pipe_parts = self._pipelined(c, dram_bytes_per_cycle, dataflow_weights, parts=detail)
            cycles = torch.where(c.pipelined, pipe_cycles, cycles)
            dyn_energy = torch.where(c.pipelined, pipe_energy, dyn_energy)
            if detail:
                parts = {name: torch.where(c.pipelined, pipe_parts[name], x) for name, x in parts.items()}

        latency = cycles / (c.clock_ghz * GB)
        area = self._per_node(node, lambda t: hwcost.area_mm2(
            t, pe_rows=c.pe_rows, pe_cols=c.pe_cols, sram_kib=c.sram_kib, n_cores=c.n_cores.to(self.dtype),
            n_dram_ports=torch.full_like(c.pe_rows, float(self.n_ports)), precision_bytes=self.precision, dram_kind=self.dram_kind,
            vector_lanes=c.vector_lanes))
        die_cost = self._per_node(node, lambda t: hwcost.die_cost_usd(area, t))
        static_w = self._per_node(node, lambda t: hwcost.static_power_w(area, t))
        if self.chiplets.enabled:  # several dies: their D2D PHYs in the area, and the package's recurring cost
            area, die_cost, static_w = self.chiplets.area_cost(c, area, die_cost, static_w, lambda fn: self._per_node(node, fn))
        embodied = embodied_kg(area, self.nodes, node, self.carbon, c.dies.to(self.dtype) if self.chiplets.enabled else 1)
        layers = None
        if detail:
            layers = layer_detail(c.clock_ghz, costs.compute_cycles, costs.total_cycles, costs.dram_bytes, start, finish,
                                  vector=costs.vector_cycles, array=costs.array_cycles, plan=plan)
            parts = with_leakage(parts, static_w, latency)
        return Evaluation(metrics=metrics(latency, dyn_energy, area, die_cost, static_w, embodied, self.carbon), layers=layers,
                          energy_parts=parts)

    def _pipelined(self, c: Candidates, dram_bytes_per_cycle: torch.Tensor, dataflow_weights: torch.Tensor | None = None, *,
                   parts: bool = False):
        """Cycles and dynamic energy ``[P]`` of the batch pipelined sample by sample across cores
        (candidate-major: the layers along dim 1), and with ``parts`` that energy by component."""
        lw = self.lw
        weights = self.weight_bytes.expand_as(c.core)
        resident = resident_weights(c.core, weights, c.sram_kib[:, None] * 1024.0 * self.split[1], self.n_slots, dim=1)
        one = self.layer_costs(c, "sample", filter_resident=resident, dataflow_weights=dataflow_weights, parts=parts)
        transfer, byte_hops, d2d_energy = self.transfers(c, scale=1.0 / lw.batch, d2d=True)
        _, finish = list_schedule(one.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, self.n_slots,
                                  pred_lists=self.pred_lists)
        busiest = per_core_sum(c.core, one.total_cycles, self.n_slots, dim=1).amax(dim=1)
        cycles, energy = pipelined_run(finish.amax(dim=1), busiest, one.dram_bytes.sum(dim=1), dram_bytes_per_cycle,
                                       one.energy_j.sum(dim=1) + byte_hops * self.e_hop[c.node] + d2d_energy, lw.batch)
        by_part = None
        if parts:  # the batch spends batch times one sample's energy, part by part
            by_part = {name: lw.batch * x for name, x in run_energy_parts(one.energy_parts, byte_hops, self.e_hop[c.node], d2d_energy).items()}
        return cycles, energy, by_part
