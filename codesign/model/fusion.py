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
(:func:`schedule_plan`, which both evaluation paths call). On the cpu the tabulated path's plan
(:meth:`CodedPlan.plan`) and the fused stacks' terms in the list schedule (:class:`StackInputs`)
run compiled (:mod:`codesign.model._compiled`): the same formulas, the same values.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from codesign.hardware.floorplan import core_hops
from codesign.model import _compiled


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


def split_parts(core, k, n_cores, grid_cols, max_split: int, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hops from each layer's core to its farthest part and to all its parts, and the cores of its
    parts ``0 … max_split − 1`` along a new last dimension (part 0 is the layer's core; a part
    absent is the layer's core again); any broadcast shapes."""
    parts, far, total = [], None, None
    for j in range(1, max_split):
        part = torch.where(j < k, (core + j) % n_cores, core)
        hops = core_hops(core, part, grid_cols).to(dtype)
        far = hops if far is None else torch.maximum(far, hops)
        total = hops if total is None else total + hops
        parts.append(part)
    return far, total, torch.stack([torch.broadcast_to(core, parts[0].shape), *parts], dim=-1).long()


def first_share(halo, tiles, inv_tiles):
    """The share of a fused layer's producer that runs before the layer's first tile can start:
    ``1 + ⌈halo · T⌉`` of its ``T`` tiles (at most ``T``), times ``1/T``; any broadcast shapes."""
    return torch.minimum(1.0 + torch.ceil(halo * tiles), tiles) * inv_tiles


def tile_fits(inv_tiles, halo, tile_room, weights, filter_room, sram_kib):
    """Whether a fused boundary fits: its tile with the halo rows in half of the ifmap and ofmap
    partitions (``tile_room`` per KiB of SRAM), and ``weights`` (the stack's so far) in the filter
    partition; any broadcast shapes."""
    return ((inv_tiles + halo).clamp_(max=1.0) <= sram_kib * tile_room) & (weights <= sram_kib * filter_room)


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
        self.producer_index = self.fusable_index - 1
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
    ``inv_tiles``; with splitting ``split`` (cores), ``split_cycles``, ``split_byte_hops`` ``[P]``, ``parts``
    (the cores ``[L, P, max_split]`` of each layer's parts, its own first). The tabulated path gets the
    same values from code-keyed tables (:class:`CodedPlan`)."""
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
        fits = tile_fits(both.imag, ft.halo, ft.tile_room, ft.upto - take(ft.before, head), ft.filter_room, sram_kib[None, :])
        fused = fits.logical_and_(want)
        fused_out = torch.zeros_like(fused)
        fused_out[:-1] = fused[1:]
        out.update(fused=fused, fused_out=fused_out, tiles=both.real, inv_tiles=both.imag)
        fused_code = fused_out.to(torch.int32).mul_(2).add_(fused)
        variant = fused_code if variant is None else variant.add_(fused_code)
    out["variant"] = variant
    return out


class CodedPlan:
    """:func:`schedule_plan` and :func:`stack_timing`'s inputs for the tabulated path, from tables keyed
    by the candidates' codes, built once per model from the same formulas (so bit for bit the same).

    Fusion: per fusable layer (``F`` of them), per depth ``d`` of its stack so far (its head is layer
    ``l − d``) and per tile code of the head, its :func:`first_share`, ``T`` and ``1/T``, and per SRAM
    choice whether its tile fits (:func:`tile_fits`). Splitting: per (grid, core, split option) the
    farthest part's hop cycles and the parts' cores, and per layer also the parts' byte-hops.
    A candidate's plan is then a pass over the ``F`` fusable layers (each layer's depth and head tile
    code from the one before) and a few gathers (:meth:`plan`)."""

    def __init__(self, ft: FusionTables, *, sram_kib, grids: list, n_slots: int, dtype, device) -> None:
        self.ft, self.L = ft, ft.layer_index.shape[0]
        i32 = dict(dtype=torch.int32, device=device)
        if ft.fusion:
            F, nT = ft.fusable_index, ft.n_tiles
            # each fusable layer after a fusable one continues that layer's stack; the longest run bounds the depth
            self.chained, runs = [], []
            for i, l in enumerate(ft.fusable):
                self.chained.append(i > 0 and ft.fusable[i - 1] == l - 1)
                runs.append(runs[-1] + 1 if self.chained[-1] else 1)
            depth = max(runs) + 1
            head = (F[:, None] - torch.arange(depth, device=device)[None, :]).clamp_(min=0)  # [F, depth]
            both = ft.tiles[head[..., None] * nT + torch.arange(nT, device=device)]  # [F, depth, tile code]
            tiles, inv, halo = both.real, both.imag, ft.halo[F][:, :, None]
            self.share = first_share(halo, tiles, inv).reshape(-1)
            self.tiles, self.inv = tiles.reshape(-1).contiguous(), inv.reshape(-1).contiguous()
            self.sram = torch.sort(torch.as_tensor(sram_kib, dtype=dtype, device=device)).values
            weights = ft.upto[F] - ft.before[head]  # [F, depth]
            self.fits = tile_fits(inv[..., None], halo[..., None], ft.tile_room[F][:, :, None, None], weights[:, :, None, None],
                                  ft.filter_room, self.sram).reshape(-1)
            self.stack_offset = (torch.arange(len(ft.fusable), **i32) * (depth * nT))[:, None]
        if ft.splitting:
            O, S, G = len(ft.options), n_slots, len(grids)
            rows, cols = (torch.tensor([g[i] for g in grids], dtype=torch.long, device=device)[:, None, None] for i in (0, 1))
            core = torch.arange(S, device=device)[None, :, None]
            far, total, cores = split_parts(core, ft.split_k[None, None, :], rows * cols, cols, ft.max_split, dtype)  # [G, S, O]
            self.far_cycles = (far * (2 * ft.hop_cycles)).reshape(-1)
            self.cores = cores.reshape(G * S * O, ft.max_split)
            self.byte_hops = (ft.part_bytes.view(self.L, 1, 1, O) * total[None]).reshape(-1)  # [L, G, S, O]
            self.n_options, self.grid_step = O, S * O
            self.layer_options = (torch.arange(self.L, **i32) * O)[:, None]
            self.key_step = G * S * O  # a layer's step in the byte-hop table's keys
            self.layer_keys = (torch.arange(self.L, **i32) * self.key_step)[:, None]

    def plan(self, *, fuse, tile, split, grid, core, sram_kib, link_bytes_per_cycle, buf, detail: bool = False) -> dict:
        """:func:`schedule_plan`'s result from codes ``[L, P]`` int32 (``fuse`` bool; ``grid`` ``[P]``,
        ``core`` the slots), except: ``parts`` is ``(key, cores)``, layer ``l``'s parts' cores being
        ``cores[key[l]]``; the fusion terms are ``[F, P]``, :func:`stack_terms`' inputs ``stack_fused``,
        ``share`` and ``inv_tiles``; ``fused``, ``fused_out``, ``tiles`` and ``split`` ``[L, P]`` (what
        :func:`~codesign.model.evaluation.layer_detail` reads) come only with ``detail``. Temporaries
        are written into ``buf(tag, shape, dtype)``."""
        ft, L, P = self.ft, self.L, core.shape[1]
        dt = link_bytes_per_cycle.dtype
        if core.device.type == "cpu" and _compiled.AVAILABLE and not detail:
            return self._compiled(fuse, tile, split, grid, core, sram_kib, link_bytes_per_cycle, buf)
        out, variant = {}, None
        if ft.splitting:
            key = torch.mul(core, self.n_options, out=buf("plan.key", (L, P), torch.int32)).add_(split).add_((grid * self.grid_step)[None, :])
            index = torch.add(split, self.layer_options, out=buf("plan.index", (L, P), torch.int32)).view(-1)
            cycles = torch.index_select(ft.noc_bytes, 0, index, out=buf("plan.split_cycles", (L * P,), dt)).view(L, P)
            far = torch.index_select(self.far_cycles, 0, key.view(-1), out=buf("plan.far", (L * P,), dt)).view(L, P)
            out["split_cycles"] = cycles.mul_(1.0 / link_bytes_per_cycle).add_(far)
            torch.add(key, self.layer_keys, out=index.view(L, P))
            out["split_byte_hops"] = torch.index_select(self.byte_hops, 0, index, out=far.view(-1)).view(L, P).sum(dim=0)
            out["parts"] = (key, self.cores)
            variant = torch.index_select(ft.variant_of, 0, split.view(-1), out=buf("plan.variant", (L * P,), torch.int32)).view(L, P)
            if detail:
                out["split"] = ft.split_k[split.long()]
        if ft.fusion:
            variant = buf("plan.variant", (L, P), torch.int32).zero_() if variant is None else variant
            self._fusion(out, fuse, tile, split, sram_kib, variant, buf, detail)
        out["variant"] = variant
        return out

    def _compiled(self, fuse, tile, split, grid, core, sram_kib, link_bytes_per_cycle, buf) -> dict:
        """:meth:`plan` without detail, by the compiled loop (:func:`~codesign.model._compiled.plan`): the same values."""
        ft, L, P, dt = self.ft, self.L, core.shape[1], link_bytes_per_cycle.dtype
        F = len(ft.fusable)
        empty = lambda *shape, dtype=dt: torch.empty(shape, dtype=dtype)  # noqa: E731  (a part the design does not have)
        out = {"variant": buf("plan.variant", (L, P), torch.int32)}
        if ft.splitting:
            out.update(split_cycles=buf("plan.split_cycles", (L, P), dt), split_byte_hops=buf("plan.split_byte_hops", (P,), dt),
                       parts=(buf("plan.key", (L, P), torch.int32), self.cores))
            split_in = (split, ft.noc_bytes, self.far_cycles, self.byte_hops, self.n_options, self.grid_step, self.key_step,
                        ft.variant_of, ft.alone)
            split_out = (out["parts"][0], out["split_cycles"], out["split_byte_hops"])
        else:
            split_in = (empty(0, 0, dtype=torch.int32), empty(1), empty(1), empty(1), 1, 0, 0, empty(1, dtype=torch.int32), empty(1, dtype=torch.bool))
            split_out = (empty(0, 0, dtype=torch.int32), empty(0, 0), empty(P))
        if ft.fusion:
            out.update(stack_fused=buf("plan.fused", (F, P), torch.bool), share=buf("plan.share", (F, P), dt), inv_tiles=buf("plan.inv", (F, P), dt))
            fusion_in = (fuse, tile, sram_kib.contiguous(), ft.fusable_index, torch.tensor(self.chained), ft.n_tiles, self.stack_offset[:, 0].contiguous(),
                         self.share, self.inv, self.fits, self.sram)
            fusion_out = (out["stack_fused"], out["share"], out["inv_tiles"])
        else:
            fusion_in = (empty(0, 0, dtype=torch.bool), empty(0, 0, dtype=torch.int32), empty(P), empty(0, dtype=torch.long), empty(0, dtype=torch.bool),
                         1, empty(0, dtype=torch.int32), empty(1), empty(1), empty(1, dtype=torch.bool), empty(1))
            fusion_out = (empty(0, 0, dtype=torch.bool), empty(0, 0), empty(0, 0))
        arrays = lambda values: tuple(v.numpy() if isinstance(v, torch.Tensor) else v for v in values)  # noqa: E731
        _compiled.plan(*arrays((core, grid, (1.0 / link_bytes_per_cycle).reshape(-1).contiguous(), out["variant"])), arrays(split_in),
                       arrays(split_out), arrays(fusion_in), arrays(fusion_out))
        return out

    def _fusion(self, out: dict, fuse, tile, split, sram_kib, variant, buf, detail: bool) -> None:
        """:meth:`plan`'s fusion terms, and the fused boundaries' codes added to ``variant``."""
        ft, L, P = self.ft, self.L, tile.shape[1]
        F, nF, nT = ft.fusable_index, len(ft.fusable), ft.n_tiles
        want = fuse.index_select(0, F)
        if ft.splitting:  # split layers are never fused
            alone = torch.index_select(ft.alone, 0, split.view(-1), out=buf("plan.alone", (L * P,), torch.bool)).view(L, P)
            want &= alone.index_select(0, F)
            want &= alone.index_select(0, ft.producer_index)
        # Each fusable layer's depth d in its stack and its head's tile code t, as d·nT + t (d = 0 where not fused).
        state = buf("plan.state", (nF, P), torch.int32)
        for i, l in enumerate(ft.fusable):
            torch.where(want[i], (state[i - 1] if self.chained[i] else tile[l - 1]) + nT, tile[l], out=state[i])
        index = state.add_(self.stack_offset).view(-1)
        share = torch.index_select(self.share, 0, index, out=buf("plan.share", (nF * P,), self.share.dtype)).view(nF, P)
        inv = torch.index_select(self.inv, 0, index, out=buf("plan.inv", (nF * P,), self.inv.dtype)).view(nF, P)
        sram = torch.searchsorted(self.sram, sram_kib.contiguous()).clamp_(max=len(self.sram) - 1).to(torch.int32)
        fits_index = torch.mul(state, len(self.sram), out=buf("plan.fits_index", (nF, P), torch.int32)).add_(sram[None, :])
        fused = torch.index_select(self.fits, 0, fits_index.view(-1), out=buf("plan.fused", (nF * P,), torch.bool)).view(nF, P)
        fused.logical_and_(want)
        code = buf("plan.code", (nF, P), torch.int32).copy_(fused)
        for i, l in enumerate(ft.fusable):  # fused_in + 2·fused_out (row by row: 7× faster than index_add_ here)
            variant[l].add_(code[i])
        for i, l in enumerate(ft.fusable):
            variant[l - 1].add_(code[i].mul_(2))
        out.update(stack_fused=fused, share=share, inv_tiles=inv)
        if detail:  # the layer-major [L, P] fields layer_detail reads
            whole = torch.zeros(L, P, dtype=torch.bool, device=fused.device).index_copy_(0, F, fused)
            fused_out = torch.zeros_like(whole)
            fused_out[:-1] = whole[1:]
            tiles = ft.tiles[ft.layer_index * nT + tile.long()].real.index_copy(0, F, self.tiles[index].view(nF, P))
            out.update(fused=whole, fused_out=fused_out, tiles=tiles)


class StackInputs(NamedTuple):
    """The list schedule's ``stack`` before its terms are formed (the tabulated path's): the
    fusable layers, and per fusable layer ``[F, P]`` whether its boundary is fused, its
    :func:`first_share` and one over its stack's tile count, and the hop latency ``[E, P]`` of every
    edge (the rows of the list schedule's ``transfer``). The compiled list schedule forms the terms
    as it goes; the torch one forms them first (:meth:`terms`)."""

    fusable: list
    fused: torch.Tensor
    share: torch.Tensor
    inv_tiles: torch.Tensor
    latency: torch.Tensor

    def terms(self, cycles, transfer, in_edges) -> tuple:
        """:func:`stack_terms` of these inputs: ``cycles`` ``[L, P]``, ``transfer`` ``[E, P]``."""
        rows = torch.tensor([in_edges[l][-1][1] for l in self.fusable], dtype=torch.long, device=cycles.device)
        return stack_terms(self.fusable, self.fused, self.share, self.inv_tiles, cycles, transfer.index_select(0, rows),
                           self.latency.index_select(0, rows))


def stack_timing(ft: FusionTables, plan: dict, cycles, transfer, latency) -> tuple:
    """The list schedule's ``stack`` from :func:`schedule_plan`'s ``plan`` (:func:`stack_terms`)."""
    F = ft.fusable_index
    fused, tiles, inv = (plan[name].index_select(0, F) for name in ("fused", "tiles", "inv_tiles"))
    return stack_terms(ft.fusable, fused, first_share(ft.halo[F], tiles, inv), inv, cycles, transfer, latency)


def stack_terms(fusable: list, fused, share, inv_tiles, cycles, transfer, latency) -> tuple:
    """The list schedule's ``stack``: the fusable layers and their terms ``[F, P]`` (``±inf`` where the
    boundary is not fused, which leaves the layer-by-layer schedule as it is).

    Args:
        fusable: the fusable layers (a list).
        fused: ``[F, P]`` bool, whether each fusable layer's boundary is fused.
        share: ``[F, P]``, :func:`first_share` of the layer's stack.
        inv_tiles: ``[F, P]``, one over the stack's tile count.
        cycles: each layer's cycles ``[L, P]``.
        transfer: NoC time ``[F, P]`` of each fusable layer's edge from layer ``l − 1`` (0 on one core).
        latency: its hops × router latency ``[F, P]``.

    The terms: ``first`` (from the producer's start to the first input tiles' arrival), ``last``
    (from the producer's end to this layer's end: its last tile's transfer and one tile) and
    ``stream`` (from the producer's start: the first tiles, all the bytes over the link, one tile).
    (No op writes into a tensor autograd needs: the direct path may differentiate through them.)
    """
    layers = torch.tensor(fusable, dtype=torch.long, device=cycles.device)
    producer = torch.index_select(cycles, 0, layers - 1).mul_(share)
    tile_transfer = torch.sub(transfer, latency).mul_(inv_tiles).add_(latency)
    one_tile = torch.index_select(cycles, 0, layers).mul_(inv_tiles)
    first = torch.add(producer, tile_transfer)
    last = tile_transfer.add_(one_tile)
    stream = producer.add_(transfer).add_(one_tile)
    apart = torch.logical_not(fused)
    return fusable, first.masked_fill_(apart, float("inf")), last.masked_fill_(apart, -float("inf")), stream.masked_fill_(apart, -float("inf"))


def tile_times(ft: FusionTables, *, fused, fused_out, tiles, cycles, start, finish, transfer, latency) -> list[tuple[list, list]]:
    """One candidate's tiles in time (the detail path: plain lists, one design): per layer the
    starts and ends of its ``T`` tiles (one for a layer in no stack), from the closed form the
    list schedule uses (:func:`stack_terms`), extended from the first tile to every tile.

    Args (per layer ``[L]``, any unit of time as long as it is one): ``fused``, ``fused_out``
    (bool), ``tiles`` (``T`` of the layer's stack), ``cycles`` (its busy time), ``start`` and
    ``finish`` (the list schedule's), and ``transfer``/``latency`` of each fusable layer's edge
    from ``l − 1`` (dicts by layer).

    A fused layer's tile ``k`` needs ``n_k = min(k + 1 + ⌈halo·T⌉, T)`` of its producer's tiles
    (``n_0`` is :func:`first_share`'s), produced at the producer's start plus ``n_k`` of its ``T``
    equal tiles and moved in one tile's transfer; its last tile needs the producer's last one
    (at the producer's end) and the whole edge over the link (the terms ``last`` and ``stream``).
    Each tile starts when its inputs are there and the tile before it is done, but no later than
    back to back before the layer's end in the list schedule: the first tile starts at the layer's
    ``start`` and the last ends at its ``finish`` (the model's times; where a tile-by-tile
    schedule would end later, the model's closed form is the optimistic one, see docs/model.md).
    Any other layer runs its tiles back to back from its start to its finish.
    """
    out = []
    for l in range(len(cycles)):
        T = int(tiles[l]) if fused[l] or fused_out[l] else 1
        one = cycles[l] / T
        starts = [start[l] + k * one for k in range(T)]
        if fused[l]:
            p, inv = l - 1, 1.0 / T
            tile_transfer = (transfer[l] - latency[l]) * inv + latency[l]
            halo = math.ceil(float(ft.halo[l, 0]) * T)
            arrive = [start[p] + cycles[p] * min(k + 1 + halo, T) * inv + tile_transfer for k in range(T)]
            arrive[-1] = max(finish[p] + tile_transfer, start[p] + cycles[p] * min(1 + halo, T) * inv + transfer[l])
            ready = start[l]
            for k in range(T):
                ready = start[l] if k == 0 else max(ready + one, arrive[k])
                starts[k] = min(ready, finish[l] - (T - k) * one) if k else start[l]
        ends = [s + one for s in starts[:-1]] + [finish[l]]
        out.append((starts, ends))
    return out
