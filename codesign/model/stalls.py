"""Closed forms the stall model of :mod:`codesign.model.systolic` counts with.

:func:`floor_sum` sums ``⌊(a·i + b)/m⌋`` over ``i`` without a loop (window edges hit by fold
changes); :func:`tiles_within_sets` decides, for a flipped-tile operand too long to follow tile by
tile, whether any tile straddles one of SCALE-Sim's read-buffer sets.
"""

from __future__ import annotations

import torch


def floor_sum(n, m, a, b, depth: int = 64) -> torch.Tensor:
    """``Σ_{i<n} ⌊(a·i + b)/m⌋`` elementwise for integer-valued tensors ``n ≥ 0, m ≥ 1, a ≥ 0, b ≥ 0``.

    The Euclid-like recursion of the AtCoder library (``floor_sum_unsigned``), vectorised. After
    ``depth`` levels the rest is replaced by its mean ``Σ (a·i + b)/m − n/2`` (exact when the
    recursion has ended): the first levels hold the small-denominator resonances that matter.
    Float64 throughout (exact below 2⁵³).
    """
    n, m, a, b = (x.to(torch.float64) for x in torch.broadcast_tensors(
        torch.as_tensor(n), torch.as_tensor(m), torch.as_tensor(a), torch.as_tensor(b)))
    ans = torch.zeros_like(n)
    for _ in range(depth):
        q = torch.floor(a / m)
        r = torch.floor(b / m)
        ans = ans + n * (n - 1) / 2 * q + n * r
        a = a - q * m
        b = b - r * m
        y = a * n + b
        done = y < m
        if bool(done.all()):
            return ans
        n = torch.where(done, 0.0, torch.floor(y / m))
        b = torch.where(done, 0.0, y - n * m)
        m, a = torch.where(done, m, a), torch.where(done, 0.0, m)
        m = torch.clamp(m, min=1.0)
    # Truncated: the mean of what is left (a < m, b < m here).
    return ans + torch.clamp((a * n * (n - 1) / 2 + b * n) / m - n / 2, min=0.0)


def tiles_within_sets(rows_dim, cols_dim, h, w, eps) -> torch.Tensor:
    """Whether every ``H × W`` tile of a flipped-tile operand (WS filter, IS ifmap) lies in one set of ``eps`` entries.

    The fetch list is ``⌈cols/W⌉`` blocks of ``rows × W`` entries, row-major, each cut into tiles of
    ``H`` rows, so the tiles are consecutive intervals of the list: ``H·W`` entries each in the full
    blocks, ``H·c`` in the last block of ``c`` columns. A wrap needs a row of a tile below the window
    start once the tile's top row has slid the window on, so a tile across a set boundary; a list
    whose tiles all sit inside one set is read by slides alone (``_tile_walk`` makes no wrap on it).
    Tiles crossing a boundary are counted with :func:`floor_sum` (``Σ ⌊end/eps⌋ − ⌊start/eps⌋``);
    only ``rows`` divisible by ``H`` is decided (else ``False``: the tiles of a block are uneven).
    """
    rows_dim, cols_dim, h, w, eps = (torch.as_tensor(x, dtype=torch.float64).detach() for x in
                                     torch.broadcast_tensors(*(torch.as_tensor(x) for x in (rows_dim, cols_dim, h, w, eps))))
    row_folds, col_folds = torch.ceil(rows_dim / h), torch.ceil(cols_dim / w)
    full = (col_folds - 1) * row_folds  # tiles of H·W entries, back to back from entry 0
    crossing = floor_sum(full, eps, h * w, h * w - 1) - floor_sum(full, eps, h * w, torch.zeros_like(h))
    last = h * (cols_dim - (col_folds - 1) * w)  # a tile of the last block
    base = (col_folds - 1) * rows_dim * w
    crossing = crossing + floor_sum(row_folds, eps, last, base + last - 1) - floor_sum(row_folds, eps, last, base)
    return (torch.remainder(rows_dim, h) == 0) & (crossing == 0)
