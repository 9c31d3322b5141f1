"""A design space of ad-hoc layers on a hardware template: the model as a simulator sees layers.

A design file names a network of the zoo; a simulator's input (a SCALE-Sim topology, an oracle's
jobs) is a list of layers run one at a time on one core, each reading its operands from DRAM and
writing its result back. :func:`layers_space` lowers such a list into a
:class:`~codesign.space.DesignSpace` with no knobs, on a hardware template given as ``[hardware]``
keys, so that :class:`~codesign.model.analytical.AnalyticalModel` (see its ``for_layers``) runs
on it as on any design.
"""

from __future__ import annotations

from collections.abc import Sequence

from codesign.design import Design
from codesign.knobs import HARDWARE_KNOBS
from codesign.space import DesignSpace, lower_workload
from codesign.workload.graph import Workload


def layers_space(layers: Sequence, *, hardware: dict | None = None, schedule: dict | None = None,
                 name: str = "layers") -> DesignSpace:
    """The one-point design space of ``layers``, independent of each other, on a hardware template.

    Args:
        layers: :class:`~codesign.workload.layer.Layer` objects with distinct names; none reads
            another's output, so each is a source and a sink of the workload (its operands come
            from DRAM and its result goes back).
        hardware: ``[hardware]`` keys of a design file, one value each (defaults elsewhere).
        schedule: ``[schedule]`` keys; ``space.decode(torch.zeros((P, 0), dtype=torch.long))``
            gives ``P`` copies of the point (the first dataflow and mode listed).
        name: the workload's name (it stands where a design names its network).

    Candidates built by hand may bring other hardware values: the model evaluates them directly.
    """
    workload = Workload(name)
    for layer in layers:
        workload.add_layer(layer)
    hardware = dict(hardware or {})
    several = [knob.name for knob in HARDWARE_KNOBS if isinstance(hardware.get(knob.name), (list, tuple)) and len(hardware[knob.name]) > 1]
    if several:
        raise ValueError(f"layers_space: one value per hardware knob; {', '.join(several)} give several")
    spec = {"network": name, "batch": max(layer.N for layer in layers),
            "precision_bytes": max(layer.precision_bytes for layer in layers)}
    # Validated as a design file's sections are; the zoo check of parse_design does not apply:
    # the workload is these layers, not a network of the zoo.
    design = Design.model_validate({"workload": spec, "hardware": hardware, "schedule": dict(schedule or {}), "source": f"<{name}>"})
    lowered = lower_workload(workload)
    none = [-1] * len(lowered.names)  # no knob columns: the schedule is the template's
    return DesignSpace(design=design, workload=workload, knobs=[], lowered=lowered, dataflow_col=none, core_col=list(none))
