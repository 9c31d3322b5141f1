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

from codesign.vocab import IS, OS, WS  # the dataflow codes of the [P, L] dataflow tensors


# --- rounding, straight-through for gradients ---------------------------------------------------
#
# Array sizes, SRAM and bandwidths may be continuous tensors that require grad (gradient
# refinement of a design). Rounding has a zero gradient almost everywhere, which would stop every
# gradient through fold counts and buffer sizes; these helpers round in the forward pass and let
# the gradient through as if the rounding were the identity (straight-through estimator). The
# forward value is bit-identical to the plain rounding: without grad the plain op is returned, and
# with grad ``r + (x − x)`` adds an exact zero to the rounded value ``r``. (The lattice counts of
# the stall model's window edges, :func:`floor_sum` and :func:`_boundary_hits`, stay plain: they
# count discrete events, and their gradient is zero.)


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
# behind it costs a lap of the whole list ("wrap"). ``K`` prefetches therefore take
# ``K · (⌈(S/2)/bw⌉ + 1)`` cycles of DRAM time, and the layer cannot finish before that.
# The ofmap buffer drains ``bw`` words per cycle once it is full; what is left in it at the end
# is not counted (SCALE-Sim drains it after the last compute cycle).


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
    R = st_ceil(entries / eps)
    streams = R > A
    Pf = torch.clamp(torch.minimum(pf_max, R - A), min=1.0)
    return R, A, Pf, eps, streams


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


def _one_hit(pos, width, A, Pf, eps):
    """:func:`_boundary_hits` for one position (no sum needed)."""
    Q = Pf * eps
    lift = torch.ceil((A * eps + Q) / Q) * Q
    start = torch.floor(pos + lift - A * eps)
    return torch.clamp(torch.floor((start + torch.floor(width)) / Q) - torch.floor((start + (A - Pf) * eps) / Q), min=0.0)


def _transition_wraps(transitions, block, jump, R, A, Pf, eps, last_fraction=None):
    """Wraps at ``transitions`` fold changes ``block`` entries apart, each a back-jump of ``jump``.

    A fold change wraps when a window edge falls between the next fold's start and the current
    fold's end (``jump/2`` either side of the nominal change). Before any wrap the edges are
    fixed, so :func:`_boundary_hits` counts them exactly (``hits``; the change into a partly
    filled last fold, ``last_fraction`` of it valid, has a shorter overlap). A wrap moves the
    edges by ``R mod Pf`` sets: zero keeps the count exact; otherwise a resonant run (well more
    hits than a uniform phase gives: power-of-two folds against edges ``Pf·⌈S/100⌉`` apart)
    lasts only until the shifted edges leave the band, and a non-resonant one keeps its count.
    Returns ``(first, later)``: wraps in the first pass and in each further pass.
    """
    if last_fraction is None:
        last_fraction = torch.ones_like(block)
    full = torch.clamp(transitions - 1, min=0.0)
    hits = _boundary_hits(full, block, block - jump / 2, jump, A, Pf, eps)
    last_width = jump / 2 * (1 + last_fraction)
    last = torch.where(transitions > 0, _one_hit(transitions * block - jump / 2, last_width, A, Pf, eps),
                       torch.zeros_like(block))
    hits = hits + torch.clamp(last, max=1.0)
    expected = transitions * torch.clamp(jump / (Pf * eps) - (A - Pf) / Pf, 0.0, 1.0)
    r = torch.remainder(R, Pf)
    shift = torch.minimum(r, Pf - r) * eps
    resonant = hits > 1.5 * expected + 1
    burst = torch.minimum(hits, torch.ceil(jump / torch.clamp(2 * shift, min=1.0)))
    first = torch.where(r == 0, hits, torch.where(resonant, burst, hits))
    later = torch.where(r == 0, hits, torch.where(resonant, torch.zeros_like(hits), expected))
    return first, later


def prefetches_stream(entries, blocks, passes, block, jump, words, last_fraction=None):
    """Prefetches of an operand streamed ``passes`` times through its whole fetch list.

    The list is ``blocks`` folds of ``block`` entries laid out diagonal by diagonal, so each fold
    ends ``jump/2`` entries past the next fold's start and that one starts ``jump/2`` before the
    nominal change (``jump = H·(H−1)``, the skew): the demand jumps back at every fold change and
    wraps when a window edge lies in between (:func:`_transition_wraps`). (OS and WS ifmap, IS filter.)
    """
    R, A, Pf, eps, streams = _ring(entries, words)
    jump = torch.minimum(jump, entries)
    first, later = _transition_wraps(torch.clamp(blocks - 1, min=0.0), block, jump, R, A, Pf, eps, last_fraction)
    wraps = first + torch.clamp(passes - 1, min=0.0) * later
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
    first, _ = _transition_wraps(torch.clamp(blocks - 1, min=0.0), block, jump, R, A, Pf, eps, last_fraction)
    k = st_ceil((R - A) / Pf) + (wraps + first) * R / Pf
    return torch.where(streams, k, torch.zeros_like(k)), A, Pf


def prefetches_flipped_tiles(entries, tile, words, rescued=None, settles=None):
    """Prefetches of an operand read once, tile by tile, each tile's last row first.

    (WS filter, IS ifmap: a fold's ``H × W`` tile is flipped.) A tile that straddles the window
    edge when it triggers a slide leaves its first rows behind: a wrap. A wrap pulls the window
    back by ``d = R − k·Pf`` sets (``k`` prefetches go round the list), which decides whether the
    next slide splits a tile again: a two-state chain gives the fraction ``π`` of slides that wrap.
    ``rescued`` marks operands whose rows behind the window are all found again further ahead
    (a convolution's overlapping windows, see :func:`operand_prefetches`): they never wrap.
    ``settles`` marks operands where that holds once the window has just wrapped (the slide after a
    wrap never wraps again).
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
    return torch.where(streams, k, torch.zeros_like(k)), A, Pf


def operand_prefetches(m, n, k, h, w, dataflow, *, ifmap_words, filter_words, out_cols=None, overlap=None, stride=None):
    """``((K_ifmap, A_i, Pf_i), (K_filter, A_f, Pf_f))``: SCALE-Sim prefetch counts of one GEMM.

    Per dataflow (``Sr × Sc`` folds, fc outer, fr inner):

    * OS — ifmap streamed once per column fold (folds of ``K·H`` entries); filter fold ``fc``
      re-read once per row fold (:func:`prefetches_repeated_blocks`);
    * WS — ifmap streamed once per column fold (folds of ``M·H``); filter read once in flipped
      ``H × W`` tiles (:func:`prefetches_flipped_tiles`);
    * IS — ifmap read once in flipped tiles; filter streamed once per column fold (folds of ``N·H``).

    Each pattern is evaluated once, on the operand that follows it for each element's dataflow.
    ``out_cols`` (output columns ``Q``), ``overlap`` (bool: the kernel is taller than the stride,
    so input words repeat in the im2col matrix) and ``stride`` describe a convolution; leave them
    out for a GEMM.
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
    tiles = prefetches_flipped_tiles(torch.where(is_, ifmap_entries, filter_entries), h * w,
                                     torch.where(is_, ifmap_words, filter_words), rescued, settles)
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


def stall_terms(m, n, k, h, w, dataflow, *, ifmap_words, filter_words, out_cols=None, overlap=None, stride=None):
    """What the stall model needs of one GEMM besides bandwidth and buffer sizes: a tuple of
    ``(K_i, head_i, rate_i, K_f, head_f, rate_f, ofmap_writes)``.

    ``K`` is the operand's prefetch count (:func:`operand_prefetches`). The window travels
    ``K·Pf + A`` sets in all; the first miss comes once the first ``A`` are used (``head``, the
    share of the compute done by then) and each further one ``Pf`` sets later (``rate``).
    None of them depends on bandwidth or clock, so a caller may compute them once per array and SRAM.
    """
    (ki, ai, pfi), (kf, af, pff) = operand_prefetches(m, n, k, h, w, dataflow, ifmap_words=ifmap_words,
                                                       filter_words=filter_words, out_cols=out_cols, overlap=overlap,
                                                       stride=stride)
    travel_i, travel_f = ki * pfi + ai, kf * pff + af
    return (ki, ai / travel_i, pfi / travel_i, kf, af / travel_f, pff / travel_f, ofmap_writes(m, n, k, h, w, dataflow))


def stall_bound_cycles(m, n, k, h, w, dataflow, *, compute, ifmap_words, filter_words, ofmap_words, bw_words,
                       ifmap_from_dram=True, filter_from_dram=True, ofmap_to_dram=True, out_cols=None, overlap=None,
                       stride=None, terms=None):
    """Cycles of one GEMM with finite SRAM and DRAM bandwidth (SCALE-Sim 3.0.0's memory system).

    ``compute`` is :func:`compute_cycles`; the ``*_words`` are each operand buffer's size in words
    and ``bw_words`` each operand's DRAM bandwidth in words per cycle. An operand not moved to or
    from DRAM (``*_from_dram`` / ``ofmap_to_dram`` false) never stalls. ``terms`` may pass
    :func:`stall_terms`'s result, computed once (it does not depend on the bandwidth).
    Returns total cycles ≥ compute.

    Each read operand's ``K`` prefetches keep its DRAM channel busy ``K·(⌈(S/2)/bw⌉ + 1)`` cycles
    (a prefetch is issued right after the previous one completes, however late it is needed):
    prefetch ``j`` is ready after ``j`` of them and needed once ``head + (j−1)·rate`` of the work
    is done (:func:`stall_terms`), so the layer takes at least ``max_j`` of (``j`` prefetches + the
    work left after miss ``j``), reached at ``j = 1`` or ``j = K``; a DRAM-bound stream adds half a
    prefetch's deficit on average (SCALE-Sim counts a late prefetch's lateness twice, so such a
    stream alternates between waiting twice and not at all). The channels run side by side: the
    slowest one sets the total.
    """
    if terms is None:
        terms = stall_terms(m, n, k, h, w, dataflow, ifmap_words=ifmap_words, filter_words=filter_words,
                            out_cols=out_cols, overlap=overlap, stride=stride)
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
    # The ofmap buffer starts draining once half full, then holds the other half while each
    # drain of half a buffer runs at bw words per cycle: past the first ``S`` words the array
    # can write no faster than bw. What is still buffered at the end is drained after the run.
    size = st_round(ofmap_words)
    drain = st_floor(size / 2) * compute / torch.clamp(writes, min=1.0) + (writes - size) / bw_words
    drain = torch.where(torch.as_tensor(ofmap_to_dram, device=total.device) & (writes > size), drain, 0.0)
    return torch.maximum(total, drain)
