"""The design file: one TOML file describing workload, hardware template, schedule knobs,
objectives, budgets, search settings and cost-model plug-ins.

A knob given as a list is a search range (its values are the choices); a scalar is
fixed. The schema is a set of pydantic models with unknown keys forbidden, so a
typo is an error, not a silently ignored setting. :func:`load_design` is the one
entry point: it fails with a :class:`~codesign.errors.DesignError` naming the file,
the key path, the value and what was expected, before any work is done.

The full reference of every key is in the README ("Design file reference").
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from codesign.errors import DesignError
from codesign.hardware.tech import TECH_NODES

#: Metrics the model reports; every one of them is minimised.
METRICS = ("latency_s", "energy_j", "area_mm2", "cost_usd", "power_w")
DATAFLOWS = ("ws", "os", "is")
MODES = ("layer_by_layer", "pipelined")
DRAM_KINDS = ("ddr4", "lpddr4", "hbm2")

Dataflow = Literal["ws", "os", "is"]
Mode = Literal["layer_by_layer", "pipelined"]
Metric = Annotated[str, Field(min_length=1)]  # a built-in metric (METRICS) or one a plug-in provides


def _as_list(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _unique(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError("choices must not repeat")
    return values


def Knob(item: Any) -> Any:  # noqa: N802 - reads as a type in the models below
    """A search range: a scalar (fixed) or a non-empty list of distinct choices."""
    return Annotated[list[item], BeforeValidator(_as_list), Field(min_length=1), BeforeValidator(_unique_raw)]


def _unique_raw(value: Any) -> Any:
    if isinstance(value, list):
        try:
            return _unique(value)
        except TypeError:  # unhashable items: let item validation report them
            return value
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class WorkloadSpec(_Section):
    """``[workload]``: which network, at which batch and precision."""

    network: str
    batch: PositiveInt = 1
    precision_bytes: Literal[1, 2, 4] = 1
    params: dict[str, PositiveInt] = Field(default_factory=dict)


class HardwareSpec(_Section):
    """``[hardware]``: the accelerator template and its ranges."""

    grid_rows: Knob(PositiveInt) = [1]
    grid_cols: Knob(PositiveInt) = [1]
    pe_rows: Knob(PositiveInt) = [16]
    pe_cols: Knob(PositiveInt) = [16]
    sram_kib: Knob(PositiveInt) = [256]
    sram_split: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = (0.4, 0.4, 0.2)
    dram_gbps: Knob(PositiveFloat) = [25.6]
    dram_kind: Literal["ddr4", "lpddr4", "hbm2"] = "lpddr4"
    dram_ports: PositiveInt = 1
    noc_link_gbps: Knob(PositiveFloat) = [64.0]
    noc_hop_cycles: PositiveInt = 2
    clock_ghz: Knob(PositiveFloat) = [1.0]
    node: Knob(Literal[tuple(TECH_NODES)]) = ["7nm"]
    dataflows: Knob(Dataflow) = ["ws", "os", "is"]

    @field_validator("sram_split")
    @classmethod
    def _split_sums_to_one(cls, split: tuple[float, float, float]) -> tuple[float, float, float]:
        if abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"ifmap, filter and ofmap fractions must sum to 1, got {sum(split):g}")
        return split

    # Python ints in TOML become floats here where floats are expected, without strictness.
    @field_validator("dram_gbps", "noc_link_gbps", "clock_ghz", mode="before")
    @classmethod
    def _ints_are_floats(cls, value: Any) -> Any:
        values = _as_list(value)
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]

    @field_validator("sram_split", mode="before")
    @classmethod
    def _split_floats(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
        return value

    @property
    def max_cores(self) -> int:
        return max(self.grid_rows) * max(self.grid_cols)


class ScheduleSpec(_Section):
    """``[schedule]``: the scheduler's knobs."""

    dataflow: Knob(Dataflow) = ["ws", "os", "is"]
    mapping: Literal["search", "round_robin", "single_core"] = "search"
    granularity: Literal["layer", "group", "network"] = "layer"
    group_size: PositiveInt = 4
    mode: Knob(Mode) = ["layer_by_layer"]


class SearchSpec(_Section):
    """``[search]``: the optimiser's settings."""

    strategy: Literal["joint", "sequential", "random"] = "joint"  # codesign.search.strategies
    sampler: Literal["nsga2", "nsga3", "tpe"] = "nsga2"  # joint strategy only
    refine: Literal["none", "mgda", "pcgrad"] = "none"  # gradient refinement of the front (codesign.search.refine)
    refine_starts: PositiveInt = 32  # front designs refinement starts from
    refine_steps: PositiveInt = 20  # gradient steps from each
    population: Annotated[int, Field(ge=2)] = 64
    trials: PositiveInt = 1000
    seed: Annotated[int, Field(ge=0)] = 0
    mutation_prob: Annotated[float, Field(gt=0, le=1)] | None = None
    crossover_prob: Annotated[float, Field(ge=0, le=1)] = 0.9

    @field_validator("mutation_prob", "crossover_prob", mode="before")
    @classmethod
    def _int_prob(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ObjectivesSpec(_Section):
    """``[objectives]``: what to minimise (at least one metric, no repeats)."""

    minimize: Annotated[list[Metric], Field(min_length=1)] = ["latency_s", "cost_usd"]

    @field_validator("minimize")
    @classmethod
    def _no_repeats(cls, metrics: list[str]) -> list[str]:
        return _unique(metrics)


class CostModelSpec(_Section):
    """``[cost_model]``: plug-ins (``package.module:attr`` or an entry-point name)."""

    plugins: list[str] = Field(default_factory=list)


class Design(_Section):
    """A whole design file. Build it with :func:`load_design` or :func:`parse_design`."""

    workload: WorkloadSpec
    hardware: HardwareSpec = HardwareSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    objectives: ObjectivesSpec = ObjectivesSpec()
    constraints: dict[Metric, PositiveFloat] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    cost_model: CostModelSpec = CostModelSpec()
    source: str = Field(default="<memory>", exclude=True)

    @field_validator("constraints", mode="before")
    @classmethod
    def _int_bounds(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value



def _describe_location(raw: dict, loc: tuple) -> tuple[str, Any]:
    """Key path as ``a.b[2]`` and the raw value found there (``<missing>`` if absent)."""
    path, value, node = "", "<missing>", raw
    for part in loc:
        if isinstance(part, int):
            if not isinstance(node, list):  # a scalar knob validated as a one-item list
                continue
            path += f"[{part}]"
            node = node[part] if part < len(node) else "<missing>"
        else:
            path += ("." if path else "") + str(part)
            node = node.get(part, "<missing>") if isinstance(node, dict) else "<missing>"
    value = node
    return path, value


def _format_validation_error(source: str, raw: dict, error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        path, value = _describe_location(raw, loc)
        expected = err["msg"]
        if err["type"] == "extra_forbidden":
            expected = "no such key (check the spelling; see the README's design-file reference)"
        elif err["type"] == "missing":
            expected = "this key is required"
        elif expected.startswith("Value error, "):
            expected = expected[len("Value error, "):]
        where = path or "<top level>"
        shown = "" if value == "<missing>" else f" = {value!r}"
        lines.append(f"{source}: {where}{shown}: {expected}")
    return "\n".join(lines)


def parse_design(raw: dict, *, source: str = "<memory>") -> Design:
    """Validate a design given as a dict (as read from TOML).

    Besides the schema this checks what spans sections: the schedule's dataflows are ones
    the cores support, the workload builds, plug-ins import, and every objective and budget
    names a metric the model or a plug-in provides.
    """
    try:
        design = Design.model_validate({**raw, "source": source})
    except ValidationError as error:
        raise DesignError(_format_validation_error(source, raw, error)) from None
    _check_dataflows(design)
    _check_workload(design)
    _check_metrics(design)
    return design


def load_design(path: str | Path) -> Design:
    """Read and validate a design file; raise :class:`DesignError` on any problem."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DesignError(f"{source}: no such design file") from None
    except OSError as error:
        raise DesignError(f"{source}: cannot read design file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise DesignError(f"{source}: not a UTF-8 text file (byte {error.start}: {error.reason}); a design file is TOML") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DesignError(f"{source}: not valid TOML: {error}") from None
    return parse_design(raw, source=source)


def _check_dataflows(design: Design) -> None:
    supported = design.hardware.dataflows
    for i, dataflow in enumerate(design.schedule.dataflow):
        if dataflow not in supported:
            raise DesignError(
                f"{design.source}: schedule.dataflow[{i}] = {dataflow!r}: not supported by the cores; "
                f"expected one of hardware.dataflows = {supported}"
            )


def _check_workload(design: Design) -> None:
    """The workload must build: a known network with parameters its builder accepts."""
    import inspect

    from codesign.workload.zoo import ZOO, build_workload

    spec = design.workload
    if spec.network not in ZOO:
        raise DesignError(f"{design.source}: workload.network = {spec.network!r}: one of the valid networks: {', '.join(sorted(ZOO))}")
    accepted = [p for p in inspect.signature(ZOO[spec.network]).parameters if p not in ("batch", "precision_bytes")]
    for key, value in spec.params.items():
        if key not in accepted:
            raise DesignError(
                f"{design.source}: workload.params.{key} = {value!r}: network {spec.network!r} has no parameter {key!r}; "
                f"expected one of {accepted} (batch and precision_bytes are keys of [workload] itself)"
            )
    try:
        build_workload(spec.network, batch=spec.batch, precision_bytes=spec.precision_bytes, **spec.params)
    except (ValueError, TypeError) as error:
        raise DesignError(f"{design.source}: workload.params = {dict(spec.params)!r}: {error}") from None


def _check_metrics(design: Design) -> None:
    """Objectives and budgets must name a built-in metric or one a plug-in provides."""
    from codesign.model.plugins import load_plugin

    known = list(METRICS)
    for spec in design.cost_model.plugins:
        known += [m for m in load_plugin(spec, source=design.source).provides if m not in known]
    for i, name in enumerate(design.objectives.minimize):
        if name not in known:
            raise DesignError(f"{design.source}: objectives.minimize[{i}] = {name!r}: a metric the model or a plug-in provides {known}")
    for name in design.constraints:
        if name not in known:
            raise DesignError(f"{design.source}: constraints.{name}: a metric the model or a plug-in provides {known}")
