"""Tests for codesign.plots.plots: every plot writes a valid PNG and closes its figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from codesign.plots._units import axis_label, format_value, si_scale
from codesign.plots.plots import (
    plot_floorplan,
    plot_front,
    plot_gantt,
    plot_hypervolume_history,
    plot_parallel_coordinates,
)
from codesign.search.pareto import front_of, hypervolume_history, knee_point, reference_point

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OBJ3 = ["latency_s", "energy_j", "area_mm2"]


def assert_png(path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_MAGIC
    assert plt.get_fignums() == []


@pytest.fixture
def trials() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 60
    df = pd.DataFrame({
        "trial": np.arange(n),
        "latency_s": 10 ** rng.uniform(-5, -2, n),  # spans 3 decades -> log axis, µs/ms
        "energy_j": rng.uniform(1e-3, 5e-3, n),
        "area_mm2": rng.uniform(2.0, 40.0, n),
        "cost_usd": rng.uniform(5.0, 80.0, n),
        "feasible": rng.random(n) < 0.75,
        "hw.pe_rows": rng.choice([8, 16, 32], n),
        "hw.sram_kib": rng.choice([64, 128, 256, 1024, 16384], n),
        "sched.dataflow": rng.choice(["ws", "os", "is"], n),
    })
    df.loc[3, "energy_j"] = np.nan
    df.loc[4, "feasible"] = False
    df.loc[4, ["latency_s", "energy_j"]] = [1e-7, 1e-5]  # infeasible and far outside the view
    return df


@pytest.mark.parametrize("objectives", [["latency_s", "energy_j"], OBJ3])
def test_plot_front(tmp_path, trials, objectives):
    front = front_of(trials, objectives)
    knee = front.index[knee_point(front[objectives].to_numpy())]
    out = plot_front(trials, front, objectives, tmp_path / "front.png", knee=knee)
    assert out == tmp_path / "front.png"
    assert_png(out)
    # Without a knee, with a title, into a folder that does not exist yet.
    assert_png(plot_front(trials, front, objectives, tmp_path / "sub" / "f.png", title="t"))


def test_plot_front_validates(tmp_path, trials):
    front = front_of(trials, ["latency_s", "energy_j"])
    with pytest.raises(ValueError, match="objectives"):
        plot_front(trials, front, [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="front"):
        plot_front(trials, front.drop(columns="energy_j"), ["latency_s", "energy_j"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="trials"):
        plot_front(trials, front, ["latency_s", "power_w"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="knee"):
        plot_front(trials, front, ["latency_s", "energy_j"], tmp_path / "x.png", knee=10_000)
    assert plt.get_fignums() == []


def test_plot_hypervolume_history(tmp_path, trials):
    objectives = ["latency_s", "energy_j"]
    feas = trials[trials["feasible"]][objectives].dropna().to_numpy()
    ref = reference_point(feas)
    hist = hypervolume_history(trials, objectives, ref, n_points=20)
    assert_png(plot_hypervolume_history(hist, tmp_path / "hv.png", reference_point=dict(zip(objectives, ref))))
    assert_png(plot_hypervolume_history(hist, tmp_path / "hv2.png", reference_point=ref))
    assert_png(plot_hypervolume_history(hist, tmp_path / "hv3.png"))
    with pytest.raises(ValueError, match="history"):
        plot_hypervolume_history(hist.drop(columns="hypervolume"), tmp_path / "x.png")


def test_plot_parallel_coordinates(tmp_path, trials):
    front = front_of(trials, OBJ3)
    columns = [*OBJ3, "hw.pe_rows", "hw.sram_kib", "sched.dataflow"]
    assert_png(plot_parallel_coordinates(front, columns, tmp_path / "pc.png"))
    one = front.head(1)
    assert_png(plot_parallel_coordinates(one, columns, tmp_path / "pc1.png", color_by="hw.pe_rows"))
    with pytest.raises(ValueError, match="columns"):
        plot_parallel_coordinates(front, ["latency_s"], tmp_path / "x.png")


def tile_graph() -> nx.Graph:
    """2x2 mesh, a DRAM port sharing core (0, 0)'s tile and one outside the grid, 30 layers."""
    g = nx.Graph()
    for i, (x, y) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        g.add_node(f"core{i}", kind="core", x=x, y=y, pe_rows=16 * (i + 1), pe_cols=16, sram_kib=256 * (i + 1))
    g.add_node("dram0", kind="dram_port", x=0, y=0)
    g.add_node("dram1", kind="dram_port", x=2, y=1)
    for u, v in [("core0", "core1"), ("core0", "core2"), ("core1", "core3"), ("core2", "core3"),
                 ("core0", "dram0"), ("core3", "dram1")]:
        g.add_edge(u, v, kind="link")
    flows = ["ws", "os", "is"]
    prev = None
    for k in range(30):
        name = f"conv{k}_very_long_layer_name" if k == 2 else f"conv{k}"
        g.add_node(name, kind="layer")
        core = "core0" if k < 22 else ("core1" if k < 27 else "core2")  # core0 too full to list
        g.add_edge(name, core, kind="mapping", dataflow=flows[k % 3])
        if prev is not None:
            g.add_edge(prev, name, kind="data")
        prev = name
    return g


def test_plot_floorplan(tmp_path):
    assert_png(plot_floorplan(tile_graph(), tmp_path / "floorplan.png"))
    bad = tile_graph()
    bad.add_node("core9", kind="core", x=0, y=0, pe_rows=8, pe_cols=8, sram_kib=64)
    with pytest.raises(ValueError, match="design_graph"):
        plot_floorplan(bad, tmp_path / "x.png")
    with pytest.raises(ValueError, match="design_graph"):
        plot_floorplan(nx.Graph(), tmp_path / "x.png")


def test_plot_gantt(tmp_path):
    rows, t = [], [0.0, 0.0, 0.0]
    for k in range(12):
        core = k % 3
        dur = 2e-4 * (1 + k % 4)
        rows.append({"layer": f"L{k}", "core": core, "start_s": t[core], "end_s": t[core] + dur,
                     "dataflow": ["ws", "os", "is"][k % 3 if k != 5 else 0]})
        t[core] += dur
    schedule = pd.DataFrame(rows)
    assert_png(plot_gantt(schedule, tmp_path / "gantt.png"))
    bad = schedule.copy()
    bad.loc[0, "end_s"] = -1.0
    with pytest.raises(ValueError, match="schedule"):
        plot_gantt(bad, tmp_path / "x.png")
    with pytest.raises(ValueError, match="schedule"):
        plot_gantt(schedule.drop(columns="dataflow"), tmp_path / "x.png")
    assert plt.get_fignums() == []


def test_units():
    assert si_scale([2e-4, 4.2e-3], "s") == (1e3, "ms")
    assert si_scale([3e-6], "J") == (1e6, "µJ")
    assert axis_label("latency_s", [1e-3])[0] == "Latency [ms]"
    assert axis_label("area_mm2", [1e3]) == ("Area [mm²]", 1.0)
    assert axis_label("cost_usd", [12.0]) == ("Cost [USD]", 1.0)
    assert axis_label("hw.pe_rows") == ("hw.pe_rows", 1.0)
    assert format_value(0.0042, "latency_s") == "4.2 ms"
    assert format_value(256, "hw.sram_kib") == "256 KiB"


# --- one objective, budgets, log axes, full layer names ----------------------------------------------
@pytest.fixture
def captured(monkeypatch):
    """The figures the plots save (they are closed, but their artists can still be read)."""
    import codesign.plots._style as style
    import codesign.plots.plots as plots_module
    import codesign.plots.schedule_plots as schedule_module

    figures = []
    original = style.save_figure

    def capture(fig, path):
        figures.append(fig)
        return original(fig, path)

    for module in (plots_module, schedule_module):
        monkeypatch.setattr(module, "save_figure", capture)
    return figures


def _budget_lines(fig):
    from codesign.plots._style import BUDGET_COLOR

    lines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_color() == BUDGET_COLOR]
    return [(ln.get_xdata()[0], ln.get_ydata()[0], ln.axes) for ln in lines]


def test_plot_front_with_one_objective_draws_every_trial_and_the_best_so_far(tmp_path, trials, captured):
    front = front_of(trials, ["latency_s"])
    assert len(front) == 1
    out = plot_front(trials, front, ["latency_s"], tmp_path / "one.png", constraints={"latency_s": 5e-3, "area_mm2": 30.0})
    assert_png(out)
    (ax,) = [a for a in captured[0].axes if a.get_lines()]
    assert ax.get_xlabel() == "Trial" and ax.get_ylabel().startswith("Latency")
    assert ax.get_yscale() == "log"  # 3 decades of latency
    best = [ln for ln in ax.get_lines() if ln.get_label() == "best so far"][0]
    ys = best.get_ydata()
    assert (np.diff(ys) <= 0).all() and ys[-1] == pytest.approx(front["latency_s"].iloc[0] * 1e3)  # ms on the axis
    assert [(y, a is ax) for _, y, a in _budget_lines(captured[0])] == [(pytest.approx(5.0), True)]  # 5 ms; area is no axis here


def test_budgets_are_lines_on_every_axis_of_their_metric(tmp_path, trials, captured):
    objectives = ["energy_j", "cost_usd"]
    front = front_of(trials, objectives)
    plot_front(trials, front, objectives, tmp_path / "two.png", constraints={"cost_usd": 90.0, "latency_s": 1e-3})
    lines = _budget_lines(captured[-1])
    assert len(lines) == 1 and lines[0][1] == pytest.approx(90.0)  # horizontal, at the budget (kept in view)
    assert lines[0][2].get_ylim()[1] >= 90.0
    plot_front(trials, front_of(trials, OBJ3), OBJ3, tmp_path / "three.png", constraints={"area_mm2": 35.0})
    # area is the third objective: a line in each panel that has it on an axis (2 pairs + its histogram)
    assert len(_budget_lines(captured[-1])) == 3
    with pytest.raises(ValueError, match="constraints"):
        plot_front(trials, front, objectives, tmp_path / "x.png", constraints={"cost_usd": "cheap"})
    assert plt.get_fignums() == []


def test_an_axis_is_logarithmic_where_the_front_spans_a_decade(tmp_path, captured):
    from codesign.plots.plots import log_axis

    assert log_axis(np.array([1.0, 5.0, 12.0]), np.array([1.0, 12.0]))  # the front alone spans > 1 decade
    assert not log_axis(np.array([1.0, 5.0, 9.0]), np.array([1.0, 9.0]))
    assert log_axis(np.array([1.0, 200.0]), np.array([2.0]))  # everything in view spans > 2 decades
    n = 30
    df = pd.DataFrame({"trial": np.arange(n), "latency_s": np.geomspace(1e-4, 3e-3, n), "cost_usd": np.linspace(50, 40, n),
                       "feasible": True})
    plot_front(df, front_of(df, ["latency_s", "cost_usd"]), ["latency_s", "cost_usd"], tmp_path / "f.png")
    ax = captured[-1].axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"


def test_gantt_names_every_layer_in_full(tmp_path, captured):
    from codesign.plots.schedule_plots import gantt_labels

    names = ["conv1", "layer4.1.conv2_with_a_very_long_descriptive_name", "fc"]
    inside, key = gantt_labels(names, [200.0, 30.0, 2.0])
    assert inside == ["conv1", "1", ""] and key == [(1, 1), (2, 2)]
    rows, t = [], [0.0, 0.0]
    for k in range(40):
        dur = 1e-5 * (1 + (k % 5) ** 3)
        rows.append({"layer": f"stage{k // 8}.block{k % 8}.depthwise_conv3x3_expand_{k}", "core": k % 2,
                     "start_s": t[k % 2], "end_s": t[k % 2] + dur, "dataflow": "ws"})
        t[k % 2] += dur
    assert_png(plot_gantt(pd.DataFrame(rows), tmp_path / "gantt.png"))
    texts = "\n".join(text.get_text() for ax in captured[-1].axes for text in ax.texts)
    assert "…" not in texts
    for row in rows:
        assert row["layer"] in texts
