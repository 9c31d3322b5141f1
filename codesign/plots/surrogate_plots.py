"""The learned surrogate's accuracy plot: predicted against oracle cycles, one panel per layer type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter

from codesign.plots._style import FRONT_COLOR, TRIAL_COLOR, plt, save_figure


def plot_predicted_vs_oracle(oracle: np.ndarray, predicted: np.ndarray, analytical: np.ndarray, types: np.ndarray, path, *, title: str,
                             layer_types: tuple[str, ...]) -> Path:
    """Log-log scatter of predicted (and analytical) against oracle cycles, one panel per layer type."""
    present = [t for t in layer_types if (types == t).any()]
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 4.2), squeeze=False)
    for ax, t in zip(axes[0], present):
        m = (types == t) & np.isfinite(predicted)
        lo = min(oracle[m].min(), predicted[m].min(), analytical[m].min()) / 1.5
        hi = max(oracle[m].max(), predicted[m].max(), analytical[m].max()) * 1.5
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--", label="y = x")
        ax.scatter(oracle[m], analytical[m], s=14, color=TRIAL_COLOR, alpha=0.6, marker="x", label="analytical")
        ax.scatter(oracle[m], predicted[m], s=16, color=FRONT_COLOR, alpha=0.85, label="analytical + learned")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        e = np.median(np.abs(predicted[m] / oracle[m] - 1)) * 100
        ea = np.median(np.abs(analytical[m] / oracle[m] - 1)) * 100
        ax.set_title(f"{t}: {int(m.sum())} rows\nmedian |err| {e:.1f} % (analytical {ea:.1f} %)", fontsize=9)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("oracle total cycles")
        ax.set_ylabel("predicted total cycles")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10, y=1.04)
    return save_figure(fig, path)
