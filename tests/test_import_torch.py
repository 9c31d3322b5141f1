"""PyTorch networks as workloads: every torchvision classifier, the zoo's twins, user modules, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from codesign.errors import UserError  # noqa: E402
from codesign.workload import Workload, build_workload, check_workload, source_kind  # noqa: E402
from codesign.workload.sources import WorkloadError  # noqa: E402
from codesign.workload.torch_import import build_on_meta, require  # noqa: E402
from codesign.workload.zoo import ZOO  # noqa: E402

DATA = Path(__file__).parent / "data"
NETS = "tests/data/import_nets.py"
ROOT = Path(__file__).resolve().parents[1]

#: Hand counts at batch 1 on 3×32×32 (tests/data/import_nets.py).
#: UNet: enc1 8·3·9·32², enc2 16·8·9·16², up (transposed 2×2/2: C_in·C_out·k²·H_in·W_in) 16·8·4·16²,
#: dec 8·16·9·32², head 2·8·32².
UNET_MACS = 8 * 3 * 9 * 32 * 32 + 16 * 8 * 9 * 16 * 16 + 16 * 8 * 4 * 16 * 16 + 8 * 16 * 9 * 32 * 32 + 2 * 8 * 32 * 32


def vit_macs(dim=64, depth=2, mlp=128, patch=4, classes=10, image=32) -> int:
    """Patch conv, per block qkv + scores + context + proj + MLP (T tokens), head."""
    t = (image // patch) ** 2
    block = t * dim * 3 * dim + 2 * t * t * dim + t * dim * dim + 2 * t * dim * mlp
    return dim * 3 * patch * patch * t + depth * block + dim * classes


def mac_bounds(workload: Workload) -> list[tuple]:
    """The MAC layers' loop bounds in execution order (the order the layers were added)."""
    names = sorted(workload.nodes, key=lambda n: workload.nodes[n]["index"])
    layers = [workload.nodes[n]["layer"] for n in names]
    return [(l.op, l.N, l.K, l.C, l.P, l.Q, l.R, l.S, l.stride, l.groups) for l in layers if not l.is_vector]


def torchvision_or_skip():
    """torchvision through the importer (which also copes with a torchvision whose compiled ops do not load)."""
    try:
        return require("torchvision")
    except WorkloadError as exc:
        pytest.skip(str(exc))


def torchvision_input(tv, name: str, module) -> tuple[int, ...]:
    size = getattr(module, "image_size", None)
    if isinstance(size, int):
        return (3, size, size)
    crop = list(tv.models.get_model_weights(name).DEFAULT.transforms().crop_size)
    return (3, *(crop if len(crop) == 2 else crop * 2))


def flop_counter_macs(module, shape) -> int:
    """conv + linear + matmul MACs as torch.utils.flop_counter counts them (flops / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        example = torch.empty((1, *shape))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            module(example)
    return counter.get_total_flops() // 2


# --- every torchvision classifier --------------------------------------------------------


def test_every_torchvision_classifier_has_the_flop_counters_macs():
    tv = torchvision_or_skip()
    names = tv.models.list_models(module=tv.models)
    assert len(names) >= 80
    worst, off = 0.0, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # googlenet's and inception's init warnings
        for name in names:
            workload = build_workload(f"torchvision:{name}")
            check_workload(workload)
            module = build_on_meta(lambda name=name: tv.models.get_model(name, weights=None), {}, name)
            reference = flop_counter_macs(module, torchvision_input(tv, name, module))
            error = abs(workload.total_macs - reference) / reference
            worst = max(worst, error)
            if error > 1e-3:
                off[name] = (workload.total_macs, reference)
    assert not off, f"MACs off the flop counter's by more than 0.1 %: {off}"
    print(f"{len(names)} torchvision models, max relative error {worst:.2e}")


def test_torchvision_inputs_default_to_the_models_own():
    assert build_workload("torchvision:inception_v3").layers[0].P == 149  # 299 → 3×3/2
    assert build_workload("torchvision:resnet18", input_shape=(3, 128, 128)).layers[0].P == 64


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2"])
def test_the_zoo_equals_its_torchvision_import_layer_for_layer(name):
    zoo = ZOO[name]()
    imported = build_workload(f"torchvision:{name}")
    assert mac_bounds(imported) == mac_bounds(zoo)
    assert imported.total_macs == zoo.total_macs


def test_batch_and_precision_reach_every_layer():
    workload = build_workload("torchvision:resnet18", batch=4, precision_bytes=2)
    assert {l.N for l in workload.layers} == {4}
    assert {l.precision_bytes for l in workload.layers} == {2}
    assert workload.total_macs == 4 * ZOO["resnet18"]().total_macs
    assert workload.graph["source"] == "torchvision"


def test_resnet_epilogues_fold_batch_norm_and_fuse_the_residual_add():
    layers = {l.name: l for l in build_workload("torchvision:resnet18").layers}
    conv2 = layers["layer1.0.conv2"]
    assert conv2.epilogue == ("batchnorm", "add", "relu")
    assert (conv2.vector_ops, conv2.side_inputs) == (2, 1)  # batch norm folded: 0 ops
    assert layers["maxpool"].fn == "maxpool" and (layers["maxpool"].R, layers["maxpool"].stride) == (3, 2)
    assert layers["maxpool"].vector_ops == 9


# --- small networks written for the tests ----------------------------------------------------


def test_a_unet_imports_with_transposed_convs_and_skip_concatenations():
    workload = build_workload(f"{NETS}:TinyUNet", base=ROOT)
    assert workload.total_macs == UNET_MACS
    layers = {l.name: l for l in workload.layers}
    up = layers["up"]
    assert (up.K, up.C, up.P, up.Q, up.R, up.S, up.stride) == (8, 16, 32, 32, 1, 1, 1)  # output map, k/s taps
    concat = [l for l in workload.layers if l.fn == "concat"]
    assert len(concat) == 1 and concat[0].K == 16
    assert set(workload.predecessors(concat[0].name)) == {"up", "enc1"}


def test_a_vit_imports_attention_with_heads_softmax_and_residual_epilogues():
    workload = build_workload(f"{NETS}:TinyViT", base=ROOT)
    assert workload.total_macs == vit_macs()
    layers = {l.name: l for l in workload.layers}
    scores, context = layers["blocks.0.attn.scores"], layers["blocks.0.attn.context"]
    assert (scores.op, scores.N, scores.K, scores.C, scores.P, scores.groups) == ("matmul", 1, 4 * 64, 64, 64, 4)
    assert (context.op, context.K, context.C, context.P, context.groups) == ("matmul", 64, 4 * 64, 64, 4)
    softmax = layers["blocks.0.attn.softmax"]
    assert softmax.op == "vector" and softmax.fn == "softmax" and softmax.ofmap_elems == 4 * 64 * 64
    assert list(workload.predecessors(softmax.name)) == [scores.name]
    assert {"blocks.0.attn.softmax", "blocks.0.attn.qkv"} <= set(nx_ancestors(workload, context.name))
    for name in ("blocks.0.attn.proj", "blocks.0.fc2"):
        assert layers[name].epilogue == ("bias", "add") and layers[name].side_inputs == 1
    assert layers["blocks.0.fc1"].epilogue == ("bias", "gelu")
    assert layers["blocks.0.norm1"].fn == "layernorm"


def nx_ancestors(workload, name):
    import networkx as nx

    return nx.ancestors(workload, name)


def test_layer_names_are_unique_module_paths():
    workload = build_workload(f"{NETS}:TinyViT", base=ROOT)
    assert "blocks.1.fc2" in workload and "patch" in workload and "head" in workload


# --- naming a module --------------------------------------------------------------------------


def test_a_file_spec_uses_the_files_input_shape_and_passes_params():
    small = build_workload(f"{NETS}:TinyViT", base=ROOT, params={"depth": 1, "dim": 32, "mlp": 64})
    assert small.total_macs == vit_macs(dim=32, depth=1, mlp=64)
    relative = build_workload("data/import_nets.py:TinyViT", base=ROOT / "tests")
    assert relative.total_macs == vit_macs()


def test_a_package_module_spec_and_a_factory():
    workload = build_workload("import_nets:make_vit", base=DATA, params={"depth": 3})
    assert workload.total_macs == vit_macs(depth=3)
    assert source_kind("import_nets:make_vit") == "torch"


def test_input_shape_overrides_the_files_and_is_needed_without_one(tmp_path):
    bigger = build_workload(f"{NETS}:TinyUNet", base=ROOT, input_shape=(3, 64, 64))
    assert bigger.total_macs == 4 * UNET_MACS
    (tmp_path / "plain.py").write_text("from torch import nn\n\nclass Net(nn.Linear):\n"
                                       "    def __init__(self):\n        super().__init__(4, 2)\n")
    with pytest.raises(WorkloadError, match="input_shape is needed"):
        build_workload("plain.py:Net", base=tmp_path)
    assert build_workload("plain.py:Net", base=tmp_path, input_shape=(4,)).total_macs == 8


def test_bad_module_specs_are_user_errors():
    with pytest.raises(WorkloadError, match="no such Python file"):
        build_workload("missing.py:Net", base=ROOT)
    with pytest.raises(WorkloadError, match="has no attribute 'Nope'"):
        build_workload(f"{NETS}:Nope", base=ROOT)
    with pytest.raises(WorkloadError, match="takes no parameter 'width'"):
        build_workload(f"{NETS}:TinyViT", base=ROOT, params={"width": 3})
    with pytest.raises(WorkloadError, match="no classification model 'resnet9'"):
        build_workload("torchvision:resnet9")
    with pytest.raises(UserError, match="not a zoo network"):
        build_workload("vgg16")


# --- unsupported operators ----------------------------------------------------------------------


def test_an_unsupported_op_names_the_node_the_op_and_the_source():
    with pytest.raises(WorkloadError) as caught:
        build_workload(f"{NETS}:WithCumsum", base=ROOT)
    message = str(caught.value)
    assert "import_nets.py:WithCumsum" in message and "cumsum" in message and "unsupported='skip'" in message


def test_skipping_an_unsupported_op_lists_it_and_keeps_the_graph_connected():
    workload = build_workload(f"{NETS}:WithCumsum", base=ROOT, unsupported="skip")
    assert [s["op"] for s in workload.graph["skipped"]] == ["aten.cumsum.default"]
    assert list(workload.predecessors("out")) == ["conv"]


# --- the cache --------------------------------------------------------------------------------


def test_imports_are_cached_and_callers_get_their_own_copy():
    first = build_workload(f"{NETS}:TinyUNet", base=ROOT)
    first.graph["name"] = "changed"
    again = build_workload(f"{NETS}:TinyUNet", base=ROOT)
    assert again.graph["name"] != "changed" and again.total_macs == UNET_MACS


def test_token_ids_in_reach_the_layers_through_the_embedding_gather():
    workload = build_workload("tests/data/import_tokens.py:TokenClassifier", base=ROOT, batch=2)
    (out,) = workload.layers
    assert (out.op, out.N, out.K, out.C, out.P) == ("fc", 2, 3, 16, 12)


def test_common_torch_modules_import(tmp_path):
    (tmp_path / "common.py").write_text(
        "from torch import nn\nINPUT_SHAPE = (16, 32)\n"
        "class Encoder(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.l = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2)\n"
        "    def forward(self, x):\n        return self.l(x)\n"
        "class Recurrent(nn.LSTM):\n    def __init__(self):\n        super().__init__(32, 32, batch_first=True)\n"
        "    def forward(self, x):\n        return super().forward(x)[0]\n")
    encoder = build_workload("common.py:Encoder", base=tmp_path)
    s, d, ffn = 16, 32, 64
    assert encoder.total_macs == 2 * (4 * s * d * d + 2 * s * d * ffn + 2 * s * s * d)
    assert sum(l.fn == "softmax" for l in encoder.layers) == 2
    lstm = build_workload("common.py:Recurrent", base=tmp_path)
    assert lstm.total_macs == 16 * 2 * 32 * 4 * 32  # per step: input and hidden projections to 4 gates
