#!/usr/bin/env python
"""How many whole-network candidates per second the batched model evaluates.

For each workload (ResNet-50 and BERT-base by default, on the hardware and schedule
ranges of designs/bench_resnet50_16core.toml) and each population size, random integer
rows are evaluated in one call, ``--repeats`` times after a warm-up; the median time
gives candidates per second. The same run times the naive way, one candidate per call
through the same evaluator, so the speed-up is a ratio measured on the same machine
under the same load. Peak memory per candidate is the growth of the peak resident set
during one call, over ``P`` (cpu, measured in a child process: see
:func:`peak_bytes_cpu_child`), or of torch's peak allocation (cuda).

What is timed is ``Evaluator.evaluate_rows`` — what the search calls: decoding the
rows, the model, the plug-ins, the metrics back on the host, per-candidate error
checks. ``model_evals_per_s`` times the model alone (``AnalyticalModel.evaluate``,
rows already decoded on the device) for comparison.

    .venv/bin/python scripts/bench_eval.py                      # table
    .venv/bin/python scripts/bench_eval.py --json > docs/perf/bench_eval.json
    .venv/bin/python scripts/bench_eval.py --quick --device cuda --dtype float32
    .venv/bin/python scripts/bench_eval.py --quick --workloads resnet50,torchvision:resnet50 --json
    .venv/bin/python scripts/bench_eval.py --workloads resnet50 --populations 16384,65536 --threads 2 \
        --design designs/bench_resnet50_16core.toml,designs/bench_resnet50_16core_fused.toml   # in turn

A workload is any network spec a design file takes (a zoo name, ``torchvision:NAME``, a module,
an ONNX file). When a zoo network and its torchvision import both run, ``imported_vs_zoo`` gives
the import's best evaluations per second over the zoo's (the same network: the import adds its
pooling layers as vector layers), measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.design import load_design, parse_design  # noqa: E402
from codesign.errors import UserError  # noqa: E402
from codesign.model.evaluator import CPU_CHUNK, Evaluator  # noqa: E402
from codesign.model.evaluator import resolve_device  # noqa: E402
from codesign.space import DesignSpace  # noqa: E402

DESIGN = ROOT / "designs" / "bench_resnet50_16core.toml"
POPULATIONS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536]
QUICK_POPULATIONS = [1, 64, 1024, 16384]
WORKLOADS = ["resnet50", "bert_base"]


# --- shared by the bench scripts -------------------------------------------------------------
def machine_info(device: str = "cpu") -> dict:
    """Where and with what the figures were measured (the load average says how busy the machine was)."""
    import optuna

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": mem_gib,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "optuna": optuna.__version__,
        "numpy": np.__version__,
    }
    info["codesign"] = source_version()
    try:
        import pymoo

        info["pymoo"] = pymoo.__version__
    except ImportError:
        info["pymoo"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def source_version() -> dict:
    """The commit checked out and a hash of the model's sources as they are (figures depend on both)."""
    import hashlib

    commit = None
    try:
        head = (ROOT / ".git" / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = ROOT / ".git" / head[5:]
            if ref.is_file():
                commit = ref.read_text().strip()
            else:  # packed refs
                for line in (ROOT / ".git" / "packed-refs").read_text().splitlines():
                    if line.endswith(" " + head[5:]):
                        commit = line.split()[0]
        else:
            commit = head
    except OSError:
        pass
    digest = hashlib.sha256()
    for path in sorted((ROOT / "codesign").rglob("*.py")):
        if path.parent.name in ("model", "hardware") or path.name == "space.py":
            digest.update(path.relative_to(ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return {"commit": commit[:12] if commit else None, "model_sources_sha256": digest.hexdigest()[:16]}


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- memory ------------------------------------------------------------------------------------
def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False


def peak_bytes_cuda(fn) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def peak_bytes_cpu_child(network: str, dtype: str, populations: list[int]) -> dict[int, int | None]:
    """Peak resident-set growth of one call per population, measured in a fresh process.

    glibc keeps freed memory for reuse, so in this process a call reuses what earlier
    ones left and the growth reads 0; the child runs with a fixed mmap threshold
    (``MALLOC_MMAP_THRESHOLD_``), so each large tensor is mapped on allocation and
    returned on free, and the peak of a call is its own.
    """
    import subprocess

    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "4096", "MALLOC_TRIM_THRESHOLD_": "4096"}
    cmd = [sys.executable, __file__, "--memory-child", network, "--dtype", dtype, "--populations", ",".join(map(str, populations)), "--threads", str(torch.get_num_threads())]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=1800).stdout
        return {int(k): v for k, v in json.loads(out).items()}
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError):
        return {p: None for p in populations}


def _memory_child(network: str, dtype: torch.dtype, populations: list[int]) -> None:
    space = build_space(network)
    evaluator = Evaluator(space, device="cpu", dtype=dtype)
    device = torch.device("cpu")
    evaluator.evaluate_rows(random_rows(space, 8, device))
    out = {}
    for P in populations:
        rows = random_rows(space, P, device)
        evaluator.evaluate_rows(rows[: min(P, 64)])
        base = _status_kib("VmRSS")
        if not _reset_peak_rss() or base is None:
            out[P] = None
            continue
        evaluator.evaluate_rows(rows)
        peak = _status_kib("VmHWM")
        out[P] = None if peak is None else max(0, peak - base) * 1024
        del rows
    print(json.dumps(out))


# --- the benchmark ------------------------------------------------------------------------------
def build_space(network: str, design_path: Path | None = None) -> DesignSpace:
    design_path = design_path or Path(os.environ.get("BENCH_EVAL_DESIGN", DESIGN))
    design = load_design(design_path)
    raw = design.model_dump(mode="json")
    raw["workload"] = {**raw["workload"], "network": network}
    return DesignSpace.from_design(parse_design(raw, source=f"{design_path} (workload {network})"))


def random_rows(space: DesignSpace, n: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """``n`` random integer rows, made on ``device`` (nothing per candidate crosses to it)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    high = torch.tensor([len(k.choices) if k.choices is not None else k.high + 1 for k in space.knobs], device=device)
    return (torch.rand(n, space.dimension, generator=gen, device=device) * high).long()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_calls(fn, device: torch.device, repeats: int, budget_s: float) -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
        if sum(times) > budget_s and len(times) >= 3:
            break
    return times


def bench_workload(network: str, device: torch.device, dtype: torch.dtype, populations: list[int], repeats: int, one_at_a_time: int, say) -> dict:
    space = build_space(network)
    evaluator = Evaluator(space, device=device, dtype=dtype)
    L = len(space.lowered.names)
    rows_all = random_rows(space, max(populations), device)
    evaluator.evaluate_rows(rows_all[:8])  # warm-up: first-call allocations, lazy imports
    results = []
    for P in populations:
        rows = rows_all[:P]
        evaluator.evaluate_rows(rows)  # warm-up at this size
        peak = peak_bytes_cuda(lambda: evaluator.evaluate_rows(rows)) if device.type == "cuda" else None
        times = time_calls(lambda: evaluator.evaluate_rows(rows), device, repeats, budget_s=20.0)
        decoded = space.decode(rows, dtype=dtype)
        model_times = time_calls(lambda: evaluator.model.evaluate(decoded), device, repeats, budget_s=20.0)
        entry = {
            "population": P,
            "median_s": median(times),
            "evals_per_s": P / median(times),
            "model_evals_per_s": P / median(model_times),
            "repeats": len(times),
            "peak_bytes_per_candidate": None if peak is None else peak / P,
        }
        results.append(entry)
        say(f"  {network:10s} P={P:6d}  {entry['evals_per_s']:12,.0f} evals/s  (model alone {entry['model_evals_per_s']:12,.0f})")
    if device.type == "cpu":
        for entry, (P, peak) in zip(results, peak_bytes_cpu_child(network, str(dtype).split(".")[-1], populations).items()):
            entry["peak_bytes_per_candidate"] = None if peak is None else peak / P
    # The naive way: one candidate per call, through the same evaluator.
    singles = rows_all[:one_at_a_time]
    evaluator.evaluate_rows(singles[:1])
    sync(device)
    t = time.perf_counter()
    for i in range(len(singles)):
        evaluator.evaluate_rows(singles[i : i + 1])
    sync(device)
    one_rate = len(singles) / (time.perf_counter() - t)
    best = max(results, key=lambda r: r["evals_per_s"])
    say(f"  {network:10s} one at a time: {one_rate:,.0f} evals/s")
    return {
        "layers": L,
        "knobs": space.dimension,
        "best_evals_per_s": best["evals_per_s"],
        "best_population": best["population"],
        "one_at_a_time_evals_per_s": one_rate,
        "one_at_a_time_candidates": len(singles),
        "speedup_vs_one_at_a_time": best["evals_per_s"] / one_rate,
        "best_model_evals_per_s": max(r["model_evals_per_s"] for r in results),
        "populations": results,
    }


def bench_alternating(network: str, designs: list[Path], device: torch.device, dtype: torch.dtype, populations: list[int], repeats: int,
                      say) -> dict:
    """Several designs timed in one run, call by call in turn (the first design first on even
    repeats, last on odd ones), so that a busy machine's load falls on all of them alike: per
    population, each design's median and the median over repeats of each design's evaluations per
    second over the first design's in the same round (``vs_first``)."""
    spaces = [build_space(network, path) for path in designs]
    evaluators = [Evaluator(space, device=device, dtype=dtype) for space in spaces]
    rows_all = [random_rows(space, max(populations), device) for space in spaces]
    for evaluator, rows in zip(evaluators, rows_all):
        evaluator.evaluate_rows(rows[:8])
    out = []
    for P in populations:
        times = [[] for _ in designs]
        for evaluator, rows in zip(evaluators, rows_all):
            evaluator.evaluate_rows(rows[:P])  # warm-up at this size
        for r in range(repeats):
            order = range(len(designs)) if r % 2 == 0 else reversed(range(len(designs)))
            for i in order:
                times[i].extend(time_calls(lambda: evaluators[i].evaluate_rows(rows_all[i][:P]), device, 1, budget_s=60.0))
        entry = {"population": P, "repeats": repeats, "designs": {
            str(path.resolve().relative_to(ROOT)): {"median_s": median(t), "evals_per_s": P / median(t)} for path, t in zip(designs, times)}}
        entry["vs_first"] = [median([t0 / ti for t0, ti in zip(times[0], t)]) for t in times]
        out.append(entry)
        say(f"  {network:10s} P={P:6d}  " + "  ".join(f"{P / median(t):12,.0f}" for t in times) + "  evals/s;  vs first "
            + " ".join(f"{v:.3f}" for v in entry["vs_first"]))
    return {"layers": len(spaces[0].lowered.names), "knobs": [space.dimension for space in spaces], "populations": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated network specs: zoo names, torchvision:NAME, ... (default {','.join(WORKLOADS)})")
    parser.add_argument("--populations", help="comma-separated population sizes (default 1…65536 in powers of 4)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per population size (median)")
    parser.add_argument("--one-at-a-time", type=int, default=300, help="candidates timed one per call")
    parser.add_argument("--threads", help="torch intra-op threads on cpu, or a comma-separated list to try each (default: torch's default)")
    parser.add_argument("--quick", action="store_true", help=f"populations {QUICK_POPULATIONS}, 3 repeats, 100 single calls")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--design", default=str(DESIGN),
                        help="the design whose ranges are timed (default designs/bench_resnet50_16core.toml; "
                             "designs/bench_resnet50_16core_fused.toml adds fusion and splitting), or several, "
                             "comma-separated: timed call by call in turn in one run, each against the first")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    designs = [Path(d) for d in args.design.split(",")]
    args.design = designs[0]
    os.environ["BENCH_EVAL_DESIGN"] = str(args.design.resolve())
    if args.memory_child:
        if args.threads:
            torch.set_num_threads(int(args.threads.split(",")[0]))
        _memory_child(args.memory_child, getattr(torch, args.dtype), [int(p) for p in args.populations.split(",")])
        return 0

    try:
        device = resolve_device(args.device)
    except UserError as error:
        print(f"bench_eval: {error}", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype)
    thread_counts = [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    populations = [int(p) for p in args.populations.split(",")] if args.populations else (QUICK_POPULATIONS if args.quick else POPULATIONS)
    repeats = 3 if args.quick else args.repeats
    singles = 100 if args.quick else args.one_at_a_time
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else (lambda msg: None)

    report = {
        "benchmark": "bench_eval",
        "design": str(args.design.resolve().relative_to(ROOT)),
        "device": str(device),
        "dtype": args.dtype,
        "quick": args.quick,
        "machine": machine_info(str(device)),
        "cpu_chunk": CPU_CHUNK,  # rows per model call inside evaluate_rows on cpu
        "results": {str(device.type): {}},
    }
    started = time.perf_counter()
    if len(designs) > 1:
        torch.set_num_threads(thread_counts[0])
        report["benchmark"] = "bench_eval, designs in turn"
        report["designs"] = [str(d.resolve().relative_to(ROOT)) for d in designs]
        report["results"][device.type] = {network: bench_alternating(network, designs, device, dtype, populations, repeats, say)
                                          for network in args.workloads.split(",")}
        report["wall_s"] = time.perf_counter() - started
        if not args.json:
            for network, r in report["results"][device.type].items():
                print(f"{network}: {', '.join(report['designs'])} ({r['knobs']} knobs), evaluations/s in turn")
                for e in r["populations"]:
                    rates = "  ".join(f"{d['evals_per_s']:12,.0f}" for d in e["designs"].values())
                    print(f"{e['population']:>10} {rates}   vs first {' '.join(f'{v:.3f}' for v in e['vs_first'])}")
        else:
            print(json.dumps(report, indent=2))
        return 0
    for network in args.workloads.split(","):
        runs = []
        for threads in thread_counts:
            torch.set_num_threads(threads)
            say(f"{network}: {threads} thread(s)")
            runs.append({"threads": threads, **bench_workload(network, device, dtype, populations, repeats, singles, say)})
        best = max(runs, key=lambda r: r["best_evals_per_s"])
        entry = dict(best)
        if len(runs) > 1:
            entry["by_threads"] = {str(r["threads"]): r for r in runs}
        report["results"][device.type][network] = entry
    results = report["results"][device.type]
    report["imported_vs_zoo"] = {
        name: {"zoo_layers": results[name]["layers"], "imported_layers": r["layers"],
               "best_evals_per_s_ratio": r["best_evals_per_s"] / results[name]["best_evals_per_s"]}
        for spec, r in results.items() if spec.startswith("torchvision:") and (name := spec.split(":", 1)[1]) in results
    }
    report["wall_s"] = time.perf_counter() - started

    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    print(f"bench_eval: {device} {args.dtype}, {m['cpu']} ({m['usable_cores']} cores, load {m['load_average_1m_at_start']}), torch {m['torch']} ({m['torch_threads']} threads)")
    for network, r in report["results"][device.type].items():
        print(f"\n{network}: {r['layers']} layers, {r['knobs']} knobs, {r['threads']} thread(s)")
        print(f"{'population':>10} {'median s':>10} {'evals/s':>14} {'model evals/s':>14} {'peak B/cand':>12}")
        for e in r["populations"]:
            peak = "" if e["peak_bytes_per_candidate"] is None else f"{e['peak_bytes_per_candidate']:,.0f}"
            print(f"{e['population']:>10} {e['median_s']:>10.4f} {e['evals_per_s']:>14,.0f} {e['model_evals_per_s']:>14,.0f} {peak:>12}")
        print(f"best {r['best_evals_per_s']:,.0f} evals/s at P={r['best_population']}; one at a time {r['one_at_a_time_evals_per_s']:,.0f} evals/s; speed-up {r['speedup_vs_one_at_a_time']:,.0f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
