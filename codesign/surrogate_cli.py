"""``codesign surrogate train|eval``: the latency surrogate on its own, from recorded oracle results.

``train`` fits a :class:`~codesign.model.surrogate.LatencySurrogate` on oracle results
and saves it (weights + metadata); ``eval`` measures a saved one on other results. Both
write a JSON report and a predicted-vs-oracle plot (log-log, one panel per layer type:
conv, depthwise, gemm). The results are

* SCALE-Sim result tables (``*.csv``) in the format of
  ``tests/data/scalesim_3.0.0_reference.csv`` and ``data/scalesim/sweep_3.0.0.csv``: one
  row per run with the layer (``kind``, ``ifmap_h`` … ``stride``, ``gemm_M/N/K``), the
  hardware (``array_h``, ``array_w``, ``dataflow``, ``*_sram_kB``, ``bw_mode``,
  ``bw_words_per_cycle``) and ``total_cycles``; or
* an oracle's cache (``*.sqlite``, see :class:`~codesign.oracles.base.OracleCache`): every
  job the oracle has run.

Each row is one layer standing alone (as the simulator ran it): the analytical model's
per-layer outputs come from the same layer and hardware, read from and written to DRAM.

``train`` also estimates the error on **unseen layers and unseen hardware**: the rows'
layers and array shapes are each split into ``k`` groups; for every pair (layer group
``i``, array group ``j``) a surrogate is trained on the rows with neither a layer of
group ``i`` nor an array of group ``j``, and tested on the rows with both. Every row is
predicted exactly once by a surrogate that saw neither its layer nor its array.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from codesign.errors import UserError

# numpy, pandas and torch are imported where they are used: registering these subcommands
# must not slow down `codesign --help`.

LAYER_TYPES = ("conv", "depthwise", "gemm")


@dataclass
class OracleRows:
    """Recorded oracle results: jobs, their cycles, and per-row labels."""

    jobs: list
    cycles: np.ndarray  # [R] oracle total cycles
    layer: np.ndarray  # [R] a layer label (name, or the shape for cache rows)
    hardware: np.ndarray  # [R] the array shape "HxW"
    layer_type: np.ndarray  # [R] conv / depthwise / gemm
    oracle: dict
    sources: list[str]

    def __len__(self) -> int:
        return len(self.jobs)

    def subset(self, mask: np.ndarray) -> "OracleRows":
        import numpy as np

        idx = np.flatnonzero(mask)
        return OracleRows([self.jobs[i] for i in idx], self.cycles[idx], self.layer[idx], self.hardware[idx],
                          self.layer_type[idx], self.oracle, self.sources)


def layer_type(job) -> str:
    if job.kind == "gemm":
        return "gemm"
    return "depthwise" if job.channels == 1 and job.num_filters == 1 else "conv"


def _rows_from_csv(path: Path):
    import pandas as pd

    from codesign.oracles.base import UNLIMITED_BANDWIDTH, LayerJob

    frame = pd.read_csv(path)
    need = {"kind", "array_h", "array_w", "dataflow", "ifmap_sram_kB", "filter_sram_kB", "ofmap_sram_kB", "bw_words_per_cycle", "total_cycles"}
    missing = sorted(need - set(frame.columns))
    if missing:
        raise UserError(f"--data {path}: not a SCALE-Sim result table (missing columns {', '.join(missing)})")
    jobs, cycles, layers = [], [], []
    for i, r in enumerate(frame.to_dict("records")):
        hw = dict(array_h=int(r["array_h"]), array_w=int(r["array_w"]), dataflow=str(r["dataflow"]),
                  ifmap_sram_bytes=float(r["ifmap_sram_kB"]) * 1024, filter_sram_bytes=float(r["filter_sram_kB"]) * 1024,
                  ofmap_sram_bytes=float(r["ofmap_sram_kB"]) * 1024,
                  bandwidth=UNLIMITED_BANDWIDTH if str(r.get("bw_mode", "USER")) == "CALC" else float(r["bw_words_per_cycle"]))
        try:
            if r["kind"] == "gemm":
                job = LayerJob.gemm(int(r["gemm_M"]), int(r["gemm_N"]), int(r["gemm_K"]), **hw)
            else:
                job = LayerJob.conv(ifmap_h=int(r["ifmap_h"]), ifmap_w=int(r["ifmap_w"]), filt_h=int(r["filt_h"]), filt_w=int(r["filt_w"]),
                                    channels=int(r["channels"]), num_filters=int(r["num_filters"]), stride=int(r["stride"]), **hw)
        except (KeyError, ValueError, TypeError) as error:
            raise UserError(f"--data {path}: row {i + 2}: {type(error).__name__}: {error}") from None
        jobs.append(job)
        cycles.append(float(r["total_cycles"]))
        layers.append(str(r.get("layer", f"{job.kind}_{job.M}x{job.N}x{job.K}")))
    version = re.search(r"(\d+\.\d+\.\d+)", path.name)
    return jobs, cycles, layers, {"name": "scalesim", "version": version.group(1) if version else "unknown"}


def _rows_from_cache(path: Path):
    from codesign.oracles.base import OracleCache

    try:
        items = OracleCache(path).items()
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"--data {path}: not an oracle cache ({type(error).__name__}: {error})") from None
    name, _, version = path.stem.partition("-")
    jobs = [j for j, _ in items]
    return jobs, [r["total_cycles"] for _, r in items], [f"{j.kind}_{j.M}x{j.N}x{j.K}_{j.filt_h}x{j.filt_w}s{j.stride}" for j in jobs], {"name": name, "version": version or "unknown"}


def load_oracle_rows(paths: list[str | Path]) -> OracleRows:
    """Results from SCALE-Sim tables and oracle caches; the same job twice is kept once."""
    import numpy as np

    jobs, cycles, layers, oracles, sources = [], [], [], [], []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise UserError(f"--data {path}: no such file")
        j, c, lay, oracle = _rows_from_cache(path) if path.suffix in (".sqlite", ".db") else _rows_from_csv(path)
        jobs += j
        cycles += c
        layers += lay
        oracles.append(oracle)
        sources.append(str(path))
    if not jobs:
        raise UserError(f"--data {', '.join(map(str, paths))}: no rows")
    seen, keep = set(), []
    for i, job in enumerate(jobs):
        key = job.canonical()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    jobs = [jobs[i] for i in keep]
    names = {(o["name"], o["version"]) for o in oracles}
    oracle = oracles[0] if len(names) == 1 else {"name": "+".join(sorted({n for n, _ in names})), "version": "+".join(sorted({v for _, v in names}))}
    return OracleRows(
        jobs=jobs, cycles=np.array([cycles[i] for i in keep], dtype=np.float64), layer=np.array([layers[i] for i in keep]),
        hardware=np.array([f"{j.array_h}x{j.array_w}" for j in jobs]), layer_type=np.array([layer_type(j) for j in jobs]),
        oracle=oracle, sources=sources,
    )


def rows_features(rows: OracleRows) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(x [R, F], y [R], analytical cycles [R])`` of recorded rows."""
    import numpy as np
    import torch

    from codesign.model.surrogate import features, job_table

    table = job_table(rows.jobs)
    analytical = table["an_total"].numpy()
    return features(table), torch.tensor(np.log(rows.cycles / analytical)), analytical


def group_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Group index in ``[0, k)`` of every row, by its label (labels dealt round-robin in seeded order)."""
    import numpy as np

    unique = sorted(set(labels.tolist()))
    order = np.random.RandomState(seed).permutation(len(unique))
    group = {unique[i]: n % k for n, i in enumerate(order)}
    return np.array([group[v] for v in labels.tolist()])


def heldout_predictions(x, y, layers, hardware, *, k: int = 3, seed: int = 0, device="cpu", stats: list | None = None,
                        **fit) -> tuple[np.ndarray, np.ndarray]:
    """Residual predictions of every row by a surrogate that saw neither its layer nor its array shape.

    Returns ``(point [R], std [R])``: the members' median and spread; rows whose training
    set would be empty stay NaN. ``stats``, a list, receives each fold's fit statistics.
    """
    import numpy as np
    import torch

    from codesign.model.surrogate import LatencySurrogate

    lg, hg = group_folds(layers, k, seed), group_folds(hardware, k, seed + 1)
    mean = np.full(len(y), np.nan)
    std = np.full(len(y), np.nan)
    members = fit.pop("members", 5)
    hidden = fit.pop("hidden", 64)
    for i in range(k):
        for j in range(k):
            test = (lg == i) & (hg == j)
            train = (lg != i) & (hg != j)
            if not test.any() or train.sum() < 2:
                continue
            model = LatencySurrogate(members=members, hidden=hidden).to(device)
            fitted = model.fit(x[torch.from_numpy(train)], y[torch.from_numpy(train)], seed=seed * 100 + 3 * i + j,
                               groups=[layers[train], hardware[train]], **fit)
            if stats is not None:
                stats.append({"fold": (i, j), "train_rows": int(train.sum()), "test_rows": int(test.sum()), **fitted})
            pred = model.predict(x[torch.from_numpy(test)]).double().cpu()
            mean[test] = pred.median(dim=0).values.numpy()  # the point prediction of a layer: the members' median
            std[test] = pred.std(dim=0).numpy() if members > 1 else 0.0
    return mean, std


def error_report(oracle: np.ndarray, predicted: np.ndarray, analytical: np.ndarray, types: np.ndarray) -> dict:
    """Median / p90 absolute % error of predicted and analytical cycles, Kendall τ, per layer type."""
    import numpy as np

    from scipy.stats import kendalltau

    ok = np.isfinite(predicted)

    def stats(mask) -> dict:
        m = mask & ok
        if not m.any():
            return {"rows": 0}
        e_p = np.abs(predicted[m] / oracle[m] - 1) * 100
        e_a = np.abs(analytical[m] / oracle[m] - 1) * 100
        off = e_a > 0.1  # rows where the analytical model is not (practically) exact
        out = {
            "rows": int(m.sum()),
            "median_abs_err_pct": float(np.median(e_p)), "p90_abs_err_pct": float(np.percentile(e_p, 90)),
            "mean_abs_err_pct": float(e_p.mean()), "max_abs_err_pct": float(e_p.max()),
            "analytical_median_abs_err_pct": float(np.median(e_a)), "analytical_p90_abs_err_pct": float(np.percentile(e_a, 90)),
            "analytical_mean_abs_err_pct": float(e_a.mean()),
            "rows_analytical_off": int(off.sum()),
            "median_abs_err_pct_where_analytical_off": float(np.median(e_p[off])) if off.any() else 0.0,
            "analytical_median_abs_err_pct_where_off": float(np.median(e_a[off])) if off.any() else 0.0,
        }
        if m.sum() > 2:
            out["kendall_tau"] = float(kendalltau(predicted[m], oracle[m]).statistic)
            out["analytical_kendall_tau"] = float(kendalltau(analytical[m], oracle[m]).statistic)
        return out

    report = stats(np.ones(len(oracle), dtype=bool))
    report["by_layer_type"] = {t: stats(types == t) for t in LAYER_TYPES if (types == t).any()}
    return report


# --- the subcommands ----------------------------------------------------------------------------
def add_surrogate_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("surrogate", help="train or evaluate the learned latency surrogate on recorded oracle results")
    ss = parser.add_subparsers(dest="surrogate_command", required=True)
    tr = ss.add_parser("train", help="fit a surrogate on oracle results; save it with a report")
    tr.add_argument("--data", action="append", required=True, help="SCALE-Sim result CSV or oracle cache (.sqlite); repeatable")
    tr.add_argument("--out", required=True, help="folder for surrogate.pt, surrogate.json, report.json, predicted_vs_oracle.png")
    tr.add_argument("--members", type=int, default=5, help="ensemble members (default 5)")
    tr.add_argument("--hidden", type=int, default=64, help="hidden width (default 64)")
    tr.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--folds", type=int, default=3, help="groups of layers and of arrays for the held-out estimate (default 3; 0: none)")
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tr.add_argument("--threads", type=int, default=1, help="torch threads for training on the CPU (default 1: small tensors)")
    ev = ss.add_parser("eval", help="measure a saved surrogate on oracle results")
    ev.add_argument("--model", required=True, help="folder of a saved surrogate")
    ev.add_argument("--data", action="append", required=True, help="SCALE-Sim result CSV or oracle cache (.sqlite); repeatable")
    ev.add_argument("--out", help="folder for report.json and predicted_vs_oracle.png (default: the model's folder)")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    return parser


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise UserError(f"--{name} {value}: expected a positive integer")


def train(args: argparse.Namespace) -> dict:
    import torch

    from codesign.model.evaluator import resolve_device

    for name in ("members", "hidden", "steps"):
        _positive(name, getattr(args, name))
    device = resolve_device(args.device)
    if args.threads < 1:
        raise UserError(f"--threads {args.threads}: expected a positive integer")
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    try:
        return _train(args, device)
    finally:
        torch.set_num_threads(threads)


def _train(args: argparse.Namespace, device) -> dict:
    import numpy as np

    from codesign.model.surrogate import LatencySurrogate, training_metadata
    from codesign.plots import plot_predicted_vs_oracle

    rows = load_oracle_rows(args.data)
    if len(rows) < 4:
        raise UserError(f"--data: {len(rows)} rows; a surrogate needs at least 4")
    x, y, analytical = rows_features(rows)
    fit = dict(steps=args.steps, members=args.members, hidden=args.hidden)
    report: dict = {"rows": len(rows), "sources": rows.sources, "oracle": rows.oracle, "settings": {**fit, "seed": args.seed, "folds": args.folds}}
    out = Path(args.out)
    if args.folds and args.folds > 1:
        t0 = time.perf_counter()
        mean, _ = heldout_predictions(x, y, rows.layer, rows.hardware, k=args.folds, seed=args.seed, device=device, **dict(fit))
        predicted = analytical * np.exp(mean)
        report["heldout"] = {"rule": f"{args.folds}×{args.folds} folds: layers and array shapes both unseen in training",
                             **error_report(rows.cycles, predicted, analytical, rows.layer_type), "seconds": time.perf_counter() - t0}
        plot_predicted_vs_oracle(rows.cycles, predicted, analytical, rows.layer_type, out / "predicted_vs_oracle.png", layer_types=LAYER_TYPES,
                                 title=f"held-out predictions ({args.folds}×{args.folds} folds over layers and arrays), {rows.oracle['name']} {rows.oracle['version']}")
    model = LatencySurrogate(members=args.members, hidden=args.hidden).to(device)
    stats = model.fit(x, y, steps=args.steps, seed=args.seed, groups=[rows.layer, rows.hardware])
    train_pred = analytical * np.exp(model.predict(x).median(dim=0).values.double().cpu().numpy())
    report["training"] = {**error_report(rows.cycles, train_pred, analytical, rows.layer_type), **stats}
    model.save(out, training_metadata(oracle=rows.oracle, x=x, y=y, fit=stats, sources=rows.sources, heldout=report.get("heldout")))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def evaluate(args: argparse.Namespace) -> dict:
    import numpy as np

    from codesign.model.evaluator import resolve_device
    from codesign.model.surrogate import LatencySurrogate
    from codesign.plots import plot_predicted_vs_oracle

    device = resolve_device(args.device)
    model = LatencySurrogate.load(args.model, device=device)
    rows = load_oracle_rows(args.data)
    x, _, analytical = rows_features(rows)
    members = model.predict(x).double().cpu()
    predicted = analytical * np.exp(members.median(dim=0).values.numpy())
    trained_on = model.metadata.get("oracle", {})
    report = {"model": str(args.model), "model_oracle": trained_on, "data_oracle": rows.oracle, "sources": rows.sources,
              **error_report(rows.cycles, predicted, analytical, rows.layer_type)}
    if trained_on and (trained_on.get("name"), trained_on.get("version")) != (rows.oracle["name"], rows.oracle["version"]):
        report["warning"] = "the model was trained on another oracle's results"
    out = Path(args.out or args.model)
    out.mkdir(parents=True, exist_ok=True)
    plot_predicted_vs_oracle(rows.cycles, predicted, analytical, rows.layer_type, out / "predicted_vs_oracle.png", layer_types=LAYER_TYPES,
                             title=f"{args.model} on {', '.join(Path(s).name for s in rows.sources)}")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_surrogate(args: argparse.Namespace) -> None:
    report = train(args) if args.surrogate_command == "train" else evaluate(args)
    part = report.get("heldout", report) if args.surrogate_command == "train" else report
    line = (f"{report.get('rows', part.get('rows'))} rows: median |error| {part['median_abs_err_pct']:.2f} % "
            f"(analytical {part['analytical_median_abs_err_pct']:.2f} %)")
    if "kendall_tau" in part:
        line += f", Kendall τ {part['kendall_tau']:.3f}"
    where = args.out or args.model
    print(f"{'held-out ' if 'heldout' in report else ''}{line} → {where}")
