"""The one entry to any network: spec kinds, zoo and SCALE-Sim sources, arguments, the operator tables.

These need neither torch nor onnx (tests/test_import_torch.py and test_import_onnx.py cover those).
"""

from __future__ import annotations

import pytest

from codesign.errors import UserError
from codesign.workload import OPERATOR_TABLE, build_workload, source_kind
from codesign.workload.sources import WorkloadError
from codesign.workload.vector_ops import VECTOR_OPS, WINDOWED, vector_ops
from codesign.workload.zoo import ZOO


@pytest.mark.parametrize("spec, kind", [
    ("resnet50", "zoo"), ("torchvision:vit_b_16", "torchvision"), ("models/net.py:Net", "torch"),
    ("package.module:Net", "torch"), ("models/net.onnx", "onnx"), ("topology/resnet18.csv", "scalesim"),
])
def test_source_kind(spec, kind):
    assert source_kind(spec) == kind


def test_a_zoo_network_passes_batch_precision_and_params():
    workload = build_workload("bert_base", batch=2, precision_bytes=2, params={"seq_len": 16})
    assert workload.total_macs == ZOO["bert_base"](seq_len=16, batch=2, precision_bytes=2).total_macs
    assert workload.graph["source"] == "zoo" and workload.graph["skipped"] == []


def test_a_scalesim_topology_is_read_relative_to_base(tmp_path):
    (tmp_path / "net.csv").write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                      "Num Filter, Strides,\nconv1, 9, 9, 3, 3, 4, 8, 1,\n")
    workload = build_workload("net.csv", base=tmp_path, precision_bytes=2)
    assert workload.graph["source"] == "scalesim"
    assert workload.total_macs == 8 * 4 * 9 * 7 * 7


@pytest.mark.parametrize("spec, kwargs, message", [
    ("vgg16", {}, "not a zoo network"),
    ("", {}, "expected a zoo name"),
    ("resnet18", {"batch": 0}, "batch must be a positive integer"),
    ("resnet18", {"params": {"depth": 3}}, "has no parameter 'depth'"),
    ("resnet18", {"input_shape": (3, 64, 64)}, "input_shape does not apply"),
    ("resnet18", {"unsupported": "ignore"}, "unsupported='ignore'"),
])
def test_bad_arguments_are_user_errors(spec, kwargs, message):
    with pytest.raises(WorkloadError, match=message) as caught:
        build_workload(spec, **kwargs)
    assert isinstance(caught.value, UserError) and isinstance(caught.value, ValueError)


def test_every_mapped_operator_has_an_op_count():
    """Each fn an importer can produce is counted in vector_ops (else the lowering would fail on it)."""
    torch_trace = pytest.importorskip("codesign.workload.torch_trace")
    onnx_import = pytest.importorskip("codesign.workload.onnx_import")
    fns = {*torch_trace.POINTWISE.values(), *torch_trace.VECTOR.values(), *torch_trace.POOLS.values(),
           *torch_trace.REDUCE.values(), *onnx_import.POINTWISE.values(), *onnx_import.VECTOR.values(),
           *onnx_import.RESIZE.values(), "relu6", "gelu_tanh", "bias", "scale", "batchnorm_folded", "mask"}
    assert {fn for fn in fns if vector_ops(fn) is None} == set()
    assert vector_ops("maxpool", 9) == 9 and vector_ops("batchnorm_folded") == 0
    assert set(WINDOWED).isdisjoint(VECTOR_OPS)


def test_the_operator_table_is_rows_of_four_texts():
    assert len(OPERATOR_TABLE) >= 10
    assert all(len(row) == 4 and all(isinstance(cell, str) and cell for cell in row) for row in OPERATOR_TABLE)
