"""ONNX files as workloads: torch's exports give the torch importer's layers; hand-built graphs; errors."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from onnx import TensorProto, helper  # noqa: E402

from codesign.workload import build_workload  # noqa: E402
from codesign.workload.sources import WorkloadError  # noqa: E402
from tests.test_import_torch import NETS, ROOT, UNET_MACS, mac_bounds, torchvision_or_skip, vit_macs  # noqa: E402

SCRIPT = runpy.run_path(str(ROOT / "scripts" / "make_example_onnx.py"))
EXAMPLE = ROOT / "designs" / "models"


def export(module, shape, path: Path) -> Path:
    return SCRIPT["export_onnx"](module, shape, path)


def nets():
    return runpy.run_path(str(ROOT / NETS))


def comparable(workload) -> list[tuple]:
    """Every layer but its name, in execution order."""
    names = sorted(workload.nodes, key=lambda n: workload.nodes[n]["index"])
    return [tuple(v for k, v in workload.nodes[n]["layer"].to_dict().items() if k != "name") for n in names]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_a_torchvision_export_imports_to_the_same_mac_layers(name, tmp_path):
    tv = torchvision_or_skip()
    path = export(tv.models.get_model(name, weights=None), (3, 224, 224), tmp_path / f"{name}.onnx")
    from_onnx, from_torch = build_workload(str(path)), build_workload(f"torchvision:{name}")
    assert mac_bounds(from_onnx) == mac_bounds(from_torch)
    assert from_onnx.total_macs == from_torch.total_macs
    assert from_onnx.graph["source"] == "onnx"


def test_the_unet_export_imports_to_the_same_layers(tmp_path):
    path = export(nets()["TinyUNet"](), (3, 32, 32), tmp_path / "unet.onnx")
    from_onnx = build_workload(str(path))
    from_torch = build_workload(f"{NETS}:TinyUNet", base=ROOT)
    assert from_onnx.total_macs == UNET_MACS
    assert comparable(from_onnx) == comparable(from_torch)


def test_the_vit_export_imports_to_the_same_mac_layers_with_softmax(tmp_path):
    path = export(nets()["TinyViT"](), (3, 32, 32), tmp_path / "vit.onnx")
    from_onnx = build_workload(str(path))
    assert from_onnx.total_macs == vit_macs()
    assert mac_bounds(from_onnx) == mac_bounds(build_workload(f"{NETS}:TinyViT", base=ROOT))
    assert sum(l.fn == "softmax" for l in from_onnx.layers) == 2
    residual = [l for l in from_onnx.layers if l.epilogue == ("bias", "add")]
    assert len(residual) == 4 and {l.side_inputs for l in residual} == {1}


def test_the_committed_example_is_what_the_script_exports(tmp_path):
    fresh = build_workload(str(SCRIPT["main"](tmp_path / "tiny_vit.onnx")))
    committed = build_workload("models/tiny_vit.onnx", base=EXAMPLE.parent)
    assert comparable(committed) == comparable(fresh)
    assert mac_bounds(committed) == mac_bounds(build_workload("models/tiny_vit.py:TinyViT", base=EXAMPLE.parent))


def test_a_file_at_batch_one_runs_at_any_batch():
    one = build_workload(str(EXAMPLE / "tiny_vit.onnx"))
    four = build_workload(str(EXAMPLE / "tiny_vit.onnx"), batch=4)
    assert four.total_macs == 4 * one.total_macs
    assert {l.N for l in four.layers} == {4}


def test_an_unsupported_onnx_op_names_the_node_the_op_and_the_file(tmp_path):
    path = export(nets()["WithCumsum"](), (3, 32, 32), tmp_path / "cumsum.onnx")
    with pytest.raises(WorkloadError) as caught:
        build_workload(str(path))
    assert "cumsum.onnx" in str(caught.value) and "'CumSum'" in str(caught.value)
    skipped = build_workload(str(path), unsupported="skip")
    assert [s["op"] for s in skipped.graph["skipped"]] == ["CumSum"]
    assert sum(not l.is_vector for l in skipped.layers) == 2


# --- hand-built graphs ---------------------------------------------------------------------------


def _save(tmp_path, nodes, inputs, outputs, initializers, name="hand.onnx") -> Path:
    graph = helper.make_graph(nodes, "hand", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _weight(name, *dims):
    return helper.make_tensor(name, TensorProto.FLOAT, dims, [0.0] * int(torch.tensor(dims).prod()))


def test_a_hand_built_graph_with_gemm_transb_alpha_bn_and_global_pool(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1, alpha=0.5),
    ]
    inits = [_weight("w", 8, 2, 3, 3), *(_weight(n, 8) for n in "gbmv"), _weight("fw", 10, 8), _weight("fb", 10)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = _save(tmp_path, nodes, [x], [y], inits)
    workload = build_workload(str(path), batch=2)
    layers = {l.name: l for l in workload.layers}
    conv, pool, fc = layers["conv"], layers["pool"], layers["fc"]
    assert (conv.N, conv.K, conv.C, conv.P, conv.groups, conv.epilogue) == (2, 8, 4, 16, 2, ("batchnorm", "relu"))
    assert (pool.fn, pool.R, pool.S, pool.P, pool.vector_ops) == ("avgpool", 16, 16, 1, 256)
    assert (fc.op, fc.N, fc.K, fc.C, fc.epilogue) == ("fc", 2, 10, 8, ("scale", "bias"))
    assert workload.total_macs == 2 * (8 * 2 * 9 * 256 + 10 * 8)


def test_a_hand_built_einsum_and_batched_matmul(tmp_path):
    nodes = [
        helper.make_node("Einsum", ["q", "k"], ["s"], name="scores", equation="bhld,bhsd->bhls"),
        helper.make_node("Softmax", ["s"], ["a"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["a", "v"], ["y"], name="context"),
    ]
    q = helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 2, 8, 4])
    k = helper.make_tensor_value_info("k", TensorProto.FLOAT, [1, 2, 8, 4])
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2, 8, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = _save(tmp_path, nodes, [q, k, v], [y], [])
    layers = {l.name: l for l in build_workload(str(path)).layers}
    scores, context = layers["scores"], layers["context"]
    # k and v are further graph inputs, so activations: matmul layers with a group per head.
    assert (scores.op, scores.N, scores.K, scores.C, scores.P, scores.groups) == ("matmul", 1, 2 * 8, 2 * 4, 8, 2)
    assert (context.K, context.C, context.groups) == (2 * 4, 2 * 8, 2)
    assert layers["softmax"].fn == "softmax"


def test_onnx_file_errors(tmp_path):
    with pytest.raises(WorkloadError, match="no such ONNX file"):
        build_workload("missing.onnx", base=tmp_path)
    (tmp_path / "junk.onnx").write_text("not a model")
    with pytest.raises(WorkloadError, match="not a readable ONNX file"):
        build_workload(str(tmp_path / "junk.onnx"))
    with pytest.raises(WorkloadError, match="does not match"):
        build_workload(str(EXAMPLE / "tiny_vit.onnx"), input_shape=(3, 64, 64))
