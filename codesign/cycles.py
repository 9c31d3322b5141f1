"""``codesign cycles``: per-layer compute, stall and total cycles of a SCALE-Sim topology.

The layers of a SCALE-Sim topology CSV (:mod:`codesign.workload.scalesim`) run one at a time on
one ``H × W`` systolic array, each reading its operands from DRAM and writing its result back, as
SCALE-Sim runs them. The numbers come from :class:`~codesign.model.analytical.AnalyticalModel`,
the model the search evaluates, on a one-point design space built from the flags (or a SCALE-Sim
``.cfg``): one core, SRAM partitions of the given sizes, a 1 GHz clock so that a bandwidth in words
per cycle is ``words × word_bytes`` GB/s per operand channel, and an ample NoC.

Without ``--bandwidth`` (or with a CALC-mode config) memory never stalls: the output is SCALE-Sim's
CALC-mode answer. Without SRAM sizes the partitions default to SCALE-Sim's 256/256/128 kB.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from codesign.argtypes import positive_float, positive_int
from codesign.errors import UserError
from codesign.vocab import DATAFLOWS

#: SCALE-Sim's default SRAM partitions in kB (``scale_config.py``).
DEFAULT_SRAM_KB = (256, 256, 128)
COLUMNS = ("layer", "compute_cycles", "stall_cycles", "total_cycles", "utilization")


def add_cycles_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "cycles", help="per-layer cycles of a SCALE-Sim topology CSV on one systolic array",
        description="Per-layer compute, stall and total cycles of a SCALE-Sim topology CSV on one H×W systolic "
                    "array, from the same model the search uses.",
    )
    parser.add_argument("--topology", required=True, help="SCALE-Sim topology CSV (conv or GEMM form)")
    parser.add_argument("--config", help="SCALE-Sim .cfg for array, SRAM, dataflow and bandwidth (flags override it)")
    parser.add_argument("--array-h", type=positive_int, help="array height (rows of PEs)")
    parser.add_argument("--array-w", type=positive_int, help="array width (columns of PEs)")
    parser.add_argument("--dataflow", choices=DATAFLOWS, help="weight, output or input stationary")
    parser.add_argument("--ifmap-sram-kb", type=positive_int, help="ifmap SRAM in kB (default 256)")
    parser.add_argument("--filter-sram-kb", type=positive_int, help="filter SRAM in kB (default 256)")
    parser.add_argument("--ofmap-sram-kb", type=positive_int, help="ofmap SRAM in kB (default 128)")
    parser.add_argument("--bandwidth", type=positive_float,
                        help="DRAM bandwidth of each operand in words per cycle (default: ample, no stalls)")
    parser.add_argument("--word-bytes", type=int, choices=[1, 2, 4], default=1, help="bytes per word (default 1)")
    parser.add_argument("--gemm", action="store_true", help="read the topology as GEMMs (Layer, M, N, K) whatever its header")
    parser.add_argument("--format", choices=["csv", "json"], default="csv", help="output format (default csv)")
    return parser


@dataclass(frozen=True)
class CyclesSetup:
    """The one design point ``codesign cycles`` evaluates."""

    array_h: int
    array_w: int
    dataflow: str
    sram_kb: tuple[int, int, int]
    bandwidth: float | None  # words per cycle per operand; None: ample
    word_bytes: int = 1


def cycles_table(topology: str | Path, setup: CyclesSetup, *, form: str = "auto") -> list[dict]:
    """Per-layer rows ``{layer, compute_cycles, stall_cycles, total_cycles, utilization}`` of ``topology``.

    Evaluated with :class:`~codesign.model.analytical.AnalyticalModel` on a one-point design space;
    utilisation is MACs / (total cycles · H · W), SCALE-Sim's "overall utilisation" as a fraction.
    """
    import torch

    from codesign.model.analytical import AnalyticalModel
    from codesign.workload.scalesim import read_topology_layers

    entries = read_topology_layers(topology, form=form, precision_bytes=setup.word_bytes)
    total_kb = sum(setup.sram_kb)
    # 1 GHz: words/cycle × bytes/word = GB/s. No bandwidth: no memory time at all (CALC mode).
    gbps = math.inf if setup.bandwidth is None else setup.bandwidth * setup.word_bytes
    hardware = {
        "grid_rows": 1, "grid_cols": 1, "pe_rows": setup.array_h, "pe_cols": setup.array_w,
        "sram_kib": total_kb, "sram_split": [kb / total_kb for kb in setup.sram_kb],
        "dram_gbps": gbps, "noc_link_gbps": math.inf, "clock_ghz": 1.0, "dataflows": [setup.dataflow],
    }
    schedule = {"dataflow": [setup.dataflow], "mapping": "single_core", "granularity": "network"}
    model = AnalyticalModel.for_layers([entry.layer for entry in entries], hardware=hardware, schedule=schedule,
                                       name=f"scalesim:{topology}")
    candidates = model.space.decode(torch.zeros((1, 0), dtype=torch.long))
    layers = model.evaluate(candidates, detail=True).layers
    index = {name: i for i, name in enumerate(model.space.lowered.names)}
    pes = setup.array_h * setup.array_w
    rows = []
    for entry in entries:
        i = index[entry.name]
        compute = float(layers["compute_cycles"][0, i])
        total = float(layers["total_cycles"][0, i])
        rows.append({
            "layer": entry.name,
            "compute_cycles": int(round(compute)),
            "stall_cycles": int(round(total)) - int(round(compute)),
            "total_cycles": int(round(total)),
            "utilization": entry.layer.macs / (total * pes),
        })
    return rows


def _setup(args: argparse.Namespace) -> CyclesSetup:
    cfg = None
    if args.config:
        from codesign.workload.scalesim import read_config

        cfg = read_config(args.config)
    pick = lambda flag, key: flag if flag is not None else (getattr(cfg, key) if cfg else None)  # noqa: E731
    array_h, array_w, dataflow = pick(args.array_h, "array_h"), pick(args.array_w, "array_w"), pick(args.dataflow, "dataflow")
    missing = [name for name, value in (("--array-h", array_h), ("--array-w", array_w), ("--dataflow", dataflow)) if value is None]
    if missing:
        raise UserError(f"codesign cycles: {', '.join(missing)} required (or a --config that sets them)")
    sram = tuple(
        pick(flag, key) or default
        for flag, key, default in zip((args.ifmap_sram_kb, args.filter_sram_kb, args.ofmap_sram_kb),
                                      ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"), DEFAULT_SRAM_KB)
    )
    bandwidth = args.bandwidth if args.bandwidth is not None else (cfg.bandwidth if cfg else None)
    return CyclesSetup(array_h=array_h, array_w=array_w, dataflow=dataflow, sram_kb=sram, bandwidth=bandwidth,
                       word_bytes=args.word_bytes)


def format_rows(rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "utilization": f"{row['utilization']:.6g}"})
    return out.getvalue().rstrip("\n")


def run_cycles(args: argparse.Namespace) -> None:
    rows = cycles_table(args.topology, _setup(args), form="gemm" if args.gemm else "auto")
    sys.stdout.write(format_rows(rows, args.format) + "\n")
