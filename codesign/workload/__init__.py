"""Workloads: layers, layer graphs and the zoo of real networks."""

from codesign.workload.graph import Workload, check_workload, topological_order
from codesign.workload.layer import LAYER_OPS, Layer
from codesign.workload.zoo import (
    ZOO,
    bert_base,
    build_workload,
    gpt2_decoder,
    mobilenet_v2,
    resnet18,
    resnet50,
)

__all__ = ["LAYER_OPS", "Layer", "Workload", "check_workload", "topological_order"]
__all__ += ["ZOO", "bert_base", "build_workload", "gpt2_decoder", "mobilenet_v2", "resnet18", "resnet50"]
