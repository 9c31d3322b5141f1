"""SCALE-Sim compatibility: its topology CSVs as a :class:`Workload`, its ``.cfg`` as hardware settings.

Topology CSV (SCALE-Sim 3.0.0, ``topology_utils.py``), one header line then one layer per line,
every line ending in a comma:

* **conv form** — ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
  Num Filter, Strides,`` (an optional ninth field is an ``N:M`` sparsity ratio; only ``1:1``, dense,
  is accepted). SCALE-Sim has no padding: the ifmap is given at its padded extent, and the output
  is ``⌈(I − F + S) / S⌉`` per side. A layer whose name contains ``DP`` is depthwise: SCALE-Sim
  runs it as ``Channels`` one-channel layers; here it is one layer with ``groups = Channels``
  (``Channels · Num Filter`` output channels).
* **GEMM form** — ``Layer, M, N, K,``: an ``M × K`` by ``K × N`` product (SCALE-Sim's
  ``input_type_gemm``), here a linear layer with ``M`` tokens, ``K`` inputs and ``N`` outputs.

The form is told by the header (``M``, ``N``, ``K`` columns) or forced with ``form=``. Layers are
independent: each reads its ifmap and filter from DRAM and writes its ofmap to DRAM, as in
SCALE-Sim.

``.cfg`` (``scale_config.py``): ``[architecture_presets]`` ``ArrayHeight``, ``ArrayWidth``,
``IfmapSramSzkB``, ``FilterSramSzkB``, ``OfmapSramSzkB``, ``Dataflow``, ``Bandwidth``;
``[run_presets] InterfaceBandwidth`` (``USER``: the given bandwidth; ``CALC``: no memory stalls).
In 3.0.0 the ifmap and filter DRAM bandwidths come from ``[layout] IfmapSRAMBankBandwidth`` and
``FilterSRAMBankBandwidth``; the model has one bandwidth per operand channel, so they must equal
``Bandwidth`` when given.

Every problem raises :class:`ScaleSimFormatError` (a :class:`~codesign.errors.UserError`) naming
the file, the line or key, the value and what was expected.
"""

from __future__ import annotations

import configparser
import math
from dataclasses import dataclass
from pathlib import Path

from codesign.errors import UserError
from codesign.vocab import DATAFLOWS, one_of
from codesign.workload.graph import Workload
from codesign.workload.layer import Layer

CONV_FIELDS = ("IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels", "Num Filter", "Strides")
GEMM_FIELDS = ("M", "N", "K")
FORMS = ("auto", "conv", "gemm")


class ScaleSimFormatError(UserError, ValueError):
    """A SCALE-Sim topology or config file that cannot be read."""


@dataclass(frozen=True)
class TopologyLayer:
    """One topology line: the layer as SCALE-Sim sees it and as the model sees it."""

    name: str
    line: int
    layer: Layer
    #: SCALE-Sim's fields (conv form: ifmap h/w, filter h/w, channels, filters, stride; GEMM: M, N, K).
    fields: tuple[int, ...]
    kind: str  # "conv", "depthwise" or "gemm"


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ScaleSimFormatError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise ScaleSimFormatError(f"{path}: is a directory, expected a {what} file") from None
    except UnicodeDecodeError:
        raise ScaleSimFormatError(f"{path}: not a text file (expected a {what} CSV)") from None
    except OSError as error:
        raise ScaleSimFormatError(f"{path}: cannot read {what} file ({error.strerror})") from None


def _split(line: str) -> list[str]:
    fields = [f.strip() for f in line.split(",")]
    while fields and fields[-1] == "":
        fields.pop()
    return fields


def _positive(path: Path, lineno: int, column: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ScaleSimFormatError(f"{path}:{lineno}: {column} = {text!r}: expected a positive integer") from None
    if value < 1:
        raise ScaleSimFormatError(f"{path}:{lineno}: {column} = {text!r}: expected a positive integer")
    return value


def _detect_form(path: Path, header: list[str]) -> str:
    names = [h.lower() for h in header[1:]]
    if names[:3] == ["m", "n", "k"]:
        return "gemm"
    if len(header) >= 8:
        return "conv"
    raise ScaleSimFormatError(
        f"{path}:1: header {', '.join(header)!r}: expected SCALE-Sim's conv form "
        f"('Layer name, {', '.join(CONV_FIELDS)}') or GEMM form ('Layer, M, N, K')"
    )


def read_topology_layers(path: str | Path, *, form: str = "auto", precision_bytes: int = 1) -> list[TopologyLayer]:
    """The layers of a SCALE-Sim topology CSV, in file order (see the module docs)."""
    path = Path(path)
    if form not in FORMS:
        raise ScaleSimFormatError(f"form = {form!r}: expected one of {', '.join(FORMS)}")
    lines = _read_lines(path, "topology")
    numbered = [(i, _split(line)) for i, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise ScaleSimFormatError(f"{path}: empty topology file (expected a header line and one line per layer)")
    (_, header), rows = numbered[0], numbered[1:]
    if form == "auto":
        form = _detect_form(path, header)
    if not rows:
        raise ScaleSimFormatError(f"{path}: no layers after the header line")
    columns = GEMM_FIELDS if form == "gemm" else CONV_FIELDS
    out: list[TopologyLayer] = []
    seen: dict[str, int] = {}
    for lineno, fields in rows:
        name = fields[0] if fields else ""
        if not name:
            raise ScaleSimFormatError(f"{path}:{lineno}: empty layer name (expected 'name, {', '.join(columns)}')")
        values = fields[1:]
        extra = values[len(columns):]
        if len(values) < len(columns):
            raise ScaleSimFormatError(
                f"{path}:{lineno}: layer {name!r} has {len(values)} values, expected {len(columns)} "
                f"({', '.join(columns)})"
            )
        if extra and not (len(extra) == 1 and extra[0].replace(" ", "") in ("1:1", "")):
            raise ScaleSimFormatError(
                f"{path}:{lineno}: layer {name!r}: extra field {', '.join(extra)!r}: only a dense '1:1' "
                "sparsity ratio is supported after the last column"
            )
        ints = tuple(_positive(path, lineno, col, text) for col, text in zip(columns, values))
        if name in seen:
            raise ScaleSimFormatError(f"{path}:{lineno}: layer name {name!r} repeats line {seen[name]}: names must be unique")
        seen[name] = lineno
        try:
            if form == "gemm":
                m, n, k = ints
                layer = Layer(name, "fc", N=1, K=n, C=k, P=m, Q=1, precision_bytes=precision_bytes)
                kind = "gemm"
            else:
                ih, iw, fh, fw, ch, nf, stride = ints
                for col, f, i in (("Filter Height", fh, ih), ("Filter Width", fw, iw)):
                    if f > i:
                        raise ScaleSimFormatError(
                            f"{path}:{lineno}: layer {name!r}: {col} = {f} is larger than the ifmap ({i}); "
                            "SCALE-Sim has no padding, give the ifmap at its padded size"
                        )
                oh = math.ceil((ih - fh + stride) / stride)
                ow = math.ceil((iw - fw + stride) / stride)
                depthwise = "DP" in name
                layer = Layer(name, "conv", N=1, K=nf * (ch if depthwise else 1), C=ch, P=oh, Q=ow, R=fh, S=fw,
                              stride=stride, groups=ch if depthwise else 1, precision_bytes=precision_bytes)
                kind = "depthwise" if depthwise else "conv"
        except ValueError as error:
            if isinstance(error, ScaleSimFormatError):
                raise
            raise ScaleSimFormatError(f"{path}:{lineno}: {error}") from None
        out.append(TopologyLayer(name=name, line=lineno, layer=layer, fields=ints, kind=kind))
    return out


def read_topology(path: str | Path, *, form: str = "auto", precision_bytes: int = 1) -> Workload:
    """A SCALE-Sim topology CSV as a :class:`Workload` of independent layers, in file order."""
    workload = Workload(Path(path).stem)
    for entry in read_topology_layers(path, form=form, precision_bytes=precision_bytes):
        workload.add_layer(entry.layer)
    return workload


@dataclass(frozen=True)
class ScaleSimConfig:
    """The hardware of a SCALE-Sim ``.cfg``; ``bandwidth`` is ``None`` in CALC mode (no stalls)."""

    array_h: int
    array_w: int
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    dataflow: str
    bandwidth: float | None
    run_name: str = "scale_run"


def read_config(path: str | Path) -> ScaleSimConfig:
    """Read a SCALE-Sim ``.cfg`` (see the module docs)."""
    path = Path(path)
    text = "\n".join(_read_lines(path, "config"))
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as error:
        raise ScaleSimFormatError(f"{path}: not a SCALE-Sim config: {' '.join(str(error).split())}") from None

    def get(section: str, key: str, *, required: bool = True) -> str | None:
        if not parser.has_section(section):
            if required:
                raise ScaleSimFormatError(f"{path}: [{section}] section is missing (expected {key} in it)")
            return None
        if not parser.has_option(section, key):
            if required:
                raise ScaleSimFormatError(f"{path}: [{section}] {key} is missing")
            return None
        return parser.get(section, key).strip()

    def positive(section: str, key: str) -> int:
        text = get(section, key)
        try:
            value = int(text)
        except ValueError:
            raise ScaleSimFormatError(f"{path}: [{section}] {key} = {text!r}: expected a positive integer") from None
        if value < 1:
            raise ScaleSimFormatError(f"{path}: [{section}] {key} = {text!r}: expected a positive integer")
        return value

    arch = "architecture_presets"
    dataflow = get(arch, "Dataflow").lower()
    if dataflow not in DATAFLOWS:
        raise ScaleSimFormatError(f"{path}: [{arch}] Dataflow = {dataflow!r}: expected {one_of(DATAFLOWS)}")
    mode = (get("run_presets", "InterfaceBandwidth", required=False) or "USER").upper()
    if mode not in ("USER", "CALC"):
        raise ScaleSimFormatError(f"{path}: [run_presets] InterfaceBandwidth = {mode!r}: expected USER or CALC")
    bandwidth = None
    if mode == "USER":
        text = get(arch, "Bandwidth")
        first = text.split(",")[0].strip()
        try:
            bandwidth = float(int(first))
        except ValueError:
            raise ScaleSimFormatError(f"{path}: [{arch}] Bandwidth = {text!r}: expected a positive integer (words per cycle)") from None
        if bandwidth < 1:
            raise ScaleSimFormatError(f"{path}: [{arch}] Bandwidth = {text!r}: expected a positive integer (words per cycle)")
        for key in ("IfmapSRAMBankBandwidth", "FilterSRAMBankBandwidth"):
            bank = get("layout", key, required=False)
            if bank is not None and bank != first:
                raise ScaleSimFormatError(
                    f"{path}: [layout] {key} = {bank!r} differs from [{arch}] Bandwidth = {first!r}: SCALE-Sim 3.0.0 "
                    "takes that operand's DRAM bandwidth from it, and the model gives every operand the same one; "
                    "set them equal"
                )
    return ScaleSimConfig(
        array_h=positive(arch, "ArrayHeight"),
        array_w=positive(arch, "ArrayWidth"),
        ifmap_sram_kb=positive(arch, "IfmapSramSzkB"),
        filter_sram_kb=positive(arch, "FilterSramSzkB"),
        ofmap_sram_kb=positive(arch, "OfmapSramSzkB"),
        dataflow=dataflow,
        bandwidth=bandwidth,
        run_name=get("general", "run_name", required=False) or "scale_run",
    )
