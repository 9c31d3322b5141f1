"""Technology sources: the hwcomponents (CACTI) tables of data/hwcomponents/ beside the built-in ones.

``hardware.tech = "cacti"`` reads the committed tables (:mod:`codesign.hardware.tech_tables`);
these tests pin the loader, the interpolation (exact at the table's sizes, monotone in size), that
``builtin`` is the model as it was, that ``cacti`` moves energy and area the way the tables say,
that both evaluation paths agree under it, that a run explores with it, and the one-line errors.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from codesign.design import parse_design
from codesign.hardware import cost as hwcost
from codesign.hardware import tech_tables as tt
from codesign.hardware.tech import TECH_NODES
from codesign.model.analytical import AnalyticalModel
from codesign.vocab import PRECISIONS
from tests.helpers import DESIGNS, ROOT, assert_one_error, cli, make_space, random_rows, write_design

MODEL_MD = ROOT / "docs" / "model.md"


# --- the tables ------------------------------------------------------------------------------


def test_tables_cover_every_node_size_and_width():
    rows = tt.sram_rows()
    for name in TECH_NODES:
        nm = tt.node_nm(name)
        for kib in (2**i for i in range(4, 13)):  # 16 KiB - 4 MiB at least
            for width in (64, 128, 256, 512):
                found = [r for r in rows if (r["node_nm"], r["size_kib"], r["width_bits"]) == (nm, kib, width)]
                assert len(found) == 1, (name, kib, width)
                r = found[0]
                assert r["read_pj_per_byte"] == pytest.approx(r["read_pj"] / (width / 8), rel=1e-5)
                assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("read_pj", "write_pj", "area_mm2", "leakage_mw"))
        for component, variant in (("mac", "int8"), ("mac", "int16"), ("add", "int8"), ("register", "read"), ("noc_hop", "router+wire_1mm")):
            assert tt.component_pj(name, component, variant) > 0


def test_the_readme_of_the_tables_names_every_column():
    readme = (tt.TABLE_DIR / "README.md").read_text()
    for table in ("sram.csv", "components.csv"):
        header = (tt.TABLE_DIR / table).read_text().splitlines()[0].split(",")
        for column in header:
            assert f"`{column}`" in readme, (table, column)
    assert "hwcomponents==1.0.114" in readme and "make_tech_tables.py" in readme


@pytest.mark.parametrize("name", list(TECH_NODES))
def test_interpolation_is_exact_at_the_table_points(name):
    table = tt.sram_table(name)
    kib = torch.tensor(table.kib, dtype=torch.float64)
    assert table.energy(kib).tolist() == list(table.pj_per_byte)
    assert table.area(kib).tolist() == list(table.area_mm2)
    # through the cost functions the model calls
    node = tt.tech_node(name, "cacti")
    assert hwcost.sram_energy_pj_per_byte(node, kib).tolist() == list(table.pj_per_byte)


@pytest.mark.parametrize("name", list(TECH_NODES))
def test_interpolation_is_log_log_between_points_and_monotone_in_size(name):
    table = tt.sram_table(name)
    lo, hi = tt.sram_range_kib()
    kib = torch.logspace(math.log10(lo), math.log10(hi), 2001, dtype=torch.float64)
    for values in (table.energy(kib), table.area(kib)):
        assert bool((values[1:] >= values[:-1]).all())
    # halfway (in log size) between two points: the geometric mean of their values
    for k in range(len(table.kib) - 1):
        mid = torch.tensor(math.sqrt(table.kib[k] * table.kib[k + 1]), dtype=torch.float64)
        want = math.sqrt(table.pj_per_byte[k] * table.pj_per_byte[k + 1])
        assert table.energy(mid).item() == pytest.approx(want, rel=1e-12)


def test_interpolation_is_differentiable_and_batched():
    table = tt.sram_table("7nm")
    kib = torch.tensor([[20.0, 300.0], [4096.0, 1.5]], dtype=torch.float64, requires_grad=True)
    e = table.energy(kib)
    assert e.shape == kib.shape
    e.sum().backward()
    assert bool((kib.grad > 0).all())
    assert table.energy(kib.detach().float()).dtype == torch.float32


# --- the two sources --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TECH_NODES))
def test_builtin_is_the_built_in_table_and_cacti_replaces_what_the_library_models(name):
    builtin, cacti = tt.tech_node(name, "builtin"), tt.tech_node(name, "cacti")
    assert builtin is TECH_NODES[name] and builtin.sram_table is None
    assert cacti.mac_energy_pj[1] == tt.component_pj(name, "mac", "int8")
    assert cacti.vector_op_energy_pj[1] == tt.component_pj(name, "add", "int8")
    assert cacti.reg_energy_pj_per_byte == tt.component_pj(name, "register", "read")
    assert cacti.noc_hop_energy_pj_per_byte == 8 * tt.component_pj(name, "noc_hop", "router+wire_1mm")
    # no floating-point units in the library: fp16/fp32 stay Horowitz's, as do areas other than SRAM
    for p in PRECISIONS[1:]:
        assert cacti.mac_energy_pj[p] == builtin.mac_energy_pj[p]
    assert (cacti.pe_area_um2, cacti.router_area_mm2, cacti.leakage_w_per_mm2) == (
        builtin.pe_area_um2, builtin.router_area_mm2, builtin.leakage_w_per_mm2)
    with pytest.raises(ValueError, match="technology source"):
        tt.tech_node(name, "spice")


def _bench_space(tech: str | None, design: Path = DESIGNS / "bench_resnet50_16core.toml"):
    import tomllib

    raw = tomllib.loads(design.read_text())
    if tech is not None:
        raw["hardware"]["tech"] = tech
    from codesign.space import DesignSpace

    return DesignSpace.from_design(parse_design(raw, source=str(design)))


@pytest.mark.parametrize("design", ["bench_resnet50_16core.toml", "edge_resnet18.toml"])
def test_builtin_leaves_every_result_as_it_was(design):
    default, builtin = _bench_space(None, DESIGNS / design), _bench_space("builtin", DESIGNS / design)
    rows = random_rows(default, 64, seed=4)
    a = AnalyticalModel(default).evaluate_rows(rows, detail=True)
    b = AnalyticalModel(builtin).evaluate_rows(rows, detail=True)
    for name in a.metrics:
        assert torch.equal(a.metrics[name], b.metrics[name]), name


def test_cacti_moves_energy_and_area_as_the_tables_say():
    """At 7 nm and int8 the tables put Aladdin's MAC at ~6x Horowitz's and CACTI's SRAM above the
    built-in power law, so the layers' dynamic energy rises; CACTI's dense SRAM macro is smaller than
    the TPUv1-calibrated as-built SRAM, so the die (and with it the static power) shrinks."""
    hw = {"node": "7nm", "grid_rows": 1, "grid_cols": 1, "sram_kib": [256, 1024]}
    spaces = {t: make_space(hardware={**hw, "tech": t}) for t in ("builtin", "cacti")}
    rows = random_rows(spaces["builtin"], 64, seed=1)
    models = {t: AnalyticalModel(s) for t, s in spaces.items()}
    m = {t: model.evaluate_rows(rows).metrics for t, model in models.items()}
    dynamic = {t: model.layer_costs(spaces[t].decode(rows)).energy_j.sum(dim=1) for t, model in models.items()}
    assert bool((dynamic["cacti"] > dynamic["builtin"]).all())
    assert bool((m["cacti"]["area_mm2"] < m["builtin"]["area_mm2"]).all())
    assert torch.equal(m["cacti"]["latency_s"], m["builtin"]["latency_s"])  # timing does not depend on the source
    n7, c7 = TECH_NODES["7nm"], tt.tech_node("7nm", "cacti")
    assert c7.mac_energy_pj[1] > n7.mac_energy_pj[1]
    kib = torch.tensor([256.0, 1024.0], dtype=torch.float64)
    assert bool((hwcost.sram_energy_pj_per_byte(c7, kib) > hwcost.sram_energy_pj_per_byte(n7, kib)).all())


def test_both_evaluation_paths_agree_under_cacti():
    space = make_space(hardware={"tech": "cacti"}, schedule={"mode": ["layer_by_layer", "pipelined"]},
                       workload={"network": "resnet18", "batch": 4})
    model = AnalyticalModel(space)
    rows = random_rows(space, 200, seed=7)
    direct = model.evaluate_direct(space.decode(rows), detail=True)
    fast = model.evaluate_rows(rows, detail=True)
    assert model.tabulated.ready()
    for name, value in direct.metrics.items():
        torch.testing.assert_close(fast.metrics[name], value, rtol=1e-12, atol=0, msg=name)


def _set_tech(design: Path, tech: str) -> None:
    text, n = re.subn(r"(?m)^\[hardware\].*$", f'[hardware]\ntech = "{tech}"', design.read_text(), count=1)
    assert n == 1
    design.write_text(text)


def test_a_small_run_explores_with_cacti(tmp_path, capsys):
    design = write_design(tmp_path)
    _set_tech(design, "cacti")
    code, _, err = cli(capsys, "explore", design, "--trials", "32", "--seed", "1", "--out", tmp_path / "run", "--no-progress")
    assert code == 0, err
    energy = {}
    for tech in ("cacti", "builtin"):
        code, out, err = cli(capsys, "evaluate", design, "--set", f"hardware.tech={tech}", "--format", "json")
        assert code == 0, err
        energy[tech] = json.loads(out)["metrics"]["energy_j"]
    assert energy["cacti"] != energy["builtin"]


# --- errors ---------------------------------------------------------------------------------


def test_an_unknown_source_is_one_line_naming_the_key(tmp_path, capsys):
    design = write_design(tmp_path)
    _set_tech(design, "spice")
    code, _, err = cli(capsys, "explore", design, "--trials", "8", "--out", tmp_path / "run", "--no-progress")
    assert_one_error(code, err, str(design), "hardware.tech", "'spice'", "'builtin'", "'cacti'")


def test_a_buffer_outside_the_tables_is_one_line_naming_the_key(tmp_path, capsys):
    design = write_design(tmp_path, sram_kib=[64, 262144])
    _set_tech(design, "cacti")
    code, _, err = cli(capsys, "explore", design, "--trials", "8", "--out", tmp_path / "run", "--no-progress")
    line = assert_one_error(code, err, str(design), "hardware.tech = 'cacti'", "hardware.sram_kib", "262144", "65536 KiB")
    assert "--" not in line
    # the same sizes with the built-in tables are fine
    raw = {"workload": {"network": "resnet18"}, "hardware": {"sram_kib": [64, 262144]}}
    assert parse_design(raw).hardware.tech == "builtin"


# --- docs/model.md ----------------------------------------------------------------------------


def test_the_side_by_side_table_in_model_md_is_the_generated_one():
    text = MODEL_MD.read_text()
    assert tt.comparison_markdown() in text, "docs/model.md: rerun scripts/make_tech_tables.py --markdown"
    assert re.search(r"hwcomponents 1\.0\.114", text)
