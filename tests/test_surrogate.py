"""The latency surrogate: features, the analytical adapter for oracle jobs, training, uncertainty,
save/load with metadata, batched design prediction, cuda, and `codesign surrogate train|eval`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from codesign.cli import main
from codesign.errors import UserError
from codesign.model.analytical import AnalyticalModel
from codesign.model.surrogate import FEATURES, LatencySurrogate, SurrogateCostModel, design_table, features, job_table
from codesign.oracles import oracle_evaluate
from codesign.oracles.emulated import EmulatedOracle
from codesign.surrogate_cli import group_folds, heldout_predictions, load_oracle_rows
from tests.helpers import random_rows

# Small tensors on a shared machine: one intra-op thread is faster and steadier than two.
pytestmark = pytest.mark.usefixtures("single_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "scalesim_3.0.0_reference.csv"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def reference_rows():
    return load_oracle_rows([REFERENCE])


@pytest.fixture(scope="module")
def emulated_data(small_space):
    """Layer rows of 24 random designs of the small space, labelled by the emulated oracle."""
    model = AnalyticalModel(small_space)
    cands = small_space.decode(random_rows(small_space, 24, seed=11))
    oe = oracle_evaluate(EmulatedOracle(), model, cands)
    table = design_table(model, cands, oe.analytical)
    x = features(table).reshape(-1, len(FEATURES))
    y = torch.log(oe.layer_cycles / oe.analytical["total_cycles"]).reshape(-1)
    return model, x, y


def test_job_table_runs_the_analytical_model_per_job(reference_rows):
    """Each SCALE-Sim row on its own: the model's compute cycles are SCALE-Sim's (exact closed form)."""
    table = job_table(reference_rows.jobs)
    ref = pd.read_csv(REFERENCE).drop_duplicates(subset=None)
    assert len(table["an_total"]) == len(reference_rows) == 114
    np.testing.assert_array_equal(np.sort(table["an_compute"].numpy()), np.sort(ref["compute_cycles"].to_numpy(dtype=float)))
    x = features(table)
    assert x.shape == (114, len(FEATURES)) and torch.isfinite(x).all()


def test_design_features_are_finite(small_space):
    model = AnalyticalModel(small_space)
    cands = small_space.decode(random_rows(small_space, 64, seed=5))
    x = features(design_table(model, cands))
    assert x.shape == (64, len(small_space.lowered.names), len(FEATURES)) and torch.isfinite(x).all()


def test_fit_learns_the_residual_with_uncertainty(emulated_data):
    model, x, y = emulated_data
    n = x.shape[0]
    train, test = torch.arange(n) % 5 != 0, torch.arange(n) % 5 == 0
    surrogate = LatencySurrogate(members=3, hidden=16)
    stats = surrogate.fit(x[train], y[train], steps=150, lr=1e-2, seed=1)
    pred = surrogate.predict(x[test])
    assert pred.shape == (3, int(test.sum()))
    err = (pred.mean(0).double() - y[test]).abs().median()
    assert err < 0.5 * (y[test] - y[train].mean()).abs().median()  # much better than a constant
    assert stats["train_median_abs_err_pct"] < 25 and (pred.std(0) > 0).all() and 0.0 <= stats["alpha"] <= 1.0
    far = x[test][:4].clone()
    far[:, FEATURES.index("log_an_total")] += 40.0  # far outside the data: clamped, not exp(huge)
    assert (surrogate.predict(far).abs() <= max(abs(float(y.min())), abs(float(y.max()))) + 0.5 + 1e-5).all()


def test_calibration_falls_back_to_the_analytical_model_without_signal():
    """Residuals that are noise, unrelated to the features: the learned part is shrunk to (almost) nothing."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, len(FEATURES), generator=gen)
    y = 0.2 * torch.randn(600, generator=gen)
    groups = [np.arange(600) // 10]
    noise = LatencySurrogate(members=5, hidden=16)
    assert noise.fit(x, y, steps=150, groups=groups)["alpha"] == 0.0  # no gain beyond one standard error: off
    signal = LatencySurrogate(members=5, hidden=16)
    stats = signal.fit(x, 0.3 * torch.tanh(x[:, 0]) + 0.2 * x[:, 1].clamp(-1, 1), steps=150, lr=1e-2, groups=groups)
    assert stats["alpha"] >= 0.75 and stats["oob_rows"] > 300


def test_gate_keeps_exact_analytical_rows_exact():
    """Where the analytical model is exact (residual 0), the gate closes: predictions are exactly 0."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(400, len(FEATURES), generator=gen)
    y = torch.where(x[:, 0] > 0, 0.3 * torch.ones(400), torch.zeros(400))
    surrogate = LatencySurrogate(members=3, hidden=16)
    surrogate.fit(x, y, steps=200, lr=1e-2, calibrate=False)
    pred = surrogate.predict(x).median(dim=0).values
    assert (pred[x[:, 0] < -0.5] == 0).float().mean() > 0.95


def test_structural_gate_keeps_rows_without_analytical_stall_exact():
    """Where the training data show the analytical model exact on (nearly) every row it predicts no
    stall for, such rows get no correction at all, whatever the learned gate says; where they do
    not (the emulated oracle's fold bubbles), the rule stays off and the gate is learned."""
    gen = torch.Generator().manual_seed(2)
    col = FEATURES.index("log_an_stall")
    x = torch.randn(400, len(FEATURES), generator=gen)
    stalls = torch.arange(400) % 2 == 0
    x[:, col] = torch.where(stalls, x[:, col].abs() + 0.5, torch.zeros(400))
    y = torch.where(stalls, 0.2 + 0.1 * torch.tanh(x[:, 1]), torch.zeros(400))
    y[1] = 0.4  # one no-stall row the analytical model misses: the rule still holds (share ≥ 0.8)
    surrogate = LatencySurrogate(members=3, hidden=16)
    stats = surrogate.fit(x, y, steps=100, lr=1e-2, calibrate=False)
    assert stats["no_stall_exact"] and stats["no_stall_exact_share"] > 0.99
    probe = torch.randn(200, len(FEATURES), generator=gen)
    probe[:, col] = 0.0
    assert (surrogate.predict(probe) == 0).all()  # every member, every row
    assert (surrogate.predict(x[stalls]).median(dim=0).values != 0).float().mean() > 0.9
    off = LatencySurrogate(members=3, hidden=16)
    assert not off.fit(x, torch.where(stalls, y, 0.3 * torch.ones(400)), steps=20)["no_stall_exact"]
    assert not LatencySurrogate(members=2, hidden=8).fit(x, y, steps=5, structural_gate=False)["no_stall_exact"]


def test_predict_designs_is_one_batched_call(small_space, emulated_data):
    model, x, y = emulated_data
    surrogate = LatencySurrogate(members=3, hidden=16)
    surrogate.fit(x, y, steps=20)
    rows = random_rows(small_space, 2048, seed=9)
    cands = small_space.decode(rows)
    pred = surrogate.predict_designs(model, cands)
    assert pred.latency_s.shape == (2048,) and pred.members_s.shape == (3, 2048)
    assert pred.layer_cycles.shape == (3, 2048, len(small_space.lowered.names))
    assert torch.isfinite(pred.latency_s).all() and (pred.latency_std_s >= 0).all()
    plugin = SurrogateCostModel(surrogate, small_space)
    out = plugin.evaluate(small_space.decode(rows[:5]), {})
    torch.testing.assert_close(out["latency_s"], pred.latency_s[:5])


def test_save_and_load_round_trip(tmp_path, emulated_data):
    _, x, y = emulated_data
    surrogate = LatencySurrogate(members=2, hidden=8)
    surrogate.fit(x, y, steps=10)
    surrogate.save(tmp_path / "s", {"oracle": {"name": "emulated", "version": "1"}, "data": {"sha256": "abc"}})
    meta = json.loads((tmp_path / "s" / "surrogate.json").read_text())
    assert meta["feature_schema"]["names"] == list(FEATURES) and meta["oracle"]["name"] == "emulated" and meta["data"]["sha256"] == "abc"
    loaded = LatencySurrogate.load(tmp_path / "s")
    torch.testing.assert_close(loaded.predict(x[:50]), surrogate.predict(x[:50]))
    meta["feature_schema"]["names"] = meta["feature_schema"]["names"][:-1]
    (tmp_path / "s" / "surrogate.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="feature schema"):
        LatencySurrogate.load(tmp_path / "s")
    with pytest.raises(UserError, match="not a saved surrogate"):
        LatencySurrogate.load(tmp_path / "nothing")


def test_heldout_folds_never_train_on_the_tested_layer_or_array(reference_rows):
    lg, hg = group_folds(reference_rows.layer, 3, 0), group_folds(reference_rows.hardware, 3, 1)
    for label, groups in ((reference_rows.layer, lg), (reference_rows.hardware, hg)):
        for value in set(label.tolist()):
            assert len(set(groups[label == value].tolist())) == 1  # a layer (array) lives in one group
    x = torch.randn(len(reference_rows), len(FEATURES))
    mean, std = heldout_predictions(x, torch.zeros(len(reference_rows)), reference_rows.layer, reference_rows.hardware, k=2, steps=5, members=2)
    assert np.isfinite(mean).sum() > 0


@cuda
def test_cuda_training_and_inference_match_cpu(emulated_data, small_space):
    model, x, y = emulated_data
    gpu = LatencySurrogate(members=3).to("cuda")
    gpu.fit(x, y, steps=100, seed=2)
    assert gpu.device.type == "cuda"
    cpu = LatencySurrogate(members=3)
    cpu.load_state_dict({k: v.cpu() for k, v in gpu.state_dict().items()})
    torch.testing.assert_close(gpu.predict(x).cpu(), cpu.predict(x), rtol=1e-4, atol=1e-4)
    cuda_model = AnalyticalModel(small_space, device="cuda")
    pred = gpu.predict_designs(cuda_model, small_space.decode(random_rows(small_space, 4096).cuda()))
    assert pred.latency_s.device.type == "cuda" and torch.isfinite(pred.latency_s).all()


# --- the subcommands ----------------------------------------------------------------------------
def test_surrogate_train_and_eval_commands(tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["surrogate", "train", "--data", str(REFERENCE), "--out", str(out), "--steps", "20", "--folds", "2", "--members", "2", "--hidden", "8", "--device", "cpu"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == 114 and "heldout" in report and set(report["heldout"]["by_layer_type"]) == {"conv", "depthwise", "gemm"}
    assert {"median_abs_err_pct", "analytical_median_abs_err_pct", "kendall_tau"} <= set(report["heldout"])
    assert (out / "predicted_vs_oracle.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "surrogate.json").read_text())["oracle"] == {"name": "scalesim", "version": "3.0.0"}
    capsys.readouterr()
    code = main(["surrogate", "eval", "--model", str(out), "--data", str(REFERENCE), "--out", str(tmp_path / "ev"), "--device", "cpu"])
    assert code == 0 and "Kendall" in capsys.readouterr().out
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["rows"] == 114


def test_surrogate_commands_user_errors(tmp_path, capsys):
    assert main(["surrogate", "train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "m")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["surrogate", "train", "--data", str(bad), "--out", str(tmp_path / "m")]) == 2
    assert "not a SCALE-Sim result table" in capsys.readouterr().err
    assert main(["surrogate", "eval", "--model", str(tmp_path), "--data", str(REFERENCE)]) == 2
    assert "not a saved surrogate" in capsys.readouterr().err

