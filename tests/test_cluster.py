"""Beyond one machine, with the real components on 127.0.0.1: a Dask scheduler and two workers started as a
user starts them (``dask scheduler``, ``dask worker tcp://…``), and a PostgreSQL server of the test's own
(``initdb``, ``pg_ctl start``). Oracle jobs and slow plug-ins on the cluster give what the in-process path
gives, also when a worker is killed (kill -9) mid-round; a second coordinator on a running study is refused
(exit 2, naming the running one); a study on PostgreSQL is written a generation per transaction and
resumes, after a kill -9 too, into the run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from codesign import api
from codesign.design import load_design
from codesign.errors import ArgumentError, DesignError
from codesign.oracles.emulated import EmulatedOracle
from codesign.packing import SCHEDULE_ATTR, stored_key
from codesign.runs.oracle import explore_with_oracle
from codesign.search import lease
from codesign.search.storage import STUDY_NAME, open_storage, open_study
from codesign.search.surrogate_loop import LoopSettings
from tests.helpers import ROOT, assert_one_error, cli, write_design
from tests.servers import DaskCluster, Postgres, find_initdb

pytestmark = pytest.mark.usefixtures("single_torch_thread")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SLOW_PLUGIN = '''
import time

class SlowCarbon:
    """A per-design simulator: slow, and declared so."""
    provides = ("carbon_kg",)
    slow = True

    def evaluate(self, candidates, metrics):
        time.sleep(float(__import__("os").environ.get("SLOW_PLUGIN_S", "0.002")) * len(candidates))
        return {"carbon_kg": metrics["area_mm2"] * 0.5 + metrics["energy_j"]}
'''


@pytest.fixture(scope="module")
def dask_cluster():
    cluster = DaskCluster(2)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def postgres():
    bindir = find_initdb()
    if bindir is None:
        pytest.skip("no PostgreSQL initdb on PATH, in /usr/local/bin or /usr/lib/postgresql/*/bin (.ci/run installs Debian's postgresql)")
    server = Postgres(bindir)
    yield server
    server.stop()


def slow_design(folder: Path, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "slowplug.py").write_text(SLOW_PLUGIN)
    return write_design(folder, plugins=["slowplug:SlowCarbon"], **kwargs)


def knob_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(("hw.", "sched."))]


def unmarked_duplicates(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that repeat an earlier trial's design without saying so (``duplicate_of``)."""
    seen, unmarked = set(), 0
    for t in sorted(trials, key=lambda t: t.number):
        key = stored_key(t)
        if key in seen and "duplicate_of" not in t.user_attrs:
            unmarked += 1
        seen.add(key)
    return unmarked


def same_trials(a: list[optuna.trial.FrozenTrial], b: list[optuna.trial.FrozenTrial]) -> None:
    assert [(t.number, t.params, t.user_attrs.get(SCHEDULE_ATTR), t.values, t.user_attrs.get("duplicate_of")) for t in a] == \
        [(t.number, t.params, t.user_attrs.get(SCHEDULE_ATTR), t.values, t.user_attrs.get("duplicate_of")) for t in b]


# --- arguments -------------------------------------------------------------------------------------
def test_a_cluster_address_is_checked_in_the_callers_words(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("codesign.cluster.CONNECT_TIMEOUT_S", 1.0)
    design = write_design(tmp_path)
    with pytest.raises(ArgumentError, match=r"cluster='nowhere': expected a Dask scheduler's address"):
        api.explore(design, trials=10, out=tmp_path / "run", cluster="nowhere")
    code, _, err = cli(capsys, "explore", design, "--trials", "10", "--out", tmp_path / "run", "--cluster", "local:0")
    assert_one_error(code, err, "--cluster local:0", "tcp://HOST:PORT", "local:N")
    (tmp_path / "bad.toml").write_text(design.read_text() + '\n[cluster]\naddress = "8786"\n')
    with pytest.raises(DesignError, match=r"bad.toml: cluster.address = '8786': expected a Dask"):
        api.explore(tmp_path / "bad.toml", trials=10, out=tmp_path / "run")
    code, _, err = cli(capsys, "explore", design, "--trials", "10", "--out", tmp_path / "run", "--cluster", "tcp://127.0.0.1:9")
    assert_one_error(code, err, "--cluster tcp://127.0.0.1:9", "cannot reach")
    assert not (tmp_path / "run").exists()


# --- Dask ------------------------------------------------------------------------------------------
def test_slow_plugins_on_the_cluster_give_the_run_of_one_process(tmp_path, dask_cluster):
    design = slow_design(tmp_path / "d")
    here = api.explore(design, trials=96, seed=1, out=tmp_path / "here", device="cpu", say=lambda _: None)
    there = api.explore(design, trials=96, seed=1, out=tmp_path / "there", device="cpu", say=lambda _: None, cluster=dask_cluster.address)
    columns = ["trial", "state", "carbon_kg", "latency_s", "duplicate_of", *knob_columns(here.trials)]
    pd.testing.assert_frame_equal(here.trials[columns], there.trials[columns])
    assert json.loads((tmp_path / "there" / "run.json").read_text())["plugin_sources"] == \
        json.loads((tmp_path / "here" / "run.json").read_text())["plugin_sources"]


def _oracle_run(design: Path, out: Path, cluster: str | None):
    settings = LoopSettings(budget=14, initial=8, batch=3, inner_trials=64, steps=60, members=2, hidden=16, final_search=False)
    return explore_with_oracle(load_design(design), oracle=EmulatedOracle(sleep_s=0.02), budget=14, trials=None, seed=3, out=out,
                               device="cpu", say=lambda *_: None, settings=settings, cluster=cluster)


def _oracle_tasks(client) -> dict[str, int]:
    """Oracle jobs each worker has been given and not finished."""
    return {w: n for w, keys in client.processing().items() if (n := sum(str(k).startswith("codesign-emulated") for k in keys))}


def _kill_a_busy_worker(client, killed: list, done: threading.Event) -> None:
    """kill -9 a worker mid-round: once results of the round have come back and it still holds jobs."""
    pids = client.run(os.getpid)
    while not done.is_set():
        if _oracle_tasks(client):
            time.sleep(0.3)  # some jobs of the round are back
            busy = _oracle_tasks(client)
            if busy:
                worker, jobs = max(busy.items(), key=lambda item: item[1])
                os.kill(pids[worker], signal.SIGKILL)
                killed.append((worker, jobs))
                return
        time.sleep(0.05)


def test_a_worker_killed_mid_round_changes_nothing_in_the_verified_front(tmp_path, dask_cluster):
    design = write_design(tmp_path / "d")
    reference = _oracle_run(design, tmp_path / "here", None)
    with dask_cluster.client() as client:
        killed, done = [], threading.Event()
        killer = threading.Thread(target=_kill_a_busy_worker, args=(client, killed, done))
        killer.start()
        try:
            there = _oracle_run(design, tmp_path / "there", dask_cluster.address)
        finally:
            done.set()
            killer.join()
    assert killed and killed[0][1] > 0, "no worker was killed while it held oracle jobs"
    failed = [reason for reason in there.trials["fail_reason"].fillna("") if reason]
    assert not failed, failed[0][:2000]
    columns = ["round", "role", "latency_s", "cost_usd", *knob_columns(reference.trials)]
    pd.testing.assert_frame_equal(reference.trials[columns], there.trials[columns])
    pd.testing.assert_frame_equal(reference.front[columns], there.front[columns])
    assert there.summary["oracle_stats"]["failed"] == 0
    dask_cluster.wait_for(2)  # the killed worker's nanny starts it again


# --- PostgreSQL ------------------------------------------------------------------------------------
def _codesign(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "codesign", *map(str, args)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def _stored(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=url)
    except KeyError:
        return []
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL))


def test_postgresql_study_is_written_a_generation_at_a_time_and_resumes_into_the_uninterrupted_run(tmp_path, postgres):
    url = postgres.new_database()
    design = write_design(tmp_path / "d")
    first = api.explore(design, trials=50, seed=2, out=tmp_path / "pg", storage=url, device="cpu", say=lambda _: None)
    assert first.summary["trials_added"] == 50
    resumed = api.explore(design, trials=130, seed=2, out=tmp_path / "pg", storage=url, device="cpu", say=lambda _: None)
    assert resumed.summary["trials_added"] == 80 and resumed.summary["n_trials"] == 130
    assert resumed.summary["timings_s"]["store_s"] / 80 < 0.05  # one transaction per generation, not one per trial
    whole = api.explore(design, trials=130, seed=2, out=tmp_path / "journal", device="cpu", say=lambda _: None)
    plain = _stored(url)  # as plain Optuna reads it, in a fresh storage object
    assert [t.number for t in plain] == list(range(130))
    storage, _ = open_storage(tmp_path / "journal", None)
    same_trials(plain, open_study(storage, ["minimize"] * 2).get_trials(deepcopy=False))
    assert resumed.front.equals(whole.front)
    assert unmarked_duplicates(plain) == 0


def test_sqlite_study_is_written_a_generation_at_a_time_too(tmp_path):
    design = write_design(tmp_path / "d")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run = api.explore(design, trials=70, seed=4, out=tmp_path / "sqlite", storage=url, device="cpu", say=lambda _: None)
    whole = api.explore(design, trials=70, seed=4, out=tmp_path / "journal", device="cpu", say=lambda _: None)
    storage, _ = open_storage(tmp_path / "journal", None)
    same_trials(_stored(url), open_study(storage, ["minimize"] * 2).get_trials(deepcopy=False))
    assert run.front.equals(whole.front)


def test_a_second_coordinator_is_refused_and_a_kill_9_leaves_a_study_that_resumes_exactly(tmp_path, postgres):
    url = postgres.new_database()
    design = slow_design(tmp_path / "d")
    slow = {"SLOW_PLUGIN_S": "0.03"}  # 1 s per generation of 32
    first = _codesign("explore", design, "--trials", 600, "--seed", 5, "--storage", url, "--out", tmp_path / "a", "--no-progress", env=slow)
    try:
        deadline = time.monotonic() + 60
        while len(_stored(url)) < 64 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        second = _codesign("explore", design, "--trials", 600, "--seed", 5, "--storage", url, "--out", tmp_path / "b", "--no-progress")
        _, err = second.communicate(timeout=120)
        line = assert_one_error(second.returncode, err, f"--storage {url}", f"process {first.pid}", "--cluster", str(tmp_path / "a"))
        assert "is running on this study" in line
        assert not (tmp_path / "b").exists()
        first.send_signal(signal.SIGKILL)  # mid-run: the server ends its connection, and its lease with it
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    held = len(_stored(url))
    assert 64 <= held < 600 and held % 32 == 0  # whole generations only
    again = _codesign("explore", design, "--trials", 600, "--storage", url, "--out", tmp_path / "a", "--no-progress")
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    stored = _stored(url)
    assert len(stored) == 600 and unmarked_duplicates(stored) == 0  # stored = asked
    api.explore(design, trials=600, seed=5, out=tmp_path / "whole", device="cpu", say=lambda _: None)
    storage, _ = open_storage(tmp_path / "whole", None)
    same_trials(stored, open_study(storage, ["minimize"] * 2).get_trials(deepcopy=False))


def test_a_second_coordinator_on_a_run_folders_journal_is_refused_too(tmp_path, capsys):
    design = write_design(tmp_path / "d")
    api.explore(design, trials=32, out=tmp_path / "run", device="cpu", say=lambda _: None)
    storage, _ = open_storage(tmp_path / "run", None)
    holder = lease.acquire(open_study(storage, ["minimize"] * 2), out=tmp_path / "run", url=None)
    try:
        code, _, err = cli(capsys, "explore", design, "--trials", "64", "--out", tmp_path / "run", "--no-progress")
        assert_one_error(code, err, f"--out {tmp_path / 'run'}", f"process {os.getpid()}", "--cluster")
    finally:
        holder.release()
    code, _, err = cli(capsys, "explore", design, "--trials", "64", "--out", tmp_path / "run", "--no-progress")
    assert code == 0, err
