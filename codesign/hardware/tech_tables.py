"""Technology tables generated offline with hwcomponents, read by ``hardware.tech = "cacti"``.

``scripts/make_tech_tables.py`` runs hwcomponents 1.0.114 (the Accelergy project's component
library) in a side environment and commits its results under ``data/hwcomponents/`` (that folder's
README gives the command, the versions and every column). This module reads them and builds, for
each node of :data:`codesign.hardware.tech.TECH_NODES`, a :class:`~codesign.hardware.tech.TechNode`
whose constants come from those tables where the library models them:

* SRAM read/write energy per byte and SRAM area: CACTI (hwcomponents-cacti, ``SRAM``) at a
  :data:`SRAM_PORT_BITS`-bit port, interpolated in size (:class:`SramTable`, log-log, exact at the
  table's sizes). CACTI runs at 22/32/45 nm; hwcomponents interpolates 28 nm between 22 and 32 nm
  and scales below 22 nm (energy ∝ √node, area ∝ node).
* int8 MAC energy (8-bit multiplier + 8-bit adder: Horowitz's convention, as the built-in tables)
  and the int8 vector operation (an 8-bit add): Aladdin (Shao et al., ISCA 2014, 40 nm), scaled
  by hwcomponents' node factors.
* Register-file energy per byte: Aladdin's register (read of one byte).
* NoC hop energy per byte: ISAAC's router (Shafiee et al., ISCA 2016, 32 nm) plus 1 mm of wire
  (0.2 pF/mm at 0.7 V, a random bit toggling half the time).

The library has no floating-point MAC or adder, so fp16/bf16 and fp32 MAC and vector energies stay
the built-in ones (Horowitz 2014), as do the PE, router and DRAM-PHY areas, the static power (a
whole-die idle-power density calibrated on TPUv1, not an SRAM leakage), DRAM energy and wafer
economics. docs/model.md ("Technology sources side by side") compares the two sources.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch

from codesign.hardware import cost as hwcost
from codesign.hardware.tech import TECH_NODES, TechNode
from codesign.vocab import TECH_SOURCES

#: Where the committed tables are (data/hwcomponents/ of the repository).
TABLE_DIR = Path(__file__).resolve().parents[2] / "data" / "hwcomponents"
#: The SRAM port width the model reads the tables at, bits: one row of a 16-column int8 array
#: (the default ``pe_cols``) per cycle. Per-byte energy falls with a wider port (the CSV has 64-512).
SRAM_PORT_BITS = 128


def _rows(name: str) -> list[dict]:
    path = TABLE_DIR / name
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@lru_cache(maxsize=None)
def sram_rows() -> tuple[dict, ...]:
    """Rows of ``sram.csv`` (numbers as floats), as generated."""
    return tuple({k: float(v) for k, v in row.items()} for row in _rows("sram.csv"))


@lru_cache(maxsize=None)
def component_rows() -> tuple[dict, ...]:
    """Rows of ``components.csv`` (``node_nm`` and the numbers as floats)."""
    numeric = ("node_nm", "energy_pj", "area_um2", "leakage_uw")
    return tuple({k: float(v) if k in numeric else v for k, v in row.items()} for row in _rows("components.csv"))


def node_nm(name: str) -> int:
    """``"7nm"`` → 7."""
    return int(name.removesuffix("nm"))


def component_pj(name: str, component: str, variant: str) -> float:
    """Energy (pJ, per the row's ``per`` unit) of one component of ``components.csv`` at node ``name``."""
    for row in component_rows():
        if row["node_nm"] == node_nm(name) and row["component"] == component and row["variant"] == variant:
            return row["energy_pj"]
    raise KeyError(f"{TABLE_DIR / 'components.csv'} has no {component}/{variant} at {name}")


@lru_cache(maxsize=None)
def _as_tensor(values: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)


def loglog_interp(x: torch.Tensor, xs: tuple[float, ...], ys: tuple[float, ...]) -> torch.Tensor:
    """Piecewise-linear interpolation of ``(xs, ys)`` in log(x)–log(y), any shape, differentiable.

    Exact at the table's points (``x == xs[k]`` gives ``ys[k]`` bit for bit); beyond the ends the
    end segments extend (callers check the range: :func:`check_sram_range`). ``xs`` ascending, all
    values > 0. Same shape, device and dtype as ``x``.
    """
    lxs = _as_tensor(tuple(math.log(v) for v in xs), x.device, x.dtype)
    yv = _as_tensor(tuple(ys), x.device, x.dtype)
    lx = x.log()
    hi = torch.searchsorted(lxs, lx.detach().contiguous(), right=True).clamp(1, len(xs) - 1)
    lo = hi - 1
    t = (lx - lxs[lo]) / (lxs[hi] - lxs[lo])
    ratio = yv[hi] / yv[lo]
    # y_lo · r^t is exact at t = 0 and y_hi · r^(t−1) at t = 1: each end of a segment is a table point.
    return torch.where(t <= 0.5, yv[lo] * ratio**t, yv[hi] * ratio ** (t - 1.0))


@dataclass(frozen=True)
class SramTable:
    """One node's CACTI SRAM at :data:`SRAM_PORT_BITS`: per size (KiB, ascending) the mean of
    read and write energy per byte (pJ; the model charges reads and writes alike), area (mm²) and
    leakage (mW)."""

    kib: tuple[float, ...]
    pj_per_byte: tuple[float, ...]
    area_mm2: tuple[float, ...]
    leakage_mw: tuple[float, ...]

    def energy(self, kib: torch.Tensor) -> torch.Tensor:
        """pJ per byte read or written of an SRAM of ``kib`` KiB (any shape)."""
        return loglog_interp(kib, self.kib, self.pj_per_byte)

    def area(self, kib: torch.Tensor) -> torch.Tensor:
        """mm² of an SRAM of ``kib`` KiB (any shape)."""
        return loglog_interp(kib, self.kib, self.area_mm2)


@lru_cache(maxsize=None)
def sram_table(name: str, width_bits: int = SRAM_PORT_BITS) -> SramTable:
    """The CACTI SRAM table of node ``name`` at a ``width_bits`` port."""
    rows = sorted((r for r in sram_rows() if r["node_nm"] == node_nm(name) and r["width_bits"] == width_bits),
                  key=lambda r: r["size_kib"])
    if not rows:
        raise KeyError(f"{TABLE_DIR / 'sram.csv'} has no {width_bits}-bit SRAM at {name}")
    return SramTable(kib=tuple(r["size_kib"] for r in rows),
                     pj_per_byte=tuple((r["read_pj_per_byte"] + r["write_pj_per_byte"]) / 2 for r in rows),
                     area_mm2=tuple(r["area_mm2"] for r in rows), leakage_mw=tuple(r["leakage_mw"] for r in rows))


def sram_range_kib() -> tuple[float, float]:
    """The smallest and largest SRAM (KiB) the tables hold."""
    sizes = [r["size_kib"] for r in sram_rows()]
    return min(sizes), max(sizes)


@lru_cache(maxsize=None)
def tech_node(name: str, source: str = "builtin") -> TechNode:
    """The constants of node ``name`` from technology source ``source`` (:data:`TECH_SOURCES`):
    ``builtin`` is :data:`TECH_NODES` itself; ``cacti`` replaces what the hwcomponents tables model
    (see the module docs) and keeps the rest."""
    base = TECH_NODES[name]
    if source == "builtin":
        return base
    if source != "cacti":
        raise ValueError(f"unknown technology source {source!r}; expected one of {TECH_SOURCES}")
    pj_byte_hop = 8.0 * component_pj(name, "noc_hop", "router+wire_1mm")
    return replace(
        base,
        mac_energy_pj={**base.mac_energy_pj, 1: component_pj(name, "mac", "int8")},
        vector_op_energy_pj={**base.vector_op_energy_pj, 1: component_pj(name, "add", "int8")},
        reg_energy_pj_per_byte=component_pj(name, "register", "read"),
        noc_hop_energy_pj_per_byte=pj_byte_hop,
        sram_table=sram_table(name),
    )


def check_sram_range(sizes_kib: list[float]) -> tuple[float, float] | None:
    """``None`` when every size (KiB) lies in the tables; else the tables' ``(smallest, largest)``."""
    lo, hi = sram_range_kib()
    inside = all(lo * (1 - 1e-9) <= s <= hi * (1 + 1e-9) for s in sizes_kib)
    return None if inside else (lo, hi)


# --- the side-by-side table of docs/model.md -----------------------------------------------------

#: What docs/model.md compares: SRAM sizes (KiB) at these nodes, CACTI at these port widths (bits).
COMPARED_KIB = (32, 64, 128, 256, 512, 1024, 2048, 4096)
COMPARED_NODES = ("7nm", "16nm", "28nm")
COMPARED_WIDTHS = (64, 128)


def _sram_value(name: str, kib: float, width: int, column: str) -> float:
    for row in sram_rows():
        if row["node_nm"] == node_nm(name) and row["size_kib"] == kib and row["width_bits"] == width:
            return row[column]
    raise KeyError(f"{TABLE_DIR / 'sram.csv'} has no {width}-bit {kib:g} KiB SRAM at {name}")


def _size(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib >= 1024 else f"{kib} KiB"


def _sram_markdown(title: str, builtin, column: str, fmt: str) -> list[str]:
    """One table: a row per size, per node the built-in value and CACTI's at each compared width."""
    head = ["SRAM"] + [f"{n} {src}" for n in COMPARED_NODES for src in ["builtin"] + [f"CACTI {w}b" for w in COMPARED_WIDTHS]]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for kib in COMPARED_KIB:
        cells = [_size(kib)]
        for name in COMPARED_NODES:
            cells.append(format(builtin(TECH_NODES[name], kib), fmt))
            cells += [format(_sram_value(name, kib, w, column), fmt) for w in COMPARED_WIDTHS]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def comparison_markdown() -> str:
    """docs/model.md's "Technology sources side by side" tables, from the committed CSVs and
    :data:`TECH_NODES` (tests/test_tech_tables.py checks the document holds exactly this)."""
    def builtin_pj(node: TechNode, kib: float) -> float:
        return hwcost.sram_energy_pj_per_byte(node, torch.tensor(float(kib), dtype=torch.float64)).item()

    def builtin_mm2(node: TechNode, kib: float) -> float:
        return hwcost.area_breakdown_mm2(node, pe_rows=0, pe_cols=0, sram_kib=float(kib), n_cores=1, n_dram_ports=0,
                                         precision_bytes=1, dram_kind="ddr4")["sram"].item()

    lines = _sram_markdown("SRAM read energy, pJ per byte", builtin_pj, "read_pj_per_byte", ".3g")
    lines += _sram_markdown("SRAM area, mm²", builtin_mm2, "area_mm2", ".3g")
    head = ["per operation"] + [f"{n} {src}" for n in COMPARED_NODES for src in ("builtin", "hwcomponents")]
    lines += ["**Logic and NoC energy, pJ**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    quantities = (
        ("int8 MAC (8-bit mult + 8-bit add)", lambda n: n.mac_energy_pj[1]),
        ("int8 vector op (8-bit add)", lambda n: n.vector_op_energy_pj[1]),
        ("register read, per byte", lambda n: n.reg_energy_pj_per_byte),
        ("NoC hop (router + 1 mm), per byte", lambda n: n.noc_hop_energy_pj_per_byte),
    )
    for label, get in quantities:
        cells = [label]
        for name in COMPARED_NODES:
            cells += [format(get(TECH_NODES[name]), ".3g"), format(get(tech_node(name, "cacti")), ".3g")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
