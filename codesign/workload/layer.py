"""One DNN layer as a loop nest, and its GEMM view on a systolic array.

A layer is the 7-deep convolution loop nest of Eyeriss/Timeloop notation:
batch ``N``, output channels ``K``, input channels ``C``, output rows×cols ``P×Q``,
kernel rows×cols ``R×S``, with a stride and a number of groups. Fully connected
layers and transformer matmuls are the special case ``R = S = 1``.

On a systolic array the layer is lowered to ``groups`` independent GEMMs of
``M × Kc`` (ifmap, im2col) by ``Kc × Nf`` (filter) as SCALE-Sim does
(Samajdar et al., ISPASS 2020): ``M = N·P·Q`` output pixels, ``Nf = K / groups``
filters and ``Kc = R·S·C / groups`` window elements.

Work that is not a MAC (activations, normalisation, residual adds, softmax, pooling, resize,
concat) runs on each core's vector unit, in one of two forms:

* an **epilogue** of a MAC layer: pointwise ops applied to the layer's output as it leaves the
  array (the output pipeline of NVDLA's SDP, Gemmini's and the TPU's activation stage).
  ``epilogue`` names them, ``vector_ops`` is their operations per output element and
  ``side_inputs`` counts the tensors of the output's shape they read besides it (1 for a residual
  add);
* a **vector layer** (``op == "vector"``): an operator that needs a whole row or window (softmax,
  layer norm, pooling, resize, concat) or whose input is not a MAC layer's. ``fn`` names it,
  ``vector_ops`` is its operations per output element; ``K × P × Q`` (per sample ``N``) is its
  output, ``C`` × the padded window extent its main input (``R``, ``S`` and ``stride`` are a
  pooling window's), and ``side_inputs`` counts further inputs of the output's shape.

A vector layer has no MACs, no weights and no GEMM (its GEMM view is 1 × 1 × 1, unused).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Layer kinds the model knows. ``conv`` covers grouped and depthwise convolutions
#: (``groups > 1``); ``fc`` is a linear layer with weights; ``matmul`` is an
#: activation × activation product (attention scores and context), whose second
#: operand comes from another layer, not from weight memory.
#: ``vector`` is non-MAC work on the vector unit (see the module docs).
LAYER_OPS = ("conv", "fc", "matmul", "vector")


@dataclass(frozen=True)
class Layer:
    """A MAC layer with its loop bounds.

    Args:
        name: unique name within a workload.
        op: one of :data:`LAYER_OPS`.
        N: batch (for transformers: batch; tokens go into ``P``).
        K: output channels (features).
        C: input channels (features).
        P: output rows (tokens for a transformer layer).
        Q: output columns.
        R: kernel rows.
        S: kernel columns.
        stride: convolution stride (same in both dimensions).
        groups: channel groups (``C`` and ``K`` are divided among them;
            depthwise is ``groups == C == K``).
        precision_bytes: bytes per operand element (1 = int8, 2 = fp16/bf16).
        fn: a vector layer's operator (``"softmax"``, ``"maxpool"``, ...); empty for MAC layers.
        vector_ops: vector-unit operations per output element: a vector layer's own, or a MAC
            layer's fused epilogue's (0: no vector work).
        side_inputs: tensors of the output's shape the vector work reads besides the main input.
        epilogue: names of the pointwise ops fused into a MAC layer's output, in order.
    """

    name: str
    op: str = "conv"
    N: int = 1
    K: int = 1
    C: int = 1
    P: int = 1
    Q: int = 1
    R: int = 1
    S: int = 1
    stride: int = 1
    groups: int = 1
    precision_bytes: int = 1
    fn: str = ""
    vector_ops: int = 0
    side_inputs: int = 0
    epilogue: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.op not in LAYER_OPS:
            raise ValueError(f"layer {self.name!r}: op must be one of {LAYER_OPS}, got {self.op!r}")
        for field in ("vector_ops", "side_inputs"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"layer {self.name!r}: {field} must be a whole number >= 0, got {value!r}")
        if self.op == "vector" and not self.fn:
            raise ValueError(f"layer {self.name!r}: a vector layer names its operator in fn")
        if self.op == "vector" and self.epilogue:
            raise ValueError(f"layer {self.name!r}: only a MAC layer has an epilogue")
        for field in ("N", "K", "C", "P", "Q", "R", "S", "stride", "groups", "precision_bytes"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"layer {self.name!r}: {field} must be a positive integer, got {value!r}")
        if self.C % self.groups or self.K % self.groups:
            raise ValueError(
                f"layer {self.name!r}: groups={self.groups} must divide C={self.C} and K={self.K}"
            )

    # --- sizes -------------------------------------------------------------------------
    @property
    def input_rows(self) -> int:
        """Rows of the (padded) input feature map read by this layer."""
        return (self.P - 1) * self.stride + self.R

    @property
    def input_cols(self) -> int:
        return (self.Q - 1) * self.stride + self.S

    @property
    def is_vector(self) -> bool:
        return self.op == "vector"

    @property
    def macs(self) -> int:
        """Multiply-accumulates: N·K·(C/groups)·P·Q·R·S (0 for a vector layer)."""
        if self.is_vector:
            return 0
        return self.N * self.K * (self.C // self.groups) * self.P * self.Q * self.R * self.S

    @property
    def ifmap_elems(self) -> int:
        """Elements of the input tensor (padded extent); a vector layer's side inputs included."""
        main = self.N * self.C * self.input_rows * self.input_cols
        return main + (self.side_inputs * self.ofmap_elems if self.is_vector else 0)

    @property
    def side_elems(self) -> int:
        """Elements a MAC layer's epilogue reads besides the layer's own output (a residual operand)."""
        return 0 if self.is_vector else self.side_inputs * self.ofmap_elems

    @property
    def vector_work(self) -> int:
        """Vector-unit operations of the layer (its own, or its epilogue's): ``vector_ops`` per output element."""
        return self.vector_ops * self.ofmap_elems

    @property
    def filter_elems(self) -> int:
        """Elements of the second operand (weights, or the other activation of a matmul).

        A matmul's second operand is an activation, so every sample has its own.
        """
        if self.is_vector:
            return 0
        per_sample = self.K * (self.C // self.groups) * self.R * self.S
        return per_sample * (self.N if self.op == "matmul" else 1)

    @property
    def ofmap_elems(self) -> int:
        return self.N * self.K * self.P * self.Q

    @property
    def has_weights(self) -> bool:
        return self.op not in ("matmul", "vector")

    # --- GEMM view (per group), as SCALE-Sim lowers a layer ---------------------------
    @property
    def gemm_groups(self) -> int:
        """Independent GEMMs the layer runs: its groups, times the batch for a matmul
        (whose second operand differs per sample, so samples cannot share one GEMM)."""
        if self.is_vector:
            return 1
        return self.groups * (self.N if self.op == "matmul" else 1)

    @property
    def gemm_m(self) -> int:
        """Rows of each GEMM: output pixels ``N·P·Q`` (``P·Q`` for a matmul)."""
        if self.is_vector:
            return 1
        return (1 if self.op == "matmul" else self.N) * self.P * self.Q

    @property
    def gemm_n(self) -> int:
        """Columns of the GEMM: filters per group ``K / groups``."""
        return 1 if self.is_vector else self.K // self.groups

    @property
    def gemm_k(self) -> int:
        """Reduction depth: window ``R·S·C / groups``."""
        return 1 if self.is_vector else self.R * self.S * (self.C // self.groups)

    def to_dict(self) -> dict:
        return asdict(self)
