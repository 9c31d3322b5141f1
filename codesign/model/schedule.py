"""List scheduling of a layer DAG over the cores, batched over candidates.

Layers are dispatched in the workload's topological order (the list priority).
Layer ``l`` on core ``c`` starts when its inputs have arrived and its core is free:

    start[l]  = max(core_free[c], max over preds u of (finish[u] + transfer[u → l]))
    finish[l] = start[l] + cycles[l]

so a layer never starts before its inputs have arrived (critical path) and two
layers never overlap on one core (contention). ``transfer`` is the NoC time of the
edge, zero when producer and consumer share a core. The loop runs over layers
(sequential by nature); every step is one tensor operation over all ``P``
candidates.
"""

from __future__ import annotations

import torch


def list_schedule(
    cycles: torch.Tensor,
    core: torch.Tensor,
    transfer: torch.Tensor,
    preds: torch.Tensor,
    pred_mask: torch.Tensor,
    n_slots: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and finish cycle of every layer.

    Args:
        cycles: ``[P, L]`` busy cycles of each layer on its core.
        core: ``[P, L]`` long, core of each layer (``< n_slots``).
        transfer: ``[P, L, J]`` cycles for the tensor of predecessor ``j`` to reach layer ``l``.
        preds: ``[L, J]`` long, predecessor layer indices (padding arbitrary).
        pred_mask: ``[L, J]`` bool, which predecessor entries are real.
        n_slots: number of core slots (the largest core count in the space).

    Returns:
        ``(start, finish)``, each ``[P, L]``.
    """
    P, L = cycles.shape
    start = torch.zeros_like(cycles)
    finish = torch.zeros_like(cycles)
    core_free = torch.zeros(P, n_slots, dtype=cycles.dtype, device=cycles.device)
    has_preds = pred_mask.any(dim=1).tolist()
    for l in range(L):
        c = core[:, l : l + 1]
        ready = core_free.gather(1, c).squeeze(1)
        if has_preds[l]:
            idx = preds[l][pred_mask[l]]
            arrival = finish[:, idx] + transfer[:, l, : idx.numel()]
            ready = torch.maximum(ready, arrival.amax(dim=1))
        start[:, l] = ready
        finish[:, l] = ready + cycles[:, l]
        core_free.scatter_(1, c, finish[:, l : l + 1])
    return start, finish
