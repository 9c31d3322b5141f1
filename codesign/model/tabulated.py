"""The analytical model's tabulated path: a population's costs gathered from tables, then scheduled.

For candidates whose hardware values are choices of the design (the search's case), every
per-layer cost, the area and cost and the hop counts come from the tables of
:mod:`codesign.model.tables`, built once per model: one integer index per candidate and layer
(from the hardware knobs' codes) gathers them. What is left per candidate is the gathers, the NoC
transfer times, the list schedule and a few ``[P]`` ops. The path works in a layer-major layout
(``[L, P]``), which the list schedule steps through, and writes its temporaries into scratch
tensors kept between calls. Its results equal the direct path's
(:meth:`~codesign.model.analytical.AnalyticalModel.evaluate`): bit for bit on cycle counts, DRAM
bytes, area and cost, to 1e-15 relative on energy (``tests/test_model_tabulated.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from codesign.knobs import knob_names
from codesign.model.evaluation import Evaluation, GB, chip_cycles, layer_detail, metrics, per_core_sum, pipelined_run, resident_weights
from codesign.model.evaluation import tabulated_embodied_kg
from codesign.model.fusion import CodedPlan, StackInputs, layer_variants
from codesign.model.schedule import list_schedule_lp
from codesign.model.tables import CORE_FIELDS, build_tables
from codesign.vocab import dataflow_code

#: Hardware fields whose choices index the tables (the registry's tabulated knobs).
CODED_FIELDS = knob_names(tabulated=True)


@dataclass
class Coded:
    """A population as the tabulated path sees it: table codes ``[P]`` (per-core knobs ``hw``, bytes per
    cycle ``bw``, ``grid``, ``node``), the schedule layer-major ``[L, P]``,
    and the values it still needs ``[P]``."""

    hw: torch.Tensor
    bw: torch.Tensor
    grid: torch.Tensor
    node: torch.Tensor
    dataflow: torch.Tensor
    core: torch.Tensor  # int32, for index arithmetic
    core_long: torch.Tensor  # the same, long, for the list schedule's gather/scatter
    dataflow_pl: torch.Tensor  # candidate-major [P, L] int32 or narrower (any strides)
    core_pl: torch.Tensor
    pipelined: torch.Tensor
    sram_kib: torch.Tensor
    dram_gbps: torch.Tensor
    noc_link_gbps: torch.Tensor
    clock_ghz: torch.Tensor
    # fusion and splitting: the codes fuse, tile, split layer-major [L, P] (None without)
    schedule: SimpleNamespace | None = None
    # chiplets (several dies): codes [P] of the die count, package and D2D bandwidth (None without)
    chiplet: SimpleNamespace | None = None


class TabulatedPath:
    """The tabulated evaluation of one :class:`~codesign.model.analytical.AnalyticalModel`.

    Reads the model's lowered workload, constants and per-node energies; builds its tables on
    first use (:meth:`ready`)."""

    def __init__(self, model) -> None:
        space, hw = model.space, model.space.design.hardware
        self.model = model
        self.space, self.lw, self.device, self.dtype = space, model.lw, model.device, model.dtype
        self.n_slots, self.n_nodes = model.n_slots, len(model.nodes)
        self.tables: dict | None = None  # None until built, and when they would be too big
        self._built = False
        # Each coded field's choices, sorted for look-ups, its column in a row (None when fixed)
        # and its number of choices.
        self.n_choices = {name: len(getattr(hw, name)) for name in CODED_FIELDS}
        self.hw_cols = {name: next((i for i, k in enumerate(space.knobs) if k.name == f"hw.{name}"), None) for name in CODED_FIELDS}
        self.sorted_choices = {}
        for name in CODED_FIELDS:
            choices = torch.tensor(getattr(hw, name), dtype=torch.long if name.startswith("grid") else self.dtype, device=self.device)
            self.sorted_choices[name] = torch.sort(choices)
        self.choice_values = {name: choices.values[torch.argsort(choices.indices)] for name, choices in self.sorted_choices.items()}
        self._scratch_local = threading.local()
        self.layer_index = torch.arange(len(self.lw.names), dtype=torch.int32, device=self.device)[:, None]
        self.layer_lane = self.layer_index.view(1, -1)
        # The edges between layers as a list (the padded [L, J] form without its padding): source
        # and destination layer and bytes of each, and each layer's (source, edge) pairs.
        lowered = space.lowered
        edges = [(p, l) for l, preds in enumerate(model.pred_lists) for p in preds]
        self.edge_src = torch.tensor([e[0] for e in edges], dtype=torch.long, device=self.device)
        self.edge_dst = torch.tensor([e[1] for e in edges], dtype=torch.long, device=self.device)
        self.edge_bytes = lowered.pred_bytes[lowered.pred_mask].to(device=self.device, dtype=self.dtype)
        self.edge_offset = (torch.arange(len(edges), dtype=torch.int32, device=self.device) * self.n_slots**2)[:, None]
        self.in_edges, e = [], 0
        for preds in model.pred_lists:
            self.in_edges.append([(p, e + j) for j, p in enumerate(preds)])
            e += len(preds)
        self.node_col = next((i for i, k in enumerate(space.knobs) if k.name == "hw.node"), None)
        self.row_decoding = self._row_decoding_tables()
        top = max((len(k.choices) - 1 if k.choices is not None else k.high for k in space.knobs), default=0)
        self.row_dtype = torch.uint8 if top <= 255 else torch.int16 if top <= 32767 else torch.int32  # holds every code
        # Fusion and splitting: the layer variants of the batch tables, each fusable layer's edge from l − 1,
        # the plan's tables keyed by codes, and the columns of the schedule knobs.
        self.n_variants = len(layer_variants(space))
        ft = model.fusion_tables
        if ft is not None:
            grids = [(r, c) for r in hw.grid_rows for c in hw.grid_cols]
            self.coded_plan = CodedPlan(ft, sram_kib=hw.sram_kib, grids=grids, n_slots=self.n_slots, dtype=self.dtype, device=self.device)
            D = space.dimension  # (column D of the rows' columns is zeros: the code of a knob a layer does not have)
            fusable = space.lowered.fusable.tolist()  # (a layer without a fusable boundary reads zero: never fused)
            self.schedule_cols = {name: torch.tensor([c if c >= 0 and (name != "fuse" or f) else D for c, f in zip(getattr(space, f"{name}_col"), fusable)],
                                                     device=self.device) for name in ("fuse", "tile", "split", "axis")}

    def ready(self) -> bool:
        """Whether the design's tables exist (built on the first call; ``False`` when too big)."""
        if not self._built:
            self.tables = build_tables(self.model, self.edge_bytes)
            self._built = True
        return self.tables is not None

    # --- populations → table codes ------------------------------------------------------------------
    def _row_decoding_tables(self) -> dict:
        """What :meth:`codes_of_rows` needs to read the schedule from a row, as :meth:`DesignSpace.decode` does."""
        space, dev = self.space, self.device
        sched = space.design.schedule
        codes = [dataflow_code(d) for d in sched.dataflow]
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

    def codes_from_rows(self, c, rows: torch.Tensor) -> Coded | None:
        """Table codes of candidates decoded from ``rows``: the hardware knobs' columns are the codes
        (``None`` when a hardware field requires grad)."""
        if any(getattr(c, name).requires_grad for name in CODED_FIELDS):
            return None
        rows = rows.to(device=self.device, dtype=torch.long)
        zero = torch.zeros(rows.shape[0], dtype=torch.long, device=self.device)
        code = {name: zero if col is None else rows[:, col] for name, col in self.hw_cols.items()}
        k = self.coded(code, c.node, c.dataflow, c.core, c.pipelined, c, schedule=self._schedule_of(c))
        return self._with_chiplet(k, lambda name: rows[:, self.model.chiplets.cols[name]])

    @staticmethod
    def _schedule_of(c) -> dict | None:
        """The fusion and split codes of candidates ``c``, layer-major (``None`` without)."""
        names = ("fuse", "tile", "split")
        return None if c.fuse is None and c.split is None else {name: None if getattr(c, name) is None else getattr(c, name).t() for name in names}

    def codes_from_values(self, c) -> Coded | None:
        """Table codes of ``c``'s hardware values, or ``None`` when one is off the design's choices or requires grad."""
        code, ok = {}, None
        for name, (sorted_values, order) in self.sorted_choices.items():
            value = getattr(c, name)
            if value.requires_grad or value.dtype != sorted_values.dtype or value.dim() != 1:
                return None
            pos = torch.searchsorted(sorted_values, value.contiguous()).clamp_(max=len(sorted_values) - 1)
            hit = sorted_values[pos] == value
            ok = hit if ok is None else ok & hit
            code[name] = order[pos]
        if c.core.dim() != 2 or c.dataflow.shape != c.core.shape:
            return None
        ok = ok & (c.node >= 0) & (c.node < self.n_nodes)
        if not bool(ok.all()):  # one host sync per call on cuda
            return None
        k = self.coded(code, c.node, c.dataflow, c.core, c.pipelined, c, schedule=self._schedule_of(c))
        if self.model.chiplets.enabled:
            k.chiplet = self.model.chiplets.codes_from_values(c)
            if k.chiplet is None:  # a die count or D2D bandwidth off the design's choices
                return None
        return k

    def _with_chiplet(self, k: Coded, column) -> Coded:
        """``k`` with its chiplet codes (:meth:`~codesign.model.chiplets.Chiplets.codes`) when the design has several dies."""
        if self.model.chiplets.enabled:
            k.chiplet = self.model.chiplets.codes(column, k.core.shape[1])
        return k

    def coded(self, code: dict, node, dataflow_pl, core_pl, pipelined, values, dataflow_lp=None, core_lp=None, schedule=None) -> Coded:
        """The coded population; the schedule is given candidate-major ``[P, L]`` (any strides) and,
        when the caller has it, layer-major ``[L, P]`` (contiguous int32); ``schedule`` holds the
        fusion and split fields (:class:`~codesign.space.Candidates`'), when the design has them."""
        T = self.tables
        n = self.n_choices
        hw_code = code[CORE_FIELDS[0]]
        for name in CORE_FIELDS[1:]:  # mixed radix, the last per-core knob fastest (the tables' order)
            hw_code = hw_code * n[name] + code[name]
        bw = T["bw_code"].index_select(0, (code["dram_gbps"] * n["noc_link_gbps"] + code["noc_link_gbps"]) * n["clock_ghz"] + code["clock_ghz"])
        grid = code["grid_rows"] * n["grid_cols"] + code["grid_cols"]
        get = (lambda name: getattr(values, name)) if values is not None else (lambda name: self.choice_values[name].index_select(0, code[name]))  # noqa: E731
        # (the rows' narrow codes stay as they are: the tables' index arithmetic widens them to int32)
        dataflow_pl, core_pl = (x if x.dtype in (torch.uint8, torch.int16, torch.int32) else x.to(torch.int32) for x in (dataflow_pl, core_pl))
        core = core_pl.t().contiguous() if core_lp is None else core_lp
        core_long = self.scratch("core_long", tuple(core.shape), torch.long).copy_(core)
        if schedule is not None:
            # (contiguous: the plan views its [L, P] codes flat; a decoded candidate's are transposed views)
            schedule = SimpleNamespace(**{name: None if schedule.get(name) is None else schedule[name].contiguous()
                                          for name in ("fuse", "tile", "split")})
        return Coded(schedule=schedule, hw=hw_code.to(torch.int32), bw=bw.to(torch.int32), grid=grid.to(torch.int32), node=node.to(torch.long),
                     dataflow=dataflow_pl.t().contiguous() if dataflow_lp is None else dataflow_lp, core=core, core_long=core_long,
                     dataflow_pl=dataflow_pl, core_pl=core_pl, pipelined=pipelined,
                     sram_kib=get("sram_kib"), dram_gbps=get("dram_gbps"), noc_link_gbps=get("noc_link_gbps"), clock_ghz=get("clock_ghz"))

    def codes_of_rows(self, rows: torch.Tensor) -> Coded:
        """The coded population of integer rows ``[P, D]``, read as :meth:`DesignSpace.decode` reads
        them, with no :class:`Candidates` built: the knob codes index the tables; the dataflow and
        core columns are gathered layer-major. Rows must hold codes within the knobs' ranges."""
        P, D = rows.shape
        L = len(self.lw.names)
        buf = self.scratch
        # The rows candidate-major [P, D] and layer-major [D, P] in the narrowest integer type that holds
        # every knob's code (uint8 for most designs): per-layer columns are read from both layouts, and
        # widened to int32 once read. Converted first, then transposed (a transposing copy that also
        # converts is three times as slow); a uint8 transpose is ~4x faster than an int32 one (1.7
        # against 7.2 ms at P = 8,192, D = 297, measured here).
        narrow = buf("rows", (P, D), self.row_dtype).copy_(rows)
        # (a last row of zeros: the code of a schedule knob a layer does not have)
        columns = buf("columns", (D + 1, P), self.row_dtype)
        columns[:D].copy_(narrow.t())
        columns[D].zero_()
        column = lambda col: columns[col].to(torch.int32)  # noqa: E731
        zero = torch.zeros(P, dtype=torch.int32, device=self.device)
        code = {name: zero if col is None else column(col) for name, col in self.hw_cols.items()}
        node = zero if self.node_col is None else column(self.node_col)
        d = self.row_decoding
        grid = code["grid_rows"] * self.n_choices["grid_cols"] + code["grid_cols"]

        def per_layer(cols, span, name):  # [P, L] (a view when the columns are consecutive) and [L, P]
            pl = narrow[:, span] if span is not None else narrow.index_select(1, cols)
            return pl, buf(name, (L, P), torch.int32).copy_(torch.index_select(columns, 0, cols, out=buf(f"{name}.narrow", (L, P), columns.dtype)))

        if d["dataflow_cols"] is None:
            dataflow_pl = d["dataflow_codes"][0].expand(P, L)
            dataflow = dataflow_pl.t()
        else:
            dataflow_pl, dataflow = per_layer(d["dataflow_cols"], d["dataflow_span"], "dataflow")
            if d["dataflow_codes"] is not None:  # the knob's choices are not (ws, os, is) in that order
                dataflow_pl, dataflow = d["dataflow_codes"][dataflow_pl.long()], d["dataflow_codes"][dataflow.long()]
        if d["core_cols"] is not None:
            core_pl, core = per_layer(d["core_cols"], d["core_span"], "core")
            if self.tables["G"] > 1:  # slot mod the candidate's core count, as DesignSpace.decode does
                core_pl = d["slot_mod"].index_select(0, (grid[:, None] * self.n_slots + core_pl).view(-1)).view(P, L)
                core = None
            # (a fixed grid has max_cores cores: the slot is the core)
        elif d["round_robin"] is not None:
            core_pl, core = d["round_robin"].index_select(0, grid), None
        else:
            core_pl, core = zero[:, None].expand(P, L), None
        pipelined = d["pipelined"][0].expand(P) if d["mode_col"] is None else d["pipelined"].index_select(0, column(d["mode_col"]))
        schedule = self._schedule_codes(columns, L, P, buf)
        k = self.coded(code, node, dataflow_pl, core_pl, pipelined, None, dataflow_lp=dataflow.to(torch.int32).contiguous(), core_lp=core,
                       schedule=schedule)
        return self._with_chiplet(k, lambda name: column(self.model.chiplets.cols[name]))

    # --- buffers -----------------------------------------------------------------------------------
    def scratch(self, tag: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A scratch tensor kept for the next call (per thread): the ``[L, P]`` temporaries are
        written into these with ``out=`` rather than allocated per call. A fresh allocation of a
        few MB costs page faults on every call once the allocator has given the memory back to
        the system (glibc does, for blocks this size): measured here, that doubled the time of a
        call at P = 4,096."""
        store = getattr(self._scratch_local, "store", None)
        if store is None:
            store = self._scratch_local.store = {}
        key = (tag, shape, dtype)
        out = store.get(key)
        if out is None:
            # Population sizes come and go: keep a few sizes' buffers only (about 50 per size with fusion and
            # splitting: a chunk and its remainder fit; on cuda a size's buffers can take GBs).
            if len(store) > 128:
                store.clear()
            out = store[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return out

    def fresh(self, tag: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A new tensor: for the results a caller keeps (``detail``)."""
        return torch.empty(shape, dtype=dtype, device=self.device)

    # --- gathers and the schedule --------------------------------------------------------------------
    def costs(self, table: dict, k: Coded, resident: torch.Tensor | None, detail: bool, kind: str = "batch", variant=None):
        """Layer costs gathered from a kind table: ``total`` ``[L, P]`` (for the list schedule), ``dram``
        ``[P, L]``, the sums over layers ``dram_sum``, ``energy_sum`` ``[P]``, and when ``detail`` the
        ``compute``, ``vector`` and ``array`` cycles ``[L, P]`` (a dict; else ``None``).

        Sums over layers run along the contiguous last dimension of ``[P, L]`` tensors, as the direct
        path's do: their order of summation is then the same whatever ``P``, so a candidate gets the
        same bits alone as in a population. ``variant`` ``[L, P]`` int32 (with fusion or splitting)
        picks each layer's block of the batch tables (:func:`~codesign.model.tables.layer_variants`)."""
        T = self.tables
        L, P = k.core.shape
        R = table["R"]
        V = self.n_variants if variant is not None else 1
        buf, keep = self.scratch, (self.fresh if detail else self.scratch)
        # Index arithmetic in int32 (the tables are far smaller than 2³¹): faster than int64.
        # "total"/"compute", layer-major: entry (((l·V + variant)·3 + dataflow)·R + resident)·K + key of K keys.
        if variant is None:
            part = torch.add(k.dataflow, self.layer_index * 3, out=buf("part", (L, P), torch.int32))
        else:
            part = torch.add(variant, self.layer_index * V, out=buf("part", (L, P), torch.int32)).mul_(3).add_(k.dataflow)
        if R > 1:
            part.mul_(R).add_(resident.to(torch.int32))
        index = buf("index", (L, P), torch.int32)

        def gather(values, keys, n_keys, out):
            torch.mul(part, n_keys, out=index).add_(keys[None, :])
            return torch.index_select(values, 0, index.view(-1), out=out.view(-1)).view(L, P)

        total = gather(table["total"], k.hw * T["Bw"] + k.bw, T["U"] * T["Bw"], keep(f"{kind}.total", (L, P), self.dtype))
        cycles = None
        if detail:
            cycles = {"compute": gather(table["compute"], k.hw, T["U"], self.fresh("compute", (L, P), self.dtype))}
            if "vector" in table:
                cycles["vector"] = gather(table["vector"], k.hw, T["U"], self.fresh("vector", (L, P), self.dtype))
                cycles["array"] = gather(table["array"], k.hw * T["Bw"] + k.bw, T["U"] * T["Bw"], self.fresh("array", (L, P), self.dtype))
            else:  # no vector work: no vector cycles, and the array's cycles are the layer's
                cycles["vector"], cycles["array"] = torch.zeros_like(total), total.clone()
        # "dram_energy", candidate-major [P, L]: entry key·(L·V·3·R) + part, ``part`` transposed (one blocked
        # int32 transpose: far cheaper than forming it again from the transposed variant and resident).
        rows = buf("index_pl", (P, L), torch.int32).copy_(part.t())
        rows.add_(((k.hw * self.n_nodes + k.node.to(torch.int32)) * (L * V * 3 * R))[:, None])
        both = torch.index_select(table["dram_energy"], 0, rows.view(-1), out=buf("dram_energy", (P * L,), table["dram_energy"].dtype)).view(P, L)
        sums = both.sum(dim=1)  # DRAM bytes + i·energy
        dram = torch.view_as_real(both)[..., 0]
        hop_index = rows.copy_(k.core_pl) if T["G"] == 1 else torch.add(k.core_pl, (k.grid * self.n_slots)[:, None], out=rows)
        hops = torch.index_select(T["dram_hops"], 0, hop_index.view(-1), out=buf("hops", (P, L), self.dtype).view(-1)).view(P, L)
        # Energy of the DRAM traffic's hops to the ports: Σ_l dram_l · hops_l, times the node's energy per byte-hop.
        energy_sum = sums.imag + hops.mul_(dram).sum(dim=1) * self.model.e_hop[k.node]
        if detail:
            dram = dram.clone()
        return total, dram, sums.real, energy_sum, cycles

    def transfers(self, k: Coded, kind: str = "batch", *, with_latency: bool = False, with_d2d: bool = False):
        """NoC time ``[E, P]`` of each edge between layers and on-die byte-hops ``[P]``, from the hop tables
        (with ``with_latency`` the hops' latency ``[E, P]``, with ``with_d2d`` the D2D energy ``[P]``, J).

        Per (grid, edge, producer core, consumer core) the tables hold the hops and the edge's bytes
        where it crosses the NoC (zero on one core), so the time is bytes / link + hops × router
        latency with no test per candidate. With several dies a table of the same layout per die count
        holds the D2D crossings (:meth:`~codesign.model.chiplets.Chiplets.pay_crossings`)."""
        T = self.tables
        L, P = k.core.shape
        S, E = self.n_slots, len(self.edge_src)
        buf = self.scratch
        hop_cycles = self.model.hop_cycles
        index = torch.index_select(k.core, 0, self.edge_src, out=buf("edge_index", (E, P), torch.int32)).mul_(S)
        index.add_(torch.index_select(k.core, 0, self.edge_dst, out=buf("edge_other", (E, P), torch.int32))).add_(self.edge_offset)
        if T["G"] > 1:
            index.add_((k.grid * (E * S * S))[None, :])
        index = index.view(-1)
        table = T[kind]["edge"]
        both = torch.view_as_real(torch.index_select(table, 0, index, out=buf("edge", (E * P,), table.dtype)).view(E, P))
        moved, hops = both[..., 0], both[..., 1]
        latency = torch.mul(hops, hop_cycles, out=buf("edge_latency", (E, P), self.dtype))
        # Σ bytes · hops from the (contiguous) hops × latency: whole numbers, so exact in any order of
        # summation (the same whatever P) and exactly divisible by the latency.
        byte_hops = self.edge_bytes[None, :].mm(latency).view(P) / hop_cycles
        d2d = None
        if k.chiplet is not None:  # several dies: each D2D crossing's latency paid in place, its bytes off the on-die hops
            d2d = self.model.chiplets.pay_crossings(k, index, latency, self.edge_bytes, buf)
            byte_hops = byte_hops - d2d.bytes
        cycles = torch.div(moved, k.noc_link_gbps / k.clock_ghz, out=buf(f"{kind}.edge_cycles", (E, P), self.dtype)).add_(latency)
        d2d_energy = 0.0
        if d2d is not None:  # an edge that crosses moves at the slower of the NoC and D2D links
            cycles.addcmul_(d2d.crossed_bytes, d2d.slower * (1.0 if kind == "batch" else 1.0 / self.lw.batch))
            d2d_energy = d2d.energy
        if kind != "batch":
            byte_hops, d2d_energy = byte_hops * (1.0 / self.lw.batch), d2d_energy * (1.0 / self.lw.batch)
        out = (cycles, byte_hops, latency) if with_latency else (cycles, byte_hops)
        return out + (d2d_energy,) if with_d2d else out

    def evaluate(self, k: Coded, detail: bool) -> Evaluation:
        """Every metric ``[P]`` of the coded population (and the per-layer schedule when ``detail``)."""
        T = self.tables
        L, P = k.core.shape
        dram_bytes_per_cycle = k.dram_gbps / k.clock_ghz
        keep = self.fresh if detail else self.scratch
        e_hop = self.model.e_hop[k.node]

        plan, variant = self._plan(k, detail)
        total, dram, dram_sum, energy_sum, parts = self.costs(T["batch"], k, None, detail, variant=variant)
        transfer, byte_hops, hop_latency, d2d_energy = self.transfers(k, with_latency=True, with_d2d=True)
        stack, split_parts = self._fused_schedule(plan, total, hop_latency)
        schedule = (keep("start", (L, P), self.dtype), keep("finish", (L, P), self.dtype), self.scratch("core_free", (P, self.n_slots), self.dtype),
                    self.scratch("slot", (L, P), torch.int32))
        start, finish = list_schedule_lp(total, k.core_long, transfer, self.in_edges, self.n_slots, out=schedule, stack=stack, parts=split_parts)
        # The last layer to finish is the last one on some core: the cores' free times hold the answer ([P, cores]).
        cycles = chip_cycles(schedule[2].amax(dim=1), dram_sum, dram_bytes_per_cycle)
        dyn_energy = energy_sum + byte_hops * e_hop + d2d_energy
        if "split_byte_hops" in plan:
            dyn_energy = dyn_energy + plan["split_byte_hops"] * e_hop

        # Pipelined candidates: computed for the whole population (no host sync to find them on cuda).
        if "sample" in T and (self.device.type != "cpu" or bool(k.pipelined.any())):
            pipe_cycles, pipe_energy = self._pipelined(k, schedule, dram_bytes_per_cycle, e_hop)
            cycles = torch.where(k.pipelined, pipe_cycles, cycles)
            dyn_energy = torch.where(k.pipelined, pipe_energy, dyn_energy)

        latency = cycles / (k.clock_ghz * GB)
        area, die_cost, static_w = T["area"].index_select(0, (k.hw * T["G"] + k.grid) * self.n_nodes + k.node).unbind(1)
        if k.chiplet is not None:  # several dies: their D2D PHYs in the area, and the package's recurring cost
            chiplets, hw = self.model.chiplets, self.space.design.hardware
            table = chiplets.area_table(T["area"], self.model.nodes, hw.grid_rows, hw.grid_cols)
            key = ((k.hw * T["G"] + k.grid) * self.n_nodes + k.node) * chiplets.n_codes + k.chiplet.code
            area, die_cost, static_w = table.index_select(0, key).unbind(1)
        layers = None
        if detail:
            layers = layer_detail(k.clock_ghz, parts["compute"].t(), total.t(), dram, start.t(), finish.t(),
                                  vector=parts["vector"].t(), array=parts["array"].t(), plan=plan)
        return Evaluation(metrics=metrics(latency, dyn_energy, area, die_cost, static_w, tabulated_embodied_kg(self, k, area), self.model.carbon),
                          layers=layers)

    # --- fusion and splitting -------------------------------------------------------------------------
    def _schedule_codes(self, columns: torch.Tensor, L: int, P: int, buf) -> dict | None:
        """The fusion and split codes ``[L, P]`` int32 (``fuse`` bool) read from the rows' columns
        (``columns[D]`` is zeros, and the column of every layer without a fusable boundary), as
        :meth:`DesignSpace._fusion_fields` reads them."""
        space, cols, out = self.space, getattr(self, "schedule_cols", None), {}
        narrow = lambda name: torch.index_select(columns, 0, cols[name], out=buf(f"codes.{name}.narrow", (L, P), columns.dtype))  # noqa: E731
        read = lambda name: buf(f"codes.{name}", (L, P), torch.int32).copy_(narrow(name))  # noqa: E731  (int32, as the plan reads them)
        if space.fusion:
            fusable = space.lowered.fusable.to(self.device)[:, None]
            out["fuse"] = fusable.expand(L, P) if space.design.schedule.fusion == "all" else torch.ne(narrow("fuse"), 0, out=buf("codes.fused", (L, P), torch.bool))
            out["tile"] = read("tile")
        if space.splitting:
            out["split"] = read("split").mul_(len(space.design.schedule.split_axis)).add_(read("axis"))
        return out or None

    def _plan(self, k: Coded, detail: bool = False) -> tuple[dict, torch.Tensor | None]:
        """The fusion/split plan of the population (:meth:`~codesign.model.fusion.CodedPlan.plan`, the
        direct path's :func:`~codesign.model.fusion.schedule_plan` from tables) and each layer's variant
        of the batch tables ``[L, P]`` int32 (``None`` without)."""
        if k.schedule is None:
            return {}, None
        s = k.schedule
        codes = {name: None if getattr(s, name) is None else getattr(s, name).to(torch.int32) for name in ("tile", "split")}
        plan = self.coded_plan.plan(fuse=s.fuse, **codes, grid=k.grid, core=k.core, sram_kib=k.sram_kib,
                                    link_bytes_per_cycle=(k.noc_link_gbps / k.clock_ghz)[None, :],
                                    buf=self.fresh if detail else self.scratch, detail=detail)
        return plan, plan["variant"]

    def _fused_schedule(self, plan: dict, total: torch.Tensor, latency: torch.Tensor):
        """Adds the split layers' NoC time to ``total`` ``[L, P]``; the list schedule's ``stack`` and ``parts``."""
        stack = None
        if "split_cycles" in plan:
            total.add_(plan["split_cycles"])
        if "share" in plan:
            stack = StackInputs(self.model.fusion_tables.fusable, plan["stack_fused"], plan["share"], plan["inv_tiles"], latency)
        return stack, plan.get("parts")

    def _pipelined(self, k: Coded, schedule: tuple, dram_bytes_per_cycle, e_hop):
        """Cycles and dynamic energy ``[P]`` of the batch pipelined across the cores (layer-major:
        the layers along dim 0); ``schedule`` lends its core and slot buffers."""
        L, P = k.core.shape
        core = k.core_long
        weights = self.model.weight_bytes[:, None].expand_as(core)
        capacity = (k.sram_kib * 1024.0 * self.model.split[1])[None, :]
        resident = resident_weights(core, weights, capacity, self.n_slots, dim=0)
        one_total, _, one_dram, one_energy, _ = self.costs(self.tables["sample"], k, resident, False, "sample")
        one_transfer, one_byte_hops, one_d2d = self.transfers(k, "sample", with_d2d=True)
        one_schedule = (self.scratch("sample.start", (L, P), self.dtype), self.scratch("sample.finish", (L, P), self.dtype), *schedule[2:])
        list_schedule_lp(one_total, core, one_transfer, self.in_edges, self.n_slots, out=one_schedule)
        busiest = per_core_sum(core, one_total, self.n_slots, dim=0).amax(dim=0)
        return pipelined_run(one_schedule[2].amax(dim=1), busiest, one_dram, dram_bytes_per_cycle,
                             one_energy + one_byte_hops * e_hop + one_d2d, self.lw.batch)
