"""Validate the analytical model against SCALE-Sim 3.0.0, layer by layer.

Two steps, two interpreters:

``sweep`` (needs SCALE-Sim; run it with the interpreter of a separate virtual environment, since
SCALE-Sim 3.0.0 needs ``numpy<2.3``)::

    python3 -m venv /work/scalesim-venv
    /work/scalesim-venv/bin/pip install scalesim==3.0.0 "numpy<2.3"
    /work/scalesim-venv/bin/python scripts/validate_scalesim.py sweep --budget-s 5400

runs SCALE-Sim on the grid below (one layer per run, one process, resumable: every finished run is
appended to ``data/scalesim/sweep_3.0.0.csv`` at once, and runs already there are skipped).

``compare`` (no SCALE-Sim needed; the project's own interpreter)::

    .venv/bin/python scripts/validate_scalesim.py compare

reads the committed SCALE-Sim results (``data/scalesim/sweep_3.0.0.csv`` and the 114 reference rows
``tests/data/scalesim_3.0.0_reference.csv``), evaluates the same layers and hardware with
:class:`codesign.model.analytical.AnalyticalModel` (through :func:`codesign.cycles.cycles_table`,
the code path of ``codesign cycles``), and writes ``data/scalesim/validation.csv`` (one row per
run, with errors) and ``data/scalesim/validation.md`` (the README table: median / p90 / max
absolute error of compute, stall and total cycles, on all rows and on held-out rows, and the wall
time per layer of SCALE-Sim against ours).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# SCALE-Sim's configuration, layout and topology files: written as the oracle writes them.
from codesign.oracles.scalesim import LAYOUT, config_text, conv_topology, gemm_topology  # noqa: E402

DATA = ROOT / "data" / "scalesim"
SWEEP_CSV = DATA / "sweep_3.0.0.csv"
REFERENCE_CSV = ROOT / "tests" / "data" / "scalesim_3.0.0_reference.csv"
OFFGRID_CSV = DATA / "offgrid_3.0.0.csv"  # the second grid (scripts/sweep_scalesim_offgrid.py)

# --- the grid -------------------------------------------------------------------------------------
#: Conv layers in SCALE-Sim's topology form: name, ifmap h, ifmap w, filter h, filter w, channels,
#: filters, stride. Every distinct conv of ResNet-18 (ifmaps given as padded extents (OH−1)·S+R,
#: SCALE-Sim has no padding) and MobileNetV2's 56×56×144 depthwise 3×3 as one channel (a "DP"
#: layer is split by SCALE-Sim into C one-channel layers; one is simulated, repeat_count = C).
CONV_LAYERS = [
    ("rn18_conv1", 229, 229, 7, 7, 3, 64, 2),
    ("rn18_conv2_3x3", 58, 58, 3, 3, 64, 64, 1),
    ("rn18_conv3_1a", 57, 57, 3, 3, 64, 128, 2),
    ("rn18_conv3_3x3", 30, 30, 3, 3, 128, 128, 1),
    ("rn18_conv3_ds", 55, 55, 1, 1, 64, 128, 2),
    ("rn18_conv4_1a", 29, 29, 3, 3, 128, 256, 2),
    ("rn18_conv4_3x3", 16, 16, 3, 3, 256, 256, 1),
    ("rn18_conv4_ds", 27, 27, 1, 1, 128, 256, 2),
    ("rn18_conv5_1a", 15, 15, 3, 3, 256, 512, 2),
    ("rn18_conv5_3x3", 9, 9, 3, 3, 512, 512, 1),
    ("rn18_conv5_ds", 13, 13, 1, 1, 256, 512, 2),
    ("mbv2_DP_56x56x144_3x3_s1", 58, 58, 3, 3, 1, 1, 1),
]
DEPTHWISE_REPEAT = {"mbv2_DP_56x56x144_3x3_s1": 144}
#: GEMMs in SCALE-Sim's GEMM form (name, M, N, K): ResNet-18's classifier and BERT-base's
#: projections (QKV / output: 768×768), FFN (768→3072→768) and one head's attention (scores:
#: 512×512 over d=64; context: 512×64 over 512 keys), sequence length 512.
GEMM_LAYERS = [
    ("rn18_fc_M1_N1000_K512", 1, 1000, 512),
    ("bert_M512_N768_K768", 512, 768, 768),
    ("bert_M512_N3072_K768", 512, 3072, 768),
    ("bert_M512_N768_K3072", 512, 768, 3072),
    ("bert_attn_M512_N512_K64", 512, 512, 64),
    ("bert_ctx_M512_N64_K512", 512, 64, 512),
]
ARRAYS = [(8, 8), (16, 16), (32, 32), (64, 64), (128, 128), (128, 32), (32, 128), (16, 64), (64, 16)]
DATAFLOWS = ["os", "ws", "is"]
#: ifmap / filter / ofmap SRAM in kB.
SRAM = {"small": (64, 64, 32), "large": (1024, 1024, 512), "medium": (256, 256, 128)}
#: DRAM bandwidth in words per cycle (USER mode): bandwidth-limited and ample.
BANDWIDTHS = [10, 100]
#: Held out of any calibration: their errors are reported separately.
HOLDOUT_LAYERS = {"rn18_conv4_1a", "rn18_conv5_3x3", "bert_attn_M512_N512_K64", "bert_ctx_M512_N64_K512"}
HOLDOUT_ARRAYS = {(32, 128), (16, 64)}
HOLDOUT_SRAM = {"medium"}
#: The first stall model was frozen when the sweep file held this many rows (history: the model of
#: issue 17 was derived with every row of this sweep in view, so none of them is unseen now).
FROZEN_AT_SWEEP_ROWS = 151
#: The stall model of issue 17 was frozen when the off-grid sweep held this many rows; later rows were
#: never looked at while building it and are reported on their own ("unseen").
FROZEN_AT_OFFGRID_ROWS = 507

SWEEP_COLUMNS = [
    "layer", "kind", "ifmap_h", "ifmap_w", "filt_h", "filt_w", "channels", "num_filters", "stride",
    "ofmap_h", "ofmap_w", "gemm_M", "gemm_N", "gemm_K", "macs", "repeat_count",
    "array_h", "array_w", "dataflow", "sram_setting", "ifmap_sram_kB", "filter_sram_kB", "ofmap_sram_kB",
    "bw_mode", "bw_words_per_cycle",
    "total_cycles_incl_prefetch", "total_cycles", "stall_cycles", "compute_cycles",
    "overall_util_pct", "mapping_eff_pct", "compute_util_pct",
    "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes",
    "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes",
    "dram_ifmap_start", "dram_ifmap_stop", "dram_filter_start", "dram_filter_stop", "dram_ofmap_start", "dram_ofmap_stop",
    "sim_wall_s", "sim_cpu_s",
]


def layer_rows() -> list[dict]:
    """Every grid layer with its SCALE-Sim shape and GEMM view."""
    rows = []
    for name, ih, iw, fh, fw, ch, nf, s in CONV_LAYERS:
        oh, ow = math.ceil((ih - fh + s) / s), math.ceil((iw - fw + s) / s)
        rows.append(dict(layer=name, kind="depthwise" if "DP" in name else "conv", ifmap_h=ih, ifmap_w=iw, filt_h=fh,
                         filt_w=fw, channels=ch, num_filters=nf, stride=s, ofmap_h=oh, ofmap_w=ow, gemm_M=oh * ow,
                         gemm_N=nf, gemm_K=fh * fw * ch, repeat_count=DEPTHWISE_REPEAT.get(name, 1)))
    for name, m, n, k in GEMM_LAYERS:
        rows.append(dict(layer=name, kind="gemm", ifmap_h=m, ifmap_w=k, filt_h=1, filt_w=k, channels=1, num_filters=n,
                         stride=1, ofmap_h=m, ofmap_w=1, gemm_M=m, gemm_N=n, gemm_K=k, repeat_count=1))
    for row in rows:
        row["macs"] = row["gemm_M"] * row["gemm_N"] * row["gemm_K"]
    return rows


def est_compute_cycles(m: int, n: int, k: int, h: int, w: int, df: str) -> int:
    if df == "os":
        return math.ceil(m / h) * math.ceil(n / w) * (k + h + w - 2) - 1
    if df == "ws":
        return math.ceil(k / h) * math.ceil(n / w) * (m + 2 * h + w - 2) - 1
    return math.ceil(k / h) * math.ceil(m / w) * (n + 2 * h + w - 2) - 1


def est_cost_s(layer: dict, h: int, w: int, df: str) -> float:
    """Rough SCALE-Sim seconds for one run: the simulator walks every demand row (one per compute
    cycle) and looks up every address of it (≈ H + 2W), plus building operand/prefetch matrices."""
    cc = est_compute_cycles(layer["gemm_M"], layer["gemm_N"], layer["gemm_K"], h, w, df)
    return 0.3 + cc * (h + 2 * w) * 2.5e-6 + layer["gemm_M"] * layer["gemm_K"] * 1.5e-6


def run_key(row: dict) -> tuple:
    return (row["layer"], int(row["array_h"]), int(row["array_w"]), row["dataflow"], row["sram_setting"],
            int(row["bw_words_per_cycle"]))


def grid(cap_s: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(jobs, skipped)``: the grid in run order (seeded shuffle), and the combinations over the cost cap."""
    jobs, skipped = [], []
    for layer, (h, w), df, sram, bw in itertools.product(layer_rows(), ARRAYS, DATAFLOWS, SRAM, BANDWIDTHS):
        if sram == "medium" and bw != 10:  # the held-out SRAM setting: bandwidth-limited only
            continue
        job = dict(layer, array_h=h, array_w=w, dataflow=df, sram_setting=sram, bw_words_per_cycle=bw,
                   est_s=est_cost_s(layer, h, w, df))
        (jobs if job["est_s"] <= cap_s else skipped).append(job)
    random.Random(seed).shuffle(jobs)
    return jobs, skipped


# --- sweep (SCALE-Sim side) -----------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise _Timeout


def _read_report(path: Path) -> list[float]:
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return [float(x) for x in lines[1].split(",") if x.strip()][1:]


def simulate(job: dict, workdir: Path) -> dict:
    """Run SCALE-Sim on one grid job; return the result row."""
    from scalesim.scale_sim import scalesim  # the optional dev dependency

    isz, fsz, osz = job.get("sram_kB") or SRAM[job["sram_setting"]]  # a grid of its own may give the sizes
    run_name = "run"
    cfg = workdir / "run.cfg"
    cfg.write_text(config_text(array_h=job["array_h"], array_w=job["array_w"], dataflow=job["dataflow"], ifmap_kb=isz,
                               filter_kb=fsz, ofmap_kb=osz, bandwidth=job["bw_words_per_cycle"], mode="USER", run_name=run_name))
    layout = workdir / "layout.csv"
    layout.write_text(LAYOUT)
    topo = workdir / "topo.csv"
    gemm = job["kind"] == "gemm"
    if gemm:
        topo.write_text(gemm_topology(job["layer"], job["gemm_M"], job["gemm_N"], job["gemm_K"]))
    else:
        topo.write_text(conv_topology(job["layer"], ifmap_h=job["ifmap_h"], ifmap_w=job["ifmap_w"], filt_h=job["filt_h"],
                                      filt_w=job["filt_w"], channels=job["channels"], num_filters=job["num_filters"],
                                      stride=job["stride"]))
    out = workdir / "out"
    t0, c0 = time.perf_counter(), time.process_time()
    sim = scalesim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo), layout=str(layout),
                   input_type_gemm=gemm)
    sim.run_scale(top_path=str(out))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    comp = _read_report(out / run_name / "COMPUTE_REPORT.csv")
    acc = _read_report(out / run_name / "DETAILED_ACCESS_REPORT.csv")
    row = {k: job[k] for k in SWEEP_COLUMNS if k in job}
    row.update(ifmap_sram_kB=isz, filter_sram_kB=fsz, ofmap_sram_kB=osz, bw_mode="USER",
               total_cycles_incl_prefetch=int(comp[0]), total_cycles=int(comp[1]), stall_cycles=int(comp[2]),
               compute_cycles=int(comp[1]) - int(comp[2]), overall_util_pct=comp[3], mapping_eff_pct=comp[4],
               compute_util_pct=comp[5],
               sram_ifmap_reads=int(acc[2]), sram_filter_reads=int(acc[5]), sram_ofmap_writes=int(acc[8]),
               dram_ifmap_start=acc[9], dram_ifmap_stop=acc[10], dram_ifmap_reads=int(acc[11]),
               dram_filter_start=acc[12], dram_filter_stop=acc[13], dram_filter_reads=int(acc[14]),
               dram_ofmap_start=acc[15], dram_ofmap_stop=acc[16], dram_ofmap_writes=int(acc[17]),
               sim_wall_s=round(wall, 3), sim_cpu_s=round(cpu, 3))
    return row


def sweep(args: argparse.Namespace) -> None:
    jobs, skipped = grid(args.cap_s, args.seed)
    DATA.mkdir(parents=True, exist_ok=True)
    done = set()
    if SWEEP_CSV.exists():
        with open(SWEEP_CSV) as f:
            done = {run_key(r) for r in csv.DictReader(f)}
    failed_path = DATA / "sweep_3.0.0_failed.csv"
    if failed_path.exists():
        with open(failed_path) as f:
            done |= {run_key(r) for r in csv.DictReader(f)}
    todo = [j for j in jobs if run_key(j) not in done]
    print(f"{len(jobs)} jobs under the {args.cap_s:g} s cap ({len(skipped)} over it), {len(todo)} to run", flush=True)
    signal.signal(signal.SIGALRM, _alarm)
    start = time.perf_counter()
    for i, job in enumerate(todo):
        if time.perf_counter() - start > args.budget_s:
            print("budget spent", flush=True)
            break
        with tempfile.TemporaryDirectory() as tmp:
            signal.alarm(int(args.timeout_s))
            try:
                row = simulate(job, Path(tmp))
                signal.alarm(0)
            except _Timeout:
                row = None
                reason = f"timeout {args.timeout_s:g} s"
            except Exception as error:  # noqa: BLE001 - record and go on
                signal.alarm(0)
                row = None
                reason = f"{type(error).__name__}: {error}"[:200]
        if row is None:
            new = not failed_path.exists()
            with open(failed_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["layer", "array_h", "array_w", "dataflow", "sram_setting",
                                                       "bw_words_per_cycle", "est_s", "reason"])
                if new:
                    writer.writeheader()
                writer.writerow({k: job[k] for k in writer.fieldnames if k in job} | {"reason": reason})
            print(f"[{i + 1}/{len(todo)}] {run_key(job)} FAILED: {reason}", flush=True)
            continue
        new = not SWEEP_CSV.exists()
        with open(SWEEP_CSV, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=SWEEP_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(f"[{i + 1}/{len(todo)}] {run_key(job)} est {job['est_s']:.1f} s, took {row['sim_wall_s']:.1f} s, "
              f"total {row['total_cycles']} stall {row['stall_cycles']}", flush=True)


# --- compare (model side) -------------------------------------------------------------------------
OUT_CSV = DATA / "validation.csv"
OUT_MD = DATA / "validation.md"


def load_results() -> "pandas.DataFrame":  # noqa: F821
    """The committed SCALE-Sim rows: the 114 reference runs, the sweep and the off-grid sweep."""
    import pandas as pd

    frames = [pd.read_csv(REFERENCE_CSV).assign(source="reference")]
    for source, path in (("sweep", SWEEP_CSV), ("offgrid", OFFGRID_CSV)):
        if path.exists():
            frames.append(pd.read_csv(path).assign(source=source))
    frozen = {"reference": 10**9, "sweep": 10**9, "offgrid": FROZEN_AT_OFFGRID_ROWS}
    for frame in frames:
        frame["seen"] = frame.index < frozen[frame["source"].iloc[0]]
    rows = pd.concat(frames, ignore_index=True)
    calc = rows["bw_mode"] == "CALC"
    rows.loc[calc, "bw_words_per_cycle"] = float("nan")  # CALC: no memory stalls
    held_array = pd.Series([(h, w) in HOLDOUT_ARRAYS for h, w in zip(rows["array_h"], rows["array_w"])], index=rows.index)
    rows["held_out"] = rows["layer"].isin(HOLDOUT_LAYERS) | held_array | rows["sram_setting"].isin(HOLDOUT_SRAM)
    rows.loc[rows["source"] == "offgrid", "held_out"] = ~rows["seen"]  # looked at while deriving the fix, unless unseen
    return rows


def model_rows(rows) -> "pandas.DataFrame":  # noqa: F821
    """Our cycles for every row, through ``codesign cycles``' code path, one call per hardware setup."""
    import pandas as pd

    from codesign.cycles import CyclesSetup, cycles_table

    out = []
    keys = ["array_h", "array_w", "dataflow", "ifmap_sram_kB", "filter_sram_kB", "ofmap_sram_kB", "bw_words_per_cycle"]
    with tempfile.TemporaryDirectory() as tmp:
        for key, group in rows.groupby(keys, dropna=False, sort=False):
            h, w, df, isz, fsz, osz, bw = key
            setup = CyclesSetup(array_h=int(h), array_w=int(w), dataflow=df, sram_kb=(int(isz), int(fsz), int(osz)),
                                bandwidth=None if pd.isna(bw) else float(bw))
            for form, part in group.groupby(group["kind"] == "gemm"):
                layers = part.drop_duplicates("layer")
                topo = Path(tmp) / "topo.csv"
                if form:
                    lines = ["Layer, M, N, K,"] + [f"{r.layer}, {r.gemm_M}, {r.gemm_N}, {r.gemm_K}," for r in layers.itertuples()]
                else:
                    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
                    lines += [f"{r.layer}, {r.ifmap_h}, {r.ifmap_w}, {r.filt_h}, {r.filt_w}, {r.channels}, {r.num_filters}, "
                              f"{r.stride}," for r in layers.itertuples()]
                topo.write_text("\n".join(lines) + "\n")
                t0 = time.perf_counter()
                ours = cycles_table(topo, setup, form="gemm" if form else "conv")
                per_layer = (time.perf_counter() - t0) / len(ours)
                by_name = {r["layer"]: r for r in ours}
                for idx, r in part.iterrows():
                    o = by_name[r["layer"]]
                    out.append(dict(index=idx, model_compute_cycles=o["compute_cycles"], model_stall_cycles=o["stall_cycles"],
                                    model_total_cycles=o["total_cycles"], model_s_per_layer=per_layer))
    return pd.DataFrame(out).set_index("index").sort_index()


def batched_seconds_per_layer(rows) -> float:
    """Seconds per layer of the stall model evaluated on every row at once (as the search batches it)."""
    import torch

    from codesign.model.systolic import IS, OS, WS, compute_cycles, stall_bound_cycles

    t = lambda col: torch.tensor(rows[col].to_numpy(dtype=float), dtype=torch.float64)  # noqa: E731
    df = torch.tensor([{"ws": WS, "os": OS, "is": IS}[d] for d in rows["dataflow"]])
    conv = torch.tensor((rows["kind"] != "gemm").to_numpy()) & torch.tensor((rows["filt_h"] > rows["stride"]).to_numpy())
    bw = torch.nan_to_num(t("bw_words_per_cycle"), nan=float("inf"))
    gemm = torch.tensor((rows["kind"] == "gemm").to_numpy())
    reach = torch.where(gemm, 0.0, torch.div(t("filt_h") - 1, t("stride"), rounding_mode="floor") * t("ofmap_w")
                        + torch.div(t("filt_w") - 1, t("stride"), rounding_mode="floor"))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        m, n, k, h, w = t("gemm_M"), t("gemm_N"), t("gemm_K"), t("array_h"), t("array_w")
        cc = compute_cycles(m, n, k, h, w, df)
        stall_bound_cycles(m, n, k, h, w, df, compute=cc, ifmap_words=t("ifmap_sram_kB") * 1024,
                           filter_words=t("filter_sram_kB") * 1024, ofmap_words=t("ofmap_sram_kB") * 1024, bw_words=bw,
                           out_cols=t("ofmap_w"), overlap=conv, stride=t("stride"), reach=reach)
        best = min(best, time.perf_counter() - t0)
    return best / len(rows)


def _stats(values) -> tuple[float, float, float]:
    import numpy as np

    v = np.abs(np.asarray(values, dtype=float))
    return float(np.median(v)), float(np.percentile(v, 90)), float(v.max())


def compare(args: argparse.Namespace) -> None:  # noqa: ARG001
    sys.path.insert(0, str(ROOT))
    rows = load_results()
    ours = model_rows(rows)
    rows = rows.join(ours)
    # Errors in % of SCALE-Sim's total cycles (stall and compute too: SCALE-Sim's stall is often 0).
    rows["err_compute_pct"] = 100 * (rows["model_compute_cycles"] - rows["compute_cycles"]) / rows["total_cycles"]
    rows["err_stall_pct"] = 100 * (rows["model_stall_cycles"] - rows["stall_cycles"]) / rows["total_cycles"]
    rows["err_total_pct"] = 100 * (rows["model_total_cycles"] - rows["total_cycles"]) / rows["total_cycles"]
    keep = ["source", "held_out", "seen", "layer", "kind", "gemm_M", "gemm_N", "gemm_K", "array_h", "array_w", "dataflow",
            "sram_setting", "ifmap_sram_kB", "filter_sram_kB", "ofmap_sram_kB", "bw_mode", "bw_words_per_cycle",
            "compute_cycles", "stall_cycles", "total_cycles", "model_compute_cycles", "model_stall_cycles",
            "model_total_cycles", "err_compute_pct", "err_stall_pct", "err_total_pct", "sim_wall_s", "model_s_per_layer"]
    rows[keep].to_csv(OUT_CSV, index=False, float_format="%.6g")

    groups = [("all rows", rows), ("held-out rows", rows[rows["held_out"]]), ("calibration rows", rows[~rows["held_out"]]),
              ("unseen rows (simulated after the model was frozen)", rows[~rows["seen"]]),
              ("rows that stall (SCALE-Sim stall > 2 % of total)", rows[rows["stall_cycles"] > 0.02 * rows["total_cycles"]])]
    lines = [
        "| rows | n | compute exact | compute err median / p90 / max | stall err median / p90 / max | total err median / p90 / max |",
        "|---|---|---|---|---|---|",
    ]
    for label, g in groups:
        exact = int((g["model_compute_cycles"] == g["compute_cycles"]).sum())
        cells = [" / ".join(f"{x:.2f} %" for x in _stats(g[c])) for c in ("err_compute_pct", "err_stall_pct", "err_total_pct")]
        lines.append(f"| {label} | {len(g)} | {exact}/{len(g)} | " + " | ".join(cells) + " |")
    batched = batched_seconds_per_layer(rows)
    sim = rows["sim_wall_s"].astype(float)
    ours_s = rows["model_s_per_layer"].astype(float)
    speed = [
        "",
        "| wall time per layer | median | mean | max |",
        "|---|---|---|---|",
        f"| SCALE-Sim 3.0.0 (one run = one layer) | {sim.median():.3g} s | {sim.mean():.3g} s | {sim.max():.3g} s |",
        f"| this model (`codesign cycles` code path) | {ours_s.median() * 1e3:.3g} ms | {ours_s.mean() * 1e3:.3g} ms | "
        f"{ours_s.max() * 1e3:.3g} ms |",
        f"| ratio (SCALE-Sim / ours, medians) | {sim.median() / ours_s.median():.3g}× | | |",
        f"| this model batched over all {len(rows)} rows at once (as the search runs it) | "
        f"{batched * 1e6:.3g} µs | | |",
    ]
    header = [
        "Errors are in % of SCALE-Sim's total cycles (so a stall error of 3 % means the stall cycles differ by 3 % of the",
        "layer's total), over the committed SCALE-Sim 3.0.0 results (`tests/data/scalesim_3.0.0_reference.csv`,",
        "`data/scalesim/sweep_3.0.0.csv` and `data/scalesim/offgrid_3.0.0.csv`). Held out: layers "
        + ", ".join(sorted(HOLDOUT_LAYERS)) + "; arrays " + ", ".join(f"{h}×{w}" for h, w in sorted(HOLDOUT_ARRAYS))
        + "; the medium SRAM setting; the off-grid rows simulated after the model was frozen.",
        "",
    ]
    OUT_MD.write_text("\n".join(header + lines + speed) + "\n")
    print("\n".join(lines + speed))
    print(f"wrote {OUT_CSV} and {OUT_MD}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sw = sub.add_parser("sweep", help="run SCALE-Sim on the grid (needs scalesim==3.0.0)")
    sw.add_argument("--budget-s", type=float, default=5400.0, help="stop starting runs after this many seconds")
    sw.add_argument("--cap-s", type=float, default=120.0, help="skip runs whose estimated cost exceeds this")
    sw.add_argument("--timeout-s", type=float, default=600.0, help="give up on a run after this many seconds")
    sw.add_argument("--seed", type=int, default=0, help="order of the runs")
    sub.add_parser("compare", help="compare the model with the committed SCALE-Sim results")
    args = parser.parse_args(argv)
    if args.command == "sweep":
        sweep(args)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
