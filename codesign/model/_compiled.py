"""The model's per-layer loops compiled for the cpu (numba): the list schedule
(:func:`~codesign.model.schedule.list_schedule_lp`) and the tabulated path's fusion/split plan
(:meth:`~codesign.model.fusion.CodedPlan.plan`), each the same operations on the same values in
the same order as its torch version, so the same bits.

The torch versions run a handful of tensor operations per layer over all candidates, each a pass
over memory (a split layer's parts add a gather and a scatter of ``[P, K]`` per layer, a fused
stack a step per boundary); compiled, one pass per layer does all of it for each candidate in
turn, about twice as fast for a design with fusion and splitting (``scripts/bench_eval.py``).
``tests/test_compiled.py`` checks each against its torch version. They release the GIL, so the
evaluator's chunk threads run them side by side. The torch versions remain the cuda and autograd
paths, and run on the cpu too where numba is missing (a Python it does not support yet):
:data:`AVAILABLE` says which.
"""

from __future__ import annotations

import numpy as np
import torch

try:
    from numba import config as _numba_config
    from numba import njit
except ImportError:  # numba is a dependency; on a Python (or numpy) it does not support yet the torch loops run
    njit = None

#: Whether the loops run compiled: numba imported, and its JIT not switched off (``NUMBA_DISABLE_JIT=1``
#: would run them as plain Python loops, far slower than the torch versions, which run instead).
AVAILABLE = njit is not None and not _numba_config.DISABLE_JIT


def _jit(fn, **options):
    """``fn`` compiled on first call (the GIL released) and cached on disk; without a writable cache
    folder (neither beside this module nor numba's user cache), compiled in each process."""
    if not AVAILABLE:
        return fn
    try:
        return njit(cache=True, nogil=True, **options)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return njit(nogil=True, **options)(fn)


def _compiled(fn):
    return _jit(fn)


def _inline(fn):
    return _jit(fn, inline="always")


@_inline
def _max(a, b):  # torch.maximum: NaN wins
    return a if a >= b or a != a else b


@_inline
def _min(a, b):  # torch.minimum: NaN wins
    return a if a <= b or a != a else b


@_compiled
def _schedule(cycles, core, transfer, edge_ptr, edge_pred, edge_row, fused_at, terms, raw, key, cores, start, finish, core_free):
    """Layer by layer, candidate by candidate: ``start``, ``finish`` ``[L, P]`` and ``core_free``
    ``[P, slots]`` written in place. ``fused_at[l]`` is layer ``l``'s row of the fused-stack arrays
    (−1 when it has none): ``terms`` (``first``, ``last``, ``stream``, :func:`~codesign.model.fusion.stack_terms`)
    or, when its arrays are empty, ``raw`` (``fused``, ``share``, ``inv_tiles`` ``[F, P]`` and the
    edges' hop latency ``[E, P]``), from which the terms are formed here as ``stack_terms`` forms
    them. ``cores`` ``[N, K]`` with ``K > 0`` gives the parts of layer ``l`` as ``cores[key[l, p]]``;
    ``K == 0`` means the layer's own ``core[l, p]``."""
    L, P = cycles.shape
    K = cores.shape[1]
    first, last, stream = terms
    fused, share, inv_tiles, latency = raw
    from_raw = first.shape[0] == 0
    core_free[:] = 0.0
    for l in range(L):
        i = fused_at[l]
        e_end = edge_ptr[l + 1] - 1 if i >= 0 else edge_ptr[l + 1]  # a fused layer's last input is from l − 1
        for p in range(P):
            if K > 0:
                row = key[l, p]
                ready = core_free[p, cores[row, 0]]
                for j in range(1, K):
                    ready = _max(ready, core_free[p, cores[row, j]])
            else:
                ready = core_free[p, core[l, p]]
            for e in range(edge_ptr[l], e_end):
                ready = _max(ready, finish[edge_pred[e], p] + transfer[edge_row[e], p])
            if i >= 0:
                q, r = edge_pred[e_end], edge_row[e_end]
                if from_raw:
                    if fused[i, p]:
                        hop = latency[r, p]
                        producer = cycles[q, p] * share[i, p]
                        tile_transfer = (transfer[r, p] - hop) * inv_tiles[i, p] + hop
                        one_tile = cycles[l, p] * inv_tiles[i, p]
                        ready = _max(ready, _min(finish[q, p] + transfer[r, p], start[q, p] + (producer + tile_transfer)))
                        end = _max(ready + cycles[l, p], _max(finish[q, p] + (tile_transfer + one_tile),
                                                              start[q, p] + ((producer + transfer[r, p]) + one_tile)))
                    else:  # (the terms' ±inf leave the layer-by-layer schedule as it is)
                        ready = _max(ready, finish[q, p] + transfer[r, p])
                        end = ready + cycles[l, p]
                else:
                    ready = _max(ready, _min(finish[q, p] + transfer[r, p], start[q, p] + first[i, p]))
                    end = _max(ready + cycles[l, p], _max(finish[q, p] + last[i, p], start[q, p] + stream[i, p]))
            else:
                end = ready + cycles[l, p]
            start[l, p] = ready
            finish[l, p] = end
            if K > 0:
                for j in range(K):
                    core_free[p, cores[row, j]] = end
            else:
                core_free[p, core[l, p]] = end


def list_schedule(cycles, core, transfer, in_edges, start, finish, core_free, stack=None, parts=None) -> None:
    """:func:`~codesign.model.schedule.list_schedule_lp` on cpu tensors (its arguments; ``start``,
    ``finish``, ``core_free`` written in place). ``stack`` is the terms ``(fusable, first, last,
    stream)`` or :class:`~codesign.model.fusion.StackInputs`."""
    L, P = cycles.shape
    edge_ptr = np.zeros(L + 1, dtype=np.int64)
    edge_ptr[1:] = np.cumsum([len(edges) for edges in in_edges])
    edge_pred = np.array([p for edges in in_edges for p, _ in edges], dtype=np.int64)
    edge_row = np.array([e for edges in in_edges for _, e in edges], dtype=np.int64)
    fused_at = np.full(L, -1, dtype=np.int64)
    none = np.zeros((0, 0), dtype=cycles.numpy().dtype)
    terms, raw = (none, none, none), (np.zeros((0, 0), dtype=bool), none, none, none)
    if stack is not None:
        fused_at[list(stack[0])] = np.arange(len(stack[0]))
        arrays = tuple(t.contiguous().numpy() for t in stack[1:])
        if len(arrays) == 3:
            terms = arrays
        else:
            raw = arrays
    if parts is None:
        key, cores = np.zeros((1, 1), dtype=np.int64), np.zeros((1, 0), dtype=np.int64)
    elif isinstance(parts, tuple):
        key, cores = parts[0].contiguous().numpy(), parts[1].contiguous().numpy()
    else:  # [L, P, K]: a row per layer and candidate
        key = torch.arange(L * P, dtype=torch.int64).view(L, P).numpy()
        cores = parts.reshape(L * P, -1).contiguous().numpy()
    _schedule(cycles.contiguous().numpy(), core.contiguous().numpy(), transfer.contiguous().numpy(), edge_ptr, edge_pred, edge_row, fused_at,
              terms, raw, key, cores, start.numpy(), finish.numpy(), core_free.numpy())


@_compiled
def plan(core, grid, inv_link, variant, split_in, split_out, fusion_in, fusion_out):
    """:meth:`~codesign.model.fusion.CodedPlan.plan` without detail: ``variant`` ``[L, P]`` and the
    outputs written in place, from the slots ``core`` ``[L, P]``, ``grid`` and one over the link's
    bytes per cycle ``[P]``.

    ``split_in``: the split codes ``[L, P]`` (no rows: no splitting), the plan's ``noc_bytes``,
    ``far_cycles`` and ``byte_hops`` tables, the option count, a grid's and a layer's step in
    the keys, and per option its variant and whether it is one core; ``split_out``: ``key``,
    ``split_cycles`` ``[L, P]`` and ``split_byte_hops`` ``[P]``. ``fusion_in``: the codes ``fuse``
    and ``tile`` ``[L, P]``, the SRAM ``[P]``, the fusable layers (none: no fusion), whether each
    continues the one before's stack, the tile-code count, each one's offset into the tables,
    the ``share``, ``inv`` and ``fits`` tables and the SRAM choices (sorted); ``fusion_out``:
    ``fused``, ``share``, ``inv_tiles`` ``[F, P]``."""
    split, noc_bytes, far_cycles, hop_table, n_options, grid_step, key_step, variant_of, alone = split_in
    key, split_cycles, byte_hops = split_out
    fuse, tile, sram, fusable, chained, n_tiles, stack_offset, share_table, inv_table, fits_table, sram_choices = fusion_in
    fused, share, inv = fusion_out
    L, P = variant.shape
    byte_hops[:] = 0.0
    if split.shape[0] > 0:
        for l in range(L):
            for p in range(P):
                s = split[l, p]
                k = core[l, p] * n_options + s + grid[p] * grid_step
                key[l, p] = k
                split_cycles[l, p] = noc_bytes[s + l * n_options] * inv_link[p] + far_cycles[k]
                byte_hops[p] += hop_table[k + l * key_step]
                variant[l, p] = variant_of[s]
    else:
        variant[:] = 0
    if len(fusable) == 0:
        return
    n_sram = len(sram_choices)
    sram_code = np.empty(P, dtype=np.int64)
    for p in range(P):  # torch.searchsorted (left), clamped to the last choice
        c = 0
        while c < n_sram - 1 and sram_choices[c] < sram[p]:
            c += 1
        sram_code[p] = c
    state = np.zeros(P, dtype=np.int64)  # each fusable layer's depth in its stack and its head's tile code, d·T + t
    splitting = split.shape[0] > 0
    for i in range(len(fusable)):
        l = fusable[i]
        chain = chained[i]
        for p in range(P):  # (no branch on a candidate's codes: they are random, branches mispredict)
            want = fuse[l, p]
            if splitting:  # split layers are never fused
                want = want & alone[split[l, p]] & alone[split[l - 1, p]]
            head = state[p] if chain else tile[l - 1, p]
            at = np.int64(tile[l, p]) + want * (head + n_tiles - tile[l, p])
            state[p] = at
            at += stack_offset[i]
            share[i, p] = share_table[at]
            inv[i, p] = inv_table[at]
            both = want & fits_table[at * n_sram + sram_code[p]]
            fused[i, p] = both
            variant[l, p] += both
            variant[l - 1, p] += 2 * both
