#!/usr/bin/env python
"""Technology tables generated with hwcomponents (the Accelergy project's component library),
committed under data/hwcomponents/ and read by ``hardware.tech = "cacti"``
(:mod:`codesign.hardware.tech_tables`).

hwcomponents needs Python >= 3.12 and CACTI's licence is not an open-source one, so the
library is a table generator in a side environment, never a runtime dependency of codesign.
The tables were made with:

    ~/.pyenv/versions/3.12.1/bin/python -m venv /tmp/side_hwc
    /tmp/side_hwc/bin/pip install hwcomponents==1.0.114 hwcomponents-cacti==1.0.40 \\
        hwcomponents-library==1.0.58 hwcomponents-neurosim==1.0.43
    # the bundled CACTI binary needs a newer C library than Debian 12's: rebuild it from its source
    make -C /tmp/side_hwc/lib/python3.12/site-packages/hwcomponents_cacti/cacti opt
    /tmp/side_hwc/bin/python scripts/make_tech_tables.py --out data/hwcomponents      # 5-15 minutes

(``hwcomponents_library`` imports only with ``hwcomponents-neurosim`` installed.) The side-by-side
table of docs/model.md ("Technology sources side by side") is printed from the committed CSVs, in
codesign's own environment (no hwcomponents needed):

    .venv/bin/python scripts/make_tech_tables.py --markdown

data/hwcomponents/README.md says what every column means.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

#: The nodes codesign.hardware.tech knows, in nm (tests/test_tech_tables.py checks the CSVs cover them).
NODES_NM = (45, 28, 16, 7, 5)
#: SRAM sizes, KiB: 1 KiB to 64 MiB in powers of two. The model reads the table at every buffer's
#: size (sram_kib × its sram_split share), so the range spans the designs' smallest (32 KiB × 0.2)
#: and largest (32 MiB × 0.4) buffers.
SRAM_KIB = tuple(2**i for i in range(17))
#: SRAM port widths, bits.
SRAM_WIDTH_BITS = (64, 128, 256, 512)
#: Integer MACs (multiplier bits, adder bits): an adder of the operand width (Horowitz's
#: convention, as the built-in tables) and an int8 MAC with a 32-bit accumulator.
MACS = {"int8": (8, 8), "int8_acc32": (8, 32), "int16": (16, 16), "int32": (32, 32)}
ADDERS = {"int8": 8, "int16": 16, "int32": 32}
NOC_WIRE_MM = 1.0  # one mesh hop's link, as the built-in NoC hop energy (router + ~1 mm of wire)

SRAM_COLUMNS = ("node_nm", "size_kib", "width_bits", "read_pj", "write_pj", "read_pj_per_byte", "write_pj_per_byte",
                "area_mm2", "leakage_mw", "cycle_ns")
COMPONENT_COLUMNS = ("node_nm", "component", "variant", "energy_pj", "per", "area_um2", "leakage_uw", "model")


def _sram_rows(kib: int, width: int) -> list[dict]:
    """One size and port width at every node (all nodes in a row: hwcomponents keeps only its last
    ~60 CACTI results, and every node below 22 nm reuses the 22 nm run)."""
    from hwcomponents_cacti import SRAM

    rows = []
    for node_nm in NODES_NM:
        sram = SRAM(tech_node=node_nm * 1e-9, width=width, size=kib * 1024 * 8)
        read, write = sram.read().energy * 1e12, sram.write().energy * 1e12
        rows.append(dict(node_nm=node_nm, size_kib=kib, width_bits=width, read_pj=read, write_pj=write,
                         read_pj_per_byte=read / (width / 8), write_pj_per_byte=write / (width / 8),
                         area_mm2=sram.area * 1e6, leakage_mw=sram.leak_power * 1e3, cycle_ns=sram.cycle_period * 1e9))
    return rows


def _component_rows(node_nm: int) -> list[dict]:
    from hwcomponents_cacti import DDR3, HBM2, LPDDR4
    from hwcomponents_library import AladdinAdder, AladdinIntMAC, AladdinRegister, IsaacRouter
    from hwcomponents_library.library.misc import Wire

    m = node_nm * 1e-9
    rows = []

    def add(component, variant, energy_j, per, model, area_m2=0.0, leak_w=0.0):
        rows.append(dict(node_nm=node_nm, component=component, variant=variant, energy_pj=energy_j * 1e12, per=per,
                         area_um2=area_m2 * 1e12, leakage_uw=leak_w * 1e6, model=model))

    for name, (mult, adder) in MACS.items():
        mac = AladdinIntMAC(m, adder_width=adder, multiplier_width=mult)
        add("mac", name, mac.mac().energy, "op", "AladdinIntMAC", mac.area, mac.leak_power)
    for name, width in ADDERS.items():
        adder = AladdinAdder(m, width)
        add("add", name, adder.add().energy, "op", "AladdinAdder", adder.area, adder.leak_power)
    reg = AladdinRegister(m, width=8)
    add("register", "read", reg.read().energy, "byte", "AladdinRegister", reg.area, reg.leak_power)
    router = IsaacRouter(m, width=256)
    router_bit = router.transfer().energy / 256
    add("router", "transfer", router_bit, "bit", "IsaacRouter", router.area, router.leak_power)
    wire = Wire(NOC_WIRE_MM * 1e-3, m)
    wire_bit = wire.switch([0.5, 0.5]).energy  # a random bit: toggles half the time
    add("wire_1mm", "switch", wire_bit, "bit", "Wire")
    add("noc_hop", "router+wire_1mm", router_bit + wire_bit, "bit", "IsaacRouter+Wire")
    for dram, cls, width in (("lpddr4", LPDDR4, 64), ("hbm2", HBM2, 2048), ("ddr3", DDR3, 64)):
        add("dram", dram, cls(width=width).read().energy / width, "bit", cls.__name__)
    return rows


def _write(path: Path, columns: tuple, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    components = [row for node_nm in NODES_NM for row in _component_rows(node_nm)]
    _write(out / "components.csv", COMPONENT_COLUMNS, components)
    sram, start = [], time.perf_counter()
    for kib in SRAM_KIB:
        for width in SRAM_WIDTH_BITS:
            sram += _sram_rows(kib, width)
        print(f"SRAM {kib} KiB: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    sram.sort(key=lambda r: (-r["node_nm"], r["size_kib"], r["width_bits"]))
    _write(out / "sram.csv", SRAM_COLUMNS, sram)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="generate the CSV tables into this folder (side environment)")
    group.add_argument("--markdown", action="store_true", help="print docs/model.md's side-by-side table from the CSVs")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from codesign.hardware.tech_tables import comparison_markdown

        print(comparison_markdown())
    else:
        generate(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
