"""Workloads: layers, layer graphs, the zoo of real networks, and importers of any network a user has.

``build_workload`` is :func:`codesign.workload.sources.build_workload` (zoo names, PyTorch modules,
``torchvision:NAME``, ONNX files, SCALE-Sim topologies); the zoo's own builder stays
:func:`codesign.workload.zoo.build_workload`.
"""

from codesign.workload.graph import Workload, check_workload, topological_order
from codesign.workload.layer import LAYER_OPS, Layer
from codesign.workload.opgraph import WorkloadError
from codesign.workload.sources import build_workload, source_kind
from codesign.workload.vector_ops import OPERATOR_TABLE
from codesign.workload.zoo import (
    ZOO,
    bert_base,
    gpt2_decoder,
    mobilenet_v2,
    resnet18,
    resnet50,
)

__all__ = ["LAYER_OPS", "Layer", "Workload", "check_workload", "topological_order"]
__all__ += ["OPERATOR_TABLE", "WorkloadError", "build_workload", "source_kind"]
__all__ += ["ZOO", "bert_base", "gpt2_decoder", "mobilenet_v2", "resnet18", "resnet50"]
