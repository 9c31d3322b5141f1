"""Laws of the batched analytical model, and batched = one candidate at a time."""

from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.model.analytical import AnalyticalModel
from codesign.space import take
from tests.helpers import make_space, random_rows

SPACE = make_space()
MODEL = AnalyticalModel(SPACE)
PIPE_SPACE = make_space(workload={"network": "resnet18", "batch": 8}, schedule={"mode": ["layer_by_layer", "pipelined"]})
PIPE_MODEL = AnalyticalModel(PIPE_SPACE)

seeds = st.integers(min_value=0, max_value=2**31 - 1)
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def candidates(space, seed, n=16):
    return space.decode(random_rows(space, n, seed))


@pytest.mark.parametrize("space, model", [(SPACE, MODEL), (PIPE_SPACE, PIPE_MODEL)])
def test_batched_equals_one_at_a_time(space, model):
    c = candidates(space, seed=7, n=32)
    batched = model.evaluate(c).metrics
    for i in range(len(c)):
        single = model.evaluate(take(c, torch.tensor([i]))).metrics
        for name, value in batched.items():
            torch.testing.assert_close(single[name][0], value[i], rtol=1e-12, atol=0, msg=name)


@fast
@given(seed=seeds)
def test_utilisation_never_exceeds_one(seed):
    c = candidates(SPACE, seed)
    layers = MODEL.evaluate(c, detail=True).layers
    pes = (c.pe_rows * c.pe_cols)[:, None]
    assert torch.all(layers["compute_cycles"] * pes >= SPACE.lowered.macs)
    assert torch.all(layers["total_cycles"] >= layers["compute_cycles"])
    assert torch.all(layers["stall_cycles"] >= 0)


@fast
@given(seed=seeds, factor=st.sampled_from([1.5, 2.0, 10.0]))
def test_more_dram_bandwidth_never_raises_latency(seed, factor):
    for model, space in ((MODEL, SPACE), (PIPE_MODEL, PIPE_SPACE)):
        c = candidates(space, seed)
        base = model.evaluate(c).metrics["latency_s"]
        more = model.evaluate(replace(c, dram_gbps=c.dram_gbps * factor)).metrics["latency_s"]
        assert torch.all(more <= base * (1 + 1e-12))


@fast
@given(seed=seeds, factor=st.sampled_from([1.5, 2.0, 10.0]))
def test_more_noc_bandwidth_never_raises_latency(seed, factor):
    for model, space in ((MODEL, SPACE), (PIPE_MODEL, PIPE_SPACE)):
        c = candidates(space, seed)
        base = model.evaluate(c).metrics["latency_s"]
        more = model.evaluate(replace(c, noc_link_gbps=c.noc_link_gbps * factor)).metrics["latency_s"]
        assert torch.all(more <= base * (1 + 1e-12))


@fast
@given(seed=seeds, factor=st.sampled_from([2.0, 4.0, 64.0]))
def test_more_sram_never_raises_dram_traffic(seed, factor):
    c = candidates(SPACE, seed)
    base = MODEL.evaluate(c, detail=True).layers["dram_bytes"]
    more = MODEL.evaluate(replace(c, sram_kib=c.sram_kib * factor), detail=True).layers["dram_bytes"]
    assert torch.all(more <= base)


@fast
@given(seed=seeds)
def test_larger_die_never_costs_less(seed):
    c = candidates(SPACE, seed)
    m = MODEL.evaluate(c).metrics
    same_node = c.node[:, None] == c.node[None, :]
    bigger = m["area_mm2"][:, None] > m["area_mm2"][None, :]
    assert torch.all(~(same_node & bigger) | (m["cost_usd"][:, None] >= m["cost_usd"][None, :]))


@fast
@given(seed=seeds)
def test_layer_never_starts_before_its_inputs_arrive(seed):
    c = candidates(SPACE, seed)
    layers = MODEL.evaluate(c, detail=True).layers
    start, end = layers["start_s"], layers["end_s"]
    lw = SPACE.lowered
    for l in range(len(lw.names)):
        for j in torch.nonzero(lw.pred_mask[l]).flatten().tolist():
            u = int(lw.preds[l, j])
            assert torch.all(start[:, l] >= end[:, u])


@fast
@given(seed=seeds)
def test_layers_on_one_core_never_overlap(seed):
    c = candidates(SPACE, seed, n=8)
    layers = MODEL.evaluate(c, detail=True).layers
    for p in range(len(c)):
        for core in c.core[p].unique().tolist():
            on = torch.nonzero(c.core[p] == core).flatten()
            s, e = layers["start_s"][p, on], layers["end_s"][p, on]
            order = torch.argsort(s)
            assert torch.all(s[order][1:] >= e[order][:-1] - 1e-18)


def test_single_core_latency_is_sum_of_layer_times():
    space = make_space(hardware={"grid_rows": 1, "grid_cols": 1})
    model = AnalyticalModel(space)
    c = candidates(space, seed=3)
    ev = model.evaluate(c, detail=True)
    layer_sum = ev.layers["total_cycles"].sum(dim=1) / (c.clock_ghz * 1e9)
    # One core: no overlap, no NoC; the DRAM roofline cannot exceed the sum of layers' memory times.
    torch.testing.assert_close(ev.metrics["latency_s"], layer_sum, rtol=1e-12, atol=0)


def test_pipelining_a_batch_of_one_changes_nothing():
    space = make_space(schedule={"mode": ["layer_by_layer", "pipelined"]})
    model = AnalyticalModel(space)
    c = candidates(space, seed=5)
    lbl = model.evaluate(replace(c, pipelined=torch.zeros_like(c.pipelined))).metrics
    pipe = model.evaluate(replace(c, pipelined=torch.ones_like(c.pipelined))).metrics
    torch.testing.assert_close(lbl["latency_s"], pipe["latency_s"])


def test_pipelining_a_batch_across_cores_beats_layer_by_layer_on_many_cores():
    c = candidates(PIPE_SPACE, seed=11, n=64)
    many = c.n_cores == 4
    lbl = PIPE_MODEL.evaluate(replace(c, pipelined=torch.zeros_like(c.pipelined))).metrics["latency_s"]
    pipe = PIPE_MODEL.evaluate(replace(c, pipelined=torch.ones_like(c.pipelined))).metrics["latency_s"]
    assert many.any()
    # Not a law for every mapping, but for most random 4-core mappings of a batch of 8.
    assert (pipe[many] < lbl[many]).float().mean() > 0.5


def test_metrics_are_finite_positive_and_in_si_units():
    c = candidates(SPACE, seed=1, n=64)
    m = MODEL.evaluate(c).metrics
    for name, value in m.items():
        assert torch.all(torch.isfinite(value) & (value > 0)), name
    # ResNet-18 is 1.8 GMAC: at most a few hundred GMAC/s on these arrays → ms to s.
    assert torch.all((m["latency_s"] > 1e-4) & (m["latency_s"] < 10))
    power = m["energy_j"] / m["latency_s"]
    torch.testing.assert_close(power, m["power_w"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = AnalyticalModel(SPACE, device="cuda")
    rows = random_rows(SPACE, 256, seed=2)
    gpu = model.evaluate(SPACE.decode(rows.cuda())).metrics
    cpu = MODEL.evaluate(SPACE.decode(rows)).metrics
    for name in cpu:
        torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=1e-9, atol=0)


# --- a model of ad-hoc layers on a hardware template ---------------------------------------------
def _layers():
    from codesign.workload.layer import Layer

    return [Layer("a", op="conv", N=1, K=64, C=32, P=28, Q=28, R=3, S=3), Layer("b", op="fc", N=1, K=1000, C=512, P=1, Q=1),
            Layer("c", op="conv", N=1, K=128, C=128, P=14, Q=14, R=1, S=1, stride=2)]


def test_for_layers_runs_each_layer_on_its_own():
    """Ad-hoc layers read from and write to DRAM, as a simulator runs them: together or alone, a
    layer costs the same, and the run is the sum of its layers on one core."""
    hardware = {"pe_rows": 32, "pe_cols": 16, "sram_kib": 64, "dram_gbps": 8.0}
    layers = _layers()
    model = AnalyticalModel.for_layers(layers, hardware=hardware, schedule={"dataflow": ["os"], "mapping": "single_core"})
    assert model.space.knobs == [] and bool(model.lw.is_source.all()) and bool(model.lw.is_sink.all())
    ev = model.evaluate(model.space.decode(torch.zeros((1, 0), dtype=torch.long)), detail=True)
    for layer in layers:
        alone = AnalyticalModel.for_layers([layer], hardware=hardware, schedule={"dataflow": ["os"], "mapping": "single_core"})
        one = alone.evaluate(alone.space.decode(torch.zeros((1, 0), dtype=torch.long)), detail=True)
        i = model.lw.names.index(layer.name)
        for key in ("compute_cycles", "total_cycles", "dram_bytes"):
            assert one.layers[key][0, 0] == ev.layers[key][0, i], key
    assert float(ev.layers["end_s"].max()) == pytest.approx(float(ev.layers["total_cycles"].sum()) / 1e9)
    with pytest.raises(ValueError, match="pe_rows"):
        AnalyticalModel.for_layers(layers, hardware={"pe_rows": [16, 32]})


def test_the_model_layer_imports_no_oracle():
    """Layers import downward only: the model (the surrogate included) never reaches the oracles."""
    import subprocess
    import sys

    code = ("import sys, codesign.model.analytical, codesign.model.surrogate, codesign.model.evaluator; "
            "print(sorted(m for m in sys.modules if m.startswith('codesign.oracles')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
