"""The vector unit in the analytical model: vector layers, MAC layers' fused epilogues, lanes.

A small hand-built workload (a residual block whose second convolution adds the block's input in
its epilogue, a max-pool, a linear layer, a softmax and a classifier) on a design space that
searches ``vector_lanes``: vector cycles show in the per-layer detail, fewer lanes cost latency,
more lanes never do, vector layers have no MACs and no weights, and the tabulated path equals the
direct one (``tests/test_model_tabulated.py`` runs its whole suite on these spaces too).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.hardware import cost as hwcost
from codesign.hardware.tech import TECH_NODES
from codesign.model.analytical import AnalyticalModel
from codesign.model.surrogate import LatencySurrogate
from codesign.oracles.designs import design_jobs, oracle_evaluate
from codesign.oracles.jobs import LayerResult
from codesign.workload.graph import Workload
from codesign.workload.layer import Layer
from tests.helpers import make_space, random_rows

LANES = [1, 4, 16, 64]


def vector_workload(batch: int = 1) -> Workload:
    """conv1 (ReLU epilogue) → conv2 (residual add of conv1's output + ReLU) → max-pool → fc →
    softmax → classifier."""
    w = Workload("vector_block")
    w.add_layer(Layer("conv1", N=batch, K=32, C=16, P=16, Q=16, R=3, S=3, vector_ops=1, epilogue=("relu",)))
    w.add_layer(Layer("conv2", N=batch, K=32, C=32, P=16, Q=16, R=3, S=3, vector_ops=2, side_inputs=1,
                      epilogue=("add", "relu")), ["conv1"])
    w.add_layer(Layer("pool", op="vector", fn="maxpool", N=batch, K=32, C=32, P=8, Q=8, R=2, S=2, stride=2, vector_ops=3), ["conv2"])
    w.add_layer(Layer("fc", op="fc", N=batch, K=64, C=32, P=64), ["pool"])
    w.add_layer(Layer("softmax", op="vector", fn="softmax", N=batch, K=64, C=64, P=64, vector_ops=5), ["fc"])
    w.add_layer(Layer("head", op="fc", N=batch, K=10, C=64, P=64), ["softmax"])
    return w


def vector_space(batch: int = 1, **overrides):
    """:func:`tests.helpers.make_space` with the zoo network replaced by :func:`vector_workload`
    and ``vector_lanes`` searched over :data:`LANES`."""
    hardware = {"vector_lanes": LANES, **overrides.pop("hardware", {})}
    return make_space(graph=vector_workload(batch), workload={"network": "resnet18", "batch": batch}, hardware=hardware, **overrides)


SPACE = vector_space()
MODEL = AnalyticalModel(SPACE)
PIPE_SPACE = vector_space(4, schedule={"mode": ["layer_by_layer", "pipelined"]})
PIPE_MODEL = AnalyticalModel(PIPE_SPACE)
NAMES = SPACE.lowered.names

seeds = st.integers(min_value=0, max_value=2**31 - 1)
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def column(name: str) -> int:
    return NAMES.index(name)


def with_lanes(space, rows: torch.Tensor, lanes: int) -> torch.Tensor:
    """``rows`` with every candidate's vector unit set to ``lanes`` lanes."""
    col = next(i for i, k in enumerate(space.knobs) if k.name == "hw.vector_lanes")
    rows = rows.clone()
    rows[:, col] = LANES.index(lanes)
    return rows


def test_the_workload_is_what_the_test_says():
    lw = SPACE.lowered
    vector = [column("pool"), column("softmax")]
    assert lw.is_vector[vector].all() and int(lw.is_vector.sum()) == 2
    assert lw.side_bytes[column("conv2")] == 32 * 16 * 16 and lw.side_bytes.sum() == lw.side_bytes[column("conv2")]
    assert lw.vector_work[column("softmax")] == 5 * 64 * 64


def test_vector_layers_have_no_macs_and_no_weights():
    lw = SPACE.lowered
    vec = lw.is_vector
    assert torch.all(lw.macs[vec] == 0) and torch.all(lw.filter_bytes[vec] == 0) and not lw.has_weights[vec].any()
    assert torch.all(MODEL.weight_bytes[vec] == 0)
    assert SPACE.workload.total_macs == sum(int(m) for m in lw.macs)


def test_detail_shows_the_vector_cycles():
    rows = random_rows(SPACE, 64, seed=3)
    c = SPACE.decode(rows)
    layers = MODEL.evaluate_rows(rows, detail=True).layers
    want = torch.ceil(SPACE.lowered.vector_work[None, :] / c.vector_lanes[:, None])
    assert torch.equal(layers["vector_cycles"], want)
    vec = SPACE.lowered.is_vector
    # a vector layer's compute cycles are its vector cycles; it has no array cycles
    assert torch.equal(layers["compute_cycles"][:, vec], want[:, vec])
    assert torch.all(layers["array_cycles"][:, vec] == 0)
    # every layer takes at least its vector cycles, and a MAC layer at least its array's
    assert torch.all(layers["total_cycles"] >= layers["vector_cycles"])
    assert torch.all(layers["total_cycles"] >= layers["array_cycles"])
    assert torch.all(layers["stall_cycles"] >= 0)
    # a layer with no vector work has no vector cycles
    assert torch.all(layers["vector_cycles"][:, column("fc")] == 0)


def test_one_lane_raises_latency():
    rows = with_lanes(SPACE, random_rows(SPACE, 32, seed=1), 16)
    wide = MODEL.evaluate_rows(rows, detail=True)
    narrow = MODEL.evaluate_rows(with_lanes(SPACE, rows, 1), detail=True)
    # never faster; slower unless the chip's DRAM traffic bounds the run (the low-bandwidth choices)
    assert torch.all(narrow.metrics["latency_s"] >= wide.metrics["latency_s"])
    assert float((narrow.metrics["latency_s"] > wide.metrics["latency_s"]).double().mean()) > 0.5
    softmax = column("softmax")
    assert torch.all(narrow.layers["vector_cycles"][:, softmax] == 5 * 64 * 64)
    assert torch.all(narrow.layers["total_cycles"][:, softmax] >= 5 * 64 * 64)
    # fewer lanes: less area, so a cheaper die
    assert torch.all(narrow.metrics["area_mm2"] < wide.metrics["area_mm2"])


def test_the_epilogue_bounds_a_mac_layer():
    """conv2 with one lane: 2 ops × 8,192 outputs = 16,384 epilogue cycles, more than its array's."""
    rows = with_lanes(SPACE, random_rows(SPACE, 32, seed=2), 1)
    layers = MODEL.evaluate_rows(rows, detail=True).layers
    conv2 = column("conv2")
    total, array = layers["total_cycles"][:, conv2], layers["array_cycles"][:, conv2]
    assert torch.all(total == torch.maximum(array, torch.full_like(array, 2 * 32 * 16 * 16)))
    # compute stays the array's (systolic) compute
    assert torch.all(layers["compute_cycles"][:, conv2] <= array)


@fast
@given(seed=seeds, lanes=st.sampled_from(LANES[:-1]))
def test_more_vector_lanes_never_raise_latency(seed, lanes):
    for model, space in ((MODEL, SPACE), (PIPE_MODEL, PIPE_SPACE)):
        rows = random_rows(space, 16, seed=seed)
        base = model.evaluate_rows(with_lanes(space, rows, lanes)).metrics["latency_s"]
        for more in LANES[LANES.index(lanes) + 1:]:
            faster = model.evaluate_rows(with_lanes(space, rows, more)).metrics["latency_s"]
            assert torch.all(faster <= base * (1 + 1e-12))


@pytest.mark.parametrize("model, space", [(MODEL, SPACE), (PIPE_MODEL, PIPE_SPACE)], ids=["layer_by_layer", "pipelined"])
def test_direct_equals_tabulated(model, space):
    rows = random_rows(space, 128, seed=9)
    c = space.decode(rows)
    direct = model.evaluate_direct(c, detail=True)
    fast_ = model.evaluate_rows(rows, detail=True)
    assert model.tabulated.ready()
    for name in ("compute_cycles", "total_cycles", "vector_cycles", "array_cycles", "dram_bytes", "start_s", "end_s"):
        assert torch.equal(fast_.layers[name], direct.layers[name]), name
    for name in ("latency_s", "area_mm2", "cost_usd"):
        assert torch.equal(fast_.metrics[name], direct.metrics[name]), name
    torch.testing.assert_close(fast_.metrics["energy_j"], direct.metrics["energy_j"], rtol=1e-15, atol=0)


def test_vector_energy_and_area_follow_the_constants():
    """Energy does not depend on the lanes (only time does); an op costs Horowitz's add of the
    precision at the node's energy scale; the die holds lanes × a PE's area per core."""
    rows = random_rows(SPACE, 8, seed=4)
    c = SPACE.decode(rows)
    node = TECH_NODES[SPACE.node_names[int(c.node[0])]]
    e_one = MODEL.layer_costs(replace(c, vector_lanes=torch.ones_like(c.vector_lanes))).energy_j
    e_two = MODEL.layer_costs(replace(c, vector_lanes=2 * torch.ones_like(c.vector_lanes))).energy_j
    # energy does not depend on the lanes (only time does)
    torch.testing.assert_close(e_one, e_two, rtol=1e-15, atol=0)
    assert node.vector_op_energy_pj[1] == pytest.approx(0.03 * node.mac_energy_pj[1] / 0.23)
    kw = dict(pe_rows=16, pe_cols=16, sram_kib=256, n_cores=4, n_dram_ports=1, precision_bytes=1, dram_kind="ddr4")
    extra = hwcost.area_mm2(node, **kw, vector_lanes=16) - hwcost.area_mm2(node, **kw)
    want = 4 * 16 * node.pe_area_um2[1] * 1e-6 / (1 - node.overhead_area_fraction)
    assert float(extra) == pytest.approx(want, rel=1e-5)  # (float32: Python numbers in)


class ConstantOracle:
    """A stand-in array simulator: every job (one GEMM) takes ``cycles`` cycles."""

    def __init__(self, cycles: float) -> None:
        self.cycles, self.seen = cycles, []

    def run(self, jobs, progress=None):
        self.seen.extend(jobs)
        return [LayerResult(self.cycles) for _ in jobs]


def layer_by_layer_candidates(n: int, seed: int, lanes: int):
    rows = with_lanes(SPACE, random_rows(SPACE, n, seed=seed), lanes)
    return SPACE.decode(rows)


def test_vector_layers_get_no_oracle_job_and_an_epilogue_bounds_the_oracle_cycles():
    c = layer_by_layer_candidates(6, seed=5, lanes=1)
    dj = design_jobs(SPACE, c)
    vec = SPACE.lowered.is_vector.numpy()
    assert list(dj.mac) == list(~vec) and np.all(dj.repeats[vec] == 0)
    assert {job.M * job.N * job.K for job in dj.jobs} <= {int(SPACE.lowered.macs[l]) // int(SPACE.lowered.groups[l]) for l in np.flatnonzero(~vec)}
    oracle = ConstantOracle(1.0)
    result = oracle_evaluate(oracle, MODEL, c)
    layers = MODEL.evaluate(c, detail=True).layers
    assert len(oracle.seen) == len(dj.jobs)
    # vector layers: the analytical model's cycles; MAC layers: max(oracle, epilogue) (1 lane: the epilogue)
    assert torch.equal(result.layer_cycles[:, vec], layers["total_cycles"][:, vec])
    conv2 = column("conv2")
    assert torch.all(result.layer_cycles[:, conv2] == 2 * 32 * 16 * 16)
    assert torch.all(result.layer_cycles[:, column("fc")] == 1.0)
    # an oracle that agrees with the array model gives the analytical latency back
    exact = oracle_evaluate(ArrayOracle(MODEL, c, dj), MODEL, c)
    torch.testing.assert_close(exact.latency_s, MODEL.evaluate(c).metrics["latency_s"], rtol=1e-12, atol=0)


class ArrayOracle:
    """An oracle that answers each job with the analytical model's array cycles of one GEMM."""

    def __init__(self, model, c, dj) -> None:
        layers = model.evaluate(c, detail=True).layers
        self.answers = {}
        for p in range(len(c)):
            for l in np.flatnonzero(dj.mac):
                self.answers[int(dj.index[p, l])] = float(layers["array_cycles"][p, l]) / float(dj.repeats[l])
        self.jobs = dj.jobs

    def run(self, jobs, progress=None):
        return [LayerResult(self.answers[self.jobs.index(job)]) for job in jobs]


def test_the_surrogate_corrects_mac_layers_only():
    c = layer_by_layer_candidates(8, seed=6, lanes=1)
    surrogate = LatencySurrogate(members=3)  # untrained: arbitrary residuals
    pred = surrogate.predict_designs(MODEL, c)
    layers = MODEL.evaluate(c, detail=True).layers
    vec = SPACE.lowered.is_vector
    for member in pred.layer_cycles:
        assert torch.equal(member[:, vec], layers["total_cycles"][:, vec])
        assert torch.all(member[:, ~vec] >= layers["vector_cycles"][:, ~vec])
