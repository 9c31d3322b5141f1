"""Energy by component (``front.csv``'s ``energy_*_j`` columns, ``codesign show``'s one design): a
stacked bar per design, one segment per component of :data:`codesign.vocab.ENERGY_PARTS`, in joules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from codesign.plots._style import check_path, closing_on_error, plt, save_figure
from codesign.vocab import ENERGY_COLUMNS, ENERGY_PARTS

__all__ = ["plot_energy_parts"]

# Okabe-Ito colours and greys, one per part (in ENERGY_PARTS order); SRAM partitions share a hue.
PART_COLORS = ("#0072B2", "#56B4E9", "#009E73", "#33B98F", "#66CCA8", "#F0E442", "#E69F00", "#CC79A7", "#D55E00", "#999999")
PART_LABELS = {"mac": "MACs", "rf": "register file", "sram_ifmap": "SRAM (ifmap)", "sram_filter": "SRAM (filter)",
               "sram_ofmap": "SRAM (ofmap)", "vector": "vector unit", "noc": "NoC", "d2d": "die-to-die", "dram": "DRAM",
               "leakage": "leakage"}


def plot_energy_parts(frame: pd.DataFrame, path, *, labels: list[str] | None = None, title: str | None = None) -> Path:
    """Draw one stacked bar per row of ``frame`` (its :data:`~codesign.vocab.ENERGY_COLUMNS`, joules) to
    the PNG ``path``; ``labels`` name the bars (default: the ``trial`` column, else the row numbers).
    Parts that are zero in every row are left out of the legend. A frame without rows draws an
    empty chart that says so."""
    path = check_path(path)
    missing = [c for c in ENERGY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame: no energy columns {missing}")
    if labels is None:
        labels = [f"trial {int(t)}" for t in frame["trial"]] if "trial" in frame.columns else [str(i) for i in range(len(frame))]
    values = frame[list(ENERGY_COLUMNS)].to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, min(24.0, 0.45 * len(frame) + 3)), 4.5))
    with closing_on_error(fig):
        x = np.arange(len(frame))
        bottom = np.zeros(len(frame))
        for i, (part, color) in enumerate(zip(ENERGY_PARTS, PART_COLORS)):
            if len(frame) and not (values[:, i] > 0).any():
                continue
            ax.bar(x, values[:, i], bottom=bottom, color=color, label=PART_LABELS[part], width=0.7)
            bottom = bottom + values[:, i]
        ax.set_xticks(x, labels, rotation=60 if len(frame) > 6 else 0, ha="right" if len(frame) > 6 else "center", fontsize=8)
        ax.set_ylabel("energy per run (J)")
        if not len(frame):
            ax.text(0.5, 0.5, "no designs", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title(title or "Energy by component")
        ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
