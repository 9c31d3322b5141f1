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

(WS and IS spend ``H`` extra cycles per fold loading the stationary operand.) It matches
every committed SCALE-Sim run exactly (``tests/test_scalesim.py``), floored at ``⌈MNK / HW⌉``
so that a 1×1 array (SCALE-Sim's off-by-one) never reports more than 100 % utilisation.

SRAM access counts (words) follow SCALE-Sim's operand streams: the stationary
operand is read once, the streamed operands once per fold of the other dimension,
and partial sums are written once per reduction fold.
"""

from __future__ import annotations

import torch

from codesign.model.stalls import floor_sum, tiles_within_sets
from codesign.vocab import IS, OS, WS  # the dataflow codes of the [P, L] dataflow tensors


# --- rounding, straight-through for gradients ---------------------------------------------------
#
# Array sizes, SRAM and bandwidths may be continuous tensors that require grad (gradient
# refinement of a design). Rounding has a zero gradient almost everywhere, which would stop every
# gradient through fold counts and buffer sizes; these helpers round in the forward pass and let
# the gradient through as if the rounding were the identity (straight-through estimator). The
# forward value is bit-identical to the plain rounding: without grad the plain op is returned, and
# with grad ``r + (x − x)`` adds an exact zero to the rounded value ``r``. (The stall model's counts
# of window edges and wraps stay plain: they count discrete events, and their gradient is zero.)


def _straight_through(x: torch.Tensor, rounded: torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.requires_grad:
        return rounded.detach() + (x - x.detach())
    return rounded


def st_ceil(x: torch.Tensor) -> torch.Tensor:
    """``⌈x⌉``; its gradient is that of ``x`` (straight-through)."""
    return _straight_through(x, torch.ceil(x))


def st_floor(x: torch.Tensor) -> torch.Tensor:
    """``⌊x⌋``; its gradient is that of ``x`` (straight-through)."""
    return _straight_through(x, torch.floor(x))


def st_round(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded half to even; its gradient is that of ``x`` (straight-through)."""
    return _straight_through(x, torch.round(x))


def _ceil_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``⌈a/b⌉``, differentiable as ``a/b`` (straight-through)."""
    return st_ceil(a / b)


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
    return torch.maximum(cycles, st_ceil(m * n * k / (h * w)))


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


# --- memory stalls: SCALE-Sim 3.0.0's double-buffered scratchpad, in closed form ----------------
#
# SCALE-Sim serves every operand from its own double-buffered SRAM with its own DRAM channel of
# ``bw`` words per cycle (``docs/model.md``, "Memory traffic and stalls", derives what follows).
# A read buffer of ``S`` words cuts the operand's *prefetch order* (its fetch list: the operand
# matrix laid out fold by fold, diagonal by diagonal for the skewed operands) into sets of
# ``eps = ⌈S/100⌉`` entries; a window of ``A`` sets (half the buffer) is resident. When the array
# asks for a word outside the window, the window slides forward by ``Pf`` sets (the other half)
# and one prefetch of ``⌈(S/2)/bw⌉`` DRAM lines is issued, ready ``⌈(S/2)/bw⌉ + 1`` cycles after
# the previous prefetch was. The window only moves forward, modulo the fetch list, so a word
# behind it costs a lap of the whole list ("wrap"). ``K`` prefetches take ``K · (⌈(S/2)/bw⌉ + 1)``
# cycles of DRAM time. Walks that follow fold changes or tiles one by one count discrete events.


def _buffer_geometry(words: torch.Tensor):
    """``(eps, A, Pf_max, half)`` of a SCALE-Sim read buffer of ``words`` words."""
    words = torch.clamp(st_round(words), min=2.0)
    eps = st_ceil(words / 100)
    active = st_ceil(words / 2)
    half = words - active
    return eps, st_ceil(active / eps), st_ceil(half / eps), half


def _ring(entries, words):
    """``(R, A, Pf, eps, streams)``: sets in the fetch list, window, slide and whether it ever misses."""
    eps, A, pf_max, _ = _buffer_geometry(words)
    R = st_floor(entries / eps) + 1  # SCALE-Sim always closes a last set, empty when eps divides the list
    streams = R > A
    Pf = torch.clamp(torch.minimum(pf_max, R - A), min=1.0)
    return R, A, Pf, eps, streams


#: Levels of :func:`floor_sum` the stall model resolves exactly (the rest is averaged).
HIT_DEPTH = 6


def _boundary_hits(count, step, first, width, A, Pf, eps):
    """How many of the ``count`` positions ``first + i·step`` (entries, ``i = 0 … count−1``) have a
    window edge in ``(pos + (A − Pf)·eps, pos + width]``: the demand front crosses an edge there
    and the slide leaves ``pos`` behind the window. Window edges sit at sets ``A + j·Pf`` (before
    any wrap), i.e. at entries ``(A + j·Pf)·eps``; counted with :func:`floor_sum` (both ends at once).
    """
    Q = Pf * eps
    lift = torch.ceil((A * eps + Q) / Q) * Q  # keeps every numerator non-negative
    start = torch.floor(first + lift - A * eps)
    ends = torch.stack(torch.broadcast_tensors(start + torch.floor(width), start + (A - Pf) * eps))
    step = torch.remainder(torch.round(step), Q)  # whole laps of the edges cancel in the difference
    sums = floor_sum(count, Q, step, ends, depth=HIT_DEPTH)
    return torch.clamp(sums[0] - sums[1], min=0.0)


def _distinct(live, *xs):
    """The distinct rows of the broadcast ``xs`` (detached, float64; rows not ``live`` all made zero), the
    inverse index and the shape: a walk follows each distinct input once (a search's candidates share a
    few arrays and buffers), and skips the rows it is not needed for."""
    cols = torch.broadcast_tensors(*(torch.as_tensor(x, dtype=torch.float64).detach() * live for x in xs))
    table = torch.stack([x.reshape(-1) for x in cols], dim=1)
    device = table.device
    odd = torch.tensor([0x1E3779B97F4A7C15 + 2 * i for i in range(len(xs))], device=device)  # rows hashed to an int64 (wrapping)
    _, inverse = torch.unique((table.view(torch.int64) * odd).sum(1), return_inverse=True)
    first = torch.full((len(inverse),), len(inverse), device=device).scatter_reduce(0, inverse, torch.arange(len(inverse), device=device), "amin")
    first = first[first < len(inverse)]
    if not torch.equal(table[first][inverse], table):  # a collision: sort the rows instead
        table, inverse = torch.unique(table, dim=0, return_inverse=True)
        return table.unbind(1), inverse, cols[0].shape
    return table[first].unbind(1), inverse, cols[0].shape


#: Events (fold changes, pass ends) of a streamed operand that :func:`_stream_wraps` follows.
STREAM_EVENTS = 128


def _stream_wraps(blocks, passes, block, jump, R, A, Pf, eps, last_fraction=None):
    """Wraps of a streamed operand: ``passes`` laps of ``blocks`` folds, followed change by change.

    The window's edges form a lattice of period ``Q = Pf·eps`` entries, first at ``A·eps``. Change
    ``i`` (at ``i·block``) wraps when an edge lies in ``(i·block − jump/2 + (A − Pf)·eps, i·block +
    jump/2]`` (narrower into a last fold ``last_fraction`` full). A wrap, one lap of ``R`` sets, and
    the end of a pass move the lattice by ``−R`` sets. The first :data:`STREAM_EVENTS` events are
    followed; later changes wrap at the uniform rate ``(jump − (A − Pf)·eps)/Q``.
    """
    (blocks, passes, block, jump, R, A, Pf, eps, last_fraction), inverse, shape = _distinct(
        R > A, blocks, passes, block, jump, R, A, Pf, eps, 1.0 if last_fraction is None else last_fraction)
    Q = Pf * eps
    kick = torch.remainder(R, Pf) * eps
    band = jump - (A - Pf) * eps  # the band's width, from its low end ``i·block − jump/2 + (A − Pf)·eps``
    last_band = band - jump * (1 - last_fraction) / 2
    low = block - jump / 2 + (A - Pf) * eps - torch.remainder(A * eps, Q)  # change 1's low end, less the phase
    back = kick - (blocks - 1) * block  # from the pass's last change to the next pass's first
    events = blocks * passes
    i = torch.ones_like(blocks)
    wraps = torch.zeros_like(blocks)
    for e in range(int(min(float(events.max()), STREAM_EVENTS)) if events.numel() else 0):
        change = (i < blocks) & (e < events)
        # the first lattice edge above the low end, ``Q − (low mod Q)`` past it, is inside the band
        hit = change & (Q - torch.remainder(low, Q) <= torch.where(i == blocks - 1, last_band, band))
        wraps = wraps + hit
        low = low + torch.where(i == blocks, back, block) + kick * hit
        i = torch.where(i >= blocks, 1.0, i + 1)
    seen = torch.clamp(events, max=float(STREAM_EVENTS))
    left = torch.clamp(blocks - 1, min=0.0) * passes - (seen - torch.floor(seen / blocks))  # changes not followed
    wraps = wraps + torch.clamp(left, min=0.0) * torch.clamp(band / Q, 0.0, 1.0)
    return torch.nan_to_num(wraps)[inverse].reshape(shape)  # (rows not live: NaN, unused)


def prefetches_stream(entries, blocks, passes, block, jump, words, last_fraction=None):
    """Prefetches of an operand streamed ``passes`` times through its whole fetch list.

    The list is ``blocks`` folds of ``block`` entries laid out diagonal by diagonal, so each fold
    ends ``jump/2`` entries past the next fold's start and that one starts ``jump/2`` before the
    nominal change (``jump = H·(H−1)``, the skew): the demand jumps back at every fold change and
    wraps when a window edge lies in between (:func:`_stream_wraps`). (OS and WS ifmap, IS filter.)
    """
    R, A, Pf, eps, streams = _ring(entries, words)
    jump = torch.minimum(jump, entries)
    wraps = _stream_wraps(blocks, passes, block, jump, R, A, Pf, eps, last_fraction)
    k = st_ceil(torch.clamp(passes * R - A, min=0.0) / Pf) + wraps * R / Pf
    return torch.where(streams, k, torch.zeros_like(k)), A, Pf


def prefetches_repeated_blocks(entries, blocks, repeats, block, jump, words, last_fraction=None):
    """Prefetches of an operand whose ``blocks`` column folds are each read ``repeats`` times in a row.

    (OS filter: fold ``fc`` of the filter is read once per row fold.) A block whose span (plus its
    diagonal overlap ``jump``) crossed no window edge on its first read stays in the window for
    the repeats; otherwise the next repeat wraps, and so on until, after a wrap, the block fits
    between the window start and end (decided by ``R mod Pf``, where a wrap leaves the window).
    """
    R, A, Pf, eps, streams = _ring(entries, words)
    jump = torch.minimum(jump, entries)
    span = block + jump
    span_sets = span / eps
    n_rep = torch.clamp(repeats - 1, min=0.0)
    r = torch.remainder(R, Pf)
    crossed = _boundary_hits(blocks, block, -jump / 2, span, A, Pf, eps)
    uniform = blocks * torch.clamp((span_sets - (A - Pf)) / Pf, 0.0, 1.0)
    crossed = torch.where(r == 0, torch.minimum(crossed, blocks), torch.minimum(uniform, blocks))
    crossed = torch.where(span_sets > A, blocks, crossed)
    # After a wrap the block start lands (R − δ) mod Pf sets into the window, δ ∈ (0, span).
    fit = torch.clamp(torch.minimum(r, Pf - span_sets) - torch.clamp(r - span_sets, min=0.0), min=0.0) / span_sets
    fit = torch.where(A > Pf, torch.clamp(1.0 - span_sets / Pf, 0.0, 1.0), fit)
    miss = 1.0 - fit
    if miss.requires_grad or n_rep.requires_grad:  # 0**n as a constant: its gradient in n (log 0) is NaN
        power = torch.where(miss > 0, torch.where(miss > 0, miss, 1.0) ** n_rep, (n_rep == 0).to(miss.dtype))
    else:
        power = miss**n_rep
    series = torch.where(fit > 1e-9, (1.0 - power) / torch.clamp(fit, min=1e-9), n_rep)
    wraps = torch.where(n_rep > 0, crossed * series, torch.zeros_like(series))
    first = _stream_wraps(blocks, torch.ones_like(blocks), block, jump, R, A, Pf, eps, last_fraction)
    k = st_ceil((R - A) / Pf) + (wraps + first) * R / Pf
    return torch.where(streams, k, torch.zeros_like(k)), A, Pf


#: Tiles of a flipped-tile operand that :func:`_tile_walk` follows (more: the chain of
#: :func:`prefetches_flipped_tiles`).
TILE_EVENTS = 256
#: Wraps within one tile that :func:`_tile_walk` follows: a tile spanning more entries than the
#: window (a 128×128 tile against an 8,200-entry window of 16 kB) wraps once per window it spans.
TILE_WRAPS = 64


def _tile_walk(rows_dim, cols_dim, h, w, R, A, Pf, eps):
    """Prefetches of a flipped-tile operand followed tile by tile, and whether all its tiles were.

    The list is ``⌈cols/W⌉`` blocks of ``rows × W`` entries (row-major), read block by block, ``H``
    rows a tile, last row first, each row left to right. The top row slides the window forward; a
    row starting below the window start wraps: round the list (``R`` sets) to the first start,
    ``−R`` mod ``Pf`` from the old one, that holds it, sliding on if the row runs past the end (a row
    across an edge: a wrap and a slide, and the row below wraps again). Exact for distinct addresses.
    """
    whole = torch.ceil(cols_dim / w) * torch.ceil(rows_dim / h) <= TILE_EVENTS
    (rows_dim, cols_dim, h, w, R, A, Pf, eps), inverse, shape = _distinct(
        whole & (R > A), rows_dim, cols_dim, h, w, R, A, Pf, eps)
    col_folds, row_folds, start, k = torch.ceil(cols_dim / w), torch.ceil(rows_dim / h), torch.zeros_like(R), 0.0 * R
    tiles = torch.nan_to_num(col_folds * row_folds)
    for e in range(int(min(float(tiles.max()), TILE_EVENTS)) if tiles.numel() else 0):
        fc = torch.floor(e / row_folds)
        fr = e - fc * row_folds
        cols = torch.where(fc == col_folds - 1, cols_dim - fc * w, w)
        unread = torch.where(e < tiles, torch.where(fr == row_folds - 1, rows_dim - fr * h, h), 0.0)
        base = fc * rows_dim * w + fr * h * cols
        ahead = torch.clamp(torch.ceil((torch.floor((base + unread * cols - 1) / eps) - start - A + 1) / Pf), min=0.0)
        ahead = torch.where(unread > 0, ahead, 0.0)
        start, k = start + ahead * Pf, k + ahead
        for _ in range(TILE_WRAPS):  # wraps within the tile, until none is left
            row = torch.minimum(torch.floor((start * eps - 1 - base) / cols), unread - 1)
            wrap = row >= 0
            if not bool(wrap.any()):
                break
            new = start - R + Pf * torch.ceil((torch.floor((base + row * cols) / eps) - A + 1 - start + R) / Pf)
            on = torch.clamp(torch.ceil((torch.floor((base + (row + 1) * cols - 1) / eps) - new - A + 1) / Pf), min=0.0)
            k = k + torch.where(wrap, (new - start + R) / Pf + on, 0.0)
            start, unread = torch.where(wrap, new + on * Pf, start), torch.where(wrap, row, unread)
    return torch.nan_to_num(k)[inverse].reshape(shape), whole


def prefetches_flipped_tiles(entries, tile, words, rescued=None, settles=None, walk=None):
    """Prefetches of an operand read once, tile by tile, each tile's last row first.

    (WS filter, IS ifmap: a fold's ``H × W`` tile is flipped.) Where the tiles cannot be followed
    (:func:`_tile_walk`): a tile across the window edge when it triggers a slide leaves its first
    rows behind, a wrap, which pulls the window back by ``d = R − k·Pf`` sets (``k`` prefetches go
    round the list); a two-state chain gives the fraction ``π`` of slides that wrap.
    ``rescued`` marks operands whose rows behind the window are all found again further ahead
    (a convolution's overlapping windows, see :func:`operand_prefetches`): they never wrap.
    ``settles`` marks operands where that holds once the window has just wrapped (the slide after a
    wrap never wraps again). ``walk = (rows, cols, H, W, distinct)``: what the walk needs.
    """
    R, A, Pf, eps, streams = _ring(entries, words)
    tile_sets = torch.clamp(torch.minimum(tile, entries) / eps, min=1e-9)
    p_slide = torch.clamp((tile_sets - (A - Pf)) / tile_sets, 0.0, 1.0)
    if rescued is not None:
        p_slide = torch.where(rescued, torch.zeros_like(p_slide), p_slide)
    k_wrap = torch.floor(torch.clamp(R - A - 1, min=0.0) / Pf) + 1
    d = R - k_wrap * Pf
    room = torch.clamp(A - d, min=0.0)
    p_after = torch.clamp(room / tile_sets, 0.0, 1.0) * p_slide
    if settles is not None:
        p_after = torch.where(settles, torch.zeros_like(p_after), p_after)
    pi = p_slide / torch.clamp(1.0 + p_slide - p_after, min=1e-9)
    progress = torch.clamp(Pf - pi * d, min=1.0)
    slides = torch.clamp(R - A, min=0.0) / progress
    k = torch.where(pi > 0, slides * (1.0 + pi * k_wrap), st_ceil(torch.clamp(R - A, min=0.0) / Pf))
    if walk is not None:
        followed, whole = _tile_walk(*walk[:4], R, A, Pf, eps)
        k = torch.where(walk[4] & whole, followed, k)
        # Too many tiles to follow, but none across a set boundary: the walk would never wrap (stalls.py).
        slides = st_ceil(torch.clamp(st_floor((entries - 1) / eps) - A + 1, min=0.0) / Pf)
        k = torch.where(walk[4] & ~whole & tiles_within_sets(*walk[:4], eps), slides, k)
    return torch.where(streams, k, torch.zeros_like(k)), A, Pf


def operand_prefetches(m, n, k, h, w, dataflow, *, ifmap_words, filter_words, out_cols=None, overlap=None, stride=None,
                       reach=None):
    """``((K_ifmap, A_i, Pf_i), (K_filter, A_f, Pf_f))``: SCALE-Sim prefetch counts of one GEMM.

    Per dataflow (``Sr × Sc`` folds, fc outer, fr inner):

    * OS — ifmap streamed once per column fold (folds of ``K·H`` entries); filter fold ``fc``
      re-read once per row fold (:func:`prefetches_repeated_blocks`);
    * WS — ifmap streamed once per column fold (folds of ``M·H``); filter read once in flipped
      ``H × W`` tiles (:func:`prefetches_flipped_tiles`);
    * IS — ifmap read once in flipped tiles; filter streamed once per column fold (folds of ``N·H``).

    Each pattern is evaluated once, on the operand that follows it for each element's dataflow.
    ``out_cols`` (``Q``), ``overlap`` (the kernel is taller than the stride: input words repeat in
    the im2col matrix), ``stride`` and ``reach`` (``⌊(R−1)/stride⌋·Q + ⌊(S−1)/stride⌋``: how many
    output pixels further on an input word is read again, at most) describe a convolution; leave
    them out for a GEMM.
    """
    row_folds, col_folds = folds(m, n, k, h, w, dataflow)
    ifmap_entries, filter_entries = m * k, k * n
    os_, ws_, is_ = dataflow == OS, dataflow == WS, dataflow == IS

    def last(dim, size, count):  # valid fraction of the last fold
        return (dim - (count - 1) * size) / size

    # Streamed: OS/WS ifmap, IS filter.
    stream = prefetches_stream(
        torch.where(is_, filter_entries, ifmap_entries), row_folds, col_folds,
        torch.where(os_, k, torch.where(ws_, m, n)) * h, h * (h - 1),
        torch.where(is_, filter_words, ifmap_words),
        last(torch.where(os_, m, k), h, row_folds),
    )
    # Flipped tiles: WS filter, IS ifmap. A conv's im2col word behind the window is found again one
    # output row later (kernel row − stride) when that lands in a later column fold (Q ≥ W) still
    # inside the window (Q·K words ahead): IS ifmap of such a conv never wraps.
    # With Q < W that holds for all but the fold's first pixels; at stride 1 their rows are found
    # again right after a wrap, so the slide after a wrap does not wrap (SCALE-Sim runs of
    # ResNet-18 convs: a full wrap chain at stride 2, every other slide at stride 1).
    rescued = settles = None
    if out_cols is not None and overlap is not None:
        eps, A, _, _ = _buffer_geometry(ifmap_words)
        near = is_ & overlap & (out_cols * k <= A * eps)
        rescued = near & (out_cols >= w)
        if stride is not None:  # (seen with half a window to spare, not at the edge)
            settles = is_ & overlap & (2 * out_cols * k <= A * eps) & (out_cols < w) & (stride == 1)
    # An IS conv's im2col ifmap repeats words. A read behind the window costs a wrap unless the word
    # recurs ahead of it; a fold's first pixel recurs only in earlier folds when ``reach < W``, and the
    # first word of every row is asked for first, so such a conv wraps as if its words were distinct.
    if reach is not None:
        distinct = ~is_ | (reach < w)
    else:
        distinct = ~is_ if overlap is None else ~(is_ & overlap)
    tiles = prefetches_flipped_tiles(torch.where(is_, ifmap_entries, filter_entries), h * w,
                                     torch.where(is_, ifmap_words, filter_words), rescued, settles,
                                     (k, torch.where(is_, m, n), h, w, distinct))
    # Repeated blocks: OS filter.
    repeated = prefetches_repeated_blocks(filter_entries, col_folds, row_folds, k * w, w * (w - 1), filter_words,
                                          last(n, w, col_folds))
    ifmap = tuple(torch.where(is_, t, s_) for t, s_ in zip(tiles, stream))
    filt = tuple(torch.where(is_, s_, torch.where(os_, r, t)) for s_, r, t in zip(stream, repeated, tiles))
    return ifmap, filt


def ofmap_writes(m, n, k, h, w, dataflow):
    """Words the array writes into the ofmap buffer: ``M·N``, once per reduction fold for WS/IS."""
    row_folds, _ = folds(m, n, k, h, w, dataflow)
    return m * n * torch.where(dataflow == OS, torch.ones_like(row_folds), row_folds)


def stall_terms(m, n, k, h, w, dataflow, *, ifmap_words, filter_words, out_cols=None, overlap=None, stride=None,
                reach=None):
    """What the stall model needs of one GEMM besides bandwidth and buffer sizes: a tuple of
    ``(K_i, head_i, rate_i, K_f, head_f, rate_f, ofmap_writes)``.

    ``K`` is the operand's prefetch count (:func:`operand_prefetches`). The window travels
    ``K·Pf + A`` sets in all; the first miss comes once the first ``A`` are used (``head``, the
    share of the compute done by then) and each further one ``Pf`` sets later (``rate``).
    None of them depends on bandwidth or clock, so a caller may compute them once per array and SRAM.
    """
    (ki, ai, pfi), (kf, af, pff) = operand_prefetches(m, n, k, h, w, dataflow, ifmap_words=ifmap_words,
                                                       filter_words=filter_words, out_cols=out_cols, overlap=overlap,
                                                       stride=stride, reach=reach)
    travel_i, travel_f = ki * pfi + ai, kf * pff + af
    return (ki, ai / travel_i, pfi / travel_i, kf, af / travel_f, pff / travel_f, ofmap_writes(m, n, k, h, w, dataflow))


def stall_bound_cycles(m, n, k, h, w, dataflow, *, compute, ifmap_words, filter_words, ofmap_words, bw_words,
                       ifmap_from_dram=True, filter_from_dram=True, ofmap_to_dram=True, out_cols=None, overlap=None,
                       stride=None, reach=None, terms=None):
    """Cycles of one GEMM with finite SRAM and DRAM bandwidth (SCALE-Sim 3.0.0's memory system).

    ``compute`` is :func:`compute_cycles`; the ``*_words`` are each operand buffer's size in words
    and ``bw_words`` each operand's DRAM bandwidth in words per cycle. An operand not moved to or
    from DRAM (``*_from_dram`` / ``ofmap_to_dram`` false) never stalls. ``terms`` may pass
    :func:`stall_terms`'s result (it does not depend on the bandwidth). Returns cycles ≥ compute.

    Each read operand's ``K`` prefetches keep its DRAM channel busy ``K·(⌈(S/2)/bw⌉ + 1)`` cycles
    (each is issued when the previous one completes): prefetch ``j`` is ready after ``j`` of them and
    needed once ``head + (j−1)·rate`` of the work is done (:func:`stall_terms`), so the layer takes at
    least ``max_j`` (``j`` prefetches + the work after miss ``j``), at ``j = 1`` or ``K``; a DRAM-bound
    stream adds half a prefetch's deficit (SCALE-Sim counts a late prefetch's lateness twice, so it
    waits twice and then not at all). The channels run side by side: the slowest sets the total.
    """
    if terms is None:
        terms = stall_terms(m, n, k, h, w, dataflow, ifmap_words=ifmap_words, filter_words=filter_words,
                            out_cols=out_cols, overlap=overlap, stride=stride, reach=reach)
    ki, head_i, rate_i, kf, head_f, rate_f, writes = terms
    total = compute
    for count, head, rate, words, moved in ((ki, head_i, rate_i, ifmap_words, ifmap_from_dram),
                                            (kf, head_f, rate_f, filter_words, filter_from_dram)):
        per_prefetch = torch.where(torch.isinf(bw_words), 0.0, st_ceil(_buffer_geometry(words)[3] / bw_words) + 1)
        # Miss j comes after (head + (j−1)·rate)·compute of work and its data after j prefetches: the
        # layer ends no sooner than max_j of (j prefetches + the work after miss j), at j = 1 or K.
        deficit = torch.clamp(per_prefetch - compute * rate, min=0.0)
        last = count * per_prefetch + compute * rate + deficit / 2
        first = per_prefetch + compute * (1.0 - head)
        bound = torch.where(count > 0, torch.maximum(first, last), 0.0)
        total = torch.where(torch.as_tensor(moved, device=total.device), torch.maximum(total, bound), total)
    # The ofmap buffer starts a drain of ``h = ⌊S/2⌋`` words once more than ``h`` wait, and frees
    # their room at once; a drain takes ``D = ⌈h/bw⌉`` cycles and the next one starts only after it.
    # The array stalls when ``S`` words wait: the m-th time once it has written ``S + m·h``, until
    # drain ``m + 1`` starts at ``t1 + m·D`` (``t1``: when ``h`` words are written). The layer ends
    # no sooner than that plus the work left; the latest such stall binds (the first when the
    # drains outpace the writes). What is still buffered at the end is drained after the run.
    size = st_round(ofmap_words)
    half = torch.clamp(st_floor(size / 2), min=1.0)
    per_word = compute / torch.clamp(writes, min=1.0)
    stalls = torch.clamp(st_ceil((writes - size) / half) - 1, min=0.0)
    d = st_ceil(half / bw_words)
    binding = torch.where(d > half * per_word, stalls, torch.ones_like(stalls))
    drain = half * per_word + binding * d + compute - (size + binding * half) * per_word
    drain = torch.where(torch.as_tensor(ofmap_to_dram, device=total.device) & (stalls > 0), drain, 0.0)
    return torch.maximum(total, drain)
