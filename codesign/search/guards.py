"""Runtime guards of a run: SIGINT, SIGTERM and SIGHUP stop it cleanly, torch's threads suit small
batches, no full garbage collection walks the stored trials.

Signals, the same for SIGINT (Ctrl-C) and SIGTERM (what a batch scheduler sends), at every stage
that runs inside :class:`StopOnInterrupt` (search, refinement, outputs): the first one only
sets :attr:`StopOnInterrupt.stop_requested`; the loops check it between batches, so the batch in
flight is stored and the outputs are written. A second one raises :class:`Aborted` at once,
except inside :func:`deferred_abort` (a storage write, outputs renamed into place), where it
waits for the end of the block: what is stored is never half-written.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager

SINGLE_THREAD_MAX_BATCH = 4096  # populations up to this evaluate on one CPU thread (see torch_threads)
# SIGHUP too: a terminal closed under a run stops it the same way (and a run started with the
# hang-up ignored, under nohup, keeps ignoring it: an inherited SIG_IGN is left alone).
SIGNALS = (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []))


class Aborted(KeyboardInterrupt):
    """A second SIGINT or SIGTERM: the run stops at once; everything already stored stays stored."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal_name(signum))

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process stopped by a signal: 128 + its number (130, 143)."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


_active: StopOnInterrupt | None = None  # the guard whose handlers are installed
_critical_depth = 0  # nesting of deferred_abort blocks
_pending_abort: int | None = None  # a second signal that arrived inside one


class StopOnInterrupt:
    """First SIGINT or SIGTERM: finish and store the batch in flight, then stop. Second: abort.

    Guards nest: one entered while another is active shares its state (so the explore workflow
    can cover search, refinement and outputs, and the search loop inside it still works alone).
    Outside the main thread it installs nothing (signals are the main thread's).

    Args:
        say: where the first signal's message goes.
        on_signal: what the workflow must do at once on the first signal (the oracle run kills its
            simulators): called with the signal's name from the handler, it returns the message to say.
    """

    def __init__(self, say=print, *, on_signal: Callable[[str], str] | None = None) -> None:
        self.say, self.signum, self.on_signal = say, None, on_signal
        self._previous: dict[int, object] = {}
        self._outer: StopOnInterrupt | None = None

    @property
    def stop_requested(self) -> bool:
        return self._outer.stop_requested if self._outer is not None else self.signum is not None

    @property
    def received(self) -> int | None:
        """The first signal received (its number), or None."""
        return self._outer.received if self._outer is not None else self.signum

    def __enter__(self) -> StopOnInterrupt:
        global _active, _pending_abort
        if _active is not None:
            self._outer = _active
            return self
        try:
            for signum in SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            self._restore()
            return self
        _active, _pending_abort = self, None  # (one left by an earlier run that failed inside a deferred block)
        return self

    def _handler(self, signum, frame) -> None:
        global _pending_abort
        if self.signum is None:
            self.signum = signum
            name = signal_name(signum)
            if self.on_signal is not None:
                _notify(self.say, self.on_signal(name))
            else:
                _notify(self.say, f"{name}: storing the batch in flight and writing the outputs, then stopping ({name} again to abort)")
            return
        if _critical_depth > 0:
            _pending_abort = signum
            return
        raise Aborted(signum)

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def __exit__(self, *exc) -> bool:
        global _active
        if self._outer is None and _active is self:
            self._restore()
            _active = None
        return False


def _notify(say, message: str) -> None:
    """Say ``message`` from a signal handler. Buffered streams are not reentrant: if the signal
    interrupted a write to the same stream, fall back to a raw write to stderr."""
    try:
        say(message)
    except RuntimeError:
        try:
            os.write(sys.stderr.fileno(), (message + "\n").encode())
        except (OSError, ValueError, AttributeError):
            pass


@contextmanager
def deferred_abort():
    """A block a second signal does not cut short: a storage write, outputs renamed into place.

    The abort (:class:`Aborted`) is raised when the outermost such block ends, if the block
    itself finished.
    """
    global _critical_depth, _pending_abort
    _critical_depth += 1
    try:
        yield
    finally:
        _critical_depth -= 1
    if _critical_depth == 0 and _pending_abort is not None:
        signum, _pending_abort = _pending_abort, None
        raise Aborted(signum)


@contextmanager
def torch_threads(device, batch: int, threads: int | None = None):
    """One intra-op thread for small CPU batches while the loop runs (or ``threads``).

    A generation is a few hundred rows at most: too small for torch to gain from
    threads, and on a busy machine every parallel region then waits for a core
    (measured on 2 shared cores: 164 ms instead of 4 ms for 100 ResNet-50 candidates).
    """
    import torch  # here, so that the shell can import the signal guards without loading torch

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
