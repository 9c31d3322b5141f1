"""Fused stacks and split layers: the formulas both evaluation paths share (written once).

A layer-by-layer schedule may *fuse* the boundary between layer ``l − 1`` and layer ``l`` when
``l`` is ``l − 1``'s only consumer (``LoweredWorkload.fusable``; ``l`` may have other inputs, a
residual side input say, which it reads as before).
Consecutive fused boundaries make a *stack*; its layers run tile by tile, ``T`` tiles each
(``T = ⌈rows of the stack's first layer / tile_rows⌉``, the first layer's knob), and the tensors
between them stay in SRAM:

* **halo**: held in *line buffers*, never recomputed. A layer's first output tile needs
  ``R − stride`` input rows beyond its own share; they stay in the ifmap partition from one tile
  to the next. So fused layers do exactly the MACs of unfused ones (compute cycles and MAC energy
  unchanged; recomputation would add MACs to every tile and break "fused never slower than layer
  by layer" once the SRAM is large), and the halo costs SRAM instead.
* **SRAM per stack**: a fused boundary needs its tile with the halo rows, ``ifmap · min(1, 1/T +
  halo / input rows)``, to fit half of the ifmap and of the ofmap partition (double buffering), and
  the weights of the stack so far (from its first layer to this one) to fit the filter partition,
  so that they are fetched once, not once per tile. A boundary that does not fit is not fused
  (the stack is cut there and runs layer by layer): never infeasible, never worse in DRAM traffic.
* **DRAM only at stack boundaries**: the producer's output and the consumer's input of a fused
  boundary do not cross the DRAM interface (``LayerFormulas.traffic(fused_in, fused_out)``).
* **tiles in time**: a fused layer starts once its first input tiles exist (``1 + ⌈halo·T /
  input rows⌉`` producer tiles, then one tile's NoC transfer when on another core) and ends no
  earlier than one of its tiles after the producer's last tile, nor than the stream of all the
  edge's bytes over the link (:func:`stack_timing`, used by the list schedule). On one core the
  tiles interleave and the stack takes the sum of its layers' cycles; on several cores they overlap.

A layer may be *split* over ``k`` cores (its core and the next ``k − 1`` slots, modulo the core
count) by output channels (the GEMM's ``N``, or its groups when it has several) or by output rows
(``M``). Each part is the layer's GEMM with that dimension ``⌈·/k⌉`` (:func:`split_part`) and the
operands it needs; the parts run at once and the layer takes one part's cycles plus the NoC time
to send the parts their inputs and gather their outputs at the layer's core (:func:`schedule_plan`, with the hops of :func:`split_parts`).
Its DRAM bytes and energy are ``k`` times a part's. Split layers are never fused.

Fusion and splitting shape the layer-by-layer run; a pipelined candidate's metrics come from its
pipelined run, which ignores them. Everything that depends only on the workload and the design's
choices is computed once per model (:class:`FusionTables`); per candidate the plan is a few
gathers and comparisons, layer-major ``[L, P]`` as the list schedule reads it
(:func:`schedule_plan`, which both evaluation paths call).
"""

from __future__ import annotations

import torch

from codesign.hardware.floorplan import core_hops


def split_part(lw, inputs: dict, k, rows) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The inputs of one part of each layer split into ``k`` parts along rows (``rows`` true) or
    channels, and each part's share of the layer's input and output; ``k``/``rows`` broadcast
    against ``[L]``. With ``k = 1`` every value is the layer's own, bit for bit."""
    m, n, groups = inputs["m"], inputs["n"], inputs["groups"]
    grouped = groups > 1
    m_part = torch.where(rows, torch.ceil(m / k), m)
    g_part = torch.where(~rows & grouped, torch.ceil(groups / k), groups)
    n_part = torch.where(~rows & ~grouped, torch.ceil(n / k), n)
    out_frac = torch.where(rows, m_part / m, torch.where(grouped, g_part / groups, n_part / n))
    out_frac = torch.where(lw.is_vector, 1.0 / k, out_frac)  # a vector layer's work divides evenly
    in_frac = torch.where(rows | grouped | lw.is_vector, out_frac, 1.0)  # a channel split reads all the input
    filter_frac = torch.where(rows, 1.0, out_frac)  # a row split needs all the weights
    part = dict(m=m_part, n=n_part, groups=g_part, ifmap_bytes=inputs["ifmap_bytes"] * in_frac,
                ofmap_bytes=inputs["ofmap_bytes"] * out_frac, filter_bytes=inputs["filter_bytes"] * filter_frac,
                vector_work=inputs["vector_work"] * out_frac, side_bytes=inputs["side_bytes"] * out_frac)
    return part, in_frac, out_frac


def layer_variants(space) -> list[dict]:
    """The ways a layer can run layer by layer, each a block of the ``batch`` tables: unfused and
    unsplit (with fusion: its input and output boundary fused or not, index ``fused_in + 2·fused_out``),
    then one per split option of more than one core (:attr:`DesignSpace.split_options`), in order."""
    fusion = [(False, False), (True, False), (False, True), (True, True)] if space.fusion else [(None, None)]
    plain = [dict(fused_in=fi, fused_out=fo, split=1.0 if space.splitting else None, rows=False) for fi, fo in fusion]
    no = False if space.fusion else None
    options = space.split_options if space.splitting else []
    return plain + [dict(fused_in=no, fused_out=no, split=float(k), rows=axis == "rows") for k, axis in options if k > 1]


def split_parts(core, k, n_cores, grid_cols, max_split: int, dtype) -> tuple[torch.Tensor, torch.Tensor, list]:
    """Hops from each layer's core to its farthest part and to all its parts, and the cores of
    parts ``1 … max_split − 1`` (the layer's own core where a part is absent); any broadcast shapes."""
    parts, far, total = [], None, None
    for j in range(1, max_split):
        part = torch.where(j < k, (core + j) % n_cores, core)
        hops = core_hops(core, part, grid_cols).to(dtype)
        far = hops if far is None else torch.maximum(far, hops)
        total = hops if total is None else total + hops
        parts.append(part)
    return far, total, parts


class FusionTables:
    """What fusion and splitting need from the workload and the design's choices, once per model."""

    def __init__(self, model) -> None:
        space, lw, dt, dev = model.space, model.lw, model.dtype, model.device
        sched = space.design.schedule
        self.fusion, self.splitting = space.fusion, space.splitting
        self.hop_cycles = model.hop_cycles
        L = len(lw.names)
        self.layer_index = torch.arange(L, device=dev)[:, None]
        self.fusable = [l for l, ok in enumerate(lw.fusable.tolist()) if ok] if self.fusion else []
        self.fusable_index = torch.tensor(self.fusable, dtype=torch.long, device=dev)
        # each fusable layer's input edge from l − 1: its position among the layer's inputs (the last: inputs are in layer order)
        self.fused_input = [len(model.pred_lists[l]) - 1 for l in self.fusable]
        options = space.split_options if self.splitting else [(1, "channels")]
        self.options = options
        self.alone = torch.tensor([k == 1 for k, _ in options], device=dev)
        self.split_k = torch.tensor([float(k) for k, _ in options], dtype=dt, device=dev)
        self.split_rows = torch.tensor([axis == "rows" for _, axis in options], device=dev)
        self.max_split = max(k for k, _ in options)
        later = iter(range(4 if self.fusion else 1, 10**6))
        self.variant_of = torch.tensor([0 if k == 1 else next(later) for k, _ in options], dtype=torch.int32, device=dev)
        if self.fusion:
            tiles = torch.ceil(lw.out_rows[:, None] / torch.tensor(sched.tile_rows, dtype=dt, device=dev)[None, :])
            self.n_tiles = len(sched.tile_rows)
            self.tiles = torch.complex(tiles, 1.0 / tiles).reshape(-1)  # T and 1/T per (layer, tile code)
            in_rows = torch.cat([lw.out_rows[:1], lw.out_rows[:-1]])  # the producer's rows (fusable boundaries)
            self.halo = (lw.halo_rows / in_rows)[:, None]
            share_i, share_f, share_o = model.split
            self.tile_room = (1024.0 * min(share_i, share_o) / 2 / lw.ifmap_bytes)[:, None]  # × sram_kib: room / input bytes
            weights = torch.where(lw.has_weights, lw.filter_bytes, 0.0)
            self.before = torch.cumsum(weights, dim=0) - weights  # weights of the layers before each one
            self.upto = (self.before + weights)[:, None]
            self.filter_room = 1024.0 * share_f
        if self.splitting:
            inputs = model.formulas.inputs("batch")
            rows = torch.tensor([axis == "rows" for _, axis in options], device=dev)[:, None]
            _, in_frac, out_frac = split_part(lw, inputs, self.split_k[:, None], rows)
            part_bytes = inputs["ifmap_bytes"] * in_frac + inputs["ofmap_bytes"] * out_frac  # [options, L]
            self.part_bytes = part_bytes.t().reshape(-1)  # [L · options]
            self.noc_bytes = ((self.split_k[:, None] - 1) * part_bytes).t().reshape(-1)


def schedule_plan(ft: FusionTables, *, fuse, tile, split, sram_kib, link_bytes_per_cycle, hops) -> dict:
    """What fusion and splitting change, layer-major ``[L, P]``, from the candidates' codes ``[L, P]``
    (``fuse`` bool, ``tile``, ``split``: :class:`~codesign.space.Candidates`' fields, transposed).

    ``hops`` is :func:`split_parts`' result for the candidates (with splitting). Returns ``variant``
    (each layer's block of the batch tables, int32), with fusion ``fused``, ``fused_out``, ``tiles``,
    ``inv_tiles``; with splitting ``split`` (cores), ``split_cycles``, ``split_byte_hops`` ``[P]``, ``parts``."""
    out, variant = {}, None
    take = lambda table, index: table.index_select(0, index.reshape(-1)).view(index.shape)  # noqa: E731  (faster than table[index])
    if ft.splitting:
        far, total, parts = hops
        index = split + ft.layer_index * len(ft.options)
        out["split_cycles"] = take(ft.noc_bytes, index).mul_((1.0 / link_bytes_per_cycle)).add_(far * (2 * ft.hop_cycles))
        out["split_byte_hops"] = take(ft.part_bytes, index).mul_(total).sum(dim=0)
        out.update(split=take(ft.split_k, split), parts=parts)
        variant = take(ft.variant_of, split)
    if ft.fusion:
        want = fuse
        if ft.splitting:
            alone = take(ft.alone, split)
            want = want & alone
            want[1:] &= alone[:-1]
        head = ft.layer_index.expand(want.shape).clone()  # first layer of each layer's stack
        for l in ft.fusable:  # (a step per fusable boundary: faster than a cummax over all layers)
            torch.where(want[l], head[l - 1], head[l], out=head[l])
        both = take(ft.tiles, tile.gather(0, head).add_(head * ft.n_tiles))
        sram = sram_kib[None, :]
        fits = (both.imag + ft.halo).clamp_(max=1.0) <= sram * ft.tile_room
        fits &= ft.upto - take(ft.before, head) <= sram * ft.filter_room
        fused = fits.logical_and_(want)
        fused_out = torch.zeros_like(fused)
        fused_out[:-1] = fused[1:]
        out.update(fused=fused, fused_out=fused_out, tiles=both.real, inv_tiles=both.imag)
        fused_code = fused_out.to(torch.int32).mul_(2).add_(fused)
        variant = fused_code if variant is None else variant.add_(fused_code)
    out["variant"] = variant
    return out


def stack_timing(ft: FusionTables, plan: dict, cycles, transfer, latency) -> tuple:
    """The list schedule's ``stack``: the fusable layers and their terms ``[F, P]`` (``±inf`` where the
    boundary is not fused, which leaves the layer-by-layer schedule as it is).

    Args:
        plan: :func:`schedule_plan`'s result.
        cycles: each layer's cycles ``[L, P]``.
        transfer: NoC time ``[F, P]`` of each fusable layer's edge from layer ``l − 1`` (0 on one core).
        latency: its hops × router latency ``[F, P]``.

    The terms: ``first`` (from the producer's start to the first input tiles' arrival), ``last``
    (from the producer's end to this layer's end: its last tile's transfer and one tile) and
    ``stream`` (from the producer's start: the first tiles, all the bytes over the link, one tile).
    """
    F = ft.fusable_index
    fused, tiles, inv = (plan[name].index_select(0, F) for name in ("fused", "tiles", "inv_tiles"))
    share = torch.minimum(1.0 + torch.ceil(ft.halo[F] * tiles), tiles) * inv  # producer tiles before the first output tile
    producer = cycles.index_select(0, F - 1) * share
    tile_transfer = (transfer - latency) * inv + latency
    one_tile = cycles.index_select(0, F) * inv
    inf = torch.tensor(float("inf"), dtype=cycles.dtype, device=cycles.device)
    first = torch.where(fused, producer + tile_transfer, inf)
    last = torch.where(fused, tile_transfer + one_tile, -inf)
    stream = torch.where(fused, producer + transfer + one_tile, -inf)
    return ft.fusable, first, last, stream
