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
    """The phase settings of ``workload.params`` with their defaults, checked (``WorkloadError`` names the key).

    ``context`` defaults to ``prompt_tokens`` (prefill, decode); for ``serve`` it is the cache a
    request starts with before its prompt (earlier turns), default 0."""
    where = f"LLM {cfg.name!r}"
    unknown = sorted(set(params) - set(LLM_PARAMS))
    if unknown:
        raise WorkloadError(f"{where}: no parameter {unknown[0]!r}; an LLM takes {', '.join(LLM_PARAMS)}, batch and "
                            "precision_bytes")
    s = {**LLM_PARAMS, **params, "batch": batch}
    if s["context"] is None:
        s["context"] = 0 if s["phase"] == "serve" else s["prompt_tokens"]
    for key in ("prompt_tokens", "context", "output_tokens", "batch"):
        least = 0 if key == "context" and s["phase"] == "serve" else 1
        if not isinstance(s[key], int) or isinstance(s[key], bool) or s[key] < least:
            what = "a whole number >= 0" if least == 0 else "a positive integer"
            raise WorkloadError(f"{where}: {key} must be {what}, got {s[key]!r}")
    for key, allowed in (("phase", PHASES), ("kv_home", KV_HOMES)):
        if s[key] not in allowed:
            raise WorkloadError(f"{where}: {key} must be {one_of(allowed)}, got {s[key]!r}")
    return s


def attended_positions(s: dict) -> int:
    """Key/value positions ``T`` the phase's workload attends: ``prompt_tokens`` (prefill), ``context``
    (decode), and for ``serve`` its last decode step's, ``context + prompt_tokens + output_tokens``."""
    if s["phase"] == "prefill":
        return s["prompt_tokens"]
    if s["phase"] == "serve":
        return s["context"] + s["prompt_tokens"] + s["output_tokens"]
    return s["context"]


def serve_steps(s: dict, points: int) -> list[tuple[int, float]]:
    """Contexts ``T_j`` and weights ``w_j`` with ``Σ_j w_j·f(T_j) = Σ_i f(T_i)`` over a request's decode steps
    ``i = 1 … n`` at ``T_i = context + prompt_tokens + i``, exact for any ``f`` linear between the
    ``points`` contexts (evenly spaced from the first step's to the last's; every step when ``n ≤ points``).

    Each step's cost is spread over its two neighbouring contexts in proportion to its distance from them
    (a linear interpolant), so the weights sum to ``n``."""
    n, first = s["output_tokens"], s["context"] + s["prompt_tokens"] + 1
    if n <= points:
        return [(first + i, 1.0) for i in range(n)]
    nodes = sorted({first + round(j * (n - 1) / (points - 1)) for j in range(points)})
    weights = [0.0] * len(nodes)
    j = 0
    for T in range(first, first + n):
        while nodes[j + 1] < T:
            j += 1
        share = (nodes[j + 1] - T) / (nodes[j + 1] - nodes[j])
        weights[j] += share
        weights[j + 1] += 1.0 - share
    return list(zip(nodes, weights))


def llm_workload(cfg: LLMConfig, *, batch: int = 1, precision_bytes: int = 2, attended: int | None = None,
                 **params) -> Workload:
    """The workload of one phase of ``cfg`` (``params``: :data:`~codesign.workload.hf_config.LLM_PARAMS`).

    ``prefill`` runs ``prompt_tokens`` tokens per sequence; ``decode`` and ``serve`` one token per
    sequence, attending :func:`attended_positions` (``serve``'s workload is its last decode step; the
    model evaluates a request as its prefill plus its steps, :mod:`codesign.model.llm`). ``attended``
    overrides the positions attended (a ``serve`` request's prefill after a starting cache).
    """
    s = phase_settings(cfg, params, batch)
    B, pb = s["batch"], precision_bytes
    prefill = s["phase"] == "prefill"
    in_dram = s["kv_home"] == "dram"
    tokens = s["prompt_tokens"] if prefill else 1
    attended = attended_positions(s) if attended is None else attended
    w = Workload(f"{cfg.name}.{s['phase']}")
    x: Tensor = ()
    for i in range(cfg.layers):
        x = _block(w, cfg, f"layers.{i}", x, B=B, t=tokens, T=attended, pb=pb, cached=not prefill and in_dram,
                   in_dram=in_dram)
    # The logits of each sequence's last token (what is sampled), after the final norm.
    w.add_layer(Layer("lm_head", "fc", N=B, K=cfg.vocab, C=cfg.hidden, P=1, precision_bytes=pb), x)
    w.graph["llm"] = {
        "config": cfg.to_dict(), **s, "precision_bytes": pb, "tokens": tokens, "attended": attended,
        "weight_bytes": weight_bytes(cfg, pb),
        "kv_cache_bytes": kv_cache_bytes(cfg, batch=B, context=attended, precision_bytes=pb),
        # the new tokens' keys and values the phase appends to the cache (the kv_write layers' output)
        "kv_write_bytes": kv_cache_bytes(cfg, batch=B, context=tokens, precision_bytes=pb),
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


def _block(w: Workload, cfg: LLMConfig, p: str, x: Tensor, *, B, t, T, pb, cached, in_dram) -> Tensor:
    """One decoder block reading ``x``; returns its output as the pair (branch, shortcut) a residual add reads.
    ``in_dram``: the KV cache lives in DRAM (``cached``: and the attention reads it from there, decode)."""
    hd = cfg.head_dim

    def fc(name, k, c, src):
        return w.add_layer(Layer(f"{p}.{name}", "fc", N=B, K=k, C=c, P=t, precision_bytes=pb), src)
    q = fc("q", cfg.heads * hd, cfg.hidden, x)
    k = fc("k", cfg.kv_heads * hd, cfg.hidden, x)
    v = fc("v", cfg.kv_heads * hd, cfg.hidden, x)
    # The new tokens' keys and values appended to the cache (data movement, 0 vector ops): with the
    # cache in DRAM a sink, so its 2·kv·hd·B·t·p bytes are written to DRAM; in SRAM the cache the
    # attention products read.
    kv = cfg.kv_heads * hd
    store = w.add_layer(Layer(f"{p}.kv_write", "vector", fn="concat", N=B, K=2 * kv, C=2 * kv, P=t, precision_bytes=pb), (k, v))
    if not in_dram:
        k = v = store
    ctx = _attention(w, cfg, p, q, k, v, B=B, t=t, T=T, pb=pb, cached=cached)
    o = fc("o", cfg.hidden, cfg.heads * hd, (ctx,))
    if cfg.parallel:  # attention and MLP both read the block's input; their sum is its output
        return (_mlp(w, cfg, p, x, B=B, t=t, pb=pb), o)
    h = (o, *x[:1])
    return (_mlp(w, cfg, p, h, B=B, t=t, pb=pb), o)
