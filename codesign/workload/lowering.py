"""The one lowering pass: an importer's :class:`~codesign.workload.opgraph.OpGraph` → a :class:`Workload`.

Both importers (PyTorch and ONNX) end here, so the same network gives the same layers either way.

**MAC layers.**

* A convolution is a ``conv`` layer: ``N`` batch, ``K`` output and ``C`` input channels, ``P×Q``
  the output map, ``R×S`` the kernel, ``stride`` its first stride, ``groups`` its groups (depthwise:
  ``groups = C = K``). A 1-D convolution has ``Q = S = 1``; a 3-D one folds depth into ``P`` and
  ``R``. Dilation changes no loop bound (the MACs are those of the undilated kernel).
* A **transposed** convolution has the MACs the PyTorch flop counter gives it,
  ``N·C_in·(C_out/groups)·k²·H_in·W_in`` (every input pixel scatters a full kernel). When the
  kernel is a multiple of the stride and the output is ``stride×`` the input (the usual
  ``k = s`` or ``k = 2s`` upsampler), it is the equivalent conv over the *output* map with a
  ``(k/s)×(k/s)`` kernel and stride 1, so the output size is right too; otherwise it is a conv over
  the *input* map with the full kernel (MACs right, output size that of the input).
* A product ``a @ b`` is an ``fc`` layer when an operand is a weight (a parameter, an initializer,
  or anything computed only from constants): ``C`` the reduced dimension, ``K`` the output
  features, and all leading dimensions of the activation (batch, tokens, spatial positions) in
  ``N·P``: ``N`` is the batch when it divides them, ``P`` the rest. When both operands are
  activations it is a ``matmul`` layer: its batch dimensions give ``N`` (the batch) and
  ``groups`` (the rest: heads, windows), with ``K = groups·n`` and ``C = groups·k`` as the zoo
  writes attention (``K = heads·tokens`` for the scores).
* Scaled dot-product attention is its scores matmul (epilogue: the ``scale``, and the ``mask``
  when given), a ``softmax`` vector layer, and the context matmul, both matmuls with
  ``groups = heads`` as the zoo has them. A MAC op is a layer even when its operands are all
  constants (a relative-position MLP): the framework computes it at every inference, and the flop
  counter counts it.

**Epilogues.** After a MAC layer, a chain of pointwise ops (bias, folded batch norm, activations,
a scale, a residual add or multiply with a tensor of the same shape) is fused into the layer's
``epilogue`` while the running output has exactly one user (reads through reshapes count as
reads of the tensor they alias). Each fused op adds its ops per element
(:mod:`codesign.workload.vector_ops`) to ``vector_ops``; a same-shape activation operand adds one
``side_inputs`` and an edge from its producer into the layer. A binary op with a constant or
scalar operand is named ``bias`` (add, subtract) or ``scale`` (multiply, divide). Batch norm
folds into the MAC layer's weights: listed, 0 ops. A second user, a broadcast activation operand
(the channel scale of squeeze-excitation), or an op that is not pointwise ends the chain.

**Vector layers.** Everything else that computes (softmax, layer/group norm, pooling, reductions,
resize, concat, a pointwise op whose input is not a fusable MAC output) is an ``op="vector"``
layer. Its output ``K×P×Q`` per sample is read from the output shape: ``(C, H, W)`` as is,
``(tokens, features)`` as ``P = tokens``, ``K = features``. Pooling and reductions keep the
channels (``C = K``) and carry their window in ``R×S`` and ``stride`` (a reduction over ``r``
elements: ``R = stride = r``); other vector layers read ``C = input elements / (P·Q)`` per sample
(a concat reads all its inputs). Further same-shape activation inputs count in ``side_inputs``.

**Shape-only ops** are free: their output is their first activation input (for a gather from a
constant table, the indices). **Constants** make no layer.
**Unsupported** ops raise :class:`WorkloadError` naming the source, the node and the operator, or
with ``unsupported="skip"`` are skipped (the output aliases the first input) and listed in
``workload.graph["skipped"]``.

An exported attention (ONNX has no attention operator before opset 23) arrives as its parts: the
two matmuls become the same layers, and the scaling of ``q`` and ``k`` that the exporter writes
before the scores matmul becomes vector layers of its own, where the PyTorch import has one
``scale`` in the scores' epilogue.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod

import networkx as nx

from codesign.workload.graph import Workload
from codesign.workload.layer import Layer
from codesign.vocab import UNSUPPORTED
from codesign.workload.opgraph import Op, OpGraph, WorkloadError
from codesign.workload.vector_ops import vector_ops



@dataclass
class _Builder:
    """A layer under construction: its fields, the layers it reads, and its epilogue."""

    name: str
    fields: dict
    inputs: list[str] = field(default_factory=list)
    epilogue: list[str] = field(default_factory=list)
    vector_ops: int = 0
    side_inputs: int = 0


def _nkpq(shape: tuple[int, ...], batch: int) -> tuple[int, int, int, int]:
    """(N, K, P, Q) of a tensor: the batch, then channels × rows × cols or tokens × features."""
    dims = list(shape) or [1]
    n = batch if dims[0] % batch == 0 else 1
    rest = [dims[0] // n, *dims[1:]]
    if rest[0] == 1 and len(rest) > 1:
        rest = rest[1:]
    if len(rest) == 1:
        return n, rest[0], 1, 1
    if len(rest) == 2:
        return n, rest[1], rest[0], 1
    return n, rest[0], rest[1], prod(rest[2:])


def _split_rows(rows: int, batch: int) -> tuple[int, int]:
    """(N, P) of ``rows`` activation rows: the batch when it divides them, the rest in P."""
    n = batch if rows % batch == 0 else 1
    return n, rows // n


class _Lowering:
    def __init__(self, graph: OpGraph, precision_bytes: int, unsupported: str) -> None:
        self.g, self.pb, self.skip = graph, precision_bytes, unsupported == "skip"
        count = len(graph.values)
        self.const = [v.const for v in graph.values]
        self.root = list(range(count))
        self.users: Counter[int] = Counter()
        self.src: dict[int, tuple[str, ...]] = {}
        self.running: dict[int, _Builder] = {}
        self.builders: list[_Builder] = []
        self.names: set[str] = set()
        self.skipped: list[dict] = []

    # --- the first pass: constants, aliases and users ----------------------------------
    def scan(self) -> None:
        for op in self.g.ops:
            acts = [i for i in op.inputs if not self.const[i]]
            if op.kind in ("alias", "unsupported"):
                # the output is its first activation input (a gather of a table by indices: the indices)
                self.const[op.output] = not acts
                if acts:
                    self.root[op.output] = self.root[acts[0]]
            elif op.kind == "const" or (op.kind in ("pointwise", "vector") and not acts):
                self.const[op.output] = True
            else:
                for i in acts:
                    self.users[self.root[i]] += 1

    # --- helpers ------------------------------------------------------------------------
    def shape(self, v: int) -> tuple[int, ...]:
        return self.g.values[v].shape

    def numel(self, v: int) -> int:
        return self.g.values[v].numel

    def acts(self, op: Op) -> list[int]:
        return [i for i in op.inputs if not self.const[i]]

    def sources(self, values) -> list[str]:
        return [name for v in values for name in self.src.get(self.root[v], ())]

    def unique(self, base: str) -> str:
        name, n = base, 0
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def layer_name(self, op: Op, suffix: str = "") -> str:
        base = op.name or op.fn
        return self.unique(f"{base}.{suffix}" if suffix else base)

    def open(self, name: str, fields: dict, inputs: list[str], out: int) -> _Builder:
        builder = _Builder(name, {"precision_bytes": self.pb, **fields}, list(inputs))
        self.builders.append(builder)
        self.src[out] = (name,)
        self.running[out] = builder
        return builder

    def where(self, op: Op) -> str:
        return f"{self.g.source}: node {op.node or op.name!r} (operator {op.source_op or op.fn!r})"

    # --- the second pass ------------------------------------------------------------------
    def run(self) -> None:
        handlers = {"conv": self.conv, "matmul": self.matmul, "sdpa": self.sdpa,
                    "pointwise": self.pointwise, "vector": self.vector}
        for op in self.g.ops:
            if op.kind in ("alias", "const") or self.const[op.output]:
                continue
            if op.kind == "unsupported":
                if not self.skip:
                    raise WorkloadError(
                        f"{self.where(op)}: this operator is not supported; expected one of the operators "
                        "in codesign.workload.vector_ops.OPERATOR_TABLE, or unsupported='skip' to skip it"
                    )
                self.skipped.append({"node": op.node or op.name, "op": op.source_op or op.fn})
                continue
            handlers[op.kind](op)

    def conv(self, op: Op) -> None:
        a = op.attrs
        x, out = self.shape(op.inputs[0]), self.shape(op.output)
        kernel, stride = list(a["kernel"]) or [1], list(a["stride"]) or [1]
        in_sp, out_sp = list(x[2:]) or [1], list(out[2:]) or [1]
        step = stride[0]
        if a.get("transposed"):
            exact = all(k % s == 0 for k, s in zip(kernel, stride)) and all(
                o == i * s for o, i, s in zip(out_sp, in_sp, stride))
            kernel = [k // s for k, s in zip(kernel, stride)] if exact else kernel
            out_sp = out_sp if exact else in_sp
            step = 1
        fields = dict(op="conv", N=out[0], K=a["out_channels"], C=a["in_channels"], P=out_sp[0],
                      Q=prod(out_sp[1:]), R=kernel[0], S=prod(kernel[1:]), stride=step, groups=a["groups"])
        builder = self.open(self.layer_name(op), fields, self.sources(self.acts(op)), op.output)
        if a.get("bias"):
            builder.epilogue.append("bias")
            builder.vector_ops += 1

    def gemm_fields(self, a: tuple, b: tuple, a_const: bool, b_const: bool) -> dict:
        batch = self.g.batch
        m, k, n = a[-2], a[-1], b[-1]
        lead = prod(a[:-2]) if len(a[:-2]) >= len(b[:-2]) else prod(b[:-2])
        if a_const and not b_const:  # W @ x: features m, tokens n
            rows_n, p = _split_rows(lead * n, batch)
            return dict(op="fc", N=rows_n, K=m, C=k, P=p)
        if b_const or a_const:
            groups = prod(b[:-2])
            rows_n, p = _split_rows(lead * m // groups, batch)
            return dict(op="fc", N=rows_n, K=groups * n, C=groups * k, P=p, groups=groups)
        rows_n, groups = _split_rows(lead, batch)
        return dict(op="matmul", N=rows_n, K=groups * n, C=groups * k, P=m, groups=groups)

    def matmul(self, op: Op) -> None:
        a_val, b_val = op.inputs[0], op.inputs[1]
        fields = self.gemm_fields(op.attrs["a"], op.attrs["b"], self.const[a_val], self.const[b_val])
        builder = self.open(self.layer_name(op), fields, self.sources(self.acts(op)), op.output)
        if op.attrs.get("alpha", 1.0) != 1.0:
            builder.epilogue.append("scale")
            builder.vector_ops += 1
        bias = op.attrs.get("bias")
        if bias is not None:
            builder.epilogue.append("bias")
            builder.vector_ops += 1
            if not self.const[bias]:
                builder.side_inputs += 1
                builder.inputs += self.sources([bias])

    def sdpa(self, op: Op) -> None:
        q, k, v = (self.shape(i) for i in op.inputs[:3])
        lead = q[:-2]
        scores_shape = (*lead, q[-2], k[-2])
        scores = self.open(self.layer_name(op, "scores"), self.gemm_fields(q, (*lead, k[-1], k[-2]), False, False),
                           self.sources([i for i in op.inputs[:2] if not self.const[i]]), op.output)
        scores.epilogue.append("scale")
        scores.vector_ops += 1
        if len(op.inputs) > 3:
            mask = op.inputs[3]
            scores.epilogue.append("mask")
            scores.vector_ops += 1
            if not self.const[mask]:
                scores.side_inputs += int(self.numel(mask) == prod(scores_shape))
                scores.inputs += self.sources([mask])
        softmax = self.vector_layer(self.layer_name(op, "softmax"), "softmax", scores_shape, prod(scores_shape),
                                    [scores.name], ops=vector_ops("softmax"))
        fields = self.gemm_fields(scores_shape, (*lead, v[-2], v[-1]), False, False)
        context = [softmax, *self.sources([op.inputs[2]] if not self.const[op.inputs[2]] else [])]
        self.open(self.layer_name(op, "context"), fields, context, op.output)

    def pointwise(self, op: Op) -> None:
        acts, out_numel = self.acts(op), self.numel(op.output)
        for main in acts:
            others = [i for i in acts if i != main]
            root = self.root[main]
            if (root in self.running and self.users[root] == 1 and self.numel(main) == out_numel
                    and all(self.numel(o) == out_numel for o in others)):
                self.fuse(op, self.running.pop(root), others)
                return
        main = max(acts, key=self.numel)
        side = sum(1 for i in acts if i != main and self.numel(i) == out_numel)
        fn = "batchnorm" if op.fn == "batchnorm" else self.pointwise_name(op.fn, len(acts) > 1)
        name = self.vector_layer(self.layer_name(op), fn, self.shape(op.output),
                                 sum(self.numel(i) for i in acts if i == main), self.sources(acts),
                                 ops=self.ops_of(op, fn), side_inputs=side)
        self.src[op.output] = (name,)

    @staticmethod
    def pointwise_name(fn: str, with_activation: bool) -> str:
        if not with_activation and fn in ("add", "sub"):
            return "bias"
        if not with_activation and fn in ("mul", "div"):
            return "scale"
        return fn

    def ops_of(self, op: Op, fn: str) -> int:
        ops = vector_ops(fn, op.attrs.get("reduce", 1))
        if ops is None:
            raise WorkloadError(f"{self.where(op)}: no vector-op count for {fn!r} (codesign.workload.vector_ops)")
        return ops

    def fuse(self, op: Op, builder: _Builder, others: list[int]) -> None:
        if op.fn == "batchnorm":
            name, ops = "batchnorm", vector_ops("batchnorm_folded")
        else:
            name = self.pointwise_name(op.fn, bool(others))
            ops = self.ops_of(op, name)
        builder.epilogue.append(name)
        builder.vector_ops += ops
        builder.side_inputs += len(others)
        builder.inputs += self.sources(others)
        self.running[op.output] = builder
        self.src[op.output] = (builder.name,)

    def vector(self, op: Op) -> None:
        acts = self.acts(op)
        window, stride = op.attrs.get("window", (1, 1)), op.attrs.get("stride", 1)
        reduce = op.attrs.get("reduce", window[0] * window[1])
        ops = vector_ops(op.fn, reduce)
        if ops is None:
            raise WorkloadError(f"{self.where(op)}: no vector-op count for {op.fn!r} (codesign.workload.vector_ops)")
        in_elems = sum(self.numel(i) for i in acts)
        name = self.vector_layer(self.layer_name(op), op.fn, self.shape(op.output), in_elems, self.sources(acts),
                                 ops=ops, window=window, stride=stride)
        self.src[op.output] = (name,)

    def vector_layer(self, name: str, fn: str, out_shape, in_elems: int, inputs: list[str], *, ops: int,
                     window=(1, 1), stride: int = 1, side_inputs: int = 0) -> str:
        n, k, p, q = _nkpq(tuple(out_shape), self.g.batch)
        windowed = window[0] * window[1] > 1 or stride > 1
        c = k if windowed else max(1, round(in_elems / (n * p * q)))
        fields = dict(op="vector", fn=fn, N=n, K=k, C=c, P=p, Q=q, R=window[0], S=window[1], stride=stride,
                      vector_ops=ops, side_inputs=side_inputs, precision_bytes=self.pb)
        self.builders.append(_Builder(name, fields, list(inputs)))
        return name

    # --- the workload ----------------------------------------------------------------------
    def workload(self) -> Workload:
        w = Workload(self.g.name)
        for b in self.builders:
            extra = {}
            if b.epilogue:
                extra = dict(epilogue=tuple(b.epilogue), vector_ops=b.vector_ops, side_inputs=b.side_inputs)
            w.add_layer(Layer(b.name, **b.fields, **extra))
        for b in self.builders:
            for src in dict.fromkeys(b.inputs):
                if src != b.name:
                    producer = w.nodes[src]["layer"]
                    w.add_edge(src, b.name, bytes=producer.ofmap_elems * producer.precision_bytes)
        if not nx.is_directed_acyclic_graph(w):
            cycle = [u for u, _ in nx.find_cycle(w)]
            raise WorkloadError(f"{self.g.source}: the imported layers form a cycle through {cycle}")
        w.graph["skipped"] = self.skipped
        return w


def lower(graph: OpGraph, *, precision_bytes: int = 1, unsupported: str = "error", scale_batch: int = 1) -> Workload:
    """The workload of ``graph``: MAC layers with fused epilogues, vector layers, edges (see the module docs).

    ``scale_batch`` multiplies every layer's ``N``: a graph read at batch 1 run at a larger batch.
    """
    if unsupported not in UNSUPPORTED:
        raise WorkloadError(f"unsupported={unsupported!r}: expected one of {UNSUPPORTED}")
    state = _Lowering(graph, precision_bytes, unsupported)
    state.scan()
    state.run()
    if not state.builders:
        raise WorkloadError(f"{graph.source}: the network has no layer (no operator reads the input)")
    for builder in state.builders:
        builder.fields["N"] *= scale_batch
    return state.workload()
