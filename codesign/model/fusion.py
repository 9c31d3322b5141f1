"""Fused stacks and split layers: the formulas both evaluation paths share (written once).

A layer-by-layer schedule may *fuse* the boundary between layer ``l − 1`` and layer ``l`` when
``l − 1`` is ``l``'s only producer and ``l`` its only consumer (``LoweredWorkload.fusable``).
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
to send the parts their inputs and gather their outputs at the layer's core (:func:`split_noc`).
Its DRAM bytes and energy are ``k`` times a part's. Split layers are never fused.

Fusion and splitting apply to layer-by-layer candidates; pipelined candidates ignore them.
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


def schedule_plan(model, c) -> dict:
    """What fusion and splitting change for candidates ``c`` (:class:`~codesign.space.Candidates`,
    or the tabulated path's view with the same fields), candidate-major ``[P, L]``: ``fused``,
    ``fused_out``, ``tiles`` (with fusion); ``split``, ``split_rows``, the parts' inputs ``part``,
    ``split_cycles``, ``split_byte_hops`` ``[P]`` and ``parts`` (with splitting). Empty without either."""
    lw, out = model.lw, {}
    layer_by_layer = ~c.pipelined[:, None]
    split = None if c.split is None else torch.where(layer_by_layer, c.split, 1.0)
    if c.fuse is not None:
        fused, tiles = fused_stacks(lw, model.split, fuse=c.fuse & layer_by_layer, tile_rows=c.tile_rows, split=split,
                                    sram_kib=c.sram_kib)
        out.update(fused=fused, fused_out=fused_neighbours(fused), tiles=tiles)
    if split is not None:
        inputs = model.formulas.inputs("batch")
        part, in_frac, out_frac = split_part(lw, inputs, split, c.split_rows)
        cycles, byte_hops, parts = split_noc(
            lw, split=split, in_frac=in_frac, out_frac=out_frac, ifmap_bytes=inputs["ifmap_bytes"], ofmap_bytes=inputs["ofmap_bytes"],
            core=c.core, n_cores=c.grid_rows * c.grid_cols, grid_cols=c.grid_cols, link_bytes_per_cycle=c.noc_link_gbps / c.clock_ghz,
            hop_cycles=model.hop_cycles, max_split=int(max(model.space.design.schedule.split)))
        out.update(split=split, split_rows=c.split_rows, part=part, split_cycles=cycles, split_byte_hops=byte_hops, parts=parts)
    return out


def fused_stacks(lw, split_fractions, *, fuse, tile_rows, split, sram_kib) -> tuple[torch.Tensor, torch.Tensor]:
    """Which boundaries are fused and each layer's tiles per stack, candidate-major ``[P, L]``.

    ``fuse`` (bool) is what the candidates ask for (fusable boundaries only); a boundary next to a
    split layer, or whose stack does not fit the SRAM (module docstring), is not fused."""
    P, L = fuse.shape
    want = fuse
    if split is not None:
        alone = split == 1
        want = want & alone & torch.cat([alone[:, :1], alone[:, :-1]], dim=1)
    index = torch.arange(L, device=fuse.device)
    head = torch.cummax(torch.where(want, 0, index), dim=1).values  # first layer of each layer's stack
    tiles = torch.ceil(lw.out_rows[head] / tile_rows.gather(1, head))
    in_rows = torch.cat([lw.out_rows[:1], lw.out_rows[:-1]])  # the producer's rows (fusable boundaries)
    tile_bytes = lw.ifmap_bytes * torch.clamp(1.0 / tiles + lw.halo_rows / in_rows, max=1.0)
    sram = sram_kib[:, None] * 1024.0
    share_i, share_f, share_o = split_fractions
    weights = torch.where(lw.has_weights, lw.filter_bytes, 0.0)
    before = torch.cumsum(weights, dim=0) - weights  # weights of the layers before each one
    stack_weights = (before + weights)[None, :] - before[head]
    fits = (tile_bytes <= sram * min(share_i, share_o) / 2) & (stack_weights <= sram * share_f)
    return want & fits, tiles


def fused_neighbours(fused: torch.Tensor) -> torch.Tensor:
    """Whether each layer's output boundary is fused ``[P, L]`` (the next layer's input is)."""
    return torch.cat([fused[:, 1:], torch.zeros_like(fused[:, :1])], dim=1)


def stack_timing(lw, fused, tiles, cycles, transfer, latency) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The list schedule's terms of each fused layer, layer-major ``[L, P]`` (``+inf``/``−inf``
    where the boundary is not fused, which leaves the layer-by-layer schedule as it is).

    Args:
        fused, tiles: :func:`fused_stacks`' results, layer-major.
        cycles: each layer's cycles ``[L, P]``.
        transfer: NoC time ``[L, P]`` of each layer's edge from layer ``l − 1`` (0 on one core).
        latency: its hops × router latency ``[L, P]``.

    Returns:
        ``first`` (from the producer's start to the first input tiles' arrival), ``last`` (from
        the producer's end to this layer's end: its last tile's transfer and one tile) and
        ``stream`` (from the producer's start: the first tiles, all the bytes over the link, one tile).
    """
    in_rows = torch.cat([lw.out_rows[:1], lw.out_rows[:-1]])[:, None]
    ahead = torch.ceil(lw.halo_rows[:, None] * tiles / in_rows)
    first_share = torch.minimum(1.0 + ahead, tiles) / tiles
    producer = torch.cat([torch.zeros_like(cycles[:1]), cycles[:-1]]) * first_share
    tile_transfer = torch.where(transfer > 0, (transfer - latency) / tiles + latency, 0.0)
    one_tile = cycles / tiles
    inf = torch.tensor(float("inf"), dtype=cycles.dtype, device=cycles.device)
    first = torch.where(fused, producer + tile_transfer, inf)
    last = torch.where(fused, tile_transfer + one_tile, -inf)
    stream = torch.where(fused, producer + transfer + one_tile, -inf)
    return first, last, stream


def split_noc(lw, *, split, in_frac, out_frac, ifmap_bytes, ofmap_bytes, core, n_cores, grid_cols, link_bytes_per_cycle,
              hop_cycles: float, max_split: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NoC cycles ``[P, L]`` and byte-hops ``[P]`` of the split layers (0 where not split) and the
    cores of each layer's parts ``[P, L, max_split]`` (the layer's own core where a part is absent).

    Each part other than the layer's own sends and receives its share: its input
    (``ifmap · in_frac``) and its output (``ofmap · out_frac``), one after the other over the layer's
    core's link, plus the farthest part's hops there and back."""
    j = torch.arange(max_split, device=core.device)
    present = j < split[..., None]
    parts = torch.where(present, (core[..., None] + j) % n_cores[:, None, None], core[..., None])
    hops = core_hops(core[..., None], parts, grid_cols[:, None, None]).to(ifmap_bytes.dtype)
    part_bytes = ifmap_bytes * in_frac + ofmap_bytes * out_frac
    cycles = torch.where(split > 1, (split - 1) * part_bytes / link_bytes_per_cycle[:, None]
                         + 2 * hops.amax(dim=-1) * hop_cycles, 0.0)
    byte_hops = (part_bytes * hops.sum(dim=-1)).sum(dim=1)
    return cycles, byte_hops, parts
