"""``codesign show`` for fused and split designs (issue 13): the tile-level Gantt chart's tiles come
from the list schedule's closed form (codesign/model/fusion.py, ``tile_times``) and end where the
model's schedule ends; the floorplan outlines the plan's fused stacks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.model.evaluator import Evaluator
from codesign.plots import plot_floorplan, plot_gantt
from codesign.plots.schedule_plots import stack_outlines
from codesign.runs.evaluate import layer_schedule, stack_cores, tile_schedule
from tests.helpers import make_space, random_rows

SPACE = make_space(hardware={"grid_rows": 2, "grid_cols": 2, "sram_kib": [256, 1024]},
                   schedule={"fusion": "search", "tile_rows": [1, 4], "split": [1, 2], "split_axis": ["channels", "rows"]})
EVALUATOR = Evaluator(SPACE)
FUSE = [i for i, k in enumerate(SPACE.knobs) if k.name.startswith("sched.fuse.")]


def designs(seed: int, n: int = 4) -> torch.Tensor:
    """Random designs, most boundaries fused."""
    rows = random_rows(SPACE, n, seed=seed)
    rows[:, FUSE] = (torch.rand(n, len(FUSE), generator=torch.Generator().manual_seed(seed)) < 0.8).long()
    return rows


def stacked(seed: int) -> torch.Tensor:
    """A random design with every boundary fused, no layer split and the most SRAM: several stacks."""
    row = random_rows(SPACE, 1, seed=seed)
    for i, k in enumerate(SPACE.knobs):
        if k.name.startswith("sched.fuse."):
            row[0, i] = 1
        elif k.name.startswith("sched.split."):
            row[0, i] = 0
        elif k.name == "hw.sram_kib":
            row[0, i] = len(k.choices) - 1
    return row


@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_tiles_end_at_the_model_latency_and_follow_each_other(seed):
    tiled = 0
    for row in torch.cat([designs(seed), stacked(seed)]):
        row = row[None]
        schedule = layer_schedule(SPACE, EVALUATOR, row)
        tiles = tile_schedule(SPACE, EVALUATOR, row, schedule)
        latency = float(EVALUATOR.model.evaluate_rows(row).metrics["latency_s"][0])
        makespan = float(schedule["end_s"].max())
        assert float(tiles["end_s"].max()) == makespan and makespan <= latency
        for (layer, part), own in tiles.groupby(["layer", "part"], sort=False):
            at = schedule.set_index("layer").loc[layer]
            T = int(at["tiles"]) if at["stack"] else 1
            assert list(own["tile"]) == list(range(T))
            assert own["start_s"].iloc[0] == at["start_s"] and own["end_s"].iloc[-1] == at["end_s"]
            start, end = own["start_s"].to_numpy(), own["end_s"].to_numpy()
            assert (start[1:] >= start[:-1]).all()  # tile k + 1 starts no earlier than tile k
            assert (start[1:] >= end[:-1] - 1e-12 * at["end_s"]).all()  # ... nor before it ends (one core)
        # a split layer has a bar per part, on each of its cores
        for _, at in schedule[schedule["split"] > 1].iterrows():
            cores = sorted(set(tiles.loc[tiles["layer"] == at["layer"], "core"]))
            assert cores == sorted(int(c) for c in at["parts"].split(","))
        tiled += int((tiles["tile"] > 0).any())
    assert tiled  # some design ran tile by tile


def test_a_fused_layer_waits_for_its_producer_tiles():
    """On one core a stack interleaves: each fused layer's first tile starts after its producer's first
    tiles (the halo's included), never before the producer started."""
    space = make_space(hardware={"grid_rows": 1, "grid_cols": 2, "sram_kib": 1024},
                       schedule={"fusion": "all", "tile_rows": 4, "mapping": "round_robin"})
    evaluator = Evaluator(space)
    row = torch.zeros((1, space.dimension), dtype=torch.long)
    schedule = layer_schedule(space, evaluator, row)
    tiles = tile_schedule(space, evaluator, row, schedule)
    fused = [l for l in range(1, len(schedule)) if schedule["stack"].iloc[l] and schedule["stack"].iloc[l] == schedule["stack"].iloc[l - 1]]
    assert fused
    for l in fused:
        mine = tiles[tiles["layer"] == schedule["layer"].iloc[l]]
        producer = tiles[tiles["layer"] == schedule["layer"].iloc[l - 1]]
        assert mine["start_s"].iloc[0] >= producer["start_s"].iloc[0]
        assert mine["end_s"].iloc[-1] >= producer["end_s"].iloc[-1]


def test_floorplan_stacks_are_the_plans_stacks(tmp_path):
    from codesign.graph import design_graph

    row = stacked(7)
    schedule = layer_schedule(SPACE, EVALUATOR, row)
    plan = EVALUATOR.model.schedule_plan(SPACE.decode(row))
    fused, fused_out = plan["fused"][:, 0].tolist(), plan["fused_out"][:, 0].tolist()
    core = SPACE.decode(row).core[0].tolist()
    expected, current = [], None
    for l, (into, out) in enumerate(zip(fused, fused_out)):
        if out and not into:
            current = [core[l]]
            expected.append(current)
        elif into and core[l] not in current:
            current.append(core[l])
    stacks = stack_cores(schedule)
    assert list(stacks.values()) == expected and expected
    params = {k.name: (k.choices[int(v)] if k.choices else int(v)) for k, v in zip(SPACE.knobs, row[0].tolist())}
    graph = design_graph(SPACE, params)
    nodes = {graph.nodes[n]["core"]: n for n, d in graph.nodes(data=True) if d.get("kind") == "core"}
    outlines = stack_outlines(stacks, nodes)
    assert sorted((s, n) for s, n, _ in outlines) == sorted((s, nodes[c]) for s, cs in stacks.items() for c in cs)
    for n in set(n for _, n, _ in outlines):  # stacks on one core nest: depths 0, 1, ...
        assert sorted(d for _, m, d in outlines if m == n) == list(range(sum(m == n for _, m, _ in outlines)))
    assert plot_floorplan(graph, tmp_path / "floorplan.png", stacks=stacks).stat().st_size > 0
    tiles = tile_schedule(SPACE, EVALUATOR, row, schedule)
    assert plot_gantt(schedule, tmp_path / "gantt.png", tiles=tiles).stat().st_size > 0


def test_a_layer_by_layer_design_keeps_todays_chart():
    space = make_space()
    evaluator = Evaluator(space)
    row = random_rows(space, 1, seed=1)
    assert tile_schedule(space, evaluator, row, layer_schedule(space, evaluator, row)) is None
    assert stack_cores(layer_schedule(space, evaluator, row)) == {}


def test_tiles_need_their_columns(tmp_path):
    row = stacked(3)
    schedule = layer_schedule(SPACE, EVALUATOR, row)
    tiles = tile_schedule(SPACE, EVALUATOR, row, schedule).drop(columns=["part"])
    with pytest.raises(ValueError, match="part"):
        plot_gantt(schedule, tmp_path / "g.png", tiles=tiles)
