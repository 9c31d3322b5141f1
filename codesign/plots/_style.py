"""Shared plotting plumbing: the Agg backend, figure saving and the colour scheme."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, deterministic PNG output

import matplotlib.pyplot as plt  # noqa: E402

__all__ = [
    "plt", "save_figure", "check_path", "closing_on_error", "DATAFLOW_COLORS", "DATAFLOW_NAMES", "dataflow_color",
    "TRIAL_COLOR", "INFEASIBLE_COLOR", "FRONT_COLOR", "KNEE_COLOR", "BUDGET_COLOR",
]

# Okabe-Ito colours (colour-blind safe).
DATAFLOW_COLORS = {"ws": "#0072B2", "os": "#E69F00", "is": "#009E73"}
OTHER_DATAFLOW_COLOR = "#999999"
TRIAL_COLOR = "0.55"
INFEASIBLE_COLOR = "#D55E00"
FRONT_COLOR = "#0072B2"
KNEE_COLOR = "#F0E442"
BUDGET_COLOR = "#CC79A7"  # budgets (constraints) drawn as lines

DATAFLOW_NAMES = {"ws": "weight stationary", "os": "output stationary", "is": "input stationary"}


def dataflow_color(dataflow) -> str:
    """Colour of a dataflow tag (``"ws"``/``"os"``/``"is"``; anything else is grey)."""
    return DATAFLOW_COLORS.get(str(dataflow).lower(), OTHER_DATAFLOW_COLOR)


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent folders created), close it, return the path."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def check_path(path) -> Path:
    """``path`` as a :class:`Path`; raises ``ValueError`` when it is not path-like or is empty."""
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise ValueError(f"path: expected a non-empty str or Path, got {path!r}")
    return Path(path)


class closing_on_error:
    """Context manager closing ``fig`` if drawing raises (``save_figure`` closes it otherwise)."""

    def __init__(self, fig) -> None:
        self.fig = fig

    def __enter__(self):
        return self.fig

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            plt.close(self.fig)
        return False
