"""LLM workloads from Hugging Face configs: parameter, weight and KV-cache counts against hand counts
and published figures, and MACs against ``transformers`` models built from the same configs.

The configs under ``tests/data/llm`` are the published ``config.json`` values of their models (each
file's ``_source`` names the Hub repository). The published parameter counts are the models' own
(``model.num_parameters()`` as their model cards and the Hub report them).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from codesign.workload.hf_config import (PUBLISHED, expected_experts, kv_cache_bytes, parameter_count, parse_config,
                                         read_config, touched_experts, weight_bytes)
from codesign.workload.llm_phases import llm_workload
from codesign.workload.opgraph import WorkloadError
from codesign.workload.sources import build_workload, source_kind

DATA = Path(__file__).parent / "data" / "llm"

#: Published parameter counts (embeddings and LM head included).
PUBLISHED_PARAMS = {
    "llama3_8b": 8_030_261_248, "mistral_7b": 7_241_732_096, "qwen2_7b": 7_615_616_512, "mixtral_8x7b": 46_702_792_704,
    "llama3_2_1b": 1_235_814_400, "gpt2": 124_439_808, "phi2": 2_779_683_840,
}


def _hand_weights(d, layers, heads, kv, hd, ffn, vocab, *, qkv_bias=False, experts=0, tied=False) -> int:
    """A llama-style model's parameters, counted by hand: per block q, k, v, o, the (gated) MLP or its
    experts and router, two RMSNorms; embeddings, final norm, LM head."""
    attention = d * heads * hd + 2 * d * kv * hd + heads * hd * d + (heads * hd + 2 * kv * hd if qkv_bias else 0)
    mlp = 3 * d * ffn * max(experts, 1) + d * experts
    return vocab * d * (1 if tied else 2) + layers * (attention + mlp + 2 * d) + d


@pytest.mark.parametrize("name, hand", [
    ("llama3_8b", _hand_weights(4096, 32, 32, 8, 128, 14336, 128256)),
    ("mistral_7b", _hand_weights(4096, 32, 32, 8, 128, 14336, 32000)),
    ("qwen2_7b", _hand_weights(3584, 28, 28, 4, 128, 18944, 152064, qkv_bias=True)),
    ("mixtral_8x7b", _hand_weights(4096, 32, 32, 8, 128, 14336, 32000, experts=8)),
])
def test_weight_and_kv_bytes_equal_hand_counts(name, hand):
    cfg = read_config(str(DATA / f"{name}.json"))
    assert parameter_count(cfg) == hand == PUBLISHED_PARAMS[name]
    assert weight_bytes(cfg, 2) == 2 * hand
    # KV cache: K and V, per layer, per key-value head, head dim, position and sequence.
    layers, kv = {"qwen2_7b": (28, 4)}.get(name, (32, 8))
    assert kv_cache_bytes(cfg, batch=4, context=8192, precision_bytes=2) == 2 * layers * kv * 128 * 8192 * 4 * 2
    workload = build_workload(str(DATA / f"{name}.json"), batch=4, precision_bytes=2, params={"phase": "decode", "context": 8192})
    assert workload.graph["llm"]["kv_cache_bytes"] == 2 * layers * kv * 128 * 8192 * 4 * 2
    assert workload.graph["llm"]["weight_bytes"] == 2 * hand


def test_llama3_8b_kv_cache_is_one_gib_at_8k_in_bf16():
    assert kv_cache_bytes(read_config("llama3_8b"), batch=1, context=8192, precision_bytes=2) == 1 << 30


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_names_match_their_parameter_counts(name):
    assert source_kind(name) == "llm"
    assert parameter_count(read_config(name)) == PUBLISHED_PARAMS[name]


def _decode_block_macs(d, heads, kv, hd, ffn, T):
    return d * heads * hd + 2 * d * kv * hd + heads * hd * d + 3 * d * ffn + 2 * heads * hd * T


def test_decode_is_gemvs_reading_the_kv_cache():
    cfg = read_config("llama3_8b")
    B, T = 8, 4096
    w = llm_workload(cfg, batch=B, precision_bytes=2, phase="decode", context=T)
    assert w.total_macs == B * (32 * _decode_block_macs(4096, 32, 8, 128, 14336, T) + 4096 * 128256)
    layers = {layer.name: layer for layer in w.layers}
    for layer in layers.values():
        if layer.is_vector:  # the cache append: the step's new keys and values, written to DRAM
            assert layer.fn == "concat" and layer.ofmap_elems == B * 2 * 8 * 128
            continue
        assert layer.gemm_m in (B, 4)  # a GEMV of the batch, or of the 4 query heads sharing a KV head
    scores, context = layers["layers.0.scores"], layers["layers.0.context"]
    # The attention reads the cache as its (weight-like) second operand: one sequence x KV head per GEMM.
    assert scores.has_weights and scores.gemm_groups == B * 8 and scores.gemm_m == 4
    assert (scores.filter_elems + context.filter_elems) * 2 * 32 == kv_cache_bytes(cfg, batch=B, context=T, precision_bytes=2)
    sram = llm_workload(cfg, batch=B, precision_bytes=2, phase="decode", context=T, kv_home="sram")
    assert sram.total_macs == w.total_macs
    assert {layer.op for layer in sram.layers if layer.name.endswith("scores")} == {"matmul"}


def test_prefill_counts_attention_dense_and_the_last_token_logits():
    cfg = read_config("mistral_7b")
    S = 512
    w = llm_workload(cfg, batch=2, precision_bytes=2, phase="prefill", prompt_tokens=S)
    per_block = S * (4096 * 4096 + 2 * 4096 * 1024 + 4096 * 4096 + 3 * 4096 * 14336) + 2 * 32 * 128 * S * S
    assert w.total_macs == 2 * (32 * per_block + 4096 * 32000)


def test_moe_runs_the_active_experts_and_reads_the_touched_ones():
    cfg = read_config(str(DATA / "mixtral_8x7b.json"))
    assert expected_experts(cfg, 1) == pytest.approx(2.0)
    assert expected_experts(cfg, 8) == pytest.approx(8 * (1 - 0.75 ** 8))
    assert touched_experts(cfg, 1) == 2 and touched_experts(cfg, 8) == 8 and touched_experts(cfg, 3) == 6
    for B in (1, 3, 8):
        w = llm_workload(cfg, batch=B, precision_bytes=2, phase="decode", context=100)
        experts = [layer for layer in w.layers if ".experts." in layer.name]
        # MACs: k experts per token, exactly
        assert sum(layer.macs for layer in experts) == 32 * B * 2 * 3 * 4096 * 14336
        # weights read: the touched experts' (3 matrices each)
        assert sum(layer.filter_elems for layer in experts) == 32 * touched_experts(cfg, B) * 3 * 4096 * 14336


def test_gpt2_and_phi_configs_read():
    gpt2 = parse_config({"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
                         "vocab_size": 50257}, "gpt2")
    assert parameter_count(gpt2) == PUBLISHED_PARAMS["gpt2"] and not gpt2.gated and gpt2.tied
    phi = read_config("phi2")
    assert phi.parallel and not phi.gated and phi.lm_head_bias


def test_bad_settings_name_the_key(tmp_path):
    with pytest.raises(WorkloadError, match="phase must be"):
        build_workload("llama3_2_1b", params={"phase": "train"})
    with pytest.raises(WorkloadError, match="no parameter 'seq_len'"):
        build_workload("llama3_2_1b", params={"seq_len": 3})
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 6, "num_key_value_heads": 4,
                               "num_hidden_layers": 1, "intermediate_size": 8, "vocab_size": 10}))
    with pytest.raises(WorkloadError, match="must divide"):
        build_workload(str(bad))


# --- against transformers -------------------------------------------------------------------


def _transformers():
    """``transformers``, imported without its torchvision integration when that torchvision does not load
    (a torchvision built for another torch breaks ``import transformers``'s model modules)."""
    pytest.importorskip("transformers")
    try:
        importlib.import_module("torchvision")
    except Exception:  # noqa: BLE001 - any failure of that import
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        utils = importlib.import_module("transformers.utils")
        import_utils = importlib.import_module("transformers.utils.import_utils")
        utils.is_torchvision_available = import_utils.is_torchvision_available = lambda: False
    return importlib.import_module("transformers")


TINY = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8,
        "num_key_value_heads": 2, "vocab_size": 101, "max_position_embeddings": 256, "tie_word_embeddings": False}
FAMILIES = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
            "mistral": ("MistralConfig", "MistralForCausalLM")}


def _hf_model(family: str, raw: dict, device: str = "meta"):
    """The ``transformers`` model of ``raw`` (random weights; on the meta device for the importer's trace)."""
    tf = _transformers()
    import torch

    config_cls, model_cls = (getattr(tf, n) for n in FAMILIES.get(family, ("MixtralConfig", "MixtralForCausalLM")))
    # eager attention: explicit matmuls (torch's FLOP counter has no formula for the cpu SDPA kernel)
    # and eager experts: one linear per expert hit (the grouped kernels are not counted either)
    config = config_cls(**{k: v for k, v in raw.items() if k != "model_type"}, attn_implementation="eager",
                        experts_implementation="eager")
    with torch.device(device):
        model = model_cls(config).eval()
    return config, model, torch


def _decode_module(config, model, torch, cached: int):
    """A module running one decode step of ``model`` after ``cached`` positions (a cache of zeros)."""
    cache_cls = _transformers().DynamicCache

    class Decode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids):
            cache = cache_cls(config=config)
            hd = config.hidden_size // config.num_attention_heads
            for i in range(config.num_hidden_layers):
                k = torch.zeros(ids.shape[0], config.num_key_value_heads, cached, hd)
                cache.update(k, torch.zeros_like(k), i)
            pos = torch.full((ids.shape[0], 1), cached, dtype=torch.long)
            return self.model(input_ids=ids, past_key_values=cache, position_ids=pos, use_cache=True).logits

    return Decode()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("batch, context", [(1, 9), (3, 33)])
def test_decode_macs_equal_the_traced_transformers_model(family, batch, context):
    from codesign.workload.lowering import lower
    from codesign.workload.torch_import import trace_module

    raw = {"model_type": family, **TINY}
    config, model, torch = _hf_model(family, raw)
    graph = trace_module(_decode_module(config, model, torch, context - 1), "decode", "transformers", batch, (1,), torch.int64)
    traced = lower(graph, precision_bytes=2, unsupported="skip")
    ours = llm_workload(parse_config(raw, family), batch=batch, precision_bytes=2, phase="decode", context=context)
    assert ours.total_macs == traced.total_macs
    # The traced weight layers hold every parameter but the embedding table, the norms and the biases.
    weights = sum(layer.filter_elems for layer in traced.layers if layer.has_weights)
    biases = 2 * (64 + 2 * 16) if family == "qwen2" else 0
    assert weights == parameter_count(parse_config(raw, family)) - TINY["vocab_size"] * 64 - 64 * (2 * 2 + 1) - biases


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_prefill_macs_equal_the_transformers_models_flops(family):
    """Prefill builds its causal mask by value (``.item()``), which a meta-device trace cannot run: its
    MACs are counted on real (random) weights by torch's FLOP counter (2 FLOPs per MAC; eager
    attention computes the masked half too, as the model counts it)."""
    raw = {"model_type": family, **TINY}
    _, model, torch = _hf_model(family, raw, "cpu")
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=torch.zeros((2, 17), dtype=torch.long), use_cache=False, logits_to_keep=1)
    ours = llm_workload(parse_config(raw, family), batch=2, precision_bytes=2, phase="prefill", prompt_tokens=17)
    assert 2 * ours.total_macs == counter.get_total_flops()


@pytest.mark.parametrize("batch", [1, 4])
def test_mixtral_decode_macs_equal_the_transformers_models_flops(batch):
    """Mixtral routes by value (data-dependent shapes), which a meta-device trace cannot run: its MACs
    are counted on real (random) weights by torch's FLOP counter (2 FLOPs per MAC)."""
    raw = {"model_type": "mixtral", **TINY, "num_local_experts": 4, "num_experts_per_tok": 2}
    config, model, torch = _hf_model("mixtral", raw, "cpu")
    from torch.utils.flop_counter import FlopCounterMode

    module = _decode_module(config, model, torch, 6)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros((batch, 1), dtype=torch.long))
    ours = llm_workload(parse_config(raw, "mixtral"), batch=batch, precision_bytes=2, phase="decode", context=7)
    assert 2 * ours.total_macs == counter.get_total_flops()


def test_codesign_workload_reports_an_llm_phase(capsys):
    from tests.helpers import cli

    config = str(DATA / "llama3_8b.json")
    code, out, err = cli(capsys, "workload", config, "--param", "phase=decode", "--param", "context=4096", "--param", "batch=8",
                         "--param", "precision_bytes=2", "--format", "json")
    assert code == 0, err
    info = json.loads(out)
    assert info["phase"] == "decode" and info["batch"] == 8 and info["context"] == 4096
    assert info["total_macs"] == 8 * (32 * _decode_block_macs(4096, 32, 8, 128, 14336, 4096) + 4096 * 128256)
    assert info["weight_bytes"] == 2 * PUBLISHED_PARAMS["llama3_8b"]
    assert info["kv_cache_bytes"] == 2 * 32 * 8 * 128 * 4096 * 8 * 2
    code, out, err = cli(capsys, "workload", config, "--param", "phase=train")
    assert code == 2 and "phase must be prefill, decode or serve" in err
