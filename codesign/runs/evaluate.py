"""``codesign evaluate``: the metrics of one exact chip and schedule, with its per-layer schedule.

The design file's search ranges are each taken at one value: the one a setting gives
(``hardware.pe_rows=32``, ``schedule.dataflow=os``; key paths of the design file, values in
TOML syntax, a bare word read as a string), else the range's first choice. Every layer then runs
with the one dataflow; a ``search`` mapping becomes ``round_robin`` (layers dealt over the cores
in topological order), since a searched mapping has no first choice. The built-in model and the
design's plug-ins evaluate it, as in a search; the per-layer table is the model's schedule
(:func:`layer_schedule`, which ``codesign show`` draws too).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from codesign.argtypes import toml_value
from codesign.design import Design, load_design, parse_design
from codesign.errors import ArgumentError
from codesign.knobs import HARDWARE_KNOBS
from codesign.model.evaluation import GB
from codesign.model.evaluator import Evaluator, build_evaluator
from codesign.model.fusion import tile_times
from codesign.runs.energy import design_energy_parts
from codesign.space import DesignSpace
from codesign.vocab import DATAFLOWS


def parse_setting(text: str) -> tuple[list[str], Any]:
    """``key.path=value`` → (key path, value): the value in TOML syntax, else the text itself."""
    key, sep, value = text.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or len(path) < 2 or not all(path):
        raise ArgumentError("set", text, "expected SECTION.KEY=VALUE, e.g. hardware.pe_rows=32 or schedule.dataflow=os")
    return path, toml_value(value)


def _apply(raw: dict, settings: list[str]) -> dict:
    raw = copy.deepcopy(raw)
    for text in settings:
        path, value = parse_setting(text)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ArgumentError("set", text, f"{'.'.join(path[:-1])} is not a section of the design file")
            node = child
        node[path[-1]] = value
    return raw


def fixed_design(path: str | Path, settings: list[str] = ()) -> Design:
    """The design file ``path`` with every search range taken at one value (see the module docs)."""
    source = str(path)
    ranged = load_design(path)
    raw = _apply(ranged.model_dump(mode="json", exclude_defaults=True), settings)
    design = parse_design(raw, source=source)
    hardware = raw.setdefault("hardware", {})
    for knob in HARDWARE_KNOBS:
        hardware[knob.name] = getattr(design.hardware, knob.name)[0]
    schedule = raw.setdefault("schedule", {})
    schedule["dataflow"] = design.schedule.dataflow[0]
    schedule["mode"] = design.schedule.mode[0]
    if design.schedule.mapping == "search":
        schedule["mapping"] = "round_robin"
    return parse_design(raw, source=source)


def layer_schedule(space: DesignSpace, evaluator: Evaluator, row: torch.Tensor) -> pd.DataFrame:
    """One design's per-layer schedule (``row``: its integer row ``[1, D]``): core, dataflow,
    start and end, compute, stall and vector cycles, DRAM bytes and the layer's own energy
    (MACs, vector work, SRAM and DRAM; layer by layer, NoC transfers not included). With fusion,
    ``stack`` numbers the fused stacks (empty for a layer in none) and ``tiles`` gives a stack's
    tiles; with splitting, ``split`` the cores a layer runs on and ``parts`` which."""
    model = evaluator.model
    candidates = space.decode(row.to(model.device), dtype=model.dtype)
    detail = model.evaluate(candidates, rows=row.to(model.device), detail=True).layers
    plan = model.schedule_plan(candidates)
    energy = model.layer_costs(candidates, "batch", plan=plan).energy_j
    names = space.lowered.names
    layers = [space.workload.nodes[n]["layer"] for n in names]
    frame = pd.DataFrame({
        "layer": names,
        "op": [layer.fn or layer.op for layer in layers],
        "macs": [layer.macs for layer in layers],
        "core": candidates.core[0].tolist(),
        "dataflow": ["-" if layer.op == "vector" else DATAFLOWS[int(d)] for layer, d in zip(layers, candidates.dataflow[0].tolist())],
        "start_s": detail["start_s"][0].tolist(),
        "end_s": detail["end_s"][0].tolist(),
        "compute_cycles": detail["compute_cycles"][0].tolist(),
        "stall_cycles": detail["stall_cycles"][0].tolist(),
        "total_cycles": detail["total_cycles"][0].tolist(),
    })
    if "vector_cycles" in detail:
        frame.insert(frame.columns.get_loc("stall_cycles"), "vector_cycles", detail["vector_cycles"][0].tolist())
    frame["dram_bytes"] = detail["dram_bytes"][0].tolist()
    frame["energy_j"] = energy[0].tolist()
    if "fused" in plan:
        fused_in, fused_out = plan["fused"][:, 0].tolist(), plan["fused_out"][:, 0].tolist()
        stacks, number = [], 0
        for into, out in zip(fused_in, fused_out):
            number += out and not into  # a stack's first layer
            stacks.append(str(number) if into or out else "")
        frame["stack"] = stacks
        frame["tiles"] = [int(t) if s else 1 for t, s in zip(detail["tiles"][0].tolist(), stacks)]
    if "split" in plan:
        frame["split"] = [int(k) for k in plan["split"][:, 0].tolist()]
        cores = plan["parts"][:, 0].tolist()  # [L, parts]: each layer's core first
        frame["parts"] = [",".join(str(c) for c in dict.fromkeys(row)) for row in cores]
    return frame


def tile_schedule(space: DesignSpace, evaluator: Evaluator, row: torch.Tensor, schedule: pd.DataFrame) -> pd.DataFrame | None:
    """One fused or split design's schedule tile by tile (``schedule``: its :func:`layer_schedule`):
    a row per tile of each layer and core it runs on (``part`` 0 its own core, then a split layer's
    other parts), with ``tile``, ``start_s``, ``end_s``, ``dataflow`` and ``stack``; a layer in no
    stack is one tile. The tiles' times are :func:`~codesign.model.fusion.tile_times`' (the list
    schedule's closed form). ``None`` for a design without fusion or splitting."""
    model = evaluator.model
    ft = model.fusion_tables
    if ft is None:
        return None
    candidates = space.decode(row.to(model.device), dtype=model.dtype)
    plan = model.schedule_plan(candidates)
    L = len(schedule)
    fused = plan["fused"][:, 0].tolist() if "fused" in plan else [False] * L
    fused_out = plan["fused_out"][:, 0].tolist() if "fused" in plan else [False] * L
    seconds = 1.0 / (float(candidates.clock_ghz[0]) * GB)
    transfer, _, latency = model.transfers(candidates, latency=True)
    edge = {l: j for l, j in zip(ft.fusable, ft.fused_input)}
    times = tile_times(ft, fused=fused, fused_out=fused_out, tiles=schedule["tiles"].tolist() if "tiles" in schedule else [1] * L,
                       cycles=(schedule["total_cycles"] * seconds).tolist(), start=schedule["start_s"].tolist(),
                       finish=schedule["end_s"].tolist(), transfer={l: float(transfer[0, l, j]) * seconds for l, j in edge.items()},
                       latency={l: float(latency[0, l, j]) * seconds for l, j in edge.items()})
    stacks = schedule["stack"].tolist() if "stack" in schedule else [""] * L
    parts = schedule["parts"].astype(str).tolist() if "parts" in schedule else [str(c) for c in schedule["core"]]
    rows = [dict(layer=schedule["layer"].iloc[l], core=int(core), part=i, tile=k, start_s=s, end_s=e, dataflow=schedule["dataflow"].iloc[l],
                 stack=stacks[l])
            for l, (starts, ends) in enumerate(times) for i, core in enumerate(parts[l].split(","))
            for k, (s, e) in enumerate(zip(starts, ends))]
    return pd.DataFrame(rows)


def stack_cores(schedule: pd.DataFrame) -> dict[str, list[int]]:
    """The fused stacks of a :func:`layer_schedule`: stack number → the cores its layers run on, in
    the layers' order (empty without fusion)."""
    stacks: dict[str, list[int]] = {}
    if "stack" in schedule:
        for core, stack in zip(schedule["core"], schedule["stack"].astype(str)):
            if stack and int(core) not in stacks.setdefault(stack, []):
                stacks[stack].append(int(core))
    return stacks


def _fusion_settings(space: DesignSpace) -> dict:
    """The design's fusion and split settings, when it fuses or splits layers (nothing otherwise)."""
    sched, out = space.design.schedule, {}
    if space.fusion:
        out.update(fusion=sched.fusion, tile_rows=sched.tile_rows[0])
    if space.splitting:
        out.update(split=sched.split[0], split_axis=sched.split_axis[0])
    return out


def evaluate_design(path: str | Path, settings: list[str] = (), *, device: str = "cpu") -> dict[str, Any]:
    """The metrics, energy by component (``energy_parts``: ``energy_mac_j``, ...; the built-in model's)
    and per-layer schedule of the design file ``path`` at one value per range (``settings``:
    ``key.path=value`` strings). A JSON-ready object."""
    design = fixed_design(path, settings)
    space, evaluator = build_evaluator(design, device=device)
    row = torch.zeros((1, space.dimension), dtype=torch.long)
    values, errors = evaluator.evaluate_rows(row)
    hardware = {knob.name: getattr(design.hardware, knob.name)[0] for knob in HARDWARE_KNOBS}
    schedule = layer_schedule(space, evaluator, row)
    return {
        "design": design.source,
        "workload": design.workload.network,
        "hardware": hardware,
        "schedule": {"dataflow": design.schedule.dataflow[0], "mode": design.schedule.mode[0], "mapping": design.schedule.mapping,
                     **_fusion_settings(space)},
        "metrics": {name: float(v) for name, v in zip(evaluator.metric_names, values[0].tolist())},
        "energy_parts": design_energy_parts(evaluator.model, space, row),
        "failed": errors[0],
        "layers": schedule.to_dict(orient="records"),
    }
