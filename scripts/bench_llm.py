#!/usr/bin/env python
"""Evidence for LLM inference workloads: counts, the roofline laws on a searched front, the knobs
that decide decode speed, and a batch sweep.

1. ``configs``: every published model's parameter count from its config against the published
   count, and its weight and KV-cache bytes (bf16, 8192 positions, one sequence).
2. ``edge``: a joint search on ``designs/edge_llm_decode.toml``; every front design is checked
   against ``tpot_s ≥ bytes a decode step moves (weights and KV cache read, new keys and values
   written) ÷ DRAM bandwidth`` and ``tpot_s ≥ MACs ÷ (PEs × clock)``, with its distance to the
   bandwidth roof; the best TPOT reached per value of each knob (over all trials) says which knobs
   decide decode speed.
3. ``batch_sweep``: decode tokens/s of one HBM chip (the datacenter design's first choices, os
   dataflow) at batch 1…64: more batch never lowers tokens/s while the step is bandwidth-bound.
4. ``serve_quadrature``: the datacenter request's decode time and energy from ``SERVE_POINTS``
   contexts against the exact sum over its 256 steps (slow: one workload per step).
5. ``published``: the search for a published single-accelerator LLM figure to reproduce.

    .venv/bin/python scripts/bench_llm.py            # table
    .venv/bin/python scripts/bench_llm.py --json --trials 3000
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
KNOBS = ("sched.dataflow", "hw.pe_rows", "hw.pe_cols", "hw.sram_kib", "hw.dram_gbps", "hw.clock_ghz", "hw.grid_rows",
         "hw.grid_cols", "sched.split", "sched.split_axis", "hw.dram_gib")


#: Step 5 of the issue: a published single-accelerator LLM figure with its chip's public parameters. None was
#: found that the model can be set up for; what was looked at (the stored pages, searched by topic):
PUBLISHED_FIGURE = {
    "reproduced": False,
    "looked_at": [
        {"source": "PyTorch/XLA blog 'High-performance Llama 2 training and inference with PyTorch/XLA on Cloud TPUs' "
                   "(2023, https://pytorch.org/blog/high-performance-llama-2/); Cloud TPU JetStream MaxText tutorial; "
                   "the JAX scaling book's Llama 3-70B serving chapter",
         "figure": "Llama 2 70B at 17 ms/token, 42 tokens/s/chip; Llama 3-70B latency-throughput on a v5e 4x4",
         "why_not": "TPU v5e's parameters are public (4 MXUs of 128x128 at 1.5 GHz, 16 GiB HBM2e at 819 GB/s) but every "
                    "figure is for a tensor-parallel slice of 4 to 16 chips, not one chip"},
        {"source": "Moon et al., 'LPU: a latency-optimized and highly scalable processor for LLM inference', IEEE Micro 44(6) "
                   "2024, arXiv 2408.07326",
         "figure": "1.25 ms/token for OPT-1.3B on one LPU",
         "why_not": "a MAC-tree (not systolic) datapath whose memory bandwidth and lane count the readable abstracts do not "
                    "give; OPT is not one of the config families read here"},
        {"source": "Chen et al., 'Hybrid systolic array accelerator with optimized dataflow for edge LLM inference', ISLPED "
                   "2025, arXiv 2507.09010",
         "figure": "247 / 117 token/s/mm2 for a 1.3B LLM (long input / long output)",
         "why_not": "MXINT4 weights (the model's narrowest operand is int8) and a per-area figure whose array, clock and DRAM "
                    "bandwidth the readable excerpts do not give"},
        {"source": "Hugging Face optimum-neuron benchmark 'Llama-2-7b performance on AWS Inferentia2'",
         "figure": "Llama 2 7B time to first token and inter-token latency at batch 1-32",
         "why_not": "run on all 12 devices (24 NeuronCores) of an inf2.48xlarge"},
    ],
}

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
    # read: every weight layer's operand (weights, KV cache); written: the new keys and values
    step_bytes = sum(layer.filter_elems * layer.precision_bytes for layer in layers if layer.has_weights)
    step_bytes += space.workload.graph["llm"]["kv_write_bytes"]
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


def serve_quadrature(candidates: int = 16, points=(2, 3, 4, 8), prompt: int | None = None, output: int | None = None) -> dict:
    """The datacenter request's decode time and energy (Σ over its steps, by default 256 at 1,025 … 1,280
    positions; ``prompt``/``output`` change the request) from ``serve_steps``' few contexts against the exact
    sum over every step, on random candidates (direct path, each step's own workload)."""
    from codesign.model.analytical import AnalyticalModel
    from codesign.model.llm import SERVE_POINTS, phase_space
    from codesign.workload.llm_phases import serve_steps

    raw = load_design(DATACENTER).model_dump(mode="json", exclude_defaults=True)
    raw["workload"]["params"].update({k: v for k, v in (("prompt_tokens", prompt), ("output_tokens", output)) if v})
    space, _ = build_evaluator(parse_design(raw, source=str(DATACENTER)))
    info = space.workload.graph["llm"]
    g = torch.Generator().manual_seed(0)
    rows = torch.stack([torch.randint(0, len(k.choices) if k.choices else k.high + 1, (candidates,), generator=g)
                        for k in space.knobs], 1)
    c = space.decode(rows)
    first = info["context"] + info["prompt_tokens"] + 1
    start = time.perf_counter()
    per_step = {}
    for T in range(first, first + info["output_tokens"]):
        m = AnalyticalModel(phase_space(space, "decode", context=T)).evaluate_direct(c).metrics
        per_step[T] = (m["latency_s"], m["energy_j"])
    exact = [sum(v[i] for v in per_step.values()) for i in (0, 1)]
    out = {"design": str(DATACENTER.relative_to(ROOT)), "prompt_tokens": info["prompt_tokens"], "candidates": candidates,
           "steps": info["output_tokens"],
           "used_points": SERVE_POINTS, "wall_s": time.perf_counter() - start, "points": {}}
    for k in points:
        steps = serve_steps(info, k)
        approx = [sum(w * per_step[T][i] for T, w in steps) for i in (0, 1)]
        err = [((a - e) / e).abs() for a, e in zip(approx, exact)]
        out["points"][str(k)] = {"contexts": [T for T, _ in steps], "max_rel_error_time": float(err[0].max()),
                                 "median_rel_error_time": float(err[0].median()), "max_rel_error_energy": float(err[1].max())}
    mid = per_step[first + info["output_tokens"] // 2][0]
    out["at_one_context"] = {"context": first + info["output_tokens"] // 2,
                             "max_rel_error_time": float(((info["output_tokens"] * mid - exact[0]) / exact[0]).abs().max())}
    return out


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
    parser.add_argument("--trials", type=int, default=3000, help="trials of the edge search (default 3000)")
    parser.add_argument("--no-quadrature", action="store_true", help="skip serve_quadrature (about 10 minutes)")
    parser.add_argument("--quadrature-only", action="store_true",
                        help="only serve_quadrature, on the design's request and on one whose steps cross the arrays' "
                             "folds off-centre (1000 prompt and 300 output tokens)")
    args = parser.parse_args()
    command = " ".join([".venv/bin/python scripts/bench_llm.py", *sys.argv[1:]])
    if args.quadrature_only:
        print(json.dumps({"command": command, "aligned": serve_quadrature(),
                          "unaligned": serve_quadrature(prompt=1000, output=300)}, indent=1))
        return
    result = {"command": command, "configs": configs(), "edge": edge(args.trials), "batch_sweep": batch_sweep(), "published": PUBLISHED_FIGURE}
    if not args.no_quadrature:
        result["serve_quadrature"] = serve_quadrature()
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
    if "serve_quadrature" in result:
        for k, q in result["serve_quadrature"]["points"].items():
            print(f"serve over {k} contexts: time error max {q['max_rel_error_time']:.2e}, energy {q['max_rel_error_energy']:.2e}")
    print(f"published figure reproduced: {result['published']['reproduced']}")
    for row in result["batch_sweep"]:
        print(f"batch {row['batch']:3d}: tpot {row['tpot_s'] * 1e3:.2f} ms, {row['tokens_per_s']:.0f} tokens/s "
              f"(bandwidth roof {row['bandwidth_roof_s'] * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
