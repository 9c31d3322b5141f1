"""The tables of the analytical model's tabulated path: every per-layer cost of every combination of a design's choices.

A layer's compute cycles, DRAM bytes, stalls and energy depend on a candidate only through its
array, SRAM, dataflow, bandwidth/clock and node (and, pipelined, on whether its weights stay
resident): a few hundred combinations per layer in a design, against thousands of candidates per
call. :func:`build_tables` computes them once per model, for every combination, with the very
formulas the direct path uses (:class:`~codesign.model.layer_costs.LayerFormulas`, on a grid of
the choices instead of ``[P, L]``), so each entry is bit-identical to the direct computation; so
are area and cost (per array, SRAM, grid and node) and the hop counts (per grid and cores).
:mod:`codesign.model.tabulated` gathers from them.
"""

from __future__ import annotations

import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.floorplan import core_hops, dram_hops
from codesign.knobs import knob_names
from codesign.model.fusion import layer_variants, split_part
from codesign.model.layer_costs import PJ

#: Tabulated knobs that set the bytes per cycle (``Bw``) and the grid (``G``); every other
#: tabulated knob is a per-core one (array, SRAM, vector unit, ...) and indexes ``U``.
BANDWIDTH_FIELDS = ("dram_gbps", "noc_link_gbps", "clock_ghz")
GRID_FIELDS = ("grid_rows", "grid_cols")
CORE_FIELDS = tuple(name for name in knob_names(tabulated=True) if name not in BANDWIDTH_FIELDS + GRID_FIELDS)

#: Most table entries (all tables together; a complex entry counts twice) the model builds; a
#: design with more combinations of array, SRAM, bandwidth, clock, node, dataflow and grid is
#: evaluated directly.
TABLE_MAX_ENTRIES = 1 << 25


def build_tables(model, edge_bytes: torch.Tensor) -> dict | None:
    """Every table of the design's choices, or ``None`` when they would be too big (direct path).

    Args:
        model: the :class:`~codesign.model.analytical.AnalyticalModel` (its design, formulas,
            technology nodes and energies per node).
        edge_bytes: ``[E]`` bytes of each edge between layers (the tabulated path's edge list).

    Returns:
        ``U`` (combinations of the per-core knobs :data:`CORE_FIELDS`: array, SRAM, vector lanes), ``Bw`` (distinct bytes per cycle), ``G`` (grids),
        ``bw_code`` (each bandwidth × NoC × clock combination's ``Bw`` entry), per kind of run
        (``batch``, and ``sample`` when the design pipelines a batch) the per-layer tables of
        :func:`kind_table` plus ``edge``, and ``dram_hops`` ``[G·S]`` and ``area`` ``[U·G·N, 3]``.
    """
    hw = model.space.design.hardware
    dt, dev = model.dtype, model.device
    values = lambda name: torch.tensor(getattr(hw, name), dtype=dt, device=dev)  # noqa: E731
    # Every combination of the per-core knobs, the last one fastest (the tabulated path's hw code).
    per_core = dict(zip(CORE_FIELDS, (x.reshape(-1) for x in torch.meshgrid(*(values(n) for n in CORE_FIELDS), indexing="ij"))))
    dram, noc, clock = torch.meshgrid(values("dram_gbps"), values("noc_link_gbps"), values("clock_ghz"), indexing="ij")
    # The stall model sees bandwidth and clock only through bytes per cycle: one table entry per distinct value.
    bw_values, bw_code = torch.unique((torch.minimum(dram, noc) / clock).reshape(-1), return_inverse=True)
    U, Bw, N, L, E, S = per_core["pe_rows"].numel(), bw_values.numel(), len(model.nodes), len(model.lw.names), len(edge_bytes), model.n_slots
    kinds = ["batch"]
    if model.lw.batch > 1 and "pipelined" in model.space.design.schedule.mode:
        kinds.append("sample")
    grows = torch.tensor(hw.grid_rows, dtype=torch.long, device=dev)
    gcols = torch.tensor(hw.grid_cols, dtype=torch.long, device=dev)
    gr, gc = (x.reshape(-1) for x in torch.meshgrid(grows, gcols, indexing="ij"))
    # Entries of the per-layer tables (total and compute cycles; DRAM bytes and energy, complex)
    # and of the edge table (complex), all kinds: within int32 indexing and a bounded memory.
    R = {"batch": 1, "sample": 2}
    V = {"batch": len(layer_variants(model.space)), "sample": 1}
    # (with vector work, also the vector cycles and the array's cycles)
    per_layer = Bw + 1 + 2 * N + (Bw + 1 if model.formulas.has_vector else 0)
    entries = sum(3 * L * R[kind] * V[kind] * U * per_layer + 2 * gr.numel() * E * S**2 for kind in kinds)
    if entries > TABLE_MAX_ENTRIES:
        return None
    tables = {"U": U, "Bw": Bw, "G": gr.numel(), "bw_code": bw_code}
    with torch.no_grad():
        for kind in kinds:
            tables[kind] = kind_table(model, kind, per_core, bw_values)
        # Hops per grid: DRAM port of each core [G, S], between cores [G, S, S].
        core = torch.arange(S, device=dev)
        tables["dram_hops"] = dram_hops(core[None, :], gr[:, None], gc[:, None], model.n_ports).to(dt).reshape(-1)
        hops = core_hops(core[None, :, None], core[None, None, :], gc[:, None, None]).to(dt)  # [G, S, S]
        for kind in kinds:
            # Per (grid, edge, producer, consumer) [G, E, S, S]: the edge's bytes where it crosses the
            # NoC, zero where producer and consumer share a core (bytes / link + hops × latency is then
            # the direct path's where(hops > 0, …, 0) exactly), and the hops; real and imaginary parts.
            scaled = edge_bytes * (1.0 if kind == "batch" else 1.0 / model.lw.batch)
            moved = torch.where(hops[:, None] > 0, scaled[None, :, None, None], 0.0)
            tables[kind]["edge"] = torch.complex(moved, hops[:, None].expand_as(moved)).reshape(-1)
        tables["area"] = area_table(model, per_core, (gr * gc).to(dt))
    return tables


def area_table(model, core: dict, n_cores) -> torch.Tensor:
    """Area, die cost and static power per (per-core knobs ``U``, grid ``G``, node ``N``): ``[U·G·N, 3]``."""
    cols = []
    n_cores = n_cores[None, :]
    for tech in model.nodes:
        area = hwcost.area_mm2(tech, pe_rows=core["pe_rows"][:, None], pe_cols=core["pe_cols"][:, None], sram_kib=core["sram_kib"][:, None],
                               n_cores=n_cores, n_dram_ports=torch.full_like(n_cores, float(model.n_ports)), precision_bytes=model.precision,
                               dram_kind=model.dram_kind, vector_lanes=core["vector_lanes"][:, None])
        cols.append(torch.stack([area, hwcost.die_cost_usd(area, tech), hwcost.static_power_w(area, tech)], dim=-1))
    return torch.stack(cols, dim=2).reshape(-1, 3)  # [U, G, N, 3]


def kind_table(model, kind: str, core: dict, bw_values) -> dict:
    """Per-layer tables of one kind of run (``batch``: the whole batch; ``sample``: one sample,
    with and without resident weights), over (layer ``L``, variant ``V`` (:func:`layer_variants`;
    one for ``sample``), dataflow 3, residency ``R``, per-core knobs ``U``, then bandwidth ``Bw``
    or node ``N``), flattened in that order; DRAM bytes and energy over (``U``, ``N``, ``L``, ``V``,
    3, ``R``)."""
    variants = layer_variants(model.space) if kind == "batch" else [dict(fused_in=None, split=None)]
    U, N, L = core["pe_rows"].numel(), len(model.nodes), len(model.lw.names)
    blocks = [_variant_table(model, kind, core, bw_values, variant) for variant in variants]
    if len(blocks) == 1:
        return blocks[0]
    out = {"R": blocks[0]["R"]}
    for name in blocks[0]:
        if name != "R":
            lead = U * N * L if name == "dram_energy" else L  # the dims before the variant's
            out[name] = torch.stack([b[name].view(lead, -1) for b in blocks], dim=1).reshape(-1)
    return out


def _variant_table(model, kind: str, core: dict, bw_values, variant: dict) -> dict:
    """:func:`kind_table` of one layer variant: the layers fused or split as it says."""
    f = model.formulas
    inputs = f.inputs(kind)
    k = variant["split"]
    if k is not None:
        inputs, _, _ = split_part(model.lw, inputs, torch.tensor(k, dtype=model.dtype, device=model.device),
                                  torch.tensor(variant["rows"], device=model.device))
    if variant["fused_in"] is not None:
        inputs = dict(inputs, fused_in=torch.tensor(variant["fused_in"], device=model.device),
                      fused_out=torch.tensor(variant["fused_out"], device=model.device))
    m, n, groups = inputs["m"], inputs["n"], inputs["groups"]
    U, Bw, N, L = core["pe_rows"].numel(), bw_values.numel(), len(model.nodes), len(model.lw.names)
    R = 2 if kind == "sample" else 1
    per_core = {name: values.view(U, 1, 1, 1, 1) for name, values in core.items()}
    Hu, Wu, Su, lanes = per_core["pe_rows"], per_core["pe_cols"], per_core["sram_kib"], per_core["vector_lanes"]
    df = torch.arange(3, device=model.device).view(1, 1, 3, 1, 1)
    resident = torch.tensor([False, True], device=model.device).view(1, 1, 1, 2, 1) if R == 2 else None
    t = f.traffic(Hu, Wu, Su, df, **inputs, lanes=lanes, filter_resident=resident)
    bytes_per_cycle = bw_values.view(1, Bw, 1, 1, 1)
    array = f.array_cycles(t, Hu, Wu, df, m=m, n=n, groups=groups, bytes_per_cycle=bytes_per_cycle, terms=f.stall_terms(Hu, Wu, Su, df, m, n))
    total = f.with_vector(t, array, bytes_per_cycle) if f.has_vector else array
    energy = []
    for i, tech in enumerate(model.nodes):
        e_sram = lambda share, tech=tech: hwcost.sram_energy_pj_per_byte(tech, Su * share) * PJ  # noqa: E731
        core_energy = f.core_energy(t, Hu, Wu, df, m=m, n=n, groups=groups, e_sram=e_sram, e_mac=model.e_mac[i], e_reg=model.e_reg[i],
                                    e_vec=model.e_vec[i])
        energy.append(core_energy + t["dram"] * model.e_dram[i])
    if k is not None:  # k parts: their DRAM bytes and energy (AnalyticalModel._split)
        t["dram"], energy = k * t["dram"], [k * e for e in energy]
    # "total" and "compute" layer-major [L, 3, R, U, n], gathered into [L, P]: the gathers of one
    # layer (one row of the index) all fall in one slice of a few to tens of KB, which stays in
    # cache. DRAM bytes and energy candidate-major [U, n, L, 3, R], gathered into [P, L]: one
    # candidate's layers lie together.
    full = lambda x, n: torch.broadcast_to(x, (U, n, 3, R, L)).permute(4, 2, 3, 0, 1).reshape(-1)  # noqa: E731
    by_key = lambda x: torch.broadcast_to(x, (U, N, 3, R, L)).permute(0, 1, 4, 2, 3).reshape(-1)  # noqa: E731
    vector = {"vector": full(t["vector"], 1), "array": full(array, Bw)} if f.has_vector else {}
    return {
        "R": R,
        "total": full(total, Bw),
        "compute": full(t["compute"], 1),
        **vector,  # for the per-layer detail only
        # DRAM bytes and the energy without the hops to DRAM, by node, as the real and imaginary
        # parts of one complex table: one gather fetches both (and one sum adds both up).
        "dram_energy": torch.complex(by_key(t["dram"]), by_key(torch.cat([torch.broadcast_to(e, (U, 1, 3, R, L)) for e in energy], dim=1))),
    }
