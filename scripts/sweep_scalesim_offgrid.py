"""A second SCALE-Sim 3.0.0 grid, off the first one (issue 17): non-square arrays from 1:8 to 8:1,
every dataflow, three SRAM sizes and three DRAM bandwidths, layer shapes the first grid has not
(odd kernels, strides, 1×N and N×1 kernels, a 1×1 expansion, a VGG 3×3, skinny GEMMs).

Run it with SCALE-Sim's own interpreter (see ``scripts/validate_scalesim.py``), in the background::

    nohup nice -n 10 /tmp/scalesim-venv/bin/python scripts/sweep_scalesim_offgrid.py --budget-s 3600 &

Every finished run is appended to ``data/scalesim/offgrid_3.0.0.csv`` at once (columns of
``sweep_3.0.0.csv``), failures to ``offgrid_3.0.0_failed.csv``; runs already in either are skipped,
so a rerun resumes. Runs go cheapest first (``validate_scalesim.est_cost_s``), so a partial sweep
covers every array, dataflow and memory setting.

The design is a Latin square over memory: each (layer, array, dataflow) is run at three of the nine
(SRAM, bandwidth) pairs, SRAM ``i`` with bandwidth ``(i + j) mod 3`` where ``j`` counts the
(layer, array, dataflow) triples, so that every triple sees every SRAM and every bandwidth once, and
every (SRAM, bandwidth) pair is equally common.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import validate_scalesim as vs  # noqa: E402

OFFGRID_CSV = vs.DATA / "offgrid_3.0.0.csv"
OFFGRID_FAILED = vs.DATA / "offgrid_3.0.0_failed.csv"

#: name, ifmap h, ifmap w, filter h, filter w, channels, filters, stride (SCALE-Sim conv form, no padding).
CONV_LAYERS = [
    ("odd5x5_s1", 18, 18, 5, 5, 32, 48, 1),
    ("odd7x7_s2", 37, 37, 7, 7, 8, 32, 2),
    ("k3x3_s2", 33, 33, 3, 3, 48, 64, 2),
    ("k1x7", 17, 23, 1, 7, 64, 64, 1),
    ("k7x1", 23, 17, 7, 1, 64, 64, 1),
    ("expand1x1", 28, 28, 1, 1, 24, 144, 1),
    ("vgg3x3", 16, 16, 3, 3, 64, 128, 1),
]
#: Skinny GEMMs: name, M, N, K.
GEMM_LAYERS = [
    ("gemm_M8_N512_K512", 8, 512, 512),
    ("gemm_M1024_N16_K128", 1024, 16, 128),
    ("gemm_M64_N64_K2048", 64, 64, 2048),
]
#: Layer family of each layer (a leave-one-group-out fold each).
FAMILY = {"odd5x5_s1": "odd kernel", "odd7x7_s2": "odd kernel", "k3x3_s2": "strided 3x3", "k1x7": "1xN kernel",
          "k7x1": "1xN kernel", "expand1x1": "1x1 expansion", "vgg3x3": "VGG 3x3", "gemm_M8_N512_K512": "skinny GEMM",
          "gemm_M1024_N16_K128": "skinny GEMM", "gemm_M64_N64_K2048": "skinny GEMM"}
#: Arrays (rows × columns): aspect ratios 1:8, 8:1, 1:4, 4:1, 1:2, 2:1 and a large square one.
ARRAYS = [(8, 64), (64, 8), (16, 128), (128, 16), (16, 64), (64, 16), (32, 64), (64, 32), (128, 128)]
#: ifmap / filter / ofmap SRAM in kB.
SRAM = {"xs": (16, 16, 8), "small": (64, 64, 32), "mid512": (512, 512, 256)}
BANDWIDTHS = [4, 16, 64]


def layer_rows() -> list[dict]:
    rows = []
    for name, ih, iw, fh, fw, ch, nf, s in CONV_LAYERS:
        oh, ow = math.ceil((ih - fh + s) / s), math.ceil((iw - fw + s) / s)
        rows.append(dict(layer=name, kind="conv", ifmap_h=ih, ifmap_w=iw, filt_h=fh, filt_w=fw, channels=ch,
                         num_filters=nf, stride=s, ofmap_h=oh, ofmap_w=ow, gemm_M=oh * ow, gemm_N=nf,
                         gemm_K=fh * fw * ch, repeat_count=1))
    for name, m, n, k in GEMM_LAYERS:
        rows.append(dict(layer=name, kind="gemm", ifmap_h=m, ifmap_w=k, filt_h=1, filt_w=k, channels=1, num_filters=n,
                         stride=1, ofmap_h=m, ofmap_w=1, gemm_M=m, gemm_N=n, gemm_K=k, repeat_count=1))
    for row in rows:
        row["macs"] = row["gemm_M"] * row["gemm_N"] * row["gemm_K"]
    return rows


def grid(cap_s: float) -> tuple[list[dict], list[dict]]:
    """``(jobs, skipped)``: the Latin-square grid cheapest first, and the jobs over the cost cap."""
    jobs, skipped = [], []
    srams = list(SRAM)
    for j, (layer, (h, w), df) in enumerate(itertools.product(layer_rows(), ARRAYS, vs.DATAFLOWS)):
        for i, sram in enumerate(srams):
            bw = BANDWIDTHS[(i + j) % len(BANDWIDTHS)]
            job = dict(layer, array_h=h, array_w=w, dataflow=df, sram_setting=sram, sram_kB=SRAM[sram],
                       bw_words_per_cycle=bw, est_s=vs.est_cost_s(layer, h, w, df))
            (jobs if job["est_s"] <= cap_s else skipped).append(job)
    jobs.sort(key=lambda job: job["est_s"])
    return jobs, skipped


def _done() -> set:
    done = set()
    for path in (OFFGRID_CSV, OFFGRID_FAILED):
        if path.exists():
            with open(path) as f:
                done |= {vs.run_key(r) for r in csv.DictReader(f)}
    return done


def _append(path: Path, fieldnames: list[str], row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=3600.0, help="stop starting runs after this many seconds")
    parser.add_argument("--cap-s", type=float, default=60.0, help="skip runs whose estimated cost exceeds this")
    parser.add_argument("--timeout-s", type=float, default=150.0, help="give up on a run after this many seconds")
    parser.add_argument("--dry-run", action="store_true", help="print the grid's size and estimated cost only")
    args = parser.parse_args(argv)
    jobs, skipped = grid(args.cap_s)
    done = _done()
    todo = [j for j in jobs if vs.run_key(j) not in done]
    print(f"{len(jobs)} jobs under the {args.cap_s:g} s cap ({len(skipped)} over it), {len(todo)} to run, "
          f"estimated {sum(j['est_s'] for j in todo):.0f} s", flush=True)
    if args.dry_run:
        return 0
    signal.signal(signal.SIGALRM, vs._alarm)
    start = time.perf_counter()
    for i, job in enumerate(todo):
        if time.perf_counter() - start > args.budget_s:
            print("budget spent", flush=True)
            break
        row, reason = None, ""
        with tempfile.TemporaryDirectory() as tmp:
            signal.alarm(int(args.timeout_s))
            try:
                row = vs.simulate(job, Path(tmp))
                signal.alarm(0)
            except vs._Timeout:
                reason = f"timeout {args.timeout_s:g} s"
            except Exception as error:  # noqa: BLE001 - record and go on
                signal.alarm(0)
                reason = f"{type(error).__name__}: {error}"[:200]
        if row is None:
            _append(OFFGRID_FAILED, ["layer", "array_h", "array_w", "dataflow", "sram_setting", "bw_words_per_cycle",
                                     "est_s", "reason"], {**job, "reason": reason})
            print(f"[{i + 1}/{len(todo)}] {vs.run_key(job)} FAILED: {reason}", flush=True)
            continue
        _append(OFFGRID_CSV, vs.SWEEP_COLUMNS, row)
        print(f"[{i + 1}/{len(todo)}] {vs.run_key(job)} est {job['est_s']:.1f} s, took {row['sim_wall_s']:.1f} s, "
              f"total {row['total_cycles']} stall {row['stall_cycles']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
