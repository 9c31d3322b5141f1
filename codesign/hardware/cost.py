"""Batched area, energy, static-power and die-cost formulas over a population of designs.

Every function takes torch tensors (or Python numbers) that broadcast to a common
shape — typically ``[P]`` for a population of ``P`` candidate accelerators — and
returns a floating tensor of that shape. Nothing loops over the batch in Python;
the functions are differentiable where the formulas are smooth.

Dtype and device: the result is in the floating dtype of the tensor inputs
(promoted across them; integer-only or Python-number inputs give the default
dtype) and on their device. Inputs are checked up front (finite, and positive
where a size must be); the error message names the argument.

Formulas and constants are documented in docs/model.md ("Energy", "Area",
"Die cost"); constants come from :mod:`codesign.hardware.tech`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from codesign.hardware.tech import DRAM_KINDS, PRECISIONS, TechNode

#: Floor on dies per wafer: a die larger than the usable wafer gets an astronomically
#: high (but finite) cost instead of a division by zero or a negative count.
MIN_DIES_PER_WAFER = 1e-9

TensorLike = Tensor | float | int


def _as_float_tensors(**named: TensorLike) -> dict[str, Tensor]:
    """Convert the arguments to tensors of one floating dtype on one device."""
    tensors = [v for v in named.values() if isinstance(v, Tensor)]
    floats = [t.dtype for t in tensors if t.is_floating_point()]
    dtype = floats[0] if floats else torch.get_default_dtype()
    for d in floats[1:]:
        dtype = torch.promote_types(dtype, d)
    device = tensors[0].device if tensors else None
    out = {}
    for name, value in named.items():
        if isinstance(value, Tensor):
            if value.is_complex() or value.dtype == torch.bool:
                raise TypeError(f"{name} must be a real numeric tensor, got dtype {value.dtype}")
            out[name] = value.to(dtype=dtype, device=device)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = torch.as_tensor(float(value), dtype=dtype, device=device)
        else:
            raise TypeError(f"{name} must be a tensor or a number, got {type(value).__name__}")
    return out


def _check(name: str, x: Tensor, *, positive: bool) -> None:
    """Fail early, naming the argument, on NaN/inf or out-of-range entries."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    if positive and not bool((x > 0).all()):
        raise ValueError(f"{name} must be > 0, got min {x.min().item():g}")
    if not positive and not bool((x >= 0).all()):
        raise ValueError(f"{name} must be ≥ 0, got min {x.min().item():g}")


def _check_node(node: TechNode) -> None:
    if not isinstance(node, TechNode):
        raise TypeError(
            f"node must be a TechNode (see codesign.hardware.tech.resolve_tech_node), got {type(node).__name__}"
        )


# --- energy ---------------------------------------------------------------------------------


def sram_energy_pj_per_byte(node: TechNode, sram_kib: TensorLike) -> Tensor:
    """Energy to read or write one byte of an SRAM of ``sram_kib`` KiB.

    Power law in size anchored at 8 KiB: ``E = E_8KiB · (sram_kib / 8)^b``, with
    ``E_8KiB`` and ``b`` fitted to Horowitz's 8 KB / 32 KB / 1 MB points; a node built from
    generated tables (``hardware.tech = "cacti"``, :mod:`codesign.hardware.tech_tables`)
    interpolates its CACTI table in size instead.

    Args:
        node: technology node.
        sram_kib: SRAM capacity in KiB, any broadcastable shape (e.g. ``[P]``), > 0.

    Returns:
        pJ per byte, same shape as ``sram_kib``.
    """
    _check_node(node)
    kib = _as_float_tensors(sram_kib=sram_kib)["sram_kib"]
    _check("sram_kib", kib, positive=True)
    if node.sram_table is not None:  # hardware.tech = "cacti": the generated table, interpolated in size
        return node.sram_table.energy(kib)
    return node.sram_energy_pj_per_byte_at_8kib * (kib / 8.0) ** node.sram_energy_size_exponent


# --- area -----------------------------------------------------------------------------------


def area_breakdown_mm2(
    node: TechNode,
    *,
    pe_rows: TensorLike,
    pe_cols: TensorLike,
    sram_kib: TensorLike,
    n_cores: TensorLike,
    n_dram_ports: TensorLike,
    precision_bytes: int,
    dram_kind: str,
    vector_lanes: TensorLike = 0,
) -> dict[str, Tensor]:
    """Die area by component, in mm².

    Per core: a ``pe_rows × pe_cols`` PE array, a vector unit of ``vector_lanes`` lanes (one
    lane costed as one PE of the precision: an ALU and its operand registers), ``sram_kib`` KiB
    of SRAM and one NoC router; per die: ``n_dram_ports`` DRAM PHYs; the rest of the die
    (control, clocking, host I/O) is a fixed fraction ``f`` of the total, so
    ``overhead = modeled · f / (1 − f)``.

    Args:
        node: technology node.
        pe_rows, pe_cols: PE array shape per core, ≥ 0, broadcastable (e.g. ``[P]``).
        sram_kib: on-chip SRAM per core in KiB, ≥ 0.
        n_cores: cores per die, ≥ 0.
        n_dram_ports: DRAM ports (PHYs) per die, ≥ 0.
        precision_bytes: operand precision, one of 1, 2, 4.
        dram_kind: one of :data:`~codesign.hardware.tech.DRAM_KINDS`.
        vector_lanes: lanes of each core's vector unit, ≥ 0 (0: none, as the TPUv1 calibration
            counts its activation pipeline in the overhead).

    Returns:
        ``{"pe_array", "vector_unit", "sram", "router", "dram_phy", "overhead"}`` → tensors of
        the broadcast shape; their sum is :func:`area_mm2`.
    """
    _check_node(node)
    if precision_bytes not in PRECISIONS or isinstance(precision_bytes, bool):
        raise ValueError(f"precision_bytes must be one of {PRECISIONS}, got {precision_bytes!r}")
    if dram_kind not in DRAM_KINDS:
        raise ValueError(f"dram_kind must be one of {DRAM_KINDS}, got {dram_kind!r}")
    t = _as_float_tensors(
        pe_rows=pe_rows, pe_cols=pe_cols, sram_kib=sram_kib, n_cores=n_cores, n_dram_ports=n_dram_ports,
        vector_lanes=vector_lanes,
    )
    for name, value in t.items():
        _check(name, value, positive=False)
    pe_rows, pe_cols, sram_kib, n_cores, n_dram_ports, vector_lanes = t.values()
    # broadcast_tensors, not broadcast_shapes: the latter imports sympy (~2 s) on first use.
    shape = torch.broadcast_tensors(*t.values())[0].shape

    pe_array = n_cores * pe_rows * pe_cols * (node.pe_area_um2[precision_bytes] * 1e-6)
    vector_unit = n_cores * vector_lanes * (node.pe_area_um2[precision_bytes] * 1e-6)
    if node.sram_table is None:
        sram = n_cores * sram_kib * node.sram_area_mm2_per_kib
    else:  # hardware.tech = "cacti": the generated table's area at this size (none without SRAM)
        sram = n_cores * torch.where(sram_kib > 0, node.sram_table.area(sram_kib.clamp_min(1e-9)), 0.0)
    router = n_cores * node.router_area_mm2
    dram_phy = n_dram_ports * node.dram_phy_area_mm2[dram_kind]
    f = node.overhead_area_fraction
    overhead = (pe_array + vector_unit + sram + router + dram_phy) * (f / (1.0 - f))
    parts = {"pe_array": pe_array, "vector_unit": vector_unit, "sram": sram, "router": router, "dram_phy": dram_phy,
             "overhead": overhead}
    return {k: v.expand(shape) for k, v in parts.items()}


def area_mm2(
    node: TechNode,
    *,
    pe_rows: TensorLike,
    pe_cols: TensorLike,
    sram_kib: TensorLike,
    n_cores: TensorLike,
    n_dram_ports: TensorLike,
    precision_bytes: int,
    dram_kind: str,
    vector_lanes: TensorLike = 0,
) -> Tensor:
    """Total die area in mm²: the sum of :func:`area_breakdown_mm2`.

    ``(n_cores·((pe_rows·pe_cols + vector_lanes)·pe_area + sram_kib·sram_area + router_area)
    + n_dram_ports·phy_area) / (1 − overhead_fraction)``. Arguments and shapes
    as in :func:`area_breakdown_mm2`.
    """
    parts = area_breakdown_mm2(
        node,
        pe_rows=pe_rows,
        pe_cols=pe_cols,
        sram_kib=sram_kib,
        n_cores=n_cores,
        n_dram_ports=n_dram_ports,
        precision_bytes=precision_bytes,
        dram_kind=dram_kind,
        vector_lanes=vector_lanes,
    )
    return sum(parts.values())


# --- die cost -------------------------------------------------------------------------------


def _die_area(area_mm2: TensorLike) -> Tensor:
    a = _as_float_tensors(area_mm2=area_mm2)["area_mm2"]
    _check("area_mm2", a, positive=True)
    return a


def dies_per_wafer(area_mm2: TensorLike, node: TechNode) -> Tensor:
    """Gross dies per wafer, ``π(d/2)²/A − πd/√(2A)``.

    ``d`` is the usable diameter (wafer diameter minus twice the edge
    exclusion) and ``A`` the die area including half a scribe lane on each side,
    ``(√area + scribe)²``. The second term counts the partial dies lost along the
    rim (the standard gross-die estimate, e.g. de Vries, IEEE TSM 2005). The
    result is clamped to ≥ :data:`MIN_DIES_PER_WAFER`, so a die that does not
    fit on the wafer costs astronomically much rather than NaN or a negative.

    Args:
        area_mm2: die area in mm², > 0, any shape (e.g. ``[P]``).
        node: technology node (wafer geometry).

    Returns:
        Dies per wafer (fractional), same shape as ``area_mm2``.
    """
    _check_node(node)
    a = _die_area(area_mm2)
    a_scribed = (a.sqrt() + node.scribe_mm) ** 2
    d = node.wafer_diameter_mm - 2.0 * node.edge_exclusion_mm
    gross = math.pi * (d / 2.0) ** 2 / a_scribed - math.pi * d / (2.0 * a_scribed).sqrt()
    return gross.clamp_min(MIN_DIES_PER_WAFER)


def die_yield(area_mm2: TensorLike, node: TechNode, alpha: float = 3.0) -> Tensor:
    """Fraction of good dies, negative-binomial model ``(1 + A·D0/α)^−α``.

    ``A`` is the die area in cm² (scribe excluded: no circuits there), ``D0`` the
    node's defect density per cm² and ``α`` the defect-clustering parameter
    (Stapper's negative-binomial yield model, as used by the ITRS; Cunningham,
    IEEE TSM 1990; α = 3 is a common choice). The result lies in (0, 1].

    Args:
        area_mm2: die area in mm², > 0, any shape (e.g. ``[P]``).
        node: technology node (defect density).
        alpha: clustering parameter, > 0 (α → ∞ gives Poisson yield).

    Returns:
        Yield, same shape as ``area_mm2``.
    """
    _check_node(node)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    a_cm2 = _die_area(area_mm2) / 100.0
    return (1.0 + a_cm2 * (node.defect_density_per_cm2 / alpha)) ** (-alpha)


def die_cost_usd(area_mm2: TensorLike, node: TechNode) -> Tensor:
    """Manufacturing cost of one good die: ``wafer_cost / (dies_per_wafer · yield)``.

    Wafer price only (no test, packaging or NRE). Strictly increasing in area,
    finite and positive for every positive area (in float32: up to ~1e12 mm²); a
    die bigger than the wafer gets ``wafer_cost / (1e-9 · yield)``, astronomically
    high but not NaN.

    Args:
        area_mm2: die area in mm², > 0, any shape (e.g. ``[P]``).
        node: technology node (wafer cost, geometry, defect density).

    Returns:
        US dollars per good die, same shape as ``area_mm2``.
    """
    _check_node(node)
    return node.wafer_cost_usd / (dies_per_wafer(area_mm2, node) * die_yield(area_mm2, node))


# --- static power ---------------------------------------------------------------------------


def static_power_w(area_mm2: TensorLike, node: TechNode) -> Tensor:
    """Static (leakage and idle) power in W: ``area · leakage_w_per_mm2``.

    Args:
        area_mm2: die area in mm², ≥ 0, any shape (e.g. ``[P]``).
        node: technology node.

    Returns:
        Watts, same shape as ``area_mm2``.
    """
    _check_node(node)
    a = _as_float_tensors(area_mm2=area_mm2)["area_mm2"]
    _check("area_mm2", a, positive=False)
    return a * node.leakage_w_per_mm2


# --- DRAM capacity cost ---------------------------------------------------------------------

#: Price of one GiB of DRAM by kind, USD (docs/model.md, "Die cost"): the chip's DRAM capacity is
#: part of what it costs (``hardware.dram_gib`` of an LLM design). A DRAM die's density is binary
#: (an 8 Gb die holds 1 GiB), so a price per 8 Gb die is a price per GiB.
#:
#: * ``ddr4``: $3.29, the average contract price of a DDR4 8 Gb die at the end of April 2020
#:   (DRAMeXchange, reported by the Korea Herald, 2020-05-05,
#:   http://www.koreaherald.com/view.php?ud=20200505000128);
#: * ``lpddr4``: $8.00, 2 GB of LPDDR4 in the iPhone 6S costed at $16 in its teardown (Teardown.com,
#:   2015, reported with Chipworks' die identification: https://semiiphub.com/industryexpertblogs/apple-iphone-6s-lpddr4);
#:   mobile DRAM carries a premium per bit over PC DRAM (TrendForce, 2017-10-12,
#:   https://www.trendforce.com/presscenter/news/20171012-9882.html);
#: * ``hbm2``: $15.00, an 8-Hi 8 GB HBM2 stack at $120 (Gamers Nexus' industry sources, 2017-2018, tabulated by
#:   Hardwareluxx: https://hardwareluxx.de/index.php/news/hardware/grafikkarten/46390-preise-fuer-gddr-speicher-und-hbm-analysiert.html;
#:   the $20-25 interposer is not included).
DRAM_USD_PER_GIB: dict[str, float] = {"ddr4": 3.29, "lpddr4": 8.00, "hbm2": 15.00}


def dram_cost_usd(dram_gib: TensorLike, dram_kind: str) -> Tensor:
    """Cost of ``dram_gib`` GiB of DRAM of kind ``dram_kind``: ``dram_gib · DRAM_USD_PER_GIB[kind]``.

    Args:
        dram_gib: DRAM capacity in GiB, ≥ 0, any shape (e.g. ``[P]``).
        dram_kind: one of :data:`~codesign.hardware.tech.DRAM_KINDS`.

    Returns:
        US dollars, same shape as ``dram_gib``.
    """
    if dram_kind not in DRAM_KINDS:
        raise ValueError(f"dram_kind must be one of {DRAM_KINDS}, got {dram_kind!r}")
    gib = _as_float_tensors(dram_gib=dram_gib)["dram_gib"]
    _check("dram_gib", gib, positive=False)
    return gib * DRAM_USD_PER_GIB[dram_kind]
