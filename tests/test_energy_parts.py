"""Energy by component (codesign.vocab.ENERGY_PARTS): the parts of every design sum to its energy_j,
none is negative, both evaluation paths give the same parts, and one small layer's parts are the
per-action energies times its counts, by hand. The search's evaluations never compute them."""

from __future__ import annotations

import json

import pytest
import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.tech import TECH_NODES
from codesign.model.analytical import AnalyticalModel
from codesign.vocab import ENERGY_COLUMNS, ENERGY_PARTS
from codesign.workload.layer import Layer
from tests.helpers import EDGE, cli, make_space, random_rows
from tests.test_vector_unit import vector_space

SPACES = {
    "layer_by_layer": make_space(),
    "pipelined": make_space(workload={"network": "resnet18", "batch": 4}, schedule={"mode": ["layer_by_layer", "pipelined"]}),
    "fused_split": make_space(hardware={"grid_rows": [1, 2], "grid_cols": 2},
                              schedule={"fusion": "search", "tile_rows": [1, 4], "split": [1, 2], "split_axis": ["channels", "rows"]}),
    "vector": vector_space(2, schedule={"mode": ["layer_by_layer", "pipelined"]}),
    "chiplets": make_space(hardware={"grid_rows": 2, "grid_cols": 2, "dies": [1, 2, 4], "package": ["organic", "interposer_2_5d"]}),
}
MODELS = {name: AnalyticalModel(space) for name, space in SPACES.items()}


def total(parts: dict) -> torch.Tensor:
    return sum(parts[name] for name in ENERGY_PARTS)


@pytest.mark.parametrize("name", list(SPACES))
def test_parts_sum_to_energy_and_are_not_negative_on_both_paths(name):
    space, model = SPACES[name], MODELS[name]
    rows = random_rows(space, 64, seed=5)
    tabulated = model.evaluate_rows(rows, detail=True)
    direct = model.evaluate_direct(space.decode(rows), detail=True)
    for ev in (tabulated, direct):
        assert list(ev.energy_parts) == list(ENERGY_PARTS)
        torch.testing.assert_close(total(ev.energy_parts), ev.metrics["energy_j"], rtol=1e-12, atol=0)
        for part, values in ev.energy_parts.items():
            assert values.shape == (64,) and bool((values >= 0).all()), part
        assert bool((ev.energy_parts["leakage"] > 0).all()) and bool((ev.energy_parts["mac"] > 0).all())
    for part in ENERGY_PARTS:
        torch.testing.assert_close(tabulated.energy_parts[part], direct.energy_parts[part], rtol=1e-12, atol=0, msg=part)


def test_parts_show_what_each_design_spends():
    """Pipelined batches spend batch × one sample's parts; chiplets pay D2D energy only across dies."""
    space, model = SPACES["chiplets"], MODELS["chiplets"]
    rows = random_rows(space, 256, seed=3)
    c = space.decode(rows)
    parts = model.evaluate_direct(c, detail=True).energy_parts
    assert bool((parts["d2d"][c.dies == 1] == 0).all())
    assert bool((parts["d2d"][c.dies > 1] > 0).any())
    vector = MODELS["vector"].evaluate_rows(random_rows(SPACES["vector"], 16, seed=1), detail=True).energy_parts
    assert bool((vector["vector"] > 0).all())


def test_the_search_path_computes_no_parts():
    space, model = SPACES["layer_by_layer"], MODELS["layer_by_layer"]
    rows = random_rows(space, 8, seed=2)
    assert model.evaluate_rows(rows).energy_parts is None
    assert model.evaluate_direct(space.decode(rows)).energy_parts is None


def test_one_small_layer_by_hand():
    """An fc layer (16 × 32, int8) on one core: the MACs, register file, DRAM and leakage parts are its
    counts times the technology table's per-action energies; the vector unit and D2D spend nothing."""
    layer = Layer("fc", op="fc", N=1, K=16, C=32, P=1, Q=1)
    hardware = {"pe_rows": 8, "pe_cols": 8, "sram_kib": 64, "dram_gbps": 8.0, "node": "7nm", "dram_kind": "lpddr4"}
    model = AnalyticalModel.for_layers([layer], hardware=hardware, schedule={"dataflow": ["os"], "mapping": "single_core"})
    ev = model.evaluate(model.space.decode(torch.zeros((1, 0), dtype=torch.long)), detail=True)
    parts = {name: float(v[0]) for name, v in ev.energy_parts.items()}
    tech = TECH_NODES["7nm"]
    macs = 16 * 32
    assert parts["mac"] == pytest.approx(macs * tech.mac_energy_pj[1] * 1e-12, rel=1e-12)
    assert parts["rf"] == pytest.approx(macs * 3 * 1 * tech.reg_energy_pj_per_byte * 1e-12, rel=1e-12)
    # The whole input (32 B), the weights (512 B) and the output (16 B) cross the DRAM interface once.
    assert float(ev.layers["dram_bytes"][0, 0]) == 32 + 512 + 16
    assert parts["dram"] == pytest.approx(560 * tech.dram_energy_pj_per_byte["lpddr4"] * 1e-12, rel=1e-12)
    # Each partition's DRAM fill is written into its SRAM: at least that much SRAM energy.
    for part, (fill, share) in zip(("sram_ifmap", "sram_filter", "sram_ofmap"), ((32, 0.4), (512, 0.4), (16, 0.2))):
        assert parts[part] >= fill * float(hwcost.sram_energy_pj_per_byte(tech, 64 * share)) * 1e-12 * (1 - 1e-12), part
    assert parts["vector"] == 0 and parts["d2d"] == 0
    area = float(ev.metrics["area_mm2"][0])
    assert parts["leakage"] == pytest.approx(area * tech.leakage_w_per_mm2 * float(ev.metrics["latency_s"][0]), rel=1e-12)
    assert sum(parts.values()) == pytest.approx(float(ev.metrics["energy_j"][0]), rel=1e-12)


def test_evaluate_lists_the_parts(capsys):
    code, out, _ = cli(capsys, "evaluate", EDGE, "--format", "json")
    assert code == 0
    result = json.loads(out)
    assert list(result["energy_parts"]) == list(ENERGY_COLUMNS)
    assert sum(result["energy_parts"].values()) == pytest.approx(result["metrics"]["energy_j"], rel=1e-12)
    code, out, _ = cli(capsys, "evaluate", EDGE)
    assert code == 0 and "energy by component: energy_mac_j=" in out


def test_energy_plot(tmp_path):
    import pandas as pd

    from codesign.plots import plot_energy_parts

    frame = pd.DataFrame([{column: 1e-3 * (i + 1) for i, column in enumerate(ENERGY_COLUMNS)}] * 3).assign(trial=[4, 9, 12])
    assert plot_energy_parts(frame, tmp_path / "e.png").stat().st_size > 0
    assert plot_energy_parts(frame.iloc[:0], tmp_path / "none.png").stat().st_size > 0
    with pytest.raises(ValueError, match="energy_leakage_j"):
        plot_energy_parts(frame.drop(columns="energy_leakage_j"), tmp_path / "x.png")
