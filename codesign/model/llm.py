"""LLM inference metrics: the analytical model on a phase's workload, and prefill + decode for ``serve``.

A design whose ``workload.network`` is an LLM (:mod:`codesign.workload.hf_config`) is evaluated by
:class:`LLMModel`, which wraps the analytical model of the phase's workload and adds the metrics of
:data:`codesign.vocab.LLM_METRICS` (``docs/model.md``, "LLM inference"). With ``B`` sequences,
``S = prompt_tokens`` and ``n = output_tokens``:

* ``prefill``: ``ttft_s = tpot_s = latency_s``; ``tokens_per_s = B·S / latency_s`` (prompt tokens);
  ``energy_per_token_j = energy_j / (B·S)``;
* ``decode`` (one step at ``context``): ``ttft_s = tpot_s = latency_s``; ``tokens_per_s = B / tpot_s``;
  ``energy_per_token_j = energy_j / B``;
* ``serve`` (one request: its prefill, then ``n`` decode steps, step ``i`` attending ``C + S + i``
  positions, ``C = context`` a cache the request starts with): the same candidates are evaluated on the
  prefill workload and on the decode step at :data:`SERVE_POINTS` contexts (the same layers, so every
  per-layer knob means the same in all), the steps' sum interpolated between them
  (:func:`~codesign.workload.llm_phases.serve_steps`): ``ttft_s`` is the prefill's latency, ``tpot_s`` the
  mean step time ``Σᵢ tᵢ / n``, ``latency_s = ttft_s + Σᵢ tᵢ``, ``energy_j = E_prefill + Σᵢ Eᵢ``,
  ``tokens_per_s = B·n / latency_s``, ``energy_per_token_j = energy_j / (B·n)``; area is the chip's.

``cost_usd`` is the die's plus the DRAM's, ``dram_gib`` at the ``dram_kind``'s price per GiB
(:func:`~codesign.hardware.cost.dram_cost_usd`). ``weight_bytes`` is every parameter at the workload's
precision, ``kv_cache_bytes`` the cache of the ``B`` sequences at the positions the workload attends (at
``prompt_tokens`` for prefill, the last step's for serve), and
``dram_use = (weight_bytes + kv_cache_bytes) / (dram_gib · 2³⁰)``: a design with ``dram_use > 1``
does not hold the model; bound it with ``constraints.dram_use = 1.0``.
"""

from __future__ import annotations

import torch

from codesign.errors import DesignError
from codesign.model.analytical import AnalyticalModel
from codesign.model.evaluation import Evaluation, operational_kg
from codesign.space import DesignSpace
from codesign.vocab import LLM_METRICS, METRICS
from codesign.workload.hf_config import LLMConfig
from codesign.hardware.cost import dram_cost_usd
from codesign.workload.llm_phases import llm_workload, serve_steps

GIB = float(1 << 30)

#: Decode contexts a ``serve`` request's steps are costed at (:func:`~codesign.workload.llm_phases.serve_steps`):
#: against the exact sum over every step, see docs/model.md ("LLM inference").
SERVE_POINTS = 4


def model_of(space: DesignSpace, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64):
    """The built-in model of a design space: :class:`LLMModel` for an LLM workload, else the analytical model."""
    if "llm" in space.workload.graph:
        return LLMModel(space, device=device, dtype=dtype)
    return AnalyticalModel(space, device=device, dtype=dtype)


def phase_space(space: DesignSpace, phase: str, **settings) -> DesignSpace:
    """The design space of one part of a ``serve`` design: the same design on its prefill workload, or on
    a decode step (``settings``: ``context``, the step's positions). Its knobs must be the design's."""
    info = space.workload.graph["llm"]
    keep = {k: info[k] for k in ("prompt_tokens", "output_tokens", "kv_home")}
    attended = info["context"] + info["prompt_tokens"] if phase == "prefill" else None
    workload = llm_workload(LLMConfig(**info["config"]), batch=info["batch"], precision_bytes=info["precision_bytes"],
                            phase=phase, attended=attended, **{**keep, **settings})
    workload.graph["source"] = space.workload.graph.get("source", "llm")
    part = DesignSpace.from_design(space.design, workload=workload)
    if [k.name for k in part.knobs] != [k.name for k in space.knobs]:
        raise DesignError(f"{space.design.source}: the prefill and decode workloads of {info['config']['name']!r} "
                          "have different knobs; a serve design cannot share its schedule between them")
    return part


def prefill_space(space: DesignSpace) -> DesignSpace:
    """The design space of the prefill of a ``serve`` design: the same design on the prefill workload."""
    return phase_space(space, "prefill")


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
        self.dram_kind = space.design.hardware.dram_kind
        self.prefill, self.steps = None, [(self.step, 1.0)]
        if self.info["phase"] == "serve":
            self.prefill = AnalyticalModel(prefill_space(space), device=device, dtype=dtype)
            last = self.info["attended"]
            self.steps = [(self.step if T == last else
                           AnalyticalModel(phase_space(space, "decode", context=T), device=device, dtype=dtype), w)
                          for T, w in serve_steps(self.info, SERVE_POINTS)]

    def __getattr__(self, name: str):
        if name == "step":  # not built yet
            raise AttributeError(name)
        return getattr(self.step, name)

    def evaluate(self, c, *, detail: bool = False, dataflow_weights=None, rows: torch.Tensor | None = None) -> Evaluation:
        """:meth:`AnalyticalModel.evaluate` of the phase, with the LLM metrics (``detail``: the (last) step's layers)."""
        step = self.step.evaluate(c, detail=detail, dataflow_weights=dataflow_weights, rows=rows)
        return Evaluation(self.combine(step.metrics, lambda m: m.evaluate(c, dataflow_weights=dataflow_weights, rows=rows).metrics,
                                       c.dram_gib), step.layers)

    def evaluate_rows(self, rows: torch.Tensor, *, detail: bool = False) -> Evaluation:
        """:meth:`AnalyticalModel.evaluate_rows` of the phase, with the LLM metrics."""
        step = self.step.evaluate_rows(rows, detail=detail)
        dram_gib = self.space._hw_values(rows.to(self.device), "dram_gib", self.dtype)
        return Evaluation(self.combine(step.metrics, lambda m: m.evaluate_rows(rows).metrics, dram_gib), step.layers)

    def combine(self, step: dict, run, dram_gib: torch.Tensor) -> dict[str, torch.Tensor]:
        """The metrics ``[P]`` of the phase from the (last) step's analytical metrics; ``run(model)`` gives
        another part's (a serve request's prefill and its other decode steps)."""
        info = self.info
        B, n = info["batch"], info["output_tokens"]
        latency, energy = step["latency_s"], step["energy_j"]
        out = dict(step)
        if self.prefill is None:
            tokens = B * (info["prompt_tokens"] if info["phase"] == "prefill" else 1)
            out.update(ttft_s=latency, tpot_s=latency, tokens_per_s=tokens / latency, energy_per_token_j=energy / tokens)
        else:
            prefill = run(self.prefill)
            parts = [(step if model is self.step else run(model), w) for model, w in self.steps]
            decoding = sum(w * m["latency_s"] for m, w in parts)  # Σ over the n steps
            total = prefill["latency_s"] + decoding
            spent = prefill["energy_j"] + sum(w * m["energy_j"] for m, w in parts)
            out.update(latency_s=total, energy_j=spent, power_w=spent / total, ttft_s=prefill["latency_s"], tpot_s=decoding / n,
                       tokens_per_s=B * n / total, energy_per_token_j=spent / (B * n),
                       carbon_operational_kg=operational_kg(spent, total, self.step.carbon))  # the request's, not its last step's
        gib = dram_gib.to(latency)
        out["cost_usd"] = step["cost_usd"] + dram_cost_usd(gib, self.dram_kind)
        weights = torch.full_like(latency, float(info["weight_bytes"]))
        cache = torch.full_like(latency, float(info["kv_cache_bytes"]))
        out.update(weight_bytes=weights, kv_cache_bytes=cache, dram_use=(weights + cache) / (gib * GIB))
        return {name: out[name] for name in self.provides}
