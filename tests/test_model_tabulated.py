"""The tabulated evaluation path equals the direct one; the direct path stays differentiable.

The model evaluates candidates whose hardware values are the design's choices from per-layer
tables (:func:`codesign.model.tables.build_tables`), and everything else directly; these tests pin
that both give the same numbers (float64: within 1e-12 relative, cycle counts exactly), that
rows are read as :meth:`DesignSpace.decode` reads them, that the evaluator's chunks change
nothing, and that gradients flow through the direct path and the dataflow mixture.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from codesign.model import evaluator as plugins
from codesign.model.analytical import AnalyticalModel
from codesign.model.evaluator import Evaluator
from codesign.model.schedule import list_schedule, list_schedule_lp
from codesign.model.systolic import _ceil_div, st_ceil, st_floor, st_round
from codesign.space import take
from tests.helpers import make_space, random_rows
from tests.test_vector_unit import vector_space

SPACES = {
    "layer_by_layer": make_space(),
    "pipelined": make_space(workload={"network": "resnet18", "batch": 8}, schedule={"mode": ["layer_by_layer", "pipelined"]}),
    # dataflow choices not in (ws, os, is) order, one knob per group of layers
    "groups": make_space(schedule={"granularity": "group", "group_size": 3, "dataflow": ["is", "ws"]}),
    "round_robin_fp16": make_space(workload={"network": "mobilenet_v2", "batch": 2, "precision_bytes": 2},
                                   schedule={"mapping": "round_robin", "mode": ["pipelined", "layer_by_layer"]}),
    "single_core_fixed": make_space(hardware={"grid_rows": 1, "grid_cols": 1, "pe_rows": 16, "sram_kib": [64, 512], "node": "7nm"},
                                    schedule={"mapping": "single_core", "dataflow": ["os"]}),
    "fixed_grid": make_space(workload={"network": "bert_base", "params": {"seq_len": 64}},
                             hardware={"grid_rows": 2, "grid_cols": 3, "dram_gbps": [25.6, 51.2]}),
    # vector layers and epilogues, several vector-unit widths (tests/test_vector_unit.py)
    "vector": vector_space(),
    "vector_pipelined": vector_space(4, schedule={"mode": ["layer_by_layer", "pipelined"]}),
}
MODELS = {name: AnalyticalModel(space) for name, space in SPACES.items()}


def assert_same(fast, direct, label=""):
    for part in ("metrics", "layers"):
        a, b = getattr(fast, part), getattr(direct, part)
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-12, atol=0, msg=f"{label} {part} {name}")


@pytest.mark.parametrize("name", list(SPACES))
def test_tabulated_equals_direct(name):
    space, model = SPACES[name], MODELS[name]
    rows = random_rows(space, 200, seed=11)
    c = space.decode(rows)
    direct = model.evaluate_direct(c, detail=True)
    assert model.tabulated.ready()
    assert_same(model.evaluate_rows(rows, detail=True), direct, "rows")
    assert_same(model.evaluate(c, detail=True), direct, "values")
    assert_same(model.evaluate(c, detail=True, rows=rows), direct, "candidates with rows")
    # cycle counts are exact
    fast = model.evaluate_rows(rows, detail=True).layers
    assert torch.equal(fast["compute_cycles"], direct.layers["compute_cycles"])
    assert torch.equal(fast["total_cycles"], direct.layers["total_cycles"])
    assert torch.equal(fast["vector_cycles"], direct.layers["vector_cycles"])
    assert torch.equal(fast["array_cycles"], direct.layers["array_cycles"])
    assert torch.equal(fast["dram_bytes"], direct.layers["dram_bytes"])


@pytest.mark.parametrize("name", list(SPACES))
def test_rows_are_read_as_decode_reads_them(name):
    """evaluate_rows decodes the rows itself: bit for bit what evaluate(decode(rows)) gives."""
    space, model = SPACES[name], MODELS[name]
    rows = random_rows(space, 64, seed=5)
    a = model.evaluate_rows(rows, detail=True)
    b = model.evaluate(space.decode(rows), detail=True)
    for part in ("metrics", "layers"):
        for key, value in getattr(a, part).items():
            assert torch.equal(value, getattr(b, part)[key]), (part, key)


@pytest.mark.parametrize("field, factor", [("sram_kib", 1.5), ("pe_rows", 0.75), ("dram_gbps", 3.0), ("clock_ghz", 1.1), ("noc_link_gbps", 0.5)])
def test_values_off_the_choices_are_computed_directly(field, factor):
    space, model = SPACES["pipelined"], MODELS["pipelined"]
    c = space.decode(random_rows(space, 40, seed=2))
    off = replace(c, **{field: getattr(c, field) * factor})
    assert model.tabulated.codes_from_values(off) is None
    assert_same(model.evaluate(off, detail=True), model.evaluate_direct(off, detail=True))
    # one candidate off the table sends the whole call to the direct path; the others are unchanged
    mixed = replace(c, **{field: torch.cat([getattr(off, field)[:1], getattr(c, field)[1:]])})
    torch.testing.assert_close(model.evaluate(mixed).metrics["latency_s"][1:], model.evaluate(c).metrics["latency_s"][1:], rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(SPACES))
def test_a_candidate_gets_the_same_bits_alone_as_in_a_population(name):
    """The search compares values for equality (repeats, the plain-Optuna reference): sums over
    layers must not depend on the population size."""
    space = SPACES[name]
    evaluator = Evaluator(space)
    rows = random_rows(space, 40, seed=21)
    whole, _ = evaluator.evaluate_rows(rows)
    for i in range(len(rows)):
        assert (evaluator.evaluate_rows(rows[i : i + 1])[0][0] == whole[i]).all(), i
    for n in (2, 3, 17):
        assert (evaluator.evaluate_rows(rows[:n])[0] == whole[:n]).all(), n


def test_scratch_buffers_do_not_leak_between_calls():
    """Results of one call stay as they were after further calls (of the same or another size)."""
    space, model = SPACES["pipelined"], MODELS["pipelined"]
    rows = random_rows(space, 50, seed=3)
    first = model.evaluate_rows(rows, detail=True)
    kept = {k: v.clone() for k, v in {**first.metrics, **first.layers}.items()}
    model.evaluate_rows(random_rows(space, 50, seed=4), detail=True)
    model.evaluate_rows(random_rows(space, 50, seed=4))
    model.evaluate_rows(random_rows(space, 7, seed=4))
    for k, v in {**first.metrics, **first.layers}.items():
        assert torch.equal(v, kept[k]), k


def test_evaluator_chunks_change_nothing(monkeypatch):
    space = SPACES["pipelined"]
    evaluator = Evaluator(space)
    rows = random_rows(space, 37, seed=1)
    whole, errors = evaluator.evaluate_rows(rows)
    monkeypatch.setattr(plugins, "CPU_CHUNK", 8)
    chunked, chunk_errors = evaluator.evaluate_rows(rows)
    assert (whole == chunked).all() and errors == chunk_errors == [None] * 37


def test_too_big_a_table_falls_back_to_the_direct_path(monkeypatch):
    import codesign.model.tables as tables

    monkeypatch.setattr(tables, "TABLE_MAX_ENTRIES", 10)
    space = SPACES["layer_by_layer"]
    model = AnalyticalModel(space)
    rows = random_rows(space, 20, seed=8)
    assert not model.tabulated.ready()
    assert_same(model.evaluate_rows(rows, detail=True), MODELS["layer_by_layer"].evaluate_rows(rows, detail=True))


# --- the differentiable path ---------------------------------------------------------------------


def test_straight_through_rounding_keeps_the_forward_value_and_passes_the_gradient():
    x = torch.tensor([0.3, 1.0, 2.5, 7.9, 1e6 + 0.5], dtype=torch.float64, requires_grad=True)
    for st, plain in ((st_ceil, torch.ceil), (st_floor, torch.floor), (st_round, torch.round)):
        y = st(x)
        assert torch.equal(y, plain(x.detach()))
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.equal(g, torch.ones_like(x))
    a, b = torch.tensor([10.0, 17.0], dtype=torch.float64), torch.tensor([4.0, 17.0], dtype=torch.float64, requires_grad=True)
    q = _ceil_div(a, b)
    assert torch.equal(q, torch.tensor([3.0, 1.0], dtype=torch.float64))
    (g,) = torch.autograd.grad(q.sum(), b)
    torch.testing.assert_close(g, -a / b.detach() ** 2)


def relaxed(c, seed=0):
    """``c`` with its float hardware fields continuous (off the choices) and requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    fields = {}
    for name in ("pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "clock_ghz", "vector_lanes"):
        value = getattr(c, name) * (0.8 + 0.4 * torch.rand(len(c), generator=gen, dtype=torch.float64))
        fields[name] = value.detach().requires_grad_(True)
    return replace(c, **fields)


@pytest.mark.parametrize("name", ["layer_by_layer", "pipelined", "vector_pipelined"])
def test_gradients_flow_through_the_direct_path(name):
    space, model = SPACES[name], MODELS[name]
    rows = random_rows(space, 12, seed=4)
    rows[:, [i for i, k in enumerate(space.knobs) if k.name == "sched.mode"]] = 1 if name == "pipelined" else 0
    c = relaxed(space.decode(rows))
    assert model.tabulated.codes_from_values(c) is None and model.tabulated.codes_from_rows(c, rows) is None
    metrics = model.evaluate(c, rows=rows).metrics
    fields = [c.pe_rows, c.pe_cols, c.sram_kib, c.dram_gbps, c.noc_link_gbps, c.clock_ghz, c.vector_lanes]
    grads = torch.autograd.grad(metrics["latency_s"].sum(), fields, allow_unused=True)
    for field, grad in zip(("pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "clock_ghz"), grads):
        assert grad is not None and torch.isfinite(grad).all(), field
    assert (grads[0] != 0).any() and (grads[1] != 0).any() and (grads[5] != 0).any()  # the array and the clock matter
    if name.startswith("vector"):  # with vector work, the lanes matter too
        lanes = grads[6]
        assert lanes is not None and torch.isfinite(lanes).all() and (lanes < 0).any() and (lanes <= 0).all()
    # the forward values are the direct computation's, without grad
    detached = replace(c, **{f: getattr(c, f).detach() for f in ("pe_rows", "pe_cols", "sram_kib", "dram_gbps", "noc_link_gbps", "clock_ghz",
                                                                  "vector_lanes")})
    plain = model.evaluate_direct(detached).metrics
    for key, value in metrics.items():
        torch.testing.assert_close(value.detach(), plain[key], rtol=1e-12, atol=0, msg=key)


@pytest.mark.parametrize("name", ["layer_by_layer", "pipelined", "groups"])
def test_one_hot_dataflow_weights_equal_the_plain_evaluation(name):
    space, model = SPACES[name], MODELS[name]
    rows = random_rows(space, 30, seed=6)
    c = space.decode(rows)
    weights = torch.nn.functional.one_hot(c.dataflow, 3).to(torch.float64)
    mixed = model.evaluate(c, detail=True, dataflow_weights=weights)
    assert_same(mixed, model.evaluate_rows(rows, detail=True))


@pytest.mark.parametrize("name", ["layer_by_layer", "pipelined"])
def test_dataflow_weights_mix_the_layer_costs_and_have_gradients(name):
    space, model = SPACES[name], MODELS[name]
    rows = random_rows(space, 10, seed=7)
    rows[:, [i for i, k in enumerate(space.knobs) if k.name == "sched.mode"]] = 1 if name == "pipelined" else 0
    c = relaxed(space.decode(rows), seed=1)
    logits = torch.randn(*c.core.shape, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weights = torch.softmax(logits, dim=-1)
    ev = model.evaluate(c, detail=True, dataflow_weights=weights)
    (g_logits, g_rows) = torch.autograd.grad(ev.metrics["latency_s"].sum(), [logits, c.pe_rows])
    assert torch.isfinite(g_logits).all() and (g_logits != 0).any()
    assert torch.isfinite(g_rows).all() and (g_rows != 0).any()
    # every per-layer cost is the weighted sum of the three dataflows' costs
    with torch.no_grad():
        per_flow = [model.evaluate_direct(replace(c, dataflow=torch.full_like(c.core, d)), detail=True).layers for d in range(3)]
        for key in ("compute_cycles", "total_cycles", "dram_bytes"):
            expected = sum(weights[..., d] * per_flow[d][key] for d in range(3))
            if name == "layer_by_layer":
                torch.testing.assert_close(ev.layers[key], expected, rtol=1e-12, atol=0, msg=key)
    with pytest.raises(ValueError, match="dataflow_weights"):
        model.evaluate(c, dataflow_weights=weights[:, :, :2])


def test_the_differentiable_list_schedule_gives_the_same_schedule():
    space, model = SPACES["layer_by_layer"], MODELS["layer_by_layer"]
    c = space.decode(random_rows(space, 16, seed=1))
    costs = model.layer_costs(c, "batch")
    transfer, _ = model.transfers(c)
    lw = model.lw
    start, finish = list_schedule(costs.total_cycles, c.core, transfer, lw.preds, lw.pred_mask, model.n_slots)
    cycles = costs.total_cycles.clone().requires_grad_(True)
    g_start, g_finish = list_schedule(cycles, c.core, transfer, lw.preds, lw.pred_mask, model.n_slots)
    assert torch.equal(g_start.detach(), start) and torch.equal(g_finish.detach(), finish)
    (grad,) = torch.autograd.grad(g_finish.amax(dim=1).sum(), cycles)
    assert torch.isfinite(grad).all() and grad.sum() > 0
    # the layer-major form with its own edge list gives the same
    L = len(lw.names)
    J = transfer.shape[2]
    edges = [[(p, l * J + j) for j, p in enumerate(model.pred_lists[l])] for l in range(L)]
    lp_start, lp_finish = list_schedule_lp(costs.total_cycles.t().contiguous(), c.core.t().contiguous(),
                                           transfer.permute(1, 2, 0).reshape(L * J, -1), edges, model.n_slots)
    assert torch.equal(lp_start.t(), start) and torch.equal(lp_finish.t(), finish)


def test_one_candidate_subsets_equal_on_both_paths():
    space, model = SPACES["round_robin_fp16"], MODELS["round_robin_fp16"]
    c = space.decode(random_rows(space, 8, seed=2))
    for i in range(len(c)):
        one = take(c, torch.tensor([i]))
        assert_same(model.evaluate(one, detail=True), model.evaluate_direct(one, detail=True))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tabulated_path_on_cuda_equals_cpu():
    space = SPACES["pipelined"]
    rows = random_rows(space, 300, seed=12)
    cpu = Evaluator(space).evaluate_rows(rows)[0]
    evaluator = Evaluator(space, device="cuda")
    gpu = evaluator.evaluate_rows(rows.cuda())[0]
    assert evaluator.model.tabulated.ready()
    torch.testing.assert_close(torch.from_numpy(gpu), torch.from_numpy(cpu), rtol=1e-12, atol=0)


def test_chunks_on_worker_threads_change_nothing(monkeypatch):
    space = SPACES["fixed_grid"]
    evaluator = Evaluator(space)
    rows = random_rows(space, 300, seed=13)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        serial, errors = evaluator.evaluate_rows(rows)
        torch.set_num_threads(2)
        monkeypatch.setattr(plugins, "MIN_PARALLEL_CHUNK", 16)
        monkeypatch.setattr(plugins, "CPU_CHUNK", 64)
        parallel, parallel_errors = evaluator.evaluate_rows(rows)
        assert torch.get_num_threads() == 2  # the caller's setting is left as it was
    finally:
        torch.set_num_threads(threads)
    assert (serial == parallel).all() and errors == parallel_errors
