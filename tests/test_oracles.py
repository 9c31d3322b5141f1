"""Oracles: jobs and their keys, the on-disk cache, workers, the emulated / command / SCALE-Sim
oracles, and the design-level adapter (oracle cycles scheduled like the model's)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from codesign.vocab import DATAFLOWS
from codesign.errors import UserError
from codesign.model.analytical import AnalyticalModel
from codesign.model.evaluator import Evaluator
from codesign.model.systolic import compute_cycles
from codesign.oracles import LayerJob, OracleCostModel, design_jobs, get_oracle, oracle_evaluate, schedule_latency
from codesign.oracles.base import Oracle, OracleCache
from codesign.oracles.command import CommandOracle
from codesign.oracles.emulated import EmulatedOracle, emulated_cycles
from tests.helpers import make_space, random_rows

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "scalesim_3.0.0_reference.csv"
HW = dict(array_h=8, array_w=8, dataflow="os", ifmap_sram_bytes=16384.0, filter_sram_bytes=16384.0, ofmap_sram_bytes=8192.0, bandwidth=10.0)


def gemm(m: int = 64, **hw) -> LayerJob:
    return LayerJob.gemm(m, 48, 80, **{**HW, **hw})


class CountingOracle(Oracle):
    """Counts the jobs it really simulates (in-process: workers=1)."""

    name = "counting"
    version = "1"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.calls = 0

    def simulate(self, job):
        self.calls += 1
        return {"total_cycles": float(job.M * job.N * job.K) / (job.array_h * job.array_w) + 7.0}


# --- jobs ----------------------------------------------------------------------------------------
def test_job_key_is_canonical_and_round_trips():
    a, b = gemm(), gemm()
    assert a.key() == b.key() and a.key() != gemm(65).key()
    assert LayerJob.from_dict(json.loads(a.canonical())) == a
    conv = LayerJob.conv(ifmap_h=58, ifmap_w=58, filt_h=3, filt_w=3, channels=64, num_filters=64, stride=1, **HW)
    assert (conv.M, conv.N, conv.K) == (56 * 56, 64, 576)
    with pytest.raises(ValueError):
        LayerJob.gemm(1, 1, 1, **{**HW, "dataflow": "xs"})


def test_design_jobs_cover_every_layer_and_deduplicate(small_space):
    cands = small_space.decode(random_rows(small_space, 32, seed=3))
    dj = design_jobs(small_space, cands)
    assert dj.index.shape == (32, len(small_space.lowered.names))
    assert len(dj.jobs) <= dj.index.size and len({j.key() for j in dj.jobs}) <= len(dj.jobs)
    for p in (0, 7):
        for l, name in enumerate(small_space.lowered.names):
            job = dj.jobs[dj.index[p, l]]
            layer = small_space.workload.nodes[name]["layer"]
            assert (job.M, job.N, job.K) == (layer.gemm_m, layer.gemm_n, layer.gemm_k)
            assert job.array_h == int(cands.pe_rows[p]) and job.dataflow == DATAFLOWS[int(cands.dataflow[p, l])]


# --- the cache and workers -------------------------------------------------------------------------
def test_cache_on_disk_and_dedup(tmp_path):
    jobs = [gemm(m) for m in (16, 32, 16, 64)]
    oracle = CountingOracle(cache_dir=tmp_path)
    first = oracle.run(jobs)
    assert oracle.calls == 3 and oracle.stats.simulated == 3 and not any(r.cached for r in first)
    assert first[0].total_cycles == first[2].total_cycles
    again = CountingOracle(cache_dir=tmp_path)  # a new process would see the same file
    second = again.run(jobs)
    assert again.calls == 0 and all(r.cached for r in second)
    assert [r.total_cycles for r in first] == [r.total_cycles for r in second]
    assert (tmp_path / "counting-1.sqlite").is_file()
    assert len(OracleCache(tmp_path / "counting-1.sqlite").items()) == 3


def test_worker_threads_overlap_slow_jobs():
    jobs = [gemm(m) for m in range(8, 16)]
    serial = EmulatedOracle(sleep_s=0.05).run(jobs)
    oracle = EmulatedOracle(sleep_s=0.2, workers=8)
    t0 = time.perf_counter()
    parallel = oracle.run(jobs)
    assert time.perf_counter() - t0 < 0.2 * len(jobs) / 2  # overlapped, not one after the other
    assert [r.total_cycles for r in parallel] == [r.total_cycles for r in serial]
    oracle.close()


def test_failing_oracle_keeps_finished_results(tmp_path):
    class Flaky(CountingOracle):
        name = "flaky"

        def simulate(self, job):
            if job.M == 99:
                raise RuntimeError("simulator crashed")
            return super().simulate(job)

    oracle = Flaky(cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match="crashed"):
        oracle.run([gemm(16), gemm(99)])
    assert Flaky(cache_dir=tmp_path).run([gemm(16)])[0].cached

    class Bad(CountingOracle):
        name = "bad"

        def simulate(self, job):
            return {"total_cycles": float("nan")}

    with pytest.raises(RuntimeError, match="no positive total_cycles"):
        Bad(cache_dir=False).run([gemm()])


# --- the emulated oracle ----------------------------------------------------------------------------
def test_emulated_oracle_is_deterministic_and_differs_from_the_model(small_space):
    job = gemm(200)
    assert emulated_cycles(job) == emulated_cycles(job)
    closed = float(compute_cycles(*(torch.tensor(float(v)) for v in (job.M, job.N, job.K, job.array_h, job.array_w)), torch.tensor(1)))
    assert emulated_cycles(job)["compute_cycles"] >= closed
    model = AnalyticalModel(small_space)
    cands = small_space.decode(random_rows(small_space, 64, seed=1))
    got = oracle_evaluate(EmulatedOracle(), model, cands)
    ratio = (got.layer_cycles / got.analytical["total_cycles"]).flatten()
    assert torch.isfinite(ratio).all() and ratio.std() > 0.05  # structurally different, not a constant factor


# --- the design-level adapter -----------------------------------------------------------------------
def test_schedule_latency_reproduces_the_model(small_space):
    model = AnalyticalModel(small_space)
    cands = small_space.decode(random_rows(small_space, 128, seed=2))
    ev = model.evaluate(cands, detail=True)
    lat = schedule_latency(model, cands, ev.layers["total_cycles"], ev.layers["dram_bytes"])
    torch.testing.assert_close(lat, ev.metrics["latency_s"], rtol=1e-12, atol=0)
    stacked = schedule_latency(model, cands, torch.stack([ev.layers["total_cycles"], 2 * ev.layers["total_cycles"]]), ev.layers["dram_bytes"])
    assert stacked.shape == (2, 128) and (stacked[1] >= stacked[0]).all()


def test_oracle_cost_model_replaces_latency_only(small_space):
    rows = random_rows(small_space, 16, seed=4)
    plain, _ = Evaluator(small_space).evaluate_rows(rows)
    cm = OracleCostModel(EmulatedOracle(), small_space)
    evaluator = Evaluator(small_space, [cm])
    values, errors = evaluator.evaluate_rows(rows)
    names = evaluator.metric_names
    assert errors == [None] * 16 and cm.designs == 16
    lat = names.index("latency_s")
    assert not np.allclose(values[:, lat], plain[:, lat])
    np.testing.assert_allclose(values[:, names.index("cost_usd")], plain[:, names.index("cost_usd")])


def test_pipelined_designs_are_refused():
    space = make_space(workload={"network": "resnet18", "batch": 4}, schedule={"mode": ["pipelined"]})
    cands = space.decode(random_rows(space, 2))
    with pytest.raises(ValueError, match="layer_by_layer"):
        oracle_evaluate(EmulatedOracle(), AnalyticalModel(space), cands)


# --- command-line simulators ------------------------------------------------------------------------
SIM = (
    "import json, sys; job = json.load(sys.stdin); "
    "print('log line'); print(json.dumps({'total_cycles': job['M'] * int(sys.argv[1]) + job['array_h']}))"
)


def test_command_oracle_runs_a_command_per_job(tmp_path):
    oracle = CommandOracle([sys.executable, "-c", SIM, "{N}"], name="toy", version="2", cache_dir=tmp_path, workers=2)
    results = oracle.run([gemm(10), gemm(20)])
    assert [r.total_cycles for r in results] == [10 * 48 + 8, 20 * 48 + 8]
    assert (tmp_path / "toy-2.sqlite").is_file()
    bare = CommandOracle([sys.executable, "-c", "print(12345)"], cache_dir=False)
    assert bare.run([gemm()])[0].total_cycles == 12345.0
    failing = CommandOracle([sys.executable, "-c", "import sys; sys.exit('no licence')"], cache_dir=False)
    with pytest.raises(RuntimeError, match="no licence"):
        failing.run([gemm()])
    garbage = CommandOracle([sys.executable, "-c", "print('cycles: many')"], cache_dir=False)
    with pytest.raises(RuntimeError, match="cannot read cycles"):
        garbage.run([gemm()])


# --- the registry and SCALE-Sim ----------------------------------------------------------------------
def test_unknown_oracle_is_a_user_error():
    with pytest.raises(UserError, match="unknown oracle"):
        get_oracle("nosuchsim")
    with pytest.raises(UserError, match="cannot import module"):
        get_oracle("no.such.module:Sim")
    assert isinstance(get_oracle("emulated"), EmulatedOracle)


def test_missing_scalesim_is_a_user_error(monkeypatch):
    import codesign.oracles.scalesim as mod

    monkeypatch.setenv(mod.PYTHON_ENV, str(ROOT / "no-such-python"))
    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="scalesim"):
        get_oracle("scalesim", cache_dir=False)
    monkeypatch.delenv(mod.PYTHON_ENV)
    with pytest.raises(UserError, match="not installed"):
        get_oracle("scalesim", cache_dir=False)


def _scalesim_available() -> bool:
    import importlib.util

    return bool(os.environ.get("CODESIGN_SCALESIM_PYTHON")) or importlib.util.find_spec("scalesim") is not None


@pytest.mark.skipif(not _scalesim_available(), reason="SCALE-Sim not installed (set CODESIGN_SCALESIM_PYTHON)")
def test_scalesim_oracle_reproduces_a_reference_row(tmp_path):
    """One cheap reference row (a 1×1 conv on an 8×8 array) run through SCALE-Sim again."""
    ref = pd.read_csv(REFERENCE)
    r = ref[(ref.layer == "rn18_conv3_ds") & (ref.array_h == 32) & (ref.dataflow == "is") & (ref.bw_mode == "USER") & (ref.sram_setting == "small")].iloc[0]
    job = LayerJob.conv(ifmap_h=int(r.ifmap_h), ifmap_w=int(r.ifmap_w), filt_h=int(r.filt_h), filt_w=int(r.filt_w), channels=int(r.channels),
                        num_filters=int(r.num_filters), stride=int(r.stride), array_h=32, array_w=32, dataflow="is",
                        ifmap_sram_bytes=r.ifmap_sram_kB * 1024.0, filter_sram_bytes=r.filter_sram_kB * 1024.0,
                        ofmap_sram_bytes=r.ofmap_sram_kB * 1024.0, bandwidth=float(r.bw_words_per_cycle))
    oracle = get_oracle("scalesim", cache_dir=tmp_path)
    result = oracle.run([job])[0]
    assert result.total_cycles == r.total_cycles and result.stall_cycles == r.stall_cycles
    assert oracle.run([job])[0].cached


def test_the_one_scalesim_config_reads_back_and_the_validation_script_writes_it(tmp_path):
    """The oracle's ``.cfg`` template is the project's only one: ``codesign cycles --config`` reads
    what it writes, and scripts/validate_scalesim.py writes the very same text."""
    import importlib.util

    from codesign.oracles.scalesim import ScaleSimOracle, config_text
    from codesign.workload.scalesim import read_config

    path = tmp_path / "run.cfg"
    path.write_text(config_text(array_h=8, array_w=32, dataflow="is", ifmap_kb=64, filter_kb=48, ofmap_kb=16, bandwidth=10,
                                run_name="r1"))
    cfg = read_config(path)
    assert (cfg.array_h, cfg.array_w, cfg.dataflow, cfg.bandwidth, cfg.run_name) == (8, 32, "is", 10.0, "r1")
    assert (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb) == (64, 48, 16)
    path.write_text(config_text(array_h=8, array_w=8, dataflow="os", ifmap_kb=1, filter_kb=1, ofmap_kb=1, bandwidth=10, mode="CALC"))
    assert read_config(path).bandwidth is None
    job = LayerJob.gemm(64, 64, 64, array_h=16, array_w=16, dataflow="ws", ifmap_sram_bytes=1e12, filter_sram_bytes=2048.0,
                        ofmap_sram_bytes=4096.0, bandwidth=1e12)
    assert ScaleSimOracle.settings(job)["bwmode"] == "CALC"  # unlimited bandwidth is CALC mode
    spec = importlib.util.spec_from_file_location("validate_scalesim", ROOT / "scripts" / "validate_scalesim.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.config_text is config_text and not hasattr(script, "CONFIG_TEMPLATE")


def test_a_bad_oracle_is_an_argument_error_in_the_callers_words():
    from codesign.errors import ArgumentError

    with pytest.raises(ArgumentError) as info:
        get_oracle("nosuchsim")
    assert str(info.value) == "oracle='nosuchsim': unknown oracle; expected emulated, scalesim or package.module:attr"
    assert info.value.words("cli").startswith("--oracle nosuchsim: unknown oracle")
    with pytest.raises(ArgumentError, match=r"oracle='codesign.vocab:DATAFLOWS': 'codesign.vocab:DATAFLOWS' is not a codesign.oracles.Oracle"):
        get_oracle("codesign.vocab:DATAFLOWS")
    with pytest.raises(ArgumentError, match="has no attribute 'NoSuchOracle'"):
        get_oracle("codesign.oracles.emulated:NoSuchOracle")
    with pytest.raises(ArgumentError, match=r"constructing EmulatedOracle\(\) failed: TypeError"):
        get_oracle("emulated", no_such_option=1)
