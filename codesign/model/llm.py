"""LLM inference metrics: the analytical model on a phase's workload, and prefill + decode for ``serve``.

A design whose ``workload.network`` is an LLM (:mod:`codesign.workload.hf_config`) is evaluated by
:class:`LLMModel`, which wraps the analytical model of the phase's workload and adds the metrics of
:data:`codesign.vocab.LLM_METRICS` (``docs/model.md``, "LLM inference"). With ``B`` sequences,
``S = prompt_tokens`` and ``n = output_tokens``:

* ``prefill``: ``ttft_s = tpot_s = latency_s``; ``tokens_per_s = B·S / latency_s`` (prompt tokens);
  ``energy_per_token_j = energy_j / (B·S)``;
* ``decode`` (one step at ``context``): ``ttft_s = tpot_s = latency_s``; ``tokens_per_s = B / tpot_s``;
  ``energy_per_token_j = energy_j / B``;
* ``serve``: the same candidates are evaluated on the prefill workload and on the decode step (the
  two have the same layers, so every per-layer knob means the same in both): ``ttft_s`` is the
  prefill's latency, ``tpot_s`` the decode step's, ``latency_s = ttft_s + n·tpot_s``,
  ``energy_j = E_prefill + n·E_step``, ``tokens_per_s = B·n / latency_s``,
  ``energy_per_token_j = energy_j / (B·n)``; area and cost are the chip's.

``weight_bytes`` is every parameter at the workload's precision, ``kv_cache_bytes`` the cache of the
``B`` sequences at ``context`` positions (at ``prompt_tokens`` for prefill), and
``dram_use = (weight_bytes + kv_cache_bytes) / (dram_gib · 2³⁰)``: a design with ``dram_use > 1``
does not hold the model; bound it with ``constraints.dram_use = 1.0``.
"""

from __future__ import annotations

import torch

from codesign.errors import DesignError
from codesign.model.analytical import AnalyticalModel
from codesign.model.evaluation import Evaluation
from codesign.space import DesignSpace
from codesign.vocab import LLM_METRICS, METRICS
from codesign.workload.hf_config import LLMConfig
from codesign.workload.llm_phases import llm_workload

GIB = float(1 << 30)


def model_of(space: DesignSpace, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64):
    """The built-in model of a design space: :class:`LLMModel` for an LLM workload, else the analytical model."""
    if "llm" in space.workload.graph:
        return LLMModel(space, device=device, dtype=dtype)
    return AnalyticalModel(space, device=device, dtype=dtype)


def prefill_space(space: DesignSpace) -> DesignSpace:
    """The design space of the prefill of a ``serve`` design: the same design on the prefill workload."""
    info = space.workload.graph["llm"]
    settings = {k: info[k] for k in ("prompt_tokens", "context", "output_tokens", "kv_home")}
    workload = llm_workload(LLMConfig(**info["config"]), batch=info["batch"], precision_bytes=info["precision_bytes"],
                            phase="prefill", **settings)
    workload.graph["source"] = space.workload.graph.get("source", "llm")
    prefill = DesignSpace.from_design(space.design, workload=workload)
    if [k.name for k in prefill.knobs] != [k.name for k in space.knobs]:
        raise DesignError(f"{space.design.source}: the prefill and decode workloads of {info['config']['name']!r} "
                          "have different knobs; a serve design cannot share its schedule between them")
    return prefill


class LLMModel:
    """The analytical model of an LLM phase (and of its prefill, for ``serve``), with the LLM metrics.

    Anything else (``layer_costs``, ``lw``, ...) is the phase's (for ``serve``: the decode step's) model's.
    """

    name = "analytical"
    provides = METRICS + LLM_METRICS

    def __init__(self, space: DesignSpace, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> None:
        self.space = space
        self.info = space.workload.graph["llm"]
        if "pipelined" in space.design.schedule.mode:
            # A decode step's KV-cache and expert layers hold the whole batch in their groups (N = 1), so
            # streaming samples through the cores has no meaning for them.
            raise DesignError(f"{space.design.source}: schedule.mode: an LLM workload runs layer by layer; "
                              "'pipelined' does not apply (batch the sequences with workload.batch)")
        self.step = AnalyticalModel(space, device=device, dtype=dtype)
        self.device, self.dtype = self.step.device, dtype
        self.prefill = None
        if self.info["phase"] == "serve":
            self.prefill = AnalyticalModel(prefill_space(space), device=device, dtype=dtype)

    def __getattr__(self, name: str):
        if name == "step":  # not built yet
            raise AttributeError(name)
        return getattr(self.step, name)

    def evaluate(self, c, *, detail: bool = False, dataflow_weights=None, rows: torch.Tensor | None = None) -> Evaluation:
        """:meth:`AnalyticalModel.evaluate` of the phase, with the LLM metrics (``detail``: the step's layers)."""
        step = self.step.evaluate(c, detail=detail, dataflow_weights=dataflow_weights, rows=rows)
        first = None if self.prefill is None else self.prefill.evaluate(c, dataflow_weights=dataflow_weights, rows=rows).metrics
        return Evaluation(self.combine(step.metrics, first, c.dram_gib), step.layers)

    def evaluate_rows(self, rows: torch.Tensor, *, detail: bool = False) -> Evaluation:
        """:meth:`AnalyticalModel.evaluate_rows` of the phase, with the LLM metrics."""
        step = self.step.evaluate_rows(rows, detail=detail)
        first = None if self.prefill is None else self.prefill.evaluate_rows(rows).metrics
        dram_gib = self.space._hw_values(rows.to(self.device), "dram_gib", self.dtype)
        return Evaluation(self.combine(step.metrics, first, dram_gib), step.layers)

    def combine(self, step: dict, prefill: dict | None, dram_gib: torch.Tensor) -> dict[str, torch.Tensor]:
        """The metrics ``[P]`` of the phase from the step's (and the prefill's) analytical metrics."""
        info = self.info
        B, n = info["batch"], info["output_tokens"]
        latency, energy = step["latency_s"], step["energy_j"]
        out = dict(step)
        if prefill is None:
            tokens = B * (info["prompt_tokens"] if info["phase"] == "prefill" else 1)
            out.update(ttft_s=latency, tpot_s=latency, tokens_per_s=tokens / latency, energy_per_token_j=energy / tokens)
        else:
            total = prefill["latency_s"] + n * latency
            spent = prefill["energy_j"] + n * energy
            out.update(latency_s=total, energy_j=spent, power_w=spent / total, ttft_s=prefill["latency_s"], tpot_s=latency,
                       tokens_per_s=B * n / total, energy_per_token_j=spent / (B * n))
        weights = torch.full_like(latency, float(info["weight_bytes"]))
        cache = torch.full_like(latency, float(info["kv_cache_bytes"]))
        out.update(weight_bytes=weights, kv_cache_bytes=cache, dram_use=(weights + cache) / (dram_gib.to(latency) * GIB))
        return {name: out[name] for name in self.provides}
