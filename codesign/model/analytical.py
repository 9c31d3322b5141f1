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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.floorplan import core_hops, dram_hops
from codesign.hardware.tech import TECH_NODES
from codesign.model.schedule import list_schedule
from codesign.model.systolic import (
    compute_cycles,
    refetch_factors,
    sram_accesses,
    stall_bound_cycles,
    stall_terms,
)
from codesign.space import Candidates, DesignSpace

PJ = 1e-12
GB = 1e9


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
        self._stall_cache: dict[str, dict[tuple, torch.Tensor]] = {}
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

    # ------------------------------------------------------------------------------------
    def _per_node(self, node: torch.Tensor, fn) -> torch.Tensor:
        """``fn(tech_node)`` for each candidate's node (a handful of nodes, not candidates)."""
        out = fn(self.nodes[0])
        for i, tech in enumerate(self.nodes[1:], start=1):
            out = torch.where(node == i, fn(tech), out)
        return out

    def _stall_terms(self, c: Candidates, m: torch.Tensor, kind: str):
        """:func:`stall_terms` ``[P, L]`` of every layer for each candidate's array, SRAM and dataflows.

        They depend on the array, the SRAM and the dataflow but not on bandwidth or clock, so they
        are computed once per distinct ``(pe_rows, pe_cols, sram_kib)`` for all layers and all three
        dataflows, kept (``kind`` tells the whole-batch GEMMs from the one-sample ones) and gathered.
        """
        lw = self.lw
        code = torch.zeros_like(c.pe_rows, dtype=torch.long)
        for field in (c.pe_rows, c.pe_cols, c.sram_kib):  # one integer key per distinct triple
            values, index = torch.unique(field, return_inverse=True)
            code = code * len(values) + index
        codes, inverse = torch.unique(code, return_inverse=True)
        first = torch.full_like(codes, len(code)).scatter_reduce_(0, inverse, torch.arange(len(code), device=code.device), "amin")
        unique = torch.stack([c.pe_rows, c.pe_cols, c.sram_kib], dim=1)[first]
        rows = [tuple(row) for row in unique.tolist()]
        cache = self._stall_cache.setdefault(kind, {})
        if len(cache) > 4096:
            cache.clear()
        missing = [i for i, row in enumerate(rows) if row not in cache]
        if missing:
            u = unique[torch.tensor(missing, device=unique.device)]
            H, W, sram = (u[:, j, None, None] for j in range(3))
            df = torch.arange(3, device=self.device)[None, :, None]
            words = sram * 1024.0 / lw.precision_bytes
            terms = stall_terms(m, lw.gemm_n, lw.gemm_k, H, W, df, ifmap_words=words * self.split[0],
                                filter_words=words * self.split[1], out_cols=self.out_cols, overlap=self.overlap,
                                stride=self.stride)
            table = torch.stack(torch.broadcast_tensors(*terms), dim=-1)  # [U, 3, L, 7]
            for j, i in enumerate(missing):
                cache[rows[i]] = table[j]
        table = torch.stack([cache[row] for row in rows])  # [U, 3, L, 7]
        L = table.shape[2]
        flat = (inverse[:, None] * 3 + c.dataflow.to(torch.long)) * L + torch.arange(L, device=self.device)
        return table.reshape(-1, table.shape[-1])[flat].unbind(-1)  # 7 × [P, L]

    def _layer_costs(self, c: Candidates, *, m, groups, ifmap_bytes, ofmap_bytes, filter_bytes, filter_resident=None,
                     kind: str = "batch") -> LayerCosts:
        """Costs ``[P, L]`` of running each layer once, for GEMMs of ``m`` rows ×``groups``."""
        lw = self.lw
        H, W = c.pe_rows[:, None], c.pe_cols[:, None]
        n, k, prec, df = lw.gemm_n, lw.gemm_k, lw.precision_bytes, c.dataflow
        compute = groups * compute_cycles(m, n, k, H, W, df)

        sram_bytes = c.sram_kib[:, None] * 1024.0
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
        ifmap_dram = torch.where(lw.is_source | (ifmap_bytes > cap_i), ifmap_bytes * fi, 0.0)
        filter_dram = torch.where(lw.has_weights | (filter_bytes > cap_f), filter_bytes * ff, 0.0)
        if filter_resident is not None:  # weights kept in SRAM across a pipelined batch
            filter_dram = torch.where(filter_resident & lw.has_weights, filter_dram / lw.batch, filter_dram)
        ofmap_dram = torch.where(lw.is_sink | (ofmap_bytes > cap_o), ofmap_bytes * fo, 0.0)
        dram = ifmap_dram + filter_dram + ofmap_dram

        # Stalls: SCALE-Sim's memory system, one DRAM channel of this bandwidth per operand, for
        # the operands that cross the DRAM interface (docs/model.md, "Memory traffic and stalls").
        bytes_per_cycle = (torch.minimum(c.dram_gbps, c.noc_link_gbps) / c.clock_ghz)[:, None]
        filter_moved = lw.has_weights | (filter_bytes > cap_f)
        if filter_resident is not None:  # loaded once for the whole batch: no stall per sample
            filter_moved = filter_moved & ~(filter_resident & lw.has_weights)
        per_gemm = stall_bound_cycles(
            m, n, k, H, W, df, compute=compute / groups,
            ifmap_words=2 * cap_i / self.word_bytes, filter_words=2 * cap_f / self.word_bytes,
            ofmap_words=2 * cap_o / self.word_bytes, bw_words=bytes_per_cycle / self.word_bytes,
            ifmap_from_dram=lw.is_source | (ifmap_bytes > cap_i), filter_from_dram=filter_moved,
            ofmap_to_dram=lw.is_sink | (ofmap_bytes > cap_o), terms=self._stall_terms(c, m, kind),
        )
        total = groups * per_gemm

        # Energy: MACs and their register traffic, SRAM (array reads/writes + DRAM fills), DRAM, NoC to DRAM.
        node = c.node[:, None]
        macs = groups * m * n * k
        si, sf, so = sram_accesses(m, n, k, H, W, df)
        sram_energy = 0.0
        for words, fill, share in ((si, ifmap_dram, self.split[0]), (sf, filter_dram, self.split[1]), (so, ofmap_dram, self.split[2])):
            e_byte = self._per_node(node, lambda t: hwcost.sram_energy_pj_per_byte(t, c.sram_kib[:, None] * share)) * PJ
            sram_energy = sram_energy + (groups * words * prec + fill) * e_byte
        hops = dram_hops(c.core, c.grid_rows[:, None], c.grid_cols[:, None], self.n_ports).to(self.dtype)
        energy = (
            macs * (self.e_mac[node] + 3 * prec * self.e_reg[node])
            + sram_energy
            + dram * (self.e_dram[node] + hops * self.e_hop[node])
        )
        return LayerCosts(compute_cycles=compute, total_cycles=total, dram_bytes=dram, energy_j=energy)

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

    def evaluate(self, c: Candidates, *, detail: bool = False) -> Evaluation:
        """Every metric for the ``P`` candidates in ``c``; ``detail`` adds the per-layer schedule."""
        lw = self.lw
        node = c.node
        dram_bytes_per_cycle = c.dram_gbps / c.clock_ghz

        # Layer by layer: every layer processes the whole batch.
        costs = self._layer_costs(c, m=lw.gemm_m, groups=lw.groups, ifmap_bytes=lw.ifmap_bytes, ofmap_bytes=lw.ofmap_bytes, filter_bytes=lw.filter_bytes)
        transfer, byte_hops = self._transfers(c)
        start, finish = list_schedule(costs.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, self.n_slots)
        total_dram = costs.dram_bytes.sum(dim=1)
        cycles = torch.maximum(finish.amax(dim=1), total_dram / dram_bytes_per_cycle)
        dyn_energy = costs.energy_j.sum(dim=1) + byte_hops * self.e_hop[node]

        if c.pipelined.any() and lw.batch > 1:
            pipe_cycles, pipe_energy = self._pipelined(c, dram_bytes_per_cycle)
            cycles = torch.where(c.pipelined, pipe_cycles, cycles)
            dyn_energy = torch.where(c.pipelined, pipe_energy, dyn_energy)

        latency = cycles / (c.clock_ghz * GB)
        area = self._per_node(node, lambda t: hwcost.area_mm2(
            t, pe_rows=c.pe_rows, pe_cols=c.pe_cols, sram_kib=c.sram_kib, n_cores=c.n_cores.to(self.dtype),
            n_dram_ports=torch.full_like(c.pe_rows, float(self.n_ports)), precision_bytes=self.precision, dram_kind=self.dram_kind))
        die_cost = self._per_node(node, lambda t: hwcost.die_cost_usd(area, t))
        static_w = self._per_node(node, lambda t: hwcost.static_power_w(area, t))
        energy = dyn_energy + static_w * latency
        metrics = {
            "latency_s": latency,
            "energy_j": energy,
            "area_mm2": area,
            "cost_usd": die_cost,
            "power_w": energy / latency,
        }
        layers = None
        if detail:
            clock = (c.clock_ghz * GB)[:, None]
            layers = {
                "compute_cycles": costs.compute_cycles,
                "stall_cycles": costs.stall_cycles,
                "total_cycles": costs.total_cycles,
                "dram_bytes": costs.dram_bytes,
                "start_s": start / clock,
                "end_s": finish / clock,
            }
        return Evaluation(metrics=metrics, layers=layers)

    def _pipelined(self, c: Candidates, dram_bytes_per_cycle: torch.Tensor):
        """Cycles and dynamic energy ``[P]`` of the batch pipelined sample by sample across cores."""
        lw = self.lw
        B = lw.batch
        # Weights stay in SRAM across the batch when all weights mapped to a core fit its filter partition.
        weights = torch.where(lw.has_weights, lw.filter_bytes, 0.0).expand_as(c.core)
        per_core = torch.zeros(len(c), self.n_slots, dtype=self.dtype, device=self.device).scatter_add_(1, c.core, weights)
        resident = per_core.gather(1, c.core) <= (c.sram_kib[:, None] * 1024.0 * self.split[1])
        one = self._layer_costs(
            c, m=lw.gemm_m1, groups=lw.groups1, ifmap_bytes=lw.ifmap_bytes / B, ofmap_bytes=lw.ofmap_bytes / B,
            filter_bytes=torch.where(lw.has_weights, lw.filter_bytes, lw.filter_bytes / B), filter_resident=resident,
            kind="sample",
        )
        transfer, byte_hops = self._transfers(c, scale=1.0 / B)
        _, finish = list_schedule(one.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, self.n_slots)
        busy = torch.zeros(len(c), self.n_slots, dtype=self.dtype, device=self.device).scatter_add_(1, c.core, one.total_cycles)
        bottleneck = torch.maximum(busy.amax(dim=1), one.dram_bytes.sum(dim=1) / dram_bytes_per_cycle)
        cycles = finish.amax(dim=1) + (B - 1) * bottleneck
        energy = B * (one.energy_j.sum(dim=1) + byte_hops * self.e_hop[c.node])
        return cycles, energy
