"""A joint search on the edge LLM design (``designs/edge_llm_decode.toml``, its ranges narrowed so that the
test's tables build quickly): every design of the TPOT-vs-cost front, and every feasible trial, obeys the
roofline laws, and the front holds several designs (a real trade, not one design that wins both)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from codesign.api import explore
from codesign.design import load_design, parse_design
from codesign.model.evaluator import build_evaluator

ROOT = Path(__file__).resolve().parents[1]
EDGE = ROOT / "designs" / "edge_llm_decode.toml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    raw = load_design(EDGE).model_dump(mode="json", exclude_defaults=True)
    raw["hardware"].update(pe_rows=[8, 32, 64], pe_cols=[8, 32], sram_kib=[128, 512], dram_gbps=[25.6, 68.3], clock_ghz=1.0)
    raw["search"].update(population=16, trials=96)
    design = parse_design(raw, source=str(EDGE))
    out = tmp_path_factory.mktemp("edge")
    explore(design, out=out, device="cpu", say=lambda msg: None)
    space, _ = build_evaluator(design)
    return space, pd.read_csv(out / "front.csv"), pd.read_csv(out / "trials.csv")


def test_every_edge_design_obeys_the_roofline_laws(run):
    space, front, trials = run
    info = space.workload.graph["llm"]
    layers = space.workload.layers
    # A step reads every weight layer's operand (weights and the KV cache) and writes the new keys and values.
    moved = sum(layer.filter_elems * layer.precision_bytes for layer in layers if layer.has_weights) + info["kv_write_bytes"]
    # Llama-3.2-1B at int8: every parameter but the 33 RMSNorms' (the LM head reads the tied embedding table), the
    # cache of 1024 positions (16 layers, 8 KV heads of 64) and one position of it written.
    norms = (2 * 16 + 1) * 2048
    assert info["kv_cache_bytes"] == 2 * 16 * 8 * 64 * 1024 and info["kv_write_bytes"] == 2 * 16 * 8 * 64
    assert moved == info["weight_bytes"] - norms + info["kv_cache_bytes"] + info["kv_write_bytes"] == 1_252_540_416
    for frame in (front, trials[trials["feasible"]]):
        pes = frame["hw.pe_rows"] * frame["hw.pe_cols"] * frame["hw.grid_rows"] * 2
        assert (frame["tpot_s"] >= moved / (frame["hw.dram_gbps"] * 1e9) * (1 - 1e-12)).all()
        assert (frame["tpot_s"] >= space.workload.total_macs / (pes * 1e9) * (1 - 1e-12)).all()  # (1 GHz)
        assert (frame["tpot_s"] <= 0.2).all() and (frame["dram_use"] <= 1).all()


def test_the_edge_front_is_a_trade(run):
    _, front, _ = run
    points = front.drop_duplicates(subset=["tpot_s", "cost_usd"]).sort_values("tpot_s")
    assert len(points) >= 3
    assert points["cost_usd"].is_monotonic_decreasing  # faster costs more along the front
    assert (points["hw.dram_gib"] == 2.0).all()  # 1 GiB does not hold the weights, 4 GiB only costs more
