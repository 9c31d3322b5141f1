"""Chiplets: the mesh cut into dies, the die-to-die (D2D) links between them, and the package's cost.

A design of ``dies`` dies cuts its ``grid_rows × grid_cols`` mesh of cores into equal rectangles
of contiguous cores: ``die_rows × die_cols`` dies of ``(grid_rows / die_rows) × (grid_cols /
die_cols)`` tiles each (:func:`die_grid`: of the factorisations that divide the mesh, the one
that cuts the fewest mesh links). Every mesh link that crosses a die boundary is a D2D link: the
mesh goes on across it, but a byte pays the package's D2D energy and latency there instead of an
on-die hop's, and moves at ``min(noc_link_gbps, d2d_gbps)``. With XY routing, the crossings
between cores ``a`` and ``b`` are ``|dx_a − dx_b| + |dy_a − dy_b|`` in die coordinates
(:func:`die_crossings`).

Package types (:data:`codesign.vocab.PACKAGES`): ``monolithic`` (one die; the only package of
one die), ``organic`` (a multi-chip module on an organic substrate), ``info`` (integrated fan-out:
dies on a redistribution-layer, RDL, fan-out, then on a substrate) and ``interposer_2_5d`` (dies
on a passive silicon interposer, on a substrate).

Recurring cost (:func:`package_cost_parts`) follows Chiplet Actuary (Feng & Ma, DAC 2022, its
reference implementation's ``package.py`` and ``parameter.ini``), chip-last assembly, for ``n``
identical dies of area ``a`` each (the design's silicon over ``n`` plus the D2D PHYs of a die):
each die is a known-good die (its wafer price over good dies: :func:`~codesign.hardware.cost.die_cost_usd`,
plus the probe test of every gross die over the good ones), bumped, bonded with a yield per die;
the package (organic substrate, or an RDL / interposer made on its own wafer with its own yield,
then bonded onto a substrate) is scrapped with the good dies on it when a bond fails. Every
constant's source is in docs/model.md ("Chiplets and the package").

Every function is batched over tensors that broadcast (typically ``[P]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from codesign.errors import DesignError
from codesign.hardware.cost import die_cost_usd, die_yield, dies_per_wafer
from codesign.hardware.tech import TechNode
from codesign.vocab import PACKAGES


@dataclass(frozen=True)
class PackageTech:
    """One package type: its D2D link and its recurring-cost constants (docs/model.md)."""

    name: str
    d2d_pj_per_bit: float  # energy of a bit across one D2D link
    d2d_ns: float  # latency of one crossing (PHY + adapter, both ends)
    phy_gbps_per_mm2: float  # D2D bandwidth per mm² of PHY area (areal bandwidth density)
    bond_yield: float = 1.0  # yield of bonding one die (onto the substrate / RDL / interposer)
    bump_usd_per_mm2: float = 0.0  # bumping one die, per mm² of die
    carrier_scale: float = 0.0  # RDL / interposer area over the dies' area (0: none, organic)
    carrier_wafer_usd: float = 0.0  # RDL / interposer wafer price
    carrier_d0_per_cm2: float = 0.0  # its defect density
    carrier_alpha: float = 1.0  # its defect clustering (negative-binomial α)


# Chiplet Actuary's reference implementation (github.com/Yinxiao-Feng/chiplet-actuary, parameter.ini),
# the values of Feng & Ma, DAC 2022, Table 2: the organic substrate is 4× the area it carries and costs
# $0.005/mm², ×1.5 / ×1.75 / ×2 for the extra routing layers of a multi-chip substrate up to 17×17 mm,
# 30×30 mm and beyond; C4 bumps $0.005/mm²; a die bonds onto it with yield 0.99.
SUBSTRATE_SCALE = 4.0
SUBSTRATE_USD_PER_MM2 = 0.005
SUBSTRATE_LAYER_FACTOR = ((17.0 * 17.0, 1.5), (30.0 * 30.0, 1.75), (math.inf, 2.0))
C4_BUMP_USD_PER_MM2 = 0.005
SUBSTRATE_BOND_YIELD = 0.99
# estimate: known-good-die test, one second of ATE time per gross die at ~$150 per tester hour (the
# tester rate of designs/plugins/chiplet_cost.py); a monolithic die's wafer sort is not priced (cost_usd
# of one die is its wafer price, as before).
KGD_TEST_S = 1.0
TESTER_USD_PER_S = 150.0 / 3600.0

#: The package types. D2D energy, latency and PHY density: UCIe 1.0 key performance targets (Das Sharma
#: et al., "Universal Chiplet Interconnect Express (UCIe)", IEEE TCPMT 2022, Table 1): standard package
#: (organic) 22-125 GB/s/mm², advanced package (silicon bridge / interposer) 188-1,350 GB/s/mm², 0.5 and
#: 0.25 pJ/bit, < 2 ns; the organic MCM's energy is NVIDIA's measured ground-referenced signalling of the
#: Simba MCM, 1.17 pJ/bit (Poulton et al., IEEE JSSC 2019). Cost: Chiplet Actuary's parameter.ini
#: (FO: RDL wafer $1,200, 0.05 /cm², α 3, 1.2× the dies' area, bonding 0.98; SI: a 55 nm wafer $1,937,
#: 0.06 /cm², α 6, 1.1×, bonding 0.95, µbumps $0.01/mm²).
PACKAGE_TECH: dict[str, PackageTech] = {
    "monolithic": PackageTech("monolithic", 0.0, 0.0, math.inf),
    "organic": PackageTech("organic", 1.17, 2.0, 22.0, bond_yield=SUBSTRATE_BOND_YIELD, bump_usd_per_mm2=C4_BUMP_USD_PER_MM2),
    "info": PackageTech("info", 0.5, 2.0, 188.0, bond_yield=0.98, bump_usd_per_mm2=0.01, carrier_scale=1.2,
                        carrier_wafer_usd=1200.0, carrier_d0_per_cm2=0.05, carrier_alpha=3.0),
    "interposer_2_5d": PackageTech("interposer_2_5d", 0.25, 2.0, 1350.0, bond_yield=0.95, bump_usd_per_mm2=0.01, carrier_scale=1.1,
                                   carrier_wafer_usd=1937.0, carrier_d0_per_cm2=0.06, carrier_alpha=6.0),
}
assert tuple(PACKAGE_TECH) == PACKAGES


# --- the mesh cut into dies --------------------------------------------------------------------


def die_grid_of(rows: int, cols: int, dies: int) -> tuple[int, int] | None:
    """``(die_rows, die_cols)`` of ``dies`` equal rectangular dies on a ``rows × cols`` mesh, or
    ``None`` when none divides it. Of the factorisations ``die_rows · die_cols = dies`` with
    ``die_rows | rows`` and ``die_cols | cols``, the one that cuts the fewest mesh links
    (:func:`boundary_links`); a tie goes to fewer die rows (dies side by side along x)."""
    best = None
    for dr in range(1, dies + 1):
        if dies % dr or rows % dr or cols % (dies // dr):
            continue
        cut = boundary_links(rows, cols, dr, dies // dr)
        if best is None or cut < best[0]:
            best = (cut, dr, dies // dr)
    return None if best is None else (best[1], best[2])


def boundary_links(rows, cols, die_rows, die_cols):
    """Mesh links that cross a die boundary (each is one D2D link): ``(die_cols − 1)·rows + (die_rows − 1)·cols``."""
    return (die_cols - 1) * rows + (die_rows - 1) * cols


def die_grid(rows: Tensor, cols: Tensor, dies: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`die_grid_of` batched: ``die_rows``, ``die_cols`` (long) for broadcastable long tensors.

    Candidates whose ``dies`` divide no way get ``(1, dies)`` — a design is checked before it gets here
    (:func:`check_package`)."""
    rows, cols, dies = torch.broadcast_tensors(rows, cols, dies)
    best_cut = torch.full_like(dies, torch.iinfo(torch.long).max)
    best_dr = torch.ones_like(dies)
    for dr in range(1, int(dies.max()) + 1 if dies.numel() else 1):  # die rows, not candidates: a handful
        dc = torch.div(dies, dr, rounding_mode="floor").clamp_min(1)
        ok = (dies % dr == 0) & (rows % dr == 0) & (cols % dc == 0)
        cut = boundary_links(rows, cols, dr, dc)
        better = ok & (cut < best_cut)
        best_cut = torch.where(better, cut, best_cut)
        best_dr = torch.where(better, torch.full_like(dies, dr), best_dr)
    return best_dr, torch.div(dies, best_dr, rounding_mode="floor")


def die_crossings(a: Tensor, b: Tensor, cols: Tensor, tile_rows: Tensor, tile_cols: Tensor) -> Tensor:
    """D2D links crossed on the XY route between cores ``a`` and ``b`` (row-major ids on a mesh
    ``cols`` wide, dies of ``tile_rows × tile_cols`` tiles): ``|Δ die column| + |Δ die row|``.
    All arguments broadcast; integer tensors."""
    ax, ay = a % cols, torch.div(a, cols, rounding_mode="floor")
    bx, by = b % cols, torch.div(b, cols, rounding_mode="floor")
    dx = torch.div(ax, tile_cols, rounding_mode="floor") - torch.div(bx, tile_cols, rounding_mode="floor")
    dy = torch.div(ay, tile_rows, rounding_mode="floor") - torch.div(by, tile_rows, rounding_mode="floor")
    return dx.abs() + dy.abs()


def d2d_phy_area_mm2(links, d2d_gbps, dies, package: str):
    """D2D PHY area of one die, mm²: every D2D link has a PHY at each end, of ``d2d_gbps`` over the
    package's areal bandwidth density; the dies share them evenly (``2·links·d2d_gbps / (density·dies)``)."""
    return 2.0 * links * d2d_gbps / (PACKAGE_TECH[package].phy_gbps_per_mm2 * dies)


# --- recurring cost (Chiplet Actuary) ----------------------------------------------------------


def _carrier_yield(area_mm2: Tensor, tech: PackageTech) -> Tensor:
    """Yield of an RDL / interposer of ``area_mm2``: negative binomial with its own D0 and α."""
    return (1.0 + (area_mm2 / 100.0) * (tech.carrier_d0_per_cm2 / tech.carrier_alpha)) ** (-tech.carrier_alpha)


def package_cost_parts(node: TechNode, die_area_mm2: Tensor, dies: Tensor, package: str) -> dict[str, Tensor]:
    """Recurring cost of ``dies`` identical dies of ``die_area_mm2`` each in a ``package``, USD, by part.

    * ``dies``: the good dies' wafer price, ``n · die_cost_usd(a)``;
    * ``kgd_test``: probing every gross die, over the good ones, ``n · t · rate / Y(a)``;
    * ``package``: bumps, substrate, RDL / interposer and the packages scrapped by a failed bond
      (the *packaging*: never less for more dies at a fixed total area);
    * ``assembly_loss``: the good dies scrapped with them.

    Organic: ``(chips + substrate) / y_b^n``. InFO and 2.5D (chip-last): ``chips / (y_b^n · y_s)
    + carrier / (y_c · y_b^n · y_s) + substrate / y_s``, with ``y_c`` the carrier's yield and
    ``y_s`` the carrier-on-substrate bond. ``chips = n · (KGD + bumps)``.

    Args:
        node: the dies' technology node.
        die_area_mm2: area of one die (its D2D PHYs included), > 0, any shape (e.g. ``[P]``).
        dies: dies in the package, ≥ 1, broadcast against ``die_area_mm2``.
        package: a :data:`~codesign.vocab.PACKAGES` name; ``monolithic`` prices the dies alone.

    Returns:
        ``{"dies", "kgd_test", "package", "assembly_loss"}``, tensors of the broadcast shape.
    """
    tech = PACKAGE_TECH[package]
    a = die_area_mm2
    n = dies.to(a.dtype) if isinstance(dies, Tensor) else torch.as_tensor(float(dies), dtype=a.dtype, device=a.device)
    good = n * die_cost_usd(a, node)
    if package == "monolithic":
        zero = torch.zeros_like(good)
        return {"dies": good, "kgd_test": zero, "package": zero, "assembly_loss": zero}
    test = n * (KGD_TEST_S * TESTER_USD_PER_S) / die_yield(a, node)
    silicon = n * a
    chips = good + test + silicon * tech.bump_usd_per_mm2
    y_bond = tech.bond_yield ** n
    if tech.carrier_scale == 0.0:  # organic: the dies bond straight onto the substrate
        sub_area = SUBSTRATE_SCALE * silicon
        factor = torch.full_like(sub_area, SUBSTRATE_LAYER_FACTOR[-1][1])
        for limit, f in reversed(SUBSTRATE_LAYER_FACTOR[:-1]):
            factor = torch.where(sub_area <= limit, f, factor)
        substrate = sub_area * SUBSTRATE_USD_PER_MM2 * factor
        package_part = substrate / y_bond
        loss = chips / y_bond - chips
    else:
        carrier_area = tech.carrier_scale * silicon
        # (made on a wafer of the node's geometry, at the carrier's price)
        carrier = tech.carrier_wafer_usd / dies_per_wafer(carrier_area, node) + carrier_area * C4_BUMP_USD_PER_MM2
        substrate = SUBSTRATE_SCALE * carrier_area * SUBSTRATE_USD_PER_MM2
        y_carrier = _carrier_yield(carrier_area, tech)
        y_s = SUBSTRATE_BOND_YIELD
        package_part = carrier / (y_carrier * y_bond * y_s) + substrate / y_s
        loss = chips / (y_bond * y_s) - chips
    bumps = silicon * tech.bump_usd_per_mm2
    return {"dies": good, "kgd_test": test, "package": package_part + bumps, "assembly_loss": loss}


def package_cost_usd(node: TechNode, die_area_mm2: Tensor, dies: Tensor, package: str) -> Tensor:
    """The package's recurring cost, USD: the sum of :func:`package_cost_parts`."""
    return sum(package_cost_parts(node, die_area_mm2, dies, package).values())


# --- the design file ---------------------------------------------------------------------------


def check_package(hardware, source: str) -> None:
    """A design's ``hardware.dies`` and ``hardware.package``: every die count splits every grid of
    the design into equal rectangular dies, and several dies need a multi-die package."""
    dies, packages = list(hardware.dies), list(hardware.package)
    for i, n in enumerate(dies):
        where = f"{source}: hardware.dies" + (f"[{i}]" if len(dies) > 1 else "") + f" = {n}"
        for rows in hardware.grid_rows:
            for cols in hardware.grid_cols:
                if die_grid_of(rows, cols, n) is None:
                    raise DesignError(f"{where}: cannot cut the {rows}×{cols} mesh (hardware.grid_rows × grid_cols) into {n} "
                                      f"equal rectangular dies; expected a count whose rows of dies divide {rows} and "
                                      f"columns of dies divide {cols}")
    if max(dies) > 1 and "monolithic" in packages:
        shown = packages if len(packages) > 1 else packages[0]
        raise DesignError(f"{source}: hardware.package = {shown!r}: a monolithic package holds one die, and hardware.dies "
                          f"goes up to {max(dies)}; expected multi-die packages only: organic, info or interposer_2_5d "
                          f"(one die is always monolithic)")
