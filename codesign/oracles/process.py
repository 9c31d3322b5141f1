"""Simulator processes that clean up after themselves, and how long one job may take.

An oracle that runs a command (:mod:`codesign.oracles.command`, :mod:`codesign.oracles.scalesim`)
starts it with :func:`run_job_process`: in a **process group of its own** (a new session), so
that the simulator *and every process it starts* (a shell script's ``make``, an RTL simulator's
helpers, SCALE-Sim's interpreter) can be killed together. ``subprocess.run(timeout=...)`` kills
only the direct child: a wrapper script's children kept running after a timeout. The group is
killed

* when the job's timeout expires (the job fails, :class:`JobTimeout`);
* when the waiting thread is interrupted (Ctrl-C in the main thread);
* on :func:`kill_running` — what the oracle loop calls on SIGINT/SIGTERM and at its deadline,
  for every group still running (worker threads wait on their own processes).

Being in its own session, the simulator does not receive the terminal's Ctrl-C itself: this
module is what stops it.

:func:`scaled_timeout` is the default time limit of a job (see there for the rule and why).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
from dataclasses import dataclass

from codesign.oracles.jobs import LayerJob

#: Seconds a killed group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 1.0

#: The default job timeout: ``FLOOR_S + trace_words(job) / WORDS_PER_S``, at most ``CEILING_S``.
FLOOR_S = 60.0
CEILING_S = 3600.0
WORDS_PER_S = 2.0e4

_running: dict[int, subprocess.Popen] = {}  # pid -> process, every group started here and not yet reaped
_lock = threading.RLock()  # re-entrant: kill_running may run in a signal handler that interrupted its holder


class JobTimeout(RuntimeError):
    """A job ran past its time limit (``timeout_s``); its process group was killed."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"timed out after {timeout_s:g} s (the process group was killed)")
        self.timeout_s = float(timeout_s)


@dataclass
class Finished:
    """What a finished command left: exit status and its output."""

    returncode: int
    stdout: str
    stderr: str


def trace_words(job: LayerJob) -> float:
    """Operand words a cycle-accurate systolic simulator walks for ``job``: cycles × array edge.

    SCALE-Sim generates, for every cycle of every fold, one address per PE row and per PE
    column (its read/write traces), so its run time grows with ``⌈MACs / (H·W)⌉ · (H + W)``,
    not with the MAC count alone: the same layer on an 8×8 array takes about 8× longer to
    simulate than on a 64×64 one.
    """
    macs = float(job.M) * float(job.N) * float(job.K)
    cells = max(1, job.array_h * job.array_w)
    return math.ceil(macs / cells) * float(job.array_h + job.array_w)


def scaled_timeout(job: LayerJob, *, floor_s: float = FLOOR_S, ceiling_s: float = CEILING_S,
                   words_per_s: float = WORDS_PER_S) -> float:
    """Default time limit of one job, in seconds: ``floor + trace_words / words_per_s``, clamped to ``[floor, ceiling]``.

    Why this shape: a flat limit is wrong both ways — an hour lets a hung run of a tiny layer
    block the loop for an hour, and a short one kills honest runs of large layers on small
    arrays. The limit follows the simulator's work (:func:`trace_words`).

    Why these numbers: SCALE-Sim 3.0.0 ran the 12 distinct jobs of one ResNet-18 design on a
    64×64 array (2.4×10⁷ trace words in all) in 184 s on the 2-core development machine
    (``docs/surrogate.md``): 1.3×10⁵ words per second. ``words_per_s = 2×10⁴`` gives every job
    6.5× its expected time on top of the floor. The floor (60 s) covers starting an interpreter
    and importing the simulator on a busy machine, where a tiny job's own work is nothing; the
    ceiling (3600 s, the former flat limit) means no job waits longer than it did before. The
    ResNet-18 jobs get 61–244 s each on a 64×64 array and 66–1535 s on an 8×8 one.
    """
    return float(min(ceiling_s, max(floor_s, floor_s + trace_words(job) / words_per_s)))


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):  # the group is gone (or no longer ours)
        pass


def kill_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """Kill ``proc``'s process group (it leads one: ``start_new_session``): SIGTERM, then SIGKILL.

    The leader is reaped; its children, if any survived SIGTERM, get SIGKILL through the group
    (a group outlives its leader while members remain, and its id is not reused meanwhile).
    """
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:  # unkillable (uninterruptible sleep): leave it to the OS
        pass


def kill_running() -> int:
    """Kill every process group started by :func:`run_job_process` and still running; returns how many."""
    with _lock:
        procs = list(_running.values())
    for proc in procs:
        kill_group(proc, grace_s=0.2)
    return len(procs)


def running_pids() -> list[int]:
    """Process-group ids of the jobs running now (for tests and messages)."""
    with _lock:
        return sorted(_running)


def run_job_process(argv: list[str], *, input: str | None, timeout_s: float | None, env: dict | None = None,
                    cwd: str | None = None) -> Finished:
    """Run ``argv`` to completion in a new process group; kill the whole group on timeout or interruption.

    Raises :class:`JobTimeout` after ``timeout_s`` seconds (``None``: no limit), ``OSError``
    when the command cannot start; a signal-killed group (from :func:`kill_running`) returns
    its negative status like any other exit.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=True)
    with _lock:
        _running[proc.pid] = proc
    try:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.communicate()
            raise JobTimeout(timeout_s) from None
        # The leader exited; children it left behind in its group go too.
        _signal_group(proc.pid, signal.SIGKILL)
        return Finished(proc.returncode, stdout, stderr)
    finally:
        if proc.poll() is None:  # interrupted while waiting (Ctrl-C, an exception): take the group down
            kill_group(proc, grace_s=0.2)
        with _lock:
            _running.pop(proc.pid, None)
