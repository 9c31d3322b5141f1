"""An oracle's query and answer: one GEMM of a layer on one systolic array, and its cycles.

A query is a :class:`LayerJob` — one GEMM (one group of a grouped layer) with its loop bounds,
its convolution form where it has one, the array ``H × W``, the dataflow, the three SRAM
partitions and the DRAM bandwidth — and the answer is a :class:`LayerResult` (total cycles, and
compute / stall cycles when the oracle reports them). A job's canonical JSON is its cache key
(:mod:`codesign.oracles.cache`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from codesign.vocab import DATAFLOWS

UNLIMITED_BANDWIDTH = 1e12  # bytes per cycle that stand for "no DRAM bound" (SCALE-Sim's CALC mode)


@dataclass(frozen=True)
class LayerJob:
    """One oracle query: one GEMM of a layer on one systolic array.

    A layer with ``G`` groups (or a batched matmul) is ``G`` identical GEMMs run one after
    the other; a job is one of them and the layer's cycles are ``G ×`` the job's.

    Attributes:
        kind: ``conv`` (a convolution of batch 1, with its window form below) or ``gemm``.
        M, N, K: GEMM rows (output pixels), columns (filters) and reduction depth.
        ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters, stride: SCALE-Sim's
            topology fields; for a GEMM ``M, K, 1, K, 1, N, 1`` (SCALE-Sim's GEMM form).
            The ifmap extent is the padded one, ``(P − 1)·stride + R``.
        array_h, array_w: PE rows × columns.
        dataflow: ``ws``, ``os`` or ``is``.
        ifmap_sram_bytes, filter_sram_bytes, ofmap_sram_bytes: the three SRAM partitions.
        bandwidth: DRAM bytes per cycle (``UNLIMITED_BANDWIDTH`` for none).
        precision_bytes: bytes per operand word.
    """

    kind: str
    M: int
    N: int
    K: int
    ifmap_h: int
    ifmap_w: int
    filt_h: int
    filt_w: int
    channels: int
    num_filters: int
    stride: int
    array_h: int
    array_w: int
    dataflow: str
    ifmap_sram_bytes: float
    filter_sram_bytes: float
    ofmap_sram_bytes: float
    bandwidth: float
    precision_bytes: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "gemm"):
            raise ValueError(f"LayerJob.kind must be 'conv' or 'gemm', got {self.kind!r}")
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"LayerJob.dataflow must be one of {DATAFLOWS}, got {self.dataflow!r}")

    @classmethod
    def gemm(cls, M: int, N: int, K: int, **hw) -> "LayerJob":
        """A GEMM job in SCALE-Sim's GEMM form."""
        return cls("gemm", M, N, K, M, K, 1, K, 1, N, 1, **hw)

    @classmethod
    def conv(cls, *, ifmap_h: int, ifmap_w: int, filt_h: int, filt_w: int, channels: int, num_filters: int, stride: int, **hw) -> "LayerJob":
        """A convolution job from SCALE-Sim's topology fields (ifmap = padded extent)."""
        oh, ow = (ifmap_h - filt_h) // stride + 1, (ifmap_w - filt_w) // stride + 1
        return cls("conv", oh * ow, num_filters, filt_h * filt_w * channels, ifmap_h, ifmap_w, filt_h, filt_w, channels, num_filters, stride, **hw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "LayerJob":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def canonical(self) -> str:
        """Canonical JSON: floats rounded to 9 significant digits, keys sorted."""
        data = {k: (float(f"{v:.9g}") if isinstance(v, float) else v) for k, v in self.to_dict().items()}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()


@dataclass
class LayerResult:
    """An oracle's answer for one job (cycles of one GEMM)."""

    total_cycles: float
    compute_cycles: float | None = None
    stall_cycles: float | None = None
    wall_s: float = 0.0  # seconds the oracle spent on it when it was simulated (kept for cache hits)
    cached: bool = False

    def to_dict(self) -> dict:
        return {"total_cycles": self.total_cycles, "compute_cycles": self.compute_cycles, "stall_cycles": self.stall_cycles, "wall_s": self.wall_s}
