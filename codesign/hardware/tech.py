"""Technology tables: energy, area, leakage and wafer economics per process node.

Each :class:`TechNode` is built from a small set of published anchors, and the
derivations are kept in code so they can be read and checked:

* 45 nm energies and arithmetic areas come from Horowitz, "Computing's energy
  problem (and what we can do about it)", ISSCC 2014 (45 nm, 0.9 V).
* Other nodes scale 45 nm energies and areas with the factors of Stillmaker &
  Baas, "Scaling equations for the accurate prediction of CMOS device
  performance from 180 nm to 7 nm", Integration 58 (2017). Those tables stop at
  7 nm; 5 nm applies TSMC's published N5-vs-N7 claims (about 30 % less power at
  the same speed, about 1.8x logic density) on top of 7 nm.
* PE, SRAM, DRAM-PHY area, area overhead and static power are calibrated on one
  published die, Google's TPUv1 (Jouppi et al., ISCA 2017, 28 nm: floorplan
  shares and idle power), so a TPUv1-like design comes out at TPUv1's area.
* Wafer prices are the foundry sale prices of Khan & Mann, CSET "AI Chips: What
  They Are and Why They Matter" (2020); defect densities are TSMC's figures as
  reported by AnandTech (2019 VLSI Symposium, 2020 Technology Symposium).

Numbers marked "estimate" have no single published source; the comment says
what they are based on. docs/model.md lists every constant with its source.

These are the ``builtin`` technology source; ``hardware.tech = "cacti"`` replaces the
SRAM, int8 MAC and vector-op, register and NoC-hop constants with tables generated offline with
hwcomponents (:mod:`codesign.hardware.tech_tables`, data/hwcomponents/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from codesign.vocab import DRAM_KINDS, PRECISIONS  # noqa: F401 - re-exported: the tables below are keyed by them

# ---------------------------------------------------------------------------------------------
# 45 nm anchors (Horowitz, ISSCC 2014, 45 nm at 0.9 V)
# ---------------------------------------------------------------------------------------------

# source: Horowitz 2014 energy table: 8b int mult 0.2 pJ + 8b add 0.03 pJ; 16b FP mult 1.1 +
# 16b FP add 0.4; 32b FP mult 3.7 + 32b FP add 0.9. One MAC = one multiply + one add.
HOROWITZ_45NM_MAC_PJ = {1: 0.2 + 0.03, 2: 1.1 + 0.4, 4: 3.7 + 0.9}
# source: Horowitz 2014 energy table: 8b int add 0.03 pJ, 16b FP add 0.4, 32b FP add 0.9. One
# operation of the vector unit (an add, compare, scale or table step of an activation, norm,
# softmax or pooling) is costed as one add of the operand precision: the cheap end of the vector
# unit's ALU (a multiply costs ~3-7x more), as MAC energies take Horowitz's arithmetic alone.
HOROWITZ_45NM_VECTOR_OP_PJ = {1: 0.03, 2: 0.4, 4: 0.9}
# source: Horowitz 2014 area table (45 nm, µm²): 8b mult 282 + 8b add 36; 16b FP mult 1640 +
# 16b FP add 1360; 32b FP mult 7700 + 32b FP add 4184.
HOROWITZ_45NM_MAC_AREA_UM2 = {1: 282.0 + 36.0, 2: 1640.0 + 1360.0, 4: 7700.0 + 4184.0}
# source: Horowitz 2014: 64-bit cache read of 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ (KB read as KiB).
HOROWITZ_45NM_SRAM_READ_64BIT_PJ = {8.0: 10.0, 32.0: 20.0, 1024.0: 100.0}
# source: Horowitz 2014: DRAM 1.3-2.6 nJ per 64-bit access (DDR3-era); the low end is used below.
HOROWITZ_DRAM_PJ_PER_64BIT = 1300.0


def fit_power_law(points: dict[float, float]) -> tuple[float, float]:
    """Least-squares fit of ``y = c·x^b`` in log-log space; returns ``(c, b)``."""
    xs = [math.log(x) for x in points]
    ys = [math.log(y) for y in points.values()]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - b * mx), b


def _fit_sram_energy() -> tuple[float, float]:
    # Per-byte energy (a 64-bit read moves 8 bytes) against size in KiB; the anchor is the
    # fitted curve at 8 KiB (1.27 pJ/B), not the raw 1.25 pJ/B point, so all three points
    # are matched within 3 %. Fitted exponent ≈ 0.47: per-byte energy grows ~ size^0.5.
    c, b = fit_power_law({kib: pj / 8.0 for kib, pj in HOROWITZ_45NM_SRAM_READ_64BIT_PJ.items()})
    return c * 8.0**b, b


SRAM_45NM_PJ_PER_BYTE_AT_8KIB, SRAM_ENERGY_SIZE_EXPONENT = _fit_sram_energy()

# estimate: Eyeriss (Chen et al., ISCA 2016) puts a PE register-file access at ~1x the energy of a
# 16-bit MAC. 16-bit MAC at 45 nm = 16b add 0.05 pJ (Horowitz) + 16b mult ≈ 0.79 pJ (geometric mean
# of Horowitz's 8b 0.2 and 32b 3.1 pJ, i.e. ~quadratic in width) = 0.84 pJ per 2-byte word.
REG_45NM_PJ_PER_BYTE = (0.05 + math.sqrt(0.2 * 3.1)) / 2.0
# estimate: one mesh hop (router + ~1 mm link) ≈ 0.5 pJ/bit at 45 nm: on-chip wires cost ~0.1-0.2
# pJ/bit/mm (Keckler et al., IEEE Micro 2011) and a buffered router about as much again.
NOC_HOP_45NM_PJ_PER_BYTE = 0.5 * 8.0

# ---------------------------------------------------------------------------------------------
# Node scaling (Stillmaker & Baas 2017; TSMC N5 claims)
# ---------------------------------------------------------------------------------------------

# source: Stillmaker & Baas 2017, energy fits for the HP (PTM / PTM-MG) models:
# factor(V) = a·V² + b·V + c. Coefficients as published (the 32 nm ones match the authors' erratum).
_STILLMAKER_HP_ENERGY = {
    45: (1.018, -0.3107, 0.1539),
    32: (0.8367, -0.4341, 0.1701),
    20: (0.373, -0.1582, 0.04104),
    16: (0.2958, -0.1241, 0.03024),
    7: (0.1776, -0.09097, 0.02447),
}
# estimate: supply voltages. 45 nm at Horowitz's 0.9 V so the 45 nm factor is exactly 1; the others
# at the usual nominal HP supplies (32/20 nm 0.9 V, 16 nm 0.85 V, 7 nm 0.7 V).
_VDD = {45: 0.9, 32: 0.9, 20: 0.9, 16: 0.85, 7: 0.7}
# source: Stillmaker & Baas 2017 area-scaling table, row 45 nm (area relative to 45 nm).
_STILLMAKER_AREA_FROM_45NM = {45: 1.0, 32: 0.46, 20: 0.21, 16: 0.19, 7: 0.059}
# source: TSMC N5 vs N7: "about 15 % speed improvement or about 30 % reduction in power" (tsmc.com
# 5nm page) and "up to 80 % logic density gain" (TSMC, as reported by AnandTech 2020).
TSMC_N5_POWER_VS_N7 = 0.70
TSMC_N5_DENSITY_VS_N7 = 1.8


def _loglog_interp(table: dict[int, float], nm: float) -> float:
    """Interpolate ``table`` (node nm → factor) linearly in log(node)–log(factor)."""
    if nm in table:
        return table[nm]
    lo = max(k for k in table if k < nm)
    hi = min(k for k in table if k > nm)
    t = (math.log(nm) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp(math.log(table[lo]) + t * (math.log(table[hi]) - math.log(table[lo])))


def _stillmaker_energy(nm: int) -> float:
    a, b, c = _STILLMAKER_HP_ENERGY[nm]
    v = _VDD[nm]
    return a * v * v + b * v + c


_ENERGY_FROM_45NM = {nm: _stillmaker_energy(nm) / _stillmaker_energy(45) for nm in _STILLMAKER_HP_ENERGY}

#: Dynamic-energy factor relative to 45 nm, per node. 28 nm is interpolated (log-log) between
#: Stillmaker's 32 nm and 20 nm; 5 nm = 7 nm × TSMC's N5 power claim.
ENERGY_FACTOR = {
    "45nm": 1.0,
    "28nm": _loglog_interp(_ENERGY_FROM_45NM, 28),
    "16nm": _ENERGY_FROM_45NM[16],
    "7nm": _ENERGY_FROM_45NM[7],
    "5nm": _ENERGY_FROM_45NM[7] * TSMC_N5_POWER_VS_N7,
}
#: Logic-area factor relative to 45 nm, per node (same construction as :data:`ENERGY_FACTOR`).
AREA_FACTOR = {
    "45nm": 1.0,
    "28nm": _loglog_interp(_STILLMAKER_AREA_FROM_45NM, 28),
    "16nm": _STILLMAKER_AREA_FROM_45NM[16],
    "7nm": _STILLMAKER_AREA_FROM_45NM[7],
    "5nm": _STILLMAKER_AREA_FROM_45NM[7] / TSMC_N5_DENSITY_VS_N7,
}

# ---------------------------------------------------------------------------------------------
# Area / static-power calibration on TPUv1 (Jouppi et al., ISCA 2017, 28 nm)
# ---------------------------------------------------------------------------------------------

# source: Jouppi 2017: die "≤ 331 mm²"; floorplan (Fig. 2): matrix unit 24 %, unified buffer 29 %,
# accumulators 6 %, DDR3 DRAM interfaces 3 %; 65,536 8-bit MACs; 24 MiB buffer + 4 MiB accumulators;
# 2 DDR3-2133 channels (34 GB/s); die idle power 28 W (Table 2).
TPUV1_DIE_MM2 = 331.0
TPUV1_SHARES = {"mxu": 0.24, "unified_buffer": 0.29, "accumulators": 0.06, "ddr": 0.03}
TPUV1_MACS = 256 * 256
TPUV1_SRAM_KIB = (24 + 4) * 1024
TPUV1_DRAM_PORTS = 2
TPUV1_IDLE_W = 28.0

# One int8 PE with its registers at 28 nm: 0.24 · 331 mm² / 65,536 = 1212 µm².
_PE_INT8_28NM_UM2 = TPUV1_SHARES["mxu"] * TPUV1_DIE_MM2 * 1e6 / TPUV1_MACS
# What a PE has beyond Horowitz's arithmetic (operand/pipeline registers, wiring), at 45 nm,
# per operand byte: assumed to grow linearly with operand width.
PE_REGISTER_AREA_45NM_UM2_PER_BYTE = _PE_INT8_28NM_UM2 / AREA_FACTOR["28nm"] - HOROWITZ_45NM_MAC_AREA_UM2[1]

# source (bitcells, µm², high-density 6T): 45 nm 0.346 (Intel, Mistry et al. IEDM 2007);
# 28 nm 0.127 (TSMC 28 nm HD); 16 nm 0.07 (TSMC 16 nm FinFET, IEDM 2013); 7 nm 0.027 (TSMC N7,
# Chang et al. ISSCC 2017); 5 nm 0.021 (TSMC N5, Yeap et al. IEDM 2019).
SRAM_BITCELL_UM2 = {"45nm": 0.346, "28nm": 0.127, "16nm": 0.07, "7nm": 0.027, "5nm": 0.021}
# Array efficiency (bitcell area / macro area incl. banking, ports and local wiring) from TPUv1:
# 28 MiB in 35 % of 331 mm² → 4.04e-3 mm²/KiB vs 8192 · 0.127 µm² = 1.04e-3 → 0.26. Dense
# compiled macros reach ~0.7; 0.26 is deliberately the as-built accelerator figure.
SRAM_ARRAY_EFFICIENCY = (8192 * SRAM_BITCELL_UM2["28nm"] * 1e-6) / (
    (TPUV1_SHARES["unified_buffer"] + TPUV1_SHARES["accumulators"]) * TPUV1_DIE_MM2 / TPUV1_SRAM_KIB
)
# Everything TPUv1's floorplan spends outside PEs, buffers and DRAM interfaces (control, host and
# PCIe interfaces, activation pipeline, clocking, unlabelled area): 1 − 0.62 = 0.38.
OVERHEAD_AREA_FRACTION = 1.0 - sum(TPUV1_SHARES.values())
# DDR PHY per 64-bit port at 28 nm: 3 % of 331 mm² over 2 channels = 4.97 mm² (TPUv1's DDR3 used
# as the DDR4 proxy). estimate: LPDDR4 x64 taken equal; an HBM2 stack (1024-bit) taken as 3x.
_DRAM_PHY_28NM_MM2 = {"ddr4": TPUV1_SHARES["ddr"] * TPUV1_DIE_MM2 / TPUV1_DRAM_PORTS}
_DRAM_PHY_28NM_MM2["lpddr4"] = _DRAM_PHY_28NM_MM2["ddr4"]
_DRAM_PHY_28NM_MM2["hbm2"] = 3.0 * _DRAM_PHY_28NM_MM2["ddr4"]
# Static power density at 28 nm: TPUv1 idle power over its die, 28 W / 331 mm² = 0.085 W/mm².
# estimate: other nodes scale it like switching power density at fixed clock (energy / area factor).
_STATIC_28NM_W_PER_MM2 = TPUV1_IDLE_W / TPUV1_DIE_MM2

# source: Intel 80-tile TeraFLOPS chip (Vangal et al., JSSC 2008; Hoskote et al., IEEE Micro 2007),
# 65 nm: 5-port mesh router 0.34 mm² (recalled, not re-checked); to 45 nm with Stillmaker's 65→45
# area factor 0.66.
ROUTER_45NM_MM2 = 0.34 * 0.66

# ---------------------------------------------------------------------------------------------
# DRAM energy (device + I/O; independent of the logic node)
# ---------------------------------------------------------------------------------------------

DRAM_PJ_PER_BIT = {
    # derived: Horowitz's DRAM 1.3 nJ / 64 bit = 20.3 pJ/bit (DDR3, 1.5 V) × (1.2 V / 1.5 V)² for
    # DDR4's lower supply = 13.0 pJ/bit.
    "ddr4": HOROWITZ_DRAM_PJ_PER_64BIT / 64.0 * (1.2 / 1.5) ** 2,
    # estimate: published LPDDR4 figures span ~4 pJ/bit (I/O only) to ~13-14 pJ/bit (full access in
    # simulation); 10 pJ/bit keeps it between HBM2 and DDR4.
    "lpddr4": 10.0,
    # source: O'Connor et al., "Fine-grained DRAM", MICRO 2017: HBM2 ≈ 3.9 pJ/bit.
    "hbm2": 3.9,
}

# ---------------------------------------------------------------------------------------------
# Wafer economics
# ---------------------------------------------------------------------------------------------

# source: Khan & Mann, CSET 2020, foundry sale price per 300 mm wafer: 16/12 nm $3,984, 7 nm
# $9,346, 5 nm $16,988 (checked); 28 nm $2,891 and 40 nm $2,274 (recalled from the same table;
# 40 nm stands in for 45 nm).
WAFER_COST_USD = {"45nm": 2274.0, "28nm": 2891.0, "16nm": 3984.0, "7nm": 9346.0, "5nm": 16988.0}
# source: TSMC via AnandTech (Aug 2020): N7 0.09 /cm² three quarters after HVM (VLSI Symposium
# 2019); N5 0.10-0.11 /cm² at the 2020 Technology Symposium. estimate: 45/28/16 nm: TSMC says N7
# "levelled off to comparable levels as the prior nodes", so mature older nodes take 0.09 too.
DEFECT_DENSITY_PER_CM2 = {"45nm": 0.09, "28nm": 0.09, "16nm": 0.09, "7nm": 0.09, "5nm": 0.10}
WAFER_DIAMETER_MM = 300.0  # source: standard 300 mm wafer
EDGE_EXCLUSION_MM = 3.0  # estimate: typical 2-3 mm unusable rim
SCRIBE_MM = 0.1  # estimate: typical 50-100 µm scribe lane between dies


@dataclass(frozen=True)
class TechNode:
    """Constants of one process node. Units are in the field names.

    Dict fields are keyed by operand precision in bytes (:data:`PRECISIONS`) or by
    DRAM kind (:data:`DRAM_KINDS`). Instances are immutable and hashable.
    """

    name: str
    mac_energy_pj: dict[int, float]
    reg_energy_pj_per_byte: float
    vector_op_energy_pj: dict[int, float]
    sram_energy_pj_per_byte_at_8kib: float
    sram_energy_size_exponent: float
    noc_hop_energy_pj_per_byte: float
    dram_energy_pj_per_byte: dict[str, float]
    pe_area_um2: dict[int, float]
    sram_area_mm2_per_kib: float
    router_area_mm2: float
    dram_phy_area_mm2: dict[str, float]
    leakage_w_per_mm2: float
    overhead_area_fraction: float
    wafer_cost_usd: float
    defect_density_per_cm2: float
    wafer_diameter_mm: float = WAFER_DIAMETER_MM
    edge_exclusion_mm: float = EDGE_EXCLUSION_MM
    scribe_mm: float = SCRIBE_MM
    #: SRAM energy and area by size from a generated table (``hardware.tech = "cacti"``: a
    #: :class:`codesign.hardware.tech_tables.SramTable`); ``None``: the power law and the per-KiB
    #: area above.
    sram_table: Any = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "sram_table"):
                continue
            if isinstance(value, dict):
                keys = PRECISIONS if f.name in ("mac_energy_pj", "vector_op_energy_pj", "pe_area_um2") else DRAM_KINDS
                if set(value) != set(keys):
                    raise ValueError(f"TechNode {self.name!r}: {f.name} needs keys {keys}, got {sorted(value)}")
                bad = {k: v for k, v in value.items() if not (math.isfinite(v) and v > 0)}
                if bad:
                    raise ValueError(f"TechNode {self.name!r}: {f.name} values must be finite and > 0, got {bad}")
                object.__setattr__(self, f.name, dict(value))  # own copy: no aliasing with the caller
            elif not (math.isfinite(value) and value > 0):
                raise ValueError(f"TechNode {self.name!r}: {f.name} must be finite and > 0, got {value!r}")
        if not self.overhead_area_fraction < 1.0:
            raise ValueError(
                f"TechNode {self.name!r}: overhead_area_fraction must be < 1, got {self.overhead_area_fraction}"
            )
        if 2 * self.edge_exclusion_mm >= self.wafer_diameter_mm:
            raise ValueError(f"TechNode {self.name!r}: edge_exclusion_mm leaves no usable wafer")

    def __hash__(self) -> int:  # dict fields are not hashable: hash their sorted items
        values = (getattr(self, f.name) for f in fields(self))
        return hash(tuple(tuple(sorted(v.items())) if isinstance(v, dict) else v for v in values))


def _build_node(name: str) -> TechNode:
    e, a = ENERGY_FACTOR[name], AREA_FACTOR[name]
    phy_scale = math.sqrt(a / AREA_FACTOR["28nm"])  # estimate: pad/analog-limited PHYs shrink ~ √(logic area)
    static_scale = (e / a) / (ENERGY_FACTOR["28nm"] / AREA_FACTOR["28nm"])
    return TechNode(
        name=name,
        mac_energy_pj={p: HOROWITZ_45NM_MAC_PJ[p] * e for p in PRECISIONS},
        reg_energy_pj_per_byte=REG_45NM_PJ_PER_BYTE * e,
        vector_op_energy_pj={p: HOROWITZ_45NM_VECTOR_OP_PJ[p] * e for p in PRECISIONS},
        sram_energy_pj_per_byte_at_8kib=SRAM_45NM_PJ_PER_BYTE_AT_8KIB * e,
        sram_energy_size_exponent=SRAM_ENERGY_SIZE_EXPONENT,
        noc_hop_energy_pj_per_byte=NOC_HOP_45NM_PJ_PER_BYTE * e,
        dram_energy_pj_per_byte={k: 8.0 * v for k, v in DRAM_PJ_PER_BIT.items()},
        pe_area_um2={
            p: (HOROWITZ_45NM_MAC_AREA_UM2[p] + p * PE_REGISTER_AREA_45NM_UM2_PER_BYTE) * a for p in PRECISIONS
        },
        sram_area_mm2_per_kib=8192 * SRAM_BITCELL_UM2[name] * 1e-6 / SRAM_ARRAY_EFFICIENCY,
        router_area_mm2=ROUTER_45NM_MM2 * a,
        dram_phy_area_mm2={k: v * phy_scale for k, v in _DRAM_PHY_28NM_MM2.items()},
        leakage_w_per_mm2=_STATIC_28NM_W_PER_MM2 * static_scale,
        overhead_area_fraction=OVERHEAD_AREA_FRACTION,
        wafer_cost_usd=WAFER_COST_USD[name],
        defect_density_per_cm2=DEFECT_DENSITY_PER_CM2[name],
    )


#: The supported nodes, by name.
TECH_NODES: dict[str, TechNode] = {name: _build_node(name) for name in ("45nm", "28nm", "16nm", "7nm", "5nm")}


def resolve_tech_node(name: str | TechNode) -> TechNode:
    """The :class:`TechNode` called ``name`` (a node passed in is returned as is).

    Raises:
        ValueError: ``name`` is not a known node; the message lists the valid names.
    """
    if isinstance(name, TechNode):
        return name
    try:
        return TECH_NODES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown technology node {name!r}; valid names: {', '.join(TECH_NODES)}") from None
