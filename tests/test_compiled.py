"""The compiled loops (codesign/model/_compiled.py, numba) against their torch versions.

The list schedule and the tabulated path's fusion/split plan run compiled on the cpu; the torch
versions run on cuda, under autograd, and where numba is missing. Each compiled loop must give
its torch version's bits: random DAGs, cores, split parts and fused stacks (in both forms the
list schedule takes) below, and whole evaluations of designs with fusion, splitting and pipelining.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.model import _compiled
from codesign.model.analytical import AnalyticalModel
from codesign.model.fusion import StackInputs
from codesign.model.schedule import list_schedule_lp
from tests.helpers import make_space, random_rows

pytestmark = pytest.mark.skipif(not _compiled.AVAILABLE, reason="numba is not installed")

fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def torch_only(fn):
    """``fn()`` with the compiled loops switched off (the torch versions run)."""
    _compiled.AVAILABLE = False
    try:
        return fn()
    finally:
        _compiled.AVAILABLE = True


def random_schedule(seed: int, *, split: str, stack: str):
    """A random list-schedule problem: a DAG of ``L`` layers (each fusable layer's last input from
    the layer before), ``P`` candidates over ``S`` core slots, whole-number and fractional cycles."""
    g = torch.Generator().manual_seed(seed)
    L, P, S = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((2, 14), (1, 40), (1, 7)))
    in_edges, e, fusable = [], 0, []
    for l in range(L):
        preds = sorted(set(torch.randint(0, l, (int(torch.randint(0, 4, (1,), generator=g)),), generator=g).tolist())) if l else []
        if l and bool(torch.rand(1, generator=g) < 0.5):  # fusable: its last input is from l − 1
            preds = [p for p in preds if p != l - 1] + [l - 1]
            fusable.append(l)
        in_edges.append([(p, e + j) for j, p in enumerate(preds)])
        e += len(preds)
    E = max(e, 1)
    cycles = torch.where(torch.rand(L, P, generator=g) < 0.3, 0.0, torch.randint(1, 1000, (L, P), generator=g).double())
    cycles = cycles + torch.where(torch.rand(L, P, generator=g) < 0.5, torch.rand(L, P, generator=g, dtype=torch.float64), 0.0)
    transfer = torch.rand(E, P, generator=g, dtype=torch.float64) * 200
    core = torch.randint(0, S, (L, P), generator=g)
    parts = None
    if split != "none":
        K = int(torch.randint(1, 4, (1,), generator=g))
        cores = torch.randint(0, S, (L * P, K), generator=g)
        cores[:, 0] = core.reshape(-1)  # part 0 is the layer's own core
        parts = cores.view(L, P, K) if split == "tensor" else (torch.arange(L * P, dtype=torch.int32).view(L, P), cores)
    terms = None
    if stack != "none" and fusable:
        F = len(fusable)
        fused = torch.rand(F, P, generator=g) < 0.6
        share, inv = torch.rand(F, P, generator=g, dtype=torch.float64), 1.0 / torch.randint(1, 9, (F, P), generator=g).double()
        latency = torch.rand(E, P, generator=g, dtype=torch.float64) * 20
        terms = StackInputs(fusable, fused, share, inv, latency)
        if stack == "terms":
            terms = terms.terms(cycles, transfer, in_edges)
    return (cycles, core, transfer, in_edges, S), dict(stack=terms, parts=parts)


def schedule_both_ways(args, kwargs):
    cycles, core, transfer, in_edges, S = args
    L, P = cycles.shape

    def run():
        out = (torch.empty(L, P, dtype=torch.float64), torch.empty(L, P, dtype=torch.float64), torch.empty(P, S, dtype=torch.float64),
               torch.empty(L, P, dtype=torch.int32))
        list_schedule_lp(cycles, core, transfer, in_edges, S, out=out, **kwargs)
        return out[:3]

    return run(), torch_only(run)


@given(seed=st.integers(0, 2**31 - 1), split=st.sampled_from(["none", "tuple", "tensor"]), stack=st.sampled_from(["none", "terms", "raw"]))
@fast
def test_compiled_list_schedule_gives_the_torch_loops_bits(seed, split, stack):
    args, kwargs = random_schedule(seed, split=split, stack=stack)
    compiled, reference = schedule_both_ways(args, kwargs)
    for name, a, b in zip(("start", "finish", "core_free"), compiled, reference):
        assert torch.equal(a, b), name


def test_a_nan_propagates_as_in_torch():
    args, kwargs = random_schedule(7, split="tuple", stack="raw")
    args[0][0, :] = math.nan  # the first layer's cycles
    compiled, reference = schedule_both_ways(args, kwargs)
    for a, b in zip(compiled, reference):
        assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    assert compiled[1][0].isnan().all()


FUSED = {"fusion": "search", "tile_rows": [1, 4, 16], "split": [1, 2, 4], "split_axis": ["channels", "rows"]}
HARDWARE = {"grid_rows": [2, 3], "grid_cols": 2}
SPACES = {
    "fusion_and_splitting": make_space(hardware=HARDWARE, schedule=FUSED),
    "fusion_only": make_space(hardware=HARDWARE, schedule={"fusion": "search", "tile_rows": [2, 8]}),
    "fusion_everywhere": make_space(hardware=HARDWARE, schedule={"fusion": "all", "tile_rows": [1, 4]}),
    "splitting_only": make_space(hardware=HARDWARE, schedule={"split": [1, 2], "split_axis": ["rows"]}),
    "pipelined": make_space(workload={"network": "resnet18", "batch": 4}, schedule={"mode": ["layer_by_layer", "pipelined"]}),
    "plain": make_space(),
}


@pytest.mark.parametrize("name", list(SPACES))
def test_compiled_evaluation_equals_the_torch_one(name):
    """Whole evaluations (plan, costs, list schedule) with and without the compiled loops: cycle
    counts, area and cost bit for bit; energy to 1e-15 (a split layer's NoC byte-hops are summed
    over the layers in order, torch's reduction may pair them otherwise)."""
    space = SPACES[name]
    model = AnalyticalModel(space)
    rows = random_rows(space, 257, seed=11)
    compiled, reference = model.evaluate_rows(rows), torch_only(lambda: model.evaluate_rows(rows))
    for metric, value in reference.metrics.items():
        if metric.startswith("energy") or metric.startswith("power") or metric.startswith("carbon"):
            torch.testing.assert_close(compiled.metrics[metric], value, rtol=1e-15, atol=0, msg=metric)
        else:
            assert torch.equal(compiled.metrics[metric], value), metric


@pytest.mark.parametrize("name", ["fusion_and_splitting", "fusion_only", "fusion_everywhere", "splitting_only"])
def test_compiled_plan_equals_the_torch_one(name):
    model = AnalyticalModel(SPACES[name])
    path = model.tabulated
    assert path.ready()
    k = path.codes_of_rows(random_rows(SPACES[name], 300, seed=3))
    compiled = {key: value.clone() if isinstance(value, torch.Tensor) else value for key, value in path._plan(k)[0].items()}
    reference = torch_only(lambda: path._plan(k)[0])
    assert compiled.keys() == reference.keys()
    for key, value in reference.items():
        if key == "parts":
            assert torch.equal(compiled[key][0], value[0]) and torch.equal(compiled[key][1], value[1])
        elif key == "split_byte_hops":
            torch.testing.assert_close(compiled[key], value, rtol=1e-15, atol=0)
        else:
            assert torch.equal(compiled[key], value), key


@pytest.mark.parametrize("name", ["fusion_and_splitting", "plain"])
def test_float32_evaluations_match_float64(name):
    """The model in float32 (``--dtype float32``: tables, kernels and schedule in single precision)
    gives float64's metrics to single precision, on both paths."""
    space = SPACES[name]
    rows = random_rows(space, 64, seed=2)
    model = AnalyticalModel(space, dtype=torch.float32)
    single, double = model.evaluate_rows(rows), AnalyticalModel(space).evaluate_rows(rows)
    direct = model.evaluate_direct(space.decode(rows, dtype=torch.float32))  # (the stall model counts in float64: not in the results)
    for metric, value in double.metrics.items():
        assert single.metrics[metric].dtype == direct.metrics[metric].dtype == torch.float32, metric
        torch.testing.assert_close(single.metrics[metric].double(), value, rtol=1e-4, atol=0, msg=metric)


def test_numba_with_its_jit_switched_off_runs_the_torch_loops():
    """``NUMBA_DISABLE_JIT=1`` would run the loops as plain Python, far slower than torch: the torch versions run instead."""
    import os
    import subprocess
    import sys

    code = "from codesign.model import _compiled; print(_compiled.AVAILABLE)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMBA_DISABLE_JIT": "1"}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_a_writable_cache_folder_the_loops_compile_in_each_process():
    """Installed where neither the package's folder nor numba's user cache can be written, the loops
    still compile (numba refuses ``cache=True`` then): the same bits as the torch loop."""
    import subprocess
    import sys

    code = """
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []  # no folder to cache in
import torch
from codesign.model import _compiled
from codesign.model.schedule import list_schedule_lp
cycles, transfer = torch.tensor([[3.0], [4.0], [5.0]]), torch.tensor([[1.0], [2.0]])
args = (cycles, torch.tensor([[0], [1], [0]]), transfer, [[], [(0, 0)], [(1, 1)]], 2)
compiled = list_schedule_lp(*args)
_compiled.AVAILABLE = False
assert all(torch.equal(a, b) for a, b in zip(compiled, list_schedule_lp(*args)))
print(type(_compiled._schedule._cache).__name__, compiled[1][:, 0].tolist())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["NullCache", "[3.0,", "8.0,", "15.0]"]
