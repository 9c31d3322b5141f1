#!/usr/bin/env python
"""Layer fusion and splitting, measured: the front a joint search finds with and without them.

``--front`` runs the engine's NSGA-II (the joint strategy, as ``codesign explore`` does) on
``designs/bench_resnet50_16core.toml`` and on ``designs/bench_resnet50_16core_fused.toml`` (the
same question with fusion and splitting searched too), with the same trials and seeds, and compares
the feasible fronts: hypervolume against one reference point, how many points of each front the
other dominates, the best of each objective. It writes ``docs/perf/fusion_front.json`` and
``docs/perf/fusion_front.png`` (latency against energy of both fronts).

``--json`` prints Stream 0.0.8's figures on its ResNet-18 example and quad-core TPU-like chip
(layer by layer and fused with one output row per tile; from ``data/stream/resnet18_quad_core.json``,
made by ``data/stream/run_stream.py`` in a side environment, so this runs without Stream) beside
ours on the same workload and chip (``designs/stream_resnet18_quad_core.toml``): the fastest
layer-by-layer schedule our search finds (fusion none, no splitting), the fastest with every
fusable boundary fused at one row per tile, and the fastest of the joint search over fusion, tile
heights, splitting, mapping and dataflows. Cycles at the design's 1 GHz.

    .venv/bin/python scripts/bench_fusion.py --front --trials 10000 --seeds 1,2
    .venv/bin/python scripts/bench_fusion.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.design import load_design, parse_design  # noqa: E402
from codesign.model.evaluator import Evaluator  # noqa: E402
from codesign.search.driver import run_search  # noqa: E402
from codesign.search.pareto import dominated_by, feasible_mask, hypervolume, nondominated_mask, reference_point  # noqa: E402
from codesign.space import DesignSpace  # noqa: E402

STREAM_DESIGN = ROOT / "designs" / "stream_resnet18_quad_core.toml"
STREAM_RESULT = ROOT / "data" / "stream" / "resnet18_quad_core.json"
PLAIN = ROOT / "designs" / "bench_resnet50_16core.toml"
FUSED = ROOT / "designs" / "bench_resnet50_16core_fused.toml"
OUT = ROOT / "docs" / "perf"


def joint_search(design, trials: int, seed: int) -> tuple:
    """One joint search of ``design`` in memory: its space, evaluator, the searched rows ``[n, D]``, their
    metrics ``[n, M]`` and the search's seconds (also what ``chiplet_front.py`` searches with)."""
    space = DesignSpace.from_design(design)
    evaluator = Evaluator(space)
    study = optuna.create_study(directions=["minimize"] * len(design.objectives.minimize))
    started = time.perf_counter()
    run_search(space, evaluator, study, n_trials=trials, seed=seed, say=lambda _: None)
    seconds = time.perf_counter() - started
    rows = torch.tensor([r for r in map(space.packed.row, study.trials) if r is not None], dtype=torch.long)
    values, _ = evaluator.evaluate_rows(rows)
    return space, evaluator, rows, values, seconds


def search_front(path: Path, trials: int, seed: int) -> dict:
    """The feasible front of one joint search: objective values ``[n, m]`` and the trials' count."""
    design = load_design(path)
    objectives = list(design.objectives.minimize)
    space, evaluator, rows, values, seconds = joint_search(design, trials, seed)
    names = evaluator.metric_names
    ok = feasible_mask(values, names, dict(design.constraints))
    points = values[ok][:, [names.index(o) for o in objectives]]
    front = points[nondominated_mask(points)]
    return {"design": str(path.relative_to(ROOT)), "seed": seed, "trials": len(rows), "feasible": int(ok.sum()),
            "search_s": round(seconds, 1), "knobs": space.dimension, "objectives": objectives, "front": front}


def compare(plain: dict, fused: dict) -> dict:
    """Hypervolumes against one reference point and the dominance between the two fronts."""
    ref = reference_point(np.vstack([plain["front"], fused["front"]]))
    summary = {}
    for name, run, other in (("without", plain, fused), ("with", fused, plain)):
        summary[name] = {
            "front_size": len(run["front"]), "hypervolume": hypervolume(run["front"], ref),
            "dominated_by_other": int(dominated_by(other["front"], run["front"]).sum()),
            "best": dict(zip(run["objectives"], run["front"].min(axis=0).tolist())),
            "front": run["front"].tolist(),
            **{k: run[k] for k in ("design", "seed", "trials", "feasible", "search_s", "knobs")},
        }
    summary["reference_point"] = ref.tolist()
    return summary


def fastest(overrides: dict, trials: int, seed: int = 0) -> dict:
    """The fastest design NSGA-II finds on Stream's chip with the schedule ``overrides``, latency alone."""
    raw = load_design(STREAM_DESIGN).model_dump(mode="json")
    raw["schedule"] = {**raw["schedule"], **overrides}
    raw["objectives"] = {"minimize": ["latency_s"]}
    space = DesignSpace.from_design(parse_design(raw, source=f"{STREAM_DESIGN} {overrides}"))
    evaluator = Evaluator(space)
    study = optuna.create_study(directions=["minimize"])
    run_search(space, evaluator, study, n_trials=trials, seed=seed, say=lambda _: None)
    best = min((t for t in study.trials if t.values), key=lambda t: t.values[0])
    row = torch.tensor([space.packed.row(best)], dtype=torch.long)
    values, _ = evaluator.evaluate_rows(row)
    metrics = dict(zip(evaluator.metric_names, values[0].tolist()))
    clock = space.design.hardware.clock_ghz[0] * 1e9
    detail = evaluator.model.evaluate(space.decode(row), detail=True).layers
    layers = {name: {"cycles": round(float(c)), "dram_bytes": float(d)} for name, c, d in
              zip(space.lowered.names, detail["total_cycles"][0].tolist(), detail["dram_bytes"][0].tolist())}
    if "fused" in detail:
        for name, fused in zip(space.lowered.names, detail["fused"][0].tolist()):
            layers[name]["fused_input"] = bool(fused)
    return {"cycles": round(metrics["latency_s"] * clock), "energy_pj": metrics["energy_j"] * 1e12, "trials": trials,
            "knobs": space.dimension, "params": {k: v for k, v in best.params.items() if not k.startswith("sched.dataflow")}, "layers": layers}


def stream_comparison(trials: int) -> dict:
    """Stream's figures (from its committed result file) beside ours on the same workload and chip."""
    stream = json.loads(STREAM_RESULT.read_text())
    lbl, fused = stream["layer_by_layer"], stream["fused"]
    ours_lbl = fastest({"fusion": "none", "split": 1}, trials)
    ours_fused = fastest({"fusion": "all", "tile_rows": 1, "split": 1}, trials)
    ours_best = fastest({}, trials)
    return {
        "stream": {"lbl_cycles": lbl["latency_cycles"], "fused_cycles": fused["latency_cycles"],
                   "fused_over_lbl": fused["latency_cycles"] / lbl["latency_cycles"],
                   "lbl_energy_pj": lbl["energy_pj"], "fused_energy_pj": fused["energy_pj"], "source": str(STREAM_RESULT.relative_to(ROOT)),
                   "command": "data/stream/run_stream.py (see its docstring)", "ga": stream.get("ga")},
        "ours": {"lbl_cycles": ours_lbl["cycles"], "fused_cycles": ours_fused["cycles"], "search_best_cycles": ours_best["cycles"],
                 "fused_over_lbl": ours_fused["cycles"] / ours_lbl["cycles"],
                 "lbl_energy_pj": ours_lbl["energy_pj"], "fused_energy_pj": ours_fused["energy_pj"],
                 "design": str(STREAM_DESIGN.relative_to(ROOT)), "trials_per_search": trials},
        "detail": {"lbl": ours_lbl, "fused": ours_fused, "search_best": ours_best},
    }


def plot(pairs: list[tuple[dict, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 4.2), squeeze=False)
    for ax, (plain, fused) in zip(axes[0], pairs):
        objectives = plain["objectives"]
        i, j = objectives.index("latency_s"), objectives.index("energy_j")
        for run, label, colour in ((plain, "without fusion/splitting", "tab:grey"), (fused, "with fusion and splitting", "tab:blue")):
            ax.scatter(run["front"][:, i] * 1e3, run["front"][:, j] * 1e3, s=10, label=f"{label} ({len(run['front'])})", color=colour)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("latency [ms]")
        ax.set_ylabel("energy [mJ]")
        ax.set_title(f"ResNet-50, 16 cores, seed {plain['seed']}, {plain['trials']} trials each:\n"
                     f"feasible fronts over latency, energy and cost, seen on latency × energy", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--front", action="store_true", help="the fronts with and without fusion and splitting")
    parser.add_argument("--json", action="store_true", help="Stream's figures beside ours on its ResNet-18 example (one JSON object)")
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not (args.front or args.json):
        parser.error("nothing to do: give --front or --json")
    torch.set_num_threads(2)
    if args.json:
        print(json.dumps(stream_comparison(min(args.trials, 3200)), indent=1))
        if not args.front:
            return 0
    pairs, report = [], {"benchmark": "bench_fusion --front", "runs": []}
    for seed in (int(s) for s in args.seeds.split(",")):
        plain, fused = search_front(PLAIN, args.trials, seed), search_front(FUSED, args.trials, seed)
        pairs.append((plain, fused))
        report["runs"].append(compare(plain, fused))
        print(json.dumps(report["runs"][-1], indent=1), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fusion_front.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(pairs, args.out / "fusion_front.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
