"""Technology tables and the batched area / energy / die-cost formulas."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.hardware import cost
from codesign.hardware.cost import (
    area_breakdown_mm2,
    area_mm2,
    die_cost_usd,
    die_yield,
    dies_per_wafer,
    sram_energy_pj_per_byte,
    static_power_w,
)
from codesign.hardware.tech import DRAM_KINDS, PRECISIONS, TECH_NODES, TechNode, resolve_tech_node

N7 = TECH_NODES["7nm"]
N28 = TECH_NODES["28nm"]
N45 = TECH_NODES["45nm"]
FAST = settings(max_examples=60, deadline=None)
areas = st.floats(min_value=0.01, max_value=800.0, allow_nan=False)


def bare(node: TechNode) -> TechNode:
    """``node`` with no edge exclusion and no scribe, for textbook hand calculations."""
    return dataclasses.replace(node, edge_exclusion_mm=1e-12, scribe_mm=1e-12)


# --- tables ---------------------------------------------------------------------------------


def test_required_nodes_and_kinds():
    assert {"45nm", "28nm", "16nm", "7nm", "5nm"} <= set(TECH_NODES)
    assert DRAM_KINDS == ("ddr4", "lpddr4", "hbm2")


@pytest.mark.parametrize("name", list(TECH_NODES))
def test_every_field_positive(name):
    node = TECH_NODES[name]
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.name == "name":
            assert value == name
        elif f.name == "sram_table":  # the built-in nodes use the power law (tests/test_tech_tables.py: the tables)
            assert value is None
        elif isinstance(value, dict):
            assert set(value) == set(PRECISIONS if f.name in ("mac_energy_pj", "vector_op_energy_pj", "pe_area_um2") else DRAM_KINDS)
            assert all(math.isfinite(v) and v > 0 for v in value.values()), f.name
        else:
            assert math.isfinite(value) and value > 0, f.name
    assert node.overhead_area_fraction < 1
    assert node.wafer_diameter_mm == 300.0


def test_horowitz_45nm_mac_energy_exact():
    # Horowitz, ISSCC 2014 (45 nm): 8b mult 0.2 + add 0.03; fp16 1.1 + 0.4; fp32 3.7 + 0.9 pJ.
    assert N45.mac_energy_pj[1] == pytest.approx(0.23, rel=1e-12)
    assert N45.mac_energy_pj[2] == pytest.approx(1.5, rel=1e-12)
    assert N45.mac_energy_pj[4] == pytest.approx(4.6, rel=1e-12)


def test_sram_fit_reproduces_horowitz_points():
    # 64-bit reads at 45 nm: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ → per byte / 8.
    assert 0.45 < N45.sram_energy_size_exponent < 0.50
    for kib, pj in {8: 10.0, 32: 20.0, 1024: 100.0}.items():
        got = sram_energy_pj_per_byte(N45, torch.tensor([float(kib)], dtype=torch.float64)).item()
        assert got == pytest.approx(pj / 8.0, rel=0.03)


def test_scaling_is_monotone_in_node():
    order = ["45nm", "28nm", "16nm", "7nm", "5nm"]
    for old, new in zip(order, order[1:]):
        a, b = TECH_NODES[old], TECH_NODES[new]
        assert all(b.mac_energy_pj[p] < a.mac_energy_pj[p] for p in PRECISIONS)
        assert all(b.pe_area_um2[p] < a.pe_area_um2[p] for p in PRECISIONS)
        assert b.sram_area_mm2_per_kib < a.sram_area_mm2_per_kib
        assert b.wafer_cost_usd >= a.wafer_cost_usd
    for node in TECH_NODES.values():
        assert node.mac_energy_pj[1] < node.mac_energy_pj[2] < node.mac_energy_pj[4]
        assert node.pe_area_um2[1] < node.pe_area_um2[2] < node.pe_area_um2[4]
        dram = node.dram_energy_pj_per_byte
        assert dram["hbm2"] < dram["lpddr4"] < dram["ddr4"]
        # memory hierarchy ordering: register < 8 KiB SRAM < DRAM
        assert node.reg_energy_pj_per_byte < node.sram_energy_pj_per_byte_at_8kib < node.dram_energy_pj_per_byte["hbm2"]


def test_hbm2_energy_matches_oconnor():
    assert N7.dram_energy_pj_per_byte["hbm2"] == pytest.approx(3.9 * 8)


def test_resolve_tech_node():
    assert resolve_tech_node("7nm") is N7
    assert resolve_tech_node(N7) is N7
    with pytest.raises(ValueError, match="45nm.*28nm.*16nm.*7nm.*5nm"):
        resolve_tech_node("3nm")


def test_technode_rejects_bad_values_and_is_hashable():
    with pytest.raises(ValueError, match="wafer_cost_usd"):
        dataclasses.replace(N7, wafer_cost_usd=-1.0)
    with pytest.raises(ValueError, match="mac_energy_pj"):
        dataclasses.replace(N7, mac_energy_pj={1: 0.1})
    with pytest.raises(ValueError, match="overhead_area_fraction"):
        dataclasses.replace(N7, overhead_area_fraction=1.0)
    assert len({N7, N45, dataclasses.replace(N7)}) == 2


# --- hand-computed cases -----------------------------------------------------------------------


def test_dies_per_wafer_textbook_100mm2():
    # π·150²/100 − π·300/√200 = 706.86 − 66.64 = 640.2 on a bare 300 mm wafer.
    got = dies_per_wafer(torch.tensor([100.0], dtype=torch.float64), bare(N7)).item()
    assert got == pytest.approx(math.pi * 150**2 / 100 - math.pi * 300 / math.sqrt(200), rel=1e-9)
    assert got == pytest.approx(640.2, abs=0.1)
    # With 3 mm edge exclusion and a 0.1 mm scribe: d = 294, A = 10.1² = 102.01 → 600.8.
    assert dies_per_wafer(torch.tensor([100.0], dtype=torch.float64), N7).item() == pytest.approx(600.8, abs=0.1)


def test_yield_hand_computed():
    # 1 cm² at D0 = 0.09/cm², α = 3: (1 + 0.03)^−3 = 0.91514.
    y = die_yield(torch.tensor([100.0], dtype=torch.float64), N7).item()
    assert y == pytest.approx(1.03**-3, rel=1e-12)
    # α → large approaches Poisson exp(−A·D0).
    y_poisson = die_yield(torch.tensor([100.0], dtype=torch.float64), N7, alpha=1e6).item()
    assert y_poisson == pytest.approx(math.exp(-0.09), rel=1e-5)


def test_die_cost_7nm_100mm2_tens_of_dollars():
    # CSET's 7 nm wafer ($9,346) over ~600 good 100 mm² dies ≈ $17 — the "tens of dollars" range.
    c = die_cost_usd(torch.tensor([100.0], dtype=torch.float64), N7).item()
    assert c == pytest.approx(9346 / (600.8 * 1.03**-3), rel=1e-3)
    assert 10.0 < c < 40.0


def test_die_cost_close_to_cset_600mm2_7nm():
    # Khan & Mann (CSET 2020) estimate $233 per ~600 mm² 7 nm chip on the same wafer price; their
    # yield / dies-per-wafer assumptions differ from ours, so only agreement within 1.5x is asked.
    c = die_cost_usd(torch.tensor([600.0], dtype=torch.float64), N7).item()
    assert 233 / 1.5 < c < 233 * 1.5


def test_tpuv1_area_reproduced():
    # TPUv1 (Jouppi et al., ISCA 2017): 28 nm, 256×256 int8 MACs, 24 MiB buffer + 4 MiB accumulators,
    # 2 DDR3 channels, die ≤ 331 mm². The calibration must give that die back.
    tpu = dict(pe_rows=256, pe_cols=256, sram_kib=28 * 1024, n_cores=1, n_dram_ports=2)
    tpu.update(precision_bytes=1, dram_kind="ddr4")
    a = area_mm2(N28, **tpu)
    assert a.item() == pytest.approx(331.0, rel=0.01)
    parts = area_breakdown_mm2(N28, **tpu)
    assert parts["pe_array"].item() / a.item() == pytest.approx(0.24, abs=0.005)
    assert parts["overhead"].item() / a.item() == pytest.approx(0.38, abs=1e-6)
    assert static_power_w(a, N28).item() == pytest.approx(28.0, rel=0.01)  # TPUv1 die idle power


def test_area_formula_by_hand():
    node = N7
    kw = dict(pe_rows=16, pe_cols=8, sram_kib=256, n_cores=4, n_dram_ports=2, precision_bytes=2, dram_kind="hbm2")
    got = area_mm2(node, **kw).item()
    core = 16 * 8 * node.pe_area_um2[2] * 1e-6 + 256 * node.sram_area_mm2_per_kib + node.router_area_mm2
    want = (4 * core + 2 * node.dram_phy_area_mm2["hbm2"]) / (1 - node.overhead_area_fraction)
    assert got == pytest.approx(want, rel=1e-6)


# --- laws -------------------------------------------------------------------------------------


@FAST
@given(a=areas, b=areas, name=st.sampled_from(list(TECH_NODES)))
def test_larger_die_never_costs_less(a, b, name):
    lo, hi = sorted((a, b))
    c = die_cost_usd(torch.tensor([lo, hi], dtype=torch.float64), TECH_NODES[name])
    assert c[0] <= c[1]


@FAST
@given(a=st.floats(min_value=1e-3, max_value=1e7), name=st.sampled_from(list(TECH_NODES)))
def test_yield_in_unit_interval_and_cost_finite(a, name):
    node = TECH_NODES[name]
    x = torch.tensor([a], dtype=torch.float64)
    y = die_yield(x, node).item()
    assert 0.0 < y <= 1.0
    c = die_cost_usd(x, node).item()
    assert math.isfinite(c) and c > 0
    assert dies_per_wafer(x, node).item() >= cost.MIN_DIES_PER_WAFER


@FAST
@given(a=areas, name=st.sampled_from(list(TECH_NODES)))
def test_cost_finite_positive_up_to_800mm2_float32(a, name):
    c = die_cost_usd(torch.tensor([a], dtype=torch.float32), TECH_NODES[name])
    assert bool(torch.isfinite(c).all()) and bool((c > 0).all())
    assert c.item() < 1e5  # every die up to the reticle-sized 800 mm² yields many dies per wafer


def test_die_bigger_than_wafer_is_astronomical_not_nan():
    c = die_cost_usd(torch.tensor([80000.0, 1e9], dtype=torch.float64), N7)
    assert bool(torch.isfinite(c).all()) and bool((c > 1e12).all())


design = st.fixed_dictionaries(
    {
        "pe_rows": st.integers(0, 256),
        "pe_cols": st.integers(0, 256),
        "sram_kib": st.floats(0, 65536),
        "n_cores": st.integers(0, 64),
        "n_dram_ports": st.integers(0, 8),
    }
)


@FAST
@given(
    d=design,
    extra=st.integers(1, 64),
    extra_kib=st.floats(1e-3, 4096),
    p=st.sampled_from(PRECISIONS),
    kind=st.sampled_from(DRAM_KINDS),
)
def test_more_pes_or_sram_never_reduces_area(d, extra, extra_kib, p, kind):
    base = area_mm2(N7, **d, precision_bytes=p, dram_kind=kind).item()
    for key in d:
        more = dict(d, **{key: d[key] + (extra_kib if key == "sram_kib" else extra)})
        assert area_mm2(N7, **more, precision_bytes=p, dram_kind=kind).item() >= base


# --- batching, dtype, device ----------------------------------------------------------------------


def population(dtype=torch.float64, device="cpu"):
    g = torch.Generator().manual_seed(0)
    kw = {
        "pe_rows": torch.randint(1, 129, (32,), generator=g),
        "pe_cols": torch.randint(1, 129, (32,), generator=g),
        "sram_kib": torch.rand(32, generator=g, dtype=torch.float64) * 4096 + 1,
        "n_cores": torch.randint(1, 33, (32,), generator=g),
        "n_dram_ports": torch.randint(1, 5, (32,), generator=g),
    }
    return {k: (v.to(dtype) if v.is_floating_point() else v).to(device) for k, v in kw.items()}


def test_batched_equals_elementwise():
    kw = population()
    batched = area_mm2(N7, **kw, precision_bytes=2, dram_kind="lpddr4")
    assert batched.shape == (32,) and batched.dtype == torch.float64
    cost_b, e_b = die_cost_usd(batched, N7), sram_energy_pj_per_byte(N7, kw["sram_kib"])
    for i in range(32):
        one = area_mm2(N7, **{k: v[i] for k, v in kw.items()}, precision_bytes=2, dram_kind="lpddr4")
        assert one.shape == () and one.item() == pytest.approx(batched[i].item(), rel=1e-12)
        assert die_cost_usd(one, N7).item() == pytest.approx(cost_b[i].item(), rel=1e-12)
        assert sram_energy_pj_per_byte(N7, kw["sram_kib"][i]).item() == pytest.approx(e_b[i].item(), rel=1e-12)


def test_broadcasting_shapes():
    rows, cols = torch.tensor([[8.0], [16.0]]), torch.tensor([4.0, 8.0, 16.0])
    kw = dict(sram_kib=64, n_cores=1, n_dram_ports=1, precision_bytes=1, dram_kind="ddr4")
    parts = area_breakdown_mm2(N7, pe_rows=rows, pe_cols=cols, **kw)
    assert all(v.shape == (2, 3) for v in parts.values())
    assert sum(parts.values()).shape == (2, 3)


CUDA = pytest.param(
    "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_float32_and_float64_agree(device):
    k64, k32 = population(torch.float64, device), population(torch.float32, device)
    a64 = area_mm2(N7, **k64, precision_bytes=1, dram_kind="hbm2")
    a32 = area_mm2(N7, **k32, precision_bytes=1, dram_kind="hbm2")
    assert a32.dtype == torch.float32 and a32.device.type == device
    torch.testing.assert_close(a32.double(), a64, rtol=1e-5, atol=0)
    for fn in (die_cost_usd, die_yield, dies_per_wafer, static_power_w):
        torch.testing.assert_close(fn(a32, N7).double(), fn(a64, N7), rtol=1e-4, atol=0)
    e32, e64 = sram_energy_pj_per_byte(N7, k32["sram_kib"]), sram_energy_pj_per_byte(N7, k64["sram_kib"])
    torch.testing.assert_close(e32.double(), e64, rtol=1e-5, atol=0)


def test_gradients_flow_and_are_finite():
    a = torch.tensor([50.0, 400.0, 5e4], dtype=torch.float64, requires_grad=True)
    die_cost_usd(a, N7).sum().backward()
    assert bool(torch.isfinite(a.grad).all())
    assert bool((a.grad[:2] > 0).all())


def test_integer_inputs_give_default_float():
    ints = dict(pe_rows=torch.tensor([8]), pe_cols=torch.tensor([8]), sram_kib=torch.tensor([64]), n_cores=2)
    a = area_mm2(N7, **ints, n_dram_ports=1, precision_bytes=1, dram_kind="ddr4")
    assert a.dtype == torch.get_default_dtype()


# --- validation --------------------------------------------------------------------------------


def test_validation_names_the_argument():
    ok = dict(pe_rows=8, pe_cols=8, sram_kib=64, n_cores=1, n_dram_ports=1, precision_bytes=1, dram_kind="ddr4")
    with pytest.raises(ValueError, match="precision_bytes"):
        area_mm2(N7, **dict(ok, precision_bytes=3))
    with pytest.raises(ValueError, match="dram_kind"):
        area_mm2(N7, **dict(ok, dram_kind="gddr6"))
    with pytest.raises(ValueError, match="sram_kib"):
        area_mm2(N7, **dict(ok, sram_kib=torch.tensor([1.0, -1.0])))
    with pytest.raises(ValueError, match="pe_rows"):
        area_mm2(N7, **dict(ok, pe_rows=torch.tensor([float("nan")])))
    with pytest.raises(ValueError, match="area_mm2"):
        die_cost_usd(torch.tensor([0.0]), N7)
    with pytest.raises(ValueError, match="sram_kib"):
        sram_energy_pj_per_byte(N7, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="alpha"):
        die_yield(torch.tensor([1.0]), N7, alpha=0.0)
    with pytest.raises(TypeError, match="node"):
        die_cost_usd(torch.tensor([1.0]), "7nm")
    with pytest.raises(TypeError, match="n_cores"):
        area_mm2(N7, **dict(ok, n_cores="4"))
