#!/usr/bin/env python
"""Beyond one machine: the oracle loop on 1, 2, 4 and 8 Dask workers, PostgreSQL against the journal
file, and coordinators started together on one PostgreSQL study. Everything runs on this machine.

* ``oracle_loop``: ``codesign explore --oracle`` on ``designs/edge_resnet18.toml`` against the emulated
  oracle with a fixed latency per job (``--job-s``, the stand-in for a slow simulator: the jobs wait,
  so this scales past the machine's cores), first in this process (the reference: the oracle's own
  pool, 8 threads), then on a local Dask cluster of N = 1, 2, 4, 8 worker processes (started before the
  clock runs, as a standing cluster would be). Wall of the whole loop (fits and searches included) and
  of its oracle part, speed-up against one worker, and whether every run verified the same front as
  the reference.
* ``storage_ms_per_trial``: store time per trial (``summary.json``'s ``timings_s.store_s`` / trials) of a
  ``--trials``-trial ``codesign explore designs/bench_resnet50_16core.toml`` on the run folder's journal
  file and on PostgreSQL (a server of its own, started here with ``initdb``/``pg_ctl``), and, as
  the before figure, Optuna's own per-trial writes (``create_new_trial``) on PostgreSQL.
* ``coordinators``: three ``codesign explore --storage postgresql://…`` processes started at once on one
  study, each asking for ``--trials``: trials asked against stored, designs stored twice without
  ``duplicate_of``, exit codes (one runs, the others are refused with exit 2).

    .venv/bin/python scripts/bench_cluster.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_eval import machine_info  # noqa: E402

from codesign import api  # noqa: E402
from codesign.design import load_design  # noqa: E402
from codesign.oracles.emulated import EmulatedOracle  # noqa: E402
from codesign.packing import stored_key  # noqa: E402
from codesign.runs.oracle import explore_with_oracle  # noqa: E402
from codesign.search.surrogate_loop import LoopSettings  # noqa: E402
from tests.servers import Postgres, find_initdb  # noqa: E402

EDGE = ROOT / "designs" / "edge_resnet18.toml"
BENCH = ROOT / "designs" / "bench_resnet50_16core.toml"
optuna.logging.set_verbosity(optuna.logging.WARNING)


def oracle_run(out: Path, job_s: float, budget: int, cluster: str | None, threads: int = 1) -> tuple[dict, pd.DataFrame]:
    settings = LoopSettings(budget=budget, initial=budget // 2, batch=max(4, budget // 6), inner_trials=128, steps=60, members=2,
                            hidden=16, final_search=False)
    oracle = EmulatedOracle(sleep_s=job_s, workers=threads)
    t0 = time.perf_counter()
    run = explore_with_oracle(load_design(EDGE), oracle=oracle, budget=budget, trials=None, seed=1, out=out, device="cpu",
                              say=lambda *_: None, settings=settings, cluster=cluster)
    wall = time.perf_counter() - t0
    rounds = pd.read_csv(out / "rounds.csv") if (out / "rounds.csv").stat().st_size > 1 else pd.DataFrame()
    stats = run.summary["oracle_stats"]
    knobs = [c for c in run.front.columns if c.startswith(("hw.", "sched."))]
    front = run.front[["latency_s", "cost_usd", *knobs]].reset_index(drop=True)
    return {"wall_s": wall, "oracle_wall_s": stats["wall_s"], "jobs_simulated": stats["simulated"], "designs": run.summary["designs_verified"],
            "fit_and_search_s": float(rounds[["fit_s", "search_s"]].sum().sum()) if len(rounds) else 0.0}, front


def started_cluster(n: int):
    """A local Dask cluster of ``n`` worker processes, started (and codesign imported in each) before the clock runs."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL)
    with Client(cluster) as client:
        client.run(lambda: __import__("codesign.oracles.emulated"))
    return cluster


def bench_oracle_loop(folder: Path, job_s: float, budget: int, workers: list[int], say) -> dict:
    """The reference runs in this process, the oracle's own pool of 8 threads (the emulated jobs only wait)."""
    reference, front = oracle_run(folder / "reference", job_s, budget, None, threads=8)
    say(f"oracle loop in process (8 threads): {reference['wall_s']:.1f} s, {reference['jobs_simulated']} jobs")
    out = {"job_s": job_s, "budget": budget, "jobs": reference["jobs_simulated"], "reference": reference, "workers": workers,
           "wall_s": [], "oracle_wall_s": [], "speedup": [], "oracle_speedup": [], "same_front_each": []}
    for n in workers:
        cluster = started_cluster(n)
        try:
            got, other = oracle_run(folder / f"w{n}", job_s, budget, cluster.scheduler_address)
        finally:
            cluster.close()
        out["wall_s"].append(round(got["wall_s"], 2))
        out["oracle_wall_s"].append(round(got["oracle_wall_s"], 2))
        out["same_front_each"].append(bool(other.equals(front)))
        say(f"oracle loop on {n} worker(s): {got['wall_s']:.1f} s (oracle {got['oracle_wall_s']:.1f} s), same front: {other.equals(front)}")
    out["speedup"] = [round(out["wall_s"][0] / w, 2) for w in out["wall_s"]]
    out["oracle_speedup"] = [round(out["oracle_wall_s"][0] / w, 2) for w in out["oracle_wall_s"]]
    out["same_front"] = all(out["same_front_each"])
    return out


def store_ms(summary: dict) -> float:
    return 1000 * summary["timings_s"]["store_s"] / max(1, summary["trials_added"])


def bench_storage(folder: Path, pg: Postgres, trials: int, say) -> dict:
    design = load_design(BENCH)
    journal = api.explore(design, trials=trials, seed=0, out=folder / "journal", device="cpu", say=lambda _: None).summary
    url = pg.new_database()
    postgres = api.explore(design, trials=trials, seed=0, out=folder / "pg", storage=url, device="cpu", say=lambda _: None).summary
    say(f"storage: journal {store_ms(journal):.3f} ms/trial, PostgreSQL {store_ms(postgres):.3f} ms/trial ({trials} trials)")
    # Before: Optuna's own trial-by-trial writes (what the RDB path was), one generation only.
    from codesign.model.evaluator import build_evaluator
    from codesign.search.driver import run_search
    from codesign.search.storage import open_storage, open_study

    space, evaluator = build_evaluator(design, device="cpu")
    storage, _ = open_storage(folder, pg.new_database())
    study = open_study(storage, ["minimize"] * len(design.objectives.minimize))
    timings, added = run_search(space, evaluator, study, n_trials=design.search.population, seed=0, say=lambda *_: None,
                                fast_storage=False)
    optuna_ms = 1000 * timings.store_s / added
    say(f"storage: Optuna's per-trial writes on PostgreSQL {optuna_ms:.1f} ms/trial ({added} trials)")
    return {"journal": round(store_ms(journal), 4), "postgresql": round(store_ms(postgres), 4), "trials": trials,
            "postgresql_optuna_per_trial_writes": round(optuna_ms, 2), "postgresql_optuna_trials": added,
            "wall_s": {"journal": round(journal["wall_s"], 2), "postgresql": round(postgres["wall_s"], 2)}}


def bench_coordinators(folder: Path, pg: Postgres, trials: int, n: int, say) -> dict:
    url = pg.new_database()
    procs = [subprocess.Popen([sys.executable, "-m", "codesign", "explore", str(EDGE), "--trials", str(trials), "--seed", "3",
                               "--storage", url, "--out", str(folder / f"c{i}"), "--no-progress"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    results = [p.communicate(timeout=900) for p in procs]
    codes = [p.returncode for p in procs]
    stored = optuna.load_study(study_name="codesign", storage=url).get_trials(deepcopy=False)
    seen, unmarked = set(), 0
    for t in sorted(stored, key=lambda t: t.number):
        key = stored_key(t)
        unmarked += key in seen and "duplicate_of" not in t.user_attrs
        seen.add(key)
    refusals = [err.strip().splitlines()[-1] for (_, err), code in zip(results, codes) if code == 2]
    say(f"coordinators: {n} started, exit codes {codes}, {len(stored)} stored of {trials} asked, {unmarked} unmarked duplicates")
    return {"started": n, "asked": trials, "stored": len(stored), "unmarked_duplicates": unmarked, "exit_codes": codes,
            "distinct_designs": len(seen), "refusal": refusals[0] if refusals else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test, not the figures)")
    parser.add_argument("--job-s", type=float, default=None, help="emulated seconds per oracle job (default 1.5; quick 0.05)")
    parser.add_argument("--trials", type=int, default=None, help="trials of the storage run (default 10,000; quick 1,000)")
    args = parser.parse_args()
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    job_s = args.job_s if args.job_s is not None else (0.05 if args.quick else 1.5)
    trials = args.trials if args.trials is not None else (1000 if args.quick else 10_000)
    bindir = find_initdb()
    if bindir is None:
        sys.exit("bench_cluster: no PostgreSQL initdb found (install Debian's postgresql)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        folder = Path(tmp)
        result = {"machine": machine_info(), "oracle_loop": bench_oracle_loop(folder / "oracle", job_s, 16, [1, 2, 4, 8], say)}
        pg = Postgres(bindir)
        try:
            result["storage_ms_per_trial"] = bench_storage(folder / "storage", pg, trials, say)
            result["coordinators"] = bench_coordinators(folder / "coordinators", pg, 640 if args.quick else 3200, 3, say)
        finally:
            pg.stop()
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
