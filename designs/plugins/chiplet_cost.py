"""A worked cost-model plug-in: the cost of a tested, packaged part, and its embodied carbon.

The built-in ``cost_usd`` is the wafer price of one good die (``wafer / (dies per
wafer · yield)``). A team that buys finished parts pays more than that: every die on
the wafer is probed (tester time grows with the die's logic and SRAM), the good dies
(known-good dies, KGD) are packaged, and packaged parts are tested again. Those costs
do not shrink with the die, so they move the cheap end of the Pareto front. This
plug-in replaces ``cost_usd`` with that unit cost and adds a new metric, ``carbon_kg``,
the embodied (manufacturing) carbon of one good part.

Use it from a design file that sits next to the ``plugins/`` folder::

    [cost_model]
    plugins = ["plugins.chiplet_cost:ChipletCost"]

Every candidate is priced on one process, the one described by the constants below
(a TSMC N7-class 300 mm wafer): keep ``hardware.node = "7nm"`` in the design file, or
edit the constants for your own process. The numbers marked "estimate" are the
user's assumptions, not published figures: replace them with your foundry, OSAT and
test-house quotes.

Model (every quantity a ``[P]`` tensor; ``A`` = die area in mm² from the built-in
``area_mm2`` metric, ``A_cm2 = A / 100``):

* gross dies per wafer ``N = π(d/2)²/A_s − πd/√(2·A_s)``, ``A_s = (√A + scribe)²``,
  ``d`` the usable wafer diameter;
* die yield, negative binomial ``Y = (1 + A_cm2·D0/α)^−α``;
* wafer-sort test time per die (every gross die is probed):
  ``t = t_fixed + scan + MBIST``, where scan time = ATPG patterns × (scan flops per
  chain) / shift clock, with the flop count taken from the candidate's PE count
  (``n_cores · pe_rows · pe_cols``), and MBIST time = March C- (10 operations per
  word) over one core's SRAM (``sram_kib``), all cores' BIST engines in parallel;
* known-good-die cost ``KGD = (wafer_price + N · t · tester_rate) / (N · Y)``;
* unit cost ``cost_usd = (KGD + package + final_test) / Y_assembly``, the package
  price growing with die area (substrate size);
* embodied carbon after ACT (Gupta et al., "ACT: Designing Sustainable Computer
  Systems with an Architectural Carbon Modeling Tool", ISCA 2022):
  ``carbon_kg = (CI_fab · EPA + GPA + MPA) · A_cm2 / Y + C_package / Y_assembly``,
  with ACT's 7 nm figures (see the constants).

All of it is tensor arithmetic on the whole population at once: no Python loop over
candidates, and the result is on the candidates' device and in their dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

# --- wafer and yield -------------------------------------------------------------------------
# source: Khan & Mann, CSET "AI Chips: What They Are and Why They Matter" (2020), foundry sale
# price of a 300 mm 7 nm wafer. Replace with your own quote.
WAFER_PRICE_USD = 9346.0
WAFER_DIAMETER_MM = 300.0
EDGE_EXCLUSION_MM = 3.0  # estimate: unusable rim
SCRIBE_MM = 0.1  # estimate: scribe lane between dies
# source: TSMC N7 defect density ~0.09 /cm² (VLSI Symposium 2019, as reported by AnandTech).
DEFECT_DENSITY_PER_CM2 = 0.09
CLUSTERING_ALPHA = 3.0  # negative-binomial clustering parameter (Stapper; α = 3 is common)

# --- test --------------------------------------------------------------------------------------
TESTER_USD_PER_S = 150.0 / 3600.0  # estimate: ~$150 per hour of ATE time (wafer sort)
TEST_FIXED_S = 0.3  # estimate: probe touchdown, parametric and functional tests per die
SCAN_FLOPS_PER_PE = 64  # estimate: int8 PE = 2 × 8-bit operand + 32-bit accumulator + control
SCAN_CHAINS = 32  # estimate: scan chains driven in parallel
SCAN_SHIFT_HZ = 50e6  # estimate: scan shift clock
ATPG_PATTERNS = 2000  # estimate: stuck-at + transition patterns
MBIST_OPS_PER_WORD = 10  # March C- is a 10N test
MBIST_WORD_BITS = 64
MBIST_HZ = 200e6  # estimate: BIST clock

# --- packaging ---------------------------------------------------------------------------------
PACKAGE_BASE_USD = 1.00  # estimate: small flip-chip BGA substrate and assembly
PACKAGE_USD_PER_MM2 = 0.02  # estimate: substrate grows with the die (and its bumps)
FINAL_TEST_USD = 0.25  # estimate: final test of the packaged part
ASSEMBLY_YIELD = 0.99  # estimate

# --- embodied carbon (ACT, Gupta et al., ISCA 2022; numbers from its reference data at
# https://github.com/facebookresearch/ACT, files logic/*.json and carbon_intensity/*.json) ------
ACT_EPA_KWH_PER_CM2 = 2.15  # fab energy per area, 7 nm (logic/epa.json)
ACT_GPA_G_PER_CM2 = 350.0  # direct fab gases per area, 7 nm, 95 % abatement (logic/gpa_95.json)
ACT_MPA_G_PER_CM2 = 500.0  # raw materials per area (logic/materials.json)
ACT_FAB_CI_G_PER_KWH = 583.0  # carbon intensity of the fab's grid, Taiwan (carbon_intensity/location.json)
ACT_PACKAGE_G = 150.0  # per packaged IC (CARBON_PER_IC_PACKAGE in ACT's act/core/common.py)
#: Carbon per cm² of good-die silicon before yield, ≈ 2.10 kg CO2e/cm² at 7 nm.
CARBON_KG_PER_CM2 = (ACT_FAB_CI_G_PER_KWH * ACT_EPA_KWH_PER_CM2 + ACT_GPA_G_PER_CM2 + ACT_MPA_G_PER_CM2) / 1000.0


class ChipletCost:
    """Unit cost of a tested, packaged part (replaces ``cost_usd``) and its embodied carbon.

    ``evaluate(candidates, metrics)`` takes the population (``candidates.pe_rows`` etc.,
    ``[P]`` tensors) and the metrics computed so far (it needs ``area_mm2``), and returns
    ``{"cost_usd": [P], "carbon_kg": [P]}``. See the module docstring for the formulas.
    """

    provides = ("cost_usd", "carbon_kg")

    def evaluate(self, candidates, metrics: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        area = metrics["area_mm2"]
        cost, parts = self.unit_cost_usd(candidates, area)
        return {"cost_usd": cost, "carbon_kg": self.carbon_kg(area, parts["die_yield"])}

    # The pieces, usable on their own (e.g. to print a cost breakdown of one design).
    @staticmethod
    def dies_per_wafer(area_mm2: torch.Tensor) -> torch.Tensor:
        a_scribed = (area_mm2.sqrt() + SCRIBE_MM) ** 2
        d = WAFER_DIAMETER_MM - 2.0 * EDGE_EXCLUSION_MM
        gross = math.pi * (d / 2.0) ** 2 / a_scribed - math.pi * d / (2.0 * a_scribed).sqrt()
        return gross.clamp_min(1e-9)  # a die larger than the wafer: astronomically expensive, not NaN

    @staticmethod
    def die_yield(area_mm2: torch.Tensor) -> torch.Tensor:
        return (1.0 + (area_mm2 / 100.0) * DEFECT_DENSITY_PER_CM2 / CLUSTERING_ALPHA) ** (-CLUSTERING_ALPHA)

    @staticmethod
    def sort_test_s(candidates) -> torch.Tensor:
        """Wafer-sort tester seconds per die: fixed + scan (PE flops) + MBIST (one core's SRAM)."""
        n_pes = candidates.n_cores.to(candidates.pe_rows.dtype) * candidates.pe_rows * candidates.pe_cols
        scan = ATPG_PATTERNS * (n_pes * SCAN_FLOPS_PER_PE / SCAN_CHAINS) / SCAN_SHIFT_HZ
        words = candidates.sram_kib * (1024 * 8 / MBIST_WORD_BITS)
        mbist = MBIST_OPS_PER_WORD * words / MBIST_HZ
        return TEST_FIXED_S + scan + mbist

    def unit_cost_usd(self, candidates, area_mm2: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = self.dies_per_wafer(area_mm2)
        y = self.die_yield(area_mm2)
        probe = self.sort_test_s(candidates).to(area_mm2.dtype) * TESTER_USD_PER_S
        kgd = (WAFER_PRICE_USD + n * probe) / (n * y)
        package = PACKAGE_BASE_USD + PACKAGE_USD_PER_MM2 * area_mm2
        unit = (kgd + package + FINAL_TEST_USD) / ASSEMBLY_YIELD
        return unit, {"dies_per_wafer": n, "die_yield": y, "probe_usd": probe, "kgd_usd": kgd, "package_usd": package}

    @staticmethod
    def carbon_kg(area_mm2: torch.Tensor, die_yield: torch.Tensor) -> torch.Tensor:
        return CARBON_KG_PER_CM2 * (area_mm2 / 100.0) / die_yield + (ACT_PACKAGE_G / 1000.0) / ASSEMBLY_YIELD
