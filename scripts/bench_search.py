#!/usr/bin/env python
"""End-to-end joint search (the ``codesign explore`` path) at 1k, 10k and 100k trials.

For each trial count, ``codesign.api.explore`` runs designs/bench_resnet50_16core.toml
(ResNet-50 on a 4×4-core floorplan: hardware and per-layer dataflow and core, 115
knobs) into a fresh run folder with the default storage (the journal file), on
``--device``; the wall time covers everything ``explore`` does (building the space,
the search, the journal, trials.csv, front.csv, front.png, summary.json). Reported:
wall time, trials per second, the split of the loop between sampling, evaluation,
building the trials ("tell") and storage, and the time per trial over the first and
the last 10 % of the trials.

The process is warmed up first by a small explore run (torch's lazy initialisation,
matplotlib's import), so that every run, ours and the references, is timed warm.
Runs up to 10,000 trials are repeated (``--repeats``, median); 100,000 runs once. Each
of our runs is followed by a pymoo run, and the ratio to pymoo is the median of the
ratios of these side-by-side pairs, so that both see the same load on a shared machine.
Process CPU time is recorded beside wall time (everything here runs on one thread).

In the same run, two references on the same space:

* **plain Optuna**: ``NSGAIISampler`` through ``study.ask(distributions)`` /
  ``study.tell`` one trial at a time, in-memory storage (its fastest), and a trivial
  objective (sums of the knob codes, no model): what the loop costs in Optuna alone;
* **pymoo** (a dev-only reference, skipped when pymoo is not installed): its NSGA-II
  on the same model (the same evaluator, dtype, device and thread count, constraints
  as pymoo inequality constraints), the same population and number of evaluations,
  integer variables by rounding repair.

    .venv/bin/python scripts/bench_search.py --quick            # 1k trials, table
    .venv/bin/python scripts/bench_search.py --json > docs/perf/bench_search.json
    .venv/bin/python scripts/bench_search.py --steps 2000     # the loop before/after each change
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_eval import machine_info  # noqa: E402

from codesign import api  # noqa: E402
from codesign.design import load_design  # noqa: E402
from codesign.errors import UserError  # noqa: E402
from codesign.model.evaluator import Evaluator, resolve_device  # noqa: E402
from codesign.search.batch import Timings  # noqa: E402
from codesign.search.driver import run_search  # noqa: E402
from codesign.search.guards import torch_threads  # noqa: E402
from codesign.space import DesignSpace  # noqa: E402

DESIGN = ROOT / "designs" / "bench_resnet50_16core.toml"
TRIALS = [1000, 10000, 100000]


def run_explore(design_path: Path, n_trials: int, device: str, dtype: torch.dtype, workdir: Path) -> dict:
    """One ``api.explore`` into a fresh folder; its wall time and the loop's own timings."""
    out = workdir / f"run_{n_trials}"
    shutil.rmtree(out, ignore_errors=True)
    original = api.Evaluator
    api.Evaluator = functools.partial(Evaluator, dtype=dtype)  # explore builds the default float64 evaluator
    try:
        start, cpu = time.perf_counter(), time.process_time()
        run = api.explore(design_path, trials=n_trials, out=out, device=device, say=lambda _: None)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        api.Evaluator = original
    s = run.summary
    t = s["timings_s"]
    journal = out / "study.journal"
    result = {
        "wall_s": wall,
        "cpu_s": cpu,
        "loop_wall_s": s["wall_s"],
        "outside_loop_s": wall - s["wall_s"],
        "trials_per_s": n_trials / wall,
        "split_s": {k: t[k] for k in ("sample_s", "evaluate_s", "tell_s", "store_s")},
        "evaluated": t["evaluated"],
        "batches": t["batches"],
        "per_trial_first_10pct_s": t["per_trial_first_10pct_s"],
        "per_trial_last_10pct_s": t["per_trial_last_10pct_s"],
        "last_over_first_per_trial": t["last_over_first_per_trial"],
        "n_front": s["n_front"],
        "hypervolume": s["hypervolume"],
        "journal_bytes": journal.stat().st_size if journal.exists() else None,
        "front": sorted(run.front["trial"].tolist()),
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def run_plain_optuna(space: DesignSpace, n_trials: int, seed: int) -> dict:
    """Optuna's NSGA-II ask/tell loop on the same knobs, in memory, with a trivial objective."""
    design = space.design
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(
        population_size=design.search.population, crossover_prob=design.search.crossover_prob,
        mutation_prob=design.search.mutation_prob, seed=seed,
    )
    n_obj = len(design.objectives.minimize)
    study = optuna.create_study(directions=["minimize"] * n_obj, sampler=sampler)
    distributions = space.distributions
    top = [len(k.choices) - 1 if k.choices is not None else k.high for k in space.knobs]
    per_trial = []
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n_trials):
        t0 = time.perf_counter()
        trial = study.ask(distributions)
        codes = space.encode(trial.params)
        low, high = float(sum(codes)), float(sum(h - c for h, c in zip(top, codes)))
        study.tell(trial, [low, high, float(sum(codes[::2]))][:n_obj] + [low] * max(0, n_obj - 3))
        per_trial.append(time.perf_counter() - t0)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    k = max(1, n_trials // 10)
    first, last = statistics.fmean(per_trial[:k]), statistics.fmean(per_trial[-k:])
    return {"wall_s": wall, "cpu_s": cpu, "per_trial_first_10pct_s": first, "per_trial_last_10pct_s": last, "last_over_first_per_trial": last / first}


def pymoo_problem(space: DesignSpace, evaluator: Evaluator, on_evaluate=None):
    """The design space as a pymoo ``Problem``: integer rows (codes rounded), the design's objectives,
    its budgets as inequality constraints ``(metric − bound) / bound``, failed candidates at 1e30.
    ``on_evaluate(F, G, failed)`` sees every evaluated batch. Needs pymoo (a dev-only reference)."""
    from pymoo.core.problem import Problem

    design = space.design
    names = evaluator.metric_names
    obj = [names.index(o) for o in design.objectives.minimize]
    cons = [(names.index(n), b) for n, b in design.constraints.items()]
    top = np.array([len(k.choices) - 1 if k.choices is not None else k.high for k in space.knobs])

    class CoDesign(Problem):
        def __init__(self):
            super().__init__(n_var=space.dimension, n_obj=len(obj), n_ieq_constr=len(cons), xl=np.zeros_like(top), xu=top, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            values, errors = evaluator.evaluate_rows(torch.from_numpy(np.asarray(X).round().astype(np.int64)))
            bad = np.array([e is not None for e in errors])
            F = values[:, obj]
            G = np.stack([(values[:, i] - b) / b for i, b in cons], axis=1) if cons else np.zeros((len(X), 0))
            F[bad], G[bad] = 1e30, 1e30
            out["F"], out["G"] = F, G
            if on_evaluate is not None:
                on_evaluate(F, G, bad)

    return CoDesign()


def run_pymoo(space: DesignSpace, n_trials: int, seed: int, device: str, dtype: torch.dtype) -> dict | None:
    """pymoo's NSGA-II on the same model: same population, same number of evaluations."""
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
    evaluator = Evaluator(space, device=resolve_device(device), dtype=dtype)
    counted = {"evaluations": 0, "calls": 0}

    def count(F, G, failed):
        counted["evaluations"] += len(F)
        counted["calls"] += 1

    algorithm = NSGA2(
        pop_size=design.search.population,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=design.search.crossover_prob, eta=3.0, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=3.0, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    with torch_threads(evaluator.device, design.search.population):  # the loop's thread setting
        start, cpu = time.perf_counter(), time.process_time()
        minimize(pymoo_problem(space, evaluator, count), algorithm, ("n_evals", n_trials), seed=seed, verbose=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, **counted}


# --- the loop, step by step ----------------------------------------------------------------------
def legacy_loop(space: DesignSpace, evaluator: Evaluator, persistent: optuna.Study, n_trials: int, seed: int) -> dict:
    """The loop before this work (git 64ab5af..b7abdbf, codesign/search/explore.py): an in-memory
    NSGA-II study asked trial by trial (``study.ask(distributions)``: a ``suggest`` round-trip
    per knob, the parent population looked up among all trials per ask), the generation
    evaluated in one batch, told, and appended to the journal with ``study.add_trials``."""
    design = space.design
    names = evaluator.metric_names
    obj_idx = [names.index(o) for o in design.objectives.minimize]
    con_items = [(names.index(n), b, n) for n, b in design.constraints.items()]
    sampler = optuna.samplers.NSGAIISampler(
        population_size=design.search.population, mutation_prob=design.search.mutation_prob,
        crossover_prob=design.search.crossover_prob, seed=seed,
    )
    study = optuna.create_study(directions=["minimize"] * len(obj_idx), sampler=sampler)
    cache: dict = {}
    split = {"sample_s": 0.0, "evaluate_s": 0.0, "tell_s": 0.0, "store_s": 0.0}
    gens = []
    remaining = n_trials
    while remaining > 0:
        batch = min(design.search.population, remaining)
        t0 = time.perf_counter()
        trials = [study.ask(space.distributions) for _ in range(batch)]
        rows = torch.tensor([space.encode(t.params) for t in trials], dtype=torch.long).reshape(batch, space.dimension)
        t1 = time.perf_counter()
        keys = [r.tobytes() for r in space.canonical(rows).numpy()]
        todo = {}
        for i, key in enumerate(keys):
            if key not in cache and key not in todo:
                todo[key] = i
        if todo:
            values, errors = evaluator.evaluate_rows(rows[torch.tensor(list(todo.values()))])
            for j, (key, i) in enumerate(todo.items()):
                cache[key] = (values[j], errors[j], trials[i].number)
        t2 = time.perf_counter()
        frozen = []
        for trial, key in zip(trials, keys):
            values, error, first = cache[key]
            if first != trial.number:
                trial.set_user_attr("duplicate_of", first)
            if error is not None:
                trial.set_user_attr("fail_reason", error)
                frozen.append(study.tell(trial, state=optuna.trial.TrialState.FAIL))
                continue
            for i, bound, name in con_items:
                trial.set_constraint(name, float((values[i] - bound) / bound))
            trial.set_user_attr("metrics", {n: float(v) for n, v in zip(names, values)})
            frozen.append(study.tell(trial, [float(values[i]) for i in obj_idx]))
        t3 = time.perf_counter()
        persistent.add_trials(frozen)
        t4 = time.perf_counter()
        for k, dt in zip(split, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            split[k] += dt
        gens.append((batch, t4 - t0))
        remaining -= batch
    timings = Timings(generations=gens)
    return {"split_s": split, "per_trial_first_10pct_s": timings.per_trial_s(True), "per_trial_last_10pct_s": timings.per_trial_s(False)}


def run_steps(space: DesignSpace, n_trials: int, seed: int, device: str, dtype: torch.dtype, workdir: Path, say) -> list[dict]:
    """The loop before and after each change, same design, trials and storage (a journal file)."""
    from codesign.search.storage import open_storage, open_study

    evaluator = Evaluator(space, device=resolve_device(device), dtype=dtype)
    default_threads = torch.get_num_threads()
    population = space.design.search.population
    steps = [
        ("before: Optuna ask per trial, add_trials per generation", "legacy", default_threads, True),
        ("+ one torch thread for generation-sized batches", "legacy", 1, True),
        ("+ NSGA-II a generation at a time (memoised parents, code rows), Optuna's public storage calls", "new", 1, False),
        ("+ one journal append per generation (TrialWriter): the loop now", "new", 1, True),
        ("the loop now, but torch's default threads", "new", default_threads, True),
    ]
    results = []
    for label, loop, threads, fast in steps:
        if loop == "legacy" and default_threads == 1 and threads == 1 and results and results[-1]["loop"] == "legacy":
            continue  # nothing to change
        out = workdir / f"steps_{len(results)}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        storage, _ = open_storage(out, None)
        persistent = open_study(storage, ["minimize"] * len(space.design.objectives.minimize))
        start, cpu = time.perf_counter(), time.process_time()
        if loop == "legacy":
            with torch_threads(evaluator.device, population, threads):
                detail = legacy_loop(space, evaluator, persistent, n_trials, seed)
        else:
            timings, _ = run_search(space, evaluator, persistent, n_trials=n_trials, seed=seed, say=lambda _: None, fast_storage=fast, cpu_threads=threads)
            d = timings.as_dict()
            detail = {"split_s": {k: d[k] for k in ("sample_s", "evaluate_s", "tell_s", "store_s")},
                      "per_trial_first_10pct_s": d["per_trial_first_10pct_s"], "per_trial_last_10pct_s": d["per_trial_last_10pct_s"]}
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        entry = {"step": label, "loop": loop, "threads": threads, "fast_storage": fast, "trials": n_trials, "wall_s": wall, "cpu_s": cpu, **detail}
        entry["last_over_first_per_trial"] = entry["per_trial_last_10pct_s"] / entry["per_trial_first_10pct_s"]
        results.append(entry)
        sp = entry["split_s"]
        say(f"{wall:8.2f} s wall {cpu:8.2f} s cpu  sample {sp['sample_s']:.2f} eval {sp['evaluate_s']:.2f} tell {sp['tell_s']:.2f} store {sp['store_s']:.2f}  {label}")
        shutil.rmtree(out, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--design", type=Path, default=DESIGN)
    parser.add_argument("--trials", help="comma-separated trial counts (default 1000,10000,100000)")
    parser.add_argument("--repeats", type=int, default=3, help="explore runs per trial count up to 10,000 (median; 100,000 runs once)")
    parser.add_argument("--reference-max-trials", type=int, default=10000, help="largest trial count the plain Optuna loop is run at")
    parser.add_argument("--no-reference", action="store_true", help="skip the plain Optuna loop")
    parser.add_argument("--no-pymoo", action="store_true", help="skip pymoo")
    parser.add_argument("--pymoo-max-trials", type=int, default=100000)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--seed", type=int, help="default: the design's search.seed")
    parser.add_argument("--workdir", type=Path, help="where run folders go (default: a temporary folder, removed)")
    parser.add_argument("--steps", type=int, metavar="TRIALS", help="instead: time the loop before and after each change at TRIALS trials (--repeats rounds)")
    parser.add_argument("--quick", action="store_true", help="1,000 trials only, one repeat")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)

    try:
        resolve_device(args.device)
    except UserError as error:
        print(f"bench_search: {error}", file=sys.stderr)
        return 2
    trial_counts = [int(n) for n in args.trials.split(",")] if args.trials else ([1000] if args.quick else TRIALS)
    repeats = 1 if args.quick else args.repeats
    dtype = getattr(torch, args.dtype)
    design = load_design(args.design)
    seed = design.search.seed if args.seed is None else args.seed
    space = DesignSpace.from_design(design)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else (lambda msg: print(msg, flush=True))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_search_"))
    workdir.mkdir(parents=True, exist_ok=True)

    report = {
        "benchmark": "bench_search",
        "design": str(args.design.relative_to(ROOT)) if args.design.is_relative_to(ROOT) else str(args.design),
        "knobs": space.dimension,
        "layers": len(space.lowered.names),
        "population": design.search.population,
        "seed": seed,
        "device": args.device,
        "dtype": args.dtype,
        "storage": "journal file (default)",
        "quick": args.quick,
        "machine": machine_info(args.device),
        "results": {},
    }
    if args.steps:
        try:
            run_explore(args.design, 2 * design.search.population, args.device, dtype, workdir)  # warm-up
            report["benchmark"] = "bench_search --steps"
            rounds = [run_steps(space, args.steps, seed, args.device, dtype, workdir, say) for _ in range(repeats)]
            report["steps"] = []
            for same in zip(*rounds):  # per step: the median run, and every run's times
                walls = [x["wall_s"] for x in same]
                entry = dict(same[walls.index(statistics.median_low(walls))])
                entry.update({"wall_s": statistics.median(walls), "wall_s_runs": walls,
                              "cpu_s": statistics.median(x["cpu_s"] for x in same), "cpu_s_runs": [x["cpu_s"] for x in same]})
                report["steps"].append(entry)
        finally:
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
        if args.json:
            print(json.dumps(report, indent=2))
        return 0
    try:
        # Warm the process up first (torch's first model call alone takes ~0.5 s of lazy
        # initialisation; the first plot imports matplotlib), so every run below, ours and the
        # references, is timed in the same warm process.
        run_explore(args.design, 2 * design.search.population, args.device, dtype, workdir)
        for n in trial_counts:
            runs, moos = [], []
            for r in range(repeats if n <= 10000 else 1):
                # ours and pymoo alternate, so that both see the same load on a shared machine
                runs.append(run_explore(args.design, n, args.device, dtype, workdir))
                say(f"explore {n:>7} trials: {runs[-1]['wall_s']:8.2f} s wall, {runs[-1]['cpu_s']:8.2f} s cpu ({runs[-1]['trials_per_s']:,.0f} trials/s), last/first per trial {runs[-1]['last_over_first_per_trial']:.2f}")
                if not args.no_pymoo and n <= args.pymoo_max_trials:
                    moo = run_pymoo(space, n, seed, args.device, dtype)
                    if moo is not None:
                        moos.append(moo)
                        say(f"pymoo NSGA-II {n:>7} evals: {moo['wall_s']:8.2f} s wall, {moo['cpu_s']:8.2f} s cpu")
            walls = [x["wall_s"] for x in runs]
            mid = runs[walls.index(statistics.median_low(walls))]
            entry = {k: v for k, v in mid.items() if k != "front"}
            entry.update({
                "repeats": len(runs),
                "wall_s": statistics.median(walls),
                "wall_s_runs": walls,
                "cpu_s": statistics.median(x["cpu_s"] for x in runs),
                "cpu_s_runs": [x["cpu_s"] for x in runs],
                "trials_per_s": n / statistics.median(walls),
                "last_over_first_per_trial": statistics.median(x["last_over_first_per_trial"] for x in runs),
                "last_over_first_per_trial_runs": [x["last_over_first_per_trial"] for x in runs],
                "same_front_every_run": all(x["front"] == runs[0]["front"] for x in runs),
                "reference_optuna_wall_s": None,
                "speedup_vs_reference": None,
                "pymoo_wall_s": None,
                "wall_over_pymoo": None,
            })
            if moos:
                entry["pymoo"] = {
                    "wall_s_runs": [m["wall_s"] for m in moos], "cpu_s_runs": [m["cpu_s"] for m in moos],
                    "evaluations": moos[0]["evaluations"], "calls": moos[0]["calls"],
                }
                entry["pymoo_wall_s"] = statistics.median(m["wall_s"] for m in moos)
                entry["pymoo_cpu_s"] = statistics.median(m["cpu_s"] for m in moos)
                # ratios of the runs made side by side, then their median
                entry["wall_over_pymoo"] = statistics.median(a["wall_s"] / b["wall_s"] for a, b in zip(runs, moos))
                entry["cpu_over_pymoo"] = statistics.median(a["cpu_s"] / b["cpu_s"] for a, b in zip(runs, moos))
                entry["loop_wall_over_pymoo"] = statistics.median(a["loop_wall_s"] / b["wall_s"] for a, b in zip(runs, moos))
            if not args.no_reference and n <= args.reference_max_trials:
                say(f"plain Optuna ask/tell {n} trials (trivial objective, in memory) ...")
                ref = run_plain_optuna(space, n, seed)
                entry["reference_optuna"] = ref
                entry["reference_optuna_wall_s"] = ref["wall_s"]
                entry["speedup_vs_reference"] = ref["wall_s"] / entry["wall_s"]
                entry["cpu_speedup_vs_reference"] = ref["cpu_s"] / entry["cpu_s"]
                say(f"plain Optuna {n:>7} trials: {ref['wall_s']:8.2f} s wall, {ref['cpu_s']:8.2f} s cpu, last/first per trial {ref['last_over_first_per_trial']:.2f}")
            report["results"][str(n)] = entry
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    print(f"\nbench_search: {report['design']} ({report['knobs']} knobs, population {report['population']}), {args.device} {args.dtype}")
    print(f"{m['cpu']} ({m['usable_cores']} cores, load {m['load_average_1m_at_start']}), torch {m['torch']}, optuna {m['optuna']}")
    print(f"{'trials':>8} {'wall s':>8} {'trials/s':>9} {'sample':>7} {'eval':>7} {'tell':>7} {'store':>7} {'outside':>8} {'last/first':>10} {'optuna s':>9} {'×':>6} {'pymoo s':>8} {'÷pymoo':>7}")
    for n, e in report["results"].items():
        sp = e["split_s"]
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        print(
            f"{n:>8} {e['wall_s']:>8.2f} {e['trials_per_s']:>9,.0f} {sp['sample_s']:>7.2f} {sp['evaluate_s']:>7.2f} {sp['tell_s']:>7.2f} "
            f"{sp['store_s']:>7.2f} {e['outside_loop_s']:>8.2f} {e['last_over_first_per_trial']:>10.2f} {fmt(e['reference_optuna_wall_s'], '9.1f'):>9} "
            f"{fmt(e['speedup_vs_reference'], '6.1f'):>6} {fmt(e['pymoo_wall_s'], '8.2f'):>8} {fmt(e['wall_over_pymoo'], '7.2f'):>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
