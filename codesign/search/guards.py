"""Runtime guards of a search loop: Ctrl-C stops after the batch in flight, torch's threads
suit small batches, no full garbage collection walks the stored trials."""

from __future__ import annotations

import gc
import signal
from contextlib import contextmanager

import torch

SINGLE_THREAD_MAX_BATCH = 4096  # populations up to this evaluate on one CPU thread (see torch_threads)


class StopOnInterrupt:
    """First Ctrl-C: finish and store the generation in flight, then stop. Second: abort."""

    def __init__(self, state, say) -> None:
        """``state``: anything with a ``stop_requested`` flag, which the first Ctrl-C sets."""
        self.state, self.say, self.previous = state, say, None

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None
        return self

    def _handler(self, signum, frame):
        if self.state.stop_requested:
            raise KeyboardInterrupt
        self.state.stop_requested = True
        self.say("interrupted: storing the generation in flight, then stopping (Ctrl-C again to abort)")

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


@contextmanager
def torch_threads(device: torch.device, batch: int, threads: int | None = None):
    """One intra-op thread for small CPU batches while the loop runs (or ``threads``).

    A generation is a few hundred rows at most: too small for torch to gain from
    threads, and on a busy machine every parallel region then waits for a core
    (measured on 2 shared cores: 164 ms instead of 4 ms for 100 ResNet-50 candidates).
    """
    before = torch.get_num_threads()
    if threads is None:
        threads = 1 if batch <= SINGLE_THREAD_MAX_BATCH else before
    change = device.type == "cpu" and threads != before
    if change:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if change:
            torch.set_num_threads(before)


@contextmanager
def no_full_gc():
    """No full garbage collection while the loop runs; young generations are still collected.

    A full collection walks every live object, and the stored trials are most of them: at
    100,000 trials each one took 0.2–0.3 s, at random generations. The loop makes no
    reference cycles worth collecting; the threshold is restored afterwards.
    """
    before = gc.get_threshold()
    gc.set_threshold(before[0], before[1], max(before[2], 1_000_000))
    try:
        yield
    finally:
        gc.set_threshold(*before)
