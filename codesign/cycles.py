"""``codesign cycles``: per-layer compute, stall and total cycles of a SCALE-Sim topology.

(Placeholder wiring; the SCALE-Sim compatibility work fills this module in.)
"""

from __future__ import annotations

import argparse


def add_cycles_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("cycles", help="per-layer cycles of a SCALE-Sim topology CSV on one systolic array")
    return parser


def run_cycles(args: argparse.Namespace) -> None:
    raise SystemExit("codesign cycles: not available yet")
