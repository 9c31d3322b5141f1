"""The run's storage under the failures that happen: a journal torn by a kill or a full disk, a lock
left by a killed process (in a folder moved since), a read-only run, two workers on a fresh database.
Each test makes the failure for real (a cut file, a SIGKILLed process, a real ``codesign explore``)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from codesign.errors import UserError
from codesign.search.journal import BLOCK_KEY, JournalLock
from codesign.search.storage import JOURNAL_FILE, STUDY_NAME, TrialWriter, open_storage, open_study, short_distribution_json
from tests.helpers import ROOT, assert_one_error, cli, snapshot, write_design

optuna.logging.set_verbosity(optuna.logging.WARNING)
DIST = {"x": IntDistribution(0, 7), "df": CategoricalDistribution(["ws", "os", "is"])}
BATCH = 5


def trials(n: int, seed: int = 0) -> list[FrozenTrial]:
    rng = random.Random(seed)
    now = datetime.now()
    return [FrozenTrial(number=i, state=TrialState.COMPLETE, value=None, values=[rng.random(), rng.random()], datetime_start=now,
                        datetime_complete=now, params={"x": rng.randrange(8), "df": rng.choice(["ws", "os", "is"])}, distributions=DIST,
                        user_attrs={"metrics": {"m": 1.0}}, system_attrs={"constraints:area": -0.5}, intermediate_values={}, trial_id=-1)
            for i in range(n)]


def plain(path: Path) -> list[FrozenTrial]:
    """The trials as plain Optuna reads the file (raises if it cannot)."""
    return optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(path)))).get_trials(deepcopy=False)


def written(folder: Path, blocks: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    storage, _ = open_storage(folder, None)
    writer = TrialWriter(open_study(storage, ["minimize", "minimize"], objectives=["a", "b"]))
    for b in range(blocks):
        writer.write(trials(BATCH, seed=b), {"codesign:g": b})
    return folder / JOURNAL_FILE


def resumed_write(folder: Path, n: int = BATCH) -> None:
    storage, _ = open_storage(folder, None)
    TrialWriter(open_study(storage, ["minimize", "minimize"])).write(trials(n, seed=99))


def offsets_of_last_block(path: Path) -> dict[str, int]:
    data = path.read_bytes()
    begin = data.rindex(b'{"op_code":3', 0, data.rindex(b'"begin"'))
    first_trial = data.index(b'{"op_code":4', begin)
    second_trial = data.index(b'{"op_code":4', first_trial + 1)
    end_line = data.rindex(b'{"op_code":3')
    return {"mid-begin-line": begin + 20, "after-begin-line": first_trial, "mid-trial-line": first_trial + 90,
            "between-trial-lines": second_trial, "mid-end-line": end_line + 30, "before-last-newline": len(data) - 1}


@pytest.mark.parametrize("where", ["mid-begin-line", "after-begin-line", "mid-trial-line", "between-trial-lines", "mid-end-line",
                                   "before-last-newline"])
def test_a_torn_generation_block_is_cut_whole_before_the_next_append(tmp_path, where):
    path = written(tmp_path, 3)
    reference = [(t.params, t.values) for t in plain(path)]
    cut = offsets_of_last_block(path)[where]
    with open(path, "r+b") as f:
        f.truncate(cut)
    resumed_write(tmp_path)
    stored = plain(path)  # the glued line of the old code raised JSONDecodeError here
    assert [t.number for t in stored] == list(range(3 * BATCH))
    assert [(t.params, t.values) for t in stored[: 2 * BATCH]] == reference[: 2 * BATCH], "a finished generation was lost"
    assert [t.params for t in stored[2 * BATCH:]] == [t.params for t in trials(BATCH, seed=99)], "the torn block's trials survived"
    assert path.read_bytes().endswith(b"\n")


def test_a_torn_tail_is_cut_before_optunas_own_appends_too(tmp_path):
    path = written(tmp_path, 2)
    with open(path, "ab") as f:
        f.write(b'{"op_code":4,"worker_id":"x","study_id":0,"datetime_st')  # a plain Optuna write cut short
    storage, _ = open_storage(tmp_path, None)
    study = open_study(storage, ["minimize", "minimize"])
    study.set_user_attr("note", "after the kill")  # Optuna's own append, through JournalLock
    again = optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(path))))
    assert again.user_attrs == {"note": "after the kill"} and len(again.trials) == 2 * BATCH


def test_opening_cuts_a_torn_block_before_reading_it(tmp_path):
    """The resumed process must not hold in memory the trials its first append then cuts from the file."""
    path = written(tmp_path, 2)
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b'{"op_code":3')])  # the last block lost only its end line
    assert len(plain(path)) == 2 * BATCH  # plain Optuna still reads the cut-short block's trials
    storage, _ = open_storage(tmp_path, None)
    assert len(open_study(storage, ["minimize", "minimize"]).get_trials(deepcopy=False)) == BATCH


def test_repair_command_reports_what_it_dropped(tmp_path, capsys):
    folder = tmp_path / "run"
    path = written(folder, 2)
    (folder / "run.json").write_text("{}")
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b'{"op_code":4') + 50])
    code, out, err = cli(capsys, "repair", folder)
    assert code == 0, err
    assert "dropped" in out and "4 of them trials" in out and "a trial line cut mid-way" in out, out
    assert "Optuna reads 5 trials" in out
    code, out, _ = cli(capsys, "repair", folder)
    assert code == 0 and "intact, nothing dropped" in out


def test_repair_salvages_a_journal_the_old_code_poisoned(tmp_path, capsys):
    """The old append glued the next block onto a torn line: every later trial was in the file, unreadable."""
    folder = tmp_path / "run"
    path = written(folder, 3)
    (folder / "run.json").write_text("{}")
    data = path.read_bytes()
    second_block = data.index(b'"begin"', data.index(b'"begin"') + 1)
    start = data.rindex(b"\n", 0, second_block) + 1
    poisoned = data[:start] + data[start: start + 40] + data[start:]  # a torn copy of the line, then the line whole
    path.write_bytes(poisoned)
    with pytest.raises(ValueError):
        plain(path)
    code, out, err = cli(capsys, "repair", folder)
    assert code == 0, err
    assert "dropped 40 bytes of a cut-off record glued before a whole one" in out
    assert len(plain(path)) == 3 * BATCH
    assert path.read_bytes() == data and sorted(os.listdir(folder)) == ["run.json", JOURNAL_FILE]


def test_repair_of_what_is_not_a_run_is_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "repair", tmp_path / "nowhere")
    assert_one_error(code, err, str(tmp_path / "nowhere"), "not a codesign run folder")
    assert not (tmp_path / "nowhere").exists()


HOLDER = """
import sys, time
from codesign.search.journal import JournalLock
lock = JournalLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def timed_acquire(lock: JournalLock) -> float:
    start = time.perf_counter()
    lock.acquire()
    lock.release()
    return time.perf_counter() - start


def test_a_lock_left_by_a_killed_process_is_not_waited_for_even_in_a_moved_folder(tmp_path):
    path = written(tmp_path / "a", 1)
    proc = hold_lock(path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.path.islink(str(path) + ".lock"), "the killed holder left no lock file: nothing was tested"
    moved = tmp_path / "b"
    shutil.move(tmp_path / "a", moved)  # Optuna's own lock would now dangle and spin forever
    assert timed_acquire(JournalLock(str(moved / JOURNAL_FILE))) < 1.0
    resumed_write(moved)
    assert len(plain(moved / JOURNAL_FILE)) == 2 * BATCH and not os.path.lexists(str(moved / JOURNAL_FILE) + ".lock")


def test_a_live_holder_is_waited_for(tmp_path):
    path = written(tmp_path, 1)
    proc = hold_lock(path, 1.0)
    try:
        assert timed_acquire(JournalLock(str(path))) > 0.5
    finally:
        proc.wait()


def test_an_optuna_lock_file_is_taken_after_its_grace_period_without_spinning(tmp_path):
    path = written(tmp_path, 1)
    link = str(path) + ".lock"
    os.symlink("/gone/folder/study.journal", link)  # what a killed Optuna process leaves after the folder moved
    assert 0.3 < timed_acquire(JournalLock(str(path), grace_s=0.4)) < 3.0
    os.symlink("/gone/folder/study.journal", link)
    os.utime(link, (time.time() - 3600, time.time() - 3600), follow_symlinks=False)
    assert timed_acquire(JournalLock(str(path))) < 0.5  # an hour old: past Optuna's 30 s


def test_opening_a_study_never_writes(tmp_path):
    path = written(tmp_path, 2)
    before = (path.stat().st_mtime_ns, path.read_bytes())
    storage, _ = open_storage(tmp_path, None, read_only=True)
    study = open_study(storage, ["minimize", "minimize"], create=False)
    assert len(study.trials) == 2 * BATCH and study.metric_names == ["a", "b"]
    storage, _ = open_storage(tmp_path, None)
    open_study(storage, ["minimize", "minimize"])  # the writable open loads too, without a CREATE_STUDY record
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == [JOURNAL_FILE]
    with pytest.raises(UserError, match="no journal file"):
        open_storage(tmp_path / "empty", None, read_only=True)
    assert not (tmp_path / "empty").exists()
    with pytest.raises(UserError, match="holds no study 'other'"):
        open_study(storage, ["minimize"], study_name="other", create=False, where=str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="report writes its plots into the folder: only root can while it is read-only")
def test_report_on_a_read_only_run_leaves_its_journal_untouched(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", write_design(tmp_path), "--trials", 64, "--out", out, "--no-progress")
    assert code == 0, err
    journal = snapshot(out)[JOURNAL_FILE]
    for p in [out, *out.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        code, _, err = cli(capsys, "report", out)  # root may still write; the journal must not be
    finally:
        for p in [out, *out.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert code == 0, err
    assert snapshot(out)[JOURNAL_FILE] == journal
    assert not os.path.lexists(out / (JOURNAL_FILE + ".lock"))
    # The run's study names its objectives, as optuna-dashboard and plain Optuna show them.
    study = optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(out / JOURNAL_FILE))))
    assert study.metric_names == ["latency_s", "cost_usd"]


def test_metric_names_and_constraints_as_optunas_tools_read_them(tmp_path):
    path = written(tmp_path, 1)
    study = optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(path))))
    assert study.metric_names == ["a", "b"]
    assert study.trials[0].constraints == {"area": -0.5}
    assert study._storage.get_study_system_attrs(study._study_id)[BLOCK_KEY] == "end"


def load_kill_script():
    spec = importlib.util.spec_from_file_location("kill_explore", ROOT / "scripts" / "kill_explore.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kill_9_of_a_real_explore_loses_nothing(tmp_path):
    """A few rounds of scripts/kill_explore.py: real `codesign explore` processes killed with SIGKILL."""
    kill = load_kill_script()
    rng = random.Random(3)
    design = write_design(tmp_path)  # ResNet-18, population 32: fast to start and to write outputs
    rounds = [kill.one_kill(design, tmp_path / "run", rng, add=3000, max_delay_s=0.5, wait_s=25.0, batch=32, from_start=0.0) for _ in range(3)]
    for r in rounds:
        assert not r["unreadable"] and r["lost"] == 0 and r["half_stored"] == 0 and not r["not_contiguous"], r
        assert r["resume_rc"] == 0 and r["added"] and not r["stale_wait"] and r["leftovers"] == [], r
    assert sum(r["killed"] for r in rounds) >= 2, "the runs ended before the kills: nothing was tested"


SQLITE_WORKER = """
import sys, time
from pathlib import Path
from codesign.search.storage import open_storage, open_study
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
storage, _ = open_storage(Path("."), sys.argv[1])
study = open_study(storage, ["minimize", "minimize"], objectives=["a", "b"])
print(study.study_name, len(study.directions))
"""


def test_two_workers_on_a_fresh_sqlite_database_both_start(tmp_path):
    for attempt in range(2):  # without the retry one of the two died 4 times in 4 (alembic_version: UNIQUE constraint failed)
        url = f"sqlite:///{tmp_path}/fresh{attempt}.db"
        start = time.time() + 2.5  # both past their imports, then at once
        procs = [subprocess.Popen([sys.executable, "-c", SQLITE_WORKER, url, str(start)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            assert out.split() == ["codesign", "2"]
        study = optuna.load_study(study_name=STUDY_NAME, storage=url)
        assert study.metric_names == ["a", "b"] and len(optuna.get_all_study_names(url)) == 1


def test_trial_lines_are_lean_and_read_back_exactly(tmp_path):
    """Each distribution in Optuna's short form: the bench design's trial lines shrink by a third, exactly."""
    from codesign.design import load_design
    from codesign.space import DesignSpace

    space = DesignSpace.from_design(load_design(ROOT / "designs" / "bench_resnet50_16core.toml"))
    distributions = space.distributions
    rng = random.Random(0)
    now = datetime.now()
    made = [FrozenTrial(number=i, state=TrialState.COMPLETE, value=None, values=[1.0, 2.0, 3.0], datetime_start=now, datetime_complete=now,
                        params={k: rng.choice(d.choices) if isinstance(d, CategoricalDistribution) else rng.randint(d.low, d.high)
                                for k, d in distributions.items()},
                        distributions=distributions, user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=-1) for i in range(20)]
    storage, _ = open_storage(tmp_path, None)
    TrialWriter(open_study(storage, ["minimize"] * 3)).write(made)
    lines = [line for line in (tmp_path / JOURNAL_FILE).read_bytes().splitlines() if line.startswith(b'{"op_code":4')]
    per_trial = sum(len(line) + 1 for line in lines) / len(lines)
    full = len(json.dumps({k: optuna.distributions.distribution_to_json(d) for k, d in distributions.items()}, separators=(",", ":")))
    short = len(json.dumps({k: short_distribution_json(d) for k, d in distributions.items()}, separators=(",", ":")))
    assert len(distributions) == 115 and short < 0.65 * full and per_trial < 14_500, (per_trial, short, full)
    back = plain(tmp_path / JOURNAL_FILE)
    assert [(t.params, t.distributions) for t in back] == [(t.params, distributions) for t in made]
