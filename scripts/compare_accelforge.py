"""Energy per level against AccelForge: access counts and energy per memory level and tensor,
layer by layer on ResNet-18, from our model and from AccelForge 1.0.467 (Timeloop's pure-Python
successor) given our per-action energies and a fixed weight-stationary mapping that follows ours.

The core is the issue's TPU-like one: 16 nm, one 32 × 32 int8 weight-stationary array, 256 KiB of
SRAM (our ifmap / filter / ofmap partitions, ``sram_split``), LPDDR4. Every layer runs on its own
(``AnalyticalModel.for_layers``: operands from DRAM, result back to DRAM), batch 1.

    python scripts/compare_accelforge.py --write-setup   # data/accelforge/setup.json (main .venv)
    <side env>/bin/python data/accelforge/run_accelforge.py  # data/accelforge/accelforge_1.0.467.csv
    python scripts/compare_accelforge.py --json          # the comparison (main .venv, no AccelForge)

``--write-setup`` writes what AccelForge is given: the layers at their published shapes, the
per-action energies of our model (pJ per byte) and, per layer, where the mapping keeps each operand
(our model's decisions: whether the ifmap fits its partition, whether WS partial sums spill).
The comparison reads AccelForge's committed counts and prints, per level (DRAM, SRAM, register,
MAC) and tensor, our count and energy over AccelForge's, per layer and in total, with the median
and the worst layer. See README, "Energy per level against AccelForge".
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "accelforge"
SETUP = DATA / "setup.json"
RESULTS = DATA / "accelforge_1.0.467.csv"

#: The TPU-like core of issue 16 (one core, so one hop from the core to its DRAM port).
HARDWARE = {"grid_rows": 1, "grid_cols": 1, "pe_rows": 32, "pe_cols": 32, "sram_kib": 256, "node": "16nm",
            "dram_kind": "lpddr4", "dataflows": ["ws"]}
SCHEDULE = {"dataflow": ["ws"], "mapping": "single_core", "granularity": "network"}
TENSORS = ("input", "weight", "output")
LEVELS = ("dram", "sram", "register", "mac")
#: AccelForge's energies agree with its counts × our per-action energies to this relative error (its
#: own arithmetic: up to 4e-8 seen).
ENERGY_RTOL = 1e-6


def _model():
    from codesign.model.analytical import AnalyticalModel
    from codesign.workload.zoo import resnet18

    workload = resnet18(batch=1, precision_bytes=1)
    layers = [workload.nodes[name]["layer"] for name in workload.nodes]
    layers = [layer for layer in layers if not layer.is_vector]
    return AnalyticalModel.for_layers(layers, hardware=HARDWARE, schedule=SCHEDULE, name="resnet18"), layers


def ours() -> dict:
    """Our model's per-layer counts (bytes = int8 values) and energies (J) per level and tensor,
    from the formulas the search evaluates (``LayerFormulas.traffic`` / ``core_energy``), checked
    to sum to the model's own per-layer energy."""
    from codesign.hardware import cost as hwcost
    from codesign.hardware.tech import TECH_NODES
    from codesign.model.layer_costs import PJ
    from codesign.model.systolic import folds, sram_accesses

    model, layers = _model()
    c = model.space.decode(torch.zeros((1, 0), dtype=torch.long))
    f, lw = model.formulas, model.lw
    H, W, sram = c.pe_rows[:, None], c.pe_cols[:, None], c.sram_kib[:, None]
    df = c.dataflow
    inputs = f.inputs("batch")
    t = f.traffic(H, W, sram, df, **inputs, lanes=c.vector_lanes[:, None])
    m, n, k, g = inputs["m"], inputs["n"], lw.gemm_k, inputs["groups"]
    si, sf, so = (g * x for x in sram_accesses(m, n, k, H, W, df))
    macs = (g * m * n * k).expand_as(si)
    fills = t["fills"]
    tech = TECH_NODES[HARDWARE["node"]]
    e = energies_pj(tech, hwcost)
    per_tensor_sram = dict(zip(TENSORS, ("sram_input", "sram_weight", "sram_output")))
    rows = []
    row_folds, col_folds = folds(m, n, k, H, W, df)
    model_energy = model.layer_costs(c).energy_j[0]
    for i, layer in enumerate(layers):
        r = {"layer": layer.name, "mac": float(macs[0, i])}
        for j, tensor in enumerate(TENSORS):
            dram = float(fills[j][0, i])
            array = float((si, sf, so)[j][0, i])
            r[f"dram_{tensor}"] = dram
            r[f"sram_{tensor}"] = array + dram  # array reads/writes + DRAM fills/drains
            r[f"register_{tensor}"] = float(macs[0, i])  # one access per MAC per operand
        r["energy_mac"] = r["mac"] * e["mac"] * PJ
        r["energy_register"] = sum(r[f"register_{x}"] for x in TENSORS) * e["register"] * PJ
        r["energy_sram"] = sum(r[f"sram_{x}"] * e[per_tensor_sram[x]] for x in TENSORS) * PJ
        r["energy_dram"] = sum(r[f"dram_{x}"] for x in TENSORS) * e["dram"] * PJ
        total = sum(r[f"energy_{level}"] for level in LEVELS)
        if abs(total - float(model_energy[i])) > 1e-12 * float(model_energy[i]):
            raise AssertionError(f"{layer.name}: levels sum to {total} J, the model says {float(model_energy[i])} J")
        r["row_folds"], r["col_folds"] = int(row_folds[0, i]), int(col_folds[0, i])
        r["ifmap_refetched"] = bool(float(fills[0][0, i]) > float(lw.ifmap_bytes[i]))
        r["psum_spills"] = bool(float(fills[2][0, i]) > float(lw.ofmap_bytes[i]))
        rows.append(r)
    return {"energies_pj": e, "layers": rows, "shapes": [_shape(layer) for layer in layers]}


def energies_pj(tech, hwcost) -> dict:
    """Per-action energies of our model for the core, pJ per byte (one int8 value) or per MAC."""
    split = (0.4, 0.4, 0.2)  # the design file's default sram_split, the model's partitions
    sram = [float(hwcost.sram_energy_pj_per_byte(tech, torch.tensor(HARDWARE["sram_kib"] * s, dtype=torch.float64)))
            for s in split]
    return {
        "mac": tech.mac_energy_pj[1],
        "register": tech.reg_energy_pj_per_byte,
        "sram_input": sram[0], "sram_weight": sram[1], "sram_output": sram[2],
        # a DRAM byte also crosses one mesh hop from the core to its DRAM port (dram_hops = 1)
        "dram": tech.dram_energy_pj_per_byte[HARDWARE["dram_kind"]] + tech.noc_hop_energy_pj_per_byte,
        "sram_kib": [HARDWARE["sram_kib"] * s for s in split],
    }


def _shape(layer) -> dict:
    return {"name": layer.name, "op": layer.op, "K": layer.K, "C": layer.C, "P": layer.P, "Q": layer.Q, "R": layer.R,
            "S": layer.S, "stride": layer.stride, "input_rows": layer.input_rows, "input_cols": layer.input_cols}


def write_setup() -> None:
    o = ours()
    setup = {"hardware": HARDWARE, "energies_pj": o["energies_pj"],
             "layers": [dict(shape, row_folds=r["row_folds"], col_folds=r["col_folds"], ifmap_refetched=r["ifmap_refetched"],
                             psum_spills=r["psum_spills"]) for shape, r in zip(o["shapes"], o["layers"])]}
    DATA.mkdir(parents=True, exist_ok=True)
    SETUP.write_text(json.dumps(setup, indent=1) + "\n")
    print(f"wrote {SETUP.relative_to(ROOT)}")


def accelforge() -> dict:
    """AccelForge's committed counts and energies, per layer, by level and tensor (same keys as :func:`ours`)."""
    buffers = {"input": "InputBuffer", "weight": "WeightBuffer", "output": "OutputBuffer"}
    registers = {"input": "InputRegister", "weight": "Register", "output": "PsumRegister"}
    out = {}
    with open(RESULTS, newline="") as fh:
        for raw in csv.DictReader(fh):
            a = {key: float(value) for key, value in raw.items() if key != "layer"}
            both = lambda comp, t: a.get(f"actions_{comp}_{t}_read", 0.0) + a.get(f"actions_{comp}_{t}_write", 0.0)  # noqa: E731
            r = {"layer": raw["layer"], "mac": a["actions_MAC_none_compute"]}
            for t in TENSORS:
                r[f"dram_{t}"] = both("MainMemory", t)
                r[f"sram_{t}"] = both(buffers[t], t)
                r[f"register_{t}"] = both(registers[t], t)
            r["energy_mac"] = a["energy_MAC_j"]
            r["energy_dram"] = a["energy_MainMemory_j"]
            r["energy_sram"] = sum(a[f"energy_{b}_j"] for b in buffers.values())
            r["energy_register"] = sum(a[f"energy_{b}_j"] for b in registers.values())
            r["energy_total"] = a["energy_total_j"]
            r["psum_reads"] = a["actions_OutputBuffer_output_read"] - a["actions_MainMemory_output_write"]
            out[r["layer"]] = r
    return out


def loop_nest_row_folds(shape: dict) -> int:
    """Row folds of the mapping's loop nest: ``⌈C/32⌉ · R · S``, or ``⌈C/32⌉ · R`` when the window's
    columns share the rows with the channels (``C · S <= 32``, conv1). Ours packs the im2col window
    ``R·S·C`` onto the rows: ``⌈R·S·C/32⌉``."""
    c_folds = -(-shape["C"] // HARDWARE["pe_rows"])
    s_on_rows = shape["C"] * shape["S"] <= HARDWARE["pe_rows"] and shape["S"] > 1
    return c_folds * shape["R"] * (1 if s_on_rows else shape["S"])


#: The differences between the two models' counts, in the order :func:`explained` applies them.
DIFFERENCES = ("fold_packing", "psum_reads", "weight_fill", "idle_columns")


def explained(row: dict, shape: dict, e: dict, apply: tuple[str, ...] = DIFFERENCES) -> dict:
    """Our counts with the documented differences (README, "Energy per level against AccelForge")
    applied, to be compared with AccelForge's: with all four, every count is equal.

    1. ``fold_packing``: the loop nest's row folds (:func:`loop_nest_row_folds`) instead of our im2col
       folds: partial sums leave the array once per row fold (and spill to DRAM ``2·folds − 1`` times);
    2. ``psum_reads``: every row fold but the first reads the partial sums back before adding
       (read-modify-write, ``M·N·(folds − 1)``); ours counts SCALE-Sim's ofmap writes only;
    3. ``weight_fill``: loading a weight into its PE register is a register write (``K·N``);
    4. ``idle_columns``: in a column fold that is not full (fc: 1000 = 31·32 + 8 filters) every input
       still passes all 32 columns' input registers (``M·K·⌈N/W⌉·W`` passes).
    """
    x = dict(row)
    mn = shape["P"] * shape["Q"] * shape["K"]
    folds = loop_nest_row_folds(shape) if "fold_packing" in apply else row["row_folds"]
    x["dram_output"] = mn * (2 * folds - 1) if row["psum_spills"] else row["dram_output"]
    x["sram_output"] = mn * folds + (mn * (folds - 1) if "psum_reads" in apply else 0) + x["dram_output"]
    if "weight_fill" in apply:
        x["register_weight"] = row["register_weight"] + row["dram_weight"]
    if "idle_columns" in apply:
        m, k = shape["P"] * shape["Q"], shape["C"] * shape["R"] * shape["S"]
        x["register_input"] = m * k * row["col_folds"] * min(HARDWARE["pe_cols"], shape["K"])
    x["energy_sram"] = sum(x[f"sram_{t}"] * e[f"sram_{t}"] for t in TENSORS) * 1e-12
    x["energy_dram"] = sum(x[f"dram_{t}"] for t in TENSORS) * e["dram"] * 1e-12
    x["energy_register"] = sum(x[f"register_{t}"] for t in TENSORS) * e["register"] * 1e-12
    return x


def gap_by_difference(o: dict) -> dict:
    """How much of AccelForge's energy over ours each difference accounts for, per level, in J
    (applied one after the other in :data:`DIFFERENCES` order, summed over the layers)."""
    e = o["energies_pj"]
    out = {}
    for i, name in enumerate(DIFFERENCES):
        before, after = DIFFERENCES[:i], DIFFERENCES[:i + 1]
        out[name] = {lv: sum(explained(r, sh, e, after)[f"energy_{lv}"] - explained(r, sh, e, before)[f"energy_{lv}"]
                             for r, sh in zip(o["layers"], o["shapes"])) for lv in LEVELS}
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else (1.0 if a == 0 else float("inf"))


def _worst(ratios: dict) -> tuple[str, float]:
    """The layer whose ratio is farthest from 1 (either way)."""
    import math

    name = max(ratios, key=lambda k: abs(math.log(ratios[k])) if ratios[k] > 0 else float("inf"))
    return name, ratios[name]


def compare() -> dict:
    """Per layer and level (and tensor): our count and energy over AccelForge's; totals; median and
    worst layer per level; whether the documented differences account for every count exactly."""
    o = ours()
    af = accelforge()
    e = o["energies_pj"]
    keys = [f"{lv}_{t}" for lv in ("dram", "sram", "register") for t in TENSORS] + ["mac"]
    layers, totals = [], {"ours": {}, "accelforge": {}, "explained": {}}
    exact = {k: 0 for k in keys + [f"energy_{lv}" for lv in LEVELS]}
    for row, shape in zip(o["layers"], o["shapes"]):
        a = af[row["layer"]]
        x = explained(row, shape, e)
        entry = {"layer": row["layer"], "counts": {}, "energy": {}}
        for k in keys:
            entry["counts"][k] = {"ours": row[k], "accelforge": a[k], "ratio": _ratio(row[k], a[k])}
            exact[k] += x[k] == a[k]
        for lv in LEVELS:
            ek = f"energy_{lv}"
            entry["energy"][lv] = {"ours_j": row[ek], "accelforge_j": a[ek], "ratio": _ratio(row[ek], a[ek]),
                                   "explained_ratio": _ratio(x[ek], a[ek])}
            exact[ek] += abs(x[ek] - a[ek]) <= ENERGY_RTOL * a[ek]
        for k in keys + [f"energy_{lv}" for lv in LEVELS]:
            for side, src in (("ours", row), ("accelforge", a), ("explained", x)):
                totals[side][k] = totals[side].get(k, 0.0) + src[k]
        entry["energy_total"] = {"ours_j": sum(row[f"energy_{lv}"] for lv in LEVELS), "accelforge_j": a["energy_total"]}
        entry["energy_total"]["ratio"] = _ratio(entry["energy_total"]["ours_j"], a["energy_total"])
        layers.append(entry)
    summary = {}
    for lv in LEVELS:
        ratios = {ly["layer"]: ly["energy"][lv]["ratio"] for ly in layers}
        name, worst = _worst(ratios)
        summary[f"energy_{lv}"] = {"total_ratio": _ratio(totals["ours"][f"energy_{lv}"], totals["accelforge"][f"energy_{lv}"]),
                                   "median": statistics.median(ratios.values()), "worst": worst, "worst_layer": name}
    for k in keys:
        ratios = {ly["layer"]: ly["counts"][k]["ratio"] for ly in layers}
        name, worst = _worst(ratios)
        summary[k] = {"total_ratio": _ratio(totals["ours"][k], totals["accelforge"][k]),
                      "median": statistics.median(ratios.values()), "worst": worst, "worst_layer": name,
                      "layers_exact": sum(ly["counts"][k]["ours"] == ly["counts"][k]["accelforge"] for ly in layers)}
    ours_total = sum(totals["ours"][f"energy_{lv}"] for lv in LEVELS)
    af_total = sum(totals["accelforge"][f"energy_{lv}"] for lv in LEVELS)
    summary["energy_total"] = {"ours_j": ours_total, "accelforge_j": af_total, "ratio": ours_total / af_total}
    versions = json.loads((DATA / "versions.json").read_text())
    return {"accelforge": versions, "hardware": HARDWARE, "energies_pj": e, "n_layers": len(layers),
            "summary": summary, "gap_by_difference_j": gap_by_difference(o), "explained_exact": exact, "totals": totals, "layers": layers}


def markdown(result: dict) -> str:
    """The README's table: per level, our energy and count over AccelForge's (total, median, worst layer)."""
    s = result["summary"]
    n = result["n_layers"]
    names = {"dram": "DRAM", "sram": "SRAM (ifmap, filter, ofmap buffers)", "register": "PE registers", "mac": "MAC"}
    lines = ["| level | ours (µJ) | AccelForge (µJ) | energy ours / AccelForge: total, median, worst layer | "
             "counts equal AccelForge's (layers of " + str(n) + "), per tensor: input, weight, output | "
             "equal after the four differences below |",
             "|---|---:|---:|---|---|---|"]
    for lv in LEVELS:
        es = s[f"energy_{lv}"]
        ours_j = result["totals"]["ours"][f"energy_{lv}"]
        af_j = result["totals"]["accelforge"][f"energy_{lv}"]
        if lv == "mac":
            counts = f"{s['mac']['layers_exact']}"
            after = f"{result['explained_exact']['mac']}"
        else:
            counts = ", ".join(str(s[f"{lv}_{t}"]["layers_exact"]) for t in TENSORS)
            after = ", ".join(str(result["explained_exact"][f"{lv}_{t}"]) for t in TENSORS)
        lines.append(f"| {names[lv]} | {ours_j * 1e6:,.1f} | {af_j * 1e6:,.1f} | {es['total_ratio']:.3f}, "
                     f"{es['median']:.3f}, " + (f"{es['worst']:.3f} ({es['worst_layer']})" if es["worst"] != 1.0 else "1.000 (every layer)")
                     + f" | {counts} | {after} |")
    t = s["energy_total"]
    lines.append(f"| **total** | {t['ours_j'] * 1e6:,.1f} | {t['accelforge_j'] * 1e6:,.1f} | {t['ratio']:.3f} | | |")
    gap = result["gap_by_difference_j"]
    lines += ["", "| difference (applied to our counts in this order) | DRAM (µJ) | SRAM (µJ) | PE registers (µJ) |",
              "|---|---:|---:|---:|"]
    for name, label in zip(DIFFERENCES, ("1. fold packing (conv1)", "2. partial-sum reads", "3. stationary-weight fill",
                                         "4. idle columns (fc)")):
        lines.append(f"| {label} | {gap[name]['dram'] * 1e6:+,.3f} | {gap[name]['sram'] * 1e6:+,.3f} | "
                     f"{gap[name]['register'] * 1e6:+,.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-setup", action="store_true", help="write data/accelforge/setup.json and stop")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    args = parser.parse_args(argv)
    if args.write_setup:
        write_setup()
        return 0
    result = compare()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
