"""A worked cost-model plug-in: the cost of a tested, packaged part, with its test time from the design.

The built-in ``cost_usd`` of a monolithic design is the wafer price of one good die (``wafer /
(dies per wafer · yield)``; with chiplets it adds the package, and a fixed second of tester time
per die). A team that buys finished parts pays for test time that grows with the design: every die
on the wafer is probed by scan patterns shifted through every flop of its PE arrays and by a memory
BIST over its SRAM, the good dies (known-good dies, KGD) are packaged, and packaged parts are tested
again. No built-in metric derives test time from the design; this plug-in does. It replaces
``cost_usd`` with the unit cost of such a part and adds a metric of its own, ``test_s``, the
wafer-sort tester seconds per die. (Embodied and operational carbon are built-in metrics,
``carbon_kg`` and ``carbon_operational_kg``: see ``docs/model.md``, "Carbon".)

Use it from a design file that sits next to the ``plugins/`` folder::

    [cost_model]
    plugins = ["plugins.chiplet_cost:ChipletCost"]

Every candidate is priced on one process, the one described by the constants below
(a TSMC N7-class 300 mm wafer), as one die in one package: keep ``hardware.node = "7nm"`` and
one die in the design file, or edit the constants for your own process. The numbers marked
"estimate" are the user's assumptions, not published figures: replace them with your foundry,
OSAT and test-house quotes.

Model (every quantity a ``[P]`` tensor; ``A`` = die area in mm² from the built-in
``area_mm2`` metric, ``A_cm2 = A / 100``):

* gross dies per wafer ``N = π(d/2)²/A_s − πd/√(2·A_s)``, ``A_s = (√A + scribe)²``,
  ``d`` the usable wafer diameter;
* die yield, negative binomial ``Y = (1 + A_cm2·D0/α)^−α``;
* wafer-sort test time per die (every gross die is probed), ``test_s``:
  ``t = t_fixed + scan + MBIST``, where scan time = ATPG patterns × (scan flops per
  chain) / shift clock, with the flop count taken from the candidate's PE count
  (``n_cores · pe_rows · pe_cols``), and MBIST time = March C- (10 operations per
  word) over one core's SRAM (``sram_kib``), all cores' BIST engines in parallel;
* known-good-die cost ``KGD = (wafer_price + N · t · tester_rate) / (N · Y)``;
* unit cost ``cost_usd = (KGD + package + final_test) / Y_assembly``, the package
  price growing with die area (substrate size).

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


class ChipletCost:
    """Unit cost of a tested, packaged part (replaces ``cost_usd``) and its wafer-sort test time.

    ``evaluate(candidates, metrics)`` takes the population (``candidates.pe_rows`` etc.,
    ``[P]`` tensors) and the metrics computed so far (it needs ``area_mm2``), and returns
    ``{"cost_usd": [P], "test_s": [P]}``. See the module docstring for the formulas.
    """

    provides = ("cost_usd", "test_s")

    def evaluate(self, candidates, metrics: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        area = metrics["area_mm2"]
        cost, parts = self.unit_cost_usd(candidates, area)
        return {"cost_usd": cost, "test_s": parts["test_s"]}

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
        test_s = self.sort_test_s(candidates).to(area_mm2.dtype)
        probe = test_s * TESTER_USD_PER_S
        kgd = (WAFER_PRICE_USD + n * probe) / (n * y)
        package = PACKAGE_BASE_USD + PACKAGE_USD_PER_MM2 * area_mm2
        unit = (kgd + package + FINAL_TEST_USD) / ASSEMBLY_YIELD
        return unit, {"dies_per_wafer": n, "die_yield": y, "test_s": test_s, "probe_usd": probe, "kgd_usd": kgd, "package_usd": package}
