"""The Python API checks its arguments once, at the entry, and names them as the caller wrote them."""

from __future__ import annotations

import pytest

import codesign
from codesign.errors import ArgumentError, UserError
from tests.helpers import EDGE, POPULATION, assert_one_error, cli, write_design


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"trials": 0}, "trials=0: expected a positive number of trials"),
        ({"trials": 2.5}, "trials=2.5: expected a positive number of trials"),
        ({"seed": -1}, "seed=-1: expected a non-negative integer"),
        ({"strategy": "greedy"}, "strategy='greedy': expected joint, sequential or random"),
        ({"sampler": "cmaes"}, "sampler='cmaes': expected nsga2, nsga3 or tpe"),
        ({"refine": "adam"}, "refine='adam': expected none, mgda or pcgrad"),
        ({"device": "tpu"}, "device='tpu': expected auto, cpu or cuda"),
        ({"strategy": "random", "sampler": "tpe"}, "sampler='tpe': applies to the joint strategy only"),
        ({"oracle": "emulated"}, "oracle='emulated': oracle and oracle_budget go together"),
        ({"oracle": "emulated", "oracle_budget": 0}, "oracle_budget=0: expected a positive number of designs"),
        ({"oracle": "emulated", "oracle_budget": 20, "strategy": "random"}, "strategy='random': the oracle loop runs its own"),
    ],
)
def test_bad_arguments_are_named_as_in_the_call(tmp_path, kwargs, words):
    out = tmp_path / "run"
    with pytest.raises(ArgumentError) as caught:
        codesign.explore(EDGE, out=out, **kwargs)
    assert str(caught.value).startswith(words), str(caught.value)
    assert isinstance(caught.value, UserError)
    assert not out.exists()


def test_the_shell_names_the_same_error_as_a_flag(capsys, tmp_path):
    code, _, err = cli(capsys, "explore", EDGE, "--strategy", "random", "--sampler", "tpe", "--out", tmp_path / "run")
    assert_one_error(code, err, "--sampler tpe: applies to the joint strategy only")
    code, _, err = cli(capsys, "explore", EDGE, "--oracle", "emulated", "--out", tmp_path / "run")
    assert_one_error(code, err, "--oracle emulated: --oracle and --oracle-budget go together")
    assert not (tmp_path / "run").exists()


def test_argument_error_renders_related_arguments_in_each_style():
    error = ArgumentError("oracle_budget", 3, "must exceed {other}", related={"other": "initial_designs"})
    assert error.words("api") == "oracle_budget=3: must exceed initial_designs"
    assert error.words("cli") == "--oracle-budget 3: must exceed --initial-designs"
    assert str(error) == error.words("api")


def test_public_names_resolve():
    for name in codesign.__all__:
        assert getattr(codesign, name) is not None, name
    assert codesign.Oracle.__name__ == "Oracle" and codesign.LayerJob.__name__ == "LayerJob"


def test_resume_refusals_are_named_as_in_the_call(tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    run = codesign.explore(design, trials=2 * POPULATION, seed=3, out=out, say=lambda _: None)
    assert run.status == "finished" and run.summary["seed"] == 3
    with pytest.raises(ArgumentError) as caught:
        codesign.explore(design, trials=3 * POPULATION, seed=4, out=out, say=lambda _: None)
    assert str(caught.value).startswith(f"seed=4: the run folder {out} holds a run with seed 3; resume it with that seed (or leave seed out)")
    with pytest.raises(ArgumentError) as caught:
        codesign.explore(design, trials=POPULATION, out=out, say=lambda _: None)
    assert str(caught.value).startswith(f"trials={POPULATION}: the run folder {out} already holds {2 * POPULATION} trials and trials is")
    run = codesign.explore(design, trials=3 * POPULATION, out=out, say=lambda _: None)  # the run's own seed
    assert (run.status, run.summary["seed"], run.summary["n_trials"]) == ("finished", 3, 3 * POPULATION)
