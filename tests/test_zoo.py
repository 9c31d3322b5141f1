"""The zoo builds real networks: published MAC counts, sound DAGs, residual edges, errors."""

from __future__ import annotations

import networkx as nx
import pytest

from codesign.workload import Workload, check_workload
from codesign.workload.zoo import (
    GPT2_VOCAB,
    ZOO,
    bert_base,
    build_workload,
    gpt2_decoder,
    mobilenet_v2,
    resnet18,
    resnet50,
)

#: Published MACs at batch 1, 224×224: torchvision's model cards list ResNet-18 at
#: 1.814 and ResNet-50 (v1.5) at 4.09 "GFLOPS" (which are MACs); Sandler et al. 2018,
#: Table 4, give MobileNetV2 1.0 at 300 M MACs. Our counts: 1,814,073,344,
#: 4,089,184,256 and 300,774,272.
PUBLISHED_MACS = {"resnet18": 1.814e9, "resnet50": 4.09e9, "mobilenet_v2": 3.00e8}
CNNS = ("resnet18", "resnet50", "mobilenet_v2")

# Small transformer shapes keep the graph-wide checks fast; the structure is the same.
SMALL = {"bert_base": {"seq_len": 16}, "gpt2_decoder": {"seq_len": 16, "n_layers": 2}}


def _build(name: str, **params) -> Workload:
    return build_workload(name, **{**SMALL.get(name, {}), **params})


def transformer_macs(s: int, d: int, ffn: int, layers: int) -> int:
    """Closed form: Q, K, V, out (4·s·d²), FFN (2·s·d·ffn), scores + context (2·s²·d)."""
    return layers * (4 * s * d * d + 2 * s * d * ffn + 2 * s * s * d)


# --- MAC counts -----------------------------------------------------------------------


@pytest.mark.parametrize("name", CNNS)
def test_cnn_macs_match_published(name):
    macs = ZOO[name]().total_macs
    assert macs == pytest.approx(PUBLISHED_MACS[name], rel=0.02)


def test_exact_cnn_macs():
    # Pinned so that a shape change shows up as a diff, not a drift inside 2 %.
    assert resnet18().total_macs == 1_814_073_344
    assert resnet50().total_macs == 4_089_184_256
    assert mobilenet_v2().total_macs == 300_774_272


@pytest.mark.parametrize("seq_len", [1, 128, 512])
def test_bert_macs_closed_form(seq_len):
    assert bert_base(seq_len=seq_len).total_macs == transformer_macs(seq_len, 768, 3072, 12)


def test_bert_base_default_macs():
    assert bert_base().total_macs == 11_173_625_856


@pytest.mark.parametrize(
    ("seq_len", "n_layers", "d_model", "heads"), [(1024, 12, 768, 12), (64, 3, 256, 4), (1, 1, 64, 1)]
)
def test_gpt2_macs_closed_form(seq_len, n_layers, d_model, heads):
    w = gpt2_decoder(seq_len=seq_len, n_layers=n_layers, d_model=d_model, heads=heads)
    expected = transformer_macs(seq_len, d_model, 4 * d_model, n_layers) + seq_len * d_model * GPT2_VOCAB
    assert w.total_macs == expected


def test_gpt2_small_default_macs():
    assert gpt2_decoder().total_macs == 145_824_153_600


@pytest.mark.parametrize("name", sorted(ZOO))
def test_macs_linear_in_batch(name):
    one = _build(name).total_macs
    assert _build(name, batch=3).total_macs == 3 * one


def test_mobilenet_resolution_scales_macs():
    # Every layer but the fc scales with pixels; 448 = 2·224 keeps every stride exact.
    full, big = mobilenet_v2(), mobilenet_v2(resolution=448)
    fc = full.nodes["fc"]["layer"].macs
    assert big.total_macs - fc == 4 * (full.total_macs - fc)
    assert big.nodes["head"]["layer"].P == 14
    # 'Same' padding rounds odd extents up: 112 / 32 = 3.5 → 4.
    assert mobilenet_v2(resolution=112).nodes["head"]["layer"].P == 4


# --- graph structure ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("precision_bytes", [1, 2])
def test_workload_is_sound(name, precision_bytes):
    w = _build(name, precision_bytes=precision_bytes)
    check_workload(w)
    assert w.graph["name"] == name
    assert nx.is_weakly_connected(w)
    for u, v, data in w.edges(data=True):
        producer = w.nodes[u]["layer"]
        assert data["bytes"] == producer.ofmap_elems * precision_bytes, (u, v)
    for _, data in w.nodes(data=True):
        assert data["layer"].precision_bytes == precision_bytes
    # Exactly one sink: the classifier / LM head, or the last FFN of BERT.
    assert len([n for n in w if w.out_degree(n) == 0]) == 1


@pytest.mark.parametrize("name", CNNS)
def test_cnn_has_one_source_and_ends_in_fc(name):
    w = ZOO[name]()
    sources = [n for n in w if w.in_degree(n) == 0]
    assert len(sources) == 1
    fc = w.nodes["fc"]["layer"]
    assert (fc.op, fc.K, fc.P, fc.Q) == ("fc", 1000, 1, 1)
    assert w.out_degree("fc") == 0


def test_resnet_shapes():
    w = resnet50()
    conv1 = w.nodes["conv1"]["layer"]
    assert (conv1.P, conv1.Q, conv1.R, conv1.stride) == (112, 112, 7, 2)
    # v1.5: the stride sits in the bottleneck's 3×3, the max pool took 112 → 56.
    assert w.nodes["layer1.0.conv1"]["layer"].P == 56
    assert w.nodes["layer2.0.conv1"]["layer"].stride == 1
    assert w.nodes["layer2.0.conv2"]["layer"].stride == 2
    assert w.nodes["layer2.0.conv2"]["layer"].P == 28
    assert w.nodes["layer4.2.conv3"]["layer"].P == 7
    assert w.nodes["fc"]["layer"].C == 2048
    assert w.nodes["layer2.0.downsample"]["layer"].stride == 2
    r18 = resnet18()
    assert "layer1.0.downsample" not in r18  # 64 → 64, identity shortcut
    assert r18.nodes["layer3.0.downsample"]["layer"].K == 256
    assert r18.nodes["fc"]["layer"].C == 512


def test_resnet_residual_edges():
    w = resnet50()
    # The block after a projection shortcut reads branch + downsample.
    assert set(w.predecessors("layer1.1.conv1")) == {"layer1.0.conv3", "layer1.0.downsample"}
    # After an identity shortcut it reads this branch + the previous block's output.
    assert set(w.predecessors("layer1.2.conv1")) == {"layer1.1.conv3", "layer1.0.conv3"}
    # The downsample reads the same tensor as the block's first conv.
    assert set(w.predecessors("layer2.0.downsample")) == set(w.predecessors("layer2.0.conv1"))
    assert set(w.predecessors("fc")) == {"layer4.2.conv3", "layer4.1.conv3"}
    r18 = resnet18()
    assert set(r18.predecessors("layer1.0.conv1")) == {"conv1"}
    assert set(r18.predecessors("layer1.1.conv1")) == {"layer1.0.conv2", "conv1"}


def test_mobilenet_v2_structure():
    w = mobilenet_v2()
    dw = w.nodes["block2.dw"]["layer"]
    assert dw.groups == dw.C == dw.K == 96 and dw.stride == 2 and dw.P == 56
    assert "block1.expand" not in w  # t = 1 block has no expansion
    assert w.nodes["head"]["layer"].K == 1280 and w.nodes["head"]["layer"].P == 7
    # block3 (24 → 24, stride 1) is a residual: block4 reads both addends.
    assert set(w.predecessors("block4.expand")) == {"block3.project", "block2.project"}
    # block2 changes shape (16 → 24, stride 2): no residual out of it alone.
    assert set(w.predecessors("block3.expand")) == {"block2.project"}


def test_transformer_structure():
    w = bert_base(seq_len=32)
    scores = w.nodes["encoder3.scores"]["layer"]
    ctx = w.nodes["encoder3.context"]["layer"]
    # Per head: (s × 64) · (64 × s) and (s × s) · (s × 64).
    assert scores.op == ctx.op == "matmul" and scores.groups == ctx.groups == 12
    assert (scores.gemm_m, scores.gemm_k, scores.gemm_n) == (32, 64, 32)
    assert (ctx.gemm_m, ctx.gemm_k, ctx.gemm_n) == (32, 32, 64)
    assert set(w.predecessors("encoder3.scores")) == {"encoder3.q", "encoder3.k"}
    assert set(w.predecessors("encoder3.context")) == {"encoder3.scores", "encoder3.v"}
    # Residual adds: FFN1 reads out-proj + block input; next block reads ffn2 + out.
    assert set(w.predecessors("encoder3.ffn1")) == {"encoder3.out", "encoder2.ffn2"}
    assert set(w.predecessors("encoder4.q")) == {"encoder3.ffn2", "encoder3.out"}
    ffn1 = w.nodes["encoder3.ffn1"]["layer"]
    assert (ffn1.op, ffn1.K, ffn1.C, ffn1.P, ffn1.Q, ffn1.R, ffn1.S) == ("fc", 3072, 768, 32, 1, 1, 1)
    assert len([n for n in w if n.startswith("encoder")]) == 12 * 8

    g = gpt2_decoder(seq_len=8, n_layers=2)
    head = g.nodes["lm_head"]["layer"]
    assert (head.op, head.K, head.C, head.P) == ("fc", GPT2_VOCAB, 768, 8)
    assert set(g.predecessors("lm_head")) == {"decoder1.ffn2", "decoder1.out"}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_layer_names_readable(name):
    w = _build(name)
    assert all(" " not in n and n == w.nodes[n]["layer"].name for n in w)


# --- errors ---------------------------------------------------------------------------


def test_unknown_network():
    with pytest.raises(ValueError, match="vgg16") as err:
        build_workload("vgg16")
    for name in ZOO:
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("name", "params", "culprit"),
    [
        ("resnet18", {"seq_len": 128}, "seq_len"),
        ("bert_base", {"resolution": 224}, "resolution"),
        ("resnet50", {"batch": 0}, "batch"),
        ("mobilenet_v2", {"resolution": -1}, "resolution"),
        ("gpt2_decoder", {"heads": 2.0}, "heads"),
        ("bert_base", {"seq_len": True}, "seq_len"),
        ("gpt2_decoder", {"n_layers": "12"}, "n_layers"),
    ],
)
def test_bad_parameter(name, params, culprit):
    with pytest.raises(ValueError, match=culprit):
        build_workload(name, **params)


@pytest.mark.parametrize(
    ("builder", "params", "culprit"),
    [
        (resnet18, {"precision_bytes": 0}, "precision_bytes"),
        (mobilenet_v2, {"resolution": 0}, "resolution"),
        (bert_base, {"batch": -2}, "batch"),
        (gpt2_decoder, {"d_model": 1.5}, "d_model"),
        (gpt2_decoder, {"heads": 5}, "heads"),  # 5 does not divide 768
    ],
)
def test_builders_validate(builder, params, culprit):
    with pytest.raises(ValueError, match=culprit):
        builder(**params)


def test_build_workload_passes_params():
    w = build_workload("gpt2_decoder", seq_len=4, n_layers=1, d_model=64, heads=4, batch=2)
    assert w.nodes["decoder0.q"]["layer"].N == 2
    assert w.nodes["decoder0.scores"]["layer"].groups == 4
