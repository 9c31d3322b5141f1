"""AccelForge 1.0.467 on the TPU-like core of issue 16, ResNet-18 layer by layer, with our per-action
energies and a fixed weight-stationary mapping that follows our model's (no mapper search).

Reads ``setup.json`` (written by ``scripts/compare_accelforge.py --write-setup`` in the main
environment: the layers, our per-action energies, our model's per-layer decisions), writes the
architecture (``yaml/arch.yaml``), one workload + mapping file per layer (``yaml/<layer>.yaml``) and
the results (``accelforge_1.0.467.csv``: AccelForge's action counts per component and tensor, and its
energy per component), all next to this file. Run in a side environment (AccelForge needs
Python >= 3.12):

    ~/.pyenv/versions/3.12.1/bin/python -m venv /tmp/side_af
    /tmp/side_af/bin/pip install accelforge==1.0.467
    /tmp/side_af/bin/python data/accelforge/run_accelforge.py

The mapping, per layer (K output channels ``m``, C input channels ``c``, R × S window, P × Q outputs):

    MainMemory: input, weight, output
    [InputBuffer: input]      here if the ifmap fits its partition (fetched once) ...
    for m in K/32                                        (column folds)
    [InputBuffer: input]      ... else here (fetched again every column fold, as ours)
    [OutputBuffer: output]    here if WS partial sums fit the ofmap partition ...
    for c in C/32; for r in R; for s in S                (row folds)
    [OutputBuffer: output]    ... else here (partial sums out and back every row fold, as ours)
    WeightBuffer: weight      (a 32 x 32 tile per fold: every weight fetched once)
    spatial m 32 over the columns (an input is multicast along a row)
    spatial c 32 over the rows (partial sums reduce down a column)
    Register: weight          (the stationary weight)
    for p in P; for q in Q    (the streamed ifmap)
    MAC
"""

from __future__ import annotations

import csv
import json
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import accelforge as af

HERE = Path(__file__).resolve().parent
ARRAY = 32

ARCH = """\
# The TPU-like core of issue 16 with codesign's per-action energies (pJ per int8 value, per MAC):
# written by run_accelforge.py from setup.json. Our SRAM is three partitions (ifmap, filter,
# ofmap: sram_split 0.4 / 0.4 / 0.2 of 256 KiB) with the per-byte energy of each partition's
# size; DRAM is LPDDR4 plus the one mesh hop from the core to its DRAM port. Buffer sizes are not
# enforced (inf): the mapping is our model's, which streams an operand that does not fit through
# its partition (SCALE-Sim's memory system) and fetches it again, and that decision is in the
# mapping (where each buffer's storage node sits), not left to a capacity check.
arch:
  nodes:
  - !Memory
    name: MainMemory
    size: inf
    leak_power: 0
    area: 0
    tensors: {{keep: All, may_keep: All}}
    actions:
    - {{name: read, energy: {dram}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: {dram}e-12, bits_per_action: 8, throughput: inf}}
  - !Memory
    name: InputBuffer
    size: inf
    leak_power: 0
    area: 0
    tensors: {{keep: input, may_keep: input}}
    actions:
    - {{name: read, energy: {sram_input}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: {sram_input}e-12, bits_per_action: 8, throughput: inf}}
  - !Memory
    name: WeightBuffer
    size: inf
    leak_power: 0
    area: 0
    tensors: {{keep: weight, may_keep: weight}}
    actions:
    - {{name: read, energy: {sram_weight}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: {sram_weight}e-12, bits_per_action: 8, throughput: inf}}
  - !Memory
    name: OutputBuffer
    size: inf
    leak_power: 0
    area: 0
    tensors: {{keep: output, may_keep: output}}
    actions:
    - {{name: read, energy: {sram_output}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: {sram_output}e-12, bits_per_action: 8, throughput: inf}}
  - !Container
    name: PE
    spatial:
    - {{name: reuse_input, fanout: {array}, may_reuse: input}}
    - {{name: reuse_output, fanout: {array}, may_reuse: output}}
  - !Memory
    name: Register
    size: 8
    leak_power: 0
    area: 0
    tensors: {{keep: weight, may_keep: weight}}
    actions:
    - {{name: read, energy: {register}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: {register}e-12, bits_per_action: 8, throughput: inf}}
  # The systolic array's forwarding registers: every input value passes the input register of
  # each PE it meets, every partial sum the PE's psum register on its way down the column.
  - !Toll
    name: InputRegister
    direction: down
    leak_power: 0
    area: 0
    tensors: {{keep: input, may_keep: input}}
    actions:
    - {{name: read, energy: {register}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: 0, bits_per_action: 8, throughput: inf}}
  - !Toll
    name: PsumRegister
    direction: up
    leak_power: 0
    area: 0
    tensors: {{keep: output, may_keep: output}}
    actions:
    - {{name: read, energy: {register}e-12, bits_per_action: 8, throughput: inf}}
    - {{name: write, energy: 0, bits_per_action: 8, throughput: inf}}
  - !Compute
    name: MAC
    leak_power: 0
    area: 0
    actions:
    - {{name: compute, energy: {mac}e-12, throughput: 1}}
"""


def workload_yaml(layer: dict) -> str:
    """The layer as one Einsum, inputs at the padded extent ``(P - 1)·stride + R`` as AccelForge's
    bundled ResNet-18 writes them (``H: p * stride + r``)."""
    s = layer["stride"]
    h = f"p * {s} + r" if s > 1 else "p + r"
    w = f"q * {s} + s" if s > 1 else "q + s"
    bounds = {"n": 1, "m": layer["K"], "c": layer["C"], "p": layer["P"], "q": layer["Q"], "r": layer["R"], "s": layer["S"]}
    shape = "\n".join(f"    - 0 <= {v} < {b}" for v, b in bounds.items())
    return f"""workload:
  bits_per_value: {{All: 8}}
  einsums:
  - einsum: "O[n, m, p, q] = I[n, c, H: {h}, W: {w}] * Wt[r, s, c, m]"
    iteration_space_shape:
{shape}
    renames: {{output: O, input: I, weight: Wt}}
"""


def mapping_yaml(layer: dict) -> str:

    def storage(component, tensor):
        return f"  - !Storage\n    component: {component}\n    tensors: [{tensor}]\n"

    def temporal(var, tile):
        return f"  - !Temporal\n    rank_variable: {var}\n    tile_shape: {tile}\n"

    def spatial(var, dim):
        return f"  - !Spatial\n    rank_variable: {var}\n    tile_shape: 1\n    component: PE\n    name: {dim}\n"

    m_tile, c_tile = min(ARRAY, layer["K"]), min(ARRAY, layer["C"])
    nodes = storage("MainMemory", "I") + storage("MainMemory", "Wt") + storage("MainMemory", "O")
    if not layer["ifmap_refetched"]:
        nodes += storage("InputBuffer", "I")
    nodes += temporal("m", m_tile)
    if layer["ifmap_refetched"]:
        nodes += storage("InputBuffer", "I")
    if not layer["psum_spills"]:
        nodes += storage("OutputBuffer", "O")
    # C < 32 (conv1: 3 channels): the window's columns join the channels on the rows (C·S <= 32),
    # as far as a loop nest can pack an im2col window onto the rows
    s_on_rows = layer["C"] * layer["S"] <= ARRAY and layer["S"] > 1
    nodes += temporal("c", c_tile) + temporal("r", 1) + ("" if s_on_rows else temporal("s", 1))
    if layer["psum_spills"]:
        nodes += storage("OutputBuffer", "O")
    nodes += storage("WeightBuffer", "Wt")
    nodes += spatial("m", "reuse_input") + spatial("c", "reuse_output")
    if s_on_rows:
        nodes += spatial("s", "reuse_output")
    nodes += storage("Register", "Wt")
    nodes += temporal("p", 1) + temporal("q", 1)
    nodes += "  - !Toll\n    component: InputRegister\n    tensors: [I]\n"
    nodes += "  - !Toll\n    component: PsumRegister\n    tensors: [O]\n"
    nodes += "  - !Compute\n    einsum: O\n    component: MAC\n"
    return "mapping:\n  nodes:\n" + nodes


def run_layer(arch: Path, layer: dict) -> tuple[dict, float]:
    path = HERE / "yaml" / f"{layer['name']}.yaml"
    path.write_text(workload_yaml(layer) + mapping_yaml(layer))
    started = time.perf_counter()
    spec = af.Spec.from_yaml(arch, path)
    result = spec.evaluate_mapping()
    wall = time.perf_counter() - started
    row = {"layer": layer["name"]}
    tensor_of = {"I": "input", "Wt": "weight", "O": "output"}
    for (component, tensor, action), count in result.actions(per_component=True, per_tensor=True).items():
        label = tensor_of.get(tensor, "none")
        row[f"actions_{component}_{label}_{action}"] = float(count)
    for component, energy in result.energy(per_component=True).items():
        row[f"energy_{component}_j"] = float(energy)
    row["energy_total_j"] = float(result.energy())
    row["latency"] = float(result.latency())
    row["wall_s"] = wall
    return row, wall


def main() -> int:
    setup = json.loads((HERE / "setup.json").read_text())
    e = setup["energies_pj"]
    (HERE / "yaml").mkdir(exist_ok=True)
    arch = HERE / "yaml" / "arch.yaml"
    arch.write_text(ARCH.format(array=ARRAY, **{k: repr(v) for k, v in e.items() if k != "sram_kib"}))
    only = set(sys.argv[1:])
    rows = []
    for layer in setup["layers"]:
        if only and layer["name"] not in only:
            continue
        row, wall = run_layer(arch, layer)
        rows.append(row)
        print(f"{layer['name']}: {row['energy_total_j'] * 1e6:.2f} uJ, {wall:.2f} s", flush=True)
    if only:
        for row in rows:
            print(json.dumps(row, indent=1))
        return 0
    columns = sorted({key for row in rows for key in row} - {"layer"})
    with open(HERE / "accelforge_1.0.467.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["layer", *columns], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, 0.0) for key in ["layer", *columns]})
    meta = {"accelforge": version("accelforge"), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": platform.machine()}
    (HERE / "versions.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
