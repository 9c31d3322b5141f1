"""Reporting: plots of the search results and of single candidates (PNG, headless Agg backend)."""

from codesign.plots.energy_plots import plot_energy_parts
from codesign.plots.plots import (
    plot_floorplan,
    plot_front,
    plot_gantt,
    plot_hypervolume_history,
    plot_parallel_coordinates,
)
from codesign.plots.surrogate_plots import plot_predicted_vs_oracle
from codesign.plots.workload_plots import plot_workload_graph

__all__ = [
    "plot_front",
    "plot_hypervolume_history",
    "plot_parallel_coordinates",
    "plot_floorplan",
    "plot_gantt",
    "plot_predicted_vs_oracle",
    "plot_workload_graph",
    "plot_energy_parts",
]
