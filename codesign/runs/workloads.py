"""``codesign workload``: what an imported (or zoo) network is, as the model sees it.

:func:`workload_description` is the JSON object the command prints: totals (``total_macs`` counts
every MAC layer, attention matmuls included; ``weight_bytes`` the weights of layers that have
them; ``vector_ops`` the vector unit's work, epilogues included) and one entry per layer in
topological order, with its loop bounds, its inputs and its bytes. :func:`layers_frame` is the
same per-layer list as a table (``--format csv|table``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from codesign.workload.graph import Workload, topological_order

#: Columns of the per-layer table, in order.
LAYER_COLUMNS = ("name", "op", "fn", "epilogue", "macs", "vector_ops", "N", "K", "C", "P", "Q", "R", "S", "stride", "groups",
                 "side_inputs", "ifmap_bytes", "weight_bytes", "ofmap_bytes", "inputs")


def _layer_entry(workload: Workload, name: str) -> dict[str, Any]:
    layer = workload.nodes[name]["layer"]
    pb = layer.precision_bytes
    return {
        "name": name, "op": layer.op, "fn": layer.fn, "epilogue": list(layer.epilogue),
        "macs": layer.macs, "vector_ops": layer.vector_work,
        "N": layer.N, "K": layer.K, "C": layer.C, "P": layer.P, "Q": layer.Q, "R": layer.R, "S": layer.S,
        "stride": layer.stride, "groups": layer.groups, "side_inputs": layer.side_inputs,
        "ifmap_bytes": layer.ifmap_elems * pb, "weight_bytes": layer.filter_elems * pb if layer.has_weights else 0,
        "ofmap_bytes": layer.ofmap_elems * pb, "inputs": list(workload.predecessors(name)),
    }


def workload_description(workload: Workload) -> dict[str, Any]:
    """The workload as a JSON-ready object: totals, then every layer (see the module docs)."""
    layers = [_layer_entry(workload, name) for name in topological_order(workload)]
    first = workload.nodes[layers[0]["name"]]["layer"]
    return {
        "network": workload.graph.get("name"),
        "source": workload.graph.get("source", "zoo"),
        "batch": max(entry["N"] for entry in layers),
        "precision_bytes": first.precision_bytes,
        "total_macs": sum(entry["macs"] for entry in layers),
        "weight_bytes": sum(entry["weight_bytes"] for entry in layers),
        "vector_ops": sum(entry["vector_ops"] for entry in layers),
        "n_layers": len(layers),
        "n_mac_layers": sum(entry["op"] != "vector" for entry in layers),
        "n_vector_layers": sum(entry["op"] == "vector" for entry in layers),
        "skipped": list(workload.graph.get("skipped", [])),
        **_llm_entry(workload),
        "layers": layers,
    }


def _llm_entry(workload: Workload) -> dict[str, Any]:
    """An LLM phase's totals: every parameter's bytes as ``weight_bytes`` (not the weight layers', which
    count a decode step's KV cache read as a weight operand), the KV cache and the phase settings."""
    info = workload.graph.get("llm")
    if info is None:
        return {}
    keys = ("phase", "prompt_tokens", "context", "output_tokens", "kv_home", "weight_bytes", "kv_cache_bytes",
            "expected_experts", "touched_experts")
    return {**{key: info[key] for key in keys}, "config": dict(info["config"])}


def layers_frame(description: dict[str, Any]) -> pd.DataFrame:
    """The per-layer entries of :func:`workload_description` as a table (lists joined with ``+``)."""
    rows = [{**entry, "epilogue": "+".join(entry["epilogue"]), "inputs": "+".join(entry["inputs"])} for entry in description["layers"]]
    return pd.DataFrame(rows, columns=list(LAYER_COLUMNS))


def summary_lines(description: dict[str, Any]) -> list[str]:
    """The totals as ``key: value`` lines (the head of ``--format table``)."""
    keys = ("network", "source", "batch", "precision_bytes", "total_macs", "weight_bytes", "vector_ops", "n_layers",
            "n_mac_layers", "n_vector_layers")
    keys += tuple(key for key in ("phase", "context", "kv_cache_bytes") if key in description)
    lines = [f"{key}: {description[key]}" for key in keys]
    for skipped in description["skipped"]:
        lines.append(f"skipped: {skipped['node']} ({skipped['op']})")
    return lines
