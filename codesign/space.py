"""The design space: which knobs are tunable, their Optuna distributions, and the lowering
of the workload graph into index tensors.

One :class:`DesignSpace` is built per design file. It owns

* the knobs: hardware knobs (``hw.<field>``, one per hardware field given as a list)
  and scheduler knobs (``sched.mode``, ``sched.dataflow.<layer|group>``,
  ``sched.core.<layer|group>``; with fusion and splitting ``sched.fuse.<unit>`` for units with a
  fusable boundary, ``sched.tile.<unit>`` for units that can head a fused stack,
  ``sched.split.<unit>`` and ``sched.split_axis.<unit>``), each with its Optuna distribution;
* the encoding of a trial's parameters as one integer row (a choice index per
  categorical knob, the core slot per mapping knob), so that a generation of
  ``P`` candidates is a ``[P, D]`` tensor;
* the lowering of the workload DAG, done once: per-layer loop bounds and tensor
  sizes ``[L]``, and padded predecessor lists ``[L, max_preds]``.

A core slot is mapped onto the candidate's own core count as ``slot mod n_cores``
(the grid is itself a knob), and :meth:`DesignSpace.canonical` applies that, so two
rows that mean the same design compare equal and are evaluated once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass, replace
from functools import cached_property
from typing import Any

import optuna
import torch

from codesign.design import Design, design_workload
from codesign.errors import DesignError
from codesign.knobs import HARDWARE_KNOBS, HardwareKnob, hardware_knob
from codesign.packing import PackedForm
from codesign.vocab import DATAFLOWS, MODES
from codesign.workload.graph import Workload, check_workload, topological_order

#: Hardware fields that may be knobs, in the order they take in a row (the knob registry's order).
HW_KNOB_FIELDS = tuple(knob.name for knob in HARDWARE_KNOBS)


@dataclass(frozen=True)
class Knob:
    """One searchable parameter.

    Args:
        name: the Optuna parameter name (``hw.pe_rows``, ``sched.core.layer1.0.conv1``).
        choices: the values, for a categorical knob; ``None`` for a core slot.
        high: largest core slot (inclusive), for a core-slot knob.
        family: the knob family (``sched.core``) of a per-unit knob (``sched.core.<unit>``), which
            a stored trial holds packed (:mod:`codesign.packing`); ``None`` for a scalar knob.
    """

    name: str
    choices: tuple | None = None
    high: int = 0
    family: str | None = None

    @property
    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        return optuna.distributions.IntDistribution(0, self.high)

    def encode(self, value: Any) -> int:
        return self.choices.index(value) if self.choices is not None else int(value)

    def decode(self, code: int) -> Any:
        return self.choices[code] if self.choices is not None else int(code)


@dataclass
class LoweredWorkload:
    """The workload DAG as tensors, in topological order (layer ``l`` is row/column ``l``).

    Shapes: ``[L]`` per-layer vectors; ``preds``/``pred_bytes``/``pred_mask`` are
    ``[L, max_preds]`` (padding has ``preds = 0``, ``pred_mask = False``).
    """

    names: list[str]
    gemm_m: torch.Tensor  # output pixels of the whole batch, N·P·Q
    gemm_m1: torch.Tensor  # rows of each GEMM for one sample, P·Q
    gemm_n: torch.Tensor
    gemm_k: torch.Tensor
    groups: torch.Tensor  # independent GEMMs of the whole batch
    groups1: torch.Tensor  # independent GEMMs of one sample
    macs: torch.Tensor
    ifmap_bytes: torch.Tensor  # whole batch
    filter_bytes: torch.Tensor
    ofmap_bytes: torch.Tensor  # whole batch
    precision_bytes: torch.Tensor
    has_weights: torch.Tensor  # bool
    is_vector: torch.Tensor  # bool: a vector layer (no MACs, runs on the vector unit)
    vector_work: torch.Tensor  # vector-unit operations of the whole batch (a vector layer's, or a MAC layer's epilogue's)
    side_bytes: torch.Tensor  # whole batch: bytes a MAC layer's epilogue reads besides its output (a residual operand)
    is_source: torch.Tensor  # bool: reads the network input from DRAM
    is_sink: torch.Tensor  # bool: writes a network output to DRAM
    preds: torch.Tensor  # long
    pred_bytes: torch.Tensor
    pred_mask: torch.Tensor  # bool
    batch: int
    # Layer fusion (docs/model.md, "Fused stacks and split layers"): whether the boundary into layer l
    # can be fused (layer l − 1 feeds it and nothing else; see _fusable), each layer's output
    # rows, and the input rows beyond a tile its first output rows need (R − stride, at least 0).
    fusable: torch.Tensor | None = None  # bool
    out_rows: torch.Tensor | None = None
    halo_rows: torch.Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "LoweredWorkload":
        moved = {}
        for name, value in self.__dict__.items():
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
            moved[name] = value
        return LoweredWorkload(**moved)


def lower_workload(workload: Workload, *, dtype: torch.dtype = torch.float64) -> LoweredWorkload:
    """Lower a workload graph to index tensors (once per design space)."""
    order = topological_order(workload)
    index = {name: i for i, name in enumerate(order)}
    layers = [workload.nodes[n]["layer"] for n in order]
    batch = max(layer.N for layer in layers)
    max_preds = max([workload.in_degree(n) for n in order] + [1])
    preds = torch.zeros(len(order), max_preds, dtype=torch.long)
    pred_bytes = torch.zeros(len(order), max_preds, dtype=dtype)
    pred_mask = torch.zeros(len(order), max_preds, dtype=torch.bool)
    for v, name in enumerate(order):
        for j, (src, _, data) in enumerate(sorted(workload.in_edges(name, data=True), key=lambda e: index[e[0]])):
            preds[v, j], pred_bytes[v, j], pred_mask[v, j] = index[src], data["bytes"], True

    def vec(values):
        return torch.tensor(values, dtype=dtype)

    return LoweredWorkload(
        names=order,
        gemm_m=vec([layer.gemm_m for layer in layers]),
        gemm_m1=vec([layer.P * layer.Q for layer in layers]),
        gemm_n=vec([layer.gemm_n for layer in layers]),
        gemm_k=vec([layer.gemm_k for layer in layers]),
        groups=vec([layer.gemm_groups for layer in layers]),
        groups1=vec([layer.groups for layer in layers]),
        macs=vec([layer.macs for layer in layers]),
        ifmap_bytes=vec([layer.ifmap_elems * layer.precision_bytes for layer in layers]),
        filter_bytes=vec([layer.filter_elems * layer.precision_bytes for layer in layers]),
        ofmap_bytes=vec([layer.ofmap_elems * layer.precision_bytes for layer in layers]),
        precision_bytes=vec([layer.precision_bytes for layer in layers]),
        has_weights=torch.tensor([layer.has_weights for layer in layers]),
        is_vector=torch.tensor([layer.is_vector for layer in layers]),
        vector_work=vec([layer.vector_work for layer in layers]),
        side_bytes=vec([layer.side_elems * layer.precision_bytes for layer in layers]),
        # A matmul's inputs are both activations; a layer with no producer reads the network input.
        is_source=torch.tensor([workload.in_degree(n) == 0 for n in order]),
        is_sink=torch.tensor([workload.out_degree(n) == 0 for n in order]),
        preds=preds,
        pred_bytes=pred_bytes,
        pred_mask=pred_mask,
        batch=batch,
        fusable=torch.tensor([_fusable(workload, order, index, v) for v in range(len(order))]),
        out_rows=vec([layer.P for layer in layers]),
        halo_rows=vec([max(layer.R - layer.stride, 0) if layer.op == "conv" else 0 for layer in layers]),
    )


def _fusable(workload: Workload, order: list[str], index: dict, v: int) -> bool:
    """Whether the boundary into layer ``v`` can be fused: layer ``v − 1`` feeds it and nothing
    else (a MAC layer may have other inputs, e.g. a residual side input; a vector layer may not)."""
    name = order[v]
    preds = [index[p] for p in workload.predecessors(name)]
    alone = preds == [v - 1] or not workload.nodes[name]["layer"].is_vector
    return v > 0 and v - 1 in preds and alone and list(workload.successors(order[v - 1])) == [name]


def _n_cores(self) -> torch.Tensor:
    return self.grid_rows * self.grid_cols


def _len(self) -> int:
    return self.pe_rows.shape[0]


#: A population of decoded candidates, every field a tensor with leading dim ``P``: one ``[P]``
#: field per registered hardware knob (:data:`codesign.knobs.HARDWARE_KNOBS`: ``grid_rows``,
#: ``grid_cols``, ``pe_rows``, ``pe_cols``, ``sram_kib``, ``dram_gbps``, ``noc_link_gbps``,
#: ``clock_ghz``, ``node`` (an index into :attr:`DesignSpace.node_names`), ...), then
#: ``dataflow`` (0 = ws, 1 = os, 2 = is) and ``core`` (row-major core id, already reduced modulo
#: ``n_cores``) ``[P, L]``, and ``pipelined``, a bool ``[P]``. Fusion and splitting, when the design
#: has them (``None`` otherwise), as codes ``[P, L]``: ``fuse`` (bool: fuse the boundary into the
#: layer, as asked), ``tile`` (index into ``schedule.tile_rows``: output rows per tile of a stack
#: the layer heads) and ``split`` (index into :meth:`DesignSpace.split_options`: cores and axis).
Candidates = make_dataclass(
    "Candidates",
    [(knob.name, torch.Tensor) for knob in HARDWARE_KNOBS] + [("dataflow", torch.Tensor), ("core", torch.Tensor), ("pipelined", torch.Tensor)]
    + [(name, torch.Tensor | None, field(default=None)) for name in ("fuse", "tile", "split")],
    namespace={"n_cores": property(_n_cores), "__len__": _len, "__module__": __name__},
)
Candidates.__doc__ = """A population of decoded candidates: one ``[P]`` tensor per hardware knob of the registry,
``dataflow`` and ``core`` ``[P, L]``, ``pipelined`` ``[P]``, and the fusion and split fields ``[P, L]``
or ``None`` (see the comment above its definition)."""


@dataclass
class DesignSpace:
    """Knobs, encoding and the lowered workload of one design file.

    Build it with :meth:`from_design`.
    """

    design: Design
    workload: Workload
    knobs: list[Knob]
    lowered: LoweredWorkload
    # per layer: column of its dataflow / core knob in a row, or -1 when not searched
    dataflow_col: list[int] = field(default_factory=list)
    core_col: list[int] = field(default_factory=list)
    # per layer: column of its fuse / tile / split / split-axis knob (-1: fixed, see schedule_cols)
    fuse_col: list[int] = field(default_factory=list)
    tile_col: list[int] = field(default_factory=list)
    split_col: list[int] = field(default_factory=list)
    axis_col: list[int] = field(default_factory=list)

    @property
    def fusion(self) -> bool:
        """Whether the design may fuse a boundary (``fusion`` not ``none`` and some boundary fusable)."""
        return self.design.schedule.fusion != "none" and bool(self.lowered.fusable.any())

    @property
    def splitting(self) -> bool:
        """Whether a layer may be split over several cores."""
        return max(self.design.schedule.split) > 1

    @property
    def split_options(self) -> list[tuple[int, str]]:
        """Each ``(cores, axis)`` a layer may be split as; ``Candidates.split`` indexes this list."""
        sched = self.design.schedule
        return [(k, axis) for k in sched.split for axis in sched.split_axis]

    @classmethod
    def from_design(cls, design: Design, *, workload: Workload | None = None) -> "DesignSpace":
        """The design space of ``design``; ``workload`` (a graph built by hand) replaces the network
        the design file names, for layers that no source describes."""
        if workload is None:
            workload = design_workload(design)
        else:
            check_workload(workload)
        lowered = lower_workload(workload)
        hw, sched = design.hardware, design.schedule
        knobs: list[Knob] = []
        for name in HW_KNOB_FIELDS:
            choices = getattr(hw, name)
            if len(choices) > 1:
                knobs.append(Knob(f"hw.{name}", tuple(choices)))
        if len(sched.mode) > 1:
            knobs.append(Knob("sched.mode", tuple(sched.mode)))

        names = lowered.names
        if sched.granularity == "layer":
            unit_of = list(range(len(names)))
            unit_names = names
        elif sched.granularity == "group":
            unit_of = [i // sched.group_size for i in range(len(names))]
            unit_names = [f"g{g}" for g in range(unit_of[-1] + 1)]
        else:
            unit_of = [0] * len(names)
            unit_names = [None]

        def per_unit(prefix: str, make, where=None) -> list[int]:
            """A knob per unit (per unit having a layer in ``where``, when given); each layer's column (-1: none)."""
            cols = []
            for u, unit_name in enumerate(unit_names):
                if where is not None and not any(where[i] for i in range(len(names)) if unit_of[i] == u):
                    cols.append(-1)
                    continue
                knob_name = prefix if unit_name is None else f"{prefix}.{unit_name}"
                cols.append(len(knobs))
                knob = make(knob_name)
                knobs.append(knob if unit_name is None else replace(knob, family=prefix))
            return [cols[u] for u in unit_of]

        dataflow_col = [-1] * len(names)
        if len(sched.dataflow) > 1:
            dataflow_col = per_unit("sched.dataflow", lambda n: Knob(n, tuple(sched.dataflow)))
        core_col = [-1] * len(names)
        if sched.mapping == "search" and hw.max_cores > 1:
            core_col = per_unit("sched.core", lambda n: Knob(n, None, hw.max_cores - 1))
        cols = _schedule_knobs(design, lowered, per_unit)
        return cls(design=design, workload=workload, knobs=knobs, lowered=lowered, dataflow_col=dataflow_col, core_col=core_col, **cols)

    # --- Optuna side ---------------------------------------------------------------------
    @property
    def dimension(self) -> int:
        return len(self.knobs)

    @property
    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {knob.name: knob.distribution for knob in self.knobs}

    @property
    def node_names(self) -> list[str]:
        return list(self.design.hardware.node)

    @cached_property
    def packed(self) -> PackedForm:
        """How a stored trial holds these knobs: scalar ones as params, per-unit ones packed."""
        return PackedForm(self.knobs)

    def encode(self, params: dict[str, Any]) -> list[int]:
        """A trial's params (every knob) → one integer row ``[D]``; a stored trial: ``packed.row``."""
        return [knob.encode(params[knob.name]) for knob in self.knobs]

    def decode_params(self, row: list[int]) -> dict[str, Any]:
        """One integer row → the trial's params."""
        return {knob.name: knob.decode(int(code)) for knob, code in zip(self.knobs, row)}

    # --- tensor side ---------------------------------------------------------------------
    def _hw_values(self, rows: torch.Tensor, knob: HardwareKnob | str, dtype: torch.dtype) -> torch.Tensor:
        """``[P]`` values of hardware knob ``knob`` (a knob column, or the fixed value)."""
        if isinstance(knob, str):
            knob = hardware_knob(knob)
        choices = getattr(self.design.hardware, knob.name)
        if knob.tensor == "index":
            table = torch.arange(len(choices), dtype=torch.long, device=rows.device)
        else:
            table = torch.tensor(choices, dtype=torch.long if knob.tensor == "long" else dtype, device=rows.device)
        col = self._hw_col.get(knob.name)
        if col is None:
            return table[0].expand(rows.shape[0])
        return table[rows[:, col]]

    @cached_property
    def _hw_col(self) -> dict[str, int]:
        """Row column of each searched hardware knob, by field name."""
        return {k.name[3:]: i for i, k in enumerate(self.knobs) if k.name.startswith("hw.")}

    def decode(self, rows: torch.Tensor, *, dtype: torch.dtype = torch.float64) -> Candidates:
        """Integer rows ``[P, D]`` → :class:`Candidates` on ``rows.device``."""
        rows = rows.to(torch.long)
        P, L = rows.shape[0], len(self.lowered.names)
        hardware = {knob.name: self._hw_values(rows, knob, dtype) for knob in HARDWARE_KNOBS}
        n_cores = hardware["grid_rows"] * hardware["grid_cols"]
        sched = self.design.schedule

        df_codes = torch.tensor([DATAFLOWS.index(d) for d in sched.dataflow], device=rows.device)
        dataflow = self._per_layer(rows, self.dataflow_col, df_codes, P, L)
        if sched.mapping == "search" and self.core_col[0] >= 0:
            core = rows[:, torch.tensor(self.core_col, device=rows.device)] % n_cores[:, None]
        elif sched.mapping == "round_robin":
            core = torch.arange(L, device=rows.device).expand(P, L) % n_cores[:, None]
        else:
            core = torch.zeros(P, L, dtype=torch.long, device=rows.device)
        mode_codes = torch.tensor([MODES.index(m) for m in sched.mode], device=rows.device)
        mode_col = next((i for i, k in enumerate(self.knobs) if k.name == "sched.mode"), None)
        mode = mode_codes[0].expand(P) if mode_col is None else mode_codes[rows[:, mode_col]]
        return Candidates(
            **hardware,
            dataflow=dataflow,
            core=core,
            pipelined=mode == MODES.index("pipelined"),
            **self._fusion_fields(rows, P, L, dtype),
        )

    def _fusion_fields(self, rows: torch.Tensor, P: int, L: int, dtype: torch.dtype) -> dict:
        """``fuse``, ``tile`` and ``split`` codes ``[P, L]`` of the rows (none without fusion or splitting)."""
        out = {}
        if self.fusion:
            fusable = self.lowered.fusable.to(rows.device)
            if self.design.schedule.fusion == "all":
                out["fuse"] = fusable.expand(P, L)
            else:  # a knob per unit with a fusable boundary: fused where asked, and fusable
                out["fuse"] = (self._codes(rows, self.fuse_col, P, L) != 0) & fusable
            out["tile"] = self._codes(rows, self.tile_col, P, L)
        if self.splitting:
            out["split"] = self._codes(rows, self.split_col, P, L) * len(self.design.schedule.split_axis) + self._codes(rows, self.axis_col, P, L)
        return out

    @staticmethod
    def _codes(rows: torch.Tensor, cols: list[int], P: int, L: int) -> torch.Tensor:
        """Each layer's knob code ``[P, L]`` (long): its column's, or 0 where it has none."""
        if all(c < 0 for c in cols):
            return torch.zeros((), dtype=torch.long, device=rows.device).expand(P, L)
        index = torch.tensor([max(c, 0) for c in cols], device=rows.device)
        return torch.where(torch.tensor([c >= 0 for c in cols], device=rows.device), rows[:, index].long(), 0)

    @staticmethod
    def _per_layer(rows: torch.Tensor, cols: list[int], codes: torch.Tensor, P: int, L: int) -> torch.Tensor:
        if cols[0] < 0:
            return codes[0].expand(P, L)
        return codes[rows[:, torch.tensor(cols, device=rows.device)]]

    def canonical(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows with core slots reduced modulo the candidate's core count: equal rows mean equal designs."""
        rows = rows.to(torch.long).clone()
        core_cols = sorted({c for c in self.core_col if c >= 0})
        if core_cols:
            n_cores = self._hw_values(rows, "grid_rows", torch.float64) * self._hw_values(rows, "grid_cols", torch.float64)
            idx = torch.tensor(core_cols, device=rows.device)
            rows[:, idx] = rows[:, idx] % n_cores[:, None]
        return rows


def take(candidates: Candidates, index: torch.Tensor) -> Candidates:
    """The candidates at ``index`` (a long tensor ``[P']``), every field sliced along dim 0."""
    return Candidates(**{f.name: None if getattr(candidates, f.name) is None else getattr(candidates, f.name)[index]
                         for f in fields(candidates)})


def _schedule_knobs(design: Design, lowered: LoweredWorkload, per_unit) -> dict:
    """The fusion and split knobs of a design (``per_unit`` adds them to the knob list) and each
    layer's columns: ``fuse_col``, ``tile_col``, ``split_col``, ``axis_col`` (-1 where none)."""
    sched, hw = design.schedule, design.hardware
    L = len(lowered.names)
    none = [-1] * L
    cols = dict(fuse_col=none, tile_col=none, split_col=none, axis_col=none)
    fusable = lowered.fusable.tolist()
    if sched.fusion != "none" and any(fusable):
        if sched.fusion == "search":
            cols["fuse_col"] = per_unit("sched.fuse", lambda n: Knob(n, (False, True)), where=fusable)
        if len(sched.tile_rows) > 1:  # layers whose next boundary is fusable can head a stack
            heads = fusable[1:] + [False]
            cols["tile_col"] = per_unit("sched.tile", lambda n: Knob(n, tuple(sched.tile_rows)), where=heads)
    if max(sched.split) > 1:
        smallest = min(hw.grid_rows) * min(hw.grid_cols)
        if max(sched.split) > smallest:
            raise DesignError(f"{design.source}: schedule.split: a layer cannot be split over more cores than the "
                              f"smallest grid has ({smallest}), got {max(sched.split)}")
        if len(sched.split) > 1:
            cols["split_col"] = per_unit("sched.split", lambda n: Knob(n, tuple(sched.split)))
        if len(sched.split_axis) > 1:
            cols["axis_col"] = per_unit("sched.split_axis", lambda n: Knob(n, tuple(sched.split_axis)))
    return cols
