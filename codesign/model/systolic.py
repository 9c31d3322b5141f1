"""Systolic-array cycles and operand traffic of one GEMM per dataflow, batched.

A layer is lowered to ``G`` independent GEMMs of ``M × K`` (ifmap, im2col) by
``K × N`` (filter) (see :class:`~codesign.workload.layer.Layer`), run one after the
other on an ``H × W`` array. Every function takes tensors that broadcast to a
common shape (``[P, L]`` in the model: candidates × layers) and never loops over it.

Compute cycles are SCALE-Sim's (Samajdar et al., ISPASS 2020; SCALE-Sim 3.0.0),
folds × cycles per fold, minus the one cycle SCALE-Sim's count starts at:

=====  ===========================  ===========================
flow   folds                        cycles per fold
=====  ===========================  ===========================
os     ⌈M/H⌉ · ⌈N/W⌉                K + H + W − 2
ws     ⌈K/H⌉ · ⌈N/W⌉                M + 2H + W − 2
is     ⌈K/H⌉ · ⌈M/W⌉                N + 2H + W − 2
=====  ===========================  ===========================

(WS and IS spend ``H`` extra cycles per fold loading the stationary operand.) The
closed form matches all 114 reference runs in ``../shared/data/scalesim`` exactly;
``tests/test_systolic.py`` pins it. It is floored at ``⌈MNK / HW⌉`` so that a 1×1
array, where SCALE-Sim's off-by-one would undercut the MAC count, never reports
more than 100 % utilisation.

SRAM access counts (words) follow SCALE-Sim's operand streams: the stationary
operand is read once, the streamed operands once per fold of the other dimension,
and partial sums are written once per reduction fold.
"""

from __future__ import annotations

import torch

WS, OS, IS = 0, 1, 2


def _ceil_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.ceil(a / b)


def folds(m, n, k, h, w, dataflow: torch.Tensor):
    """``(row_folds, col_folds)`` of the GEMM on an ``h × w`` array for each dataflow code."""
    row_dim = torch.where(dataflow == OS, m, k)
    col_dim = torch.where(dataflow == IS, m, n)
    return _ceil_div(row_dim, h), _ceil_div(col_dim, w)


def compute_cycles(m, n, k, h, w, dataflow: torch.Tensor) -> torch.Tensor:
    """Cycles of one GEMM with no memory stalls (SCALE-Sim's compute cycles)."""
    row_folds, col_folds = folds(m, n, k, h, w, dataflow)
    stream = torch.where(dataflow == OS, k, torch.where(dataflow == WS, m, n))
    fill = torch.where(dataflow == OS, h + w - 2, 2 * h + w - 2)
    cycles = row_folds * col_folds * (stream + fill) - 1
    return torch.maximum(cycles, torch.ceil(m * n * k / (h * w)))


def sram_accesses(m, n, k, h, w, dataflow: torch.Tensor):
    """Words ``(ifmap_reads, filter_reads, ofmap_writes)`` between SRAM and the array for one GEMM.

    WS: ifmap ``M·K·⌈N/W⌉``, filter ``K·N``, ofmap ``M·N·⌈K/H⌉``;
    OS: ifmap ``M·K·⌈N/W⌉``, filter ``K·N·⌈M/H⌉``, ofmap ``M·N``;
    IS: ifmap ``M·K``, filter ``K·N·⌈M/W⌉``, ofmap ``M·N·⌈K/H⌉`` — SCALE-Sim's counts.
    SCALE-Sim's OS ofmap trace also holds ``H + W`` drain entries per fold, counted here
    too (``M·N + folds·(H + W)``), so that every count equals the simulator's.
    """
    ifmap = m * k * torch.where(dataflow == IS, torch.ones_like(m), _ceil_div(n, w))
    filt = k * n * torch.where(dataflow == WS, torch.ones_like(m), torch.where(dataflow == OS, _ceil_div(m, h), _ceil_div(m, w)))
    row_folds, col_folds = folds(m, n, k, h, w, dataflow)
    ofmap = torch.where(dataflow == OS, m * n + row_folds * col_folds * (h + w), m * n * _ceil_div(k, h))
    return ifmap, filt, ofmap


def refetch_factors(m, n, k, h, w, dataflow, *, ifmap_bytes, filter_bytes, psum_tile_bytes_ws, psum_tile_bytes_is, ifmap_cap, filter_cap, ofmap_cap):
    """How many times each operand crosses the DRAM interface for one GEMM.

    The stationary operand is fetched once. A streamed operand that fits in its
    (double-buffered) SRAM partition is fetched once and reused from SRAM; one that
    does not is fetched again for every fold of the other dimension. Partial sums of
    WS/IS stay on chip while a psum tile fits in the ofmap partition; otherwise every
    reduction fold but the last writes them out and reads them back
    (``2·⌈K/H⌉ − 1`` ofmap transfers). All factors are ≥ 1 and never grow with SRAM.

    Returns ``(ifmap_factor, filter_factor, ofmap_factor)``.
    """
    one = torch.ones_like(m * ifmap_cap)
    ifmap_fits = ifmap_bytes <= ifmap_cap
    filter_fits = filter_bytes <= filter_cap
    ifmap_factor = torch.where(
        (dataflow == IS) | ifmap_fits, one, _ceil_div(n, w) * one
    )
    filter_refetch = torch.where(dataflow == OS, _ceil_div(m, h), _ceil_div(m, w))
    filter_factor = torch.where((dataflow == WS) | filter_fits, one, filter_refetch * one)
    psum_tile = torch.where(dataflow == WS, psum_tile_bytes_ws, psum_tile_bytes_is)
    psum_spills = (dataflow != OS) & (psum_tile > ofmap_cap)
    ofmap_factor = torch.where(psum_spills, 2 * _ceil_div(k, h) - 1, one)
    return ifmap_factor, filter_factor, ofmap_factor
