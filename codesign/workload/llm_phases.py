"""The layers of one LLM inference phase (prefill or a decode step) as a :class:`Workload`.

:func:`llm_workload` builds the DAG of an :class:`~codesign.workload.hf_config.LLMConfig` for a phase
(the shapes and the KV cache's representation are in :mod:`codesign.workload.hf_config`'s docs) and
records what the phase is in ``graph["llm"]``: the config, the phase settings, the weight and KV
cache bytes, and for a mixture of experts the expected and the modelled touched experts. Prefill
and decode of one config have the same layers in the same order, so the per-layer knobs of a
design apply to both (a ``serve`` design evaluates each candidate on both,
:mod:`codesign.model.llm`).
"""

from __future__ import annotations

from codesign.vocab import KV_HOMES, PHASES, one_of
from codesign.workload.graph import Workload
from codesign.workload.hf_config import (LLM_PARAMS, LLMConfig, expected_experts, kv_cache_bytes, touched_experts,
                                         weight_bytes)
from codesign.workload.layer import Layer
from codesign.workload.opgraph import WorkloadError

Tensor = tuple[str, ...]


def phase_settings(cfg: LLMConfig, params: dict, batch: int) -> dict:
    """The phase settings of ``workload.params`` with their defaults, checked (``WorkloadError`` names the key)."""
    where = f"LLM {cfg.name!r}"
    unknown = sorted(set(params) - set(LLM_PARAMS))
    if unknown:
        raise WorkloadError(f"{where}: no parameter {unknown[0]!r}; an LLM takes {', '.join(LLM_PARAMS)}, batch and "
                            "precision_bytes")
    s = {**LLM_PARAMS, **params, "batch": batch}
    if s["context"] is None:
        s["context"] = s["prompt_tokens"]
    for key in ("prompt_tokens", "context", "output_tokens", "batch"):
        if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < 1:
            raise WorkloadError(f"{where}: {key} must be a positive integer, got {s[key]!r}")
    for key, allowed in (("phase", PHASES), ("kv_home", KV_HOMES)):
        if s[key] not in allowed:
            raise WorkloadError(f"{where}: {key} must be {one_of(allowed)}, got {s[key]!r}")
    return s


def llm_workload(cfg: LLMConfig, *, batch: int = 1, precision_bytes: int = 2, **params) -> Workload:
    """The workload of one phase of ``cfg`` (``params``: :data:`~codesign.workload.hf_config.LLM_PARAMS`).

    ``prefill`` runs ``prompt_tokens`` tokens per sequence; ``decode`` and ``serve`` one token per
    sequence attending ``context`` positions (``serve`` is evaluated as prefill + decode by the model).
    """
    s = phase_settings(cfg, params, batch)
    B, pb = s["batch"], precision_bytes
    prefill = s["phase"] == "prefill"
    tokens, attended = (s["prompt_tokens"], s["prompt_tokens"]) if prefill else (1, s["context"])
    w = Workload(f"{cfg.name}.{s['phase']}")
    x: Tensor = ()
    for i in range(cfg.layers):
        x = _block(w, cfg, f"layers.{i}", x, B=B, t=tokens, T=attended, pb=pb, cached=not prefill and s["kv_home"] == "dram")
    # The logits of each sequence's last token (what is sampled), after the final norm.
    w.add_layer(Layer("lm_head", "fc", N=B, K=cfg.vocab, C=cfg.hidden, P=1, precision_bytes=pb), x)
    w.graph["llm"] = {
        "config": cfg.to_dict(), **s, "precision_bytes": pb, "tokens": tokens, "attended": attended,
        "weight_bytes": weight_bytes(cfg, pb),
        "kv_cache_bytes": kv_cache_bytes(cfg, batch=B, context=attended, precision_bytes=pb),
        "expected_experts": expected_experts(cfg, B * tokens),
        "touched_experts": touched_experts(cfg, B * tokens) if cfg.experts else 0,
    }
    return w


def _attention(w: Workload, cfg: LLMConfig, p: str, q: str, k: str, v: str, *, B, t, T, pb, cached) -> str:
    """The scores and context products of one block, grouped by key-value head (``Q = g`` query heads
    per group); ``cached``: decode with the KV cache in DRAM, read as a weight operand per sequence."""
    kv, hd, g = cfg.kv_heads, cfg.head_dim, cfg.heads // cfg.kv_heads
    if cached:
        n = B * kv  # one GEMV of g rows per sequence and key-value head; the operand is its cache
        scores = Layer(f"{p}.scores", "fc", N=1, K=n * T, C=n * hd, P=t, Q=g, groups=n, precision_bytes=pb)
        context = Layer(f"{p}.context", "fc", N=1, K=n * hd, C=n * T, P=t, Q=g, groups=n, precision_bytes=pb)
    else:
        scores = Layer(f"{p}.scores", "matmul", N=B, K=kv * T, C=kv * hd, P=t, Q=g, groups=kv, precision_bytes=pb)
        context = Layer(f"{p}.context", "matmul", N=B, K=kv * hd, C=kv * T, P=t, Q=g, groups=kv, precision_bytes=pb)
    w.add_layer(scores, (q, k))
    return w.add_layer(context, (scores.name, v))


def _mlp(w: Workload, cfg: LLMConfig, p: str, x: Tensor, *, B, t, pb) -> str:
    """The MLP of one block (gated or not), or its experts: ``rows`` token-expert rows per touched expert."""
    d, f = cfg.hidden, cfg.intermediate
    if cfg.experts:
        router = w.add_layer(Layer(f"{p}.router", "fc", N=B, K=cfg.experts, C=d, P=t, precision_bytes=pb), x)
        n = touched_experts(cfg, B * t)
        rows = B * t * cfg.experts_per_token // n

        def layer(name, k, c):
            return Layer(f"{p}.experts.{name}", "fc", N=1, K=n * k, C=n * c, P=rows, groups=n, precision_bytes=pb)
        x = (*x, router)
    else:
        def layer(name, k, c):
            return Layer(f"{p}.{name}", "fc", N=B, K=k, C=c, P=t, precision_bytes=pb)
    up = w.add_layer(layer("up", f, d), x)
    hidden = (w.add_layer(layer("gate", f, d), x), up) if cfg.gated else (up,)
    return w.add_layer(layer("down", d, f), hidden)


def _block(w: Workload, cfg: LLMConfig, p: str, x: Tensor, *, B, t, T, pb, cached) -> Tensor:
    """One decoder block reading ``x``; returns its output as the pair (branch, shortcut) a residual add reads."""
    hd = cfg.head_dim

    def fc(name, k, c, src):
        return w.add_layer(Layer(f"{p}.{name}", "fc", N=B, K=k, C=c, P=t, precision_bytes=pb), src)
    q = fc("q", cfg.heads * hd, cfg.hidden, x)
    k = fc("k", cfg.kv_heads * hd, cfg.hidden, x)
    v = fc("v", cfg.kv_heads * hd, cfg.hidden, x)
    ctx = _attention(w, cfg, p, q, k, v, B=B, t=t, T=T, pb=pb, cached=cached)
    o = fc("o", cfg.hidden, cfg.heads * hd, (ctx,))
    if cfg.parallel:  # attention and MLP both read the block's input; their sum is its output
        return (_mlp(w, cfg, p, x, B=B, t=t, pb=pb), o)
    h = (o, *x[:1])
    return (_mlp(w, cfg, p, h, B=B, t=t, pb=pb), o)
