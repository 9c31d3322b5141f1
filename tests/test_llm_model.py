"""LLM metrics of the model: the roofline laws as property tests, and how serve combines its phases.

Laws (the issue's): ``tpot_s ≥ bytes a decode step reads ÷ DRAM bandwidth``; ``tpot_s ≥ MACs ÷
(PEs × clock)``; a long prefill is compute-bound; more batch never lowers the tokens per second of a
bandwidth-bound decode. Candidates are any rows of a design space over the array, SRAM, cores,
bandwidth, clock and dataflow (hypothesis draws them).
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codesign.design import parse_design
from codesign.model.evaluation import operational_kg
from codesign.model.evaluator import build_evaluator
from codesign.workload.hf_config import parse_config

#: A small llama-shaped model (GQA 8:2), so that a population evaluates in milliseconds.
SMALL = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
         "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 4096}
HARDWARE = {"pe_rows": [8, 32, 128], "pe_cols": [8, 32, 128], "sram_kib": [64, 512, 4096], "grid_rows": [1, 2],
            "grid_cols": [1, 2], "dram_gbps": [12.8, 102.4, 819.2], "clock_ghz": [0.5, 1.0], "dram_gib": [0.001, 1.0]}


@functools.lru_cache(maxsize=None)
def _evaluator(folder: str, phase: str, batch: int = 1, context: int = 256, prompt: int = 128, output: int = 16):
    path = f"{folder}/small.json"
    with open(path, "w") as f:
        json.dump(SMALL, f)
    raw = {"workload": {"network": path, "batch": batch, "precision_bytes": 2,
                        "params": {"phase": phase, "context": context, "prompt_tokens": prompt, "output_tokens": output}},
           "hardware": HARDWARE, "schedule": {"dataflow": ["ws", "os", "is"], "granularity": "network"},
           "objectives": {"minimize": ["tpot_s", "cost_usd"]}, "constraints": {"dram_use": 1.0}}
    return build_evaluator(parse_design(raw))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return str(tmp_path_factory.mktemp("llm"))


def _rows(space, draw_codes) -> torch.Tensor:
    return torch.tensor([[code % (len(k.choices) if k.choices else k.high + 1) for k, code in zip(space.knobs, codes)]
                         for codes in draw_codes], dtype=torch.long)


def _values(space, evaluator, rows):
    values, errors = evaluator.evaluate_rows(rows)
    assert errors == [None] * len(rows)
    hw = {name: space._hw_values(rows, name, torch.float64) for name in ("pe_rows", "pe_cols", "grid_rows", "grid_cols",
                                                                          "dram_gbps", "clock_ghz", "dram_gib", "sram_kib")}
    return {n: torch.as_tensor(values[:, i]) for i, n in enumerate(evaluator.metric_names)}, hw


CODES = st.lists(st.lists(st.integers(0, 1000), min_size=16, max_size=16), min_size=1, max_size=24)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(codes=CODES)
def test_decode_obeys_both_rooflines(folder, codes):
    space, evaluator = _evaluator(folder, "decode", batch=4)
    rows = _rows(space, codes)
    m, hw = _values(space, evaluator, rows)
    layers = space.workload.layers
    # Bytes a step must move: every weight layer's operand (the blocks' and LM head's weights, the KV cache) read,
    # and the new token's keys and values written to the cache.
    step_bytes = sum(layer.filter_elems * layer.precision_bytes for layer in layers if layer.has_weights)
    cfg = parse_config(SMALL, "small")
    assert step_bytes == 2 * (4 * (256 * 256 * 2 + 2 * 256 * 64 + 3 * 256 * 768) + 4096 * 256) + space.workload.graph["llm"]["kv_cache_bytes"]
    assert space.workload.graph["llm"]["kv_cache_bytes"] == 2 * cfg.layers * 2 * 32 * 256 * 4 * 2
    written = space.workload.graph["llm"]["kv_write_bytes"]
    assert written == 2 * cfg.layers * 2 * 32 * 4 * 2
    assert (m["tpot_s"] >= (step_bytes + written) / (hw["dram_gbps"] * 1e9) * (1 - 1e-12)).all()
    pes = hw["pe_rows"] * hw["pe_cols"] * hw["grid_rows"] * hw["grid_cols"]
    assert (m["tpot_s"] >= space.workload.total_macs / (pes * hw["clock_ghz"] * 1e9) * (1 - 1e-12)).all()
    assert torch.allclose(m["tokens_per_s"], 4 / m["tpot_s"]) and torch.allclose(m["ttft_s"], m["tpot_s"])
    assert torch.allclose(m["energy_per_token_j"], m["energy_j"] / 4)


@FAST
@given(codes=CODES)
def test_long_prefill_is_compute_bound(folder, codes):
    """At 2048 prompt tokens the weights are read once for 16× the work of 128 tokens: the prefill's
    time follows its MACs (≥ 4× the 128-token prefill's on every design whose SRAM holds its tiles), and on a design whose ridge
    point (PEs × clock ÷ bandwidth) lies below the prefill's intensity it sits on the compute roof."""
    space, evaluator = _evaluator(folder, "prefill", prompt=2048)
    short_space, short = _evaluator(folder, "prefill", prompt=128)
    rows = _rows(space, codes)
    m, hw = _values(space, evaluator, rows)
    m128, _ = _values(short_space, short, rows)
    big = hw["sram_kib"] >= 512  # tiles held on chip: a smaller SRAM refetches operands and is bandwidth-bound
    assert (m["ttft_s"][big] >= 4 * m128["ttft_s"][big]).all()
    pes = hw["pe_rows"] * hw["pe_cols"] * hw["grid_rows"] * hw["grid_cols"]
    compute = space.workload.total_macs / (pes * hw["clock_ghz"] * 1e9)
    weights = sum(layer.filter_elems * layer.precision_bytes for layer in space.workload.layers if layer.has_weights)
    assert (m["ttft_s"] >= compute * (1 - 1e-12)).all()
    ridge_below = pes * hw["clock_ghz"] * 1e9 / (hw["dram_gbps"] * 1e9) <= space.workload.total_macs / weights / 4
    assert (compute[ridge_below] >= 4 * weights / (hw["dram_gbps"][ridge_below] * 1e9)).all()


@FAST
@given(codes=CODES)
def test_more_batch_never_lowers_tokens_per_s_when_bandwidth_bound(folder, codes):
    (space1, one), (space8, eight) = _evaluator(folder, "decode", batch=1), _evaluator(folder, "decode", batch=8)
    rows = _rows(space1, codes)
    m1, hw = _values(space1, one, rows)
    m8, _ = _values(space8, eight, rows)
    step_bytes = sum(layer.filter_elems * layer.precision_bytes for layer in space1.workload.layers if layer.has_weights)
    step_bytes += space1.workload.graph["llm"]["kv_write_bytes"]
    bound = m1["tpot_s"] <= 1.0001 * step_bytes / (hw["dram_gbps"] * 1e9)  # batch 1 runs at the bandwidth roof
    assert (m8["tokens_per_s"][bound] >= m1["tokens_per_s"][bound] * (1 - 1e-9)).all()


def test_serve_is_one_prefill_and_output_tokens_decode_steps(folder):
    """Three output tokens (no more than SERVE_POINTS): every step is costed at its own context, so the
    request is exactly the prefill plus the decode steps at 129, 130 and 131 positions."""
    space, serve = _evaluator(folder, "serve", batch=2, context=0, prompt=128, output=3)
    _, prefill = _evaluator(folder, "prefill", batch=2, context=128, prompt=128, output=3)
    steps = [_evaluator(folder, "decode", batch=2, context=T, prompt=128, output=3)[1] for T in (129, 130, 131)]
    rows = _rows(space, [[i * 7 + j for j in range(16)] for i in range(40)])
    s, hw = _values(space, serve, rows)
    p, _ = _values(space, prefill, rows)
    d = [_values(space, step, rows)[0] for step in steps]
    decoding = sum(m["latency_s"] for m in d)
    assert torch.equal(s["ttft_s"], p["latency_s"])
    assert torch.allclose(s["tpot_s"], decoding / 3) and torch.allclose(s["latency_s"], p["latency_s"] + decoding)
    assert torch.allclose(s["energy_j"], p["energy_j"] + sum(m["energy_j"] for m in d))
    assert torch.allclose(s["tokens_per_s"], 2 * 3 / s["latency_s"])
    # the request's operational carbon, not its last decode step's
    assert torch.allclose(s["carbon_operational_kg"], operational_kg(s["energy_j"], s["latency_s"], space.design.carbon))
    assert (d[0]["latency_s"] <= d[2]["latency_s"]).all() and (d[0]["latency_s"] < d[2]["latency_s"]).any()
    assert torch.equal(s["cost_usd"], d[0]["cost_usd"])
    assert space.workload.graph["llm"]["kv_cache_bytes"] == 2 * 4 * 2 * 32 * 131 * 2 * 2  # the cache at the last step
    need = s["weight_bytes"] + s["kv_cache_bytes"]
    assert torch.allclose(s["dram_use"], need / (hw["dram_gib"] * 2**30))
    assert ((s["dram_use"] > 1) == (hw["dram_gib"] < 0.01)).all()  # 1 MiB holds neither, 1 GiB both


def test_a_starting_cache_is_attended_by_the_prefill_and_every_step(folder):
    space, serve = _evaluator(folder, "serve", batch=1, context=64, prompt=128, output=2)
    info = space.workload.graph["llm"]
    assert info["attended"] == 64 + 128 + 2
    assert [s.space.workload.graph["llm"]["attended"] for s, _ in serve.model.steps] == [193, 194]
    prefill = serve.model.prefill.space.workload
    scores = next(layer for layer in prefill.layers if layer.name == "layers.0.scores")
    assert scores.K == 2 * (64 + 128) and scores.P == 128  # the prompt's tokens attend the old cache and themselves


def test_serve_steps_sum_every_step_exactly_for_a_cost_linear_between_the_points():
    from codesign.workload.llm_phases import serve_steps

    s = {"context": 10, "prompt_tokens": 100, "output_tokens": 257}
    steps = serve_steps(s, 4)
    assert [T for T, _ in steps] == [111, 196, 282, 367] and sum(w for _, w in steps) == pytest.approx(257)
    exact = range(111, 111 + 257)
    for f in (lambda T: 3.0 + 0.5 * T, lambda T: max(196.0, T) + 0.1 * max(0.0, T - 282)):  # linear; kinks at the points
        assert sum(w * f(T) for T, w in steps) == pytest.approx(sum(f(T) for T in exact), rel=1e-12)
    assert serve_steps({**s, "output_tokens": 3}, 4) == [(111, 1.0), (112, 1.0), (113, 1.0)]


def test_kv_cache_writes_are_dram_traffic_time_and_energy(folder):
    """A decode step writes each layer's new keys and values, 2·kv·hd·B·p bytes (4 layers, 2 KV heads of 32, batch
    4, bf16: 4·2·2·32·4·2 = 4,096 bytes), to DRAM: the kv_write layers' DRAM bytes, and part of the bandwidth roof."""
    space, evaluator = _evaluator(folder, "decode", batch=4)
    rows = _rows(space, [[i * 5 + j for j in range(16)] for i in range(12)])
    detail = evaluator.model.evaluate_rows(rows, detail=True).layers
    names = space.lowered.names
    writes = [i for i, name in enumerate(names) if name.endswith(".kv_write")]
    assert len(writes) == 4 and space.workload.graph["llm"]["kv_write_bytes"] == 4 * 2 * 2 * 32 * 4 * 2
    assert torch.equal(detail["dram_bytes"][:, writes].sum(dim=1), torch.full((12,), 4096.0, dtype=torch.float64))
    # Prefill writes the whole prompt's cache: 128 tokens of it.
    pspace, prefill = _evaluator(folder, "prefill", batch=4, prompt=128)
    pdetail = prefill.model.evaluate_rows(rows, detail=True).layers
    pw = [i for i, name in enumerate(pspace.lowered.names) if name.endswith(".kv_write")]
    written = pdetail["dram_bytes"][:, pw].sum(dim=1)
    large = pspace._hw_values(rows, "sram_kib", torch.float64) == 4096  # the new keys and values fit on chip
    assert (written[large] == 128 * 4096).all() and large.any()
    assert (written >= 128 * 4096).all()  # (a smaller SRAM also reads the spilled k and v back from DRAM)
    # With the cache in SRAM the writes stay on chip (the attention products read them).
    raw_space, sram = _sram_evaluator(folder)
    sdetail = sram.model.evaluate_rows(rows, detail=True).layers
    sw = [i for i, name in enumerate(raw_space.lowered.names) if name.endswith(".kv_write")]
    big = raw_space._hw_values(rows, "sram_kib", torch.float64) >= 512
    assert (sdetail["dram_bytes"][:, sw].sum(dim=1)[big] == 0).all()


def _sram_evaluator(folder):
    path = f"{folder}/small.json"
    with open(path, "w") as f:
        json.dump(SMALL, f)
    raw = {"workload": {"network": path, "batch": 4, "precision_bytes": 2,
                        "params": {"phase": "decode", "context": 256, "kv_home": "sram"}},
           "hardware": HARDWARE, "schedule": {"dataflow": ["ws", "os", "is"], "granularity": "network"}}
    return build_evaluator(parse_design(raw))


def test_an_llm_runs_layer_by_layer(folder):
    from codesign.errors import DesignError

    raw = {"workload": {"network": "llama3_2_1b", "params": {"phase": "decode"}},
           "schedule": {"mode": ["layer_by_layer", "pipelined"]}}
    with pytest.raises(DesignError, match="runs layer by layer"):
        build_evaluator(parse_design(raw))


def test_ws_decode_gemvs_follow_scalesim():
    """The weight-stationary decode GEMVs of ``data/llm/gemv_scalesim_3.0.0.json`` (up to 4,096 filter tiles, too many
    to follow one by one): compute exact and total cycles within 0.1 % of SCALE-Sim. Their tiles never straddle one of
    the read buffer's sets, so the filter is read by slides alone (``stalls.tiles_within_sets``); the two-state chain
    put them at up to 27x SCALE-Sim's total. With an unaligned buffer the chain stays, and so do SCALE-Sim's wraps."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("validate_llm_gemv", root / "scripts" / "validate_llm_gemv.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = [r for r in json.loads((root / "data" / "llm" / "gemv_scalesim_3.0.0.json").read_text())["rows"]
            if r["dataflow"] == "ws"]
    assert len(rows) == 12 and max(r["N"] * r["K"] for r in rows) == 512 * 2048
    for array in {r["array"] for r in rows}:
        mine = [r for r in rows if r["array"] == array]
        h, w = map(int, array.split("x"))
        for r, (compute, total) in zip(mine, script.ours([(r["gemm"], r["M"], r["N"], r["K"]) for r in mine], h, w, "ws")):
            assert compute == r["compute_scalesim"], r
            assert abs(total / r["total_scalesim"] - 1) <= 0.001, (r, total)
    # An unaligned filter buffer (90 kB: sets of 922 words) wraps the weight stream round the whole list; SCALE-Sim
    # 3.0.0 on the same 16x16 GEMV: 192,511 compute and 6,031,725 total cycles (the model: -0.4 %).
    script.SRAM_KB = (100, 90, 50)
    (compute, total), = script.ours([("B1.k", 1, 512, 2048)], 16, 16, "ws")
    assert compute == 192511 and abs(total / 6031725 - 1) <= 0.01


def test_dram_capacity_is_priced_in_cost_usd(folder):
    """An LLM design's cost is its die's plus its DRAM's: ``dram_gib`` at the DRAM kind's price per GiB
    (lpddr4, the default kind: $8.00); the die alone is what the analytical model prices."""
    from codesign.hardware.cost import DRAM_USD_PER_GIB
    from codesign.model.analytical import AnalyticalModel

    space, evaluator = _evaluator(folder, "decode")
    rows = _rows(space, [[i * 3 + j for j in range(16)] for i in range(30)])
    m, hw = _values(space, evaluator, rows)
    die = AnalyticalModel(space).evaluate_rows(rows).metrics["cost_usd"]
    assert DRAM_USD_PER_GIB["lpddr4"] == 8.0
    assert torch.allclose(m["cost_usd"], die + 8.0 * hw["dram_gib"], rtol=1e-12, atol=0)
    assert set(hw["dram_gib"].tolist()) == {0.001, 1.0}
