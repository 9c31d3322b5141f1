"""Fused stacks and split layers (codesign/model/fusion.py): the issue's laws as property tests, the
tabulated path against the direct one, and an exhaustive check that the search finds the best
fusion partition × tile height of a small stack.

Laws: a design with every boundary unfused equals today's layer-by-layer result exactly; fusing
never increases DRAM traffic; with SRAM large enough, fused latency ≤ layer-by-layer latency;
splitting a layer over k cores never increases its compute cycles per core.
"""

from __future__ import annotations

import optuna
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.model.analytical import AnalyticalModel
from codesign.model.evaluator import Evaluator
from codesign.search.driver import run_search
from codesign.search.exhaustive import rows_of, space_size
from codesign.workload.graph import Workload
from codesign.workload.layer import Layer
from tests.helpers import make_space, random_rows
from tests.test_model_tabulated import assert_same

seeds = st.integers(min_value=0, max_value=2**31 - 1)
fast = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HARDWARE = {"grid_rows": [1, 2], "grid_cols": 2}
FUSED = {"fusion": "search", "tile_rows": [1, 4, 16], "split": [1, 2], "split_axis": ["channels", "rows"]}
PLAIN = make_space(hardware=HARDWARE)
SPACE = make_space(hardware=HARDWARE, schedule=FUSED)
PLAIN_MODEL, MODEL = AnalyticalModel(PLAIN), AnalyticalModel(SPACE)
# SRAM large enough for every activation and stack: nothing crosses the DRAM interface but weights,
# the network's input and output.
BIG = make_space(hardware={**HARDWARE, "sram_kib": [1 << 16]}, schedule=FUSED)
BIG_MODEL = AnalyticalModel(BIG)


def columns(space, prefix: str) -> list[int]:
    return [i for i, k in enumerate(space.knobs) if k.name.startswith(prefix)]


def plain(space, rows: torch.Tensor, fuse: bool = False) -> torch.Tensor:
    """``rows`` with every layer unsplit and every boundary unfused (or fused where fusable)."""
    rows = rows.clone()
    rows[:, columns(space, "sched.fuse.")] = int(fuse)
    rows[:, columns(space, "sched.split.")] = 0  # split = [1, 2]: code 0 is one core
    return rows


def test_knobs_and_decoding():
    names = [k.name for k in SPACE.knobs]
    fusable = [n for n, ok in zip(SPACE.lowered.names, SPACE.lowered.fusable.tolist()) if ok]
    assert fusable and [n for n in names if n.startswith("sched.fuse.")] == [f"sched.fuse.{n}" for n in fusable]
    assert sum(n.startswith("sched.split.") for n in names) == len(SPACE.lowered.names)
    c = SPACE.decode(random_rows(SPACE, 16, seed=3))
    assert not c.fuse[:, ~SPACE.lowered.fusable].any()
    assert SPACE.split_options == [(1, "channels"), (1, "rows"), (2, "channels"), (2, "rows")]
    assert set(c.split.unique().tolist()) <= {0, 1, 2, 3} and set(c.tile.unique().tolist()) <= {0, 1, 2}
    assert PLAIN.decode(random_rows(PLAIN, 2)).fuse is None


@given(seed=seeds)
@fast
def test_every_boundary_unfused_equals_todays_result_exactly(seed):
    rows = random_rows(PLAIN, 64, seed=seed)
    extra = random_rows(SPACE, 64, seed=seed + 1)[:, PLAIN.dimension:]
    ours = MODEL.evaluate_rows(plain(SPACE, torch.cat([rows, extra], dim=1)), detail=True)
    today = PLAIN_MODEL.evaluate_rows(rows, detail=True)
    for name, value in today.metrics.items():
        assert torch.equal(ours.metrics[name], value), name
    for name, value in today.layers.items():
        assert torch.equal(ours.layers[name], value), name


@given(seed=seeds)
@fast
def test_tabulated_equals_direct(seed):
    rows = random_rows(SPACE, 48, seed=seed)
    direct = MODEL.evaluate_direct(SPACE.decode(rows), detail=True)
    fast_path = MODEL.evaluate_rows(rows, detail=True)
    assert_same(fast_path, direct)
    for name in ("latency_s", "area_mm2", "cost_usd"):
        assert torch.equal(fast_path.metrics[name], direct.metrics[name])
    for name in ("total_cycles", "compute_cycles", "dram_bytes", "start_s", "end_s"):
        assert torch.equal(fast_path.layers[name], direct.layers[name])


def test_decoded_candidates_give_the_bits_of_their_rows():
    """Candidates evaluated from their values (what plug-ins and the API pass), with or without their
    rows, get the same bits as the rows read directly (the plan reads their transposed codes)."""
    rows = random_rows(SPACE, 64, seed=5)
    c = SPACE.decode(rows)
    want = MODEL.evaluate_rows(rows)
    for got in (MODEL.evaluate(c), MODEL.evaluate(c, rows=rows)):
        for name, value in want.metrics.items():
            assert torch.equal(got.metrics[name], value), name


@given(seed=seeds)
@fast
def test_fusing_never_increases_dram_traffic(seed):
    rows = plain(SPACE, random_rows(SPACE, 64, seed=seed))
    fused = rows.clone()
    fused[:, columns(SPACE, "sched.fuse.")] = random_rows(SPACE, 64, seed=seed + 7)[:, columns(SPACE, "sched.fuse.")]
    a = MODEL.evaluate_rows(rows, detail=True).layers["dram_bytes"]
    b = MODEL.evaluate_rows(fused, detail=True).layers["dram_bytes"]
    assert (b <= a).all() and (b.sum(dim=1) <= a.sum(dim=1)).all()


@given(seed=seeds)
@fast
def test_with_sram_large_enough_fused_latency_is_at_most_layer_by_layer(seed):
    rows = plain(BIG, random_rows(BIG, 64, seed=seed))
    fused = plain(BIG, rows, fuse=True)
    lbl, ours = BIG_MODEL.evaluate_rows(rows, detail=True), BIG_MODEL.evaluate_rows(fused, detail=True)
    assert ours.layers["fused"].any(dim=1).all()  # everything fits: every asked boundary is fused
    assert (ours.metrics["latency_s"] <= lbl.metrics["latency_s"]).all()
    assert (ours.metrics["latency_s"] < lbl.metrics["latency_s"]).any()  # and on several cores it overlaps


@given(seed=seeds, k=st.sampled_from([2, 4]), axis=st.sampled_from(["channels", "rows"]))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_splitting_never_increases_compute_cycles_per_core(seed, k, axis):
    space = make_space(hardware={"grid_rows": 2, "grid_cols": 2}, schedule={"split": [1, k], "split_axis": axis})
    model = AnalyticalModel(space)
    rows = random_rows(space, 32, seed=seed)
    split = columns(space, "sched.split.")
    one, many = rows.clone(), rows.clone()
    one[:, split], many[:, split] = 0, 1
    a = model.evaluate_rows(one, detail=True).layers
    b = model.evaluate_rows(many, detail=True).layers
    assert (b["split"] == k).all() and (b["compute_cycles"] <= a["compute_cycles"]).all()
    assert (b["compute_cycles"] < a["compute_cycles"]).any()


def test_a_stack_that_does_not_fit_is_not_fused():
    space = make_space(hardware={"grid_rows": 1, "grid_cols": 1, "sram_kib": [16, 1 << 16]}, schedule={"fusion": "all", "tile_rows": 1})
    c = space.decode(torch.tensor([[0] * space.dimension]))
    small = AnalyticalModel(space).evaluate(c, detail=True).layers
    c.sram_kib = torch.tensor([float(1 << 16)], dtype=torch.float64)
    big = AnalyticalModel(space).evaluate(c, detail=True).layers
    assert small["fused"].sum() < big["fused"].sum() == space.lowered.fusable.sum()


def chain() -> Workload:
    """Four convolutions in a chain, 32 rows: three fusable boundaries."""
    w = Workload("chain")
    w.add_layer(Layer("c1", K=32, C=8, P=32, Q=32, R=3, S=3))
    w.add_layer(Layer("c2", K=32, C=32, P=32, Q=32, R=3, S=3), ["c1"])
    w.add_layer(Layer("c3", K=64, C=32, P=16, Q=16, R=3, S=3, stride=2), ["c2"])
    w.add_layer(Layer("c4", K=64, C=64, P=16, Q=16, R=1, S=1), ["c3"])
    return w


def test_search_finds_the_best_fusion_partition_and_tile_height():
    """Every fusion partition × tile height of a small stack on a 2×2 chip (mapping and dataflow
    fixed), enumerated; NSGA-II over the same knobs finds the fastest."""
    space = make_space(graph=chain(), hardware={"grid_rows": 2, "grid_cols": 2, "pe_rows": 16, "pe_cols": 16, "sram_kib": 64,
                                                "dram_gbps": 6.4, "noc_link_gbps": 64.0, "clock_ghz": 1.0, "node": "7nm"},
                       schedule={"dataflow": ["ws"], "mapping": "round_robin", "fusion": "search", "tile_rows": [1, 2, 4, 8, 32]},
                       objectives={"minimize": ["latency_s"]}, search={"population": 16})
    assert [k.name.split(".")[1] for k in space.knobs] == ["fuse"] * 3 + ["tile"] * 3
    evaluator = Evaluator(space)
    rows = rows_of(space, torch.arange(space_size(space)))
    latency = evaluator.evaluate_rows(rows)[0][:, evaluator.metric_names.index("latency_s")]
    best = float(latency.min())
    assert best < float(latency[0])  # fusing pays on this chip
    study = optuna.create_study(directions=["minimize"])
    run_search(space, evaluator, study, n_trials=320, seed=0, say=lambda _: None)
    assert min(t.values[0] for t in study.trials if t.values) == pytest.approx(best, rel=0, abs=0)


def test_schedule_table_and_gantt_mark_fused_stacks_and_split_layers(tmp_path):
    from codesign.plots import plot_gantt
    from codesign.runs.evaluate import layer_schedule

    space = make_space(hardware={"grid_rows": 2, "grid_cols": 2, "sram_kib": 1024},
                       schedule={"fusion": "all", "tile_rows": 4, "split": [1, 2], "mapping": "round_robin"})
    evaluator = Evaluator(space)
    row = torch.zeros((1, space.dimension), dtype=torch.long)
    row[0, columns(space, "sched.split.")[0]] = 1  # the first layer over two cores
    table = layer_schedule(space, evaluator, row)
    assert {"stack", "tiles", "split", "parts"} <= set(table.columns)
    assert table["split"].iloc[0] == 2 and len(table["parts"].iloc[0].split(",")) == 2
    stacked = table[table["stack"] != ""]
    assert len(stacked) >= 2 and (stacked["tiles"] > 1).all()
    assert plot_gantt(table, tmp_path / "gantt.png").stat().st_size > 0


def tile_by_tile(cycles, T, halo_tiles, tile_transfer, start0=0.0):
    """A tile-by-tile list schedule of a chain of fused layers, each on a core of its own: tile ``k``
    of layer ``l`` starts when tile ``k − 1`` of ``l`` is done and the ``min(k + 1 + halo, T)``
    producer tiles it needs have arrived (one tile transfer after the last of them ends)."""
    ends = [[start0 + (k + 1) * cycles[0] / T for k in range(T)]]
    for c in cycles[1:]:
        mine, free = [], 0.0
        for k in range(T):
            free = max(free, ends[-1][min(k + 1 + halo_tiles, T) - 1] + tile_transfer) + c / T
            mine.append(free)
        ends.append(mine)
    return [e[-1] for e in ends]


def test_closed_form_against_a_tile_by_tile_schedule_by_hand():
    """Three fused layers A → B → C on three cores, T = 4 tiles, one halo tile, transfers of 40 cycles
    (8 of them latency: one tile moves in (40 − 8)/4 + 8 = 16). By hand, the closed form:
    A 0 → 400; B starts when 2 of A's 4 tiles and one transfer are in (200 + 16 = 216) and ends at
    max(216 + 200, 400 + 16 + 50, 0 + 200 + 40 + 50) = 466; C starts at 216 + 100 + 16 = 332 and ends
    at max(332 + 400, 466 + 16 + 100, 216 + 100 + 40 + 100) = 732. Tile by tile, B's tiles 1–3 each
    wait for A (A is the slower: 100 cycles a tile against B's 50), and its last two both need A's last
    tile: B ends at 516, one halo tile (50 cycles) later than the closed form; C, slower than B, has
    no such wait of its own, but reads B's real tiles, which came later: it ends at 782, the same 50
    later. With the consumer the slower (B and C of 400 cycles after A of 200) the two agree: B 116 → 516,
    C 332 → 732 (C's last tile after B's: 516 + 16 + 100 = 632 < 332 + 400)."""

    from codesign.model.fusion import first_share, stack_terms
    from codesign.model.schedule import list_schedule_lp

    T, halo = torch.full((2, 1), 4.0, dtype=torch.float64), torch.full((2, 1), 0.25, dtype=torch.float64)  # ⌈0.25 · 4⌉ = 1 halo tile

    def closed_form(cycles):
        cycles = torch.tensor(cycles, dtype=torch.float64)[:, None]
        transfer, latency = torch.full((2, 1), 40.0, dtype=torch.float64), torch.full((2, 1), 8.0, dtype=torch.float64)
        inv = 1.0 / T
        stack = stack_terms([1, 2], torch.ones(2, 1, dtype=torch.bool), first_share(halo, T, inv), inv, cycles, transfer, latency)
        start, finish = list_schedule_lp(cycles, torch.tensor([[0], [1], [2]]), transfer, [[], [(0, 0)], [(1, 1)]], 3, stack=stack)
        return start[:, 0].tolist(), finish[:, 0].tolist()

    start, finish = closed_form([400.0, 200.0, 400.0])
    assert start == [0.0, 216.0, 332.0] and finish == [400.0, 466.0, 732.0]
    assert tile_by_tile([400.0, 200.0, 400.0], 4, 1, 16.0) == [400.0, 516.0, 782.0]
    start, finish = closed_form([200.0, 400.0, 400.0])
    assert start == [0.0, 116.0, 332.0] and finish == tile_by_tile([200.0, 400.0, 400.0], 4, 1, 16.0) == [200.0, 516.0, 732.0]
