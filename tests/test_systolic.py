"""Compute cycles and SRAM accesses of one GEMM: hand-worked cases and SCALE-Sim's reference runs."""

from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.model.systolic import IS, OS, WS, compute_cycles, sram_accesses

REFERENCE = Path(__file__).parent / "data" / "scalesim_3.0.0_reference.csv"
CODES = {"ws": WS, "os": OS, "is": IS}


def cycles(m, n, k, h, w, df):
    t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    return int(compute_cycles(t(m), t(n), t(k), t(h), t(w), torch.tensor(CODES[df])).item())


@pytest.mark.parametrize(
    "m, n, k, h, w, df, expected",
    [
        # 4×4×4 on 2×2: four folds each way.
        # OS: ⌈4/2⌉·⌈4/2⌉ = 4 folds of K+H+W−2 = 6 cycles → 24 − 1
        (4, 4, 4, 2, 2, "os", 23),
        # WS: ⌈K/H⌉·⌈N/W⌉ = 4 folds of M+2H+W−2 = 8 → 32 − 1
        (4, 4, 4, 2, 2, "ws", 31),
        # IS: ⌈K/H⌉·⌈M/W⌉ = 4 folds of N+2H+W−2 = 8 → 32 − 1
        (4, 4, 4, 2, 2, "is", 31),
        # Non-square array, ragged folds: M=10, N=3, K=5 on H=4, W=2.
        # OS: ⌈10/4⌉·⌈3/2⌉ = 6 folds × (5+4+2−2 = 9) − 1
        (10, 3, 5, 4, 2, "os", 53),
        # WS: ⌈5/4⌉·⌈3/2⌉ = 4 folds × (10+8+2−2 = 18) − 1
        (10, 3, 5, 4, 2, "ws", 71),
        # IS: ⌈5/4⌉·⌈10/2⌉ = 10 folds × (3+8+2−2 = 11) − 1
        (10, 3, 5, 4, 2, "is", 109),
    ],
)
def test_compute_cycles_hand_worked(m, n, k, h, w, df, expected):
    assert cycles(m, n, k, h, w, df) == expected


def test_compute_cycles_match_every_scalesim_reference_row():
    ref = pd.read_csv(REFERENCE)
    t = lambda col: torch.tensor(ref[col].to_numpy(), dtype=torch.float64)  # noqa: E731
    df = torch.tensor([CODES[d] for d in ref["dataflow"]])
    ours = compute_cycles(t("gemm_M"), t("gemm_N"), t("gemm_K"), t("array_h"), t("array_w"), df)
    assert len(ref) == 114
    assert ours.to(torch.int64).tolist() == ref["compute_cycles"].tolist()


def test_sram_accesses_match_scalesim_reference_row():
    ref = pd.read_csv(REFERENCE)
    t = lambda col: torch.tensor(ref[col].to_numpy(), dtype=torch.float64)  # noqa: E731
    df = torch.tensor([CODES[d] for d in ref["dataflow"]])
    ifmap, filt, ofmap = sram_accesses(t("gemm_M"), t("gemm_N"), t("gemm_K"), t("array_h"), t("array_w"), df)
    assert ifmap.to(torch.int64).tolist() == ref["sram_ifmap_reads"].tolist()
    assert filt.to(torch.int64).tolist() == ref["sram_filter_reads"].tolist()
    assert ofmap.to(torch.int64).tolist() == ref["sram_ofmap_writes"].tolist()


dims = st.integers(min_value=1, max_value=4096)
arrays = st.integers(min_value=1, max_value=256)


@given(m=dims, n=dims, k=dims, h=arrays, w=arrays, df=st.sampled_from(["ws", "os", "is"]))
def test_compute_cycles_never_below_macs_over_pes(m, n, k, h, w, df):
    c = cycles(m, n, k, h, w, df)
    assert c * h * w >= m * n * k  # utilisation never exceeds 1


@given(m=dims, n=dims, k=dims, h=arrays, w=arrays, df=st.sampled_from(["ws", "os", "is"]))
def test_more_pes_never_increase_compute_cycles_when_doubling_both_sides(m, n, k, h, w, df):
    # Doubling one side can add fill cycles (2H + W), but never makes folds more numerous.
    from codesign.model.systolic import folds

    t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    r1, c1 = folds(t(m), t(n), t(k), t(h), t(w), torch.tensor(CODES[df]))
    r2, c2 = folds(t(m), t(n), t(k), t(2 * h), t(2 * w), torch.tensor(CODES[df]))
    assert r2 * c2 <= r1 * c1


# --- the stall model (SCALE-Sim's memory system) -------------------------------------------------
from codesign.model.systolic import floor_sum, operand_prefetches, stall_bound_cycles  # noqa: E402

dflows = st.sampled_from(["ws", "os", "is"])
kbs = st.sampled_from([1, 8, 32, 64, 256, 1024])


def stall_total(m, n, k, h, w, df, kb, bw):
    t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    code = torch.tensor(CODES[df])
    cc = compute_cycles(t(m), t(n), t(k), t(h), t(w), code)
    total = stall_bound_cycles(t(m), t(n), t(k), t(h), t(w), code, compute=cc, ifmap_words=t(kb * 1024),
                               filter_words=t(kb * 1024), ofmap_words=t(kb * 512), bw_words=t(bw))
    return cc.item(), total.item()


def test_floor_sum_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    n = torch.randint(0, 400, (500,), generator=gen)
    m = torch.randint(1, 10**6, (500,), generator=gen)
    a = torch.randint(0, 10**6, (500,), generator=gen)
    b = torch.randint(0, 10**7, (500,), generator=gen)
    want = [sum((int(a[j]) * i + int(b[j])) // int(m[j]) for i in range(int(n[j]))) for j in range(500)]
    assert floor_sum(n, m, a, b).to(torch.int64).tolist() == want


@settings(deadline=None)  # a scalar call follows up to 128 fold events in a loop: milliseconds, more on a busy machine
@given(m=dims, n=dims, k=dims, h=arrays, w=arrays, df=dflows, kb=kbs, bw=st.sampled_from([1, 4, 10, 100]),
       factor=st.sampled_from([2, 10]))
def test_stalls_never_grow_with_bandwidth(m, n, k, h, w, df, kb, bw, factor):
    cc, slow = stall_total(m, n, k, h, w, df, kb, bw)
    _, fast = stall_total(m, n, k, h, w, df, kb, bw * factor)
    assert cc <= fast <= slow * (1 + 1e-12)


@settings(deadline=None)  # a scalar call follows up to 128 fold events in a loop: milliseconds, more on a busy machine
@given(m=dims, n=dims, k=dims, h=arrays, w=arrays, df=dflows, kb=kbs)
def test_infinite_bandwidth_never_stalls(m, n, k, h, w, df, kb):
    cc, total = stall_total(m, n, k, h, w, df, kb, float("inf"))
    assert total == cc


@settings(deadline=None)  # a scalar call follows up to 128 fold events in a loop: milliseconds, more on a busy machine
@given(m=dims, n=dims, k=dims, h=arrays, w=arrays, df=dflows)
def test_operand_that_fits_half_the_buffer_is_never_refetched(m, n, k, h, w, df):
    t = lambda v: torch.tensor(float(v), dtype=torch.float64)  # noqa: E731
    words = t(2 * max(m * k, k * n) + 2048)  # the active half holds the whole fetch list
    (ki, _, _), (kf, _, _) = operand_prefetches(t(m), t(n), t(k), t(h), t(w), torch.tensor(CODES[df]),
                                                 ifmap_words=words, filter_words=words)
    assert ki.item() == 0 and kf.item() == 0


# --- IS ifmap of a convolution against a replay of SCALE-Sim's read buffer ----------------------
def _replay_is_ifmap(ih, iw, r, s, c, stride, h, w, words, distinct=False):
    """Prefetches SCALE-Sim 3.0.0 issues for an IS conv's ifmap: its im2col addresses
    (``operand_matrix.calc_ifmap_elem_addr``), fetch list (``create_ifmap_prefetch_mat``), sets of
    ``⌈S/100⌉`` entries that hold addresses (``read_buffer.prepare_hashed_buffer``), demand tile by
    tile, last row first (``create_ifmap_demand_mat``), and a slide per address found in no set of the
    window (``service_reads``, ``new_prefetch``). ``distinct``: every entry its own address."""
    import math

    import numpy as np

    q = (iw - s) // stride + 1
    pix = np.arange(((ih - r) // stride + 1) * q)[:, None]
    col = np.arange(r * s * c)[None, :]
    (oy, ox), (kr, rest) = np.divmod(pix, q), np.divmod(col, s * c)
    ks, kc = np.divmod(rest, c)
    trans = (((oy * stride + kr) * iw + ox * stride + ks) * c + kc).T  # K × M
    if distinct:
        trans = np.arange(trans.size).reshape(trans.shape)
    folds = [trans[:, f:f + w] for f in range(0, trans.shape[1], w)]
    eps = math.ceil(words / 100)
    n_sets = trans.size // eps + 1
    active = min(math.ceil(math.ceil(words / 2) / eps), n_sets)
    slide = min(math.ceil((words - math.ceil(words / 2)) / eps), n_sets - active)
    where: dict = {}
    for i, addr in enumerate(np.concatenate([f.reshape(-1) for f in folds]).tolist()):
        where.setdefault(addr, set()).add(i // eps)
    start, count = 0, 0
    for fold in folds:
        for top in range(0, trans.shape[0], h):
            for row in fold[top:top + h][::-1]:
                for addr in row.tolist():
                    while not any((x - start) % n_sets < active for x in where[addr]):
                        start, count = (start + slide) % n_sets, count + 1
    return count


@pytest.mark.parametrize("ih, iw, r, s, c, stride, h, w, words", [
    (18, 18, 5, 5, 4, 1, 16, 64, 8192),     # odd 5×5 at stride 1: reach 60 < W
    (18, 18, 5, 5, 16, 1, 16, 64, 16384),
    (37, 37, 7, 7, 2, 2, 32, 64, 4096),     # odd 7×7 at stride 2: reach 51
    (16, 16, 3, 3, 8, 1, 8, 32, 4096),      # VGG-like 3×3: reach 30
    (23, 17, 7, 1, 8, 1, 16, 128, 8192),    # 7×1: reach 102
    (33, 33, 3, 3, 8, 2, 16, 32, 4096),     # strided 3×3: reach 17
])
def test_is_conv_ifmap_prefetches_follow_scalesim_read_buffer(ih, iw, r, s, c, stride, h, w, words):
    """Where no fold's first pixel recurs in a later fold (``reach < W``), every row left behind the window still
    wraps: the tile walk counts the prefetches of the same list with distinct words exactly, and SCALE-Sim's (its
    lap may stop early at an earlier fold's copy of the word) at most 5 % fewer (docs/model.md, "Memory traffic
    and stalls")."""
    p, q = (ih - r) // stride + 1, (iw - s) // stride + 1
    reach = (r - 1) // stride * q + (s - 1) // stride
    assert reach < w
    t = lambda v: torch.tensor([float(v)], dtype=torch.float64)  # noqa: E731
    (k_ifmap, _, _), _ = operand_prefetches(t(p * q), t(8), t(r * s * c), t(h), t(w), torch.tensor([IS]),
                                            ifmap_words=t(words), filter_words=t(1e6), out_cols=t(q),
                                            overlap=torch.tensor([r > stride]), stride=t(stride), reach=t(reach))
    assert k_ifmap.item() == _replay_is_ifmap(ih, iw, r, s, c, stride, h, w, words, distinct=True)
    scalesim = _replay_is_ifmap(ih, iw, r, s, c, stride, h, w, words)
    assert scalesim <= k_ifmap.item() <= 1.05 * scalesim
