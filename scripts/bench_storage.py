#!/usr/bin/env python
"""What storing a finished trial costs: Optuna's journal file against its SQLite storage.

Trials like those of a bench_resnet50_16core run (115 knobs, two objectives, two
constraints, five metrics, a generation number) are written to a fresh storage:

* ``optuna add_trial``: Optuna's public path, ``study.add_trial`` once per trial
  (what one ``study.tell`` costs in storage) — on a journal file and on SQLite;
* ``codesign TrialWriter``: a generation (``--batch`` trials) at a time — on the
  journal file one locked append and one ``fsync`` per generation, handed to the
  in-memory replay without parsing it back; on SQLite it falls back to Optuna's
  per-trial calls.

Then the storage is opened again and every trial read (``load_study`` +
``get_trials``, what a resume, ``codesign report`` or optuna-dashboard does), for the
journal file both by Optuna alone and through ``codesign.search.storage.open_journal``
(distributions parsed once). Reported per trial: write ms, read ms, bytes on disk.
The figures are behind the default storage (the journal file).

``--load-trials N`` also writes an N-trial journal twice, each distribution in Optuna's full JSON
form (what codesign wrote before) and in its short form (what it writes now), and opens each in a
fresh process: plain ``optuna.load_study`` + ``get_trials`` and codesign's ``open_journal``, wall
time and peak memory (``ru_maxrss``), with the bytes per trial.

    .venv/bin/python scripts/bench_storage.py [--quick] [--json] [--load-trials 20000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_eval import machine_info  # noqa: E402

from codesign.design import load_design  # noqa: E402
from codesign.packing import SCHEDULE_ATTR, PackedForm  # noqa: E402
from codesign.search.batch import RowCodec  # noqa: E402
from codesign.search.nsga2 import Nsga2  # noqa: E402
from codesign.search.optuna_internals import CONSTRAINTS_KEY, GENERATION_KEY  # noqa: E402
from codesign.search.storage import STUDY_NAME, TrialWriter, open_journal  # noqa: E402
from codesign.space import DesignSpace  # noqa: E402

DESIGN = ROOT / "designs" / "bench_resnet50_16core.toml"


def make_trials(space: DesignSpace, n: int, seed: int = 0, *, packed: bool = True) -> tuple[list[FrozenTrial], list[str]]:
    """``n`` finished trials shaped like a run's (random knobs, values, constraints, metrics)
    and their params as journal JSON (which the loop hands the writer). ``packed``: per-layer knobs
    packed in a user attribute, as codesign stores them (:mod:`codesign.packing`); else every knob
    an Optuna param, as codesign stored them before."""
    nsga = Nsga2(space, population=n, crossover_prob=0.9, mutation_prob=None, seed=seed, n_objectives=2)
    codes = nsga.sample(0, n)
    form = space.packed if packed else PackedForm([replace(k, family=None) for k in space.knobs])
    codec = RowCodec(form)
    rng = np.random.default_rng(seed)
    now = datetime.now()
    trials = []
    for i, row in enumerate(codes.tolist()):
        metrics = dict(zip(("latency_s", "energy_j", "area_mm2", "cost_usd", "power_w"), rng.random(5).tolist()))
        params, schedule = codec.params(row)
        trials.append(FrozenTrial(
            number=i, state=TrialState.COMPLETE, value=None, values=[metrics["latency_s"], metrics["energy_j"]],
            datetime_start=now, datetime_complete=now, params=params, distributions=form.distributions,
            user_attrs={SCHEDULE_ATTR: schedule, "metrics": metrics} if schedule else {"metrics": metrics},
            system_attrs={GENERATION_KEY: i // 100, CONSTRAINTS_KEY: [-0.5, 0.1]},
            intermediate_values={}, trial_id=-1,
        ))
    return trials, codec.params_json(codes)


def fresh(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Copies a writer may number in place."""
    return [FrozenTrial(number=t.number, state=t.state, value=None, values=t.values, datetime_start=t.datetime_start,
                        datetime_complete=t.datetime_complete, params=t.params, distributions=t.distributions,
                        user_attrs=t.user_attrs, system_attrs=t.system_attrs, intermediate_values={}, trial_id=-1) for t in trials]


def write_add_trial(storage, trials) -> float:
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=["minimize", "minimize"])
    start = time.perf_counter()
    for t in trials:
        study.add_trial(t)
    return time.perf_counter() - start


def write_writer(storage, trials, batch: int, params_json: list[str]) -> float:
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=["minimize", "minimize"])
    writer = TrialWriter(study)
    start = time.perf_counter()
    for i in range(0, len(trials), batch):
        writer.write(trials[i : i + batch], {"codesign:bench": i}, params_json=params_json[i : i + batch] if writer.fast else None)
    return time.perf_counter() - start


def read_all(open_storage) -> tuple[float, int]:
    start = time.perf_counter()
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_storage())
    n = len(study.get_trials(deepcopy=False))
    return time.perf_counter() - start, n


def measure(name: str, n: int, repeats: int, workdir: Path, trials: list[FrozenTrial], write, opener, path_of, say, readers=None) -> dict:
    writes, reads, sizes = [], {}, []
    for r in range(repeats):
        folder = workdir / f"{name.replace(' ', '_')}_{r}"
        folder.mkdir(parents=True)
        storage = opener(folder)
        writes.append(write(storage, fresh(trials[:n])))
        sizes.append(path_of(folder).stat().st_size)
        for reader_name, reader in (readers or {"optuna": lambda f=folder: opener(f)}).items():
            seconds, count = read_all(lambda f=folder, reader=reader: reader(f))
            assert count == n, (name, count, n)
            reads.setdefault(reader_name, []).append(seconds)
        del storage
        shutil.rmtree(folder, ignore_errors=True)
    entry = {
        "trials": n,
        "repeats": repeats,
        "write_ms_per_trial": 1e3 * statistics.median(writes) / n,
        "read_ms_per_trial": {k: 1e3 * statistics.median(v) / n for k, v in reads.items()},
        "bytes_per_trial": statistics.median(sizes) / n,
    }
    say(f"{name:36s} {n:>6} trials  write {entry['write_ms_per_trial']:8.3f} ms/trial  read " + ", ".join(f"{k} {v:.3f}" for k, v in entry["read_ms_per_trial"].items()) + f" ms/trial  {entry['bytes_per_trial']:,.0f} B/trial")
    return entry


LOADER = """
import resource, sys, time
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
optuna.logging.set_verbosity(optuna.logging.WARNING)
start = time.perf_counter()
if sys.argv[2] == "optuna":
    storage = JournalStorage(JournalFileBackend(sys.argv[1]))
else:
    from codesign.search.storage import open_journal
    storage = open_journal(sys.argv[1], read_only=True)
n = len(optuna.load_study(study_name="codesign", storage=storage).get_trials(deepcopy=False))
print(n, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def measure_load(n: int, workdir: Path, space: DesignSpace, batch: int, say) -> dict:
    """Bytes per trial and a fresh process's load time and peak memory of an ``n``-trial journal in each
    form codesign has written: every knob a param with Optuna's full distribution JSON (``full``), the
    same with its short JSON (``short``), per-layer knobs packed (``packed``, what it writes now)."""
    import codesign.search.storage as storage_module

    out = {}
    unpacked = make_trials(space, min(n, 5000), packed=False)
    packed = make_trials(space, min(n, 5000), packed=True)
    for form in ("full", "short", "packed"):
        trials, params_json = packed if form == "packed" else unpacked
        folder = workdir / f"load_{form}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "study.journal"
        short = storage_module.short_distribution_json
        if form == "full":  # the journal codesign wrote before the short form
            storage_module.short_distribution_json = optuna.distributions.distribution_to_json
        try:
            study = optuna.create_study(storage=open_journal(path), study_name=STUDY_NAME, directions=["minimize", "minimize"])
            writer = TrialWriter(study)
            for i in range(0, n, batch):
                chunk = [trials[j % len(trials)] for j in range(i, min(n, i + batch))]
                writer.write(fresh(chunk), params_json=[params_json[j % len(trials)] for j in range(i, min(n, i + batch))])
        finally:
            storage_module.short_distribution_json = short
        entry = {"trials": n, "bytes_per_trial": path.stat().st_size / n}
        for reader in ("optuna", "codesign"):
            done = subprocess.run([sys.executable, "-c", LOADER, str(path), reader], cwd=ROOT, capture_output=True, text=True, check=True)
            count, seconds, peak_gib = done.stdout.split()
            assert int(count) == n, (form, reader, count)
            entry[f"{reader}_load_s"], entry[f"{reader}_peak_gib"] = float(seconds), float(peak_gib)
        say(f"load {form:5s} {n} trials: {entry['bytes_per_trial']:,.0f} B/trial; plain optuna.load_study {entry['optuna_load_s']:.1f} s, "
            f"{entry['optuna_peak_gib']:.2f} GiB; codesign open_journal {entry['codesign_load_s']:.1f} s, {entry['codesign_peak_gib']:.2f} GiB")
        out[form] = entry
        shutil.rmtree(folder, ignore_errors=True)
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _time_requests(command: list[str], port: int, timeout: float) -> dict:
    """Start a dashboard server, wait until it answers, time two loads of the study page (the
    ``/api/studies/0`` request its page makes), stop it."""
    import urllib.request

    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=60).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start") from None
                time.sleep(0.2)
        times, best = [], None
        for _ in range(2):
            start = time.perf_counter()
            body = json.loads(urllib.request.urlopen(f"{base}/api/studies/0?after=0", timeout=timeout).read())
            times.append(time.perf_counter() - start)
            best = len(body["best_trials"])
        return {"first_request_s": times[0], "second_request_s": times[1], "front_trials": best}
    finally:
        server.terminate()
        server.wait()


def measure_dashboard(n: int, workdir: Path, timeout: float, say) -> dict:
    """One study-page request of optuna-dashboard on an ``n``-trial run of the design, plain
    (``optuna-dashboard study.journal``) and through ``codesign dashboard`` (its front the run's)."""
    from codesign import api

    out = workdir / "dashboard_run"
    api.explore(str(DESIGN), trials=n, seed=1, out=str(out), say=lambda _: None)
    front = len(pd.read_csv(out / "front.csv"))
    entry: dict = {"trials": n, "front_csv_trials": front}
    port = _free_port()
    plain = [str(Path(sys.executable).parent / "optuna-dashboard"), str(out / "study.journal"), "--host", "127.0.0.1", "--port", str(port)]
    ours = [sys.executable, "-m", "codesign", "dashboard", str(out), "--port", str(port)]
    for name, command in (("codesign dashboard", ours), ("optuna-dashboard", plain)):
        entry[name] = _time_requests(command, port, timeout)
        say(f"{name:20s} {n} trials: study page {entry[name]['first_request_s']:.2f} s (again {entry[name]['second_request_s']:.2f} s), "
            f"{entry[name]['front_trials']} trials on its front (front.csv: {front})")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--journal-trials", type=int, default=2000, help="trials written one at a time to the journal file")
    parser.add_argument("--sqlite-trials", type=int, default=300, help="trials written to SQLite (slow)")
    parser.add_argument("--writer-trials", type=int, default=10000, help="trials written by TrialWriter to the journal file")
    parser.add_argument("--batch", type=int, default=100, help="trials per TrialWriter batch (a generation)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where the storages go (default: a temporary folder, removed)")
    parser.add_argument("--quick", action="store_true", help="500 / 100 / 2000 trials, one repeat")
    parser.add_argument("--load-trials", type=int, default=0, help="also time loading a journal of this many trials, full vs short distributions")
    parser.add_argument("--dashboard-trials", type=int, default=0,
                        help="also time optuna-dashboard's study page on a run of this many trials, plain and through codesign dashboard")
    parser.add_argument("--dashboard-timeout", type=float, default=3600, help="seconds one dashboard request may take")
    parser.add_argument("--only-dashboard", action="store_true", help="skip the storage write/read measurements")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.journal_trials, args.sqlite_trials, args.writer_trials, args.repeats = 500, 100, 2000, 1
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else (lambda msg: print(msg, flush=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = DesignSpace.from_design(load_design(DESIGN))
    trials, params_json = make_trials(space, max(args.journal_trials, args.sqlite_trials, args.writer_trials))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_storage_"))
    workdir.mkdir(parents=True, exist_ok=True)

    journal = lambda folder: JournalStorage(JournalFileBackend(str(folder / "study.journal")))  # noqa: E731
    journal_path = lambda folder: folder / "study.journal"  # noqa: E731
    sqlite = lambda folder: optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}")  # noqa: E731
    sqlite_path = lambda folder: folder / "study.db"  # noqa: E731
    journal_readers = {"optuna": journal, "codesign open_journal": lambda folder: open_journal(folder / "study.journal")}
    batch = lambda storage, ts: write_writer(storage, ts, args.batch, params_json)  # noqa: E731
    report = {
        "benchmark": "bench_storage",
        "design": str(DESIGN.relative_to(ROOT)),
        "knobs": space.dimension,
        "batch": args.batch,
        "quick": args.quick,
        "machine": machine_info(),
        "results": {},
    }
    if args.only_dashboard:
        report["dashboard"] = measure_dashboard(args.dashboard_trials, workdir, args.dashboard_timeout, say)
        shutil.rmtree(workdir, ignore_errors=True) if args.workdir is None else None
        print(json.dumps(report, indent=2) if args.json else report["dashboard"])
        return 0
    try:
        r = report["results"]
        r["journal, optuna add_trial"] = measure("journal, optuna add_trial", args.journal_trials, args.repeats, workdir, trials, write_add_trial, journal, journal_path, say, journal_readers)
        r["journal, codesign TrialWriter"] = measure("journal, codesign TrialWriter", args.writer_trials, args.repeats, workdir, trials, batch,
                                                     journal_readers["codesign open_journal"], journal_path, say, journal_readers)
        r["sqlite, optuna add_trial"] = measure("sqlite, optuna add_trial", args.sqlite_trials, args.repeats, workdir, trials, write_add_trial, sqlite, sqlite_path, say)
        r["sqlite, codesign TrialWriter"] = measure("sqlite, codesign TrialWriter", args.sqlite_trials, args.repeats, workdir, trials, batch, sqlite, sqlite_path, say)
        if args.load_trials:
            report["load"] = measure_load(args.load_trials, workdir, space, args.batch, say)
        if args.dashboard_trials:
            report["dashboard"] = measure_dashboard(args.dashboard_trials, workdir, args.dashboard_timeout, say)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    j, w, s = r["journal, optuna add_trial"], r["journal, codesign TrialWriter"], r["sqlite, optuna add_trial"]
    report["summary"] = {
        "sqlite_over_journal_write": s["write_ms_per_trial"] / j["write_ms_per_trial"],
        "journal_add_trial_over_writer": j["write_ms_per_trial"] / w["write_ms_per_trial"],
        "sqlite_over_journal_read": s["read_ms_per_trial"]["optuna"] / j["read_ms_per_trial"]["optuna"],
        "journal_read_optuna_over_open_journal": j["read_ms_per_trial"]["optuna"] / j["read_ms_per_trial"]["codesign open_journal"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n" + "\n".join(f"{k}: {v:.1f}×" for k, v in report["summary"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
