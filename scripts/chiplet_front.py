#!/usr/bin/env python
"""Chiplets, measured: the latency/cost front a joint search finds with and without them.

Runs the engine's NSGA-II (the joint strategy, as ``codesign explore`` does) on
``designs/chiplet_question.toml`` as written (1, 2, 4 or 8 dies on an organic substrate, InFO or a
2.5D interposer, D2D bandwidth searched) and on the same design with ``hardware.dies = 1`` (one
monolithic die, the model before chiplets), with the same trials and seed, and compares the two
fronts: hypervolume against one reference point, how many points of each the other dominates, and,
for every point of the monolithic front, the cheapest chiplet design at the same latency or less
(the cost ratio; "the same latency": at most ``--latency-tolerance`` slower, 1 % by default). The space with chiplets holds every monolithic design, so its front is taken over
both searches' designs (``with_chiplets``: the non-dominated points of the two; ``chiplet_search``
is the chiplet search's own front, whose mid range a search of a larger space in the same trials
covers less well). The fronts' designs are listed with their dies, package, D2D bandwidth,
area and the monolithic area of the same cores. Writes ``docs/perf/chiplet_front.json`` and
``docs/perf/chiplet_front.png``.

    .venv/bin/python scripts/chiplet_front.py --trials 12800 --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_fusion import joint_search  # noqa: E402
from codesign.design import load_design, parse_design  # noqa: E402
from codesign.search.pareto import dominated_by, hypervolume, nondominated_mask, reference_point  # noqa: E402

DESIGN = ROOT / "designs" / "chiplet_question.toml"
OUT = ROOT / "docs" / "perf"
SHOWN = ("pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "dies", "package", "d2d_gbps")


def search_front(design, trials: int, seed: int) -> dict:
    """The front of one joint search: objective values ``[n, 2]`` and each point's hardware."""
    objectives = list(design.objectives.minimize)
    space, evaluator, rows, values, seconds = joint_search(design, trials, seed)
    names = evaluator.metric_names
    points = values[:, [names.index(o) for o in objectives]]
    keep = nondominated_mask(points)
    keep &= ~_repeated(points)  # one design per point (schedules of equal metrics: the first)
    order = np.argsort(points[keep][:, 0])
    front, front_rows = points[keep][order], rows[torch.as_tensor(np.flatnonzero(keep)[order])]
    # Each front design's hardware, and its cores' area as one monolithic die (the same rows with one die).
    c = space.decode(front_rows)
    hw = space.design.hardware
    designs = []
    mono_rows = front_rows.clone()
    if "dies" in space._hw_col:
        mono_rows[:, space._hw_col["dies"]] = hw.dies.index(1)
    mono_area = evaluator.model.evaluate_rows(mono_rows).metrics["area_mm2"].tolist()
    area = values[keep][order][:, names.index("area_mm2")].tolist()
    for i in range(len(front)):
        one = {name: (hw.package[int(c.package[i])] if int(c.dies[i]) > 1 else "monolithic") if name == "package"
               else getattr(c, name)[i].item() for name in SHOWN}
        designs.append(dict(one, latency_ms=front[i, 0] * 1e3, cost_usd=front[i, 1], area_mm2=area[i], monolithic_area_mm2=mono_area[i]))
    return {"trials": len(rows), "search_s": round(seconds, 1), "knobs": space.dimension, "objectives": objectives,
            "front": front, "designs": designs}


def _repeated(points: np.ndarray) -> np.ndarray:
    """Whether each row of ``points`` repeats an earlier one exactly."""
    _, first = np.unique(points, axis=0, return_index=True)
    out = np.ones(len(points), dtype=bool)
    out[first] = False
    return out


def cheaper_at_equal_latency(mono: np.ndarray, chip: np.ndarray, tolerance: float) -> list[dict]:
    """For each monolithic front point, the cheapest chiplet-front point at its latency (at most ``tolerance``
    slower, relative), and the cost ratio."""
    out = []
    for latency, cost in mono:
        ok = chip[:, 0] <= latency * (1 + tolerance)
        if ok.any():
            best = chip[ok][np.argmin(chip[ok][:, 1])]
            out.append({"latency_ms": latency * 1e3, "monolithic_usd": cost, "chiplets_usd": float(best[1]),
                        "chiplets_latency_ms": float(best[0]) * 1e3, "cost_ratio": float(best[1] / cost)})
    return out


def plot(mono: dict, chip: dict, path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    colours = {"monolithic": "tab:grey", "organic": "tab:blue", "info": "tab:green", "interposer_2_5d": "tab:red"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, zoom in zip(axes, (False, True)):
        ax.step(mono["front"][:, 0] * 1e3, mono["front"][:, 1], where="post", color="tab:grey", lw=1)
        ax.scatter(mono["front"][:, 0] * 1e3, mono["front"][:, 1], s=14, color="tab:grey", label=f"one die only ({len(mono['front'])})")
        ax.step(chip["front"][:, 0] * 1e3, chip["front"][:, 1], where="post", color="tab:blue", lw=1)
        for package, colour in colours.items():
            sel = [i for i, d in enumerate(chip["designs"]) if d["package"] == package]
            if sel:
                ax.scatter(chip["front"][sel, 0] * 1e3, chip["front"][sel, 1], s=22, marker="^", color=colour,
                           label=f"with chiplets: {'one die' if package == 'monolithic' else package} ({len(sel)})")
        if zoom:  # the fast end, where the dies are big
            fast = mono["front"][:, 0] * 1e3 < 2.0
            ax.set_xlim(0.97 * mono["front"][0, 0] * 1e3, 2.0)
            ax.set_ylim(0.9 * mono["front"][fast, 1].min(), 1.05 * mono["front"][:, 1].max())
            for i, d in enumerate(chip["designs"]):
                if d["dies"] > 1 and d["latency_ms"] < 2.0:
                    ax.annotate(f"{d['dies']} × {d['area_mm2'] / d['dies']:.0f} mm², {d['d2d_gbps']:.0f} GB/s",
                                (chip["front"][i, 0] * 1e3, chip["front"][i, 1]), fontsize=6, xytext=(4, 2), textcoords="offset points")
            ax.set_title("the fast end (annotated: dies × die area, D2D link)", fontsize=9)
        else:
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
                axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(f"ResNet-50 (batch 8), 32 cores at 7 nm, seed {seed}, {chip['trials']} trials each", fontsize=9)
            ax.legend(fontsize=7)
        ax.set_xlabel("latency [ms]")
        ax.set_ylabel("cost [USD]")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12800)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--latency-tolerance", type=float, default=0.01, help="'equal latency': at most this much slower (relative)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    design = load_design(DESIGN)
    raw = design.model_dump(mode="json")
    raw["hardware"].update(dies=[1], package=["monolithic"])
    monolithic = parse_design(raw, source=f"{DESIGN} (hardware.dies = 1)")
    mono, chip = search_front(monolithic, args.trials, args.seed), search_front(design, args.trials, args.seed)
    ref = reference_point(np.vstack([mono["front"], chip["front"]]))
    report = {"benchmark": "scripts/chiplet_front.py", "command": f".venv/bin/python scripts/chiplet_front.py --trials {args.trials} "
              f"--seed {args.seed} --latency-tolerance {args.latency_tolerance}", "design": str(DESIGN.relative_to(ROOT)), "seed": args.seed, "reference_point": ref.tolist()}
    for name, run, other in (("monolithic", mono, chip), ("chiplet_search", chip, mono)):
        report[name] = {"front_size": len(run["front"]), "hypervolume": hypervolume(run["front"], ref),
                        "dominated_by_other": int(dominated_by(other["front"], run["front"]).sum()),
                        **{k: run[k] for k in ("trials", "search_s", "knobs", "designs")}}
    both = np.vstack([mono["front"], chip["front"]])
    keep = nondominated_mask(both) & ~_repeated(both)
    order = np.argsort(both[keep][:, 0])
    union = {"front": both[keep][order], "designs": [(mono["designs"] + chip["designs"])[i] for i in np.flatnonzero(keep)[order]]}
    report["with_chiplets"] = {"front_size": len(union["front"]), "hypervolume": hypervolume(union["front"], ref),
                               "designs": union["designs"]}
    report["latency_tolerance"] = args.latency_tolerance
    report["cheaper_at_equal_latency"] = cheaper_at_equal_latency(mono["front"], union["front"], args.latency_tolerance)
    ratios = [r["cost_ratio"] for r in report["cheaper_at_equal_latency"]]
    report["cost_ratio_median"] = float(np.median(ratios)) if ratios else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chiplet_front.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(mono, dict(chip, **union), args.out / "chiplet_front.png", args.seed)
    print(json.dumps({k: v for k, v in report.items() if k not in ("monolithic", "chiplet_search", "with_chiplets")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
