"""A workload: a networkx DiGraph of layers with tensor sizes on its edges.

Nodes are layer names with the :class:`~codesign.workload.layer.Layer` under the
``layer`` attribute; an edge ``u → v`` means ``v`` reads the output of ``u`` and
carries ``bytes`` (the size of that tensor). Elementwise work (ReLU, residual
adds, pooling, softmax, layer norm) holds no MACs and is folded into the edges:
a residual add becomes two edges into the next layer.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from codesign.workload.layer import Layer


class Workload(nx.DiGraph):
    """A DNN as a DAG of :class:`Layer` nodes.

    Args:
        name: the network's name (``graph["name"]``).
    """

    def __init__(self, name: str = "workload", **attr) -> None:
        super().__init__(name=name, **attr)

    def add_layer(self, layer: Layer, inputs: Iterable[str] = ()) -> str:
        """Add ``layer`` reading the outputs of the layers named in ``inputs``.

        The edge from each input carries that input's output tensor size in bytes.
        Returns the layer's name so that zoo builders can chain calls.
        """
        if layer.name in self:
            raise ValueError(f"workload {self.graph['name']!r}: duplicate layer name {layer.name!r}")
        inputs = list(inputs)
        for src in inputs:
            if src not in self:
                raise ValueError(f"layer {layer.name!r}: input {src!r} is not a layer of this workload")
        self.add_node(layer.name, layer=layer, index=self.number_of_nodes())
        for src in inputs:
            producer: Layer = self.nodes[src]["layer"]
            self.add_edge(src, layer.name, bytes=producer.ofmap_elems * producer.precision_bytes)
        return layer.name

    @property
    def layers(self) -> list[Layer]:
        """Layers in a deterministic topological order (ties broken by insertion order)."""
        return [self.nodes[n]["layer"] for n in topological_order(self)]

    @property
    def total_macs(self) -> int:
        return sum(d["layer"].macs for _, d in self.nodes(data=True))


def topological_order(workload: nx.DiGraph) -> list[str]:
    """Layer names in topological order, ties broken by the order they were added."""
    return list(nx.lexicographical_topological_sort(workload, key=lambda n: workload.nodes[n]["index"]))


def check_workload(workload: nx.DiGraph) -> None:
    """Raise ``ValueError`` unless ``workload`` is a non-empty DAG of layers."""
    if workload.number_of_nodes() == 0:
        raise ValueError("workload has no layers")
    if not nx.is_directed_acyclic_graph(workload):
        cycle = nx.find_cycle(workload)
        raise ValueError(f"workload is not acyclic: cycle through {[u for u, _ in cycle]}")
    for name, data in workload.nodes(data=True):
        if not isinstance(data.get("layer"), Layer):
            raise ValueError(f"workload node {name!r} carries no Layer under 'layer'")
