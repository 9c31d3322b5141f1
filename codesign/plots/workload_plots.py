"""The layer graph of a workload (``codesign workload --plot``): one box per layer, left to right
in topological generations, MAC layers coloured by kind and sized by their share of the MACs,
vector layers grey; an edge is a tensor one layer reads from another."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from codesign.plots._style import check_path, closing_on_error, plt, save_figure

__all__ = ["plot_workload_graph"]

OP_COLORS = {"conv": "#0072B2", "fc": "#E69F00", "matmul": "#009E73", "vector": "#999999"}


def _positions(graph: nx.DiGraph) -> dict:
    """Layers placed by topological generation (x) and their order within it (y, centred)."""
    pos = {}
    for x, generation in enumerate(nx.topological_generations(graph)):
        for y, name in enumerate(sorted(generation, key=lambda n: graph.nodes[n]["index"])):
            pos[name] = (x, y - (len(generation) - 1) / 2)
    return pos


def plot_workload_graph(description: dict, path, *, title: str | None = None) -> Path:
    """Draw the layers of ``description`` (:func:`codesign.runs.workloads.workload_description`'s
    object) as a DAG to the PNG ``path``; labels name layers when there are few enough to read."""
    path = check_path(path)
    graph = nx.DiGraph()
    for index, entry in enumerate(description["layers"]):
        graph.add_node(entry["name"], index=index, op=entry["op"], macs=entry["macs"])
    for entry in description["layers"]:
        graph.add_edges_from((src, entry["name"]) for src in entry["inputs"] if src in graph)
    pos = _positions(graph)
    width = max(6.0, min(40.0, 0.35 * max(x for x, _ in pos.values()) + 3))
    height = max(3.0, min(20.0, 0.5 * max(abs(y) for _, y in pos.values()) * 2 + 2))
    fig, ax = plt.subplots(figsize=(width, height))
    with closing_on_error(fig):
        total = max(1, description["total_macs"])
        sizes = [40 + 600 * graph.nodes[n]["macs"] / total for n in graph]
        colors = [OP_COLORS.get(graph.nodes[n]["op"], "#999999") for n in graph]
        nx.draw_networkx_edges(graph, pos, ax=ax, arrows=True, arrowsize=6, width=0.6, edge_color="0.6", node_size=sizes)
        nx.draw_networkx_nodes(graph, pos, ax=ax, node_size=sizes, node_color=colors, linewidths=0.4, edgecolors="black")
        if graph.number_of_nodes() <= 60:
            nx.draw_networkx_labels(graph, {n: (x, y + 0.18) for n, (x, y) in pos.items()}, ax=ax, font_size=5)
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=op) for op, c in OP_COLORS.items()]
        ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
        ax.set_title(title or f"{description['network']}: {description['n_layers']} layers, "
                              f"{description['total_macs'] / 1e9:.3g} GMACs, {description['n_vector_layers']} vector layers")
        ax.set_axis_off()
    return save_figure(fig, path)
