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

import inspect
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
    create_model,
    field_validator,
)

from codesign.errors import DesignError, UserError
from codesign.hardware import tech_tables
from codesign.hardware import carbon
from codesign.hardware.package import check_package
from codesign.knobs import HARDWARE_KNOBS, HardwareKnob
from codesign.vocab import (DATAFLOWS, DRAM_KINDS, FUSIONS, GRANULARITIES, MAPPINGS, MODES, PRECISIONS, REFINE_METHODS, SAMPLERS, SPLIT_AXES,
                            STRATEGIES, TECH_SOURCES, UNSUPPORTED)
from codesign.workload.graph import Workload
from codesign.workload.sources import build_workload
from codesign.workload.zoo import ZOO

Dataflow = Literal[DATAFLOWS]
Mode = Literal[MODES]
Metric = Annotated[str, Field(min_length=1)]  # a built-in metric (codesign.vocab.METRICS) or one a plug-in provides


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
    """``[workload]``: which network (a zoo name, ``torchvision:NAME``, ``file.py:Name`` or
    ``package.module:Name``, an ``.onnx`` file or a SCALE-Sim topology ``.csv``; paths relative to
    the design file), at which batch and precision; ``input_shape`` is one sample's input shape
    (no batch dimension) for an imported module, ``params`` its constructor's (or a zoo
    builder's) keyword arguments, ``unsupported`` what to do with an operator the importer
    cannot map (``error``, or ``skip`` and list it in the run's summary)."""

    network: Annotated[str, Field(min_length=1)]
    batch: PositiveInt = 1
    precision_bytes: Literal[PRECISIONS] = 1
    params: dict[str, int | float | str | bool] = Field(default_factory=dict)
    input_shape: Annotated[list[PositiveInt], Field(min_length=1)] | None = None
    unsupported: Literal[UNSUPPORTED] = "error"


class _HardwareFixed(_Section):
    """``[hardware]`` keys that are not knobs: fixed properties of the template."""

    sram_split: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = (0.4, 0.4, 0.2)
    dram_kind: Literal[DRAM_KINDS] = "lpddr4"
    tech: Literal[TECH_SOURCES] = "builtin"  # where energies and SRAM areas come from (codesign.hardware.tech_tables)
    dram_ports: PositiveInt = 1
    noc_hop_cycles: PositiveInt = 2
    dataflows: Knob(Dataflow) = list(DATAFLOWS)

    @field_validator("sram_split")
    @classmethod
    def _split_sums_to_one(cls, split: tuple[float, float, float]) -> tuple[float, float, float]:
        if abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"ifmap, filter and ofmap fractions must sum to 1, got {sum(split):g}")
        return split

    @field_validator("sram_split", mode="before")
    @classmethod
    def _split_floats(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
        return value

    @property
    def max_cores(self) -> int:
        return max(self.grid_rows) * max(self.grid_cols)


def _ints_are_floats(value: Any) -> Any:
    """TOML integers where floats are expected (``dram_gbps = 32``) become floats, despite strictness."""
    return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in _as_list(value)]


def _knob_field(knob: HardwareKnob) -> tuple:
    """The schema field of a registered hardware knob: a search range of its values."""
    if knob.allowed is not None:
        item = Literal[knob.allowed]
    else:
        item = {int: PositiveInt, float: PositiveFloat}[knob.value_type]
    annotation = Knob(item)
    if knob.value_type is float:
        annotation = Annotated[annotation, BeforeValidator(_ints_are_floats)]
    return annotation, Field(default=list(knob.default), description=knob.doc)


#: ``[hardware]``: the accelerator template and its ranges (the knob fields come from
#: :data:`codesign.knobs.HARDWARE_KNOBS`, one per registered knob).
HardwareSpec = create_model(
    "HardwareSpec", __base__=_HardwareFixed, __module__=__name__,
    **{knob.name: _knob_field(knob) for knob in HARDWARE_KNOBS},
)


class ScheduleSpec(_Section):
    """``[schedule]``: the scheduler's knobs."""

    dataflow: Knob(Dataflow) = list(DATAFLOWS)
    mapping: Literal[MAPPINGS] = "search"
    granularity: Literal[GRANULARITIES] = "layer"
    group_size: PositiveInt = 4
    mode: Knob(Mode) = ["layer_by_layer"]
    # Layer fusion and splitting (layer-by-layer mode; docs/model.md, "Fused stacks and split layers"):
    # fuse no boundary, every fusable one, or search each; the output rows per tile of a fused stack
    # (a knob per stack head when a list); the cores a layer is split over and along which axis.
    fusion: Literal[FUSIONS] = "none"
    tile_rows: Knob(PositiveInt) = [4]
    split: Knob(PositiveInt) = [1]
    split_axis: Knob(Literal[SPLIT_AXES]) = ["channels"]


class SearchSpec(_Section):
    """``[search]``: the optimiser's settings."""

    strategy: Literal[STRATEGIES] = "joint"  # codesign.search.strategies
    sampler: Literal[SAMPLERS] = "nsga2"  # joint strategy only
    refine: Literal[REFINE_METHODS] = "none"  # gradient refinement of the front (codesign.search.refine)
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


class CarbonSpec(_Section):
    """``[carbon]``: what the carbon metrics assume (:mod:`codesign.hardware.carbon`, after ACT, ISCA 2022):
    the carbon intensity of the fab's grid (``carbon_kg``) and of the grid the chip runs on, its lifetime,
    the fraction of it spent running the workload, and the runs per second while it does
    (``carbon_operational_kg``; none: back to back, one run per ``latency_s``)."""

    fab_intensity_g_per_kwh: PositiveFloat = carbon.FAB_INTENSITY_G_PER_KWH
    use_intensity_g_per_kwh: PositiveFloat = carbon.USE_INTENSITY_G_PER_KWH
    lifetime_years: PositiveFloat = carbon.LIFETIME_YEARS
    duty_cycle: Annotated[float, Field(gt=0, le=1)] = carbon.DUTY_CYCLE
    inferences_per_s: PositiveFloat | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _int_floats(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ClusterSpec(_Section):
    """``[cluster]``: where the slow work of a run goes (:mod:`codesign.cluster`): a Dask scheduler's
    ``tcp://HOST:PORT`` or ``local:N``; none (the default) keeps it in this process."""

    address: str | None = None


class Design(_Section):
    """A whole design file. Build it with :func:`load_design` or :func:`parse_design`."""

    workload: WorkloadSpec
    hardware: HardwareSpec = HardwareSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    objectives: ObjectivesSpec = ObjectivesSpec()
    constraints: dict[Metric, PositiveFloat] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    cost_model: CostModelSpec = CostModelSpec()
    carbon: CarbonSpec = CarbonSpec()
    cluster: ClusterSpec = ClusterSpec()
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
    the cores support and the workload builds. Whether plug-ins import and every objective and
    budget names a metric the model or a plug-in provides is checked where the evaluator is
    built (:func:`codesign.model.evaluator.build_evaluator`), before any work.
    """
    try:
        design = Design.model_validate({**raw, "source": source})
    except ValidationError as error:
        raise DesignError(_format_validation_error(source, raw, error)) from None
    _check_dataflows(design)
    _check_tech(design)
    check_package(design.hardware, source)
    _check_workload(design)
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


def _check_tech(design: Design) -> None:
    """With generated technology tables, every SRAM buffer (``sram_kib`` × its ``sram_split`` share)
    must lie inside the tables' sizes: the model interpolates them, it does not extrapolate."""
    hw = design.hardware
    if hw.tech == "builtin":
        return
    sizes = [kib * share for kib in hw.sram_kib for share in hw.sram_split]
    outside = tech_tables.check_sram_range(sizes)
    if outside is not None:
        lo, hi = outside
        raise DesignError(
            f"{design.source}: hardware.tech = {hw.tech!r}: hardware.sram_kib = {list(hw.sram_kib)} split "
            f"{list(hw.sram_split)} gives SRAM buffers of {min(sizes):g}-{max(sizes):g} KiB; the {hw.tech} tables "
            f"(data/hwcomponents/sram.csv) cover {lo:g}-{hi:g} KiB: expected sizes inside them, or hardware.tech = 'builtin'"
        )


def design_workload(design: Design) -> Workload:
    """The design's workload, from whichever source ``workload.network`` names
    (:func:`codesign.workload.sources.build_workload`; imports are cached, so the check here and
    the design space share one import)."""
    spec = design.workload
    base = Path(design.source).parent if design.source != "<memory>" else None
    return build_workload(spec.network, batch=spec.batch, precision_bytes=spec.precision_bytes, params=dict(spec.params),
                          input_shape=None if spec.input_shape is None else tuple(spec.input_shape),
                          unsupported=spec.unsupported, base=base)


def _check_zoo_params(design: Design) -> None:
    """A zoo network's parameters, named by their key paths: keys its builder takes, positive integers."""
    spec = design.workload
    accepted = [p for p in inspect.signature(ZOO[spec.network]).parameters if p not in ("batch", "precision_bytes")]
    for key, value in spec.params.items():
        where = f"{design.source}: workload.params.{key} = {value!r}"
        if key not in accepted:
            raise DesignError(f"{where}: network {spec.network!r} has no parameter {key!r}; "
                              f"expected one of {accepted} (batch and precision_bytes are keys of [workload] itself)")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DesignError(f"{where}: expected an integer greater than 0")


def _check_workload(design: Design) -> None:
    """The workload must build: a known source, parameters its builder accepts, operators it maps."""
    if design.workload.network in ZOO:
        _check_zoo_params(design)
    try:
        design_workload(design)
    except UserError as error:
        raise DesignError(f"{design.source}: workload.network = {design.workload.network!r}: {error}") from None
