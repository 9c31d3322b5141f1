"""A zoo of real networks at their published shapes, as :class:`Workload` DAGs.

Shapes follow the papers (and the reference implementations people measure):

* ResNet-18 / ResNet-50: He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016, in torchvision's "v1.5" layout (the stride of a bottleneck sits in its
  3×3 conv, not its first 1×1). torchvision lists 1.814 and 4.09 "GFLOPS", which are
  multiply-accumulates.
* MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", CVPR 2018: layers from Table 2 (width 1.0), 300 M MACs at 224×224 in Table 4.
* BERT-base: Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers",
  NAACL 2019 (12 layers, d = 768, 12 heads, FFN 3072).
* GPT-2 small: Radford et al., "Language Models are Unsupervised Multitask Learners",
  2019 (12 layers, d = 768, 12 heads, FFN 4·d, vocabulary 50257).

Only MAC layers are nodes. Elementwise work (ReLU, residual adds, layer norm,
softmax, pooling) is folded into edges, and pooling/strides show up in the next
layer's shapes. A tensor that is the sum of a branch and a shortcut is tracked as
the pair of layers that produced its addends, and each consumer gets an edge from
both — so a residual add is "two edges into the next layer". For an identity
shortcut the shortcut addend is named by the layer that last wrote that tensor
(earlier addends of the running sum still reach the consumer transitively through
the branch), so every edge carries exactly one tensor the add reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from codesign.workload.graph import Workload
from codesign.workload.layer import Layer

#: GPT-2's BPE vocabulary (Radford et al. 2019); sets the LM head's width.
GPT2_VOCAB = 50257
#: ImageNet classes of the CNN classifiers.
IMAGENET_CLASSES = 1000

#: A tensor as the layers whose outputs sum to it: 1 producer, or 2 after a residual
#: add (branch first, shortcut second). Empty for the network input.
Tensor = tuple[str, ...]


def _check_positive(**values: object) -> None:
    """Raise ``ValueError`` naming the first argument that is not a positive int."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _out_size(size: int, kernel: int, stride: int) -> int:
    """Output extent of a 'same'-padded window (pad = kernel // 2), as in the papers."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _residual(branch: Tensor, shortcut: Tensor) -> Tensor:
    """The sum ``branch + shortcut``, as the pair of layers the add reads.

    A shortcut from the network input (e.g. BERT's embeddings) has no producing layer.
    """
    return branch[:1] + shortcut[:1]


@dataclass
class _Net:
    """A workload under construction plus the batch and precision its layers share."""

    w: Workload
    batch: int
    pb: int

    def conv(
        self, name: str, x: Tensor, *, c: int, k: int, size: int, kernel: int,
        stride: int = 1, groups: int = 1,
    ) -> tuple[Tensor, int]:
        """Add a square conv reading ``x`` (``size``×``size``); return its tensor and output size."""
        out = _out_size(size, kernel, stride)
        layer = Layer(
            name, "conv", N=self.batch, K=k, C=c, P=out, Q=out, R=kernel, S=kernel,
            stride=stride, groups=groups, precision_bytes=self.pb,
        )
        return (self.w.add_layer(layer, x),), out

    def fc(self, name: str, x: Tensor, *, c: int, k: int, tokens: int = 1) -> Tensor:
        """Add a linear layer ``c → k`` over ``tokens`` tokens (tokens in P)."""
        layer = Layer(name, "fc", N=self.batch, K=k, C=c, P=tokens, precision_bytes=self.pb)
        return (self.w.add_layer(layer, x),)

    def matmul(self, name: str, a: Tensor, b: Tensor, *, k: int, c: int, tokens: int, heads: int) -> Tensor:
        """Add an activation×activation product with ``heads`` independent GEMMs."""
        layer = Layer(name, "matmul", N=self.batch, K=k, C=c, P=tokens, groups=heads, precision_bytes=self.pb)
        return (self.w.add_layer(layer, (*a, *b)),)


# --- ResNet ---------------------------------------------------------------------------


def _resnet_stem(net: _Net) -> tuple[Tensor, int]:
    """conv1 7×7/2 (224 → 112) then the 3×3/2 max pool (→ 56), which is not a node."""
    x, size = net.conv("conv1", (), c=3, k=64, size=224, kernel=7, stride=2)
    return x, _out_size(size, 3, 2)


def _basic_block(net: _Net, prefix: str, x: Tensor, *, c: int, k: int, size: int, stride: int):
    """Two 3×3 convs; a 1×1 downsample on the shortcut when the shape changes."""
    y, out = net.conv(f"{prefix}.conv1", x, c=c, k=k, size=size, kernel=3, stride=stride)
    y, out = net.conv(f"{prefix}.conv2", y, c=k, k=k, size=out, kernel=3)
    if stride != 1 or c != k:
        x, _ = net.conv(f"{prefix}.downsample", x, c=c, k=k, size=size, kernel=1, stride=stride)
    return _residual(y, x), out


def _bottleneck(net: _Net, prefix: str, x: Tensor, *, c: int, width: int, size: int, stride: int):
    """1×1 reduce, 3×3 (carrying the stride: v1.5), 1×1 expand ×4, plus shortcut."""
    k = 4 * width
    y, _ = net.conv(f"{prefix}.conv1", x, c=c, k=width, size=size, kernel=1)
    y, out = net.conv(f"{prefix}.conv2", y, c=width, k=width, size=size, kernel=3, stride=stride)
    y, out = net.conv(f"{prefix}.conv3", y, c=width, k=k, size=out, kernel=1)
    if stride != 1 or c != k:
        x, _ = net.conv(f"{prefix}.downsample", x, c=c, k=k, size=size, kernel=1, stride=stride)
    return _residual(y, x), out


def _resnet(
    name: str, block: Callable, depths: Sequence[int], expansion: int, batch: int, precision_bytes: int
) -> Workload:
    _check_positive(batch=batch, precision_bytes=precision_bytes)
    net = _Net(Workload(name), batch, precision_bytes)
    x, size = _resnet_stem(net)
    c = 64
    for stage, (depth, width) in enumerate(zip(depths, (64, 128, 256, 512)), start=1):
        for i in range(depth):
            stride = 2 if (i == 0 and stage > 1) else 1
            kw = {"k": width} if expansion == 1 else {"width": width}
            x, size = block(net, f"layer{stage}.{i}", x, c=c, size=size, stride=stride, **kw)
            c = width * expansion
    # Global average pool folds into the fc's input edge.
    net.fc("fc", x, c=c, k=IMAGENET_CLASSES)
    return net.w


def resnet18(*, batch: int = 1, precision_bytes: int = 1) -> Workload:
    """ResNet-18 at 224×224 (He et al. 2016): 1,814,073,344 MACs at batch 1, fc included."""
    return _resnet("resnet18", _basic_block, (2, 2, 2, 2), 1, batch, precision_bytes)


def resnet50(*, batch: int = 1, precision_bytes: int = 1) -> Workload:
    """ResNet-50 v1.5 at 224×224 (He et al. 2016): 4,089,184,256 MACs at batch 1, fc included."""
    return _resnet("resnet50", _bottleneck, (3, 4, 6, 3), 4, batch, precision_bytes)


# --- MobileNetV2 ----------------------------------------------------------------------

#: Sandler et al. 2018, Table 2: expansion t, output channels c, repeats n, first stride s.
_MBV2_SETTINGS = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _inverted_residual(net: _Net, prefix: str, x: Tensor, *, c: int, k: int, size: int, stride: int, t: int):
    """1×1 expand (absent when t = 1), 3×3 depthwise, linear 1×1 project; residual when shapes match."""
    hidden = c * t
    y = x
    if t != 1:
        y, _ = net.conv(f"{prefix}.expand", y, c=c, k=hidden, size=size, kernel=1)
    # Depthwise: groups = C = K, one 3×3 filter per channel.
    y, out = net.conv(
        f"{prefix}.dw", y, c=hidden, k=hidden, size=size, kernel=3, stride=stride, groups=hidden
    )
    y, out = net.conv(f"{prefix}.project", y, c=hidden, k=k, size=out, kernel=1)
    return (_residual(y, x) if stride == 1 and c == k else y), out


def mobilenet_v2(*, batch: int = 1, precision_bytes: int = 1, resolution: int = 224) -> Workload:
    """MobileNetV2 1.0 (Sandler et al. 2018): 300,774,272 MACs at 224×224, batch 1.

    ``resolution`` is the square input side; the 3×3/2 stem and the strided depthwise
    convs shrink it with 'same' padding (224 → 112 → … → 7).
    """
    _check_positive(batch=batch, precision_bytes=precision_bytes, resolution=resolution)
    net = _Net(Workload("mobilenet_v2"), batch, precision_bytes)
    x, size = net.conv("stem", (), c=3, k=32, size=resolution, kernel=3, stride=2)
    c, idx = 32, 0
    for t, k, n, s in _MBV2_SETTINGS:
        for i in range(n):
            idx += 1
            stride = s if i == 0 else 1  # only the first block of a stage downsamples
            x, size = _inverted_residual(net, f"block{idx}", x, c=c, k=k, size=size, stride=stride, t=t)
            c = k
    x, size = net.conv("head", x, c=c, k=1280, size=size, kernel=1)
    net.fc("fc", x, c=1280, k=IMAGENET_CLASSES)  # after the global average pool
    return net.w


# --- Transformers ---------------------------------------------------------------------


def _transformer_block(
    net: _Net, prefix: str, x: Tensor, *, tokens: int, d: int, heads: int, ffn: int
) -> Tensor:
    """Multi-head attention + FFN with two residual adds.

    Post-LN (BERT) and pre-LN (GPT-2) blocks differ only in where the layer norms
    sit on the edges, which are not nodes, so both give this same DAG.
    Attention scores are per head ``tokens×d_head · d_head×tokens`` (K = heads·tokens,
    C = d) and the context is per head ``tokens×tokens · tokens×d_head`` (K = d,
    C = heads·tokens), both with ``groups = heads``.
    """
    q = net.fc(f"{prefix}.q", x, c=d, k=d, tokens=tokens)
    k = net.fc(f"{prefix}.k", x, c=d, k=d, tokens=tokens)
    v = net.fc(f"{prefix}.v", x, c=d, k=d, tokens=tokens)
    scores = net.matmul(f"{prefix}.scores", q, k, k=heads * tokens, c=d, tokens=tokens, heads=heads)
    # Softmax sits on the scores → context edge.
    ctx = net.matmul(f"{prefix}.context", scores, v, k=d, c=heads * tokens, tokens=tokens, heads=heads)
    x = _residual(net.fc(f"{prefix}.out", ctx, c=d, k=d, tokens=tokens), x)
    h = net.fc(f"{prefix}.ffn1", x, c=d, k=ffn, tokens=tokens)  # GELU on the outgoing edge
    return _residual(net.fc(f"{prefix}.ffn2", h, c=ffn, k=d, tokens=tokens), x)


def _check_heads(d_model: int, heads: int) -> None:
    if d_model % heads:
        raise ValueError(f"heads={heads} must divide d_model={d_model}")


def bert_base(*, seq_len: int = 128, batch: int = 1, precision_bytes: int = 1) -> Workload:
    """BERT-base encoder stack (Devlin et al. 2019), embeddings and pooler excluded.

    MACs are ``batch · 12 · (4·s·d² + 2·s·d·ffn + 2·s²·d)`` with d = 768, ffn = 3072:
    11,173,625,856 at s = 128, batch 1 (attention counted dense).
    The embedding lookup is a gather, not a MAC layer, so each ``encoder0`` Q/K/V
    projection is a source.
    """
    _check_positive(seq_len=seq_len, batch=batch, precision_bytes=precision_bytes)
    net = _Net(Workload("bert_base"), batch, precision_bytes)
    x: Tensor = ()
    for i in range(12):
        x = _transformer_block(net, f"encoder{i}", x, tokens=seq_len, d=768, heads=12, ffn=3072)
    return net.w


def gpt2_decoder(
    *, seq_len: int = 1024, batch: int = 1, n_layers: int = 12, d_model: int = 768, heads: int = 12,
    precision_bytes: int = 1,
) -> Workload:
    """GPT-2 decoder stack (Radford et al. 2019; defaults are GPT-2 small) prefilling ``seq_len`` tokens.

    MACs are ``batch · (n_layers · (4·s·d² + 2·s·d·4d + 2·s²·d) + s·d·50257)``, the
    last term being the LM head; causal attention is counted dense (a dense
    accelerator computes the masked half too). GPT-2 small at s = 1024:
    145,824,153,600 MACs at batch 1 (39.5 G of them in the LM head).
    """
    _check_positive(seq_len=seq_len, batch=batch, n_layers=n_layers, d_model=d_model, heads=heads,
                    precision_bytes=precision_bytes)
    _check_heads(d_model, heads)
    net = _Net(Workload("gpt2_decoder"), batch, precision_bytes)
    x: Tensor = ()
    for i in range(n_layers):
        x = _transformer_block(net, f"decoder{i}", x, tokens=seq_len, d=d_model, heads=heads, ffn=4 * d_model)
    net.fc("lm_head", x, c=d_model, k=GPT2_VOCAB, tokens=seq_len)  # after the final layer norm
    return net.w


# --- Registry -------------------------------------------------------------------------

ZOO: dict[str, Callable[..., Workload]] = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "bert_base": bert_base,
    "gpt2_decoder": gpt2_decoder,
}


def build_workload(name: str, **params: int) -> Workload:
    """Build the zoo network ``name`` with keyword ``params`` (all positive ints).

    Raises ``ValueError`` for an unknown network (listing the valid ones), a keyword
    the builder does not take, or a value that is not a positive int.
    """
    if name not in ZOO:
        raise ValueError(f"unknown network {name!r}; valid networks: {', '.join(sorted(ZOO))}")
    builder = ZOO[name]
    accepted = inspect.signature(builder).parameters
    for key, value in params.items():
        if key not in accepted:
            raise ValueError(
                f"network {name!r} has no parameter {key!r}; it accepts: {', '.join(accepted)}"
            )
        _check_positive(**{key: value})
    return builder(**params)
