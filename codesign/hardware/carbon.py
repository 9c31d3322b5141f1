"""Carbon of a design after ACT (Gupta et al., "ACT: Designing Sustainable Computer Systems with an
Architectural Carbon Modeling Tool", ISCA 2022): embodied carbon from the die's area and node, and
operational carbon from its energy over a stated lifetime.

* Embodied (one good, packaged die): ``C = (CI_fab·EPA + GPA + MPA) · A / Y + C_package``, with
  ``EPA`` the fab's electricity per area at the node, ``CI_fab`` the carbon intensity of the fab's
  grid, ``GPA`` the fab's direct gases per area, ``MPA`` the raw materials per area, ``A`` the die
  area, ``Y`` the die yield (:func:`codesign.hardware.cost.die_yield`, the model's own yield, where ACT
  takes a fixed 87.5 %) and ``C_package`` ACT's carbon per IC package.
* Operational: ``C = E · N · CI_use``, with ``E`` the energy of one run of the workload (``energy_j``),
  ``CI_use`` the carbon intensity of the grid the chip runs on and ``N`` the runs over its lifetime:
  ``lifetime · duty_cycle · rate``, the rate being ``inferences_per_s`` when the design file gives one
  (a demand), else back to back (``1 / latency_s``; then ``C = power · lifetime · duty · CI_use``, ACT's
  operational model). Time the chip is idle between runs costs nothing (power-gated).

Constants come from ACT's reference data (https://github.com/facebookresearch/ACT, ``act/models/``:
``logic/epa.yaml``, ``logic/gpa_95.yaml``, ``logic/materials.yaml``, ``carbon_intensity/location_2022.yaml``,
``act/core/common.py`` and ``act/act_model.py`` for the defaults); ``docs/model.md`` ("Carbon") lists
them. ACT's tables start at 28 nm and have a 14 nm but no 16 nm row: 16 nm takes the 14 nm row (the same
FinFET generation), and 45 nm takes the 28 nm row (an estimate: an older node needs fewer masks, so
this is an upper bound). Every function is batched over ``[P]`` tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from codesign.hardware.cost import die_yield
from codesign.hardware.tech import TechNode

# source: ACT act/models/logic/epa.yaml (Table 1 of the ACT paper): fab electricity per cm² of die,
# kWh/cm² (28 nm 0.90, 14 nm 1.20, 7 nm 2.15, 5 nm 2.75); 16 nm = ACT's 14 nm, 45 nm = ACT's 28 nm (estimate).
EPA_KWH_PER_CM2 = {"45nm": 0.90, "28nm": 0.90, "16nm": 1.20, "7nm": 2.15, "5nm": 2.75}
# source: ACT act/models/logic/gpa_95.yaml (Table 1): direct fab gases per cm², g CO2e/cm², at 95 %
# abatement (28 nm 175, 14 nm 200, 7 nm 350, 5 nm 430); same stand-ins for 16 and 45 nm.
GPA_G_PER_CM2 = {"45nm": 175.0, "28nm": 175.0, "16nm": 200.0, "7nm": 350.0, "5nm": 430.0}
# source: ACT act/models/logic/materials.yaml (MPA, Table 1): raw materials, 500 g CO2e/cm² at every node.
MPA_G_PER_CM2 = 500.0
# source: ACT act/core/common.py CARBON_PER_IC_PACKAGE: 150 g CO2e per packaged IC.
PACKAGE_G = 150.0

# Defaults of the design file's [carbon] section.
# source: ACT carbon_intensity/location_2022.yaml, Taiwan 583 g CO2e/kWh (ACT's default fab location,
# act/core/common.py DEFAULT_FAB_LOCATION).
FAB_INTENSITY_G_PER_KWH = 583.0
# source: ACT carbon_intensity/location_2022.yaml, USA 380 g CO2e/kWh (ACT's default operating location,
# act/core/common.py DEFAULT_OP_LOCATION).
USE_INTENSITY_G_PER_KWH = 380.0
# source: ACT act/act_model.py ACTModel.get_carbon defaults: hw_lifetime = 2 years, duty_cycle = 1.0.
LIFETIME_YEARS = 2.0
DUTY_CYCLE = 1.0

SECONDS_PER_YEAR = 365.25 * 24 * 3600.0  # a Julian year (pint's, which ACT uses)
J_PER_KWH = 3.6e6


def carbon_g_per_cm2(node: TechNode, fab_intensity_g_per_kwh: float = FAB_INTENSITY_G_PER_KWH) -> float:
    """ACT's carbon per cm² of fabricated die before yield, ``CI_fab·EPA + GPA + MPA`` (g CO2e/cm²)."""
    return fab_intensity_g_per_kwh * EPA_KWH_PER_CM2[node.name] + GPA_G_PER_CM2[node.name] + MPA_G_PER_CM2


def embodied_carbon_kg(area_mm2: Tensor, node: TechNode, *, dies: Tensor | int = 1,
                       fab_intensity_g_per_kwh: float = FAB_INTENSITY_G_PER_KWH) -> Tensor:
    """Embodied carbon ``[...]`` (kg CO2e) of one good packaged part of ``area_mm2`` ``[...]`` of silicon at
    ``node``, in ``dies`` equal dies (each yields on its own) and one package:
    ``carbon_g_per_cm2 · A_cm² / yield(A / dies) + package``. Increases with area (more silicon, lower yield).
    Interposers and substrates are not counted (ACT has no figure for them)."""
    silicon = carbon_g_per_cm2(node, fab_intensity_g_per_kwh) * (area_mm2 / 100.0) / die_yield(area_mm2 / dies, node)
    return (silicon + PACKAGE_G) / 1000.0


def lifetime_runs(latency_s: Tensor, *, lifetime_years: float = LIFETIME_YEARS, duty_cycle: float = DUTY_CYCLE,
                  inferences_per_s: float | None = None) -> Tensor:
    """Runs of the workload over the chip's lifetime ``[P]``: ``lifetime · duty_cycle · rate``, the rate
    ``inferences_per_s`` when given, else back to back (``1 / latency_s``)."""
    on_s = lifetime_years * SECONDS_PER_YEAR * duty_cycle
    if inferences_per_s is None:
        return on_s / latency_s
    return torch.full_like(latency_s, on_s * inferences_per_s)


def operational_carbon_kg(energy_j: Tensor, latency_s: Tensor, *, use_intensity_g_per_kwh: float = USE_INTENSITY_G_PER_KWH,
                          lifetime_years: float = LIFETIME_YEARS, duty_cycle: float = DUTY_CYCLE,
                          inferences_per_s: float | None = None) -> Tensor:
    """Operational carbon ``[P]`` (kg CO2e): the energy of one run ``energy_j`` ``[P]`` times the runs over
    the lifetime (:func:`lifetime_runs`) times the carbon intensity of the grid."""
    runs = lifetime_runs(latency_s, lifetime_years=lifetime_years, duty_cycle=duty_cycle, inferences_per_s=inferences_per_s)
    return energy_j * runs * (use_intensity_g_per_kwh / J_PER_KWH / 1000.0)
