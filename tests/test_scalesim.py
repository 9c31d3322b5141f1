"""SCALE-Sim compatibility: topology and config files, and fidelity against committed SCALE-Sim 3.0.0 runs.

The fidelity tests need no SCALE-Sim: they read the raw results committed in
``tests/data/scalesim_3.0.0_reference.csv``, ``data/scalesim/sweep_3.0.0.csv`` and
``data/scalesim/offgrid_3.0.0.csv`` (``scripts/validate_scalesim.py`` and
``scripts/sweep_scalesim_offgrid.py`` made them; ``data/scalesim/README.md`` says how).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from codesign.cycles import CyclesSetup, cycles_table
from codesign.errors import UserError
from codesign.model.systolic import IS, OS, WS, compute_cycles, stall_bound_cycles
from codesign.workload.scalesim import ScaleSimFormatError, read_config, read_topology, read_topology_layers

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "data" / "scalesim" / "topologies"
REFERENCE = ROOT / "tests" / "data" / "scalesim_3.0.0_reference.csv"
SWEEP = ROOT / "data" / "scalesim" / "sweep_3.0.0.csv"
OFFGRID = ROOT / "data" / "scalesim" / "offgrid_3.0.0.csv"
CODES = {"ws": WS, "os": OS, "is": IS}


def results() -> pd.DataFrame:
    frames = [pd.read_csv(REFERENCE)]
    for path in (SWEEP, OFFGRID):
        if path.exists():
            frames.append(pd.read_csv(path))
    return pd.concat(frames, ignore_index=True)


def folds_script():
    """``scripts/scalesim_folds.py`` (its fold labels and the dataflow-ranking table)."""
    spec = importlib.util.spec_from_file_location("scalesim_folds", ROOT / "scripts" / "scalesim_folds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reach(rows: pd.DataFrame) -> torch.Tensor:
    """Output pixels between two im2col reads of one input word, at most (``layer_costs``; 0 for a GEMM)."""
    span = (rows["filt_h"] - 1) // rows["stride"] * rows["ofmap_w"] + (rows["filt_w"] - 1) // rows["stride"]
    return torch.tensor(span.where(rows["kind"] != "gemm", 0).to_numpy(dtype=float), dtype=torch.float64)


def model_totals(rows: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Our compute and total cycles for every row, all rows in one batched call of the stall model."""
    t = lambda col: torch.tensor(rows[col].to_numpy(dtype=float), dtype=torch.float64)  # noqa: E731
    df = torch.tensor([CODES[d] for d in rows["dataflow"]])
    m, n, k, h, w = t("gemm_M"), t("gemm_N"), t("gemm_K"), t("array_h"), t("array_w")
    cc = compute_cycles(m, n, k, h, w, df)
    bw = torch.where(torch.tensor((rows["bw_mode"] == "CALC").to_numpy()), torch.inf, t("bw_words_per_cycle"))
    conv = torch.tensor((rows["kind"] != "gemm").to_numpy())
    total = stall_bound_cycles(
        m, n, k, h, w, df, compute=cc, ifmap_words=t("ifmap_sram_kB") * 1024, filter_words=t("filter_sram_kB") * 1024,
        ofmap_words=t("ofmap_sram_kB") * 1024, bw_words=bw, out_cols=t("ofmap_w"),
        overlap=conv & torch.tensor((rows["filt_h"] > rows["stride"]).to_numpy()), stride=t("stride"), reach=reach(rows),
    )
    return cc, total


# --- topology and config files --------------------------------------------------------------------
def test_conv_topology_reads_every_resnet18_conv():
    layers = read_topology_layers(TOPOLOGIES / "resnet18_convs.csv")
    assert len(layers) == 20
    conv1 = layers[0].layer
    assert (conv1.P, conv1.Q, conv1.R, conv1.C, conv1.K, conv1.stride) == (112, 112, 7, 3, 64, 2)
    assert (conv1.gemm_m, conv1.gemm_n, conv1.gemm_k) == (12544, 64, 147)
    assert read_topology(TOPOLOGIES / "resnet18_convs.csv").number_of_edges() == 0  # independent layers


def test_gemm_topology_and_depthwise_split():
    gemm = read_topology_layers(TOPOLOGIES / "gemm_mnk.csv")
    assert [(g.layer.gemm_m, g.layer.gemm_n, g.layer.gemm_k) for g in gemm][:2] == [(1, 1000, 512), (512, 768, 768)]
    dw = read_topology_layers(TOPOLOGIES / "mbv2_dw_full_DP.csv")[0]
    # SCALE-Sim runs a "DP" layer as one one-channel layer per channel: groups = channels here.
    assert dw.kind == "depthwise" and dw.layer.gemm_groups == 144
    assert (dw.layer.gemm_m, dw.layer.gemm_n, dw.layer.gemm_k) == (3136, 1, 9)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty topology file"),
        ("Layer name, IFMAP Height\n", "expected SCALE-Sim's conv form"),
        ("Layer, M, N, K,\n", "no layers after the header"),
        ("Layer, M, N, K,\ng, 4, 0, 2,\n", ":2: N = '0': expected a positive integer"),
        ("Layer, M, N, K,\ng, 4, x, 2,\n", ":2: N = 'x': expected a positive integer"),
        ("Layer, M, N, K,\ng, 4, 2,\n", "has 2 values, expected 3"),
        ("Layer, M, N, K,\ng, 4, 2, 2,\ng, 1, 1, 1,\n", ":3: layer name 'g' repeats line 2"),
        ("Layer, M, N, K,\ng, 4, 2, 2, 2:4,\n", "only a dense '1:1' sparsity ratio"),
        ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
         "c, 2, 8, 3, 3, 1, 1, 1,\n", "Filter Height = 3 is larger than the ifmap (2)"),
    ],
)
def test_bad_topology_names_file_line_value(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ScaleSimFormatError, match=None) as info:
        read_topology_layers(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, UserError)


def test_missing_topology_file(tmp_path):
    with pytest.raises(ScaleSimFormatError, match="no such topology file"):
        read_topology_layers(tmp_path / "nope.csv")


def fill(template: str, **values) -> str:
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def test_config_template_reads(tmp_path):
    template = (TOPOLOGIES / "config_template.cfg").read_text()
    path = tmp_path / "a.cfg"
    path.write_text(fill(template, run_name="r", ah=32, aw=16, isz=64, fsz=128, osz=32, bw=10, df="ws", bwmode="USER"))
    cfg = read_config(path)
    assert (cfg.array_h, cfg.array_w, cfg.dataflow, cfg.bandwidth) == (32, 16, "ws", 10.0)
    assert (cfg.ifmap_sram_kb, cfg.filter_sram_kb, cfg.ofmap_sram_kb) == (64, 128, 32)
    path.write_text(fill(template, run_name="r", ah=32, aw=16, isz=64, fsz=128, osz=32, bw=10, df="os", bwmode="CALC"))
    assert read_config(path).bandwidth is None


@pytest.mark.parametrize(
    "edit, message",
    [
        (("Dataflow : ws", "Dataflow : xs"), "Dataflow = 'xs': expected ws, os or is"),
        (("ArrayHeight:    32", "ArrayHeight:    0"), "ArrayHeight = '0': expected a positive integer"),
        (("IfmapSRAMBankBandwidth: 10", "IfmapSRAMBankBandwidth: 20"), "IfmapSRAMBankBandwidth = '20' differs"),
        (("ArrayWidth:     16\n", ""), "[architecture_presets] ArrayWidth is missing"),
        (("[general]", "general"), "not a SCALE-Sim config"),
    ],
)
def test_bad_config_names_key_and_value(tmp_path, edit, message):
    template = (TOPOLOGIES / "config_template.cfg").read_text()
    text = fill(template, run_name="r", ah=32, aw=16, isz=64, fsz=64, osz=32, bw=10, df="ws", bwmode="USER")
    assert edit[0] in text
    path = tmp_path / "b.cfg"
    path.write_text(text.replace(edit[0], edit[1]))
    with pytest.raises(ScaleSimFormatError) as info:
        read_config(path)
    assert message in str(info.value) and str(path) in str(info.value)


# --- fidelity against the committed SCALE-Sim results ---------------------------------------------
def test_compute_cycles_exact_on_every_committed_row():
    rows = results()
    cc, _ = model_totals(rows)
    assert cc.to(torch.int64).tolist() == rows["compute_cycles"].tolist()


def test_total_cycles_follow_scalesim():
    rows = results()
    _, total = model_totals(rows)
    err = np.abs(total.numpy() / rows["total_cycles"].to_numpy() - 1)
    assert len(rows) >= 700
    # Issue 17's targets over every row: median ≤ 2 %, 90th percentile ≤ 10 % (docs/perf/scalesim_folds.json).
    assert np.median(err) <= 0.02
    assert np.percentile(err, 90) <= 0.10
    stalled = rows["stall_cycles"].to_numpy() > 0.02 * rows["total_cycles"].to_numpy()
    assert np.median(err[stalled]) <= 0.05


#: The one regime where the stall model is known to miss: input-stationary convolutions with small SRAM (≤ 64 kB)
#: whose fold's first pixel reads an input word that a later fold reads again (``reach ≥ W``), so SCALE-Sim finds a
#: word left behind its window further on and skips the wrap (docs/model.md, "Where the stall model misses").
#: Every fold meets 15 % both with and without these rows.


def test_every_held_out_fold():
    """Leave-one-group-out: every aspect ratio, dataflow × memory regime, dataflow on non-square arrays and layer
    family has a 90th-percentile total-cycle error ≤ 15 %, with and without the regime above."""
    rows = results()
    _, total = model_totals(rows)
    folds = folds_script()
    rows = rows.assign(err=np.abs(total.numpy() / rows["total_cycles"].to_numpy() - 1) * 100)
    labels = {"aspect ratio": [folds.aspect(h, w) for h, w in zip(rows["array_h"], rows["array_w"])],
              "dataflow x memory regime": [f"{r['dataflow']}, {folds.memory_regime(r)}" for _, r in rows.iterrows()],
              "dataflow on non-square arrays": rows["dataflow"].where(rows["array_h"] != rows["array_w"], None),
              "layer family": rows["layer"].map(folds.family)}
    assert {"1:8", "1:4", "1:2", "1:1", "2:1", "4:1", "8:1"} <= set(labels["aspect ratio"])
    assert len(set(labels["layer family"])) >= 10
    miss = ((rows["dataflow"] == "is") & (rows["kind"] != "gemm") & (reach(rows).numpy() >= rows["array_w"])
            & (rows["ifmap_sram_kB"] <= 64) & (rows["bw_mode"] == "USER")).to_numpy()
    for grouping, label in labels.items():
        for fold, g in rows.groupby(pd.Series(label, index=rows.index)):
            kept = g["err"][~miss[rows.index.get_indexer(g.index)]]
            assert len(kept) == 0 or np.percentile(kept, 90) <= 15.0, (grouping, fold, len(kept))
            assert np.percentile(g["err"], 90) <= 15.0, (grouping, fold, len(g))


def test_model_ranks_dataflows_as_scalesim():
    """OS against WS on the same ResNet-18 convs, per committed setup: the model orders total cycles as SCALE-Sim
    does, including where stalls reverse the order of compute cycles."""
    rows = results()
    cc, total = model_totals(rows)
    rows = rows.assign(model_compute_cycles=cc.numpy(), model_total_cycles=total.numpy())
    rankings = folds_script().dataflow_rankings(rows)
    assert len(rankings) >= 5 and any(r["flip"] for r in rankings)
    assert all(r["same_ranking"] for r in rankings)


def test_no_stall_where_scalesim_has_none_with_ample_memory():
    rows = results()
    _, total = model_totals(rows)
    calm = ((rows["bw_mode"] == "CALC") | (rows["sram_setting"] == "large")).to_numpy() & (rows["stall_cycles"] == 0).to_numpy()
    err = np.abs(total.numpy()[calm] / rows["total_cycles"].to_numpy()[calm] - 1)
    assert calm.sum() > 20 and np.percentile(err, 90) <= 0.01


def test_cycles_command_path_equals_batched_stall_model(tmp_path):
    """``codesign cycles`` (AnalyticalModel on a one-point design space) gives the same numbers."""
    rows = results()
    pick = rows[(rows["array_h"] == 64) & (rows["array_w"] == 64) & (rows["dataflow"] == "os")
                & (rows["sram_setting"] == "small") & (rows["bw_mode"] == "USER") & (rows["kind"] != "gemm")
                & (rows["bw_words_per_cycle"] == 10)].drop_duplicates("layer")
    assert len(pick) >= 5
    _, total = model_totals(pick)
    topo = tmp_path / "t.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
                    + "".join(f"{r.layer}, {r.ifmap_h}, {r.ifmap_w}, {r.filt_h}, {r.filt_w}, {r.channels}, "
                              f"{r.num_filters}, {r.stride},\n" for r in pick.itertuples()))
    ours = cycles_table(topo, CyclesSetup(array_h=64, array_w=64, dataflow="os", sram_kb=(64, 64, 32), bandwidth=10.0))
    assert [r["compute_cycles"] for r in ours] == pick["compute_cycles"].tolist()
    assert [r["total_cycles"] for r in ours] == [int(round(x)) for x in total.tolist()]


def test_depthwise_is_channels_times_one_channel():
    setup = CyclesSetup(array_h=8, array_w=8, dataflow="ws", sram_kb=(64, 64, 32), bandwidth=10.0)
    full = cycles_table(TOPOLOGIES / "mbv2_dw_full_DP.csv", setup)[0]
    one = cycles_table(TOPOLOGIES / "mbv2_dw_one_channel.csv", setup)[0]
    assert full["total_cycles"] == 144 * one["total_cycles"]
    assert one["compute_cycles"] == 6315  # SCALE-Sim 3.0.0, reference row (8×8, ws)
