#!/usr/bin/env python
"""How close each search strategy gets to the true Pareto front, against evaluations spent.

Two spaces:

* **enumerable** — designs/quality_enumerable.toml (ResNet-18 on a two-core chip, 186,624
  joint points): every point is evaluated (codesign.search.exhaustive) for the exact front;
  each strategy's hypervolume is a ratio of the exact front's;
* **large** — designs/bench_resnet50_16core.toml (ResNet-50 on 16 cores, dataflow and core
  of every layer: 115 knobs, far too many points to enumerate); the ratio is to the front
  of every trial any strategy found in the run.

Hypervolume is taken on log10 objectives normalised so that the reference front's ideal
point is 0 and its nadir 1, with the reference point 1.1 in every objective (moocore);
only feasible trials count. A budget is distinct designs evaluated: a strategy that proposes
a design again gets the stored result (as the engine does) and that costs nothing. Strategies: ``joint`` (NSGA-II, the engine's default),
``sequential`` (hardware first, then schedules), ``random``, Optuna's ``nsga3`` and ``tpe``
(only up to 2,000 and 500 evaluations: Optuna's per-trial cost grows with the study, to
tens of milliseconds for NSGA-III and about a second for TPE at a few thousand trials),
gradient refinement of a small joint run's front (``joint+mgda``, ``joint+pcgrad``: NSGA-II
for a quarter of the budget, then refinement; its budget counts every relaxed and exact
evaluation), and pymoo's NSGA-II (integer SBX and polynomial mutation with rounding) as an
outside reference (dev-only: skipped when pymoo is missing). A strategy whose proposals do not
depend on the total budget runs once per seed to the largest budget and is read at each
budget from its first trials; sequential runs once per budget.

    .venv/bin/python scripts/bench_quality.py --json > docs/quality/bench_quality.json
    .venv/bin/python scripts/bench_quality.py --quick            # a few minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_eval import machine_info  # noqa: E402
from bench_search import pymoo_problem  # noqa: E402
from codesign.api import build  # noqa: E402
from codesign.search.exhaustive import exhaustive_front  # noqa: E402
from codesign.search.driver import run_search  # noqa: E402
from codesign.search.pareto import hypervolume, nondominated_mask  # noqa: E402
from codesign.search.refine import front_starts, refine_rows  # noqa: E402

ENUMERABLE = ROOT / "designs" / "quality_enumerable.toml"
LARGE = ROOT / "designs" / "bench_resnet50_16core.toml"
OUT = ROOT / "docs" / "quality"
REF = 1.1


class Normaliser:
    """log10 objectives scaled so the reference front spans [0, 1] in each; reference point 1.1."""

    def __init__(self, front: np.ndarray) -> None:
        logs = np.log10(front)
        self.low, self.high = logs.min(axis=0), logs.max(axis=0)
        self.span = np.where(self.high > self.low, self.high - self.low, 1.0)

    def hv(self, values: np.ndarray) -> float:
        if len(values) == 0:
            return 0.0
        z = (np.log10(values) - self.low) / self.span
        return hypervolume(z, np.full(values.shape[1], REF))


def feasible_values(space, evaluator, trials) -> np.ndarray:
    """Objective values ``[n, M]`` of the trials, NaN rows where a trial failed or broke a budget (order kept)."""
    out = np.full((len(trials), len(space.design.objectives.minimize)), np.nan)
    for i, t in enumerate(trials):
        metrics = t.user_attrs.get("metrics")
        if t.state.name != "COMPLETE" or metrics is None:
            continue
        if all(metrics[n] <= b for n, b in space.design.constraints.items()):
            out[i] = t.values
    return out


def study_run(space, evaluator, strategy: str, sampler: str, n: int, seed: int) -> tuple[np.ndarray, int]:
    """Objective values of a run's trials (NaN: failed or over budget) and the distinct designs it evaluated
    (a repeated design is a trial but no evaluation: the engine reuses its result)."""
    study = optuna.create_study(directions=["minimize"] * len(space.design.objectives.minimize))
    timings, _ = run_search(space, evaluator, study, n_trials=n, seed=seed, strategy=strategy, sampler=sampler, say=lambda _: None)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    return feasible_values(space, evaluator, trials), timings.evaluated


def sequential_run(space, evaluator, budget: int, seed: int) -> tuple[np.ndarray, int]:
    """Sequential with as many trials as it takes to evaluate about ``budget`` distinct designs (its
    phases split trials; its hardware phase repeats designs often), never more than ``budget``."""
    n, best = budget, None
    for _ in range(4):
        values, evaluated = study_run(space, evaluator, "sequential", "nsga2", n, seed)
        if evaluated <= budget and (best is None or evaluated > best[1]):
            best = (values, evaluated)
        if abs(evaluated - budget) <= 0.02 * budget or n >= 4 * budget:
            break
        n = min(4 * budget, max(budget, int(n * budget / max(1, evaluated))))
    return best


def evaluation_prefix(values: np.ndarray, new: np.ndarray, budget: int) -> np.ndarray:
    return values[: int(np.searchsorted(new, budget, side="right"))]


def pymoo_run(space, evaluator, n: int, seed: int) -> np.ndarray | None:
    """pymoo's NSGA-II on the same integer rows and model (bench_search's problem); objective values
    of every evaluation, in order, NaN where the design failed or broke a budget."""
    try:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        from pymoo.optimize import minimize
    except ImportError:
        return None
    design = space.design
    seen: list[np.ndarray] = []

    def record(F, G, failed):
        feasible = ~failed & (G <= 0).all(axis=1)
        seen.append(np.where(feasible[:, None], F, np.nan))

    algorithm = NSGA2(pop_size=design.search.population, sampling=IntegerRandomSampling(),
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    minimize(pymoo_problem(space, evaluator, record), algorithm, ("n_eval", n), seed=seed, verbose=False)
    return np.concatenate(seen)[:n]


def refine_run(space, evaluator, method: str, budget: int, seed: int) -> tuple[np.ndarray, int]:
    """NSGA-II for a quarter of ``budget`` trials, then refinement of its front; every evaluation counted."""
    n_ga = max(space.design.search.population, budget // 4)
    study = optuna.create_study(directions=["minimize"] * len(space.design.objectives.minimize))
    run_search(space, evaluator, study, n_trials=n_ga, seed=seed, say=lambda _: None)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    values = feasible_values(space, evaluator, trials)
    n_ga = sum(t.user_attrs.get("duplicate_of") is None for t in trials)  # distinct designs evaluated
    starts, _ = front_starts(space, trials, 32)
    rows, _, stats = refine_rows(space, evaluator, starts, method=method, steps=20, seed=seed)
    if len(rows):
        v, errors = evaluator.evaluate_rows(torch.from_numpy(rows))
        names = evaluator.metric_names
        obj = [names.index(o) for o in space.design.objectives.minimize]
        values = np.concatenate([values, v[:, obj]])  # refine_rows returns only feasible designs
    spent = n_ga + stats.relaxed_evaluations + stats.exact_evaluations
    return values, spent


def ratio(values: np.ndarray, norm: Normaliser, reference_hv: float) -> float:
    v = values[np.isfinite(values).all(axis=1)]
    return norm.hv(v) / reference_hv


def summarise(ratios: dict[int, list[float]], extra: dict | None = None) -> dict:
    budgets = sorted(ratios)
    out = {
        "budget": budgets,
        "hv_ratio_median": [statistics.median(ratios[b]) for b in budgets],
        "hv_ratio_min": [min(ratios[b]) for b in budgets],
        "hv_ratio_max": [max(ratios[b]) for b in budgets],
        "seeds": len(next(iter(ratios.values()))) if ratios else 0,
    }
    if extra:
        out.update(extra)
    return out


def run_space(path: Path, *, budgets: list[int], seeds: list[int], strategies: list[str], caps: dict[str, int], say,
              exact: bool) -> tuple[dict, dict]:
    space, evaluator = build(path, device="cpu")
    entry: dict = {"design": str(path.relative_to(ROOT)), "knobs": space.dimension}
    t0 = time.perf_counter()
    if exact:
        ex = exhaustive_front(space, evaluator)
        entry.update(space_size=ex.space_size, n_feasible=ex.n_feasible, exact_front_size=len(ex.values),
                     exact_front_distinct_values=len(np.unique(ex.values, axis=0)),
                     exhaustive_s=round(time.perf_counter() - t0, 2))
        say(f"{path.name}: {ex.space_size} points enumerated in {entry['exhaustive_s']} s, exact front {len(ex.values)} points")
    top = max(budgets)
    raw: dict[str, dict[int, list[np.ndarray]]] = {}  # strategy → seed → values (or budget-keyed for per-budget runs)
    spent: dict[str, dict[int, list[int]]] = {}
    seconds: dict[str, float] = {}
    for name in strategies:
        t = time.perf_counter()
        runs: dict[int, list[np.ndarray]] = {}
        cost: dict[int, list[int]] = {}
        for seed in seeds:
            if name in ("joint", "random", "nsga3", "tpe"):
                strategy, sampler = ("joint", "nsga2") if name == "joint" else (("random", "nsga2") if name == "random" else ("joint", name))
                n = min(top, caps.get(name, top))
                # Trials until n distinct designs have been evaluated (at most 3n trials), then cut per budget.
                study = optuna.create_study(directions=["minimize"] * len(space.design.objectives.minimize))
                done = 0
                while True:
                    run_search(space, evaluator, study, n_trials=done + n, seed=seed, strategy=strategy, sampler=sampler, say=lambda _: None)
                    done += n
                    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
                    new = np.cumsum([t.user_attrs.get("duplicate_of") is None for t in trials])
                    if new[-1] >= n or done >= (n if name == "tpe" else 3 * n):  # TPE: one pass, it is slow
                        break
                values = feasible_values(space, evaluator, trials)
                for b in budgets:
                    if b <= n:
                        runs.setdefault(b, []).append(evaluation_prefix(values, new, b))
                        cost.setdefault(b, []).append(min(b, int(new[-1])))
            elif name == "pymoo":
                values = pymoo_run(space, evaluator, top, seed)
                if values is None:
                    break
                for b in budgets:
                    runs.setdefault(b, []).append(values[:b])
                    cost.setdefault(b, []).append(b)
            elif name == "sequential":
                for b in budgets:
                    values, evaluated = sequential_run(space, evaluator, b, seed)
                    runs.setdefault(b, []).append(values)
                    cost.setdefault(b, []).append(evaluated)
            elif name.startswith("joint+"):
                for b in budgets:
                    values, used = refine_run(space, evaluator, name.split("+")[1], b, seed)
                    runs.setdefault(b, []).append(values)
                    cost.setdefault(b, []).append(used)
        if runs:
            raw[name], spent[name] = runs, cost
            seconds[name] = time.perf_counter() - t
        say(f"  {name}: {time.perf_counter() - t:.1f} s")
    if exact:
        norm = Normaliser(ex.values)
        reference_hv = norm.hv(ex.values)
        entry["exact_hypervolume"] = reference_hv
        entry["reference"] = "exact front"
        front_values = ex.values
    else:
        everything = np.concatenate([v for runs in raw.values() for vs in runs.values() for v in vs])
        everything = everything[np.isfinite(everything).all(axis=1)]
        front_values = everything[nondominated_mask(everything)]
        norm = Normaliser(front_values)
        reference_hv = norm.hv(front_values)
        entry["best_known_hypervolume"] = reference_hv
        entry["best_known_front_size"] = int(len(front_values))
        entry["reference"] = "front of every trial of every strategy and seed in this run"
    fronts = {}
    for name, runs in raw.items():
        ratios = {b: [ratio(v, norm, reference_hv) for v in vs] for b, vs in runs.items()}
        extra = {"evaluations_median": [statistics.median(spent[name][b]) for b in sorted(runs)],
                 "wall_s_all_seeds": round(seconds[name], 1)}
        entry[name] = summarise(ratios, extra)
        last = runs[max(runs)][0]
        last = last[np.isfinite(last).all(axis=1)]
        fronts[name] = np.unique(last[nondominated_mask(last)], axis=0) if len(last) else last  # repeated designs once
    fronts["_reference"] = front_values
    if exact:  # for redrawing the overlay plot from the JSON
        entry["fronts_first_seed"] = {name: np.asarray(f).tolist() for name, f in fronts.items()}
    return entry, fronts


def plot(result: dict, fronts: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from codesign.plots._units import axis_label

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    palette = plt.get_cmap("tab10").colors
    color = {name: palette[i % len(palette)] for i, name in enumerate(LABELS)}  # one colour per strategy, both panels
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "enumerable", "enumerable space (exact front)"), (axes[1], "large", "ResNet-50, 16 cores (best known front)")):
        entry = result.get(key)
        if not entry:
            ax.set_visible(False)
            continue
        for name, data in entry.items():
            if not isinstance(data, dict) or "hv_ratio_median" not in data:
                continue
            x = data["evaluations_median"]
            ax.plot(x, data["hv_ratio_median"], marker="o", label=name, color=color.get(name))
            ax.fill_between(x, data["hv_ratio_min"], data["hv_ratio_max"], alpha=0.12, color=color.get(name))
        if key == "enumerable" and "space_size" in entry:
            ax.axvline(0.05 * entry["space_size"], color="grey", ls=":", lw=1, label="5 % of the space")
            ax.axhline(0.99, color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("distinct designs evaluated (refinement: and every relaxed evaluation)")
        ax.set_ylabel("hypervolume / reference")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "hv_vs_budget.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)

    enum_fronts = fronts.get("enumerable")
    if enum_fronts:
        objectives = result["enumerable"]["objectives"]
        fig, ax = plt.subplots(figsize=(6.2, 4.6))
        ref = enum_fronts["_reference"]
        order = np.argsort(ref[:, 0])
        (xlabel, fx), (ylabel, fy) = axis_label(objectives[0], ref[:, 0]), axis_label(objectives[1], ref[:, 1])
        ax.plot(ref[order, 0] * fx, ref[order, 1] * fy, "k-", lw=2.5, alpha=0.35, label=f"exact front ({len(ref)} distinct points)")
        markers = "os^vD<>ph"
        for i, (name, front) in enumerate((n, f) for n, f in enum_fronts.items() if n != "_reference"):
            if len(front):
                ax.scatter(front[:, 0] * fx, front[:, 1] * fy, s=18, marker=markers[i % len(markers)], label=name, alpha=0.8,
                           color=color.get(name))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"fronts found (seed {result['seeds'][0]}, each strategy's largest budget) vs the exact front", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "front_overlay.png")
        fig.savefig(paths[-1], dpi=130)
        plt.close(fig)
    return paths


LABELS = {
    "joint": "joint NSGA-II (default)",
    "sequential": "sequential (hardware, then schedule)",
    "random": "random",
    "nsga3": "joint, Optuna NSGA-III",
    "tpe": "joint, Optuna TPE",
    "pymoo": "pymoo NSGA-II (reference)",
    "joint+mgda": "NSGA-II ¼ budget + MGDA refinement",
    "joint+pcgrad": "NSGA-II ¼ budget + PCGrad refinement",
}


def _strategies(entry: dict) -> list[str]:
    return [k for k, v in entry.items() if isinstance(v, dict) and "hv_ratio_median" in v]


def _table(entry: dict) -> list[str]:
    budgets = sorted({b for name in _strategies(entry) for b in entry[name]["budget"]})
    lines = ["| strategy | " + " | ".join(f"{b:,}" for b in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for name in _strategies(entry):
        data = entry[name]
        cells = dict(zip(data["budget"], data["hv_ratio_median"]))
        spent = dict(zip(data["budget"], data["evaluations_median"]))
        row = []
        for b in budgets:
            if b not in cells:
                row.append("–")
            elif abs(spent[b] - b) > 0.02 * b:  # spent other than the budget: say how many
                row.append(f"{cells[b]:.4f} ({spent[b]:,.0f})")
            else:
                row.append(f"{cells[b]:.4f}")
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(row) + " |")
    return lines


def render_markdown(result: dict) -> str:
    """The README's "Search quality" section from a bench_quality JSON."""
    m = result["machine"]
    e = result["enumerable"]
    lines = [
        "## Search quality",
        "",
        f"Measured with `scripts/bench_quality.py` ({len(result['seeds'])} seeds, medians; {m['cpu']}, torch {m['torch']}, "
        f"Optuna {m['optuna']}, pymoo {m['pymoo']}). Hypervolume on log10 objectives normalised to the reference front "
        "(ideal 0, nadir 1, reference point 1.1), feasible designs only. A budget is distinct designs evaluated "
        "(a repeated design reuses its stored result); refinement counts every relaxed and exact evaluation.",
        "",
        f"**Enumerable space** (`{e['design']}`: ResNet-18 on two cores, {e['knobs']} knobs, {e['space_size']:,} joint points, "
        f"{e['n_feasible']:,} feasible; enumerating it takes {e['exhaustive_s']} s and gives an exact front of {e['exact_front_size']} designs "
        f"with {e['exact_front_distinct_values']} distinct objective vectors). "
        "Hypervolume found / exact, by evaluations:",
        "",
        *_table(e),
        "",
    ]
    j, sq = e.get("joint"), e.get("sequential")
    if j and sq:
        pairs = [(b, a - c) for b, a, c in zip(j["budget"], j["hv_ratio_median"], sq["hv_ratio_median"]) if b in sq["budget"]]
        first = next(((b, r) for b, r in zip(j["evaluations_median"], j["hv_ratio_median"]) if r >= 0.99), None)
        reach = (f"reaches {first[1]:.4f} of the exact hypervolume after {first[0]:,.0f} evaluations "
                 f"({100 * first[0] / e['space_size']:.2f} % of the space; target: 0.99 within 5 %)") if first else "never reaches 0.99 here"
        lines += [
            "Numbers in brackets: evaluations spent where they differ from the column's budget.",
            "",
            f"Joint NSGA-II {reach}. It beats sequential design at every budget, by "
            + ", ".join(f"{d:+.4f}" for _, d in pairs)
            + " of the exact hypervolume: sizing the hardware against a default schedule leaves the designs whose "
            "hardware only pays off with another dataflow or mapping off the front for good. "
            + (("Against pymoo's NSGA-II at the same evaluations: "
                + ", ".join(f"{a:.4f} vs {c:.4f}" for b, a, c in zip(j["budget"], j["hv_ratio_median"], e["pymoo"]["hv_ratio_median"]))
                + ". ") if "pymoo" in e else "")
            + "Where joint NSGA-II spent fewer "
            "evaluations than the budget, its population had converged and re-proposed stored designs (trials that cost no "
            "evaluation).",
            "",
        ]
    large = result.get("large")
    if large:
        lines += [
            f"**Large space** (`{large['design']}`: ResNet-50 on 16 cores, {large['knobs']} knobs, per-layer dataflow and core; "
            f"{len(result['seeds'][:3])} seeds). Hypervolume / that of the best front any strategy found "
            f"({large['best_known_front_size']} points):",
            "",
            *_table(large),
            "",
            f"{large.get('note', '')}",
            "",
        ]
        jl = large.get("joint")
        ref = {k: large[k] for k in ("joint+mgda", "joint+pcgrad") if k in large}
        if jl and ref:
            top = max(jl["budget"])
            target = jl["hv_ratio_median"][jl["budget"].index(top)]
            best_name = max(ref, key=lambda k: ref[k]["hv_ratio_median"][ref[k]["budget"].index(top)])
            r = ref[best_name]
            got, used = r["hv_ratio_median"][r["budget"].index(top)], r["evaluations_median"][r["budget"].index(top)]
            same = [(b, v) for b, v in zip(jl["budget"], jl["hv_ratio_median"]) if b <= used * 1.05]
            lines += [
                f"**Gradient refinement falls short.** Joint NSGA-II reaches {target:.4f} with {top:,} evaluations; "
                f"NSGA-II on a quarter of that budget followed by the better refinement ({LABELS[best_name].split(' + ')[1].split()[0]}) reaches "
                f"{got:.4f} with {used:,.0f} evaluations (≤ 1/3 of {top:,}), {target - got:.4f} short"
                + (f", and below the {same[-1][1]:.4f} that NSGA-II alone reaches with {same[-1][0]:,} evaluations" if same else "")
                + ". The refined designs are never dominated by their starting points, but they move along the front more "
                "than beyond it: the relaxation covers the PE array, SRAM, bandwidths, clock and each layer's dataflow, not the "
                "layer-to-core mapping (54 of the 115 knobs); compute cycles are step functions of the "
                "array size, so the straight-through gradient only follows their envelope; and the projection back to the "
                "nearest discrete choice undoes small steps. A relaxed evaluation (forward and backward, "
                "all three dataflows mixed) also costs several exact ones.",
                "",
            ]
    lines += [
        "How refinement works (`--refine mgda|pcgrad`, `codesign/search/refine.py`): the numeric hardware knobs become "
        "continuous (their logarithms, with straight-through ceilings in the model) and each dataflow knob a softmax "
        "mixture of the layer's costs under the three dataflows, the relaxation of DARTS (Liu, Simonyan & Yang, ICLR "
        "2019); torch differentiates the logarithm of every objective, which makes the gradients scale-free (the "
        "balancing GradNorm learns, here by construction); MGDA takes the minimum-norm point of their convex hull, a "
        "step that lowers every objective at once (Désidéri, C. R. Acad. Sci. Paris 2012; Sener & Koltun, NeurIPS "
        "2018), PCGrad projects each gradient off the others it conflicts with (Yu et al., NeurIPS 2020). After every "
        "step the design is projected to the nearest valid discrete one; those not dominated by their starting design "
        "join the study as trials.",
        "",
        "![hypervolume against evaluations](docs/quality/hv_vs_budget.png)",
        "",
        "![fronts found vs the exact front](docs/quality/front_overlay.png)",
    ]
    return "\n".join(lines) + "\n"


def write_readme(result: dict, readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    begin, end = "<!-- quality:begin -->", "<!-- quality:end -->"
    block = f"{begin}\n{render_markdown(result)}{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        anchor = "<!-- fidelity:begin -->"
        text = text.replace(anchor, block + "\n\n" + anchor)
    readme.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer budgets and seeds: a few minutes")
    parser.add_argument("--seeds", type=int, help="seeds per strategy (default 5; --quick 2)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the plots go (default docs/quality)")
    parser.add_argument("--skip-large", action="store_true", help="only the enumerable space")
    parser.add_argument("--readme", type=Path, metavar="JSON", help="only redraw the plots (into --out) and rewrite README's Search quality section from a saved JSON")
    args = parser.parse_args(argv)
    if args.readme:  # redraw the plots and rewrite the README section from a saved run
        saved = json.loads(args.readme.read_text())
        fronts = {key: {n: np.array(f) for n, f in saved[key]["fronts_first_seed"].items()} for key in ("enumerable",) if key in saved}
        plot(saved, fronts, args.out)
        write_readme(saved)
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    seeds = list(range(args.seeds if args.seeds else (2 if args.quick else 5)))
    if args.quick:
        enum_budgets, large_budgets, caps = [500, 1000, 2000, 5000], [1000, 3000], {"tpe": 300, "nsga3": 1000}
    else:
        enum_budgets, large_budgets, caps = [500, 1000, 2000, 5000, 9000], [1000, 3000, 10000], {"tpe": 500, "nsga3": 2000}
    strategies = ["joint", "sequential", "random", "nsga3", "tpe", "pymoo", "joint+mgda", "joint+pcgrad"]
    result: dict = {"benchmark": "bench_quality", "quick": args.quick, "seeds": seeds, "machine": machine_info("cpu")}
    t0 = time.perf_counter()
    fronts: dict = {}
    result["enumerable"], fronts["enumerable"] = run_space(ENUMERABLE, budgets=enum_budgets, seeds=seeds, strategies=strategies,
                                                           caps=caps, say=say, exact=True)
    space, _ = build(ENUMERABLE, device="cpu")
    result["enumerable"]["objectives"] = space.design.objectives.minimize
    if not args.skip_large:
        large_strategies = [s for s in strategies if s not in ("tpe", "nsga3")]
        result["large"], fronts["large"] = run_space(LARGE, budgets=large_budgets, seeds=seeds[:3], strategies=large_strategies,
                                                     caps={}, say=say, exact=False)
        result["large"]["note"] = ("Optuna's NSGA-III and TPE are left out on this space to keep the run short: their cost "
                                   "per trial grows with the study (see their wall_s_all_seeds on the enumerable space).")
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["plots"] = [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in plot(result, fronts, args.out)]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key in ("enumerable", "large"):
            entry = result.get(key)
            if not entry:
                continue
            print(f"\n{key}: " + ", ".join(f"{k}={entry[k]}" for k in ("space_size", "exact_front_size", "best_known_front_size") if k in entry))
            for name, data in entry.items():
                if isinstance(data, dict) and "hv_ratio_median" in data:
                    cells = "  ".join(f"{b}:{r:.4f}" for b, r in zip(data["budget"], data["hv_ratio_median"]))
                    print(f"  {name:>14}  {cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
