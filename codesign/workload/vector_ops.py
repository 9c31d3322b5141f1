"""Vector-unit operations per output element of each non-MAC operator, and which operators map to what.

Counts come from each operator's defining formula in the PyTorch ``torch.nn`` docs
(https://pytorch.org/docs/stable/nn.html) and the ONNX operator spec
(https://onnx.ai/onnx/operators/): one operation per add, subtract, multiply, divide, compare
(max/min) and per special function. ``exp``, ``erf``, ``tanh``, ``sigmoid`` and ``rsqrt`` count
one op each, as on a lookup-table special-function unit (NVDLA's SDP LUT, which serves sigmoid,
tanh and exp, NVDLA Primer: http://nvdla.org/primer.html). Per-row work of normalisations (the
``rsqrt`` of a variance, the reciprocal of a softmax sum) is amortised over the row and not counted.

* A **windowed** operator (pooling, a reduction) does one op per window element per output
  element: a ``k×k`` max pool is ``k²`` compares (``k² − 1`` plus the first load), an average pool
  ``k² − 1`` adds and one scale. :func:`vector_ops` takes the window.
* **Data movement** (concat, nearest resize) does no arithmetic: 0 ops, its cost is the bytes it
  moves (the layer's input and output sizes).
* Batch norm **after a MAC layer** folds into the layer's weights and bias at inference: it is
  listed in the epilogue with 0 ops. Elsewhere it is a per-channel scale and shift: 2 ops.
"""

from __future__ import annotations

#: fn → (ops per output element, the formula counted).
VECTOR_OPS: dict[str, tuple[int, str]] = {
    # -- pointwise (epilogue or vector layer)
    "bias": (1, "y = x + b"),
    "scale": (1, "y = a·x"),
    "add": (1, "y = x + z"),
    "sub": (1, "y = x − z"),
    "mul": (1, "y = x·z"),
    "div": (1, "y = x / z"),
    "mask": (1, "scores + mask (or a select of −inf)"),
    "where": (1, "y = c ? x : z"),
    "compare": (1, "y = x ≶ z"),
    "log": (1, "log(x), one LUT lookup"),
    "softplus": (3, "log(1 + exp(x)): exp, add, log"),
    "mish": (5, "x·tanh(softplus(x)): exp, add, log, tanh, multiply"),
    "elu": (4, "x > 0 ? x : α(exp(x) − 1): compare, exp, subtract, multiply"),
    "maximum": (1, "y = max(x, z)"),
    "minimum": (1, "y = min(x, z)"),
    "relu": (1, "ReLU(x) = max(0, x)"),
    "relu6": (2, "ReLU6(x) = min(max(0, x), 6)"),
    "clamp": (2, "clamp(x) = min(max(x, lo), hi)"),
    "leaky_relu": (2, "LeakyReLU(x) = max(0, x) + slope·min(0, x) as a compare and a multiply"),
    "sigmoid": (1, "σ(x) = 1 / (1 + exp(−x)), one LUT lookup"),
    "tanh": (1, "tanh(x), one LUT lookup"),
    "exp": (1, "exp(x), one LUT lookup"),
    "erf": (1, "erf(x), one LUT lookup"),
    "sqrt": (1, "sqrt(x), one LUT lookup"),
    "rsqrt": (1, "1/sqrt(x), one LUT lookup"),
    "reciprocal": (1, "1/x"),
    "neg": (1, "−x"),
    "abs": (1, "|x|"),
    "pow": (1, "x^p"),
    "silu": (2, "SiLU(x) = x·σ(x): σ lookup, multiply"),
    "gelu": (5, "GELU(x) = 0.5·x·(1 + erf(x/√2)): scale, erf, add, two multiplies"),
    "gelu_tanh": (9, "0.5·x·(1 + tanh(√(2/π)(x + 0.044715·x³))): x³ (2), ·c, +x, ·√(2/π), tanh, +1, ·x, ·0.5"),
    "hardsigmoid": (4, "Hardsigmoid(x) = min(max(x/6 + 1/2, 0), 1): multiply, add, max, min"),
    "hardswish": (5, "Hardswish(x) = x·Hardsigmoid(x): 4, then a multiply"),
    "batchnorm_folded": (0, "folded into the MAC layer's weights and bias at inference"),
    "batchnorm": (2, "γ·(x − μ)/√(σ² + ε) + β as a per-channel scale and shift"),
    # -- whole-row operators (vector layers)
    "softmax": (5, "exp(x − max)/Σ exp: max compare, subtract, exp, sum add, scale by 1/Σ"),
    "log_softmax": (5, "x − max − log Σ exp: max compare, subtract, exp, sum add, subtract"),
    "layernorm": (7, "γ·(x − mean)/√(var + ε) + β: mean add, subtract, square, variance add, scale, γ, β"),
    "groupnorm": (7, "as layernorm over each group"),
    "rmsnorm": (4, "γ·x/√(mean(x²) + ε): square, add, scale, γ"),
    # -- data movement
    "concat": (0, "copy of the inputs"),
    "resize_nearest": (0, "copy of the nearest input element"),
    "resize_bilinear": (7, "four taps: 4 multiplies, 3 adds"),
    "resize_bicubic": (31, "sixteen taps: 16 multiplies, 15 adds"),
    "copy": (0, "copy"),
}

#: Windowed operators: ops per output element = window elements × this factor.
WINDOWED: dict[str, tuple[int, str]] = {
    "maxpool": (1, "max over the k×k window: k² compares"),
    "avgpool": (1, "mean over the k×k window: k² − 1 adds and one scale"),
    "mean": (1, "mean over the reduced elements"),
    "sum": (1, "sum over the reduced elements"),
    "max": (1, "max over the reduced elements"),
    "min": (1, "min over the reduced elements"),
    "vector_norm": (2, "√Σx²: a multiply and an add per reduced element"),
}


def vector_ops(fn: str, window: int = 1) -> int | None:
    """Operations per output element of ``fn`` (``window``: elements each output reduces); None if unknown."""
    if fn in WINDOWED:
        return WINDOWED[fn][0] * max(1, window)
    entry = VECTOR_OPS.get(fn)
    return None if entry is None else entry[0]


#: (family, PyTorch operators, ONNX operators, what it becomes), for the README.
OPERATOR_TABLE: tuple[tuple[str, str, str, str], ...] = (
    ("convolution", "conv1d/2d/3d, conv_transpose*, aten.convolution (grouped, depthwise, dilated)",
     "Conv, ConvTranspose", "conv layer (transposed: MACs as the flop counter counts them)"),
    ("linear", "linear, addmm, mm, bmm, matmul, einsum with a weight operand",
     "Gemm (transA, transB, alpha), MatMul, Einsum with an initializer", "fc layer, leading dims in P"),
    ("matmul", "matmul, bmm, einsum of two activations",
     "MatMul, Einsum of two activations", "matmul layer, batch dims past the batch in groups"),
    ("attention", "scaled_dot_product_attention", "MatMul, Softmax (as exported)",
     "scores matmul + softmax vector layer + context matmul, per head (groups = heads)"),
    ("bias, batch norm", "conv/linear bias, batch_norm", "Conv/Gemm bias, Add of an initializer, BatchNormalization",
     "epilogue of the MAC layer before it (batch norm folded: 0 ops); else a vector layer"),
    ("activations", "relu, relu6/hardtanh, gelu, silu, sigmoid, hardswish, hardsigmoid, tanh, clamp, leaky_relu",
     "Relu, Clip, Gelu, Sigmoid, HardSwish, HardSigmoid, Tanh, LeakyRelu, Erf, Exp, Sqrt, Pow",
     "epilogue when the running output has one user; else a vector layer"),
    ("elementwise", "add, sub, mul, div (residual adds, scaling)", "Add, Sub, Mul, Div",
     "epilogue (a same-shape operand: side_inputs + 1); broadcast activation operand: vector layer"),
    ("normalisation", "softmax, log_softmax, layer_norm, group_norm, rms_norm, normalize",
     "Softmax, LogSoftmax, LayerNormalization, GroupNormalization, InstanceNormalization",
     "vector layer (a decomposed norm: one vector layer per reduction and pointwise op)"),
    ("pooling, reductions", "max_pool, avg_pool, adaptive_avg/max_pool, mean, sum, amax",
     "MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean, ReduceSum, ReduceMax",
     "vector layer with the window (R, S, stride)"),
    ("resize, concat", "interpolate/upsample (nearest, bilinear, bicubic), cat, stack", "Resize, Upsample, Concat",
     "vector layer (data movement: 0 ops for concat and nearest)"),
    ("shape only", "view, reshape, flatten, permute, transpose, contiguous, expand, getitem/slice, unbind, split, "
     "squeeze, unsqueeze, clone, dropout (inference), pad, roll, embedding (gather of a table)",
     "Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Identity, Dropout, Slice, Split, Gather, Expand, Pad, Cast",
     "free alias of its input"),
    ("constants", "parameters, buffers, factories (zeros, arange, ...), anything computed from them only",
     "initializers, Constant, Shape, ConstantOfShape, ops on them", "no layer (a MAC op on constants is still a layer)"),
)
