"""The evaluator: the built-in analytical model followed by the design's plug-ins, on one device.

:func:`build_evaluator` is where a design becomes something that evaluates: it loads the
plug-ins, checks that every objective and budget names a metric the model or a plug-in
provides (the one place this is checked), and resolves the device. :class:`Evaluator`
takes integer rows of the design space and returns a float64 array of every metric, with a
reason for each candidate that failed (a plug-in that raised or returned NaN fails only the
candidates concerned). What a plug-in returns is checked strictly: a floating ``[P]`` tensor or
array for each metric it provides; anything else is a :class:`~codesign.errors.PluginError` for
the whole batch, naming the plug-in, the metric, what it got and what was expected.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from codesign.design import Design
from codesign.errors import ArgumentError, DesignError, PluginError
from codesign.model.llm import model_of
from codesign.model.plugins import CostModel, load_plugins
from codesign.space import Candidates, DesignSpace, take

#: Rows per model call on cpu. A larger population is evaluated in chunks of this size, so that
#: the model's per-layer temporaries ([layers, rows], a few MB each) stay small enough to be kept
#: and reused (and mostly in cache): before chunking, one call on 65,536 rows ran at about half
#: the rate of one on 4,096. 8,192 measured best for ResNet-50 and BERT-base (2,048 … 16,384 tried).
CPU_CHUNK = 8192
#: Smallest chunk worth a thread of its own (with more than one torch thread on cpu).
MIN_PARALLEL_CHUNK = 2048
#: Rows per model call on cuda (a bound on device memory; the GPU wants big calls).
CUDA_CHUNK = 1 << 18



def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` → cuda when available, else cpu; an explicit ``cuda`` must be available."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ArgumentError("device", device, "expected auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ArgumentError("device", device, f"this machine has no CUDA device (torch {torch.__version__}); use {{arg}} cpu or auto")
    return torch.device(device)


def check_metrics(design: Design, known: list[str]) -> None:
    """Objectives and budgets must name a metric the model or a plug-in provides."""
    for i, name in enumerate(design.objectives.minimize):
        if name not in known:
            raise DesignError(f"{design.source}: objectives.minimize[{i}] = {name!r}: a metric the model or a plug-in provides {known}")
    for name in design.constraints:
        if name not in known:
            raise DesignError(f"{design.source}: constraints.{name}: a metric the model or a plug-in provides {known}")


def build_evaluator(design: Design, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                    space: DesignSpace | None = None) -> tuple[DesignSpace, "Evaluator"]:
    """The design space and its evaluator (built-in model + the design's plug-ins), checked."""
    plugins = load_plugins(design.cost_model.plugins, source=design.source)
    space = DesignSpace.from_design(design) if space is None else space
    evaluator = Evaluator(space, plugins, device=resolve_device(device), dtype=dtype)
    check_metrics(design, evaluator.metric_names)
    return space, evaluator


class Evaluator:
    """The built-in model followed by the design's plug-ins, on one device.

    Args:
        space: the design space.
        plugins: loaded plug-ins, applied in order after the built-in model.
        device, dtype: where and in which precision to evaluate.
    """

    def __init__(self, space: DesignSpace, plugins: list[CostModel] = (), *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.space = space
        self.model = model_of(space, device=device, dtype=dtype)  # the analytical model (with the LLM metrics for an LLM)
        self.plugins = list(plugins)
        self.device, self.dtype = self.model.device, dtype

    @property
    def metric_names(self) -> list[str]:
        names = list(self.model.provides)
        for plugin in self.plugins:
            names += [p for p in plugin.provides if p not in names]
        return names

    def evaluate_rows(self, rows: torch.Tensor) -> tuple[np.ndarray, list[str | None]]:
        """Evaluate integer rows ``[P, D]``.

        Returns ``(values, errors)``: ``values`` is a float64 array ``[P, len(metric_names)]``
        and ``errors[i]`` is ``None`` or the reason candidate ``i`` failed (its values are NaN).
        A large population is evaluated in chunks (:data:`CPU_CHUNK` rows on cpu); the metrics
        cross to the host once.
        """
        rows = rows.to(self.device)
        P = rows.shape[0]
        chunk = CPU_CHUNK if self.device.type == "cpu" else CUDA_CHUNK
        errors: list[str | None] = [None] * P
        workers = torch.get_num_threads() if self.device.type == "cpu" and not self.plugins else 1
        if workers > 1 and P >= 2 * MIN_PARALLEL_CHUNK:
            # Chunks side by side, one per torch thread, each run single-threaded: the list schedule's
            # per-layer steps are too small for torch's own threads. (Plug-ins may not be thread-safe.)
            chunk = min(chunk, max(MIN_PARALLEL_CHUNK, -(-P // workers)))
            self.model.evaluate_rows(rows[:1])  # tables built before the threads use them
            run = lambda start: self._evaluate_chunk(rows[start : start + chunk], errors, start)  # noqa: E731
            parts = list(self._chunk_pool(workers).map(run, range(0, P, chunk)))
        else:
            parts = [self._evaluate_chunk(rows[start : start + chunk], errors, start) for start in range(0, max(P, 1), chunk)]
        values = (parts[0] if len(parts) == 1 else torch.cat(parts)).cpu().numpy()
        names = self.metric_names
        for i in np.flatnonzero(~np.isfinite(values).all(axis=1)).tolist():  # the failed ones only
            if errors[i] is None:
                bad = [n for n, v in zip(names, values[i]) if not math.isfinite(v)]
                errors[i] = f"non-finite {', '.join(bad)}"
        return values, errors

    def _chunk_pool(self, workers: int) -> ThreadPoolExecutor:
        """Worker threads for chunks, each with one torch intra-op thread (kept for later calls)."""
        pool = getattr(self, "_pool", None)
        if pool is None or pool._max_workers != workers:
            if pool is not None:
                pool.shutdown(wait=True)
            pool = self._pool = ThreadPoolExecutor(max_workers=workers, initializer=torch.set_num_threads, initargs=(1,))
            # Start every worker now; torch.set_num_threads(1) in a worker limits that thread, but it
            # also becomes the count new threads start with: set the caller's own count back.
            threads = torch.get_num_threads()
            barrier = threading.Barrier(workers)
            list(pool.map(lambda _: barrier.wait(), range(workers)))
            torch.set_num_threads(threads)
        return pool

    def _evaluate_chunk(self, rows: torch.Tensor, errors: list, offset: int) -> torch.Tensor:
        """Metrics ``[p, len(metric_names)]`` (float64, on the device) of ``rows``; plug-in failures go to ``errors[offset + i]``."""
        if not self.plugins:  # the model reads the rows itself
            metrics = self.model.evaluate_rows(rows).metrics
        else:
            candidates = self.space.decode(rows, dtype=self.dtype)
            metrics = dict(self.model.evaluate(candidates, rows=rows).metrics)
            chunk_errors: list[str | None] = [None] * rows.shape[0]
            for plugin in self.plugins:
                self._apply(plugin, candidates, metrics, chunk_errors)
            errors[offset : offset + len(chunk_errors)] = chunk_errors
        return torch.stack([metrics[n].to(torch.float64) for n in self.metric_names], dim=1)

    def check_plugins(self) -> None:
        """Run the plug-ins once on two designs of the space (its first and last choices), so that a
        plug-in that breaks its contract (:meth:`_checked`) stops a run before any work; a plug-in
        that raises for these designs is not an error here (it fails only their trials in a search)."""
        if self.plugins:
            rows = torch.zeros(2, self.space.dimension, dtype=torch.long)
            rows[1] = torch.tensor([len(k.choices) - 1 if k.choices is not None else k.high for k in self.space.knobs], dtype=torch.long)
            self.evaluate_rows(rows)

    def _apply(self, plugin: CostModel, candidates: Candidates, metrics: dict, errors: list) -> None:
        label = plugin_label(plugin)
        try:
            out = self._call(plugin, candidates, metrics, len(candidates))
        except PluginError:
            raise  # a broken contract: the plug-in's bug, for the whole batch
        except Exception:
            # Isolate the failing candidates: evaluate them one at a time.
            parts = {name: [] for name in plugin.provides}
            for i in range(len(candidates)):
                one = take(candidates, torch.tensor([i], device=self.device))
                try:
                    single = self._call(plugin, one, {k: v[i : i + 1] for k, v in metrics.items()}, 1)
                except PluginError:
                    raise
                except Exception as error:
                    errors[i] = errors[i] or f"plug-in {label} raised {type(error).__name__}: {error}"
                    single = {name: torch.full((1,), math.nan, dtype=self.dtype, device=self.device) for name in plugin.provides}
                for name in plugin.provides:
                    parts[name].append(single[name])
            out = {name: torch.cat(v) for name, v in parts.items()}
        for name in plugin.provides:
            nan = ~torch.isfinite(out[name])
            for i in torch.nonzero(nan).flatten().tolist():
                errors[i] = errors[i] or f"plug-in {label} returned a non-finite {name}"
            metrics[name] = out[name]

    def _call(self, plugin: CostModel, candidates: Candidates, metrics: dict, n: int) -> dict[str, torch.Tensor]:
        result = plugin.evaluate(candidates, dict(metrics))
        if not isinstance(result, Mapping):
            raise PluginError(f"plug-in {plugin_label(plugin)}: evaluate() returned {_describe(result)}; expected a mapping "
                              f"from each provided metric ({', '.join(plugin.provides)}) to a floating [P] tensor or array, P = {n}")
        return {name: self._checked(plugin, name, result, n) for name in plugin.provides}

    def _checked(self, plugin: CostModel, name: str, result: Mapping, n: int) -> torch.Tensor:
        """``result[name]`` as a float tensor on the device, if it is a floating ``[n]`` tensor or array."""
        expected = f"expected a floating [P] tensor or array, P = {n} candidates"
        where = f"plug-in {plugin_label(plugin)}: metric {name!r}"
        if name not in result:
            raise PluginError(f"{where}: missing from the result (it has {sorted(map(str, result))}); {expected}")
        value = result[name]
        floating = (isinstance(value, torch.Tensor) and value.is_floating_point()) or (
            isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating))
        if not floating or tuple(value.shape) != (n,):
            raise PluginError(f"{where}: got {_describe(value)}; {expected}")
        return torch.as_tensor(value).to(device=self.device, dtype=self.dtype)


def plugin_label(plugin) -> str:
    """A plug-in's name in messages: its class's (a plug-in run elsewhere, on a cluster, is ``wrapped``)."""
    return type(getattr(plugin, "wrapped", plugin)).__name__


def _describe(value) -> str:
    """What a plug-in returned, in words: its type, and dtype and shape for arrays."""
    if isinstance(value, torch.Tensor):
        return f"a torch tensor of dtype {str(value.dtype).removeprefix('torch.')} and shape {list(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of dtype {value.dtype} and shape {list(value.shape)}"
    kind = type(value).__name__ if type(value).__module__ == "builtins" else f"{type(value).__module__}.{type(value).__name__}"
    shown = repr(value)
    return f"a {'Python ' if '.' not in kind else ''}{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"
