"""Chiplets: the mesh cut into dies, D2D links in the NoC model, and the package's recurring cost
(codesign/hardware/package.py, codesign/model/chiplets.py). The laws of issue 16 as property tests."""

from __future__ import annotations

import math
from functools import lru_cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codesign.design import load_design, parse_design
from codesign.errors import DesignError
from codesign.hardware.cost import die_cost_usd, die_yield
from codesign.hardware.floorplan import build_floorplan, route_crossings
from codesign.hardware.package import (PACKAGE_TECH, _carrier_yield, boundary_links, d2d_phy_area_mm2, die_crossings, die_grid,
                                       die_grid_of, package_cost_parts, package_cost_usd)
from codesign.hardware.tech import TECH_NODES
from codesign.model.analytical import AnalyticalModel
from codesign.space import DesignSpace
from codesign.vocab import PACKAGES
from tests.helpers import DESIGNS, assert_one_error, cli, random_rows

MULTI = [p for p in PACKAGES if p != "monolithic"]
METRIC_NAMES = ("latency_s", "energy_j", "area_mm2", "cost_usd", "power_w")
F64 = dict(dtype=torch.float64)


def _space(design: str, **hardware) -> DesignSpace:
    raw = load_design(DESIGNS / design).model_dump(mode="json")
    raw["hardware"].update(hardware)
    return DesignSpace.from_design(parse_design(raw, source=f"<{design}>"))


@lru_cache(maxsize=None)
def _pair(design: str):
    """The bench design as it is, and the same with chiplets searched (dies 1, 2, 4; every package)."""
    plain = _space(design)
    chip = _space(design, dies=[1, 2, 4], package=MULTI, d2d_gbps=[32.0, 128.0])
    return AnalyticalModel(plain), AnalyticalModel(chip)


def _with_chiplets(plain: DesignSpace, chip: DesignSpace, rows: torch.Tensor, **fixed) -> torch.Tensor:
    """``rows`` of the plain space as rows of the chiplet space, the chiplet knobs at ``fixed`` codes."""
    out = []
    for row in rows.tolist():
        params = plain.decode_params(row)
        params.update({f"hw.{name}": getattr(chip.design.hardware, name)[code] for name, code in fixed.items()})
        out.append(chip.encode(params))
    return torch.tensor(out, dtype=torch.long)


# --- law: one die equals today's monolithic result ------------------------------------------------


@pytest.mark.parametrize("design", ["bench_resnet50_16core.toml", "bench_resnet50_16core_fused.toml"])
@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), package=st.integers(0, 2), d2d=st.integers(0, 1))
def test_one_die_equals_the_monolithic_result(design, seed, package, d2d):
    plain, chip = _pair(design)
    assert not plain.chiplets.enabled and chip.chiplets.enabled
    rows = random_rows(plain.space, 64, seed)
    same = _with_chiplets(plain.space, chip.space, rows, dies=0, package=package, d2d_gbps=d2d)
    pairs = [(chip.evaluate_rows(same), plain.evaluate_rows(rows)),  # tabulated, and direct
             (chip.evaluate_direct(chip.space.decode(same)), plain.evaluate_direct(plain.space.decode(rows)))]
    for got, want in pairs:
        for name in METRIC_NAMES:
            assert torch.equal(got.metrics[name], want.metrics[name]), name


def test_direct_and_tabulated_paths_agree_with_chiplets():
    _, chip = _pair("bench_resnet50_16core.toml")
    rows = random_rows(chip.space, 256, 7)
    tab, direct = chip.evaluate_rows(rows).metrics, chip.evaluate_direct(chip.space.decode(rows)).metrics
    for name in METRIC_NAMES:
        torch.testing.assert_close(tab[name], direct[name], rtol=1e-12, atol=0.0)
    several = chip.space.decode(rows).dies > 1
    assert several.any() and (~several).any()


# --- law: more dies at a fixed total area never cost less in packaging ----------------------------


@settings(max_examples=200, deadline=None)
@given(area=st.floats(20.0, 2000.0), n=st.integers(1, 15), more=st.integers(1, 16), package=st.sampled_from(MULTI),
       node=st.sampled_from(sorted(TECH_NODES)))
def test_more_dies_never_cost_less_in_packaging(area, n, more, package, node):
    tech = TECH_NODES[node]
    total = torch.tensor(area, **F64)
    fewer = package_cost_parts(tech, total / n, torch.tensor(n), package)["package"]
    many = package_cost_parts(tech, total / (n + more), torch.tensor(n + more), package)["package"]
    assert float(many) >= float(fewer) * (1 - 1e-12)
    assert float(package_cost_parts(tech, total, torch.tensor(1), "monolithic")["package"]) == 0.0


# --- law: die-to-die traffic is zero when no layer edge crosses a die -----------------------------


@lru_cache(maxsize=None)
def _quad():
    """ResNet-18 on a 4×4 mesh cut into 1, 2 or 4 dies."""
    space = _space("edge_resnet18.toml", grid_rows=4, grid_cols=4, dies=[1, 2, 4], package=MULTI, d2d_gbps=[16.0, 64.0])
    return AnalyticalModel(space)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dies=st.integers(1, 2), within=st.booleans())
def test_no_d2d_traffic_when_no_edge_crosses_a_die(seed, dies, within):
    model = _quad()
    space = model.space
    rows = random_rows(space, 32, seed)
    rows[:, space._hw_col["dies"]] = dies  # 2 or 4 dies
    c = space.decode(rows)
    if within:  # every layer on the cores of die 0 (the top-left 2×2 or 4×2 block)
        c.core = torch.tensor([0, 1, 4, 5])[c.core % 4] if dies == 2 else torch.tensor([0, 1, 4, 5, 8, 9, 12, 13])[c.core % 8]
    cycles, byte_hops, d2d = model.transfers(c, d2d=True)
    mono = space.decode(torch.cat([rows[:, :space._hw_col["dies"]], torch.zeros_like(rows[:, :1]), rows[:, space._hw_col["dies"] + 1:]], 1))
    mono.core = c.core
    mono_cycles, mono_hops, mono_d2d = model.transfers(mono, d2d=True)
    assert float(mono_d2d.abs().max()) == 0.0
    if within:
        assert float(d2d.abs().max()) == 0.0
        assert torch.equal(cycles, mono_cycles) and torch.equal(byte_hops, mono_hops)
    else:  # a crossing costs its D2D energy, and moves no byte-hop off the mesh
        crossed = d2d > 0
        assert crossed.any()
        assert bool((byte_hops[crossed] < mono_hops[crossed]).all())
    # The tabulated path gathers the same crossings.
    path = model.tabulated
    path.ready()
    k = path.codes_from_values(c)
    assert k is not None
    t_cycles, t_hops, t_d2d = path.transfers(k, with_d2d=True)
    torch.testing.assert_close(t_d2d, d2d, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(t_hops, byte_hops, rtol=1e-12, atol=0.0)


def test_crossings_batched_equal_the_floorplan_routes():
    for rows, cols, dies in [(4, 4, 2), (4, 4, 4), (4, 8, 8), (6, 4, 6), (2, 6, 3), (4, 4, 16)]:
        g = build_floorplan(rows, cols, 2, dies=dies)
        dr, dc = die_grid_of(rows, cols, dies)
        n = rows * cols
        a, b = torch.arange(n)[:, None], torch.arange(n)[None, :]
        batched = die_crossings(a, b, torch.tensor(cols), torch.tensor(rows // dr), torch.tensor(cols // dc))
        want = torch.tensor([[route_crossings(g, f"core{i}", f"core{j}") for j in range(n)] for i in range(n)])
        assert torch.equal(batched, want), (rows, cols, dies)
        d2d_links = sum(1 for _, _, kind in g.edges(data="kind") if kind == "d2d")
        assert d2d_links == boundary_links(rows, cols, dr, dc)
        bdr, bdc = die_grid(torch.tensor([rows]), torch.tensor([cols]), torch.tensor([dies]))
        assert (int(bdr), int(bdc)) == (dr, dc)


def test_a_crossing_pays_the_package_latency_and_the_slower_link():
    model = _quad()
    space = model.space
    rows = random_rows(space, 1, 0)
    rows[:, space._hw_col["dies"]] = 1  # 2 dies: columns 0-1 and 2-3
    rows[:, space._hw_col["d2d_gbps"]] = 0  # 16 GB/s, against a 64 GB/s mesh link
    c = space.decode(rows)
    c.core = torch.arange(c.core.shape[1])[None, :] % 16  # layer l on core l mod 16: some edges cross
    cycles, _, latency, _ = model.transfers(c, latency=True, d2d=True)
    link = float(c.noc_link_gbps[0] / c.clock_ghz[0])
    lw = model.lw
    producer, consumer = c.core[:, lw.preds], c.core[:, :, None]
    for l, j in [(l, j) for l in range(len(lw.names)) for j in range(lw.preds.shape[1]) if bool(lw.pred_mask[l, j])][:40]:
        p, q = int(producer[0, l, j]), int(consumer[0, l, 0])
        hops = abs(p % 4 - q % 4) + abs(p // 4 - q // 4)
        cross = abs(p % 4 // 2 - q % 4 // 2)
        if hops == 0:
            continue
        ns = PACKAGE_TECH[space.design.hardware.package[int(c.package[0])]].d2d_ns
        want_latency = (hops - cross) * model.hop_cycles + cross * ns * float(c.clock_ghz[0])
        bytes_ = float(lw.pred_bytes[l, j])
        want = bytes_ / (link if cross == 0 else min(link, 16.0 / float(c.clock_ghz[0]))) + want_latency
        assert math.isclose(float(latency[0, l, j]), want_latency, rel_tol=1e-12)
        assert math.isclose(float(cycles[0, l, j]), want, rel_tol=1e-12)


# --- law: yield falls with area -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(a=st.floats(1.0, 3000.0), extra=st.floats(0.5, 1000.0), node=st.sampled_from(sorted(TECH_NODES)),
       package=st.sampled_from(["info", "interposer_2_5d"]))
def test_yield_falls_with_area(a, extra, node, package):
    small, large = torch.tensor(a, **F64), torch.tensor(a + extra, **F64)
    tech = TECH_NODES[node]
    assert float(die_yield(large, tech)) < float(die_yield(small, tech))
    carrier = PACKAGE_TECH[package]
    assert float(_carrier_yield(large, carrier)) < float(_carrier_yield(small, carrier))


# --- the cost model's numbers ----------------------------------------------------------------------


def test_organic_cost_by_hand():
    """Two 200 mm² 7 nm dies on an organic substrate, Chiplet Actuary's formula written out."""
    tech = TECH_NODES["7nm"]
    a, n = 200.0, 2
    die = float(die_cost_usd(torch.tensor(a, **F64), tech))
    y = float(die_yield(torch.tensor(a, **F64), tech))
    test = 1.0 * 150.0 / 3600.0 / y
    chips = n * (die + test + a * 0.005)
    substrate = 4 * n * a * 0.005 * 2.0  # 1,600 mm² of substrate: the 30×30 mm class and up, × 2
    want = (chips + substrate) / 0.99**n
    got = float(package_cost_usd(tech, torch.tensor(a, **F64), torch.tensor(n), "organic"))
    assert math.isclose(got, want, rel_tol=1e-12)


def test_several_small_dies_are_cheaper_than_one_big_one_only_when_the_die_is_big():
    tech = TECH_NODES["7nm"]
    # (Chiplet Actuary's finding: an organic MCM pays off first; a silicon interposer only for the largest dies)
    for package, area in [("organic", 800.0), ("info", 800.0), ("interposer_2_5d", 1200.0)]:
        big = torch.tensor(area, **F64)
        phy = d2d_phy_area_mm2(4, 64.0, 4, package)
        four = package_cost_usd(tech, big / 4 + phy, torch.tensor(4), package)
        assert float(four) < float(die_cost_usd(big, tech)), package
        small = torch.tensor(40.0, **F64)
        four_small = package_cost_usd(tech, small / 4 + d2d_phy_area_mm2(4, 64.0, 4, package), torch.tensor(4), package)
        assert float(four_small) > float(die_cost_usd(small, tech)), package


def test_area_counts_every_die_with_its_d2d_phys():
    model = _quad()
    space = model.space
    rows = random_rows(space, 64, 3)
    c = space.decode(rows)
    plain_rows = rows.clone()
    plain_rows[:, space._hw_col["dies"]] = 0
    mono = model.evaluate_rows(plain_rows).metrics["area_mm2"]
    area = model.evaluate_rows(rows).metrics["area_mm2"]
    dr, dc = die_grid(c.grid_rows, c.grid_cols, c.dies)
    links = boundary_links(c.grid_rows, c.grid_cols, dr, dc).double()
    phy = torch.zeros_like(area)
    for i, package in enumerate(space.design.hardware.package):
        here = (c.package == i) & (c.dies > 1)
        phy = torch.where(here, c.dies * d2d_phy_area_mm2(links, c.d2d_gbps, c.dies.double(), package), phy)
    torch.testing.assert_close(area, mono + phy, rtol=1e-12, atol=0.0)


# --- the design file -----------------------------------------------------------------------------


def test_dies_that_do_not_divide_the_mesh_name_the_key():
    raw = {"workload": {"network": "resnet18"}, "hardware": {"grid_rows": [2, 4], "grid_cols": 4, "dies": [2, 3], "package": "organic"}}
    with pytest.raises(DesignError, match=r"<t>: hardware.dies\[1\] = 3: cannot cut the 2×4 mesh"):
        parse_design(raw, source="<t>")
    raw["hardware"]["dies"] = [1, 4]
    raw["hardware"]["package"] = ["monolithic", "organic"]
    with pytest.raises(DesignError, match="hardware.package .*a monolithic package holds one die"):
        parse_design(raw, source="<t>")


def test_bad_dies_exit_2_with_the_key_path(tmp_path, capsys):
    design = tmp_path / "d.toml"
    design.write_text('[workload]\nnetwork = "resnet18"\n[hardware]\ngrid_rows = 2\ngrid_cols = 2\ndies = 3\npackage = "organic"\n')
    code, _, err = cli(capsys, "explore", design, "--out", tmp_path / "out", "--trials", "8")
    assert_one_error(code, err, str(design), "hardware.dies = 3", "2×2 mesh")


def test_the_chiplet_knobs_are_searched_and_stored():
    space = _quad().space
    names = [k.name for k in space.knobs]
    assert {"hw.dies", "hw.package", "hw.d2d_gbps"} <= set(names)
    c = space.decode(random_rows(space, 16, 1))
    assert c.dies.dtype == torch.long and c.package.dtype == torch.long and c.d2d_gbps.dtype == torch.float64
