"""The slow work of a run on a Dask cluster (``codesign explore … --cluster ADDRESS``, or ``[cluster]`` in the design).

What is slow is what a simulator computes: oracle jobs (one layer on one array,
:class:`~codesign.oracles.jobs.LayerJob`) and the plug-in cost models that declare themselves slow
(``slow = True`` on the plug-in: a per-design simulator behind the
:class:`~codesign.model.plugins.CostModel` protocol). The coordinator, the ``codesign explore``
process, keeps everything else: the study, the NSGA-II generation, the results' cache (jobs and
designs already answered are never sent). Workers only compute.

The engine is Dask's ``distributed``: ``ADDRESS`` is a scheduler's (``tcp://HOST:8786``, started with
``dask scheduler``; workers join it with ``dask worker tcp://HOST:8786``), or ``local:N`` for a local
cluster of ``N`` worker processes started and stopped with the run. A worker that dies mid-round
loses nothing: the scheduler runs its tasks again on another worker (``distributed.scheduler.
allowed-failures`` times, then the job fails with ``KilledWorker``), and every result that came
back is used (and, for oracle jobs, cached) as it arrives. The workers need codesign (and any
plug-in or oracle of your own) importable: the same installation as the coordinator's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from codesign.errors import ArgumentError
from codesign.space import take

log = logging.getLogger(__name__)

#: Accepted addresses: a scheduler's URL, or ``local:N``.
ADDRESS = re.compile(r"^(?:(?P<scheme>tcp|tls|ucx|inproc)://\S+|local:(?P<n>[0-9]+))$")
RETRIES = 2  # Dask's own retries of a task that raised (a lost worker is handled by the scheduler itself)
CONNECT_TIMEOUT_S = 20.0  # how long to keep trying to reach a scheduler
RESUBMITS = 3  # times a task the cluster lost (not a job that failed: that is an answer) is submitted again
POLL_S = 0.25  # how often the coordinator looks at signals and deadlines while it waits


def check_address(address: str) -> str:
    """``address`` if it names a cluster, else :class:`ArgumentError` on ``cluster``."""
    found = ADDRESS.match(str(address)) if isinstance(address, str) else None
    if found is None or (found.group("n") is not None and int(found.group("n")) < 1):
        raise ArgumentError("cluster", address, "expected a Dask scheduler's address, tcp://HOST:PORT (`dask scheduler` prints it), "
                            "or local:N for N worker processes on this machine")
    return address


def _distributed():
    try:
        import distributed
    except ImportError:
        return None
    return distributed


@contextmanager
def cluster_session(address: str | None, *, say=print) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster ``address`` for the run (``None``: no cluster, ``None``
    is yielded); a ``local:N`` cluster is started here and stopped at the end."""
    if address is None:
        yield None
        return
    check_address(address)
    distributed = _distributed()
    if distributed is None:
        raise ArgumentError("cluster", address, "needs Dask's distributed package: pip install 'codesign[cluster]'")
    cluster = None
    try:
        if address.startswith("local:"):
            n = int(address.split(":", 1)[1])
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                               silence_logs=logging.CRITICAL)
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except OSError as error:  # unreachable scheduler (a TimeoutError is an OSError)
        if cluster is not None:
            cluster.close()
        raise ArgumentError("cluster", address, f"cannot reach this Dask scheduler: {error}") from None
    try:
        workers = len(client.scheduler_info().get("workers", {}))
        say(f"cluster {address}: {workers} worker(s) now")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def completed(client, calls: Iterable[tuple[Callable, tuple, str | None]], *, check: Callable[[], None] | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*args)`` of each call on the cluster; yield ``(index, result)`` as each finishes.

    ``key`` (or ``None``) names the task: equal keys are one task. The functions return their own
    failures as values, so a task that errs has met the cluster's failure (a worker lost more often
    than the scheduler's ``allowed-failures``, a cancelled or lost result): it is submitted again under
    a new key, up to :data:`RESUBMITS` times. ``check()`` is called while waiting and may raise to stop
    (a signal, a deadline); the tasks not yet finished are then cancelled, as they are when the caller
    stops iterating.
    """
    from distributed import wait
    from distributed.client import FuturesCancelledError

    calls = list(calls)
    owner: dict = {}  # future → index of its call
    tries = [0] * len(calls)

    def submit(i: int, key: str | None):
        fn, args, _ = calls[i]
        future = client.submit(fn, *args, key=key, pure=False, retries=RETRIES)
        owner[future] = i
        return future

    pending = {submit(i, key) for i, (_, _, key) in enumerate(calls)}
    try:
        while pending:
            if check is not None:
                check()
            try:
                done, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            except FuturesCancelledError as cancelled:  # the scheduler dropped some (a lost worker): handled below
                log.warning("cluster: %s", cancelled)
                done, pending = {f for f in pending if f.status != "pending"}, {f for f in pending if f.status == "pending"}
            for future in done:
                i = owner.pop(future)
                if future.status == "finished":
                    yield i, future.result()
                    continue
                tries[i] += 1
                if tries[i] > RESUBMITS:
                    future.result()  # raises the cluster's error
                log.warning("cluster task %s %s (%s); submitting it again", future.key, future.status, _error_of(future))
                key = calls[i][2]
                pending.add(submit(i, None if key is None else f"{key}-again{tries[i]}"))
    finally:
        if owner:
            client.cancel(list(owner))


def _error_of(future) -> str:
    try:
        error = future.exception(timeout=1)
    except Exception as cancelled:  # a cancelled future has no exception of its own
        error = cancelled
    return f"{type(error).__name__}: {error}"


# --- slow plug-ins ---------------------------------------------------------------------------------
def is_slow(plugin) -> bool:
    """Whether a plug-in declares itself slow (``slow = True``): its designs go to the cluster."""
    return getattr(plugin, "slow", False) is True


_PLUGINS: dict[bytes, Any] = {}  # in a worker: the plug-ins unpickled so far, by their pickle


def _evaluate_one(payload: bytes, candidate, metrics: dict) -> tuple[str, Any]:
    """A slow plug-in (``payload``: it, pickled by cloudpickle) on one design, in a worker:
    ``("ok", {name: value})`` or ``("raised", error)``."""
    import cloudpickle

    plugin = _PLUGINS.get(payload)
    if plugin is None:
        plugin = _PLUGINS[payload] = cloudpickle.loads(payload)
    try:
        out = plugin.evaluate(candidate, metrics)
    except Exception as error:  # the design's failure, as the evaluator reports it
        return "raised", error
    return "ok", dict(out) if isinstance(out, Mapping) else out


class DistributedPlugin:
    """A slow plug-in whose designs are evaluated on the cluster, one task per design.

    It keeps the plug-in's ``provides`` and contract: the evaluator checks what comes back as it
    would the plug-in's own answer. A design the plug-in raised for raises the same error again
    when the evaluator asks for it alone (the answers of the last batch are remembered, so that
    isolating one failing design does not send the others again).
    """

    slow = True

    def __init__(self, plugin, client) -> None:
        self.wrapped, self.client = plugin, client  # ``wrapped``: the plug-in, for its name and its source file
        self.provides = tuple(plugin.provides)
        self._payload = _pickled(plugin)
        self._answers: dict[bytes, tuple[str, Any]] = {}

    @staticmethod
    def _key(candidates, i: int) -> bytes:
        return b"|".join(b"-" if value is None else value[i].detach().cpu().numpy().tobytes() for value in candidates.__dict__.values())

    def evaluate(self, candidates, metrics: Mapping) -> dict:
        import torch

        n = len(candidates)
        keys = [self._key(candidates, i) for i in range(n)]
        todo = [i for i in range(n) if keys[i] not in self._answers]
        if len(todo) == n:
            self._answers = {}
        cpu = {name: value.detach().cpu() for name, value in metrics.items()}
        calls = []
        for i in todo:
            one = take(candidates, torch.tensor([i], device=candidates.dataflow.device))
            one = type(one)(**{k: None if v is None else v.cpu() for k, v in one.__dict__.items()})
            calls.append((_evaluate_one, (self._payload, one, {k: v[i : i + 1] for k, v in cpu.items()}), None))
        for j, answer in completed(self.client, calls):
            self._answers[keys[todo[j]]] = answer
        parts = []
        for key in keys:
            status, value = self._answers[key]
            if status == "raised":
                raise value
            parts.append(value)
        return self._joined(parts, n)

    def _joined(self, parts: list, n: int) -> Any:
        """One ``[n]`` tensor per provided metric from the designs' ``[1]`` answers (anything else is
        handed back as it came, for the evaluator's contract check to name)."""
        import numpy as np
        import torch

        if n == 1:
            return parts[0]
        if not all(isinstance(p, dict) for p in parts):
            return next(p for p in parts if not isinstance(p, dict))
        out = {}
        for name in self.provides:
            values = [p.get(name) for p in parts]
            if all(isinstance(v, torch.Tensor) and v.shape == (1,) for v in values):
                out[name] = torch.cat(values)
            elif all(isinstance(v, np.ndarray) and v.shape == (1,) for v in values):
                out[name] = np.concatenate(values)
            else:  # the first design whose answer breaks the contract, for the evaluator to name
                return next(p for p, v in zip(parts, values) if not (isinstance(v, (torch.Tensor, np.ndarray)) and v.shape == (1,)))
        return out


def _pickled(plugin) -> bytes:
    """The plug-in, pickled for the workers. Its module, unless it is codesign's or an installed package's
    (one beside the design file), goes with it by value: the workers need not have it."""
    import sys

    import cloudpickle

    name = type(plugin).__module__
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None) or ""
    if module is not None and name.split(".")[0] != "codesign" and "site-packages" not in path and "dist-packages" not in path:
        cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(plugin)


def distribute_slow_plugins(plugins: list, client) -> list:
    """The plug-ins, with each slow one evaluated on the cluster of ``client``."""
    return [DistributedPlugin(p, client) if is_slow(p) and not isinstance(p, DistributedPlugin) else p for p in plugins]
