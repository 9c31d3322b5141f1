#!/usr/bin/env python
"""Decode GEMVs against SCALE-Sim 3.0.0: the layers of an LLM decode step, layer by layer.

A decode step's layers are GEMMs of ``M = batch`` rows (projections, MLP, LM head) or ``M = g``
rows (the attention products, one GEMM per sequence and key-value head). Each distinct GEMM of
Llama-3.2-1B's decode block (the LM head aside; a few batches, 512 positions of context) is run through SCALE-Sim on a
few arrays and all three dataflows, and through the analytical model on the same hardware
(``AnalyticalModel.for_layers``, the path of ``codesign cycles``); compute cycles should agree
exactly, as for the other layers (``data/scalesim/validation.md``), and the total cycles'
errors are reported.

SCALE-Sim runs in its own interpreter (``numpy<2.3``)::

    python3 -m venv /tmp/scalesim-venv && /tmp/scalesim-venv/bin/pip install scalesim==3.0.0 "numpy<2.3"
    CODESIGN_SCALESIM_PYTHON=/tmp/scalesim-venv/bin/python .venv/bin/python scripts/validate_llm_gemv.py --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.model.analytical import AnalyticalModel  # noqa: E402
from codesign.oracles.jobs import LayerJob  # noqa: E402
from codesign.oracles.scalesim import ScaleSimOracle  # noqa: E402
from codesign.workload.hf_config import read_config  # noqa: E402
from codesign.workload.layer import Layer  # noqa: E402
from codesign.workload.llm_phases import llm_workload  # noqa: E402

SRAM_KB = (100, 100, 50)  # ifmap, filter, ofmap KiB (whole kB of words at int8, as SCALE-Sim takes them)
BANDWIDTH = 16  # words (bytes) per cycle
ARRAYS = ((16, 16), (32, 32), (64, 8))
DATAFLOWS = ("ws", "os", "is")


#: The layers checked by default (the K/V projection and the attention products: every GEMV shape the
#: step has, a few seconds of SCALE-Sim each); ``--all`` adds q, o, the MLP (a minute or more each).
QUICK = ("k", "scores", "context")


def decode_gemms(batches=(1, 4), context: int = 512, names=QUICK) -> list[tuple[str, int, int, int]]:
    """Distinct ``(name, M, N, K)`` GEMMs of the decode step's layers (one GEMM of each layer named in ``names``,
    or of every layer when ``names`` is None)."""
    seen, out = set(), []
    for batch in batches:
        w = llm_workload(read_config("llama3_2_1b"), batch=batch, precision_bytes=1, phase="decode", context=context)
        for layer in w.layers:
            gemm = (layer.gemm_m, layer.gemm_n, layer.gemm_k)
            # one block's layers (the LM head's 128256-column GEMV takes SCALE-Sim too long to trace)
            short = layer.name.removeprefix("layers.0.")
            if gemm not in seen and layer.name.startswith("layers.0.") and (names is None or short in names):
                seen.add(gemm)
                out.append((f"B{batch}.{short}", *gemm))
    return out


def ours(gemms, h: int, w: int, dataflow: str) -> list[tuple[float, float]]:
    """Compute and total cycles of each GEMM, run alone, by the analytical model."""
    layers = [Layer(f"g{i}", "fc", N=1, K=n, C=k, P=m) for i, (_, m, n, k) in enumerate(gemms)]
    total = sum(SRAM_KB)
    hardware = {"pe_rows": h, "pe_cols": w, "sram_kib": total, "sram_split": [kb / total for kb in SRAM_KB],
                "dram_gbps": float(BANDWIDTH), "noc_link_gbps": float("inf"), "clock_ghz": 1.0, "dataflows": [dataflow]}
    model = AnalyticalModel.for_layers(layers, hardware=hardware, schedule={"dataflow": [dataflow], "mapping": "single_core"})
    detail = model.evaluate(model.space.decode(torch.zeros((1, 0), dtype=torch.long)), detail=True).layers
    index = {name: i for i, name in enumerate(model.space.lowered.names)}
    return [(float(detail["compute_cycles"][0, index[f"g{i}"]]), float(detail["total_cycles"][0, index[f"g{i}"]]))
            for i in range(len(gemms))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--python", help="SCALE-Sim's interpreter (default: $CODESIGN_SCALESIM_PYTHON)")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per SCALE-Sim run")
    parser.add_argument("--all", action="store_true", help="every layer of a block, not only k, scores and context")
    args = parser.parse_args()
    oracle = ScaleSimOracle(python=args.python, timeout_s=args.timeout_s, cache_dir=Path("/tmp/codesign-llm-gemv-cache"))
    gemms = decode_gemms(names=None if args.all else QUICK)
    rows, start = [], time.perf_counter()
    for (h, w) in ARRAYS:
        for dataflow in DATAFLOWS:
            hw = dict(array_h=h, array_w=w, dataflow=dataflow, ifmap_sram_bytes=SRAM_KB[0] * 1024.0,
                      filter_sram_bytes=SRAM_KB[1] * 1024.0, ofmap_sram_bytes=SRAM_KB[2] * 1024.0, bandwidth=float(BANDWIDTH))
            sim = oracle.run([LayerJob.gemm(m, n, k, **hw) for _, m, n, k in gemms])
            for (name, m, n, k), (compute, total), result in zip(gemms, ours(gemms, h, w, dataflow), sim):
                rows.append({"gemm": name, "M": m, "N": n, "K": k, "array": f"{h}x{w}", "dataflow": dataflow,
                             "compute_ours": compute, "compute_scalesim": result.compute_cycles,
                             "total_ours": total, "total_scalesim": result.total_cycles,
                             "total_error": (total - result.total_cycles) / result.total_cycles})
    errors = [abs(r["total_error"]) for r in rows]
    summary = {"runs": len(rows), "compute_exact": sum(r["compute_ours"] == r["compute_scalesim"] for r in rows),
               "total_abs_error_median": statistics.median(errors), "total_abs_error_max": max(errors),
               "wall_s": time.perf_counter() - start, "sram_kb": SRAM_KB, "bandwidth_words_per_cycle": BANDWIDTH}
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}, indent=1))
        return
    for r in rows:
        print(f"{r['gemm']:16s} {r['M']:4d}x{r['N']:6d}x{r['K']:5d} {r['array']:6s} {r['dataflow']}  compute "
              f"{r['compute_ours']:>10.0f} / {r['compute_scalesim']:>10.0f}  total {r['total_ours']:>10.0f} / "
              f"{r['total_scalesim']:>10.0f} ({r['total_error']:+.1%})")
    print(summary)


if __name__ == "__main__":
    main()
