"""The operator graph both importers produce and :mod:`codesign.workload.lowering` turns into layers.

An importer (PyTorch, ONNX) reads a network into a flat list of :class:`Op` in execution order,
each reading and writing :class:`Value` s by number. Values carry their shape (batch included) and
whether they are *constant*: a weight, an initializer, a buffer, a shape, or anything computed only
from constants. An op's ``kind`` says how the lowering treats it:

``conv``
    a convolution: ``inputs = (x, weight)``, attrs ``stride``, ``groups``, ``kernel``,
    ``transposed``, ``bias`` (a bias is added in the output stage).
``matmul``
    ``a @ b`` with ``attrs["a"] = (..., M, K)`` and ``attrs["b"] = (..., K, N)`` (the importer
    has already applied any transposes), ``inputs = (a, b)``, attrs ``bias``.
``sdpa``
    scaled dot-product attention: ``inputs = (q, k, v[, mask])``.
``pointwise``
    an elementwise op ``fn`` of one activation and maybe a second operand.
``vector``
    any other non-MAC operator ``fn`` (softmax, norms, pooling with attrs ``window`` and
    ``stride``, reductions, resize, concat).
``alias``
    shape-only (reshape, permute, slicing, identity, dropout at inference): the output *is* the
    first input.
``const``
    the output is a constant whatever the inputs (``Shape`` of a static tensor).
``unsupported``
    an operator the importer cannot map; the lowering raises or skips it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from codesign.errors import UserError

OP_KINDS = ("conv", "matmul", "sdpa", "pointwise", "vector", "alias", "const", "unsupported")


class WorkloadError(UserError, ValueError):
    """A network that cannot be read as a workload: names the spec or file, the node, the op, what was expected."""


@dataclass(frozen=True)
class Value:
    """A tensor of the network: its shape (batch first) and whether it is a constant."""

    shape: tuple[int, ...]
    const: bool = False

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass
class Op:
    """One operator: ``kind`` (see the module docs), canonical ``fn``, a ``name`` for its layer.

    ``node`` and ``source_op`` say what the importer saw (the node and its operator), for messages.
    """

    kind: str
    fn: str
    name: str
    inputs: tuple[int, ...]
    output: int
    attrs: dict = field(default_factory=dict)
    node: str = ""
    source_op: str = ""

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError(f"op {self.name!r}: kind must be one of {OP_KINDS}, got {self.kind!r}")


@dataclass
class OpGraph:
    """A network as values and ops in execution order, plus what it came from."""

    name: str
    source: str  # the spec or file, for messages
    batch: int
    values: list[Value] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    def value(self, shape, *, const: bool = False) -> int:
        """Add a value; return its number."""
        self.values.append(Value(tuple(int(d) for d in shape), const))
        return len(self.values) - 1
