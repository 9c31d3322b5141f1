"""List scheduling of a layer DAG over the cores, batched over candidates.

Layers are dispatched in the workload's topological order (the list priority).
Layer ``l`` on core ``c`` starts when its inputs have arrived and its core is free:

    start[l]  = max(core_free[c], max over preds u of (finish[u] + transfer[u → l]))
    finish[l] = start[l] + cycles[l]

so a layer never starts before its inputs have arrived (critical path) and two
layers never overlap on one core (contention). ``transfer`` is the NoC time of the
edge, zero when producer and consumer share a core. The loop runs over layers
(sequential by nature); every step is one tensor operation over all ``P``
candidates. On the cpu the same recurrence runs compiled, a pass per layer
(:mod:`codesign.model._compiled`, numba; the same bits): the torch loop is the cuda and
autograd path, and the cpu's where numba is missing.

:func:`schedule_latency` runs the analytical model's schedule with per-layer busy times from
elsewhere (an oracle's cycles, a surrogate's predictions), so that a design's latency keeps
the schedule's structure whoever prices its layers.
"""

from __future__ import annotations

import torch

from codesign.model import _compiled
from codesign.model.evaluation import GB, chip_cycles
from codesign.model.fusion import StackInputs


def list_schedule(
    cycles: torch.Tensor,
    core: torch.Tensor,
    transfer: torch.Tensor,
    preds: torch.Tensor,
    pred_mask: torch.Tensor,
    n_slots: int,
    *,
    pred_lists: list[list[int]] | None = None,
    stack: tuple | None = None,
    parts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and finish cycle of every layer.

    Args:
        cycles: ``[P, L]`` busy cycles of each layer on its core.
        core: ``[P, L]`` long, core of each layer (``< n_slots``).
        transfer: ``[P, L, J]`` cycles for the tensor of predecessor ``j`` to reach layer ``l``.
        preds: ``[L, J]`` long, predecessor layer indices (padding arbitrary).
        pred_mask: ``[L, J]`` bool, which predecessor entries are real (the real ones first).
        n_slots: number of core slots (the largest core count in the space).
        pred_lists: the real predecessors of each layer, if the caller has them as lists
            (read from ``preds``/``pred_mask`` otherwise: a host sync on cuda).
        stack: fused stacks: :func:`~codesign.model.fusion.stack_timing`'s result (see :func:`list_schedule_lp`).
        parts: split layers: the cores ``[L, P, K]`` of each layer's parts (see :func:`list_schedule_lp`).

    Returns:
        ``(start, finish)``, each ``[P, L]``.
    """
    if pred_lists is None:
        pred_lists = predecessor_lists(preds, pred_mask)
    P, L, J = transfer.shape
    in_edges = [[(p, l * J + j) for j, p in enumerate(row)] for l, row in enumerate(pred_lists)]
    # Layer-major: each step reads and writes contiguous rows.
    start, finish = list_schedule_lp(cycles.t().contiguous(), core.t().contiguous(),
                                     transfer.permute(1, 2, 0).reshape(L * J, P), in_edges, n_slots, stack=stack, parts=parts)
    return start.t(), finish.t()


def predecessor_lists(preds: torch.Tensor, pred_mask: torch.Tensor) -> list[list[int]]:
    """The real predecessors of each layer, from the padded ``[L, J]`` tensors."""
    return [[p for p, real in zip(row, mask) if real] for row, mask in zip(preds.tolist(), pred_mask.tolist())]


def list_schedule_lp(
    cycles: torch.Tensor,
    core: torch.Tensor,
    transfer: torch.Tensor,
    in_edges: list[list[tuple[int, int]]],
    n_slots: int,
    *,
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    stack: tuple | None = None,
    parts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`list_schedule` in the layer-major layout.

    Args:
        cycles: ``[L, P]`` busy cycles of each layer on its core.
        core: ``[L, P]`` long, core of each layer.
        transfer: ``[E, P]`` cycles of each edge between layers.
        in_edges: for each layer, its ``(predecessor layer, edge row of transfer)`` pairs.
        n_slots: number of core slots.
        out: tensors to write ``start``, ``finish`` (``[L, P]``), the cores' free times
            (``[P, n_slots]``) and a scratch int32 ``[L, P]`` into, instead of new ones.
        stack: ``(fusable, first, last, stream)``: the layers ``l`` whose last input edge, from
            ``l − 1``, may be fused, and their terms ``[F, P]`` (``±inf`` where not fused), or the
            inputs they are formed from (:class:`~codesign.model.fusion.StackInputs`). Such a
            layer's input from ``l − 1`` arrives at ``min(finish[l−1] + transfer, start[l−1] + first)`` (its first
            tiles), and it ends no earlier than ``finish[l−1] + last`` nor ``start[l−1] + stream``.
        parts: split layers: the cores ``[L, P, K]`` (long) of each layer's ``K`` parts, its own core
            first and again where a part is absent, or ``(key, cores)``: layer ``l``'s are
            ``cores[key[l]]`` (``key`` ``[L, P]``, ``cores`` ``[N, K]``). A split layer waits for all
            its cores and holds them until it ends.

    Returns:
        ``(start, finish)``, each ``[L, P]``. Every step is a handful of ops on ``[P]`` rows.
    """
    L, P = cycles.shape
    terms = [] if stack is None else [t for t in stack[1:] if isinstance(t, torch.Tensor)]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (cycles, transfer, *terms))
    compiled = cycles.device.type == "cpu" and _compiled.AVAILABLE and not grad
    if isinstance(stack, StackInputs) and not compiled:
        stack = stack.terms(cycles, transfer, in_edges)
    if grad:
        return _list_schedule_differentiable(cycles, core, transfer, in_edges, n_slots, stack, parts)
    if out is None:
        start, finish = torch.empty_like(cycles), torch.empty_like(cycles)
        core_free = torch.zeros(P, n_slots, dtype=cycles.dtype, device=cycles.device)
        slot = None  # (the torch loop's scratch: made there when it runs)
    else:
        start, finish, core_free, slot = out
        core_free.zero_()
    if compiled:  # the same recurrence, compiled
        _compiled.list_schedule(cycles, core, transfer, in_edges, start, finish, core_free, stack=stack, parts=parts)
    else:
        _list_schedule_torch(cycles, core, transfer, in_edges, n_slots, start, finish, core_free, slot, stack, parts)
    return start, finish


def _list_schedule_torch(cycles, core, transfer, in_edges, n_slots, start, finish, core_free, slot, stack, parts) -> None:
    """:func:`list_schedule_lp`'s loop in torch ops (cuda; the cpu without numba), writing into its outputs."""
    L, P = cycles.shape
    slot = torch.empty(L, P, dtype=torch.int32, device=cycles.device) if slot is None else slot
    # The cores' free times candidate-major [P, n_slots]: one candidate's cores share a cache line.
    # They are read through a flat index (p·n_slots + core: a 1-D gather, three times faster than
    # gather along dim 1) and written with scatter.
    torch.add(core, (torch.arange(P, dtype=torch.int32, device=core.device) * n_slots)[None, :], out=slot)
    free = core_free.view(-1)
    fused = {l: i for i, l in enumerate(stack[0])} if stack is not None else {}
    key, cores = parts if isinstance(parts, tuple) else (None, parts)
    for l in range(L):
        ready = start[l]
        if parts is None:
            torch.index_select(free, 0, slot[l], out=ready)
        else:  # every core of the layer: [P, K]
            here = cores[l] if key is None else cores.index_select(0, key[l])
            torch.amax(core_free.gather(1, here), dim=1, out=ready)
        i = fused.get(l)
        edges = in_edges[l] if i is None else in_edges[l][:-1]  # a fused layer's last input is from l − 1
        for p, e in edges:  # max is exact: the order of the inputs does not matter
            torch.maximum(ready, finish[p] + transfer[e], out=ready)
        if i is not None:
            p, e = in_edges[l][-1]
            torch.maximum(ready, torch.minimum(finish[p] + transfer[e], start[p] + stack[1][i]), out=ready)
            torch.add(ready, cycles[l], out=finish[l])
            torch.maximum(finish[l], torch.maximum(finish[p] + stack[2][i], start[p] + stack[3][i]), out=finish[l])
        else:
            torch.add(ready, cycles[l], out=finish[l])
        if parts is None:
            core_free.scatter_(1, core[l].view(P, 1), finish[l].view(P, 1))
        else:  # (a part absent is the layer's own core again: the same value written twice)
            core_free.scatter_(1, here, finish[l].view(P, 1).expand_as(here))


def _list_schedule_differentiable(cycles, core, transfer, in_edges, n_slots, stack=None, parts=None):
    """:func:`list_schedule_lp` without writing into tensors (autograd records no in-place ops):
    the same operations on the same values, so the same results."""
    L, P = cycles.shape
    core_free = torch.zeros(P, n_slots, dtype=cycles.dtype, device=cycles.device)
    starts, finishes = [], []
    fused = {l: i for i, l in enumerate(stack[0])} if stack is not None else {}
    for l in range(L):
        c = core[l].view(P, 1) if parts is None else parts[l] if not isinstance(parts, tuple) else parts[1][parts[0][l].long()]
        ready = core_free.gather(1, c).amax(dim=1)
        i = fused.get(l)
        for p, e in (in_edges[l] if i is None else in_edges[l][:-1]):
            ready = torch.maximum(ready, finishes[p] + transfer[e])
        if i is not None:
            p, e = in_edges[l][-1]
            ready = torch.maximum(ready, torch.minimum(finishes[p] + transfer[e], starts[p] + stack[1][i]))
            finish = torch.maximum(ready + cycles[l], torch.maximum(finishes[p] + stack[2][i], starts[p] + stack[3][i]))
        else:
            finish = ready + cycles[l]
        starts.append(ready)
        finishes.append(finish)
        core_free = core_free.scatter(1, c, finish.view(P, 1).expand(c.shape))
    return torch.stack(starts), torch.stack(finishes)


def schedule_latency(model, candidates, layer_cycles: torch.Tensor, dram_bytes: torch.Tensor) -> torch.Tensor:
    """Latency (s) of layer-by-layer designs whose layers take ``layer_cycles``.

    The analytical model's schedule with other per-layer busy times (an oracle's, a
    surrogate's): the list schedule of the DAG over the cores with the model's NoC transfers,
    bounded below by the chip's total DRAM traffic over the DRAM bandwidth, as in
    :meth:`~codesign.model.analytical.AnalyticalModel.evaluate`.

    Args:
        model: the :class:`~codesign.model.analytical.AnalyticalModel` of the space.
        candidates: ``P`` candidates (layer-by-layer mode, see :func:`check_layer_by_layer`).
        layer_cycles: ``[P, L]`` or ``[E, P, L]`` (``E`` alternatives, e.g. ensemble members).
        dram_bytes: ``[P, L]`` per-layer DRAM bytes (the model's).

    Returns:
        ``[P]`` or ``[E, P]`` seconds.
    """
    lw = model.lw
    squeeze = layer_cycles.dim() == 2
    cycles = layer_cycles[None] if squeeze else layer_cycles
    E, P, L = cycles.shape
    transfer, _ = model.transfers(candidates)  # [P, L, J]
    cycles = cycles.to(device=transfer.device, dtype=transfer.dtype).reshape(E * P, L)
    _, finish = list_schedule(cycles, candidates.core.repeat(E, 1), transfer.repeat(E, 1, 1), lw.preds, lw.pred_mask,
                              model.n_slots, pred_lists=model.pred_lists)
    dram_bytes_per_cycle = (candidates.dram_gbps / candidates.clock_ghz).to(transfer.dtype)
    total = chip_cycles(finish.amax(dim=1).reshape(E, P), dram_bytes.sum(dim=1)[None], dram_bytes_per_cycle[None])
    latency = total / (candidates.clock_ghz.to(transfer.dtype) * GB)[None]
    return latency[0] if squeeze else latency


def with_vector_unit(model, array_cycles: torch.Tensor, layers: dict) -> torch.Tensor:
    """Per-layer cycles ``[..., P, L]`` from an array simulator's (or a prediction of them) and the
    analytical model's per-layer detail ``layers``: a vector layer takes the model's cycles, a MAC
    layer ``max(array cycles, its epilogue's vector cycles)`` (equal to the array's with no epilogue)."""
    vector = model.lw.is_vector
    return torch.where(vector, layers["total_cycles"], torch.maximum(array_cycles, layers["vector_cycles"]))


def check_layer_by_layer(candidates, space) -> None:
    """Latency from per-layer cycles (:func:`schedule_latency`) is defined for layer-by-layer
    execution only: a pipelined run's layers take one sample's cycles, not the batch's."""
    if space.lowered.batch > 1 and bool(candidates.pipelined.any()):
        raise ValueError("oracle latency is defined for layer_by_layer mode only (this candidate is pipelined)")
