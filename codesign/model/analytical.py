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
   the batch on cores whose weights fit in SRAM.

Energy sums MAC, register, SRAM, DRAM and NoC energies and leakage over the run;
area and die cost come from :mod:`codesign.hardware.cost`. The formulas and every
constant's source are in ``docs/model.md``.

Two paths compute the same numbers. The *tabulated* path (candidates whose hardware values
are choices of the design, the search's case) gathers steps 1–3, the energies, area and cost
and the hop counts from tables built once per model over every combination of the design's
choices, and runs the list schedule on the gathered costs; :meth:`AnalyticalModel.evaluate_rows`
reads integer rows straight into it. The *direct* path computes every step per candidate: it
takes values off the design's choices, hardware fields that require grad (gradients flow
through it; roundings are straight-through, see :mod:`codesign.model.systolic`) and the
dataflow mixture ``dataflow_weights``. In float64 both agree to the last bit on cycle counts,
DRAM bytes, area and cost, and to 1e-15 relative on energy (a different order of summation);
``tests/test_eval_fast.py`` pins that.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.floorplan import core_hops, dram_hops
from codesign.hardware.tech import TECH_NODES
from codesign.model.schedule import list_schedule, list_schedule_lp
from codesign.model.systolic import (
    compute_cycles,
    refetch_factors,
    sram_accesses,
    stall_bound_cycles,
    stall_terms,
)
from codesign.vocab import DATAFLOWS
from codesign.space import Candidates, DesignSpace

PJ = 1e-12
GB = 1e9

#: Most table entries (all tables together; a complex entry counts twice) the model builds; a
#: design with more combinations of array, SRAM, bandwidth, clock, node, dataflow and grid is
#: evaluated directly.
TABLE_MAX_ENTRIES = 1 << 24

#: Hardware fields whose choices index the tables.
_CODED_FIELDS = ("pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "clock_ghz", "grid_rows", "grid_cols")


@dataclass
class LayerCosts:
    """Per-layer results ``[P, L]`` of one execution of every layer."""

    compute_cycles: torch.Tensor
    total_cycles: torch.Tensor
    dram_bytes: torch.Tensor
    energy_j: torch.Tensor  # dynamic energy of the layer, without NoC transfers between layers

    @property
    def stall_cycles(self) -> torch.Tensor:
        return self.total_cycles - self.compute_cycles


@dataclass
class Evaluation:
    """Metrics ``[P]`` by name and, when asked for, the per-layer schedule ``[P, L]``."""

    metrics: dict[str, torch.Tensor]
    layers: dict[str, torch.Tensor] | None = None


class AnalyticalModel:
    """Batched analytical latency / energy / area / cost model of a design space.

    Args:
        space: the design space (its workload is lowered once, here).
        device: where tensors live (``"cpu"``, ``"cuda"``, ...).
        dtype: floating dtype; float64 (default) keeps cycle counts exact.
    """

    name = "analytical"
    provides = ("latency_s", "energy_j", "area_mm2", "cost_usd", "power_w")

    def __init__(self, space: DesignSpace, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.space = space
        self.device = torch.device(device)
        self.dtype = dtype
        self.lw = space.lowered.to(self.device, dtype)
        # Convolution geometry the stall model needs (output columns; kernel taller than stride).
        layers = [space.workload.nodes[name]["layer"] for name in self.lw.names]
        self.out_cols = torch.tensor([float(layer.Q) for layer in layers], dtype=dtype, device=self.device)
        self.overlap = torch.tensor([layer.op == "conv" and layer.R > layer.stride for layer in layers], device=self.device)
        self.stride = torch.tensor([float(layer.stride) for layer in layers], dtype=dtype, device=self.device)
        hw = space.design.hardware
        self.split = hw.sram_split
        self.n_ports = hw.dram_ports
        self.hop_cycles = float(hw.noc_hop_cycles)
        self.dram_kind = hw.dram_kind
        self.n_slots = hw.max_cores
        self.precision = int(self.lw.precision_bytes.max().item())
        # One word size for all layers (the usual case) keeps the stall model's buffer terms [P, 1].
        uniform = bool((self.lw.precision_bytes == self.precision).all())
        self.word_bytes = float(self.precision) if uniform else self.lw.precision_bytes
        self.nodes = [TECH_NODES[name] for name in space.node_names]
        table = lambda f: torch.tensor([f(n) for n in self.nodes], dtype=dtype, device=self.device)  # noqa: E731
        self.e_mac = table(lambda n: n.mac_energy_pj[self.precision] * PJ)
        self.e_reg = table(lambda n: n.reg_energy_pj_per_byte * PJ)
        self.e_hop = table(lambda n: n.noc_hop_energy_pj_per_byte * PJ)
        self.e_dram = table(lambda n: n.dram_energy_pj_per_byte[self.dram_kind] * PJ)
        # Real predecessors of each layer, read once here (not per call: no host sync on cuda).
        lowered = space.lowered
        self.pred_lists = [[p for p, real in zip(preds, mask) if real]
                           for preds, mask in zip(lowered.preds.tolist(), lowered.pred_mask.tolist())]
        # The tabulated path (built on first use): each coded field's choices, sorted for look-ups,
        # its column in a row (None when fixed) and its number of choices.
        self._tables: dict | bool | None = None
        self._n_choices = {name: len(getattr(hw, name)) for name in _CODED_FIELDS}
        self._hw_cols = {name: next((i for i, k in enumerate(space.knobs) if k.name == f"hw.{name}"), None) for name in _CODED_FIELDS}
        self._sorted_choices = {}
        for name in _CODED_FIELDS:
            choices = torch.tensor(getattr(hw, name), dtype=torch.long if name.startswith("grid") else dtype, device=self.device)
            self._sorted_choices[name] = torch.sort(choices)
        self._scratch_local = threading.local()
        self._layer_index = torch.arange(len(self.lw.names), dtype=torch.int32, device=self.device)[:, None]
        self._layer_lane = self._layer_index.view(1, -1)
        self._choice_values = {name: choices.values[torch.argsort(choices.indices)] for name, choices in self._sorted_choices.items()}
        # The edges between layers as a list (the padded [L, J] form without its padding): source
        # and destination layer and bytes of each, and each layer's (source, edge) pairs.
        edges = [(p, l) for l, preds in enumerate(self.pred_lists) for p in preds]
        self._edge_src = torch.tensor([e[0] for e in edges], dtype=torch.long, device=self.device)
        self._edge_dst = torch.tensor([e[1] for e in edges], dtype=torch.long, device=self.device)
        self._edge_bytes = lowered.pred_bytes[lowered.pred_mask].to(device=self.device, dtype=dtype)
        self._edge_offset = (torch.arange(len(edges), dtype=torch.int32, device=self.device) * self.n_slots**2)[:, None]
        self.in_edges, e = [], 0
        for preds in self.pred_lists:
            self.in_edges.append([(p, e + j) for j, p in enumerate(preds)])
            e += len(preds)
        self._node_col = next((i for i, k in enumerate(space.knobs) if k.name == "hw.node"), None)
        self._row_decoding = self._row_decoding_tables()

    def _row_decoding_tables(self) -> dict:
        """What :meth:`evaluate_rows` needs to read the schedule from a row, as :meth:`DesignSpace.decode` does."""
        space, dev = self.space, self.device
        sched = space.design.schedule
        codes = [DATAFLOWS.index(d) for d in sched.dataflow]
        S = self.n_slots
        grids = [(r, c) for r in space.design.hardware.grid_rows for c in space.design.hardware.grid_cols]
        out = {
            "dataflow_cols": None if space.dataflow_col[0] < 0 else torch.tensor(space.dataflow_col, device=dev),
            "dataflow_codes": None if codes == list(range(len(codes))) and space.dataflow_col[0] >= 0
            else torch.tensor(codes, dtype=torch.int32, device=dev),
            "core_cols": None, "slot_mod": None, "round_robin": None,
            "mode_col": next((i for i, k in enumerate(space.knobs) if k.name == "sched.mode"), None),
            "pipelined": torch.tensor([m == "pipelined" for m in sched.mode], device=dev),
        }
        span = lambda cols: slice(cols[0], cols[-1] + 1) if cols == list(range(cols[0], cols[0] + len(cols))) else None  # noqa: E731
        out["dataflow_span"] = span(space.dataflow_col)
        out["core_span"] = span(space.core_col)
        if sched.mapping == "search" and space.core_col[0] >= 0:
            out["core_cols"] = torch.tensor(space.core_col, device=dev)
            out["slot_mod"] = torch.tensor([[slot % (r * c) for slot in range(S)] for r, c in grids], dtype=torch.int32, device=dev).reshape(-1)
        elif sched.mapping == "round_robin":
            L = len(self.lw.names)
            out["round_robin"] = torch.tensor([[layer % (r * c) for layer in range(L)] for r, c in grids], dtype=torch.int32, device=dev)
        return out

    # --- the per-layer cost model, on any broadcast shape ----------------------------------------
    #
    # The helpers below take the array (``H``, ``W``), SRAM and dataflow as tensors that broadcast
    # against the layer vectors ``[L]``: ``[P, 1]``/``[P, L]`` per candidate (the direct path), or a
    # grid of every choice of the design (the tables, see :meth:`_build_tables`). Elementwise
    # arithmetic does not depend on the shape, so a table entry is bit-identical to what the direct
    # path computes for the same values.

    def _kind_inputs(self, kind: str) -> dict:
        """GEMM rows, groups and operand bytes of each layer: the whole batch, or one sample."""
        lw = self.lw
        if kind == "batch":
            return dict(m=lw.gemm_m, groups=lw.groups, ifmap_bytes=lw.ifmap_bytes, ofmap_bytes=lw.ofmap_bytes,
                        filter_bytes=lw.filter_bytes)
        B = lw.batch
        return dict(m=lw.gemm_m1, groups=lw.groups1, ifmap_bytes=lw.ifmap_bytes / B, ofmap_bytes=lw.ofmap_bytes / B,
                    filter_bytes=torch.where(lw.has_weights, lw.filter_bytes, lw.filter_bytes / B))

    def _traffic(self, H, W, sram_kib, df, *, m, groups, ifmap_bytes, ofmap_bytes, filter_bytes, filter_resident=None) -> dict:
        """Compute cycles, SRAM capacities, DRAM bytes per operand and which operands cross the DRAM interface."""
        lw = self.lw
        n, k, prec = lw.gemm_n, lw.gemm_k, lw.precision_bytes
        compute = groups * compute_cycles(m, n, k, H, W, df)
        sram_bytes = sram_kib * 1024.0
        # Double buffering: half of each partition holds the tile in use, half the next.
        cap_i, cap_f, cap_o = (sram_bytes * s / 2 for s in self.split)
        fi, ff, fo = refetch_factors(
            m, n, k, H, W, df,
            ifmap_bytes=ifmap_bytes / groups,
            filter_bytes=filter_bytes / groups,
            psum_tile_bytes_ws=m * torch.minimum(W, n) * prec,
            psum_tile_bytes_is=torch.minimum(W, m) * n * prec,
            ifmap_cap=cap_i, filter_cap=cap_f, ofmap_cap=cap_o,
        )
        ifmap_moved = lw.is_source | (ifmap_bytes > cap_i)
        filter_moved = lw.has_weights | (filter_bytes > cap_f)
        ofmap_moved = lw.is_sink | (ofmap_bytes > cap_o)
        ifmap_dram = torch.where(ifmap_moved, ifmap_bytes * fi, 0.0)
        filter_dram = torch.where(filter_moved, filter_bytes * ff, 0.0)
        if filter_resident is not None:  # weights kept in SRAM across a pipelined batch
            filter_dram = torch.where(filter_resident & lw.has_weights, filter_dram / lw.batch, filter_dram)
            # loaded once for the whole batch: no stall per sample
            filter_moved = filter_moved & ~(filter_resident & lw.has_weights)
        ofmap_dram = torch.where(ofmap_moved, ofmap_bytes * fo, 0.0)
        return dict(compute=compute, caps=(cap_i, cap_f, cap_o), fills=(ifmap_dram, filter_dram, ofmap_dram),
                    dram=ifmap_dram + filter_dram + ofmap_dram, moved=(ifmap_moved, filter_moved, ofmap_moved))

    def _terms(self, H, W, sram_kib, df, m) -> tuple:
        """:func:`stall_terms` of every layer (they do not depend on bandwidth or clock)."""
        lw = self.lw
        words = sram_kib * 1024.0 / lw.precision_bytes
        return stall_terms(m, lw.gemm_n, lw.gemm_k, H, W, df, ifmap_words=words * self.split[0],
                           filter_words=words * self.split[1], out_cols=self.out_cols, overlap=self.overlap,
                           stride=self.stride)

    def _total_cycles(self, t: dict, H, W, df, *, m, groups, bytes_per_cycle, terms) -> torch.Tensor:
        """Cycles with memory stalls: SCALE-Sim's memory system, one DRAM channel of this bandwidth
        per operand, for the operands that cross the DRAM interface (docs/model.md, "Memory traffic
        and stalls")."""
        lw = self.lw
        cap_i, cap_f, cap_o = t["caps"]
        moved_i, moved_f, moved_o = t["moved"]
        per_gemm = stall_bound_cycles(
            m, lw.gemm_n, lw.gemm_k, H, W, df, compute=t["compute"] / groups,
            ifmap_words=2 * cap_i / self.word_bytes, filter_words=2 * cap_f / self.word_bytes,
            ofmap_words=2 * cap_o / self.word_bytes, bw_words=bytes_per_cycle / self.word_bytes,
            ifmap_from_dram=moved_i, filter_from_dram=moved_f, ofmap_to_dram=moved_o, terms=terms,
        )
        return groups * per_gemm

    def _core_energy(self, t: dict, H, W, df, *, m, groups, e_sram, e_mac, e_reg) -> torch.Tensor:
        """Energy of the MACs, their register traffic and the SRAM (array reads/writes + DRAM fills).

        ``e_sram(share)`` gives J per byte of the SRAM partition holding ``share`` of the SRAM."""
        lw = self.lw
        n, k, prec = lw.gemm_n, lw.gemm_k, lw.precision_bytes
        macs = groups * m * n * k
        si, sf, so = sram_accesses(m, n, k, H, W, df)
        sram_energy = 0.0
        for words, fill, share in zip((si, sf, so), t["fills"], self.split):
            sram_energy = sram_energy + (groups * words * prec + fill) * e_sram(share)
        return macs * (e_mac + 3 * prec * e_reg) + sram_energy

    # --- the direct path: every candidate computed from its values (differentiable) -----------------
    def _per_node(self, node: torch.Tensor, fn) -> torch.Tensor:
        """``fn(tech_node)`` for each candidate's node (a handful of nodes, not candidates)."""
        out = fn(self.nodes[0])
        for i, tech in enumerate(self.nodes[1:], start=1):
            out = torch.where(node == i, fn(tech), out)
        return out

    def _layer_costs(self, c: Candidates, *, m, groups, ifmap_bytes, ofmap_bytes, filter_bytes, filter_resident=None,
                     dataflow_weights: torch.Tensor | None = None) -> LayerCosts:
        """Costs ``[P, L]`` of running each layer once, for GEMMs of ``m`` rows ×``groups``.

        With ``dataflow_weights`` (``[P, L, 3]``) every cost is the weighted sum of the layer's
        costs under the three dataflows (``c.dataflow`` is ignored)."""
        inputs = dict(m=m, groups=groups, ifmap_bytes=ifmap_bytes, ofmap_bytes=ofmap_bytes, filter_bytes=filter_bytes,
                      filter_resident=filter_resident)
        if dataflow_weights is None:
            return self._layer_costs_one(c, **inputs)
        mixed = None
        for d in range(3):
            one = self._layer_costs_one(replace(c, dataflow=torch.full_like(c.core, d)), **inputs)
            w = dataflow_weights[..., d].to(self.dtype)
            parts = [w * x for x in (one.compute_cycles, one.total_cycles, one.dram_bytes, one.energy_j)]
            mixed = parts if mixed is None else [a + b for a, b in zip(mixed, parts)]
        return LayerCosts(*mixed)

    def _layer_costs_one(self, c: Candidates, *, m, groups, ifmap_bytes, ofmap_bytes, filter_bytes,
                         filter_resident=None) -> LayerCosts:
        H, W, sram = c.pe_rows[:, None], c.pe_cols[:, None], c.sram_kib[:, None]
        df = c.dataflow
        t = self._traffic(H, W, sram, df, m=m, groups=groups, ifmap_bytes=ifmap_bytes, ofmap_bytes=ofmap_bytes,
                          filter_bytes=filter_bytes, filter_resident=filter_resident)
        bytes_per_cycle = (torch.minimum(c.dram_gbps, c.noc_link_gbps) / c.clock_ghz)[:, None]
        total = self._total_cycles(t, H, W, df, m=m, groups=groups, bytes_per_cycle=bytes_per_cycle,
                                   terms=self._terms(H, W, sram, df, m))
        node = c.node[:, None]
        e_sram = lambda share: self._per_node(node, lambda tech: hwcost.sram_energy_pj_per_byte(tech, sram * share)) * PJ  # noqa: E731
        hops = dram_hops(c.core, c.grid_rows[:, None], c.grid_cols[:, None], self.n_ports).to(self.dtype)
        energy = (
            self._core_energy(t, H, W, df, m=m, groups=groups, e_sram=e_sram, e_mac=self.e_mac[node], e_reg=self.e_reg[node])
            + t["dram"] * (self.e_dram[node] + hops * self.e_hop[node])
        )
        return LayerCosts(compute_cycles=t["compute"], total_cycles=total, dram_bytes=t["dram"], energy_j=energy)

    def _transfers(self, c: Candidates, scale: float = 1.0):
        """NoC time ``[P, L, J]`` and byte-hops ``[P]`` of the edges between layers."""
        lw = self.lw
        producer_core = c.core[:, lw.preds]  # [P, L, J]
        consumer_core = c.core[:, :, None]
        hops = core_hops(producer_core, consumer_core, c.grid_cols[:, None, None]).to(self.dtype)
        hops = torch.where(lw.pred_mask, hops, 0.0)
        link_bytes_per_cycle = (c.noc_link_gbps / c.clock_ghz)[:, None, None]
        edge_bytes = lw.pred_bytes * scale
        cycles = torch.where(hops > 0, edge_bytes / link_bytes_per_cycle + hops * self.hop_cycles, 0.0)
        return cycles, (edge_bytes * hops).sum(dim=(1, 2))

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
        evaluated from per-layer tables built once per model (:meth:`_build_tables`); anything
        else — values off the design's choices, or hardware fields that require grad — is
        computed directly, and gradients flow through it.
        """
        if dataflow_weights is None and self._use_tables():
            coded = self._codes_from_rows(c, rows) if rows is not None else self._codes_from_values(c)
            if coded is not None:
                return self._evaluate_tabulated(coded, detail)
        return self._evaluate_direct(c, detail, dataflow_weights)

    def _evaluate_direct(self, c: Candidates, detail: bool, dataflow_weights: torch.Tensor | None) -> Evaluation:
        lw = self.lw
        node = c.node
        dram_bytes_per_cycle = c.dram_gbps / c.clock_ghz
        if dataflow_weights is not None and dataflow_weights.shape != (*c.core.shape, 3):
            raise ValueError(f"dataflow_weights must have shape {(*c.core.shape, 3)} ([P, L, 3]), got {tuple(dataflow_weights.shape)}")

        # Layer by layer: every layer processes the whole batch.
        costs = self._layer_costs(c, **self._kind_inputs("batch"), dataflow_weights=dataflow_weights)
        transfer, byte_hops = self._transfers(c)
        start, finish = list_schedule(costs.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, self.n_slots,
                                      pred_lists=self.pred_lists)
        total_dram = costs.dram_bytes.sum(dim=1)
        cycles = torch.maximum(finish.amax(dim=1), total_dram / dram_bytes_per_cycle)
        dyn_energy = costs.energy_j.sum(dim=1) + byte_hops * self.e_hop[node]

        if lw.batch > 1 and bool(c.pipelined.any()):
            pipe_cycles, pipe_energy = self._pipelined(c, dram_bytes_per_cycle, dataflow_weights)
            cycles = torch.where(c.pipelined, pipe_cycles, cycles)
            dyn_energy = torch.where(c.pipelined, pipe_energy, dyn_energy)

        latency = cycles / (c.clock_ghz * GB)
        area = self._per_node(node, lambda t: hwcost.area_mm2(
            t, pe_rows=c.pe_rows, pe_cols=c.pe_cols, sram_kib=c.sram_kib, n_cores=c.n_cores.to(self.dtype),
            n_dram_ports=torch.full_like(c.pe_rows, float(self.n_ports)), precision_bytes=self.precision, dram_kind=self.dram_kind))
        die_cost = self._per_node(node, lambda t: hwcost.die_cost_usd(area, t))
        static_w = self._per_node(node, lambda t: hwcost.static_power_w(area, t))
        layers = None
        if detail:
            layers = self._detail(c.clock_ghz, costs.compute_cycles, costs.total_cycles, costs.dram_bytes, start, finish)
        return Evaluation(metrics=self._metrics(latency, dyn_energy, area, die_cost, static_w), layers=layers)

    @staticmethod
    def _metrics(latency, dyn_energy, area, die_cost, static_w) -> dict[str, torch.Tensor]:
        energy = dyn_energy + static_w * latency
        return {
            "latency_s": latency,
            "energy_j": energy,
            "area_mm2": area,
            "cost_usd": die_cost,
            "power_w": energy / latency,
        }

    @staticmethod
    def _detail(clock_ghz, compute, total, dram, start, finish) -> dict[str, torch.Tensor]:
        clock = (clock_ghz * GB)[:, None]
        return {
            "compute_cycles": compute,
            "stall_cycles": total - compute,
            "total_cycles": total,
            "dram_bytes": dram,
            "start_s": start / clock,
            "end_s": finish / clock,
        }

    def _pipelined(self, c: Candidates, dram_bytes_per_cycle: torch.Tensor, dataflow_weights: torch.Tensor | None = None):
        """Cycles and dynamic energy ``[P]`` of the batch pipelined sample by sample across cores."""
        lw = self.lw
        B = lw.batch
        # Weights stay in SRAM across the batch when all weights mapped to a core fit its filter partition.
        weights = torch.where(lw.has_weights, lw.filter_bytes, 0.0).expand_as(c.core)
        per_core = torch.zeros(len(c), self.n_slots, dtype=self.dtype, device=self.device).scatter_add_(1, c.core, weights)
        resident = per_core.gather(1, c.core) <= (c.sram_kib[:, None] * 1024.0 * self.split[1])
        one = self._layer_costs(c, **self._kind_inputs("sample"), filter_resident=resident, dataflow_weights=dataflow_weights)
        transfer, byte_hops = self._transfers(c, scale=1.0 / B)
        _, finish = list_schedule(one.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, self.n_slots,
                                  pred_lists=self.pred_lists)
        busy = torch.zeros(len(c), self.n_slots, dtype=one.total_cycles.dtype, device=self.device).scatter_add_(1, c.core, one.total_cycles)
        bottleneck = torch.maximum(busy.amax(dim=1), one.dram_bytes.sum(dim=1) / dram_bytes_per_cycle)
        cycles = finish.amax(dim=1) + (B - 1) * bottleneck
        energy = B * (one.energy_j.sum(dim=1) + byte_hops * self.e_hop[c.node])
        return cycles, energy

    # --- the tabulated path --------------------------------------------------------------------------
    #
    # A layer's compute cycles, DRAM bytes, stalls and energy depend on the candidate only through
    # its array, SRAM, dataflow, bandwidth/clock and node (and, pipelined, on whether its weights
    # stay resident): a few hundred combinations per layer in a design, against thousands of
    # candidates per call. They are computed once per model for every combination of the design's
    # choices (with the direct path's own functions, so each entry is bit-identical to the direct
    # computation) and gathered with one integer index per candidate and layer; so are area and
    # cost (per array, SRAM, grid and node) and the hop counts (per grid and cores). What is left
    # per candidate is the gathers, the NoC transfer times, the list schedule and a few [P] ops.
    # The tabulated path works in a layer-major layout ([L, P]), which the list schedule steps through.

    def _use_tables(self) -> bool:
        if self._tables is None:
            self._tables = self._build_tables()
        return self._tables is not False

    def _build_tables(self) -> dict | bool:
        """Every table of the design's choices, or ``False`` when they would be too big (direct path)."""
        hw = self.space.design.hardware
        dt, dev = self.dtype, self.device
        values = lambda name: torch.tensor(getattr(hw, name), dtype=dt, device=dev)  # noqa: E731
        H, W, sram = (x.reshape(-1) for x in torch.meshgrid(values("pe_rows"), values("pe_cols"), values("sram_kib"), indexing="ij"))
        dram, noc, clock = torch.meshgrid(values("dram_gbps"), values("noc_link_gbps"), values("clock_ghz"), indexing="ij")
        # The stall model sees bandwidth and clock only through bytes per cycle: one table entry per distinct value.
        bw_values, bw_code = torch.unique((torch.minimum(dram, noc) / clock).reshape(-1), return_inverse=True)
        U, Bw, N, L = H.numel(), bw_values.numel(), len(self.nodes), len(self.lw.names)
        kinds = ["batch"]
        if self.lw.batch > 1 and "pipelined" in self.space.design.schedule.mode:
            kinds.append("sample")
        grows = torch.tensor(hw.grid_rows, dtype=torch.long, device=dev)
        gcols = torch.tensor(hw.grid_cols, dtype=torch.long, device=dev)
        gr, gc = (x.reshape(-1) for x in torch.meshgrid(grows, gcols, indexing="ij"))
        # Entries of the per-layer tables (total and compute cycles; DRAM bytes and energy, complex)
        # and of the edge table (complex), all kinds: within int32 indexing and a bounded memory.
        R = {"batch": 1, "sample": 2}
        entries = sum(3 * L * R[kind] * U * (Bw + 1 + 2 * N) + 2 * gr.numel() * len(self._edge_src) * self.n_slots**2 for kind in kinds)
        if entries > TABLE_MAX_ENTRIES:
            return False
        tables = {"U": U, "Bw": Bw, "G": gr.numel(), "bw_code": bw_code}
        with torch.no_grad():
            for kind in kinds:
                tables[kind] = self._kind_table(kind, H, W, sram, bw_values)
            # Hops per grid: DRAM port of each core [G, S], between cores [G, S, S].
            S = self.n_slots
            core = torch.arange(S, device=dev)
            tables["dram_hops"] = dram_hops(core[None, :], gr[:, None], gc[:, None], self.n_ports).to(dt).reshape(-1)
            hops = core_hops(core[None, :, None], core[None, None, :], gc[:, None, None]).to(dt)  # [G, S, S]
            E = len(self._edge_src)
            for kind in kinds:
                # Per (grid, edge, producer, consumer) [G, E, S, S]: the edge's bytes where it crosses the
                # NoC, zero where producer and consumer share a core (bytes / link + hops × latency is then
                # the direct path's where(hops > 0, …, 0) exactly), and the hops; real and imaginary parts.
                scaled = self._edge_bytes * (1.0 if kind == "batch" else 1.0 / self.lw.batch)
                moved = torch.where(hops[:, None] > 0, scaled[None, :, None, None], 0.0)
                tables[kind]["edge"] = torch.complex(moved, hops[:, None].expand_as(moved)).reshape(-1)
            # Area, die cost and static power per (array, SRAM, grid, node): [U·G·N, 3].
            n_cores = (gr * gc).to(dt)[None, :]
            cols = []
            for tech in self.nodes:
                area = hwcost.area_mm2(tech, pe_rows=H[:, None], pe_cols=W[:, None], sram_kib=sram[:, None], n_cores=n_cores,
                                       n_dram_ports=torch.full_like(n_cores, float(self.n_ports)), precision_bytes=self.precision,
                                       dram_kind=self.dram_kind)
                cols.append(torch.stack([area, hwcost.die_cost_usd(area, tech), hwcost.static_power_w(area, tech)], dim=-1))
            tables["area"] = torch.stack(cols, dim=2).reshape(-1, 3)  # [U, G, N, 3]
        return tables

    def _kind_table(self, kind: str, H, W, sram, bw_values) -> dict:
        """Per-layer tables of one kind of run (``batch``: the whole batch; ``sample``: one sample,
        with and without resident weights), over (layer ``L``, dataflow 3, residency ``R``,
        array+SRAM ``U``, then bandwidth ``Bw`` or node ``N``), flattened in that order."""
        inputs = self._kind_inputs(kind)
        m, groups = inputs["m"], inputs["groups"]
        U, Bw, N, L = H.numel(), bw_values.numel(), len(self.nodes), len(self.lw.names)
        R = 2 if kind == "sample" else 1
        Hu, Wu, Su = (x.view(U, 1, 1, 1, 1) for x in (H, W, sram))
        df = torch.arange(3, device=self.device).view(1, 1, 3, 1, 1)
        resident = torch.tensor([False, True], device=self.device).view(1, 1, 1, 2, 1) if R == 2 else None
        t = self._traffic(Hu, Wu, Su, df, **inputs, filter_resident=resident)
        total = self._total_cycles(t, Hu, Wu, df, m=m, groups=groups, bytes_per_cycle=bw_values.view(1, Bw, 1, 1, 1),
                                   terms=self._terms(Hu, Wu, Su, df, m))
        energy = []
        for i, tech in enumerate(self.nodes):
            e_sram = lambda share, tech=tech: hwcost.sram_energy_pj_per_byte(tech, Su * share) * PJ  # noqa: E731
            core_energy = self._core_energy(t, Hu, Wu, df, m=m, groups=groups, e_sram=e_sram, e_mac=self.e_mac[i], e_reg=self.e_reg[i])
            energy.append(core_energy + t["dram"] * self.e_dram[i])
        # "total" and "compute" layer-major [L, 3, R, U, n], gathered into [L, P]: the gathers of one
        # layer (one row of the index) all fall in one slice of a few to tens of KB, which stays in
        # cache. DRAM bytes and energy candidate-major [U, n, L, 3, R], gathered into [P, L]: one
        # candidate's layers lie together.
        full = lambda x, n: torch.broadcast_to(x, (U, n, 3, R, L)).permute(4, 2, 3, 0, 1).reshape(-1)  # noqa: E731
        by_key = lambda x: torch.broadcast_to(x, (U, N, 3, R, L)).permute(0, 1, 4, 2, 3).reshape(-1)  # noqa: E731
        return {
            "R": R,
            "total": full(total, Bw),
            "compute": full(t["compute"], 1),
            # DRAM bytes and the energy without the hops to DRAM, by node, as the real and imaginary
            # parts of one complex table: one gather fetches both (and one sum adds both up).
            "dram_energy": torch.complex(by_key(t["dram"]), by_key(torch.cat([torch.broadcast_to(e, (U, 1, 3, R, L)) for e in energy], dim=1))),
        }

    def _codes_from_rows(self, c: Candidates, rows: torch.Tensor) -> _Coded | None:
        """Table codes of candidates decoded from ``rows``: the hardware knobs' columns are the codes
        (``None`` when a hardware field requires grad)."""
        if any(getattr(c, name).requires_grad for name in _CODED_FIELDS):
            return None
        rows = rows.to(device=self.device, dtype=torch.long)
        zero = torch.zeros(rows.shape[0], dtype=torch.long, device=self.device)
        code = {name: zero if col is None else rows[:, col] for name, col in self._hw_cols.items()}
        return self._coded(code, c.node, c.dataflow, c.core, c.pipelined, c)

    def _codes_from_values(self, c: Candidates) -> _Coded | None:
        """Table codes of ``c``'s hardware values, or ``None`` when one is off the design's choices or requires grad."""
        code, ok = {}, None
        for name, (sorted_values, order) in self._sorted_choices.items():
            value = getattr(c, name)
            if value.requires_grad or value.dtype != sorted_values.dtype or value.dim() != 1:
                return None
            pos = torch.searchsorted(sorted_values, value.contiguous()).clamp_(max=len(sorted_values) - 1)
            hit = sorted_values[pos] == value
            ok = hit if ok is None else ok & hit
            code[name] = order[pos]
        if c.core.dim() != 2 or c.dataflow.shape != c.core.shape:
            return None
        ok = ok & (c.node >= 0) & (c.node < len(self.nodes))
        if not bool(ok.all()):  # one host sync per call on cuda
            return None
        return self._coded(code, c.node, c.dataflow, c.core, c.pipelined, c)

    def _coded(self, code: dict, node, dataflow_pl, core_pl, pipelined, values, dataflow_lp=None, core_lp=None) -> _Coded:
        """The coded population; the schedule is given candidate-major ``[P, L]`` (any strides) and,
        when the caller has it, layer-major ``[L, P]`` (contiguous int32)."""
        T = self._tables
        n = self._n_choices
        hw_code = (code["pe_rows"] * n["pe_cols"] + code["pe_cols"]) * n["sram_kib"] + code["sram_kib"]
        bw = T["bw_code"].index_select(0, (code["dram_gbps"] * n["noc_link_gbps"] + code["noc_link_gbps"]) * n["clock_ghz"] + code["clock_ghz"])
        grid = code["grid_rows"] * n["grid_cols"] + code["grid_cols"]
        get = (lambda name: getattr(values, name)) if values is not None else (lambda name: self._choice_values[name].index_select(0, code[name]))  # noqa: E731
        dataflow_pl, core_pl = dataflow_pl.to(torch.int32), core_pl.to(torch.int32)
        core = core_pl.t().contiguous() if core_lp is None else core_lp
        core_long = self._scratch("core_long", tuple(core.shape), torch.long).copy_(core)
        return _Coded(hw=hw_code.to(torch.int32), bw=bw.to(torch.int32), grid=grid.to(torch.int32), node=node.to(torch.long),
                      dataflow=dataflow_pl.t().contiguous() if dataflow_lp is None else dataflow_lp, core=core, core_long=core_long,
                      dataflow_pl=dataflow_pl, core_pl=core_pl, pipelined=pipelined,
                      sram_kib=get("sram_kib"), dram_gbps=get("dram_gbps"), noc_link_gbps=get("noc_link_gbps"), clock_ghz=get("clock_ghz"))

    def evaluate_rows(self, rows: torch.Tensor, *, detail: bool = False) -> Evaluation:
        """Every metric for the integer rows ``[P, D]`` of the design space (``DesignSpace.encode``).

        The same as ``evaluate(space.decode(rows), rows=rows)``, but the tabulated path reads the
        rows itself (knob codes index the tables; dataflow and core columns are gathered layer-major)
        and builds no :class:`Candidates`. Rows must hold codes within the knobs' ranges."""
        if not self._use_tables():
            return self.evaluate(self.space.decode(rows.to(self.device), dtype=self.dtype), detail=detail)
        P, D = rows.shape
        L = len(self.lw.names)
        buf = self._scratch
        # The rows as int32, candidate-major [P, D] and layer-major [D, P] (converted first, then
        # transposed: a transposing copy that also converts is twice as slow): per-layer columns are
        # read from both, for the two layouts the tabulated path uses.
        rows32 = buf("rows", (P, D), torch.int32).copy_(rows)
        columns = buf("columns", (D, P), torch.int32).copy_(rows32.t())
        zero = torch.zeros(P, dtype=torch.int32, device=self.device)
        code = {name: zero if col is None else columns[col] for name, col in self._hw_cols.items()}
        node = zero if self._node_col is None else columns[self._node_col]
        d = self._row_decoding
        grid = code["grid_rows"] * self._n_choices["grid_cols"] + code["grid_cols"]

        def per_layer(cols, span, name):  # [P, L] (a view when the columns are consecutive) and [L, P]
            pl = rows32[:, span] if span is not None else rows32.index_select(1, cols)
            return pl, torch.index_select(columns, 0, cols, out=buf(name, (L, P), torch.int32))

        if d["dataflow_cols"] is None:
            dataflow_pl = d["dataflow_codes"][0].expand(P, L)
            dataflow = dataflow_pl.t()
        else:
            dataflow_pl, dataflow = per_layer(d["dataflow_cols"], d["dataflow_span"], "dataflow")
            if d["dataflow_codes"] is not None:  # the knob's choices are not (ws, os, is) in that order
                dataflow_pl, dataflow = d["dataflow_codes"][dataflow_pl.long()], d["dataflow_codes"][dataflow.long()]
        if d["core_cols"] is not None:
            core_pl, core = per_layer(d["core_cols"], d["core_span"], "core")
            if self._tables["G"] > 1:  # slot mod the candidate's core count, as DesignSpace.decode does
                core_pl = d["slot_mod"].index_select(0, (grid[:, None] * self.n_slots + core_pl).view(-1)).view(P, L)
                core = None
            # (a fixed grid has max_cores cores: the slot is the core)
        elif d["round_robin"] is not None:
            core_pl, core = d["round_robin"].index_select(0, grid), None
        else:
            core_pl, core = zero[:, None].expand(P, L), None
        pipelined = d["pipelined"][0].expand(P) if d["mode_col"] is None else d["pipelined"].index_select(0, columns[d["mode_col"]])
        coded = self._coded(code, node, dataflow_pl, core_pl, pipelined, None, dataflow_lp=dataflow.to(torch.int32).contiguous(), core_lp=core)
        return self._evaluate_tabulated(coded, detail)

    def _scratch(self, tag: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A scratch tensor kept for the next call (per thread): the tabulated path's ``[L, P]``
        temporaries are written into these with ``out=`` rather than allocated per call. A fresh
        allocation of a few MB costs page faults on every call once the allocator has given the
        memory back to the system (glibc does, for blocks this size): measured here, that doubled
        the time of a call at P = 4,096."""
        store = getattr(self._scratch_local, "store", None)
        if store is None:
            store = self._scratch_local.store = {}
        key = (tag, shape, dtype)
        out = store.get(key)
        if out is None:
            if len(store) > 64:  # population sizes come and go: keep a few sizes' buffers only
                store.clear()
            out = store[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return out

    def _fresh(self, tag: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A new tensor: for the results a caller keeps (``detail``)."""
        return torch.empty(shape, dtype=dtype, device=self.device)

    def _tabulated_costs(self, table: dict, k: _Coded, resident: torch.Tensor | None, detail: bool, kind: str = "batch"):
        """Layer costs gathered from a kind table: ``total`` ``[L, P]`` (for the list schedule), ``dram``
        ``[P, L]``, the sums over layers ``dram_sum``, ``energy_sum`` ``[P]``, and ``compute`` ``[L, P]``
        when ``detail``.

        Sums over layers run along the contiguous last dimension of ``[P, L]`` tensors, as the direct
        path's do: their order of summation is then the same whatever ``P``, so a candidate gets the
        same bits alone as in a population."""
        T = self._tables
        L, P = k.core.shape
        R = table["R"]
        buf, keep = self._scratch, (self._fresh if detail else self._scratch)
        # Index arithmetic in int32 (the tables are far smaller than 2³¹): faster than int64.
        # "total"/"compute", layer-major: entry ((l·3 + dataflow)·R + resident)·K + key of K keys.
        part = torch.add(k.dataflow, self._layer_index * 3, out=buf("part", (L, P), torch.int32))
        if R > 1:
            part.mul_(R).add_(resident.to(torch.int32))
        index = buf("index", (L, P), torch.int32)

        def gather(values, keys, n_keys, out):
            torch.mul(part, n_keys, out=index).add_(keys[None, :])
            return torch.index_select(values, 0, index.view(-1), out=out.view(-1)).view(L, P)

        total = gather(table["total"], k.hw * T["Bw"] + k.bw, T["U"] * T["Bw"], keep(f"{kind}.total", (L, P), self.dtype))
        compute = gather(table["compute"], k.hw, T["U"], self._fresh("compute", (L, P), self.dtype)) if detail else None
        # "dram_energy", candidate-major [P, L]: entry ((key·L + l)·3 + dataflow)·R + resident.
        rows = buf("index_pl", (P, L), torch.int32)
        torch.add(k.dataflow_pl, self._layer_lane * 3, out=rows)
        if R > 1:
            rows.mul_(R).add_(resident.t().to(torch.int32))
        rows.add_(((k.hw * len(self.nodes) + k.node.to(torch.int32)) * (L * 3 * R))[:, None])
        both = torch.index_select(table["dram_energy"], 0, rows.view(-1), out=buf("dram_energy", (P * L,), table["dram_energy"].dtype)).view(P, L)
        sums = both.sum(dim=1)  # DRAM bytes + i·energy
        dram = torch.view_as_real(both)[..., 0]
        hop_index = rows.copy_(k.core_pl) if T["G"] == 1 else torch.add(k.core_pl, (k.grid * self.n_slots)[:, None], out=rows)
        hops = torch.index_select(T["dram_hops"], 0, hop_index.view(-1), out=buf("hops", (P, L), self.dtype).view(-1)).view(P, L)
        # Energy of the DRAM traffic's hops to the ports: Σ_l dram_l · hops_l, times the node's energy per byte-hop.
        energy_sum = sums.imag + hops.mul_(dram).sum(dim=1) * self.e_hop[k.node]
        if detail:
            dram = dram.clone()
        return total, dram, sums.real, energy_sum, compute

    def _tabulated_transfers(self, k: _Coded, kind: str = "batch"):
        """NoC time ``[E, P]`` of each edge between layers and byte-hops ``[P]``, from the hop tables.

        Per (grid, edge, producer core, consumer core) the tables hold the hops and the edge's bytes
        where it crosses the NoC (zero on one core), so the time is bytes / link + hops × router
        latency with no test per candidate."""
        T = self._tables
        L, P = k.core.shape
        S, E = self.n_slots, len(self._edge_src)
        buf = self._scratch
        index = torch.index_select(k.core, 0, self._edge_src, out=buf("edge_index", (E, P), torch.int32)).mul_(S)
        index.add_(torch.index_select(k.core, 0, self._edge_dst, out=buf("edge_other", (E, P), torch.int32))).add_(self._edge_offset)
        if T["G"] > 1:
            index.add_((k.grid * (E * S * S))[None, :])
        index = index.view(-1)
        table = T[kind]["edge"]
        both = torch.view_as_real(torch.index_select(table, 0, index, out=buf("edge", (E * P,), table.dtype)).view(E, P))
        moved, hops = both[..., 0], both[..., 1]
        latency = torch.mul(hops, self.hop_cycles, out=buf("edge_latency", (E, P), self.dtype))
        cycles = torch.div(moved, k.noc_link_gbps / k.clock_ghz, out=buf(f"{kind}.edge_cycles", (E, P), self.dtype)).add_(latency)
        # Σ bytes · hops from the (contiguous) hops × latency: whole numbers, so exact in any order of
        # summation (the same whatever P) and exactly divisible by the latency.
        byte_hops = self._edge_bytes[None, :].mm(latency).view(P) / self.hop_cycles
        if kind != "batch":
            byte_hops = byte_hops * (1.0 / self.lw.batch)
        return cycles, byte_hops

    def _evaluate_tabulated(self, k: _Coded, detail: bool) -> Evaluation:
        T = self._tables
        lw = self.lw
        L, P = k.core.shape
        dram_bytes_per_cycle = k.dram_gbps / k.clock_ghz
        keep = self._fresh if detail else self._scratch

        total, dram, dram_sum, energy_sum, compute = self._tabulated_costs(T["batch"], k, None, detail)
        transfer, byte_hops = self._tabulated_transfers(k)
        schedule = (keep("start", (L, P), self.dtype), keep("finish", (L, P), self.dtype), self._scratch("core_free", (P, self.n_slots), self.dtype),
                    self._scratch("slot", (L, P), torch.int32))
        start, finish = list_schedule_lp(total, k.core_long, transfer, self.in_edges, self.n_slots, out=schedule)
        # The last layer to finish is the last one on some core: the cores' free times hold the answer ([P, cores]).
        cycles = torch.maximum(schedule[2].amax(dim=1), dram_sum / dram_bytes_per_cycle)
        dyn_energy = energy_sum + byte_hops * self.e_hop[k.node]

        # Pipelined candidates: computed for the whole population (no host sync to find them on cuda).
        if "sample" in T and (self.device.type != "cpu" or bool(k.pipelined.any())):
            B = lw.batch
            core = k.core_long
            weights = torch.where(lw.has_weights, lw.filter_bytes, 0.0)[:, None].expand_as(core)
            per_core = torch.zeros(self.n_slots, P, dtype=self.dtype, device=self.device).scatter_add_(0, core, weights)
            resident = per_core.gather(0, core) <= (k.sram_kib * 1024.0 * self.split[1])[None, :]
            one_total, _, one_dram, one_energy, _ = self._tabulated_costs(T["sample"], k, resident, False, "sample")
            one_transfer, one_byte_hops = self._tabulated_transfers(k, "sample")
            one_schedule = (self._scratch("sample.start", (L, P), self.dtype), self._scratch("sample.finish", (L, P), self.dtype), *schedule[2:])
            list_schedule_lp(one_total, core, one_transfer, self.in_edges, self.n_slots, out=one_schedule)
            busy = torch.zeros(self.n_slots, P, dtype=one_total.dtype, device=self.device).scatter_add_(0, core, one_total)
            bottleneck = torch.maximum(busy.amax(dim=0), one_dram / dram_bytes_per_cycle)
            pipe_cycles = one_schedule[2].amax(dim=1) + (B - 1) * bottleneck
            pipe_energy = B * (one_energy + one_byte_hops * self.e_hop[k.node])
            cycles = torch.where(k.pipelined, pipe_cycles, cycles)
            dyn_energy = torch.where(k.pipelined, pipe_energy, dyn_energy)

        latency = cycles / (k.clock_ghz * GB)
        area, die_cost, static_w = T["area"].index_select(0, (k.hw * T["G"] + k.grid) * len(self.nodes) + k.node).unbind(1)
        layers = None
        if detail:
            layers = self._detail(k.clock_ghz, compute.t(), total.t(), dram, start.t(), finish.t())
        return Evaluation(metrics=self._metrics(latency, dyn_energy, area, die_cost, static_w), layers=layers)


@dataclass
class _Coded:
    """A population as the tabulated path sees it: table codes ``[P]`` (array+SRAM ``hw``, bytes per
    cycle ``bw``, ``grid``, ``node``), the schedule layer-major ``[L, P]``,
    and the values it still needs ``[P]``."""

    hw: torch.Tensor
    bw: torch.Tensor
    grid: torch.Tensor
    node: torch.Tensor
    dataflow: torch.Tensor
    core: torch.Tensor  # int32, for index arithmetic
    core_long: torch.Tensor  # the same, long, for the list schedule's gather/scatter
    dataflow_pl: torch.Tensor  # candidate-major [P, L] int32 (any strides)
    core_pl: torch.Tensor
    pipelined: torch.Tensor
    sram_kib: torch.Tensor
    dram_gbps: torch.Tensor
    noc_link_gbps: torch.Tensor
    clock_ghz: torch.Tensor
