"""The registry of hardware knobs: one row per field of ``[hardware]`` that may be searched.

A row says everything the engine needs to know about a knob, so that adding one is adding a
row (plus the formula that uses it, in the model or in a plug-in):

* the design schema's field (:class:`codesign.design.HardwareSpec` is built from these rows):
  its name, value type, allowed values and default;
* the search knob ``hw.<name>`` (:class:`codesign.space.DesignSpace`) when the design gives a
  list, and its place in an integer row;
* the ``[P]`` tensor a population carries (:class:`codesign.space.Candidates` has one field per
  row): the values as whole numbers (``long``), as floats in the model's dtype (``float``), or
  as the index of the design's choice (``index``, for names such as technology nodes);
* whether the analytical model's per-layer tables are indexed by it (``tabulated``) and whether
  gradient refinement may treat it as a continuous variable (``relaxable``; ``whole`` rounds
  the relaxed value to a whole number).

Rows are in the order knobs take in a row of the design space; that order is part of how a
stored study is read back, so a new row goes at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codesign.hardware.tech import TECH_NODES
from codesign.vocab import PACKAGES


@dataclass(frozen=True)
class HardwareKnob:
    """One searchable hardware field.

    Args:
        name: the ``[hardware]`` key, the ``hw.<name>`` knob and the ``Candidates`` field.
        value_type: ``int``, ``float`` or ``str`` (values of a design file).
        default: the default choices (one value: fixed).
        doc: what it is, with its unit (the README's design-file reference says the same).
        allowed: the only values a design may give (``None``: any positive number).
        tensor: how a population holds it: ``long``, ``float`` (model dtype) or ``index`` (of the choice).
        tabulated: the analytical model's tables are indexed by its choices.
        relaxable: gradient refinement relaxes it to a continuous (log) variable.
        whole: a relaxed value is rounded to a whole number in the forward pass.
    """

    name: str
    value_type: type
    default: tuple
    doc: str
    allowed: tuple | None = None
    tensor: Literal["long", "float", "index"] = "float"
    tabulated: bool = True
    relaxable: bool = False
    whole: bool = False


HARDWARE_KNOBS: tuple[HardwareKnob, ...] = (
    HardwareKnob("grid_rows", int, (1,), "rows of the mesh of tiles, one compute core per tile", tensor="long"),
    HardwareKnob("grid_cols", int, (1,), "columns of the mesh of tiles", tensor="long"),
    HardwareKnob("pe_rows", int, (16,), "rows of every core's PE (systolic) array", relaxable=True, whole=True),
    HardwareKnob("pe_cols", int, (16,), "columns of every core's PE array", relaxable=True, whole=True),
    HardwareKnob("sram_kib", int, (256,), "on-chip SRAM per core, KiB", relaxable=True),
    HardwareKnob("dram_gbps", float, (25.6,), "DRAM bandwidth of the chip, GB/s", relaxable=True),
    HardwareKnob("noc_link_gbps", float, (64.0,), "bandwidth of one mesh link, GB/s", relaxable=True),
    HardwareKnob("clock_ghz", float, (1.0,), "core clock, GHz", relaxable=True),
    HardwareKnob("node", str, ("7nm",), "technology node", allowed=tuple(TECH_NODES), tensor="index", tabulated=False),
    HardwareKnob("vector_lanes", int, (16,), "lanes of every core's vector unit: elementwise, activation, normalisation, "
                 "softmax and pooling operations per cycle", relaxable=True, whole=True),
    HardwareKnob("dram_gib", float, (16.0,), "DRAM capacity of the chip, GiB: an LLM's weights and KV cache must fit "
                 "(the dram_use metric)", tabulated=False),
    # Chiplets (codesign/hardware/package.py): the mesh cut into equal rectangular dies, their package,
    # and the bandwidth of each die-to-die link (a mesh link that crosses a die boundary).
    HardwareKnob("dies", int, (1,), "dies per package: the core mesh cut into this many equal rectangular dies of "
                 "contiguous cores (1: one monolithic die)", tensor="long", tabulated=False),
    HardwareKnob("package", str, ("monolithic",), "package of the dies: monolithic (one die), organic (substrate), info "
                 "(integrated fan-out) or interposer_2_5d (silicon interposer)", allowed=PACKAGES, tensor="index", tabulated=False),
    HardwareKnob("d2d_gbps", float, (64.0,), "bandwidth of one die-to-die link (a mesh link that crosses a die boundary), "
                 "GB/s", tabulated=False),
)


def hardware_knob(name: str) -> HardwareKnob:
    """The registry row of ``name`` (``KeyError`` when there is none)."""
    for knob in HARDWARE_KNOBS:
        if knob.name == name:
            return knob
    raise KeyError(name)


def knob_names(*, tabulated: bool | None = None, relaxable: bool | None = None) -> tuple[str, ...]:
    """Names of the registered knobs, optionally only the tabulated or relaxable ones."""
    return tuple(
        k.name for k in HARDWARE_KNOBS
        if (tabulated is None or k.tabulated == tabulated) and (relaxable is None or k.relaxable == relaxable)
    )
