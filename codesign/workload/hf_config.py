"""LLM inference workloads from a Hugging Face ``config.json``: one phase (prefill or decode) as a :class:`Workload`.

The file every open model ships is read as JSON (no download, no weights) into an :class:`LLMConfig`:
hidden size, layers, attention heads, key-value heads (GQA/MQA), head dim, intermediate size, gated
or plain MLP, vocabulary, tied embeddings, biases, and for a mixture of experts the number of experts
and the experts per token. Families: ``llama``, ``mistral``, ``qwen2``, ``mixtral``, ``gpt2``, ``phi``
(and those that share llama's keys). A few published models are also known by name
(:data:`PUBLISHED`), their shapes copied from their ``config.json`` on the Hugging Face Hub.

One decoder block is ``q, k, v`` projections, the attention ``scores`` and ``context`` products,
the ``o`` projection and the MLP (``gate, up, down`` when gated, ``up, down`` when not; for a
mixture of experts a ``router`` and the experts' ``gate, up, down``); the LM head computes the
logits of the last token of each sequence only (what a server samples from). Norms, rotary
embeddings, softmax and the MLP's activation are not modelled (as in the zoo's transformers).

Phases (``docs/model.md``, "LLM inference"), with ``g = heads / kv_heads`` query heads per
key-value head, ``hd`` the head dim and ``T`` the key/value positions attended:

* **prefill** of ``prompt_tokens = S`` tokens: the attention products are activation × activation
  matmuls over ``T = S`` (causal attention counted dense), grouped by key-value head with the
  ``g`` query heads of a group folded into the GEMM's rows (``Q = g``), so GQA/MQA reads each
  key-value head once;
* **decode** of one token per sequence at ``context = T`` (the cached positions plus the new one):
  every layer is a GEMV of ``batch`` rows (the attention products ``g`` rows per key-value head and
  sequence) and the attention's second operand is the KV cache. With ``kv_home = "dram"`` (default)
  the cache is state kept in DRAM and read every step as weights are (the products are modelled as
  weight layers grouped by sequence × key-value head); with ``"sram"`` they stay activation
  matmuls, whose operand the model keeps on chip when it fits the core's filter partition.

A mixture of experts runs ``k = experts_per_token`` experts per token: ``B·S·k`` token-expert rows
over the experts the batch touches, whose expected number for uniform routing is
``E·(1 − (1 − k/E)^(B·S))``; the model takes the divisor of ``B·S·k`` nearest to it (so every touched
expert gets the same rows and the MACs are exact) and reads those experts' weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from codesign.vocab import KV_HOMES, PHASES
from codesign.workload.graph import Workload
from codesign.workload.layer import Layer
from codesign.workload.opgraph import WorkloadError

#: Keys of ``workload.params`` an LLM source takes, with their defaults (``context`` defaults to
#: ``prompt_tokens``; for ``serve`` it is the cache a request starts with, default 0). ``batch`` and ``precision_bytes`` may be given there too (``codesign workload
#: --param batch=8``); they replace ``[workload]``'s.
LLM_PARAMS = {"phase": "decode", "prompt_tokens": 512, "context": None, "output_tokens": 128, "kv_home": "dram"}


@dataclass(frozen=True)
class LLMConfig:
    """The shapes of a decoder-only LLM (what a ``config.json`` says)."""

    name: str
    family: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    gated: bool = True
    tied: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    norm_params: int = 1  # parameters per norm and channel: 1 (RMSNorm) or 2 (LayerNorm: weight and bias)
    norms_per_layer: int = 2
    positions: int = 0  # learned position embeddings (GPT-2), 0 for rotary
    experts: int = 0
    experts_per_token: int = 0
    parallel: bool = False  # attention and MLP read the same input (GPT-J, Phi)

    def to_dict(self) -> dict:
        return asdict(self)


#: Published models by name: their ``config.json`` values (Hugging Face Hub, the model's repository).
PUBLISHED: dict[str, dict] = {
    # meta-llama/Meta-Llama-3-8B, config.json
    "llama3_8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
    # meta-llama/Llama-3.2-1B, config.json
    "llama3_2_1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True),
    # mistralai/Mistral-7B-v0.1, config.json
    "mistral_7b": dict(model_type="mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=32000, tie_word_embeddings=False),
    # Qwen/Qwen2-7B, config.json
    "qwen2_7b": dict(model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
    # mistralai/Mixtral-8x7B-v0.1, config.json
    "mixtral_8x7b": dict(model_type="mixtral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=32000, num_local_experts=8,
                         num_experts_per_tok=2, tie_word_embeddings=False),
    # openai-community/gpt2, config.json
    "gpt2": dict(model_type="gpt2", n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257),
    # microsoft/phi-2, config.json
    "phi2": dict(model_type="phi", hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=32, vocab_size=51200, tie_word_embeddings=False),
}

FAMILIES = ("llama", "mistral", "qwen2", "mixtral", "gpt2", "phi")


def is_config_spec(spec: str) -> bool:
    """Whether a network spec names an LLM: a ``.json`` config file or a :data:`PUBLISHED` name."""
    return spec.lower().endswith(".json") or spec in PUBLISHED


def read_config(spec: str, base: str | Path | None = None) -> LLMConfig:
    """The :class:`LLMConfig` of a published name or a ``config.json`` path (relative to ``base``)."""
    if spec in PUBLISHED:
        return parse_config(PUBLISHED[spec], spec)
    path = Path(spec).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkloadError(f"network {spec!r}: cannot read {path} ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"network {spec!r}: {path} is not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise WorkloadError(f"network {spec!r}: {path} holds no JSON object")
    return parse_config(raw, path.parent.name if path.name == "config.json" else path.stem)


def _get(raw: dict, where: str, *keys, default=None):
    for key in keys:
        if raw.get(key) is not None:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WorkloadError(f"{where}: {key} must be a positive integer, got {value!r}")
            return value
    if default is None:
        raise WorkloadError(f"{where}: the config has none of {list(keys)}")
    return default


def parse_config(raw: dict, name: str) -> LLMConfig:
    """An :class:`LLMConfig` from a ``config.json``'s keys (see the module docs for the families)."""
    family = raw.get("model_type", "llama")
    where = f"LLM config {name!r} (model_type {family!r})"
    if family == "gpt2":
        d = _get(raw, where, "n_embd", "hidden_size")
        heads = _get(raw, where, "n_head", "num_attention_heads")
        return LLMConfig(name, family, d, _get(raw, where, "n_layer", "num_hidden_layers"), heads, heads, d // heads,
                         _get(raw, where, "n_inner", default=4 * d), _get(raw, where, "vocab_size"), gated=False, tied=True,
                         qkv_bias=True, o_bias=True, mlp_bias=True, norm_params=2, positions=_get(raw, where, "n_positions", default=1024))
    d = _get(raw, where, "hidden_size")
    heads = _get(raw, where, "num_attention_heads")
    kv = _get(raw, where, "num_key_value_heads", default=heads)
    if heads % kv:
        raise WorkloadError(f"{where}: num_key_value_heads={kv} must divide num_attention_heads={heads}")
    common = dict(hidden=d, layers=_get(raw, where, "num_hidden_layers"), heads=heads, kv_heads=kv,
                  head_dim=_get(raw, where, "head_dim", default=d // heads), intermediate=_get(raw, where, "intermediate_size"),
                  vocab=_get(raw, where, "vocab_size"), tied=bool(raw.get("tie_word_embeddings", False)))
    if family == "phi":
        return LLMConfig(name, family, **common, gated=False, qkv_bias=True, o_bias=True, mlp_bias=True, lm_head_bias=True,
                         norm_params=2, norms_per_layer=1, parallel=True)
    bias = bool(raw.get("attention_bias", False))
    experts = _get(raw, where, "num_local_experts", "num_experts", default=0) if family == "mixtral" or "num_local_experts" in raw else 0
    per_token = _get(raw, where, "num_experts_per_tok", default=2) if experts else 0
    return LLMConfig(name, family, **common, qkv_bias=bias or family == "qwen2", o_bias=bias, mlp_bias=bool(raw.get("mlp_bias", False)),
                     experts=experts, experts_per_token=per_token)


# --- parameter and cache counts ------------------------------------------------------------


def block_params(cfg: LLMConfig) -> dict[str, int]:
    """Parameters of one decoder block by part: ``attention``, ``mlp`` (every expert), ``router``, ``norms``."""
    d, hd = cfg.hidden, cfg.head_dim
    q, kv = cfg.heads * hd, cfg.kv_heads * hd
    attention = d * q + 2 * d * kv + q * d + (q + 2 * kv if cfg.qkv_bias else 0) + (d if cfg.o_bias else 0)
    n_mats = 3 if cfg.gated else 2
    mlp = n_mats * d * cfg.intermediate + ((n_mats - 1) * cfg.intermediate + d if cfg.mlp_bias else 0)
    return {"attention": attention, "mlp": mlp * max(cfg.experts, 1), "router": d * cfg.experts,
            "norms": cfg.norms_per_layer * cfg.norm_params * d}


def parameter_count(cfg: LLMConfig) -> int:
    """All parameters: embeddings (and learned positions), the blocks, the final norm and the LM head."""
    d = cfg.hidden
    head = 0 if cfg.tied else cfg.vocab * d + (cfg.vocab if cfg.lm_head_bias else 0)
    return cfg.vocab * d + cfg.positions * d + cfg.layers * sum(block_params(cfg).values()) + cfg.norm_params * d + head


def weight_bytes(cfg: LLMConfig, precision_bytes: int) -> int:
    """Bytes of the weights the model keeps in DRAM: every parameter at ``precision_bytes``."""
    return parameter_count(cfg) * precision_bytes


def kv_cache_bytes(cfg: LLMConfig, *, batch: int, context: int, precision_bytes: int) -> int:
    """Bytes of the KV cache of ``batch`` sequences of ``context`` positions: ``2·layers·kv_heads·hd·T·B·p``."""
    return 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * context * batch * precision_bytes


def expected_experts(cfg: LLMConfig, tokens: int) -> float:
    """Expected experts of a layer that ``tokens`` tokens touch under uniform top-k routing."""
    if not cfg.experts:
        return 0.0
    e, k = cfg.experts, cfg.experts_per_token
    return e * (1.0 - (1.0 - k / e) ** tokens)


def touched_experts(cfg: LLMConfig, tokens: int) -> int:
    """The modelled touched experts: the divisor of ``tokens·k`` (at most ``E``) nearest :func:`expected_experts`."""
    rows = tokens * cfg.experts_per_token
    want = expected_experts(cfg, tokens)
    divisors = [n for n in range(1, min(cfg.experts, rows) + 1) if rows % n == 0]
    return min(divisors, key=lambda n: (abs(n - want), -n))
