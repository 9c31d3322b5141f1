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
