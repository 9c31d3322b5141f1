"""Plug-in cost models: the ``CostModel`` protocol, loading, and the evaluator that chains them.

A plug-in is any Python object with

* ``provides``: a tuple of metric names it computes (``"cost_usd"``, or a new one such as
  ``"carbon_kg"``), and
* ``evaluate(candidates, metrics) -> Mapping[str, Tensor]``: given the population
  (:class:`~codesign.space.Candidates`, tensors ``[P]`` / ``[P, L]``) and the metrics
  computed so far (the built-in model's and earlier plug-ins', tensors ``[P]``), return a
  ``[P]`` tensor (or array) for every name in ``provides``. A returned metric replaces the
  built-in one of the same name.

It is named in a design file as ``package.module:attr`` (a class is instantiated with no
arguments; an instance is used as is) or by the name of an entry point in the group
``codesign.cost_models``. A plug-in that raises or returns NaN fails only the trials
concerned, with its message recorded; the search goes on.
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from codesign.errors import PluginError
from codesign.model.analytical import AnalyticalModel
from codesign.space import Candidates, DesignSpace, take

ENTRY_POINT_GROUP = "codesign.cost_models"

#: Rows per model call on cpu. A larger population is evaluated in chunks of this size, so that
#: the model's per-layer temporaries ([layers, rows], a few MB each) stay small enough to be kept
#: and reused (and mostly in cache): before chunking, one call on 65,536 rows ran at about half
#: the rate of one on 4,096. 8,192 measured best for ResNet-50 and BERT-base (2,048 … 16,384 tried).
CPU_CHUNK = 8192
#: Smallest chunk worth a thread of its own (with more than one torch thread on cpu).
MIN_PARALLEL_CHUNK = 2048
#: Rows per model call on cuda (a bound on device memory; the GPU wants big calls).
CUDA_CHUNK = 1 << 18


@runtime_checkable
class CostModel(Protocol):
    """What a plug-in cost model provides (see the module docstring)."""

    provides: tuple[str, ...]

    def evaluate(self, candidates: Candidates, metrics: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]: ...


def load_plugin(spec: str, *, source: str = "<design>") -> CostModel:
    """Import the plug-in named by ``spec`` (``package.module:attr`` or an entry-point name).

    Modules are looked up on ``sys.path`` and, for a design file, in the design file's
    own folder, so a plug-in can sit next to the design that uses it.
    """
    where = f"{source}: cost_model.plugins entry {spec!r}"
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        design_dir = str(Path(source).resolve().parent) if Path(source).is_file() else None
        added = design_dir is not None and design_dir not in sys.path
        if added:
            sys.path.insert(0, design_dir)
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # an ImportError, or the module's own code failing
            raise PluginError(f"{where}: cannot import module {module_name!r}: {type(error).__name__}: {error}") from None
        finally:
            if added:
                sys.path.remove(design_dir)
        try:
            obj = getattr(module, attr)
        except AttributeError:
            raise PluginError(f"{where}: module {module_name!r} has no attribute {attr!r}") from None
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if not matches:
            raise PluginError(f"{where}: expected 'package.module:attr' or an entry point in group {ENTRY_POINT_GROUP!r}; none is named {spec!r}")
        try:
            obj = matches[0].load()
        except Exception as error:
            raise PluginError(f"{where}: entry point failed to load: {type(error).__name__}: {error}") from None
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as error:
            raise PluginError(f"{where}: constructing {obj.__name__}() failed: {type(error).__name__}: {error}") from None
    provides = getattr(obj, "provides", None)
    if not callable(getattr(obj, "evaluate", None)) or not isinstance(provides, (tuple, list)) or not provides or not all(isinstance(p, str) for p in provides):
        raise PluginError(f"{where}: expected an object with a non-empty tuple of metric names 'provides' and a method 'evaluate(candidates, metrics)'")
    obj.provides = tuple(provides)
    return obj


class Evaluator:
    """The built-in model followed by the design's plug-ins, on one device.

    Args:
        space: the design space.
        plugins: loaded plug-ins, applied in order after the built-in model.
        device, dtype: where and in which precision to evaluate.
    """

    def __init__(self, space: DesignSpace, plugins: list[CostModel] = (), *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.space = space
        self.model = AnalyticalModel(space, device=device, dtype=dtype)
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

    def _apply(self, plugin: CostModel, candidates: Candidates, metrics: dict, errors: list) -> None:
        label = type(plugin).__name__
        try:
            out = self._call(plugin, candidates, metrics, len(candidates))
        except Exception:
            # Isolate the failing candidates: evaluate them one at a time.
            parts = {name: [] for name in plugin.provides}
            for i in range(len(candidates)):
                one = take(candidates, torch.tensor([i], device=self.device))
                try:
                    single = self._call(plugin, one, {k: v[i : i + 1] for k, v in metrics.items()}, 1)
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
        out = {}
        for name in plugin.provides:
            if name not in result:
                raise KeyError(f"result has no metric {name!r}")
            value = torch.as_tensor(result[name], dtype=self.dtype, device=self.device).reshape(-1)
            if value.numel() != n:
                raise ValueError(f"{name} has {value.numel()} values for {n} candidates")
            out[name] = value
        return out
