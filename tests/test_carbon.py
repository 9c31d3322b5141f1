"""Carbon after ACT (Gupta et al., ISCA 2022): embodied carbon of the die grows with its area,
operational carbon with its energy; both are metrics a search minimises or bounds, set by the design
file's [carbon] section."""

from __future__ import annotations

import pytest
import torch

from codesign import api
from codesign.design import parse_design
from codesign.errors import DesignError
from codesign.hardware import carbon
from codesign.hardware.cost import die_yield
from codesign.hardware.tech import TECH_NODES
from codesign.model.analytical import AnalyticalModel
from codesign.vocab import ENERGY_COLUMNS, METRICS
from tests.helpers import make_space, random_rows, write_design

YEAR_S = 365.25 * 24 * 3600


def test_embodied_carbon_is_acts_formula():
    """100 mm² at 7 nm, Taiwan's grid: (583 g/kWh · 2.15 kWh/cm² + 350 + 500 g/cm²) · 1 cm² / yield + 150 g."""
    area = torch.tensor([100.0], dtype=torch.float64)
    tech = TECH_NODES["7nm"]
    expected = ((583.0 * 2.15 + 350.0 + 500.0) / float(die_yield(area, tech)[0]) + 150.0) / 1000.0
    assert float(carbon.embodied_carbon_kg(area, tech)[0]) == pytest.approx(expected, rel=1e-12)
    # A cleaner fab grid (Iceland's 28 g/kWh in ACT's table) lowers it.
    assert float(carbon.embodied_carbon_kg(area, tech, fab_intensity_g_per_kwh=28.0)[0]) < expected


@pytest.mark.parametrize("node", list(TECH_NODES))
def test_embodied_carbon_grows_with_area(node):
    area = torch.logspace(-1, 3.5, 200, dtype=torch.float64)
    kg = carbon.embodied_carbon_kg(area, TECH_NODES[node])
    assert bool((kg.diff() > 0).all()) and bool((kg > carbon.PACKAGE_G / 1000).all())
    # Per mm², carbon grows too: yield falls with area.
    assert bool(((kg - carbon.PACKAGE_G / 1000) / area).diff().gt(0).all())


def test_operational_carbon_grows_with_energy():
    energy = torch.tensor([1e-3, 2e-3, 4e-3], dtype=torch.float64)
    latency = torch.full_like(energy, 1e-2)
    kg = carbon.operational_carbon_kg(energy, latency)
    # back to back for 2 years at USA's 380 g/kWh: energy · (2 years / latency) runs
    expected = energy * (2 * YEAR_S / 1e-2) / 3.6e6 * 380.0 / 1000.0
    torch.testing.assert_close(kg, expected, rtol=1e-12, atol=0)
    rated = carbon.operational_carbon_kg(energy, latency, inferences_per_s=10.0, duty_cycle=0.5, lifetime_years=3.0)
    torch.testing.assert_close(rated, energy * (10.0 * 0.5 * 3 * YEAR_S) / 3.6e6 * 380.0 / 1000.0, rtol=1e-12, atol=0)


def test_model_carbon_follows_area_and_energy():
    """In the model: at one node, a larger die carries more embodied carbon; with a demand rate, the
    operational carbon is the energy per run times a constant; back to back it is power × time."""
    space = make_space(hardware={"node": "7nm"}, carbon={"inferences_per_s": 30.0, "lifetime_years": 4})
    assert {"carbon_kg", "carbon_operational_kg"} <= set(METRICS)
    m = AnalyticalModel(space).evaluate_rows(random_rows(space, 300, seed=4)).metrics
    order = torch.argsort(m["area_mm2"])
    assert bool((m["carbon_kg"][order].diff() >= 0).all())
    per_joule = m["carbon_operational_kg"] / m["energy_j"]
    torch.testing.assert_close(per_joule, torch.full_like(per_joule, 30.0 * 4 * YEAR_S / 3.6e6 * 380.0 / 1000.0), rtol=1e-12, atol=0)
    busy = make_space(hardware={"node": "7nm"}, carbon={"use_intensity_g_per_kwh": 28})
    m = AnalyticalModel(busy).evaluate_rows(random_rows(busy, 50, seed=4)).metrics
    torch.testing.assert_close(m["carbon_operational_kg"], m["power_w"] * 2 * YEAR_S / 3.6e6 * 28.0 / 1000.0, rtol=1e-12, atol=0)


@pytest.mark.parametrize("key, value", [("lifetime_years", 0), ("duty_cycle", 1.5), ("inferences_per_s", -1), ("grid", 3)])
def test_carbon_keys_are_checked(key, value):
    with pytest.raises(DesignError, match=f"<test>: carbon.{key} = {value!r}"):
        parse_design({"workload": {"network": "resnet18"}, "carbon": {key: value}}, source="<test>")


def test_carbon_is_minimised_in_a_search(tmp_path):
    """A tiny explore minimising latency and embodied carbon, with a budget on operational carbon:
    its front trades one for the other and front.csv carries the front's energy by component."""
    design = write_design(tmp_path, objectives=["latency_s", "carbon_kg"])
    text = design.read_text()
    assert text.count("\n[constraints]") == 1
    design.write_text(text.replace("\n[constraints]", "\n[constraints]\ncarbon_operational_kg = 1e6  # a budget on it", 1))
    run = api.explore(design, trials=64, out=tmp_path / "run", device="cpu", say=lambda _: None)
    assert run.objectives == ["latency_s", "carbon_kg"] and "carbon_operational_kg" in run.summary["constraints"]
    front = run.front.sort_values("latency_s")
    assert len(front) >= 1 and bool((front["carbon_kg"].diff().dropna() < 0).all())  # slower only where it saves carbon
    feasible = run.trials[run.trials["feasible"]]
    assert front["carbon_kg"].min() == feasible["carbon_kg"].min()  # the least embodied carbon found is on the front
    assert set(ENERGY_COLUMNS) <= set(run.front.columns)
    assert front[list(ENERGY_COLUMNS)].sum(axis=1).to_numpy() == pytest.approx(front["energy_j"].to_numpy(), rel=1e-12)
    assert (tmp_path / "run" / "energy.png").stat().st_size > 0
    shown = api.show(tmp_path / "run", int(front.iloc[0]["trial"]))
    assert shown["energy"].read_text().splitlines()[0] == "part,energy_j,share"
    assert shown["energy_plot"].stat().st_size > 0
