"""Benchmark of the learned latency surrogate and of the surrogate-assisted loop.

Three parts (see docs/surrogate.md for what each number means and how it is measured):

1. **SCALE-Sim, held out.** On the committed SCALE-Sim results (``tests/data/...`` and
   ``data/scalesim/sweep_*.csv`` when present), every row is predicted by a surrogate
   trained on rows that share neither its layer nor its array shape (3 × 3 folds over
   layers × array shapes), for each seed (fold assignment and initialisation); medians
   over seeds of: the median absolute error of total cycles (analytical + learned, and
   the analytical model alone on the same rows), and Kendall τ of predicted vs
   SCALE-Sim cycles; per seed also where the median sits (rows the analytical model gets
   exactly, rows within half its median error, error quantiles of both, rows the learned
   correction makes better or worse) and how many folds the structural gate held in.
2. **The loop, on the emulated oracle** (:mod:`codesign.oracles.emulated`), on
   ``designs/edge_resnet18.toml``: for each seed, the surrogate loop with an oracle budget
   of ``B`` designs, and NSGA-II calling the oracle directly with ``B`` and ``3B``
   (populations 16, 32 and 64; the best median is the baseline). Hypervolume of each
   oracle-verified feasible front, one reference point for all (nadir + 10 % of the
   range of every verified feasible design of every method and seed). Front survival:
   the final surrogate's predicted front, evaluated by the oracle (outside the budget,
   for measurement), fraction non-dominated among itself; Kendall τ and median error of
   predicted vs oracle latency on 512 space-filling designs the loop never verified.
3. **Timing**: inference of 65,536 ResNet-18 designs in one batched call
   (``LatencySurrogate.predict_designs``: analytical model + ensemble + schedule), and
   training time, on cpu and on cuda when present.

``--json`` prints one object (the output contract of issue 6); otherwise a table. The figures
in docs/surrogate.md and the README come from ``--json --out docs/perf/bench_surrogate.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesign.design import load_design  # noqa: E402
from codesign.model.evaluator import Evaluator  # noqa: E402
from codesign.model.surrogate import LatencySurrogate  # noqa: E402
from codesign.oracles import OracleCostModel, oracle_evaluate  # noqa: E402
from codesign.oracles.emulated import EmulatedOracle  # noqa: E402
from codesign.search.pareto import hypervolume, nondominated_mask, reference_point  # noqa: E402
from codesign.search.pareto import dominated_by, feasible_mask  # noqa: E402
from codesign.search.surrogate_loop import LoopSettings, SurrogateLoop, sobol_rows, survival  # noqa: E402
from codesign.space import DesignSpace  # noqa: E402
from codesign.surrogate_cli import error_report, heldout_predictions, load_oracle_rows, rows_features  # noqa: E402

DEFAULT_DATA = [ROOT / "tests" / "data" / "scalesim_3.0.0_reference.csv", ROOT / "data" / "scalesim" / "sweep_3.0.0.csv"]
DESIGN = ROOT / "designs" / "edge_resnet18.toml"


def median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


# --- 1. SCALE-Sim held out ----------------------------------------------------------------------
def scalesim_heldout(paths, seeds, *, steps, device) -> dict:
    rows = load_oracle_rows([p for p in paths if Path(p).is_file()])
    x, y, analytical = rows_features(rows)
    per_seed = []
    for seed in seeds:
        t0 = time.perf_counter()
        folds: list = []
        mean, _ = heldout_predictions(x, y, rows.layer, rows.hardware, k=3, seed=seed, device=device, steps=steps, stats=folds)
        predicted = analytical * np.exp(mean)
        report = error_report(rows.cycles, predicted, analytical, rows.layer_type)
        report["alpha_per_fold"] = [f["alpha"] for f in folds]
        report["structural_gate_folds"] = int(sum(bool(f.get("no_stall_exact")) for f in folds))
        # Where the median sits: rows the analytical model gets exactly, rows within half its
        # median error, and the distributions of both errors (issue 6's second target).
        ok = np.isfinite(predicted)
        e_p = np.abs(predicted[ok] / rows.cycles[ok] - 1) * 100
        e_a = np.abs(analytical[ok] / rows.cycles[ok] - 1) * 100
        half = float(np.median(e_a)) / 2
        report["analytical_exact_rows"] = int((e_a < 1e-9).sum())
        report["learned_exact_rows"] = int((e_p < 1e-9).sum())
        report["rows_within_half_analytical_median"] = {"learned": int((e_p <= half).sum()), "analytical": int((e_a <= half).sum()),
                                                        "needed_for_median": int(len(e_p) // 2 + 1)}
        report["abs_err_pct_quantiles"] = {q: {"learned": float(np.percentile(e_p, q)), "analytical": float(np.percentile(e_a, q))}
                                           for q in (25, 40, 45, 50, 55, 60, 75, 90)}
        report["rows_learned_better_worse"] = {"better": int((e_p < e_a - 1e-9).sum()), "worse": int((e_p > e_a + 1e-9).sum())}
        report["seconds"] = time.perf_counter() - t0
        per_seed.append(report)
    return {
        "files": [str(Path(s).relative_to(ROOT)) if Path(s).is_relative_to(ROOT) else s for s in rows.sources],
        "rows": len(rows), "layers": int(len(set(rows.layer.tolist()))), "array_shapes": int(len(set(rows.hardware.tolist()))),
        "heldout_rows_per_seed": [r["rows"] for r in per_seed],
        "heldout_median_abs_err_pct": median([r["median_abs_err_pct"] for r in per_seed]),
        "analytical_median_abs_err_pct": median([r["analytical_median_abs_err_pct"] for r in per_seed]),
        "heldout_p90_abs_err_pct": median([r["p90_abs_err_pct"] for r in per_seed]),
        "analytical_p90_abs_err_pct": median([r["analytical_p90_abs_err_pct"] for r in per_seed]),
        "heldout_mean_abs_err_pct": median([r["mean_abs_err_pct"] for r in per_seed]),
        "analytical_mean_abs_err_pct": median([r["analytical_mean_abs_err_pct"] for r in per_seed]),
        "rows_analytical_off": median([r["rows_analytical_off"] for r in per_seed]),
        "heldout_median_abs_err_pct_where_analytical_off": median([r["median_abs_err_pct_where_analytical_off"] for r in per_seed]),
        "analytical_median_abs_err_pct_where_off": median([r["analytical_median_abs_err_pct_where_off"] for r in per_seed]),
        "kendall_tau": median([r.get("kendall_tau") for r in per_seed]),
        "alpha_median": median([a for r in per_seed for a in r["alpha_per_fold"]]),
        "structural_gate_folds": sum(r["structural_gate_folds"] for r in per_seed),
        "folds": sum(len(r["alpha_per_fold"]) for r in per_seed),
        "target_half_analytical_met": bool(median([r["median_abs_err_pct"] for r in per_seed]) <= 0.5 * median([r["analytical_median_abs_err_pct"] for r in per_seed])),
        "alpha_max": max([a for r in per_seed for a in r["alpha_per_fold"]], default=None),
        "analytical_kendall_tau": median([r.get("analytical_kendall_tau") for r in per_seed]),
        "by_layer_type": {t: {k: median([r["by_layer_type"].get(t, {}).get(k) for r in per_seed])
                              for k in ("rows", "median_abs_err_pct", "analytical_median_abs_err_pct")}
                          for t in ("conv", "depthwise", "gemm")},
        "per_seed": per_seed,
    }


# --- 2. the loop on the emulated oracle ----------------------------------------------------------
def nsga_on_oracle(space, oracle, n_trials: int, seed: int, population: int, device) -> pd.DataFrame:
    """NSGA-II with the oracle in the evaluator: every distinct design reaches the oracle."""
    from codesign.search.driver import run_search

    design = space.design.model_copy(update={"search": space.design.search.model_copy(update={"population": population})})
    space = DesignSpace(design=design, workload=space.workload, knobs=space.knobs, lowered=space.lowered,
                        dataflow_col=space.dataflow_col, core_col=space.core_col)
    cm = OracleCostModel(oracle, space, device=device)
    evaluator = Evaluator(space, [cm], device=device)
    study = optuna.create_study(directions=["minimize"] * len(design.objectives.minimize))
    # The budget counts distinct designs the oracle evaluates (repeats are cached), as the
    # loop's does: resume the same NSGA-II run until exactly that many have reached it.
    trials = n_trials
    while cm.designs < n_trials:
        run_search(space, evaluator, study, n_trials=trials, seed=seed, say=lambda *_: None)
        trials += n_trials - cm.designs
    designs = cm.designs
    names = evaluator.metric_names
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.state != optuna.trial.TrialState.COMPLETE or "duplicate_of" in t.user_attrs:
            continue
        out.append(space.packed.row(t))
    rows = space.canonical(torch.tensor(out, dtype=torch.long))
    rows = torch.unique(rows, dim=0)
    values, errors = evaluator.evaluate_rows(rows)  # cached: no new oracle work
    frame = pd.DataFrame(values, columns=names)
    frame["ok"] = [e is None for e in errors]
    frame["designs_to_oracle"] = designs
    return frame


def verified_points(frame: pd.DataFrame, objectives, constraints) -> np.ndarray:
    names = [c for c in frame.columns if c not in ("ok", "designs_to_oracle")]
    values = frame[names].to_numpy(dtype=float)
    ok = feasible_mask(values, names, constraints)
    if "ok" in frame:
        ok &= frame["ok"].to_numpy(dtype=bool)
    return frame.loc[ok, list(objectives)].to_numpy(dtype=float)


def loop_bench(seeds, *, budget, inner_trials, steps, populations, device, log) -> dict:
    design = load_design(DESIGN)
    space = DesignSpace.from_design(design)
    objectives, constraints = list(design.objectives.minimize), dict(design.constraints)
    per_seed = []
    for seed in seeds:
        per_seed.append(_loop_seed(space, seed, objectives=objectives, constraints=constraints, budget=budget,
                                   inner_trials=inner_trials, steps=steps, populations=populations, device=device))
        log(f"seed {seed}: loop {per_seed[-1]['loop_s']:.0f} s, survival {per_seed[-1]['front_survival_fraction']:.2f}, "
            f"τ designs {per_seed[-1]['designs_kendall_tau']:.3f}")
    return _loop_summary(per_seed, seeds=seeds, budget=budget, inner_trials=inner_trials, populations=populations,
                         objectives=objectives)


def _loop_seed(space, seed, *, objectives, constraints, budget, inner_trials, steps, populations, device) -> dict:
    """One seed of the loop benchmark: the loop, its front's survival, its design predictions, the baselines."""
    oracle = EmulatedOracle()
    t0 = time.perf_counter()
    loop = SurrogateLoop(space, oracle, LoopSettings(budget=budget, inner_trials=inner_trials, steps=steps), seed=seed, device=device, say=lambda *_: None)
    result = loop.run()
    loop_s = time.perf_counter() - t0
    verified = result.verified
    loop_pts = verified.loc[verified["feasible"], objectives].to_numpy(dtype=float)
    # Front survival: the final predicted front, re-evaluated by the oracle (outside the budget).
    pf_rows = loop.predicted_front_rows
    check = EmulatedOracle()
    oracle_eval = Evaluator(space, [OracleCostModel(check, space, device=device)], device=device)
    pf_values, _ = oracle_eval.evaluate_rows(pf_rows)
    pf_names = oracle_eval.metric_names
    pf_feas = feasible_mask(pf_values, pf_names, constraints)
    pf_objs = pf_values[:, [pf_names.index(o) for o in objectives]]
    surv = survival(pf_objs, pf_feas)
    # Stricter: also not dominated by any design the loop verified.
    strict = pf_feas & ~dominated_by(loop_pts, pf_objs)
    if pf_feas.any():
        nd = np.zeros(len(pf_objs), dtype=bool)
        nd[pf_feas] = nondominated_mask(pf_objs[pf_feas])
        strict &= nd
    # Held-out designs: space-filling designs the loop never verified.
    probe = sobol_rows(space, 512, seed + 10_000)
    keys = {tuple(r) for r in verified[[k.name for k in space.knobs]].itertuples(index=False)}
    params = [space.decode_params(r.tolist()) for r in probe]
    unseen = torch.tensor([tuple(p[k.name] for k in space.knobs) not in keys for p in params])
    probe = probe[unseen]
    cands = space.decode(probe.to(device))
    pred = result.surrogate.predict_designs(loop.model, cands)
    truth = oracle_evaluate(check, loop.model, cands).latency_s
    from scipy.stats import kendalltau

    p, t, a = pred.latency_s.cpu().numpy(), truth.cpu().numpy(), pred.analytical_latency_s.cpu().numpy()
    baselines = {}
    for pop in populations:
        for mult in (1, 3):
            frame = nsga_on_oracle(space, EmulatedOracle(), mult * budget, seed, pop, device)
            baselines[(pop, mult)] = frame
    return {
        "seed": seed, "loop_points": loop_pts, "loop_s": loop_s, "rounds": result.rounds,
        "front_survival_fraction": surv, "front_survival_strict": float(strict.mean()) if len(strict) else math.nan,
        "predicted_front_size": int(len(pf_objs)),
        "designs_kendall_tau": float(kendalltau(p, t).statistic), "designs_analytical_kendall_tau": float(kendalltau(a, t).statistic),
        "designs_median_abs_err_pct": float(np.median(np.abs(p / t - 1)) * 100),
        "designs_analytical_median_abs_err_pct": float(np.median(np.abs(a / t - 1)) * 100),
        "designs_probe": int(len(p)),
        "baselines": {k: verified_points(v, objectives, constraints) for k, v in baselines.items()},
        "baseline_designs": {k: int(v["designs_to_oracle"].iloc[0]) if len(v) else 0 for k, v in baselines.items()},
        "oracle_layer_jobs": oracle.stats.simulated,
    }


def _loop_summary(per_seed: list[dict], *, seeds, budget, inner_trials, populations, objectives) -> dict:
    """Hypervolumes against one reference point for every method and seed, and the medians over seeds."""
    # One reference point for every method and seed.
    everything = np.concatenate([s["loop_points"] for s in per_seed] + [b for s in per_seed for b in s["baselines"].values()])
    ref = reference_point(everything)
    for s in per_seed:
        s["hv_loop"] = hypervolume(s["loop_points"], ref) if len(s["loop_points"]) else 0.0
        s["hv_baselines"] = {k: (hypervolume(v, ref) if len(v) else 0.0) for k, v in s["baselines"].items()}
    med = {k: median([s["hv_baselines"][k] for s in per_seed]) for k in per_seed[0]["hv_baselines"]}
    best_same = max(populations, key=lambda pop: med[(pop, 1)])
    best_3x = max(populations, key=lambda pop: med[(pop, 3)])
    return {
        "design": str(DESIGN.relative_to(ROOT)), "budget": budget, "inner_trials": inner_trials, "seeds": list(seeds),
        "reference_point": ref.tolist(), "objectives": objectives,
        "hv_surrogate_loop": median([s["hv_loop"] for s in per_seed]),
        "hv_oracle_same_budget": med[(best_same, 1)], "hv_oracle_3x_budget": med[(best_3x, 3)],
        "baseline_population_same": best_same, "baseline_population_3x": best_3x,
        "hv_oracle_by_population": {f"pop{pop}_x{mult}": v for (pop, mult), v in med.items()},
        "loop_wins_same_budget_seeds": int(sum(s["hv_loop"] > s["hv_baselines"][(best_same, 1)] for s in per_seed)),
        "loop_matches_3x_budget_seeds": int(sum(s["hv_loop"] >= s["hv_baselines"][(best_3x, 3)] for s in per_seed)),
        "front_survival_fraction": median([s["front_survival_fraction"] for s in per_seed]),
        "front_survival_strict": median([s["front_survival_strict"] for s in per_seed]),
        "front_survival_in_loop_rounds": median([median([r["front_survival"] for r in s["rounds"]]) for s in per_seed]),
        "kendall_tau_emulated_designs": median([s["designs_kendall_tau"] for s in per_seed]),
        "analytical_kendall_tau_emulated_designs": median([s["designs_analytical_kendall_tau"] for s in per_seed]),
        "emulated_designs_median_abs_err_pct": median([s["designs_median_abs_err_pct"] for s in per_seed]),
        "emulated_designs_analytical_median_abs_err_pct": median([s["designs_analytical_median_abs_err_pct"] for s in per_seed]),
        "loop_s_median": median([s["loop_s"] for s in per_seed]),
        "per_seed": [{k: v for k, v in s.items() if k not in ("loop_points", "baselines", "rounds")} | {
            "hv_baselines": {f"pop{p}_x{m}": v for (p, m), v in s["hv_baselines"].items()},
            "baseline_designs": {f"pop{p}_x{m}": v for (p, m), v in s["baseline_designs"].items()}} for s in per_seed],
    }


# --- 3. timing ----------------------------------------------------------------------------------
def timing(devices, *, n_designs: int, repeats: int, train_rows: int, steps: int) -> dict:
    from codesign.model.analytical import AnalyticalModel
    from codesign.model.surrogate import FEATURES

    design = load_design(DESIGN)
    space = DesignSpace.from_design(design)
    out = {}
    for dev in devices:
        device = torch.device(dev)
        rows = sobol_rows(space, 64, 0)
        gen = torch.Generator().manual_seed(0)
        sizes = torch.tensor([len(k.choices) if k.choices is not None else k.high + 1 for k in space.knobs])
        rows = (torch.rand(n_designs, space.dimension, generator=gen) * sizes).long()
        model = AnalyticalModel(space, device=device)
        surrogate = LatencySurrogate().to(device)
        x = torch.randn(train_rows, len(FEATURES), generator=gen)
        y = torch.randn(train_rows, generator=gen) * 0.2
        sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        surrogate.fit(x, y, steps=steps)
        sync()
        train_s = time.perf_counter() - t0
        cands = space.decode(rows.to(device))
        surrogate.predict_designs(model, space.decode(rows[:256].to(device)))  # warm-up
        times, analytic = [], []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            pred = surrogate.predict_designs(model, cands)
            sync()
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.evaluate(cands)
            sync()
            analytic.append(time.perf_counter() - t0)
        out[dev] = {
            "designs": n_designs, "layers": len(space.lowered.names), "one_call": True,
            "predict_designs_s_median": statistics.median(times), "designs_per_s": n_designs / statistics.median(times),
            "analytical_only_s_median": statistics.median(analytic),
            "train_rows": train_rows, "train_steps": steps, "train_s": train_s, "finite": bool(torch.isfinite(pred.latency_s).all()),
            "threads": torch.get_num_threads(),
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=64, help="oracle budget of the loop (designs)")
    parser.add_argument("--inner-trials", type=int, default=1000, help="NSGA-II trials per round on the surrogate")
    parser.add_argument("--steps", type=int, default=1000, help="training steps per fit")
    parser.add_argument("--data", action="append", help="SCALE-Sim result CSVs (default: the committed ones)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--parts", default="scalesim,loop,timing")
    parser.add_argument("--quick", action="store_true", help="2 seeds, small budget: a smoke run")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: small tensors on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from codesign.model.evaluator import resolve_device

    device = resolve_device(args.device)
    seeds = list(range(2 if args.quick else args.seeds))
    budget, inner, steps = (24, 200, 200) if args.quick else (args.budget, args.inner_trials, args.steps)
    parts = set(args.parts.split(","))
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result: dict = {"device": str(device), "torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if "scalesim" in parts:
        t0 = time.perf_counter()
        part = scalesim_heldout(args.data or DEFAULT_DATA, seeds, steps=steps, device=device)
        part["seconds"] = time.perf_counter() - t0
        result["scalesim"] = part
        for key in ("heldout_median_abs_err_pct", "analytical_median_abs_err_pct", "kendall_tau"):
            result[key] = part[key]
        log(f"SCALE-Sim held out ({part['rows']} rows from {', '.join(part['files'])}): median |err| {part['heldout_median_abs_err_pct']:.2f} % "
            f"vs analytical {part['analytical_median_abs_err_pct']:.2f} %, τ {part['kendall_tau']:.3f}")
    if "loop" in parts:
        t0 = time.perf_counter()
        part = loop_bench(seeds, budget=budget, inner_trials=inner, steps=steps, populations=(16, 32, 64), device=device, log=log)
        part["seconds"] = time.perf_counter() - t0
        result["loop"] = part
        for key in ("front_survival_fraction", "hv_surrogate_loop", "hv_oracle_same_budget", "hv_oracle_3x_budget"):
            result[key] = part[key]
        log(f"loop (budget {budget}): HV {part['hv_surrogate_loop']:.6g} vs NSGA-II on the oracle {part['hv_oracle_same_budget']:.6g} (same) / "
            f"{part['hv_oracle_3x_budget']:.6g} (3×); survival {part['front_survival_fraction']:.2f}")
    if "timing" in parts:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        result["timing"] = {}
        for threads in sorted({1, 2, args.threads}):
            torch.set_num_threads(threads)
            for dev, t in timing(devices, n_designs=4096 if args.quick else 65536, repeats=3, train_rows=2048, steps=steps).items():
                result["timing"][f"{dev}_{threads}thread" if dev == "cpu" else dev] = t
                log(f"{dev} ({threads} thread): {t['designs']} designs in one call {t['predict_designs_s_median']:.3f} s; "
                    f"train {t['train_rows']} rows × {t['train_steps']} steps {t['train_s']:.1f} s")
        torch.set_num_threads(args.threads)
    text = json.dumps(result, indent=None if args.json else 2, default=float)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
