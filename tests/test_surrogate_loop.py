"""The surrogate-assisted loop: budget accounting, selection, the verified front with predictions
beside it, `codesign explore --oracle`, and its user errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from codesign.cli import main
from codesign.errors import UserError
from codesign.oracles.emulated import EmulatedOracle
from codesign.search.pareto import nondominated_mask
from codesign.search.surrogate_loop import LoopSettings, SurrogateLoop, sobol_rows, survival
from tests.helpers import make_space

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "designs" / "edge_resnet18.toml"


# Small tensors on a shared machine: one intra-op thread is faster and steadier than two.
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def tiny_design(tmp_path: Path, **replace) -> Path:
    text = EDGE.read_text()
    text = re.sub(r"(?m)^population = \d+", "population = 16", text)
    text = re.sub(r"(?m)^trials = \d+", "trials = 48", text)
    for key, value in replace.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    path = tmp_path / "design.toml"
    path.write_text(text)
    return path


def test_sobol_initial_set_is_distinct(small_space):
    rows = sobol_rows(small_space, 40, seed=3)
    assert rows.shape == (40, small_space.dimension)
    assert len({r.numpy().tobytes() for r in small_space.canonical(rows)}) == 40


def test_survival_counts_feasible_non_dominated_points():
    values = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 3.0], [0.5, 0.5]])
    assert survival(values, np.array([True, True, True, False])) == pytest.approx(2 / 4)
    assert survival(values, np.ones(4, dtype=bool)) == pytest.approx(1 / 4)


def test_loop_spends_exactly_the_budget_and_verifies_its_front():
    space = make_space(constraints={"latency_s": 0.05}, search={"population": 16})
    oracle = EmulatedOracle()
    settings = LoopSettings(budget=18, initial=8, batch=5, inner_trials=48, steps=40, members=3, hidden=16)
    result = SurrogateLoop(space, oracle, settings, seed=1, say=lambda *_: None).run()
    v = result.verified
    assert len(v) == 18 and v["round"].max() == 2 and (v["role"] == "initial").sum() == 8
    assert set(v["role"]) <= {"initial", "front", "uncertain", "rank"}
    knobs = [k.name for k in space.knobs]
    assert not v.duplicated(subset=knobs).any()  # every oracle call is a new design
    # The front is the constrained non-dominated subset of the verified designs, with predictions beside.
    front = result.front
    assert len(front) >= 1 and set(front["trial"]) <= set(v["trial"]) and front["feasible"].all()
    objs = v.loc[v["feasible"], ["latency_s", "cost_usd"]].to_numpy()
    assert len(front) == nondominated_mask(objs).sum()
    guided = front[front["role"] != "initial"]
    assert guided["predicted_latency_s"].notna().all() and np.isfinite(front["analytical_latency_s"]).all()
    assert [r["sent"] for r in result.rounds] == [5, 5]
    assert oracle.stats.simulated > 0 and result.predicted_front is not None and len(result.predicted_front) > 0


def test_explore_with_oracle_writes_a_verified_run(tmp_path, capsys):
    design = tiny_design(tmp_path)
    out = tmp_path / "run"
    code = main(["explore", str(design), "--oracle", "emulated", "--oracle-budget", "12", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    for name in ("front.csv", "oracle_trials.csv", "predicted_front.csv", "rounds.csv", "summary.json", "run.json", "design.toml", "surrogate/surrogate.json"):
        assert (out / name).is_file(), name
    front = pd.read_csv(out / "front.csv")
    assert {"latency_s", "cost_usd", "predicted_latency_s", "predicted_latency_std_s", "analytical_latency_s", "round", "role"} <= set(front.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["designs_verified"] == 12 and summary["oracle"]["name"] == "emulated" and summary["budget"] == 12
    meta = json.loads((out / "surrogate" / "surrogate.json").read_text())
    assert meta["oracle"]["name"] == "emulated" and len(meta["data"]["sha256"]) == 64
    assert "12 trials" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--oracle", "nosuchsim", "--oracle-budget", "20"], "unknown oracle"),
        (["--oracle", "emulated", "--oracle-budget", "5"], "must exceed the initial"),
        (["--oracle", "emulated"], "go together"),
        (["--oracle-budget", "20"], "go together"),
    ],
)
def test_explore_oracle_user_errors(tmp_path, capsys, args, message):
    design = tiny_design(tmp_path)
    code = main(["explore", str(design), *args, "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_oracle_loop_refuses_pipelined_and_latency_free_designs(tmp_path):
    from codesign.api import explore

    pipelined = tiny_design(tmp_path, batch="4", mode='["layer_by_layer", "pipelined"]')
    with pytest.raises(UserError, match="schedule.mode includes 'pipelined': the oracle loop supports layer_by_layer designs only"):
        explore(pipelined, oracle="emulated", oracle_budget=20, out=tmp_path / "a")
    no_latency = tiny_design(tmp_path, minimize='["energy_j", "cost_usd"]', latency_s="1.0")
    text = no_latency.read_text().replace("latency_s = 1.0\n", "")
    no_latency.write_text(text)
    with pytest.raises(UserError, match="the oracle loop corrects latency_s, which is neither an objective nor a constraint"):
        explore(no_latency, oracle="emulated", oracle_budget=20, out=tmp_path / "b")


# --- robustness: failures, deadline, rounds stored as they finish, resume ---------------------------------
FAST = dict(initial=8, batch=4, inner_trials=48, steps=40, members=3, hidden=16)


def _explore(design_path, out, oracle, budget=16, **settings):
    from codesign.design import load_design
    from codesign.runs.oracle import explore_with_oracle

    loop_settings = LoopSettings(budget=budget, **{**FAST, **settings})
    return explore_with_oracle(load_design(design_path), oracle=oracle, budget=budget, trials=None, seed=3, out=out,
                               device="cpu", say=lambda *_: None, settings=loop_settings)


class ActsAtCall(EmulatedOracle):
    """The emulated oracle that does ``act(self)`` when ``run`` is called the ``at``-th time."""

    def __init__(self, at: int, act) -> None:
        super().__init__()
        self.at, self.act, self.calls = at, act, 0

    def run(self, jobs, progress=None):
        self.calls += 1
        if self.calls == self.at:
            self.act(self)
        return super().run(jobs, progress)


def StopsAtCall(at: int) -> ActsAtCall:  # noqa: N802 - used as the oracle class it was
    """Stopped, as a signal stops it, at the ``at``-th call of ``run``."""
    return ActsAtCall(at, EmulatedOracle.stop)


def DeadlineAtCall(at: int) -> ActsAtCall:  # noqa: N802
    """Its deadline passes (long ago) at the ``at``-th call of ``run``."""
    return ActsAtCall(at, lambda oracle: setattr(oracle, "deadline", 0.0))


class AlwaysFails(EmulatedOracle):
    name = "always-fails"
    simulated = 0

    def simulate(self, job):
        AlwaysFails.simulated += 1
        raise RuntimeError(f"simulator crashed on a {job.array_h}x{job.array_w} array")


def test_every_round_is_stored_as_it_finishes_and_a_rerun_resumes_without_double_counting(tmp_path):
    design = tiny_design(tmp_path)
    stopped = _explore(design, tmp_path / "run", StopsAtCall(3))  # round 2 is cut short
    assert stopped.summary["status"] == "interrupted"
    stored = pd.read_csv(tmp_path / "run" / "oracle_trials.csv")
    assert len(stored) == 12 and sorted(set(stored["round"])) == [0, 1]
    assert list(pd.read_csv(tmp_path / "run" / "rounds.csv")["round"]) == [1]
    assert (tmp_path / "run" / "front.csv").is_file() and not (tmp_path / "run" / "surrogate").exists()
    resumed = _explore(design, tmp_path / "run", EmulatedOracle())
    assert resumed.summary["status"] == "finished" and resumed.summary["designs_verified"] == 16
    again = pd.read_csv(tmp_path / "run" / "oracle_trials.csv")
    assert len(again) == 16 and list(pd.read_csv(tmp_path / "run" / "rounds.csv")["round"]) == [1, 2]
    knobs = [c for c in again.columns if c.startswith(("hw.", "sched."))]
    assert not again.duplicated(subset=knobs).any()
    pd.testing.assert_frame_equal(again.iloc[:12][knobs], stored[knobs])
    # The resumed run is the run that was never interrupted.
    _explore(design, tmp_path / "whole", EmulatedOracle())
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole" / "oracle_trials.csv")[knobs + ["round", "role"]],
                                  again[knobs + ["round", "role"]])
    with pytest.raises(UserError, match="oracle_budget=12: the run folder .* already holds 16"):
        _explore(design, tmp_path / "run", EmulatedOracle(), budget=12, initial=8, batch=4)


def test_when_every_initial_design_fails_one_line_says_why_and_the_failures_are_kept_and_remembered(tmp_path, capsys):
    design = tiny_design(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(UserError) as info:
        _explore(design, tmp_path / "run", AlwaysFails(cache_dir=cache))
    message = str(info.value)
    assert "\n" not in message and "every one of the 8 initial designs failed" in message
    assert "simulator crashed on a" in message
    kept = pd.read_csv(tmp_path / "run" / "oracle_trials.csv")
    assert len(kept) == 8 and kept["fail_reason"].str.contains("simulator crashed").all()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["n_failed"] == 8 and summary["error"] == message
    before = AlwaysFails.simulated
    with pytest.raises(UserError, match="every one of the 8 initial designs failed"):
        _explore(design, tmp_path / "other", AlwaysFails(cache_dir=cache))
    assert AlwaysFails.simulated == before  # remembered: no job ran again


def test_the_deadline_stops_the_loop_and_reports_what_was_verified(tmp_path, capsys):
    design = tiny_design(tmp_path)
    run = _explore(design, tmp_path / "run", DeadlineAtCall(2))
    assert run.summary["status"] == "finished" and run.summary["stopped_by"] == "deadline"
    assert run.summary["designs_verified"] == 8 and len(pd.read_csv(tmp_path / "run" / "oracle_trials.csv")) == 8
    assert (tmp_path / "run" / "front.csv").is_file() and run.summary["hypervolume"] >= 0
    code = main(["explore", str(design), "--oracle", "emulated", "--oracle-budget", "12", "--oracle-deadline", "0.000001",
                 "--out", str(tmp_path / "late"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("codesign: error:")]
    assert code == 2 and "Traceback" not in err and len(errors) == 1
    assert errors[0].endswith("its deadline (1e-06 s) passed before any design was verified")


def test_oracle_deadline_argument_errors(tmp_path):
    from codesign.api import explore
    from codesign.errors import ArgumentError

    design = tiny_design(tmp_path)
    with pytest.raises(ArgumentError, match=r"^oracle_deadline=0: expected a positive number of seconds"):
        explore(design, oracle="emulated", oracle_budget=20, oracle_deadline=0, out=tmp_path / "a")
    with pytest.raises(ArgumentError) as info:
        explore(design, oracle_deadline=5, out=tmp_path / "b")
    assert info.value.words("cli") == "--oracle-deadline 5: bounds an oracle run; give --oracle too, or leave --oracle-deadline out"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_round_cut_by_the_deadline_keeps_exactly_the_designs_whose_every_job_finished():
    import torch

    from codesign.oracles.designs import design_jobs

    space = make_space(constraints={"latency_s": 0.05}, search={"population": 16})
    oracle = EmulatedOracle()
    loop = SurrogateLoop(space, oracle, LoopSettings(budget=18, **FAST), seed=1, say=lambda *_: None)
    rows = space.canonical(sobol_rows(space, 6, seed=5))
    oracle.run(design_jobs(space, space.decode(rows[:2], dtype=torch.float64)).jobs)  # these two finished in time
    oracle.set_deadline(-1.0)  # and then the deadline passed
    values, kept = loop.verify(rows, round_=1, role=["front"] * 6, predicted=np.full((6, 2), 1e-3))
    assert list(kept) == [0, 1] and len(loop.records) == 2 and loop.stopped_by == "deadline"
    assert [r["fail_reason"] for r in loop.records] == ["", ""] and np.isfinite(values).all()
    oracle.set_deadline(None)
    again, _ = loop.oracle_eval.evaluate_rows(rows[:2])
    np.testing.assert_array_equal(values, again)  # the oracle's own answers, not stand-ins


def test_a_run_stopped_before_its_first_round_starts_again_on_the_same_folder(tmp_path):
    design = tiny_design(tmp_path)
    stopped = _explore(design, tmp_path / "run", StopsAtCall(1))
    assert stopped.summary["status"] == "interrupted" and stopped.summary["n_trials"] == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["kind"] == "surrogate_loop"
    again = _explore(design, tmp_path / "run", EmulatedOracle(), budget=12)
    assert again.summary["status"] == "finished" and again.summary["designs_verified"] == 12
    with pytest.raises(UserError, match="seed=4: the run folder .* holds an oracle run with seed 3"):
        from codesign.design import load_design
        from codesign.runs.oracle import explore_with_oracle

        explore_with_oracle(load_design(design), oracle="emulated", budget=12, trials=None, seed=4, out=tmp_path / "run",
                            settings=LoopSettings(budget=12, **FAST))


def test_a_resume_stopped_while_it_replays_loses_none_of_the_stored_designs(tmp_path):
    design = tiny_design(tmp_path)
    _explore(design, tmp_path / "run", StopsAtCall(3))
    before = (tmp_path / "run" / "oracle_trials.csv").read_text()
    assert len(pd.read_csv(tmp_path / "run" / "oracle_trials.csv")) == 12
    stopped = _explore(design, tmp_path / "run", StopsAtCall(1))  # stopped in the replay of round 0
    assert stopped.summary["status"] == "interrupted"
    assert (tmp_path / "run" / "oracle_trials.csv").read_text() == before
    assert _explore(design, tmp_path / "run", EmulatedOracle()).summary["designs_verified"] == 16
