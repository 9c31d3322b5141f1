"""Oracle jobs that clean up after themselves and are remembered: a simulator's whole process group is
killed on timeout, after it exits, and on SIGTERM to a real `codesign explore --oracle`; the default
timeout grows with the job; failures are cached with their reason; the deadline stops the oracle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codesign.oracles import LayerJob
from codesign.oracles.base import Oracle, OracleCache, OracleJobError, OracleStopped
from codesign.oracles.command import CommandOracle
from codesign.oracles.emulated import EmulatedOracle
from codesign.oracles.process import CEILING_S, FLOOR_S, running_pids, scaled_timeout
from tests.helpers import terminal_signals, write_design

ROOT = Path(__file__).resolve().parents[1]
HW = dict(array_h=8, array_w=8, dataflow="os", ifmap_sram_bytes=16384.0, filter_sram_bytes=16384.0, ofmap_sram_bytes=8192.0, bandwidth=10.0)

#: A simulator that starts a child (a long `sleep`), records both pids, and waits for it.
SIM = """#!/bin/sh
sleep 300 >/dev/null 2>&1 &
echo "$$ $!" >> "$SIM_PIDS"
wait
"""
#: One that starts a child it does not wait for, then answers at once.
LEAVES_CHILD = """#!/bin/sh
sleep 300 >/dev/null 2>&1 &
echo "$$ $!" >> "$SIM_PIDS"
echo 1234
"""


def gemm(m: int = 64) -> LayerJob:
    return LayerJob.gemm(m, 48, 80, **HW)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed child may wait a moment to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def all_gone(pids: list[int], within_s: float = 5.0) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def recorded_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def simulator(tmp_path: Path, text: str = SIM) -> tuple[Path, Path]:
    script, pids = tmp_path / "sim.sh", tmp_path / "pids.txt"
    script.write_text(text)
    return script, pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see process states")
def test_a_timed_out_simulator_dies_with_its_children_and_its_failure_is_remembered(tmp_path):
    script, pids = simulator(tmp_path)
    oracle = CommandOracle(["sh", str(script)], name="hangs", timeout_s=1.0, env={"SIM_PIDS": str(pids)}, cache_dir=tmp_path / "cache")
    t0 = time.monotonic()
    with pytest.raises(OracleJobError, match="timed out after 1 s"):
        oracle.run([gemm()])
    assert time.monotonic() - t0 < 10
    started = recorded_pids(pids)
    assert len(started) == 2  # the simulator and its child
    assert all_gone(started), [p for p in started if alive(p)]
    assert running_pids() == []
    # Remembered: a new oracle on the same cache fails at once, without starting the simulator.
    again = CommandOracle(["sh", str(script)], name="hangs", timeout_s=1.0, env={"SIM_PIDS": str(pids)}, cache_dir=tmp_path / "cache")
    with pytest.raises(OracleJobError, match="timed out"):
        again.run([gemm()])
    assert recorded_pids(pids) == started and again.stats.failed_cached == 1 and again.stats.failed == 0
    # A longer limit than the one it failed under runs it again.
    longer = CommandOracle(["sh", str(script)], name="hangs", timeout_s=1.5, env={"SIM_PIDS": str(pids)}, cache_dir=tmp_path / "cache")
    with pytest.raises(OracleJobError, match="timed out after 1.5 s"):
        longer.run([gemm()])
    assert len(recorded_pids(pids)) == 4 and all_gone(recorded_pids(pids))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see process states")
def test_children_a_simulator_leaves_behind_are_killed_when_it_exits(tmp_path):
    script, pids = simulator(tmp_path, LEAVES_CHILD)
    oracle = CommandOracle(["sh", str(script)], env={"SIM_PIDS": str(pids)}, cache_dir=False)
    assert oracle.run([gemm()])[0].total_cycles == 1234.0
    started = recorded_pids(pids)
    assert len(started) == 2 and all_gone(started)


#: A stand-in for SCALE-Sim's interpreter: answers the version probe, then hangs in a run with a child.
FAKE_SCALESIM_PYTHON = """#!/bin/sh
case "$2" in
  *importlib.metadata*) echo 3.0.0; exit 0;;
esac
sleep 300 >/dev/null 2>&1 &
echo "$$ $!" >> "$SIM_PIDS"
wait
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see process states")
def test_a_timed_out_scalesim_run_dies_with_its_children(tmp_path, monkeypatch):
    from codesign.oracles.scalesim import ScaleSimOracle

    python, pids = simulator(tmp_path, FAKE_SCALESIM_PYTHON)
    python.chmod(0o755)
    monkeypatch.setenv("SIM_PIDS", str(pids))
    oracle = ScaleSimOracle(python=str(python), timeout_s=1.0, cache_dir=tmp_path / "cache")
    assert oracle.version == "3.0.0-cfg1" and ScaleSimOracle(python=str(python), cache_dir=False).describe()["timeout_s"].startswith("scaled")
    with pytest.raises(OracleJobError, match="scalesim: timed out after 1 s"):
        oracle.run([gemm()])
    started = recorded_pids(pids)
    assert len(started) == 2 and all_gone(started)


def test_the_default_timeout_grows_with_the_job_between_a_floor_and_a_ceiling():
    tiny, big = gemm(8), LayerJob.gemm(3136, 256, 2304, **HW)
    assert FLOOR_S <= scaled_timeout(tiny) < FLOOR_S + 1  # a tiny job: the floor (start-up), not its work
    assert FLOOR_S < scaled_timeout(LayerJob.gemm(3136, 64, 576, **{**HW, "array_h": 64, "array_w": 64})) < scaled_timeout(big)
    assert scaled_timeout(big) == CEILING_S  # 1.8 G MACs on an 8×8 array: capped
    wide = LayerJob.gemm(3136, 128, 1152, **{**HW, "array_h": 64, "array_w": 64})
    narrow = LayerJob.gemm(3136, 128, 1152, **HW)
    assert scaled_timeout(narrow) > scaled_timeout(wide)  # the same layer simulates longer on a smaller array
    assert CommandOracle(["true"], cache_dir=False).job_timeout(narrow) == scaled_timeout(narrow)
    assert CommandOracle(["true"], timeout_s=5, cache_dir=False).job_timeout(narrow) == 5.0


class Flaky(Oracle):
    """Fails on M == 99; counts what it really runs."""

    name = "flaky-jobs"
    version = "1"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.calls: list[int] = []

    def simulate(self, job):
        self.calls.append(job.M)
        if job.M == 99:
            raise ValueError("licence server unreachable")
        return {"total_cycles": float(job.M * 10)}


def test_failed_jobs_are_cached_with_their_reason_and_not_run_again(tmp_path):
    oracle = Flaky(cache_dir=tmp_path)
    with pytest.raises(OracleJobError, match="ValueError: licence server unreachable") as info:
        oracle.run([gemm(99), gemm(16), gemm(32)])
    assert sorted(oracle.calls) == [16, 32, 99]  # the jobs after the failing one still ran
    assert [job.M for job, _ in info.value.failures] == [99]
    cache = OracleCache(tmp_path / "flaky-jobs-1.sqlite")
    assert [j.M for j, _ in cache.items()] and {j.M for j, _ in cache.items()} == {16, 32}  # failures are no training data
    assert [(j.M, reason) for j, reason in cache.failures()] == [(99, "ValueError: licence server unreachable")]
    again = Flaky(cache_dir=tmp_path)
    with pytest.raises(OracleJobError, match="licence server"):
        again.run([gemm(99), gemm(16)])
    assert again.calls == [] and again.stats.failed_cached == 1 and again.stats.cache_hits == 1
    assert again.answered([gemm(99), gemm(16), gemm(48)]) == [True, True, False]
    retry = Flaky(cache_dir=tmp_path, retry_failed=True)
    with pytest.raises(OracleJobError):
        retry.run([gemm(99)])
    assert retry.calls == [99]


def test_the_deadline_stops_the_oracle_and_keeps_what_finished():
    oracle = EmulatedOracle(sleep_s=0.15)
    oracle.set_deadline(0.4)
    jobs = [gemm(m) for m in range(8, 16)]
    with pytest.raises(OracleStopped) as info:
        oracle.run(jobs)
    assert info.value.reason == "deadline"
    done = oracle.answered(jobs)
    assert 1 <= sum(done) < len(jobs) and done == sorted(done, reverse=True)  # the first ones, in order
    oracle.set_deadline(None)
    assert len(oracle.run(jobs)) == len(jobs)  # no failure was recorded for the stopped jobs


SLOW_PLUGIN = """
from codesign.oracles.command import CommandOracle

class Slow(CommandOracle):
    name = "slowsim"
    version = "1"

    def __init__(self, **options):
        super().__init__(["sh", {script!r}], env={{"SIM_PIDS": {pids!r}}}, **options)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see process states")
@pytest.mark.parametrize(("signum", "workers", "times"),
                         [(signal.SIGTERM, 1, 1), (signal.SIGINT, 1, 1), (signal.SIGHUP, 1, 1), (signal.SIGTERM, 2, 1), (signal.SIGTERM, 1, 2)])
def test_a_signal_to_an_oracle_run_kills_the_simulator_and_its_child(tmp_path, signum, workers, times):
    script, pids = simulator(tmp_path)
    (tmp_path / "slowsim.py").write_text(SLOW_PLUGIN.format(script=str(script), pids=str(pids)))
    design = write_design(tmp_path / "d")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "CODESIGN_ORACLE_CACHE": str(tmp_path / "cache"),
           "CODESIGN_ORACLE_WORKERS": str(workers)}
    proc = subprocess.Popen([sys.executable, "-m", "codesign", "explore", str(design), "--oracle", "slowsim:Slow", "--oracle-budget", "12",
                             "--out", str(out), "--device", "cpu", "--no-progress"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=terminal_signals)
    try:
        end = time.monotonic() + 120
        while len(recorded_pids(pids)) < 2 * workers and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        started = recorded_pids(pids)
        assert len(started) == 2 * workers, proc.stderr.read() if proc.poll() is not None else "simulators did not start"
        assert all(alive(p) for p in started)
        for _ in range(times):  # a second one aborts at once
            proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all_gone(started), [p for p in started if alive(p)]
    assert recorded_pids(pids) == started  # no job started after the signal
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 128 + signum, stderr  # the shell's convention: 143 for SIGTERM, 130 for SIGINT
    summary = json.loads((out / "summary.json").read_text())
    if times == 1:
        assert summary["status"] == "interrupted" and summary["signal"] == signal.Signals(signum).name
    else:  # aborted before or after the summary was rewritten: one or the other, never half of one
        assert summary["status"] in ("running", "interrupted")
    assert json.loads((out / "run.json").read_text())["kind"] == "surrogate_loop"
    # The job killed by the signal is not remembered as a failure.
    assert OracleCache(tmp_path / "cache" / "slowsim-1.sqlite").failures() == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see process states")
def test_a_killed_oracle_run_leaves_a_summary_that_says_it_was_running(tmp_path):
    """kill -9 cannot be handled: what the folder says is that the run never finished."""
    script, pids = simulator(tmp_path)
    (tmp_path / "slowsim.py").write_text(SLOW_PLUGIN.format(script=str(script), pids=str(pids)))
    design = write_design(tmp_path / "d")
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "CODESIGN_ORACLE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "codesign", "explore", str(design), "--oracle", "slowsim:Slow", "--oracle-budget", "12",
                             "--out", str(out), "--device", "cpu", "--no-progress"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = []
    try:
        end = time.monotonic() + 120
        while not recorded_pids(pids) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        started = recorded_pids(pids)
        assert len(started) == 2
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if started:  # the simulator's group outlives a SIGKILLed parent: clean up after the test
            try:
                os.killpg(started[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "running" and summary["n_trials"] == 0
    assert json.loads((out / "run.json").read_text())["kind"] == "surrogate_loop"


def test_jobs_come_design_by_design_so_a_stopped_oracle_has_finished_whole_designs(small_space):
    from codesign.oracles import design_jobs
    from tests.helpers import random_rows

    dj = design_jobs(small_space, small_space.decode(random_rows(small_space, 16, seed=7)))
    seen: list[int] = []
    for j in dj.index.ravel().tolist():
        if j not in seen:
            seen.append(j)
    assert seen == list(range(len(dj.jobs)))  # job k is first needed after jobs 0..k-1
    oracle = EmulatedOracle()
    oracle.run(dj.jobs[: int(dj.index[:3].max()) + 1])  # as far as the first three designs need
    done = np.asarray(oracle.answered(dj.jobs))[dj.index].all(axis=1)
    assert done[:3].all()
