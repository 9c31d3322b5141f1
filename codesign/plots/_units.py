"""Axis labels, units and SI-prefix scaling for report plots (the one place for them).

A column name maps to a quantity and a unit: the known objectives
(``latency_s``, ``energy_j``, ``area_mm2``, ``cost_usd``, ``power_w``, the carbon metrics) and
schedule times (``start_s``, ``end_s``) explicitly, any other column by its unit
suffix (``_s``, ``_j``, ``_w``, ``_hz``, ``_mm2``, ``_usd``, ``_kib``, ...).
Units that take SI prefixes (s, J, W, Hz, B/s) are rescaled so that the largest
magnitude on the axis lies in ``[1, 1000)``: ``0.0042 s`` is shown as ``4.2 ms``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Quantity", "quantity", "si_scale", "axis_label", "format_value", "spans_decades"]


@dataclass(frozen=True)
class Quantity:
    """What a column measures: a human name, its base unit and whether SI prefixes apply."""

    name: str
    unit: str = ""
    si: bool = False


_KNOWN = {
    "latency_s": Quantity("Latency", "s", True),
    "energy_j": Quantity("Energy", "J", True),
    "area_mm2": Quantity("Area", "mm²", False),
    "cost_usd": Quantity("Cost", "USD", False),
    "power_w": Quantity("Power", "W", True),
    "carbon_kg": Quantity("Embodied carbon", "kg CO2e", False),
    "carbon_operational_kg": Quantity("Operational carbon", "kg CO2e", False),
    "start_s": Quantity("Start", "s", True),
    "end_s": Quantity("End", "s", True),
    "time_s": Quantity("Time", "s", True),
}

# suffix -> (unit, takes SI prefixes); longest suffixes first.
_SUFFIXES = [
    ("_bytes_per_s", "B/s", True),
    ("_gbps", "GB/s", False),
    ("_mm2", "mm²", False),
    ("_usd", "USD", False),
    ("_kib", "KiB", False),
    ("_mib", "MiB", False),
    ("_ghz", "GHz", False),
    ("_mhz", "MHz", False),
    ("_hz", "Hz", True),
    ("_nm", "nm", False),
    ("_s", "s", True),
    ("_j", "J", True),
    ("_w", "W", True),
]

_BINARY = ["B", "KiB", "MiB", "GiB", "TiB"]
_PREFIXES = {-12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}


def quantity(column: str) -> Quantity:
    """The :class:`Quantity` of a column name (unknown units give a unitless quantity)."""
    if column in _KNOWN:
        return _KNOWN[column]
    group, _, knob = str(column).rpartition(".")
    prefix = f"{group}." if group else ""
    for suffix, unit, si in _SUFFIXES:
        if knob.endswith(suffix) and len(knob) > len(suffix):
            return Quantity(prefix + knob[: -len(suffix)], unit, si)
    return Quantity(str(column))


def si_scale(values, unit: str) -> tuple[float, str]:
    """``(factor, prefixed_unit)`` such that ``values * factor`` has its largest magnitude in ``[1, 1000)``.

    Args:
        values: array-like of numbers (non-finite entries are ignored).
        unit: the base unit, e.g. ``"s"``.
    """
    arr = np.asarray(values, dtype=float).ravel()
    arr = np.abs(arr[np.isfinite(arr)])
    if arr.size == 0 or arr.max() == 0:
        return 1.0, unit
    exp3 = 3 * math.floor(math.log10(arr.max()) / 3)
    exp3 = min(max(exp3, min(_PREFIXES)), max(_PREFIXES))
    return 10.0 ** (-exp3), _PREFIXES[exp3] + unit


def axis_label(column: str, values=None) -> tuple[str, float]:
    """``(label, factor)`` for plotting ``column``: e.g. ``("Latency [ms]", 1e3)``.

    Multiply the data by ``factor`` before plotting. Without ``values`` (or for
    units that take no SI prefix) the factor is 1.
    """
    q = quantity(column)
    if not q.unit:
        return q.name, 1.0
    factor, unit = (1.0, q.unit)
    if q.si and values is not None:
        factor, unit = si_scale(values, q.unit)
    return f"{q.name} [{unit}]", factor


def format_value(value: float, column: str, *, digits: int = 3) -> str:
    """``value`` of ``column`` with its unit, SI-prefixed where that applies: ``"4.2 ms"``, ``"16 MiB"``."""
    q = quantity(column)
    if value is None or not np.isfinite(value):
        return f"{value}"
    if q.unit in _BINARY:
        units = _BINARY[_BINARY.index(q.unit):]
        k = 0
        while k + 1 < len(units) and abs(value) >= 1024:
            value, k = value / 1024, k + 1
        return f"{value:.{digits}g} {units[k]}"
    if q.si:
        factor, unit = si_scale([value], q.unit)
        return f"{value * factor:.{digits}g} {unit}"
    return f"{value:.{digits}g} {q.unit}".rstrip()


def spans_decades(values, decades: float = 2.0) -> bool:
    """Whether the finite ``values`` are all positive and span more than ``decades`` decades."""
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size < 2 or arr.min() <= 0:
        return False
    return math.log10(arr.max() / arr.min()) > decades
