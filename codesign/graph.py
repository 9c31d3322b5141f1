"""The design graph of one candidate: hardware nodes, layer nodes and mapping edges, in networkx.

Nodes:
    ``core<i>`` (``kind="core"``: ``x``, ``y``, ``pe_rows``, ``pe_cols``, ``sram_kib``),
    ``dram<j>`` (``kind="dram_port"``: ``x``, ``y``, ``side``) and one node per layer
    (``kind="layer"``: its loop bounds, ``macs``).
Edges:
    ``kind="link"`` between tiles (the mesh, and each DRAM port to its tile),
    ``kind="data"`` from layer to layer (``bytes``), and
    ``kind="mapping"`` from each layer to its core (``dataflow``).

The search never builds this graph per candidate (it works on the lowered tensors of
:mod:`codesign.space`); it is made for the designs a user asks to see or export.
Attributes are plain scalars so the graph writes as GraphML and as node-link JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import networkx as nx
import torch

from codesign.vocab import DATAFLOWS
from codesign.hardware.floorplan import build_floorplan
from codesign.space import DesignSpace


def design_graph(space: DesignSpace, params: dict[str, Any]) -> nx.DiGraph:
    """The design graph of the candidate with trial parameters ``params``."""
    row = torch.tensor([space.encode(params)], dtype=torch.long).reshape(1, space.dimension)
    c = space.decode(row)
    rows, cols = int(c.grid_rows[0]), int(c.grid_cols[0])
    hw = space.design.hardware
    floorplan = build_floorplan(
        rows, cols, hw.dram_ports, dies=int(c.dies[0]),
        pe_rows=int(c.pe_rows[0]), pe_cols=int(c.pe_cols[0]), sram_kib=int(c.sram_kib[0]),
    )
    g = nx.DiGraph(
        name=space.workload.graph["name"],
        rows=rows,
        cols=cols,
        node=space.node_names[int(c.node[0])],
        clock_ghz=float(c.clock_ghz[0]),
        dram_gbps=float(c.dram_gbps[0]),
        noc_link_gbps=float(c.noc_link_gbps[0]),
        dies=int(c.dies[0]),
        package=hw.package[int(c.package[0])] if int(c.dies[0]) > 1 else "monolithic",
        d2d_gbps=float(c.d2d_gbps[0]),
        mode="pipelined" if bool(c.pipelined[0]) else "layer_by_layer",
    )
    g.add_nodes_from(floorplan.nodes(data=True))
    for u, v, data in floorplan.edges(data=True):  # mesh links are bidirectional
        g.add_edge(u, v, **data)
        g.add_edge(v, u, **data)
    for l, name in enumerate(space.lowered.names):
        layer = space.workload.nodes[name]["layer"]
        attrs = {k: v for k, v in layer.to_dict().items() if k != "name"}
        attrs["epilogue"] = "+".join(layer.epilogue)  # GraphML holds scalars only
        g.add_node(name, kind="layer", macs=layer.macs, **attrs)
        g.add_edge(name, f"core{int(c.core[0, l])}", kind="mapping", dataflow=DATAFLOWS[int(c.dataflow[0, l])])
    for u, v, data in space.workload.edges(data=True):
        g.add_edge(u, v, kind="data", bytes=int(data["bytes"]))
    return g


def write_graphml(graph: nx.DiGraph, path: str | Path) -> Path:
    nx.write_graphml(graph, path)
    return Path(path)


def write_graph_json(graph: nx.DiGraph, path: str | Path) -> Path:
    Path(path).write_text(json.dumps(nx.node_link_data(graph, edges="edges"), indent=1))
    return Path(path)
