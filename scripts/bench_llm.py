#!/usr/bin/env python
"""Evidence for LLM inference workloads: counts, the roofline laws on a searched front, the knobs
that decide decode speed, and a batch sweep.

1. ``configs``: every published model's parameter count from its config against the published
   count, and its weight and KV-cache bytes (bf16, 8192 positions, one sequence).
2. ``edge``: a joint search on ``designs/edge_llm_decode.toml``; every front design is checked
   against ``tpot_s ≥ bytes a decode step reads ÷ DRAM bandwidth`` and ``tpot_s ≥ MACs ÷ (PEs ×
   clock)``, with its distance to the bandwidth roof; the best TPOT reached per value of each knob
   (over all trials) says which knobs decide decode speed.
3. ``batch_sweep``: decode tokens/s of one HBM chip (the datacenter design's first choices, os
   dataflow) at batch 1…64: more batch never lowers tokens/s while the step is bandwidth-bound.

    .venv/bin/python scripts/bench_llm.py            # table
    .venv/bin/python scripts/bench_llm.py --json --trials 1280
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.api import explore  # noqa: E402
from codesign.design import load_design, parse_design  # noqa: E402
from codesign.model.evaluator import build_evaluator  # noqa: E402
from codesign.workload.hf_config import PUBLISHED, kv_cache_bytes, parameter_count, read_config, weight_bytes  # noqa: E402

#: Published parameter counts (the models' own ``num_parameters()``, as the Hub reports them).
PUBLISHED_PARAMS = {
    "llama3_8b": 8_030_261_248, "mistral_7b": 7_241_732_096, "qwen2_7b": 7_615_616_512, "mixtral_8x7b": 46_702_792_704,
    "llama3_2_1b": 1_235_814_400, "gpt2": 124_439_808, "phi2": 2_779_683_840,
}
EDGE = ROOT / "designs" / "edge_llm_decode.toml"
DATACENTER = ROOT / "designs" / "datacenter_llm.toml"
KNOBS = ("sched.dataflow", "hw.pe_rows", "hw.pe_cols", "hw.sram_kib", "hw.dram_gbps", "hw.clock_ghz", "hw.grid_cols")


def configs() -> list[dict]:
    out = []
    for name in sorted(PUBLISHED):
        cfg = read_config(name)
        ours = parameter_count(cfg)
        out.append({"model": name, "parameters": ours, "published": PUBLISHED_PARAMS[name],
                    "error": (ours - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name], "weight_bytes_bf16": weight_bytes(cfg, 2),
                    "kv_cache_bytes_8k_bf16": kv_cache_bytes(cfg, batch=1, context=8192, precision_bytes=2)})
    return out


def _roofs(space, frame) -> tuple:
    """The bandwidth and compute roofs ``[n]`` (seconds) of the designs in a trials/front frame."""
    layers = space.workload.layers
    step_bytes = sum(layer.filter_elems * layer.precision_bytes for layer in layers if layer.has_weights)
    hw = {k: frame[f"hw.{k}"] if f"hw.{k}" in frame else getattr(space.design.hardware, k)[0]
          for k in ("pe_rows", "pe_cols", "grid_rows", "grid_cols", "dram_gbps", "clock_ghz")}
    pes = hw["pe_rows"] * hw["pe_cols"] * hw["grid_rows"] * hw["grid_cols"]
    return step_bytes / (hw["dram_gbps"] * 1e9), space.workload.total_macs / (pes * hw["clock_ghz"] * 1e9), step_bytes


def edge(trials: int) -> dict:
    import pandas as pd

    design = load_design(EDGE)
    space, _ = build_evaluator(design)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        explore(design, trials=trials, out=folder, device="cpu", say=lambda msg: None)
        wall = time.perf_counter() - start
        front = pd.read_csv(Path(folder) / "front.csv")
        allt = pd.read_csv(Path(folder) / "trials.csv")
    bandwidth, compute, step_bytes = _roofs(space, front)
    ok = (front["tpot_s"] >= bandwidth * (1 - 1e-12)) & (front["tpot_s"] >= compute * (1 - 1e-12))
    best = {k: {str(v): float(t) for v, t in allt.groupby(k)["tpot_s"].min().items()} for k in KNOBS if k in allt}
    keep = ["tpot_s", "cost_usd", "area_mm2", "energy_per_token_j", "dram_use"] + [c for c in front if c.startswith(("hw.", "sched."))]
    points = front[keep].assign(bandwidth_roof_s=bandwidth, compute_roof_s=compute).drop_duplicates(subset=["tpot_s", "cost_usd"])
    return {"trials": trials, "wall_s": wall, "feasible": int(allt["feasible"].sum()), "step_bytes": step_bytes,
            "front_size": len(front), "front_obeys_rooflines": bool(ok.all()),
            "front_tpot_over_bandwidth_roof": [float(x) for x in (front["tpot_s"] / bandwidth)],
            "front": points.to_dict(orient="records"), "best_tpot_s_by_knob": best}


def batch_sweep(batches=(1, 2, 4, 8, 16, 32, 64)) -> list[dict]:
    raw = json.loads(json.dumps(load_design(DATACENTER).model_dump(mode="json", exclude_defaults=True)))
    raw["hardware"] = {k: (v[0] if isinstance(v, list) and k != "sram_split" else v) for k, v in raw["hardware"].items()}
    raw["hardware"].update(pe_rows=128, pe_cols=128, sram_kib=32768, dram_gbps=3276.8, grid_rows=2, dram_gib=64.0)
    raw["schedule"].update(dataflow="os", split=8, split_axis="channels")
    out = []
    for batch in batches:
        raw["workload"].update(batch=batch, params={"phase": "decode", "context": 1280})
        space, evaluator = build_evaluator(parse_design(raw, source=str(DATACENTER)))
        values, _ = evaluator.evaluate_rows(torch.zeros((1, space.dimension), dtype=torch.long))
        m = dict(zip(evaluator.metric_names, values[0].tolist()))
        bandwidth, compute, _ = _roofs(space, {})
        out.append({"batch": batch, "tpot_s": m["tpot_s"], "tokens_per_s": m["tokens_per_s"], "bandwidth_roof_s": float(bandwidth),
                    "compute_roof_s": float(compute), "kv_cache_bytes": m["kv_cache_bytes"], "dram_use": m["dram_use"]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--trials", type=int, default=1280, help="trials of the edge search (default 1280)")
    args = parser.parse_args()
    result = {"configs": configs(), "edge": edge(args.trials), "batch_sweep": batch_sweep()}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for row in result["configs"]:
        print(f"{row['model']:14s} params {row['parameters']:>14,d} published {row['published']:>14,d} error {row['error']:.1e}")
    e = result["edge"]
    print(f"edge: {e['trials']} trials, {e['feasible']} feasible, front {e['front_size']}, rooflines kept: {e['front_obeys_rooflines']}")
    for point in e["front"]:
        print(f"  tpot {point['tpot_s'] * 1e3:.1f} ms (bandwidth roof {point['bandwidth_roof_s'] * 1e3:.1f} ms) "
              f"cost ${point['cost_usd']:.2f}")
    for knob, best in e["best_tpot_s_by_knob"].items():
        print(f"  best tpot by {knob}: " + ", ".join(f"{v}: {t * 1e3:.1f} ms" for v, t in best.items()))
    for row in result["batch_sweep"]:
        print(f"batch {row['batch']:3d}: tpot {row['tpot_s'] * 1e3:.2f} ms, {row['tokens_per_s']:.0f} tokens/s "
              f"(bandwidth roof {row['bandwidth_roof_s'] * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
