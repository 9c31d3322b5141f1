"""Capture a PyTorch module as an :class:`~codesign.workload.opgraph.OpGraph`, on the meta device.

The module runs once on a ``meta`` input under a ``TorchDispatchMode``, the same hook
``torch.utils.flop_counter.FlopCounterMode`` counts with, so every ATen operator the module
executes is seen with its shapes, whatever Python control flow the module has, and no weight is
allocated. Measured on this project's 2-core machine, capture and lowering take 0.1 s for
ResNet-50 and 0.13 s for ViT-B/16, and all 80 torchvision classifiers about 20 s together, where
``torch.export`` alone takes 0.9 s (ResNet-50) to 2.6 s (MaxViT-T) per network; ``torch.fx``
symbolic tracing is fast but fails on a module whose Python branches on tensor shapes and needs a
second pass (``ShapeProp``) for the shapes. Data flow is followed by tensor identity:
every tensor an operator returns is a new value (an in-place operator's result too); parameters,
buffers and tensors made inside the forward from no activation are constants. Layer names are the
qualified name of the innermost module running (``layer1.0.conv1``), with ``.fn`` appended inside
a module that has children. ``scaled_dot_product_attention`` is caught one level up (see :func:`attention_recorded`)
and recorded as one attention op (its ATen decomposition is not recorded).
"""

from __future__ import annotations

import contextlib
from math import prod

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from codesign.workload.opgraph import Op, OpGraph

ALIAS = frozenset(
    "view _unsafe_view reshape _reshape_alias permute transpose t expand contiguous clone unsqueeze squeeze "
    "flatten unflatten select slice unbind split split_with_sizes chunk alias detach lift_fresh lift_fresh_copy "
    "_to_copy to view_as expand_as as_strided movedim narrow repeat constant_pad_nd pad roll index index_select "
    "gather dropout native_dropout feature_dropout alpha_dropout channel_shuffle pixel_shuffle pixel_unshuffle "
    "_unsafe_index view_as_real view_as_complex type_as flip embedding unsafe_split unsafe_chunk "
    "unsafe_split_with_sizes".split()
)
CONST = frozenset(
    "zeros_like ones_like empty_like full_like rand_like randn_like new_zeros new_ones new_empty new_full "
    "fill zero _local_scalar_dense sym_size sym_numel scalar_tensor arange zeros ones empty full".split()
)
POINTWISE = {
    "add": "add", "sub": "sub", "rsub": "sub", "mul": "mul", "div": "div", "maximum": "maximum",
    "minimum": "minimum", "relu": "relu", "gelu": "gelu", "silu": "silu", "sigmoid": "sigmoid", "tanh": "tanh",
    "hardtanh": "clamp", "hardswish": "hardswish", "hardsigmoid": "hardsigmoid", "clamp": "clamp", "clamp_min": "maximum",
    "clamp_max": "minimum", "leaky_relu": "leaky_relu", "elu": "elu", "softplus": "softplus", "mish": "mish",
    "exp": "exp", "erf": "erf", "sqrt": "sqrt", "rsqrt": "rsqrt", "reciprocal": "reciprocal", "neg": "neg",
    "abs": "abs", "pow": "pow", "log": "log", "where": "where", "masked_fill": "where", "eq": "compare",
    "ne": "compare", "lt": "compare", "le": "compare", "gt": "compare", "ge": "compare",
    "_native_batch_norm_legit_no_training": "batchnorm", "native_batch_norm": "batchnorm",
    "_native_batch_norm_legit": "batchnorm", "batch_norm": "batchnorm",
}
VECTOR = {
    "_softmax": "softmax", "_safe_softmax": "softmax", "softmax": "softmax", "_log_softmax": "log_softmax",
    "native_layer_norm": "layernorm", "native_group_norm": "groupnorm", "_fused_rms_norm": "rmsnorm",
    "cat": "concat", "stack": "concat", "upsample_nearest2d": "resize_nearest",
    "_upsample_nearest_exact2d": "resize_nearest", "upsample_nearest1d": "resize_nearest",
    "upsample_bilinear2d": "resize_bilinear", "_upsample_bilinear2d_aa": "resize_bilinear",
    "upsample_bicubic2d": "resize_bicubic",
}
POOLS = {"max_pool2d_with_indices": "maxpool", "max_pool2d": "maxpool", "avg_pool2d": "avgpool",
         "max_pool1d": "maxpool", "avg_pool1d": "avgpool", "max_pool3d_with_indices": "maxpool",
         "avg_pool3d": "avgpool"}
ADAPTIVE = {"_adaptive_avg_pool2d": "avgpool", "adaptive_avg_pool2d": "avgpool", "adaptive_max_pool2d": "maxpool",
            "_adaptive_avg_pool1d": "avgpool", "adaptive_avg_pool1d": "avgpool", "_adaptive_avg_pool3d": "avgpool"}
REDUCE = {"mean": "mean", "sum": "sum", "amax": "max", "amin": "min", "max": "max", "min": "min",
          "linalg_vector_norm": "vector_norm", "norm": "vector_norm", "var": "mean", "var_mean": "mean"}
MACS = frozenset({"convolution", "_convolution", "mm", "addmm", "bmm", "baddbmm"})


def _window(in_sp, out_sp) -> tuple[tuple[int, int], int]:
    """An adaptive pool's window (rows, cols) and stride from its input and output extents."""
    wins = [-(-i // o) for i, o in zip(in_sp, out_sp)] or [1]
    strides = [max(1, i // o) for i, o in zip(in_sp, out_sp)] or [1]
    return (wins[0], prod(wins[1:])), strides[0]


class Tracer(TorchDispatchMode):
    """Records every ATen op a module runs into an :class:`OpGraph`."""

    def __init__(self, graph: OpGraph, module: torch.nn.Module) -> None:
        super().__init__()
        self.g = graph
        self.vid: dict[int, int] = {}
        self.keep: list = []
        self.weights: set[int] = set()  # values that are parameters or views of them (for names only)
        self.paused = 0
        self.module_names = {id(m): name for name, m in module.named_modules()}
        self.leaf = {id(m): not any(True for _ in m.children()) for m in module.modules()}
        self.stack: list[int] = []

    # --- values and names ---------------------------------------------------------------
    def value_of(self, t: torch.Tensor) -> int:
        key = id(t)
        if key not in self.vid:  # a parameter, a buffer, or a tensor made outside any op
            self.vid[key] = self.g.value(t.shape, const=True)
            self.keep.append(t)
        return self.vid[key]

    def new_value(self, t: torch.Tensor) -> int:
        self.vid[id(t)] = self.g.value(t.shape)
        self.keep.append(t)
        return self.vid[id(t)]

    def where(self, fn: str, suffix: bool = True) -> str:
        if not self.stack:
            return fn
        top = self.stack[-1]
        path = self.module_names.get(top, "")
        if not suffix or (self.leaf.get(top) and path):
            return path or fn
        return f"{path}.{fn}" if path else fn

    def push(self, module, *_):
        self.stack.append(id(module))

    def pop(self, *_):
        if self.stack:
            self.stack.pop()

    # --- recording ------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.paused:
            self.record(func, args, kwargs, out)
        return out

    def emit(self, kind: str, fn: str, inputs, out, source_op: str, attrs=None, name=None) -> int:
        outs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        if not outs:
            return -1
        ins = tuple(self.value_of(t) for t in inputs if isinstance(t, torch.Tensor))
        main = self.new_value(outs[0])
        if kind == "alias" and ins and all(self.g.values[i].const or i in self.weights for i in ins):
            self.weights.add(main)
        name = name if name is not None else self.where(fn)
        self.g.ops.append(Op(kind, fn, name, ins, main, dict(attrs or {}), node=name, source_op=source_op))
        for extra in outs[1:]:
            if kind == "alias":
                self.g.ops.append(Op("alias", fn, name, ins, self.new_value(extra), node=name, source_op=source_op))
            elif id(extra) != id(outs[0]):
                self.vid[id(extra)] = self.g.value(extra.shape, const=True)
                self.keep.append(extra)
        return main

    def record(self, func, args, kwargs, out) -> None:
        name = func._overloadpacket.__name__
        base = name[:-1] if name.endswith("_") and not name.endswith("__") else name
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        source = str(func)
        if base in MACS:
            self.record_mac(base, args, out, source)
        elif base in ALIAS or base == "copy":
            self.emit("alias", base, [args[1]] if base == "copy" else tensors, out, source)
        elif base in CONST or not tensors:
            self.emit("const", base, tensors, out, source)
        elif base in POINTWISE:
            self.emit("pointwise", self.pointwise_fn(base, args, kwargs), tensors, out, source)
        elif base in VECTOR:
            self.emit("vector", VECTOR[base], tensors, out, source)
        elif base in POOLS or base in ADAPTIVE or base in REDUCE:
            self.record_window(base, args, tensors, out, source)
        else:
            self.emit("unsupported", base, tensors, out, source)

    @staticmethod
    def pointwise_fn(base: str, args, kwargs) -> str:
        if base == "hardtanh":
            return "relu6" if tuple(args[1:3]) == (0.0, 6.0) else "clamp"
        if base == "gelu" and kwargs.get("approximate", args[1] if len(args) > 1 else "none") == "tanh":
            return "gelu_tanh"
        return POINTWISE[base]

    def record_window(self, base, args, tensors, out, source) -> None:
        x = tensors[0]
        first = next(t for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        if base in POOLS:
            kernel = list(args[1]) if len(args) > 1 else [1]
            stride = list(args[2]) if len(args) > 2 and args[2] else kernel
            window, step = (kernel[0], prod(kernel[1:])), stride[0]
            attrs = dict(window=window, stride=step)
            fn = POOLS[base]
        elif base in ADAPTIVE:
            window, step = _window(x.shape[2:], first.shape[2:])
            attrs, fn = dict(window=window, stride=step), ADAPTIVE[base]
        else:
            reduce = max(1, x.numel() // max(1, first.numel()))
            attrs, fn = dict(window=(reduce, 1), stride=reduce, reduce=reduce), REDUCE[base]
        self.emit("vector", fn, [x], out, source, attrs)

    def record_mac(self, base, args, out, source) -> None:
        if base in ("convolution", "_convolution"):
            x, w, bias = args[0], args[1], args[2]
            transposed, groups = bool(args[6]), int(args[8])
            out_t = out
            attrs = dict(in_channels=x.shape[1], out_channels=out_t.shape[1], kernel=tuple(w.shape[2:]),
                         stride=tuple(args[3]), groups=groups, transposed=transposed, bias=bias is not None)
            self.emit("conv", "conv", [x, w], out, source, attrs)
            return
        bias = None
        if base in ("addmm", "baddbmm"):
            bias, args = args[0], args[1:]
        a, b = args[0], args[1]
        attrs = dict(a=tuple(a.shape), b=tuple(b.shape))
        if bias is not None:
            attrs["bias"] = self.value_of(bias)
        b_value = self.value_of(b)
        linear = self.g.values[b_value].const or b_value in self.weights
        self.emit("matmul", "linear" if linear else "matmul", [a, b], out, source, attrs)


@contextlib.contextmanager
def attention_recorded(tracer: Tracer):
    """While tracing, ``F.scaled_dot_product_attention`` is recorded as one op, its decomposition hidden.

    The function is replaced in ``torch.nn.functional`` for the duration (``nn.MultiheadAttention``
    and modules calling ``F.scaled_dot_product_attention`` find it there); a module that imported
    the function under its own name runs the decomposition, which is recorded op by op (same MACs).
    """
    original = F.scaled_dot_product_attention

    def attention(query, key, value, attn_mask=None, *args, **kwargs):
        tracer.paused += 1
        try:
            out = original(query, key, value, attn_mask, *args, **kwargs)
        finally:
            tracer.paused -= 1
        inputs = [query, key, value] + ([attn_mask] if isinstance(attn_mask, torch.Tensor) else [])
        name = tracer.where("attention", suffix=False) or "attention"
        tracer.emit("sdpa", "attention", inputs, out, "scaled_dot_product_attention", name=name)
        return out

    F.scaled_dot_product_attention = attention
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def trace(module: torch.nn.Module, example: torch.Tensor, graph: OpGraph) -> OpGraph:
    """Run ``module`` on the meta tensor ``example`` and record its ops into ``graph``."""
    tracer = Tracer(graph, module)
    tracer.new_value(example)
    pre = torch.nn.modules.module.register_module_forward_pre_hook(tracer.push)
    post = torch.nn.modules.module.register_module_forward_hook(tracer.pop)
    try:
        with torch.no_grad(), attention_recorded(tracer), tracer:
            module(example)
    finally:
        pre.remove()
        post.remove()
    return graph
