#!/usr/bin/env python
"""``kill -9`` a real ``codesign explore`` at random moments, then check that nothing stored was lost.

Each round starts ``codesign explore DESIGN --trials N --out DIR --no-progress`` (resuming the
folder of the previous rounds), kills it with SIGKILL after a random delay (seeded; counted from its
first journal append, or for a quarter of the rounds from its start), and checks:

* the journal still loads with plain ``optuna.load_study`` (a fresh ``JournalStorage``);
* every generation block the killed process finished is still there after the next command,
  trial for trial (numbers, params, values), and every trial line of the final journal sits in
  a whole block (no half-stored generation);
* the next ``codesign explore`` resumes without waiting on a lock the killed process left
  (counted as a stale-lock wait if it takes over ``--wait-s`` seconds) and adds trials;
* no ``*.tmp``, lock or empty file is left in the run folder after that command.

Prints one JSON object. A fresh folder is started every ``--rounds-per-folder`` kills.

    .venv/bin/python scripts/kill_explore.py [--kills 200] [--seed 0] [--design designs/bench_resnet50_16core.toml]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.packing import stored_key  # noqa: E402  (how a trial's knobs are stored: params and packed lists)

DESIGN = ROOT / "designs" / "bench_resnet50_16core.toml"
JOURNAL = "study.journal"
BLOCK = b'"system_attr":{"codesign:block":'


def explore(design: Path, out: Path, trials: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "codesign", "explore", str(design), "--trials", str(trials), "--out", str(out), "--no-progress"]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def plain_trials(out: Path) -> list | None:
    """The study's trials as plain Optuna reads them (None: unreadable; [] if there is no study yet)."""
    path = out / JOURNAL
    if not path.is_file():
        return []
    try:
        storage = JournalStorage(JournalFileBackend(str(path)))
        if not storage.get_all_studies():
            return []
        return optuna.load_study(study_name="codesign", storage=storage).get_trials(deepcopy=False)
    except Exception:
        return None


def block_census(out: Path) -> tuple[int, int]:
    """(trial lines in whole blocks, trial lines outside any whole block) of the journal as it is now."""
    path = out / JOURNAL
    if not path.is_file():
        return 0, 0
    inside = outside = pending = 0
    open_block = False
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # a torn last line: not a record
            if BLOCK in line:
                if b'"begin"' in line[line.index(BLOCK):]:
                    outside += pending  # a begin before the previous block's end: that block was cut short
                    open_block, pending = True, 0
                else:
                    inside += pending
                    open_block, pending = False, 0
            elif line.startswith(b'{"op_code":4,'):
                if open_block:
                    pending += 1
                else:
                    outside += 1
    return inside, outside + pending


def leftovers(out: Path) -> list[str]:
    """Partial files: temporary files, lock files, empty files."""
    found = []
    for p in out.iterdir():
        if p.name.endswith((".tmp", ".lock")) or ".tmp" in p.name or (p.is_file() and not p.is_symlink() and p.stat().st_size == 0):
            found.append(p.name)
        elif p.is_symlink():
            found.append(p.name)
    return found


def key(t) -> tuple:
    return t.number, t.state, stored_key(t), tuple(t.values or ())


def wait_for_growth(proc: subprocess.Popen, path: Path, timeout_s: float = 120.0) -> None:
    """Until the process has appended to the journal (or ended)."""
    size0 = path.stat().st_size if path.exists() else -1
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None and time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > max(size0, 4096):
            return
        time.sleep(0.005)


def one_kill(design: Path, out: Path, rng: random.Random, *, add: int, max_delay_s: float, wait_s: float, batch: int,
             from_start: float = 0.25) -> dict:
    """One round: explore, kill -9 at a random moment, check, resume, check. The moment is uniform within
    ``max_delay_s`` of the first journal append (of the start, for a ``from_start`` share of the rounds)."""
    stored = plain_trials(out) or []
    proc = explore(design, out, len(stored) + add)
    early = rng.random() < from_start
    delay = rng.uniform(0.2, max_delay_s) if early else rng.uniform(0.0, max_delay_s)
    if not early:
        wait_for_growth(proc, out / JOURNAL)
    time.sleep(delay)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    after_kill = plain_trials(out)
    committed, _ = block_census(out)
    lock_left = os.path.lexists(out / (JOURNAL + ".lock"))
    before = {key(t) for t in (after_kill or [])[:committed]}
    started = time.perf_counter()
    resume = explore(design, out, committed + batch)
    _, err = resume.communicate(timeout=600)
    resume_s = time.perf_counter() - started
    final = plain_trials(out)
    inside, outside = block_census(out)
    after = {key(t) for t in (final or [])}
    return {
        "delay_s": round(delay, 3), "from": "start" if early else "first append", "killed": killed, "lock_left": lock_left, "resume_s": round(resume_s, 2),
        "resume_rc": resume.returncode, "resume_err": err.decode(errors="replace").strip().splitlines()[-1:] if resume.returncode else [],
        "unreadable": after_kill is None or final is None,
        "lost": len(before - after) if final is not None else len(before),
        "not_contiguous": final is not None and [t.number for t in final] != list(range(len(final))),
        "half_stored": outside, "added": (len(final) if final else 0) > committed,
        "stale_wait": resume_s > wait_s, "leftovers": leftovers(out) if out.exists() else [],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--design", type=Path, default=DESIGN)
    ap.add_argument("--add", type=int, default=5000, help="trials each killed run is asked to add")
    ap.add_argument("--batch", type=int, default=100, help="trials the resume adds (a generation of the design)")
    ap.add_argument("--max-delay-s", type=float, default=3.0,
                    help="the kill comes uniformly within this many seconds of the first journal append (of the start, for a quarter of the kills)")
    ap.add_argument("--wait-s", type=float, default=25.0, help="a resume slower than this counts as a stale-lock wait")
    ap.add_argument("--rounds-per-folder", type=int, default=5)
    ap.add_argument("--work", type=Path, help="where the run folders go (default: a temporary folder, removed)")
    ap.add_argument("--rounds", action="store_true", help="also list every round in the JSON")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="kill_explore_"))
    rounds = []
    t0 = time.perf_counter()
    try:
        for i in range(args.kills):
            out = work / f"run{i // args.rounds_per_folder}"
            if i % args.rounds_per_folder == 0 and i:
                shutil.rmtree(work / f"run{i // args.rounds_per_folder - 1}", ignore_errors=True)
            rounds.append(one_kill(args.design, out, rng, add=args.add, max_delay_s=args.max_delay_s, wait_s=args.wait_s, batch=args.batch))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "kills": sum(r["killed"] for r in rounds),
        "rounds": len(rounds),
        "unreadable_journals": sum(r["unreadable"] for r in rounds),
        "lost_generations_trials": sum(r["lost"] for r in rounds),
        "half_stored_generation_trials": sum(r["half_stored"] for r in rounds),
        "not_contiguous": sum(r["not_contiguous"] for r in rounds),
        "failed_resumes": sum(r["resume_rc"] != 0 for r in rounds),
        "resumes_adding_nothing": sum(not r["added"] for r in rounds),
        "stale_lock_waits": sum(r["stale_wait"] for r in rounds),
        "kills_leaving_a_lock_file": sum(r["lock_left"] for r in rounds),
        "partial_files": sum(len(r["leftovers"]) for r in rounds),
        "resume_s_max": max((r["resume_s"] for r in rounds), default=None),
        "seconds": round(time.perf_counter() - t0, 1),
        "seed": args.seed, "add": args.add, "batch": args.batch, "max_delay_s": args.max_delay_s, "rounds_per_folder": args.rounds_per_folder,
        "design": str(args.design.relative_to(ROOT) if args.design.is_relative_to(ROOT) else args.design),
    }
    if args.rounds:
        result["per_round"] = rounds
    else:
        result["problems"] = [r for r in rounds if r["unreadable"] or r["lost"] or r["half_stored"] or r["not_contiguous"] or r["resume_rc"]
                              or not r["added"] or r["stale_wait"] or r["leftovers"]][:10]
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
