"""ONNX files as an :class:`~codesign.workload.opgraph.OpGraph`, with ``onnx`` and its shape inference.

The file is read without its external data (only shapes matter). Its graph inputs that are not
initializers are activations; the first is the network input (the others' dynamic first dims are
the batch), and ``onnx.shape_inference.infer_shapes`` (with data
propagation, so reshapes computed from ``Shape`` resolve) gives every tensor's shape. Initializers,
``Constant`` outputs and anything computed only from them are weights and constants. A dynamic
input dimension is set from ``batch`` and ``input_shape``; a file fixed at batch 1 is read at batch 1
and its layers' ``N`` scaled to ``batch`` (every layer of an inference network is linear in the
batch). Node names are the layer names (``{op_type}_{index}`` for a node without one).
"""

from __future__ import annotations

from math import prod
from pathlib import Path

from codesign.workload.opgraph import Op, OpGraph, WorkloadError
from codesign.workload.torch_import import require

ALIAS = frozenset(
    "Reshape Transpose Flatten Squeeze Unsqueeze Identity Dropout Slice Split Gather GatherElements GatherND "
    "Expand Pad Cast CastLike Tile DepthToSpace SpaceToDepth".split()
)
CONST = frozenset("Shape Size Constant ConstantOfShape Range EyeLike RandomNormalLike RandomUniformLike".split())
POINTWISE = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "maximum", "Min": "minimum", "Relu": "relu",
    "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "HardSigmoid": "hardsigmoid",
    "LeakyRelu": "leaky_relu", "Elu": "elu", "Softplus": "softplus", "Mish": "mish", "Erf": "erf", "Exp": "exp",
    "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Neg": "neg", "Abs": "abs", "Pow": "pow", "Log": "log",
    "Where": "where", "Equal": "compare", "Less": "compare", "Greater": "compare", "LessOrEqual": "compare",
    "GreaterOrEqual": "compare", "BatchNormalization": "batchnorm", "Clip": "clamp", "Gelu": "gelu",
}
VECTOR = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "LayerNormalization": "layernorm",
          "GroupNormalization": "groupnorm", "InstanceNormalization": "groupnorm",
          "RMSNormalization": "rmsnorm", "Concat": "concat"}
POOLS = {"MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "avgpool", "GlobalMaxPool": "maxpool"}
REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min", "ReduceL2": "vector_norm"}
RESIZE = {"nearest": "resize_nearest", "linear": "resize_bilinear", "cubic": "resize_bicubic"}


def _attrs(node) -> dict:
    onnx = require("onnx")
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _dims(value_info) -> list:
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return dims


def _set_input(model, graph_input, batch: int, input_shape, where: str) -> int:
    """Fix the network input's dynamic dims; return the factor to scale the layers' batch by."""
    dims = _dims(graph_input)
    if not dims:
        raise WorkloadError(f"{where}: input {graph_input.name!r} has no shape")
    wanted = [batch, *input_shape] if input_shape is not None else [batch if dims[0] is None else dims[0], *dims[1:]]
    if len(wanted) != len(dims):
        raise WorkloadError(f"{where}: input {graph_input.name!r} has {len(dims)} dims {dims}; input_shape "
                            f"{tuple(input_shape)} plus the batch has {len(wanted)}")
    scale = 1
    if dims[0] is not None and dims[0] != batch:
        if dims[0] != 1:
            raise WorkloadError(f"{where}: input {graph_input.name!r} is fixed at batch {dims[0]}; batch {batch} "
                                "expected it (export with batch 1 or a dynamic batch axis)")
        wanted[0], scale = 1, batch
    for i, (have, want) in enumerate(zip(dims[1:], wanted[1:]), start=1):
        if want is None:
            raise WorkloadError(f"{where}: input {graph_input.name!r} dim {i} is dynamic; input_shape is needed")
        if have is not None and have != want:
            raise WorkloadError(f"{where}: input {graph_input.name!r} has shape {dims}; input_shape "
                                f"{tuple(input_shape)} does not match it")
    for d, value in zip(graph_input.type.tensor_type.shape.dim, wanted):
        d.Clear()
        d.dim_value = value
    return scale


class _Reader:
    def __init__(self, model, graph: OpGraph, where: str) -> None:
        self.model, self.g, self.where = model, graph, where
        self.ids: dict[str, int] = {}
        self.shapes: dict[str, list] = {}
        self.consts: dict[str, object] = {}
        for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
            self.shapes[info.name] = _dims(info)
        for init in model.graph.initializer:
            self.shapes[init.name] = list(init.dims)
            self.ids[init.name] = graph.value(init.dims, const=True)
            self.consts[init.name] = init

    def shape(self, name: str, node, index: int) -> tuple[int, ...]:
        dims = self.shapes.get(name)
        if dims is None or any(d is None for d in dims):
            raise WorkloadError(f"{self.where}: node {node.name!r} ({node.op_type}): shape inference left tensor "
                                f"{name!r} without a static shape ({dims}); expected static shapes (fix the input shape)")
        return tuple(dims)

    def value(self, name: str, node) -> int:
        if name not in self.ids:  # an input of unknown origin: a constant
            self.ids[name] = self.g.value(self.shapes.get(name) or [1], const=True)
        return self.ids[name]

    def scalar(self, name: str):
        """The value of a constant scalar input (Clip's bounds), or None."""
        onnx = require("onnx")
        tensor = self.consts.get(name)
        if tensor is None or tensor.data_location == onnx.TensorProto.EXTERNAL:
            return None
        array = onnx.numpy_helper.to_array(tensor)
        return float(array.reshape(-1)[0]) if array.size == 1 else None

    def read(self, node, index: int) -> None:
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type == "Constant":
            for out in node.output:
                self.ids[out] = self.g.value(self.shapes.get(out) or [1], const=True)
                attrs = _attrs(node)
                if "value" in attrs:
                    self.consts[out] = attrs["value"]
            return
        inputs = [i for i in node.input if i]
        ins = tuple(self.value(i, node) for i in inputs)
        kind, fn, attrs = self.classify(node, inputs)
        outs = [o for o in node.output if o]
        for k, out in enumerate(outs):
            if k and kind != "alias":  # extra outputs (a norm's mean): constants
                self.ids[out] = self.g.value(self.shapes.get(out) or [1], const=True)
                continue
            self.ids[out] = self.g.value(self.shape(out, node, index))
            self.g.ops.append(Op(kind, fn, name, ins, self.ids[out], attrs, node=name, source_op=node.op_type))

    def classify(self, node, inputs) -> tuple[str, str, dict]:
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            return "conv", "conv", self.conv(node, inputs)
        if op in ("Gemm", "MatMul", "Einsum"):
            return "matmul", "matmul", self.matmul(node, inputs)
        if op in ALIAS:
            return "alias", op, {}
        if op in CONST:
            return "const", op, {}
        if op == "Clip":
            bounds = [self.scalar(i) for i in node.input[1:3]] if len(node.input) > 2 else []
            return "pointwise", "relu6" if bounds == [0.0, 6.0] else "clamp", {}
        if op == "Gelu":
            return "pointwise", "gelu_tanh" if _attrs(node).get("approximate") == b"tanh" else "gelu", {}
        if op in POINTWISE:
            return "pointwise", POINTWISE[op], {}
        if op in VECTOR:
            return "vector", VECTOR[op], {}
        if op in POOLS or op in REDUCE:
            return "vector", POOLS.get(op) or REDUCE[op], self.window(node, inputs)
        if op in ("Resize", "Upsample"):
            mode = _attrs(node).get("mode", b"nearest")
            return "vector", RESIZE.get(mode.decode() if isinstance(mode, bytes) else mode, "resize_bilinear"), {}
        return "unsupported", op, {}

    def conv(self, node, inputs) -> dict:
        a = _attrs(node)
        x, w = self.shape(inputs[0], node, 0), self.shape(inputs[1], node, 1)
        out = self.shape(node.output[0], node, 0)
        kernel = tuple(a.get("kernel_shape", w[2:]))
        return dict(in_channels=x[1], out_channels=out[1], kernel=kernel, stride=tuple(a.get("strides", [1] * len(kernel))),
                    groups=int(a.get("group", 1)), transposed=node.op_type == "ConvTranspose", bias=len(inputs) > 2)

    def matmul(self, node, inputs) -> dict:
        a_shape, b_shape = (list(self.shape(i, node, k)) for k, i in enumerate(inputs[:2]))
        attrs = _attrs(node)
        if node.op_type == "Einsum":
            return self.einsum(attrs["equation"], a_shape, b_shape, node)
        if node.op_type == "Gemm":
            if attrs.get("transA"):
                a_shape = a_shape[::-1]
            if attrs.get("transB"):
                b_shape = b_shape[::-1]
        a_shape = [1, *a_shape] if len(a_shape) == 1 else a_shape
        b_shape = [*b_shape, 1] if len(b_shape) == 1 else b_shape
        result = dict(a=tuple(a_shape), b=tuple(b_shape), alpha=float(attrs.get("alpha", 1.0)))
        if node.op_type == "Gemm" and len(inputs) > 2:
            result["bias"] = self.ids[inputs[2]]
        return result

    def einsum(self, equation, a_shape, b_shape, node) -> dict:
        text = equation.decode() if isinstance(equation, bytes) else equation
        lhs, _, out = text.replace(" ", "").partition("->")
        terms = lhs.split(",")
        if len(terms) != 2 or "." in text or not out:
            raise WorkloadError(f"{self.where}: node {node.name!r} (Einsum): equation {text!r}; expected two operands "
                                "with an explicit output and no ellipsis")
        sizes = dict(zip(terms[0], a_shape)) | dict(zip(terms[1], b_shape))
        batch = [c for c in out if c in terms[0] and c in terms[1]]
        m = [c for c in out if c in terms[0] and c not in terms[1]]
        n = [c for c in out if c in terms[1] and c not in terms[0]]
        k = [c for c in terms[0] if c in terms[1] and c not in out]
        dims = [sizes[c] for c in batch]
        size = lambda letters: prod(sizes[c] for c in letters)  # noqa: E731
        return dict(a=(*dims, size(m), size(k)), b=(*dims, size(k), size(n)))

    def window(self, node, inputs) -> dict:
        x = self.shape(inputs[0], node, 0)
        out = self.shape(node.output[0], node, 0)
        if node.op_type in ("MaxPool", "AveragePool"):
            a = _attrs(node)
            kernel = list(a["kernel_shape"])
            stride = list(a.get("strides", kernel))
            return dict(window=(kernel[0], prod(kernel[1:])), stride=stride[0])
        if node.op_type.startswith("Global"):
            return dict(window=(x[2] if len(x) > 2 else 1, prod(x[3:])), stride=1)
        reduce = max(1, prod(x) // max(1, prod(out)))
        return dict(window=(reduce, 1), stride=reduce, reduce=reduce)


def read_onnx(path: Path, *, batch: int = 1, input_shape=None) -> tuple[OpGraph, int]:
    """The op graph of the ONNX file at ``path``, and the factor its layers' ``N`` must be scaled by."""
    onnx = require("onnx")
    where = str(path)
    if not path.is_file():
        raise WorkloadError(f"{where}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise WorkloadError(f"{where}: not a readable ONNX file: {type(exc).__name__}: {exc}") from None
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise WorkloadError(f"{where}: the graph has no input that is not an initializer")
    scale = _set_input(model, inputs[0], batch, input_shape, where)
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise WorkloadError(f"{where}: ONNX shape inference failed: {type(exc).__name__}: {exc}") from None
    graph = OpGraph(path.stem, where, batch // scale)
    reader = _Reader(model, graph, where)
    for extra in inputs:
        dims = list(reader.shapes.get(extra.name) or [1])
        dims = [batch // scale if i == 0 and d is None else d or 1 for i, d in enumerate(dims)]
        reader.ids[extra.name] = graph.value(dims)  # every graph input is an activation
    for index, node in enumerate(model.graph.node):
        reader.read(node, index)
    return graph, scale
