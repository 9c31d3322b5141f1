"""SIGINT and SIGTERM at every stage of ``codesign explore`` (search, refinement, outputs): the first
stores the batch in flight, writes consistent outputs and exits 130 or 143; a second aborts at once
with one line, and whatever was stored stays readable. Real processes, real ``os.kill``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import codesign.runs.explore as explore_module
import codesign.runs.outputs as outputs_module
from tests.helpers import DESIGNS, POPULATION, cli, terminal_signals, stored_trials, write_design

OUTPUTS = ("trials.csv", "front.csv", "front.png", "summary.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LONG = 2000 * POPULATION  # far more than a test waits for (about 10 s of search): the run is always stopped by the signal



@pytest.fixture(autouse=True)
def terminal_sigint():
    """SIGINT handled as in a terminal (KeyboardInterrupt) while a test runs here: a test run as a background
    job of a script (``pytest &``) inherits SIGINT ignored, and codesign keeps an ignored signal ignored."""
    before = signal.getsignal(signal.SIGINT)
    if before == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _start(design: Path, out: Path, total: int) -> subprocess.Popen:
    argv = ["explore", str(design), "--trials", str(total), "--seed", "5", "--out", str(out), "--no-progress"]
    return subprocess.Popen([sys.executable, "-m", "codesign", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=terminal_signals)


def _wait_for_stored_batches(proc: subprocess.Popen, out: Path, size: int) -> None:
    """Until the journal holds more than ``size`` bytes: the search loop (and its handlers) runs."""
    journal = out / "study.journal"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not (journal.exists() and journal.stat().st_size > size):
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, stdout, stderr


def _assert_consistent(out: Path) -> dict:
    """The four outputs exist, agree with each other, and no temporary file is left."""
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    assert (out / "front.png").read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((out / "summary.json").read_text())
    trials = pd.read_csv(out / "trials.csv")
    assert summary["n_trials"] == len(trials)
    assert summary["n_front"] == len(pd.read_csv(out / "front.csv"))
    assert not list(out.glob(".*.tmp"))
    return summary


def _assert_whole_batches(out: Path) -> int:
    """The journal reads back, holding whole batches numbered from 0."""
    stored = stored_trials(out)
    assert len(stored) % POPULATION == 0
    assert sorted(t.number for t in stored) == list(range(len(stored)))
    return len(stored)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_first_signal_stores_the_batch_writes_outputs_and_exits_128_plus_n(capsys, tmp_path, signum):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    proc = _start(design, out, LONG)
    _wait_for_stored_batches(proc, out, 4096)
    os.kill(proc.pid, signum)
    code, stdout, err = _finish(proc)
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert "Traceback" not in err, err
    assert f"interrupted by {name}" in err.splitlines()[-1], err
    n = _assert_whole_batches(out)
    assert 0 < n < LONG
    summary = _assert_consistent(out)
    assert (summary["status"], summary["signal"], summary["n_trials"]) == ("interrupted", name, n)
    assert stdout.startswith(f"{n} trials")

    # The same command resumes the run to its total, and the run is then finished.
    total = n + 2 * POPULATION
    code, stdout, err = cli(capsys, "explore", design, "--trials", total, "--seed", "5", "--out", out, "--no-progress")
    assert code == 0, err
    summary = _assert_consistent(out)
    assert (summary["status"], summary["signal"], summary["n_trials"]) == ("finished", None, total)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_aborts_at_once_with_one_line_and_keeps_what_is_stored(capsys, tmp_path, signum):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    code, _, err = cli(capsys, "explore", design, "--trials", 2 * POPULATION, "--seed", "5", "--out", out, "--no-progress")
    assert code == 0, err
    before = {name: (out / name).read_bytes() for name in ("trials.csv", "front.csv", "front.png")}

    proc = _start(design, out, LONG)  # resumes the run
    _wait_for_stored_batches(proc, out, (out / "study.journal").stat().st_size + 4096)
    os.kill(proc.pid, signum)
    notice = proc.stderr.readline()  # the first is handled (two signals sent at once may arrive as one)
    assert "again to abort" in notice, notice
    os.kill(proc.pid, signum)
    code, _, err = _finish(proc)
    assert code == 128 + signum, notice + err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"codesign: stopped by {signal.Signals(signum).name}"), err
    assert len(lines) == 1, err  # after the first signal's notice, the abort's line and nothing else
    n = _assert_whole_batches(out)
    assert 2 * POPULATION < n < LONG

    # The outputs are the previous run's, whole, and marked as not up to date (or the new ones, whole).
    summary = _assert_consistent(out)
    if summary["status"] == "running":
        assert {name: (out / name).read_bytes() for name in before} == before
    else:
        assert summary["n_trials"] == n
    code, _, err = cli(capsys, "report", out)  # the next command brings them up to date
    assert code == 0, err
    summary = _assert_consistent(out)
    assert (summary["status"], summary["n_trials"]) == ("interrupted", n)


def _signal_during(monkeypatch, module, name: str, *signals: int) -> list[int]:
    """Replace ``module.name`` by a wrapper that sends ``signals`` to this process, then calls it."""
    real, sent = getattr(module, name), []

    def wrapper(*args, **kwargs):
        if not sent:
            for signum in signals:
                sent.append(signum)
                os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return sent


def test_signal_while_the_outputs_are_written_completes_them(capsys, monkeypatch, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    sent = _signal_during(monkeypatch, outputs_module, "plot_front", signal.SIGTERM)
    code, _, err = cli(capsys, "explore", design, "--trials", 2 * POPULATION, "--seed", "5", "--out", out, "--no-progress")
    assert sent == [signal.SIGTERM]
    assert code == 143, err
    assert "SIGTERM received after the search; the run folder is complete" in err
    summary = _assert_consistent(out)
    assert (summary["status"], summary["signal"], summary["n_trials"]) == ("finished", "SIGTERM", 2 * POPULATION)


def test_second_signal_while_the_outputs_are_written_leaves_the_previous_ones(capsys, monkeypatch, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    argv = ["explore", design, "--seed", "5", "--out", out, "--no-progress", "--trials"]
    assert cli(capsys, *argv, 2 * POPULATION)[0] == 0
    before = {name: (out / name).read_bytes() for name in ("trials.csv", "front.csv", "front.png")}
    sent = _signal_during(monkeypatch, outputs_module, "plot_front", signal.SIGINT, signal.SIGINT)
    code, _, err = cli(capsys, *argv, 4 * POPULATION)
    assert sent == [signal.SIGINT, signal.SIGINT]
    assert code == 130, err
    assert err.splitlines()[-1].startswith("codesign: stopped by SIGINT"), err
    summary = _assert_consistent(out)
    assert summary["status"] == "running"  # the previous outputs, marked as not up to date
    assert {name: (out / name).read_bytes() for name in before} == before
    assert len(stored_trials(out)) == 4 * POPULATION  # the search itself was finished and stored

    monkeypatch.undo()
    code, stdout, err = cli(capsys, *argv, 4 * POPULATION)
    assert code == 0, err
    assert stdout.startswith(f"{4 * POPULATION} trials (0 new")
    assert _assert_consistent(out)["status"] == "finished"


def test_signal_during_refinement_stops_it_and_keeps_its_designs(capsys, monkeypatch, tmp_path):
    out = tmp_path / "run"
    sent = _signal_during(monkeypatch, explore_module, "refine_front", signal.SIGINT)
    code, _, err = cli(capsys, "explore", DESIGNS / "quality_enumerable.toml", "--trials", 256, "--seed", "0", "--out", out,
                       "--refine", "mgda", "--device", "cpu", "--no-progress")
    assert sent == [signal.SIGINT]
    assert code == 130, err
    summary = _assert_consistent(out)
    refine = summary["refine"]
    assert refine["relaxed_evaluations"] == refine["starts"]  # one step, then the signal was seen
    assert summary["status"] == "interrupted" and summary["n_trials"] < 256
    assert summary["n_trials"] == len(stored_trials(out))


def test_the_next_command_removes_temporary_files_a_killed_run_left(capsys, tmp_path):
    design = write_design(tmp_path)
    out = tmp_path / "run"
    argv = ["explore", design, "--seed", "5", "--out", out, "--no-progress", "--trials"]
    assert cli(capsys, *argv, POPULATION)[0] == 0
    # What a kill -9 while writing leaves: files of the old naming and of a process that is gone.
    stale = [out / ".trials.csv.tmp", out / ".front.png.999999999.tmp", out / ".summary.json.999999998.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert cli(capsys, "report", out)[0] == 0
    assert not list(out.glob(".*.tmp"))
    for path in stale:
        path.write_bytes(b"half a file")
    assert cli(capsys, *argv, 2 * POPULATION)[0] == 0
    assert not list(out.glob(".*.tmp"))
    _assert_consistent(out)
