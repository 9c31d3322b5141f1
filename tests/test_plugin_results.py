"""What a plug-in returns is checked strictly: a floating [P] tensor or array per provided metric.
Anything else is one error for the whole batch naming the plug-in, the metric, what it got and
what was expected; a plug-in that raises for some candidates still fails only those trials; a run
whose every trial failed is loud (stderr, summary.json, exit code 2)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from codesign.errors import PluginError
from codesign.model.evaluator import Evaluator
from tests.helpers import POPULATION, assert_one_error, cli, random_rows, write_design

P = 8


class Returns:
    """A plug-in providing ``cost_usd`` that returns ``make(metrics)``, counting its calls."""

    provides = ("cost_usd",)

    def __init__(self, make) -> None:
        self.make, self.calls = make, 0

    def evaluate(self, candidates, metrics):
        self.calls += 1
        return self.make(metrics)


WRONG = [
    ("python-float", lambda m: {"cost_usd": 1.0}, "got a Python float 1.0"),
    ("python-list", lambda m: {"cost_usd": m["cost_usd"].tolist()}, "got a Python list"),
    ("int-tensor", lambda m: {"cost_usd": m["cost_usd"].long()}, "got a torch tensor of dtype int64 and shape [8]"),
    ("int-array", lambda m: {"cost_usd": np.ones(P, dtype=np.int32)}, "got a numpy array of dtype int32 and shape [8]"),
    ("column", lambda m: {"cost_usd": m["cost_usd"][:, None]}, "got a torch tensor of dtype float64 and shape [8, 1]"),
    ("too-short", lambda m: {"cost_usd": m["cost_usd"][:-1]}, "shape [7]"),
    ("scalar-tensor", lambda m: {"cost_usd": m["cost_usd"].sum()}, "shape []"),
    ("missing-key", lambda m: {"cost": m["cost_usd"]}, "missing from the result (it has ['cost'])"),
]


@pytest.mark.parametrize(("case", "make", "got"), WRONG, ids=[c[0] for c in WRONG])
def test_a_wrong_result_is_one_error_for_the_whole_batch(small_space, case, make, got):
    plugin = Returns(make)
    evaluator = Evaluator(small_space, [plugin])
    with pytest.raises(PluginError) as error:
        evaluator.evaluate_rows(random_rows(small_space, P))
    message = str(error.value)
    assert message.startswith("plug-in Returns: metric 'cost_usd': "), message
    assert got in message, message
    assert "expected a floating [P] tensor or array, P = 8 candidates" in message
    assert plugin.calls == 1  # not retried candidate by candidate


def test_a_result_that_is_not_a_mapping(small_space):
    evaluator = Evaluator(small_space, [Returns(lambda m: [m["cost_usd"]])])
    with pytest.raises(PluginError, match=r"plug-in Returns: evaluate\(\) returned a Python list .*expected a mapping from each provided "
                                          r"metric \(cost_usd\) to a floating \[P\] tensor or array, P = 8"):
        evaluator.evaluate_rows(random_rows(small_space, P))


@pytest.mark.parametrize("make", [
    lambda m: {"cost_usd": m["cost_usd"].float() * 2},
    lambda m: {"cost_usd": m["cost_usd"].numpy() * 2},
    lambda m: {"cost_usd": (m["cost_usd"] * 2).numpy().astype(np.float32)},
], ids=["float32-tensor", "float64-array", "float32-array"])
def test_floating_tensors_and_arrays_are_accepted(small_space, make):
    rows = random_rows(small_space, P)
    plain, _ = Evaluator(small_space).evaluate_rows(rows)
    evaluator = Evaluator(small_space, [Returns(make)])
    values, errors = evaluator.evaluate_rows(rows)
    column = evaluator.metric_names.index("cost_usd")
    assert errors == [None] * P
    np.testing.assert_allclose(values[:, column], 2 * plain[:, column], rtol=1e-6)


class RaisesForSome:
    provides = ("cost_usd",)

    def evaluate(self, candidates, metrics):
        if bool((candidates.pe_cols == 8).any()):
            raise ValueError("no die cost for 8 columns")
        return {"cost_usd": metrics["cost_usd"] * 2}


def test_a_plugin_that_raises_for_some_candidates_fails_only_those(small_space):
    rows = random_rows(small_space, 64, seed=3)
    evaluator = Evaluator(small_space, [RaisesForSome()])
    values, errors = evaluator.evaluate_rows(rows)
    bad = (small_space.decode(rows).pe_cols == 8).numpy()
    assert 0 < bad.sum() < len(bad)
    assert [e is not None for e in errors] == bad.tolist()
    assert all(e == "plug-in RaisesForSome raised ValueError: no die cost for 8 columns" for e in np.array(errors, dtype=object)[bad])
    cost = values[:, evaluator.metric_names.index("cost_usd")]
    assert np.isnan(cost[bad]).all() and np.isfinite(values[~bad]).all()


# --- through the shell ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _forget_plugin_modules():
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("resplug_"):
            del sys.modules[name]


def _plugin_design(tmp_path, module: str, body: str):
    (tmp_path / f"{module}.py").write_text("import torch\n\n" + body)
    return write_design(tmp_path, plugins=[f"{module}:Plug"])


def test_a_plugin_returning_a_float_stops_before_any_work(capsys, tmp_path):
    design = _plugin_design(tmp_path, "resplug_float", "class Plug:\n    provides = ('cost_usd',)\n"
                                                       "    def evaluate(self, candidates, metrics):\n        return {'cost_usd': 1.0}\n")
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", design, "--trials", POPULATION, "--out", out, "--no-progress")
    assert_one_error(code, err, "plug-in Plug", "metric 'cost_usd'", "got a Python float 1.0", "expected a floating [P] tensor or array")
    assert not out.exists()


def test_a_wrong_result_found_during_the_search_fails_the_run_loudly(capsys, tmp_path):
    # Right for the two designs checked before the run, wrong for a whole generation.
    design = _plugin_design(tmp_path, "resplug_late", "class Plug:\n    provides = ('cost_usd',)\n"
                                                      "    def evaluate(self, candidates, metrics):\n"
                                                      "        c = metrics['cost_usd']\n        return {'cost_usd': c if len(c) <= 2 else c[:2]}\n")
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", design, "--trials", POPULATION, "--out", out, "--no-progress")
    assert_one_error(code, err, "plug-in Plug", "metric 'cost_usd'", "shape [2]", f"P = {POPULATION} candidates")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "PluginError" in summary["error"] and summary["n_trials"] == 0


def test_a_run_whose_every_trial_failed_exits_2_and_says_why(capsys, tmp_path):
    design = _plugin_design(tmp_path, "resplug_all", "class Plug:\n    provides = ('cost_usd',)\n"
                                                     "    def evaluate(self, candidates, metrics):\n"
                                                     "        raise RuntimeError('licence server unreachable')\n")
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "explore", design, "--trials", 2 * POPULATION, "--out", out, "--no-progress")
    reason = "plug-in Plug raised RuntimeError: licence server unreachable"
    assert code == 2, err
    assert "Traceback" not in err and stdout == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"codesign: error: {out}: every one of the {2 * POPULATION} trials failed"), err
    assert reason in lines[-1]
    assert f"{2 * POPULATION} of {2 * POPULATION} trials failed, 0 feasible; most common reasons: {2 * POPULATION}× {reason}" in err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["n_failed"], summary["n_feasible"]) == ("failed", 2 * POPULATION, 0)
    assert summary["fail_reasons"] == {reason: 2 * POPULATION}
    assert (pd.read_csv(out / "trials.csv")["fail_reason"] == reason).all()


def test_some_failed_trials_are_counted_on_stderr_and_in_the_summary(capsys, tmp_path):
    design = _plugin_design(tmp_path, "resplug_some", "class Plug:\n    provides = ('cost_usd',)\n"
                                                      "    def evaluate(self, candidates, metrics):\n"
                                                      "        return {'cost_usd': torch.where(candidates.pe_cols == 8, float('nan'), metrics['cost_usd'])}\n")
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", design, "--trials", 2 * POPULATION, "--out", out, "--no-progress")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    trials = pd.read_csv(out / "trials.csv")
    n_failed = int((trials["state"] == "fail").sum())
    assert 0 < n_failed < len(trials)
    assert summary["n_failed"] == n_failed
    assert summary["fail_reasons"] == {"plug-in Plug returned a non-finite cost_usd": n_failed}
    assert f"{n_failed} of {2 * POPULATION} trials failed, {summary['n_feasible']} feasible; most common reasons: {n_failed}× plug-in Plug" in err
    assert summary["status"] == "finished"

