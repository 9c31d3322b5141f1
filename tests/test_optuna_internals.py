"""The Optuna internals codesign relies on (codesign/search/optuna_internals.py) are still there and
still mean what they meant: a new Optuna release that changes one of them fails here, by name."""

from __future__ import annotations

import inspect
import json
from datetime import datetime

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution, json_to_distribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from codesign.search import optuna_internals as oi
from codesign.search.journal import BLOCK_KEY, JournalLock
from codesign.search.storage import TrialWriter, short_distribution_json

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("module,attribute,why", oi.REQUIRED, ids=[f"{m}.{a}" for m, a, _ in oi.REQUIRED])
def test_every_required_name_exists(module, attribute, why):
    oi.resolve(module, attribute)  # raises ImportError("Optuna X changed: module.attribute is gone")


def test_resolve_names_what_is_missing():
    with pytest.raises(ImportError, match=r"Optuna .* changed .*: module 'optuna.samplers' has no attribute 'NoSuchSampler'"):
        oi.resolve("optuna.samplers", "NoSuchSampler")
    with pytest.raises(ImportError, match=r"changed .*: optuna\.samplers\.NSGAIISampler\._no_such_key is gone"):
        oi.resolve("optuna.samplers", "NSGAIISampler._no_such_key")
    with pytest.raises(ImportError, match=r"changed .*: cannot import module 'optuna\._gone'"):
        oi.resolve("optuna._gone", "x")


def test_key_strings():
    assert oi.GENERATION_KEY == "NSGAIISampler:generation", "NSGA-II's generation key changed"
    assert oi.PARENT_KEY_PREFIX == "NSGAIISampler:parent:", "NSGA-II's parent-cache key prefix changed"
    assert oi.CONSTRAINTS_KEY == "constraints", "the constraint system-attribute prefix changed"


def frozen(number: int, values, constraints: dict | None = None, state=TrialState.COMPLETE, **kw) -> FrozenTrial:
    attrs = {oi.CONSTRAINTS_KEY: list(constraints.values())} if constraints else {}
    return FrozenTrial(number=number, state=state, value=None, values=values, datetime_start=datetime(2024, 1, 2, 3, 4, 5, 6789),
                       datetime_complete=datetime(2024, 1, 2, 3, 4, 6), params=kw.get("params", {}),
                       distributions=kw.get("distributions", {}), user_attrs=kw.get("user_attrs", {}),
                       system_attrs={**attrs, **kw.get("system_attrs", {})}, intermediate_values={}, trial_id=number)


def test_constraint_attributes_are_what_frozen_trial_reads():
    t = frozen(0, [1.0, 2.0], {"latency_s": 0.5, "area_mm2": -1.0})
    assert t.constraints == {"0": 0.5, "1": -1.0}, "FrozenTrial.constraints no longer reads the constraints list"
    assert oi.is_constrained([t]) and not oi.is_constrained([frozen(1, [1.0, 2.0])])


def test_signatures_used():
    def params(f):
        return list(inspect.signature(f).parameters)

    assert "population_size" in params(oi.EliteSelection.__init__), "NSGAIIElitePopulationSelectionStrategy(population_size=)"
    assert params(oi.EliteSelection.__call__)[1:3] == ["study", "population"], "NSGAIIElitePopulationSelectionStrategy(study, population)"
    internals = "optuna.storages.journal._"
    assert len(params(oi.resolve(internals + "file", "get_lock_file"))) == 1, "get_lock_file(lock_obj)"
    assert len(params(oi.resolve(internals + "storage", "json_to_distribution"))) == 1, "json_to_distribution(text)"
    ops = oi.resolve(internals + "storage", "JournalOperation")
    assert (ops.SET_STUDY_SYSTEM_ATTR, ops.CREATE_TRIAL) == (oi.OP_SET_STUDY_SYSTEM_ATTR, oi.OP_CREATE_TRIAL) == (3, 4)


def test_elite_selection_and_nsga2_keys_as_optuna_uses_them():
    """A plain NSGAIISampler run stores the generation and parent-cache keys the engine reads back."""
    sampler = optuna.samplers.NSGAIISampler(population_size=4, seed=0)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (t.suggest_int("x", 0, 9), 9 - t.suggest_int("y", 0, 9)), n_trials=12)
    trials = study.get_trials(deepcopy=False)
    assert all(isinstance(t.system_attrs.get(oi.GENERATION_KEY), int) for t in trials), "trials lost NSGAIISampler:generation"
    storage, study_id = oi.study_storage(study)
    caches = {k: v for k, v in storage.get_study_system_attrs(study_id).items() if k.startswith(oi.PARENT_KEY_PREFIX)}
    assert caches and all(k[len(oi.PARENT_KEY_PREFIX):].isdigit() for k in caches), "parent cache keys changed"
    ids = {oi.trial_id(t) for t in trials}
    assert all(set(v) <= ids for v in caches.values()), "the parent cache no longer lists trial ids"
    chosen = oi.EliteSelection(population_size=4)(study, [t for t in trials if t.system_attrs[oi.GENERATION_KEY] == 0])
    assert len(chosen) == 4 and all(isinstance(t, FrozenTrial) for t in chosen)


def test_journal_file_internals_are_there(tmp_path):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.journal")))
    objects = {"storage": storage, "backend": storage._backend, "replay": storage._replay_result}
    missing = [f"{owner}.{name}" for owner, name in oi.JOURNAL_ATTRIBUTES if not hasattr(objects[owner], name)]
    assert not missing, f"JournalStorage internals gone: {missing}"
    assert oi.JournalFile.of(storage) is not None
    assert oi.JournalFile.of(optuna.storages.InMemoryStorage()) is None


def journal_lines(path) -> list[dict]:
    """The journal's records without worker ids and block marks, distributions parsed."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines = [line for line in lines if BLOCK_KEY not in line.get("system_attr", {})]
    for line in lines:
        line.pop("worker_id")
        if "distributions" in line:
            line["distributions"] = {k: json_to_distribution(v) for k, v in line["distributions"].items()}
    return lines


def test_trial_writer_writes_the_lines_optuna_writes(tmp_path):
    """TrialWriter's fast path appends the journal lines Optuna's own calls append (distributions in
    their short form, the block between two ``codesign:block`` lines)."""
    distributions = {"a": IntDistribution(1, 8), "b": CategoricalDistribution(["x", "y", 3])}
    trials = [
        frozen(0, [1.5, 2.0], {"lat": 0.25}, params={"a": 3, "b": "y"}, distributions=distributions,
               user_attrs={"metrics": {"m": 1.0}}, system_attrs={oi.GENERATION_KEY: 0}),
        frozen(1, None, state=TrialState.FAIL, params={"a": 8, "b": 3}, distributions=distributions, user_attrs={"fail_reason": "nan"}),
    ]
    written = {}
    for how in ("optuna", "codesign"):
        path = tmp_path / f"{how}.journal"
        study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="s", directions=["minimize", "minimize"])
        storage, study_id = oi.study_storage(study)
        copies = [frozen(t.number, t.values, t.constraints, state=t.state, params=dict(t.params), distributions=distributions,
                         user_attrs=dict(t.user_attrs), system_attrs={k: v for k, v in t.system_attrs.items() if not k.startswith("constraints")})
                  for t in trials]
        if how == "optuna":
            storage.set_study_system_attr(study_id, "codesign:x", [1, "a"])
            for t in copies:
                storage.create_new_trial(study_id, template_trial=t)
        else:
            writer = TrialWriter(study)
            assert writer.fast
            writer.write(copies, {"codesign:x": [1, "a"]})
        written[how] = journal_lines(path)
        reread = optuna.load_study(study_name=study.study_name, storage=JournalStorage(JournalFileBackend(str(path))))
        assert [(t.params, t.values, t.state, t.system_attrs) for t in reread.get_trials()] == [
            (t.params, t.values, t.state, t.system_attrs) for t in trials
        ]
    assert written["codesign"] == written["optuna"], "the journal line format changed"


@pytest.mark.parametrize("distribution", [
    IntDistribution(0, 15), IntDistribution(1, 64, log=True), IntDistribution(0, 10, step=2), FloatDistribution(0.5, 2.0),
    FloatDistribution(1e-3, 1.0, log=True), FloatDistribution(0.0, 1.0, step=0.25), CategoricalDistribution(["ws", "os", "is"]),
    CategoricalDistribution([12.8, 25.6]), CategoricalDistribution([1, 2.0, None, True, "a"]),
], ids=repr)
def test_optuna_reads_the_short_distribution_form(tmp_path, distribution):
    """The journal replay reads each trial's distributions with json_to_distribution, which takes the
    short form ({"type": "int", ...}) as well as the full one: the trial comes back exactly."""
    text = short_distribution_json(distribution)
    assert '"type"' in text, "no short form for this distribution any more"
    assert json_to_distribution(text) == distribution
    path = tmp_path / "j.journal"
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="s")
    value = distribution.choices[-1] if isinstance(distribution, CategoricalDistribution) else distribution.high
    TrialWriter(study).write([frozen(0, [1.0], params={"k": value}, distributions={"k": distribution})])
    assert '"type"' in json.loads(path.read_text().splitlines()[-2])["distributions"]["k"]
    back = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path)))).trials[0]
    assert back.distributions == {"k": distribution} and back.params == {"k": value} and type(back.params["k"]) is type(value)


class CountingLock(JournalLock):
    taken = 0

    def acquire(self) -> bool:
        CountingLock.taken += 1
        return super().acquire()


def test_optunas_own_appends_take_the_lock_object(tmp_path):
    """JournalFileBackend(lock_obj=...) takes that lock for every append: codesign's lock (and its
    torn-tail repair) covers the lines Optuna writes itself (create_study, set_metric_names, ...)."""
    path = str(tmp_path / "j.journal")
    storage = JournalStorage(JournalFileBackend(path, lock_obj=CountingLock(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    study.set_user_attr("a", 1)
    assert CountingLock.taken == 2


def test_journal_replay_skips_a_torn_last_line_and_fails_on_a_damaged_middle_one(tmp_path):
    """What codesign relies on: a torn *last* line is ignored on read (a read-only open of a killed run
    works), a damaged line followed by others raises ValueError (open_journal names `codesign repair`)."""
    path = tmp_path / "j.journal"
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(path))), study_name="s")
    study.set_user_attr("a", 1)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op_code":2,"worker_id":"w","study_id":0,"user_a')
    assert optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path)))).user_attrs == {"a": 1}
    path.write_bytes(whole + b'{"op_code":2,"worker_id":"w","study_id":0,"user_a' + whole.splitlines(keepends=True)[-1] * 2)
    with pytest.raises(ValueError):
        JournalStorage(JournalFileBackend(str(path)))


def test_dashboard_reads_the_constraints_list_codesign_writes():
    """optuna-dashboard shows a trial's constraints from the list ``system_attrs["constraints"]`` (what
    Optuna's samplers write with ``constraints_func``); Optuna reads the same list as ``Trial.constraints``."""
    from optuna.study._constrained_optimization import _get_constraints_from_system_attrs

    assert _get_constraints_from_system_attrs({oi.CONSTRAINTS_KEY: [0.5, -1.0]}) == {"0": 0.5, "1": -1.0}
